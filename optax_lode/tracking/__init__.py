"""Learn from runs already logged in an experiment tracker, and log back to one.

Import (MLflow, TensorBoard) aligns each run's logged series onto the tick grid
with :func:`align_to_ticks`; export writes a sweep's runs to MLflow; the
diagnostics logger records the scheduler's decisions from a training loop.

MLflow and TensorBoard are optional (the ``tracking`` extra: ``pip install -e
'.[tracking]'`` in a clone) and imported only inside the functions that use
them: importing this package does not import either.
"""

from optax_lode.tracking._align import RunAlignmentError, align_to_ticks
from optax_lode.tracking._diagnostics import LodeDiagnosticsLogger, lode_diagnostics
from optax_lode.tracking._load import load_runs
from optax_lode.tracking._mlflow import (
    from_mlflow,
    log_trajectories_to_mlflow,
    read_mlflow_records,
)
from optax_lode.tracking._tensorboard import (
    find_tensorboard_runs,
    from_tensorboard,
    read_tensorboard_records,
)

__all__ = [
    "LodeDiagnosticsLogger",
    "RunAlignmentError",
    "align_to_ticks",
    "find_tensorboard_runs",
    "from_mlflow",
    "from_tensorboard",
    "load_runs",
    "lode_diagnostics",
    "log_trajectories_to_mlflow",
    "read_mlflow_records",
    "read_tensorboard_records",
]
