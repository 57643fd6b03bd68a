"""One domain for the seeds of runs, fits and splits: whole numbers in [0, 2**32).

The same seed must mean the same run whether it goes to ``train_run``,
``train_runs`` or ``run_sweep``; and a seed that ``fit`` or
``Trajectories.split`` would truncate (``1.5``) or that JAX would wrap
(``-1`` as ``2**32 - 1``) is refused with one message, not an error from
inside NumPy. ``lode_schedule``'s seed too: past 32 bits ``jax.random.key``
keeps the low 32 bits without x64 and all 64 with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or a ``ValueError`` naming it."""
    try:
        whole = not isinstance(seed, bool) and int(seed) == seed
    except (TypeError, ValueError, OverflowError):  # "3", None, nan, inf
        whole = False
    if not whole or not 0 <= int(seed) < 2**32:
        raise ValueError(f"a seed must be a whole number in [0, 2**32); got {seed!r}")
    return int(seed)


def check_seeds(seeds: Iterable[Any]) -> tuple[int, ...]:
    """Every seed through :func:`check_seed`, as a tuple of ints."""
    return tuple(check_seed(s) for s in seeds)
