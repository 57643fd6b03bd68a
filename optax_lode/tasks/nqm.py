"""The noisy quadratic model: a task with a known best learning-rate schedule.

:class:`NoisyQuadratic` implements the :class:`~optax_lode.tasks.Task`
protocol (registered as ``"nqm"``); :func:`expected_loss` is the exact expected
loss of SGD under any schedule, and :func:`optimal_schedule` minimises it.
"""

from optax_lode.tasks._nqm import (
    NoisyQuadratic,
    NQMSchedule,
    best_constant_schedule,
    best_cosine_schedule,
    expected_loss,
    optimal_schedule,
)

__all__ = [
    "NQMSchedule",
    "NoisyQuadratic",
    "best_constant_schedule",
    "best_cosine_schedule",
    "expected_loss",
    "optimal_schedule",
]
