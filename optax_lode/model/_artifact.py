"""The model artifact: one file, a JSON header plus equinox-serialised leaves.

Layout (all integers little-endian)::

    b"OPTAX-LODE\\x00\\x01"       12-byte magic (the last byte: container version)
    uint64 header_length
    32 bytes SHA-256 of the header
    header_length bytes of UTF-8 JSON (the header)
    payload: eqx.tree_serialise_leaves of the arrays (numpy .npy records,
             never pickle); its length and SHA-256 are in the header

The header makes the file self-describing (``optax-lode inspect`` prints it) and
lets ``load_model`` rebuild the model's skeleton, then check every leaf's shape
and dtype before trusting the payload. Files are written to a temporary file in
the same directory, fsync-ed and renamed, so a crash never leaves half a file
under the final name.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
from typing import Any

import equinox as eqx
import jax
import numpy as np

from optax_lode._files import atomic_write_bytes
from optax_lode._version import __version__
from optax_lode.model._latent_ode import LatentODE
from optax_lode.model._normalisation import FEATURES, Normalisation

MAGIC = b"OPTAX-LODE\x00\x01"
#: Version of the header's schema; bumped on incompatible changes. Version 2 adds
#: ``hyperparameters.ticks_per_step`` (older readers would ignore it and integrate
#: a coarse-step model once per tick, so they must refuse the file).
FORMAT_VERSION = 2
# Version 1 files (one step per tick) still load.
_READABLE_VERSIONS = (1, 2)
_KIND_MODEL = "optax-lode.LatentODE"
_PREAMBLE = len(MAGIC) + 8 + 32


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    """Container bytes for a header and a payload (adds the payload checksum)."""
    header = dict(header)
    header["payload_bytes"] = len(payload)
    header["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    text = json.dumps(header, indent=1, sort_keys=True).encode()
    digest = hashlib.sha256(text).digest()
    return MAGIC + struct.pack("<Q", len(text)) + digest + text + payload


#: Far above any header save_model writes (a few tens of KB for T in the
#: thousands): a length field beyond it was flipped, not cut short.
_MAX_HEADER = 1 << 32


def unpack(data: bytes, *, source: str = "file") -> tuple[dict[str, Any], bytes]:
    """Header and payload of container bytes, every integrity check applied.

    Raises:
        ValueError: saying what is wrong (foreign, truncated or corrupt file).
    """
    head = data[: len(MAGIC) - 1]
    if len(data) < len(MAGIC) and head and MAGIC.startswith(head):
        raise ValueError(f"{source} is truncated: it ends inside the magic bytes.")
    if len(data) < len(MAGIC) or head != MAGIC[:-1]:
        raise ValueError(
            f"{source} is not an optax-lode file (bad magic bytes); expected a file "
            "written by optax_lode.save_model."
        )
    if data[len(MAGIC) - 1] != MAGIC[-1]:
        raise ValueError(
            f"{source} uses container version {data[len(MAGIC) - 1]}, this "
            f"optax-lode ({__version__}) reads version {MAGIC[-1]}; upgrade "
            "optax-lode or re-save the model."
        )
    if len(data) < _PREAMBLE:
        raise ValueError(f"{source} is truncated: it ends inside the preamble.")
    (n,) = struct.unpack("<Q", data[len(MAGIC) : len(MAGIC) + 8])
    digest = data[len(MAGIC) + 8 : _PREAMBLE]
    text = data[_PREAMBLE : _PREAMBLE + n]
    if len(text) < n:
        # A length no header could have is a flipped field, not a cut file.
        what = "truncated" if n < _MAX_HEADER else "corrupt"
        raise ValueError(
            f"{source} is {what}: the header should be {n} bytes, {len(text)} are left."
        )
    if hashlib.sha256(text).digest() != digest:
        raise ValueError(f"{source} is corrupt: the header checksum does not match.")
    try:
        header = json.loads(text.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{source} is corrupt: unreadable header ({err}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{source} is corrupt: the header is not a JSON object.")
    payload = data[_PREAMBLE + n :]
    expected = header.get("payload_bytes")
    if len(payload) != expected:
        short = isinstance(expected, int) and len(payload) < expected
        kind = "truncated" if short else "corrupt"
        raise ValueError(
            f"{source} is {kind}: the payload should be {expected} bytes, "
            f"found {len(payload)}."
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ValueError(
            f"{source} is corrupt: the array payload checksum does not match."
        )
    return header, payload


def serialise_leaves(tree: Any) -> bytes:
    """The arrays of ``tree`` as equinox's leaf serialisation (numpy .npy records)."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return buf.getvalue()


