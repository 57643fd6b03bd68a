"""The library's traced code under JAX's standard dtype promotion, whatever the
user's ``jax_numpy_dtype_promotion`` says.

The code mixes int32 tick counters with float32 values and Python floats, as
standard promotion allows; a user's ``"strict"`` would refuse it. Set around
the tracing of each entry point (a context, not a global setting), it leaves
every result bit for bit what the default setting gives.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax

F = TypeVar("F", bound=Callable[..., Any])


def standard_promotion(fn: F) -> F:
    """``fn`` traced (or run) under ``jax.numpy_dtype_promotion("standard")``."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
