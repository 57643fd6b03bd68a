"""The library's traced code under JAX's default numerics, whatever the user's
global configuration says.

- ``jax_numpy_dtype_promotion``: the code mixes int32 tick counters with
  float32 values and Python floats, as standard promotion allows; a user's
  ``"strict"`` would refuse it.
- ``jax_threefry_partitionable``: off, threefry draws other random bits from
  the same key, so the same seed would give other weights, batches and
  ensembles (JAX's default has been on since 0.5).

Set around the tracing of each entry point (a context, not a global setting),
they leave every result bit for bit what the default configuration gives.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jax

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def default_numerics() -> Iterator[None]:
    """Standard dtype promotion and partitionable threefry, for this block."""
    with jax.numpy_dtype_promotion("standard"), jax.threefry_partitionable(True):
        yield


def jax_defaults(fn: F) -> F:
    """``fn`` traced (or run) under :func:`default_numerics`."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with default_numerics():
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