def leaf_specs(tree: Any) -> list[dict[str, Any]]:
    """Shape and dtype of every array leaf, in serialisation order."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    return [{"shape": list(x.shape), "dtype": str(x.dtype)} for x in leaves]


def deserialise_leaves(payload: bytes, like: Any, *, source: str = "file") -> Any:
    """Reads a payload into the skeleton ``like``, checking each leaf's shape/dtype.

    Raises:
        ValueError: an array record that cannot be read (an object record
            included: pickle is never run) or does not match ``like``.
    """
    expected = leaf_specs(like)
    failures: list[str] = []

    def read(f, x):
        if not eqx.is_array(x):
            return eqx.default_deserialise_filter_spec(f, x)
        try:
            arr = np.load(f, allow_pickle=False)
        except ValueError as err:
            failures.append(f"{source} is corrupt: unreadable array ({err}).")
            raise
        if arr.shape != x.shape or arr.dtype != x.dtype:
            failures.append(
                f"{source} does not match its header: an array has shape "
                f"{arr.shape} {arr.dtype}, the model expects {x.shape} {x.dtype}."
            )
            raise ValueError(failures[-1])
        return jax.numpy.asarray(arr)

    buf = io.BytesIO(payload)
    try:
        tree = eqx.tree_deserialise_leaves(buf, like, filter_spec=read)
    except Exception as err:  # equinox wraps any leaf's error in a RuntimeError
        if not failures:  # not one of read's (a record cut short, say)
            while err.__cause__ is not None:
                err = err.__cause__
            failures.append(f"{source} is corrupt: unreadable arrays ({err!r}).")
        raise ValueError(failures[-1]) from None
    if buf.tell() != len(payload):
        raise ValueError(
            f"{source} does not match its header: {len(payload) - buf.tell()} "
            f"unread payload bytes (expected {len(expected)} arrays)."
        )
    return tree


def model_header(model: LatentODE) -> dict[str, Any]:
    """The JSON header describing ``model`` (without the payload fields)."""
    return {
        "kind": _KIND_MODEL,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "features": list(FEATURES),
        "T": model.T,
        "mu": model.mu,
        "hyperparameters": {
            "latent_size": model.latent_size,
            "hidden_size": model.hidden_size,
            "depth": model.depth,
            "solver": model.solver,
            "ticks_per_step": model.ticks_per_step,
        },
        "normalisation": {
            "mean": np.asarray(model.normalisation.mean, np.float64).tolist(),
            "std": np.asarray(model.normalisation.std, np.float64).tolist(),
        },
        "lr_range": np.asarray(model.lr_range, np.float64).tolist(),
        "best_lr_path": np.asarray(model.best_lr_path, np.float64).tolist(),
        "training": model.training_summary,
        "leaves": leaf_specs(model),
    }


def model_digest(model: LatentODE) -> str:
    """The SHA-256 (hex) of what a model computes with: its weights, its data
    arrays (normalisation, learning-rate range, best run's path) and the
    hyperparameters that shape its graph. Not its training summary or the
    library version that wrote it.

    Cache keys and settings name a model by how it was made; a fit made again
    on another CPU, or by another version, is another model under the same
    name. Results keyed or labelled by this digest cannot be paired with a
    model they were not made with. ``optax-lode inspect`` prints it.

    Args:
        model: the model.

    Returns:
        64 hex digits; equal for a model and its :func:`load_model` copy.

    Raises:
        TypeError: ``model`` is not a :class:`LatentODE`.

    Examples:
        >>> import jax, tempfile, os
        >>> model = LatentODE(T=20, key=jax.random.key(0))
        >>> path = os.path.join(tempfile.mkdtemp(), "m.lode")
        >>> save_model(path, model)
        >>> model_digest(load_model(path)) == model_digest(model)
        True
    """
    if not isinstance(model, LatentODE):
        raise TypeError(
            f"model_digest expects a LatentODE; got {type(model).__name__}."
        )
    header = model_header(model)
    graph = {k: header[k] for k in ("features", "T", "mu", "hyperparameters")}
    digest = hashlib.sha256(json.dumps(graph, sort_keys=True).encode())
    digest.update(serialise_leaves(model))
    return digest.hexdigest()


def save_model(path: str | os.PathLike, model: LatentODE) -> None:
    """Saves ``model`` as one file, atomically.

    The file holds a JSON header (format version, library version, feature names,
    normalisation, ``T``, ``mu``, learning-rate range, best run's learning-rate
    path, hyperparameters, training summary, leaf shapes) and the array leaves
    (equinox serialisation; never pickle), each with a SHA-256 checksum.

    Args:
        path: where to write (conventionally ``*.lode``).
        model: the model.

    Raises:
        TypeError: ``model`` is not a :class:`LatentODE`.
        FileNotFoundError: ``path``'s directory does not exist.
        IsADirectoryError: ``path`` is a directory, or ends in a path
            separator.
        OSError: the file cannot be written (a ``PermissionError`` for a
            directory that is not writable), naming ``path``, never the
            temporary file. An existing file at ``path`` is left as it was.

    Examples:
        >>> import jax, tempfile, os
        >>> model = LatentODE(T=20, key=jax.random.key(0))
        >>> path = os.path.join(tempfile.mkdtemp(), "m.lode")
        >>> save_model(path, model)
        >>> load_model(path).T
        20
    """
    if not isinstance(model, LatentODE):
        raise TypeError(f"save_model expects a LatentODE; got {type(model).__name__}.")
    header = model_header(model)
    header["training"] = _strict_json(header.get("training"))
    atomic_write_bytes(path, pack(header, serialise_leaves(model)))


def _strict_json(value: Any) -> Any:
    """``value`` with non-finite floats as None, so the training summary stays
    standard JSON (Python would write ``Infinity``, which strict parsers and
    ``jq`` refuse), e.g. a held-out error infinite at some evaluations."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The validated header of a model file (what ``optax-lode inspect`` prints).

    Checks the container (magic bytes, lengths, both checksums), the kind, the
    format version and the feature names, as :func:`load_model` does, but
    builds no model.

    Args:
        path: the model file.

    Returns:
        The JSON header as a dict: ``kind``, ``format_version``,
        ``library_version``, ``features``, ``T``, ``mu``, ``hyperparameters``,
        ``normalisation``, ``lr_range``, ``best_lr_path``, ``training`` (the
        training summary), ``leaves``, ``payload_bytes`` and
        ``payload_sha256``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is foreign, truncated or corrupt, of another
            format version, or the path cannot be read; the message says
            which.

    Examples:
        >>> import jax, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "m.lode")
        >>> save_model(path, LatentODE(T=20, key=jax.random.key(0)))
        >>> header = read_header(path)
        >>> header["kind"], header["T"], header["hyperparameters"]["solver"]
        ('optax-lode.LatentODE', 20, 'euler')
    """
    header, _ = _read(path)
    return header


def _read(path):
    source = repr(os.fspath(path))
    try:
        with open(path, "rb") as f:
            # The magic first: a wrong path to a large file is not read whole.
            data = f.read(len(MAGIC))
            if data == MAGIC:
                data += f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {source}.") from None
    except IsADirectoryError:
        raise ValueError(f"{source} is a directory, not a model file.") from None
    except OSError as err:  # a path through a file, too long, no permission
        raise ValueError(
            f"cannot read a model file at {source}: {err.strerror or err}."
        ) from None
    header, payload = unpack(data, source=source)
    if header.get("kind") != _KIND_MODEL:
        raise ValueError(
            f"{source} is an optax-lode file but not a model (kind "
            f"{header.get('kind')!r})."
        )
    version = header.get("format_version")
    # (True == 1: a bool is not a version.)
    if isinstance(version, bool) or version not in _READABLE_VERSIONS:
        newer = isinstance(version, int) and version > max(_READABLE_VERSIONS)
        fix = (
            "It was written by a newer optax-lode: upgrade optax-lode to read it."
            if newer
            else "Re-save it with a matching optax-lode version."
        )
        raise ValueError(
            f"{source} has model format version {version!r}; this optax-lode "
            f"({__version__}) reads versions {list(_READABLE_VERSIONS)}. {fix}"
        )
    if header.get("features") != list(FEATURES):
        raise ValueError(
            f"{source} models features {header.get('features')!r}; this optax-lode "
            f"expects {list(FEATURES)}."
        )
    return header, payload


def _header_int(fields: dict, name: str) -> int:
    """An integer field, as save_model writes it: ``2.7`` or ``"10"`` (a hand
    edit) is invalid rather than truncated or parsed."""
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def load_model(path: str | os.PathLike) -> LatentODE:
    """Loads a model saved by :func:`save_model`, validating everything.

    Args:
        path: the model file.

    Returns:
        The model, with exactly the saved weights.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is foreign, truncated or corrupt, or its header does
            not match its arrays, or the path cannot be read (a directory, a
            path through a file, a name too long, no permission, an I/O
            error); the message says which. A model is never returned with
            substitute (random) weights.

    Examples:
        >>> import jax, tempfile, os
        >>> model = LatentODE(T=20, key=jax.random.key(0), mu=4)
        >>> path = os.path.join(tempfile.mkdtemp(), "m.lode")
        >>> save_model(path, model.with_steps_per_tick(10))
        >>> loaded = load_model(path)
        >>> loaded.T, loaded.mu, loaded.steps_per_tick
        (20, 4, 10)
    """
    source = repr(os.fspath(path))
    header, payload = _read(path)
    version = header["format_version"]
    try:
        hp = header["hyperparameters"]
        norm = header["normalisation"]
        skeleton = LatentODE(
            T=_header_int(header, "T"),
            mu=_header_int(header, "mu"),
            key=jax.random.key(0),
            latent_size=_header_int(hp, "latent_size"),
            hidden_size=_header_int(hp, "hidden_size"),
            depth=_header_int(hp, "depth"),
            solver=hp["solver"],
            # Version 1 predates coarser steps: its models step once per tick.
            ticks_per_step=_header_int(hp, "ticks_per_step") if version >= 2 else 1,
            normalisation=Normalisation(norm["mean"], norm["std"]),
            lr_range=header["lr_range"],
            best_lr_path=header["best_lr_path"],
            training_summary=header.get("training", {}),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source} has an incomplete header: {err!r}.") from None
    except ValueError as err:  # a value the model rejects, e.g. ticks_per_step=0
        raise ValueError(f"{source} has an invalid header: {err}") from None
    expected = leaf_specs(skeleton)
    if header.get("leaves") != expected:
        got = header.get("leaves")
        diff = ""
        if isinstance(got, list) and len(got) == len(expected):
            pairs = [(g, e) for g, e in zip(got, expected, strict=True) if g != e]
            diff = f" First difference: the file has {pairs[0][0]!r}, the model "
            diff += f"{pairs[0][1]!r} ({len(pairs)} of {len(expected)} arrays differ)."
        raise ValueError(
            f"{source}: the header's array shapes and dtypes do not match a model "
            f"with its hyperparameters.{diff}"
        )
    model = deserialise_leaves(payload, skeleton, source=source)
    # The header repeats some arrays for humans; they must agree with the payload.
    for name, got in (
        ("normalisation.mean", model.normalisation.mean),
        ("normalisation.std", model.normalisation.std),
        ("lr_range", model.lr_range),
        ("best_lr_path", model.best_lr_path),
    ):
        want = skeleton
        for part in name.split("."):
            want = getattr(want, part)
        if not np.allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=0):
            raise ValueError(
                f"{source} is inconsistent: header and arrays differ on {name}."
            )
    return model
