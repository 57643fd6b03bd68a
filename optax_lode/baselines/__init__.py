"""The rivals of the LODE schedule, as optax transformations.

Every baseline is built by :func:`make_baseline` and updated uniformly as
``tx.update(grads, state, params, value=loss, val_metric=acc)``; its effective
learning rate is ``optax.tree.get(state, "learning_rate")`` and its model is
evaluated at :func:`eval_params`. :func:`tune` applies the paper's tuning
protocol (A.2). The RL controller of Xu et al. (2019) is out of scope for now.

Registered baselines (``BASELINES``):

- parametric AdamW schedules: ``constant``, ``cosine``, ``onecycle``,
  ``exponential``, ``step`` (:func:`adamw_with_schedule`);
- hypergradient descent: ``hd-sgd``, ``hd-adam`` (:func:`hd_sgd`,
  :func:`hd_adam`, written here: optax has none);
- ``schedule-free`` AdamW, ``reduce-on-plateau`` (optax.contrib);
- learning-rate-free: ``prodigy``, ``dog`` (optax.contrib).
"""

from optax_lode.baselines._hypergradient import (
    HypergradientState,
    hd_adam,
    hd_sgd,
    scale_by_hypergradient,
)
from optax_lode.baselines._parametric import SCHEDULE_SHAPES, parametric_schedule
from optax_lode.baselines._registry import (
    BASELINES,
    MULTIPLIER_LEARNING_RATES,
    PAPER_LEARNING_RATES,
    Baseline,
    BaselineState,
    adamw_with_schedule,
    eval_params,
    make_baseline,
)
from optax_lode.baselines._tuning import (
    SeedRun,
    TrainRun,
    TuneResult,
    final_val_metric,
    tune,
    tune_all,
)

__all__ = [
    "BASELINES",
    "MULTIPLIER_LEARNING_RATES",
    "PAPER_LEARNING_RATES",
    "SCHEDULE_SHAPES",
    "Baseline",
    "BaselineState",
    "HypergradientState",
    "SeedRun",
    "TrainRun",
    "TuneResult",
    "adamw_with_schedule",
    "eval_params",
    "final_val_metric",
    "hd_adam",
    "hd_sgd",
    "make_baseline",
    "parametric_schedule",
    "scale_by_hypergradient",
    "tune",
    "tune_all",
]
