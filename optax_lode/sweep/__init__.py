"""The sweep engine and single-run trainer.

- :func:`run_sweep`: a (schedule shape x peak lr x seed) grid of AdamW runs of
  a task, vmapped, chunked, sharded over devices and resumable, returned as
  :class:`optax_lode.Trajectories`.
- :func:`train_run` / :func:`train_runs`: one run (or many seeds) of a task
  with any optax transformation, e.g. ``lode_schedule`` or a baseline, on the
  same tick clock.
"""

from optax_lode.runs import ZERO_LOSS_FLOOR, ZeroLossWarning
from optax_lode.sweep._loop import TickRecord
from optax_lode.sweep._schedules import (
    PAPER_LRS,
    PAPER_SHAPES,
    SCHEDULE_SHAPES,
    make_schedule,
    sweep_optimizer,
)
from optax_lode.sweep._sweep import (
    DivergedSweepRunWarning,
    run_id,
    run_sweep,
    sweep_grid,
)
from optax_lode.sweep._train import RUNS_AXIS, RunResult, train_run, train_runs

__all__ = [
    "PAPER_LRS",
    "PAPER_SHAPES",
    "RUNS_AXIS",
    "SCHEDULE_SHAPES",
    "ZERO_LOSS_FLOOR",
    "DivergedSweepRunWarning",
    "RunResult",
    "TickRecord",
    "ZeroLossWarning",
    "make_schedule",
    "run_id",
    "run_sweep",
    "sweep_grid",
    "sweep_optimizer",
    "train_run",
    "train_runs",
]
