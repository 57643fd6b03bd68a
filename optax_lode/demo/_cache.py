"""Small, pickle-free cache files of the demo: run records as ``.npz``, tables as JSON.

Every file is written atomically (``optax_lode._files.atomic_write``) so a
killed demo never leaves a half-written entry that a re-run would trust.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from optax_lode._files import atomic_write, atomic_write_text

#: The arrays a cached run keeps (what the report and the figures need).
RUN_FIELDS = ("loss", "metric", "lr", "mask")


def save_json(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, default=float))


def load_json(path: Path) -> Any | None:
    """The cached JSON, or ``None`` if missing or unreadable (it is recomputed)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def save_run(path: Path, result: Any, **extra: float) -> dict[str, Any]:
    """Caches a :class:`optax_lode.sweep.RunResult` (its records and scalars)."""
    record = {k: np.asarray(getattr(result, k)) for k in RUN_FIELDS}
    record["test_metric"] = np.asarray(float(result.test_metric))
    record["run_seconds"] = np.asarray(float(result.run_seconds))
    record["compile_seconds"] = np.asarray(float(result.compile_seconds))
    for k, v in extra.items():
        record[k] = np.asarray(v, np.float64)

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **record)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)
    return _as_dict(record)


def load_run(path: Path) -> dict[str, Any] | None:
    """A cached run as a dict of arrays/floats, or ``None`` if missing or corrupt."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            record = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None  # truncated or damaged (a bad CRC too): recomputed
    if not all(k in record for k in (*RUN_FIELDS, "test_metric", "run_seconds")):
        return None
    return _as_dict(record)


def _as_dict(record: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in record.items()
    }
