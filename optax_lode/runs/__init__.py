"""A sweep's runs on one tick grid: ``Trajectories`` and its readers and writers.

Also a closed-form synthetic sweep (:func:`synthetic_sweep`) for tests and demos.
"""

from optax_lode.runs._synthetic import (
    SCHEDULES,
    schedule_path,
    simulate_curve,
    synthetic_sweep,
)
from optax_lode.runs._trajectories import DivergedRunWarning, Trajectories
from optax_lode.runs._zero_loss import ZERO_LOSS_FLOOR, ZeroLossWarning

__all__ = [
    "SCHEDULES",
    "ZERO_LOSS_FLOOR",
    "DivergedRunWarning",
    "Trajectories",
    "ZeroLossWarning",
    "schedule_path",
    "simulate_curve",
    "synthetic_sweep",
]
