"""Training tasks behind one small protocol (:class:`Task`).

``get_task(name, **kwargs)`` builds a registered task; ``TASKS`` lists them.
Every task is a pure function of its seeds (data on device, minibatches drawn
inside the traced step), so the sweep engine can ``jit`` and ``vmap`` it over
runs.
"""

from optax_lode.tasks._protocol import (
    DataNotPreparedError,
    Task,
    check_task,
    metric_name,
)
from optax_lode.tasks._registry import TASKS, get_task

__all__ = [
    "TASKS",
    "DataNotPreparedError",
    "Task",
    "check_task",
    "get_task",
    "metric_name",
]
