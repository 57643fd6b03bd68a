"""``optax-lode demo``: the method end to end on built-in data.

:func:`run_demo` runs (or resumes from its cache) the paper's sweep of a task,
fits the LODE, trains LODE-scheduled runs and every baseline at its tuned
setting on the same seeds, and writes ``report.md`` with the figures.
"""

from optax_lode.demo._config import DemoConfig, default_config, fast_config
from optax_lode.demo._pipeline import DemoResult, MethodRuns, run_demo
from optax_lode.demo._report import predict_observed, write_report

__all__ = [
    "DemoConfig",
    "DemoResult",
    "MethodRuns",
    "default_config",
    "fast_config",
    "predict_observed",
    "run_demo",
    "write_report",
]
