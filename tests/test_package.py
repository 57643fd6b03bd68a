"""The package itself: import hygiene, version, console script."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optax_lode

# Run in a fresh interpreter: this test process may already have imported JAX
# with some configuration, and we must see what *importing optax_lode* does.
_PROBE = r"""
import json, jax
before = {k: getattr(jax.config, k) for k in
          ("jax_enable_x64", "jax_platforms", "jax_default_matmul_precision",
           "jax_numpy_rank_promotion", "jax_default_device")}
import optax_lode, optax_lode.cli
for sub in ("runs", "model", "decision", "transform"):
    try:
        __import__("optax_lode." + sub)
    except ModuleNotFoundError as e:
        if e.name != "optax_lode." + sub:
            raise
after = {k: getattr(jax.config, k) for k in before}
print(json.dumps({"before": before, "after": after,
                  "x64": bool(jax.numpy.zeros(()).dtype == jax.numpy.float64),
                  "backend": jax.default_backend()}, default=str))
"""


def test_import_changes_no_global_jax_config():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == result["after"]
    assert result["after"]["jax_enable_x64"] is False
    assert not result["x64"]
    assert result["after"]["jax_platforms"] in (None, "")


def test_version_matches_metadata():
    assert optax_lode.__version__ == importlib.metadata.version("optax-lode")


def _console_script() -> str:
    # The venv's bin/ may not be on PATH when pytest runs as `venv/bin/python -m`.
    beside = Path(sys.executable).with_name("optax-lode")
    found = str(beside) if beside.exists() else shutil.which("optax-lode")
    assert found, "console script optax-lode is not installed"
    return found


def test_console_script_version_and_help():
    script = _console_script()
    out = subprocess.run(
        [script, "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"optax-lode {optax_lode.__version__}"
    out = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "usage: optax-lode" in out.stdout
    # No command is a usage error (exit 2, help on stderr), not a success.
    out = subprocess.run([script], capture_output=True, text=True)
    assert out.returncode == 2 and "usage: optax-lode" in out.stderr


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "optax_lode", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert optax_lode.__version__ in out.stdout


def test_every_exported_name_is_documented_in_an_api_section():
    """docs/api.md promises each page's API section documents every name its
    subpackage exports: a name added to an __all__ needs its ``:::`` entry."""
    import importlib
    import re

    docs = Path(__file__).resolve().parent.parent / "docs"
    documented = set()
    for page in docs.glob("*.md"):
        for target in re.findall(r"^::: (\S+)", page.read_text(), re.M):
            module, _, attr = target.rpartition(".")
            try:
                documented.add(id(getattr(importlib.import_module(module), attr)))
            except (ValueError, ImportError, AttributeError):  # a module itself
                documented.add(id(importlib.import_module(target)))
    missing = []
    for name in ("optax_lode", *(f"optax_lode.{s}" for s in _SUBPACKAGES)):
        module = importlib.import_module(name)
        for attr in module.__all__:
            if attr != "__version__" and id(getattr(module, attr)) not in documented:
                missing.append(f"{name}.{attr}")
    assert not missing, missing


_SUBPACKAGES = (
    "runs", "model", "decision", "transform", "tasks", "tasks.nqm", "sweep",
    "baselines", "evaluation", "tracking", "demo",
)  # fmt: skip
