"""``text-transformer``: next-byte prediction on the Python standard library.

The corpus is the source of a fixed list of standard-library modules, read in
that order from the running interpreter's ``stdlib`` directory: text that exists
on every machine with Python, no download. (It is deterministic for a given
Python version; the modules' text changes a little between versions.)
"""

from __future__ import annotations

import functools
import hashlib
import sysconfig
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from optax_lode.tasks._models import MiniGPT
from optax_lode.tasks._nnx_task import NNXTask, check_task_args

# Long-lived, pure-Python modules present in every CPython >= 3.11.
CORPUS_MODULES: tuple[str, ...] = (
    "abc",
    "bisect",
    "calendar",
    "colorsys",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "difflib",
    "enum",
    "fnmatch",
    "fractions",
    "functools",
    "glob",
    "heapq",
    "keyword",
    "numbers",
    "operator",
    "pprint",
    "queue",
    "random",
    "shlex",
    "statistics",
    "string",
    "textwrap",
    "timeit",
    "types",
    "uuid",
    "weakref",
)
VOCAB = 256  # bytes


@functools.cache
def text_corpus(corpus_bytes: int = 200_000) -> tuple[np.ndarray, str]:
    """The first ``corpus_bytes`` bytes of :data:`CORPUS_MODULES`' sources,
    concatenated, as ``uint8``; and the SHA-256 of those bytes (record it to
    compare runs across machines)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chunks, missing = [], []
    for name in CORPUS_MODULES:
        path = stdlib / f"{name}.py"
        if path.is_file():
            chunks.append(path.read_bytes())
        else:
            missing.append(name)
    if missing:
        raise FileNotFoundError(
            f"standard-library modules {missing} not found under {stdlib}; the "
            "text-transformer corpus needs the Python sources (install the "
            "python3 standard library sources, e.g. not a zipped stdlib)"
        )
    raw = b"".join(chunks)
    if len(raw) < corpus_bytes:
        raise ValueError(
            f"corpus_bytes={corpus_bytes} exceeds the {len(raw)} bytes available"
        )
    raw = raw[:corpus_bytes]
    return np.frombuffer(raw, dtype=np.uint8).copy(), hashlib.sha256(raw).hexdigest()


def _windows(tokens: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (input, next-byte target) windows of a token stream."""
    n = (len(tokens) - 1) // context
    x = tokens[: n * context].reshape(n, context)
    y = tokens[1 : n * context + 1].reshape(n, context)
    return x.astype(np.int32), y.astype(np.int32)


def text_transformer(
    *,
    corpus_bytes: int = 200_000,
    context: int = 64,
    batch_size: int = 32,
    dim: int = 64,
    heads: int = 4,
    layers: int = 2,
    dropout: float = 0.1,
    default_epochs: int = 3,
    weight_decay: float = 0.0,
) -> NNXTask:
    """``text-transformer``: a scaled-down miniGPT (paper A.1) predicting the
    next byte of Python source.

    The corpus is split in order into 90% train, 5% validation, 5% test.
    Training windows of ``context`` bytes start at uniformly random offsets
    (drawn from ``(key, step)``); an "epoch" is ``train_bytes // (batch_size *
    context)`` steps. The metric is next-byte accuracy over the non-overlapping
    windows of the validation (test) segment. Weight decay defaults to 0: the
    paper trains its transformer with Adam.
    """
    check_task_args(
        "text-transformer",
        ints={
            "corpus_bytes": corpus_bytes,
            "context": context,
            "batch_size": batch_size,
            "dim": dim,
            "heads": heads,
            "layers": layers,
            "default_epochs": default_epochs,
        },
        weight_decay=weight_decay,
        dropout=dropout,
    )
    if context < 2:
        raise ValueError("context must be >= 2")
    tokens, _ = text_corpus(corpus_bytes)
    n = len(tokens)
    a, b = int(0.9 * n), int(0.95 * n)
    train = jnp.asarray(tokens[:a].astype(np.int32))
    if a <= context + 1 or b - a <= context + 1:
        raise ValueError(
            f"corpus_bytes={corpus_bytes} is too small for context={context}"
        )
    if batch_size * context > a:
        raise ValueError(
            f"batch_size={batch_size} windows of context={context} bytes exceed the "
            f"{a} training bytes: an epoch would be shorter than one batch; "
            "lower batch_size or raise corpus_bytes"
        )
    steps = a // (batch_size * context)

    def batch(key: PRNGKeyArray, step: Int[Array, ""]) -> tuple[Array, Array]:
        starts = jax.random.randint(
            jax.random.fold_in(key, step), (batch_size,), 0, a - context - 1
        )
        idx = starts[:, None] + jnp.arange(context + 1)[None, :]
        w = train[idx]
        return w[:, :-1], w[:, 1:]

    evals = {
        "val": tuple(jnp.asarray(v) for v in _windows(tokens[a:b], context)),
        "test": tuple(jnp.asarray(v) for v in _windows(tokens[b:], context)),
    }
    return NNXTask(
        name="text-transformer",
        model_fn=lambda rngs: MiniGPT(
            VOCAB,
            context,
            dim=dim,
            heads=heads,
            layers=layers,
            dropout=dropout,
            rngs=rngs,
        ),
        batch_fn=batch,
        eval_sets=evals,
        steps_per_epoch=steps,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
        eval_batch_size=64,
    )
