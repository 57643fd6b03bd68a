"""The parametric schedule shapes of the paper's sweeps (paper A.2), from optax.

Each shape maps ``(learning_rate, total_steps)`` to an optax schedule of the
step count. ``learning_rate`` is the *initial* rate of the decaying shapes and
the *peak* rate of the one-cycle shape, as in the paper. The shapes are the
sweep engine's (:func:`optax_lode.sweep.make_schedule`), validated here.
"""

from __future__ import annotations

import math
import numbers

import optax

from optax_lode.sweep import SCHEDULE_SHAPES, make_schedule

__all__ = ["SCHEDULE_SHAPES", "parametric_schedule"]


def parametric_schedule(
    shape: str, learning_rate: float, total_steps: int
) -> optax.Schedule:
    """The optax schedule of a named parametric shape.

    Shapes (``learning_rate`` = ``eta``, ``total_steps`` = ``S``):

    - ``"constant"``: ``eta``.
    - ``"cosine"``: ``optax.cosine_decay_schedule(eta, S)``, from ``eta`` to 0.
    - ``"onecycle"``: ``optax.cosine_onecycle_schedule(S, eta)``: cosine
      warm-up from ``eta / 25`` to ``eta`` over 30% of the run, then cosine
      annealing to ``eta / 2.5e5`` (the warm-up's steps round down: a run
      under 4 steps has none and starts at ``eta``).
    - ``"exponential"``: ``optax.exponential_decay(eta, S, 0.01)``, ``eta *
      0.01^(t / S)``.
    - ``"step"``: ``eta``, ``eta / 10`` from ``S / 2``, ``eta / 100`` from
      ``3 S / 4``.

    Args:
        shape: one of ``SCHEDULE_SHAPES``.
        learning_rate: initial (peak for ``"onecycle"``) learning rate, > 0.
        total_steps: optimizer steps in the run, >= 1.

    Returns:
        An ``optax.Schedule``: a function of the step count.

    Raises:
        ValueError: an unknown ``shape``, a ``learning_rate`` that is not
            finite and > 0, or a ``total_steps`` that is not an integer >= 1
            (numpy integers are accepted, a bool is not).

    Examples:
        >>> from optax_lode.baselines import parametric_schedule
        >>> sched = parametric_schedule("step", 0.1, 100)
        >>> round(float(sched(60)), 6)
        0.01
    """
    if shape not in SCHEDULE_SHAPES:
        raise ValueError(
            f"unknown schedule shape {shape!r}; choose one of {list(SCHEDULE_SHAPES)}."
        )
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(
            f"learning_rate must be finite and > 0, got {learning_rate!r}."
        )
    # numpy's integers too (np.int64(100) was refused as "not an int >= 1").
    if isinstance(total_steps, numbers.Integral) and not isinstance(total_steps, bool):
        total_steps = int(total_steps)
    ok = isinstance(total_steps, int) and not isinstance(total_steps, bool)
    if not (ok and total_steps >= 1):
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}.")
    # One definition of the shapes: the sweep's, so a baseline run and a sweep
    # run of the same shape and rate follow the same schedule.
    return make_schedule(shape, float(learning_rate), total_steps)
