"""The parametric schedule shapes of the paper's sweeps (paper A.2), from optax.

Each shape maps ``(learning_rate, total_steps)`` to an optax schedule of the
step count. ``learning_rate`` is the *initial* rate of the decaying shapes and
the *peak* rate of the one-cycle shape, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType

import optax

__all__ = ["SCHEDULE_SHAPES", "parametric_schedule"]


def _constant(lr: float, total_steps: int) -> optax.Schedule:
    del total_steps
    return optax.constant_schedule(lr)


def _cosine(lr: float, total_steps: int) -> optax.Schedule:
    # Decays to 0 at total_steps; the last step (total_steps - 1) keeps a small
    # positive rate, so log(lr) stays finite in every tick record.
    return optax.cosine_decay_schedule(lr, total_steps, alpha=0.0)


def _onecycle(lr: float, total_steps: int) -> optax.Schedule:
    # optax's defaults (PyTorch's): 30% warm-up from lr/25, anneal to lr/25e4.
    return optax.cosine_onecycle_schedule(total_steps, lr)


def _exponential(lr: float, total_steps: int) -> optax.Schedule:
    # Smooth decay by a factor 100 over the run.
    return optax.exponential_decay(lr, transition_steps=total_steps, decay_rate=0.01)


def _step(lr: float, total_steps: int) -> optax.Schedule:
    # The classic step decay: x0.1 at 50% and again at 75% of the run.
    half, three_quarters = max(1, total_steps // 2), max(2, (3 * total_steps) // 4)
    return optax.piecewise_constant_schedule(lr, {half: 0.1, three_quarters: 0.1})


_SHAPES: dict[str, Callable[[float, int], optax.Schedule]] = {
    "constant": _constant,
    "cosine": _cosine,
    "onecycle": _onecycle,
    "exponential": _exponential,
    "step": _step,
}

#: Shape name -> ``factory(learning_rate, total_steps) -> optax.Schedule``.
SCHEDULE_SHAPES = MappingProxyType(_SHAPES)


def parametric_schedule(
    shape: str, learning_rate: float, total_steps: int
) -> optax.Schedule:
    """The optax schedule of a named parametric shape.

    Shapes (``learning_rate`` = ``eta``, ``total_steps`` = ``S``):

    - ``"constant"``: ``eta``.
    - ``"cosine"``: ``optax.cosine_decay_schedule(eta, S)``, from ``eta`` to 0.
    - ``"onecycle"``: ``optax.cosine_onecycle_schedule(S, eta)``: cosine
      warm-up from ``eta / 25`` to ``eta`` over 30% of the run, then cosine
      annealing to ``eta / 2.5e5``.
    - ``"exponential"``: ``optax.exponential_decay(eta, S, 0.01)``, ``eta *
      0.01^(t / S)``.
    - ``"step"``: ``eta``, ``eta / 10`` from ``S / 2``, ``eta / 100`` from
      ``3 S / 4``.

    Args:
        shape: one of ``SCHEDULE_SHAPES``.
        learning_rate: initial (peak for ``"onecycle"``) learning rate, > 0.
        total_steps: optimizer steps in the run, >= 1.

    Returns:
        An ``optax.Schedule``.

    Example:
        >>> from optax_lode.baselines import parametric_schedule
        >>> sched = parametric_schedule("step", 0.1, 100)
        >>> round(float(sched(60)), 6)
        0.01
    """
    try:
        factory = _SHAPES[shape]
    except KeyError:
        raise ValueError(
            f"unknown schedule shape {shape!r}; choose one of {sorted(_SHAPES)}."
        ) from None
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(
            f"learning_rate must be finite and > 0, got {learning_rate!r}."
        )
    if not (isinstance(total_steps, int) and total_steps >= 1):
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}.")
    return factory(float(learning_rate), total_steps)
