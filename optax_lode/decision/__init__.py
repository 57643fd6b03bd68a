"""Algorithm 1: one learning-rate decision, pure and jittable (:func:`decide`),
and the same decision with every intermediate for study (:func:`explain`)."""

from optax_lode.decision._config import (
    ANCHORS,
    DECISION_REVISION,
    LR_RANGE_FACTOR,
    MATCH_RULES,
    STD_FLOOR,
    DecisionConfig,
)
from optax_lode.decision._decide import (
    Decision,
    Explanation,
    OutOfSweepWarning,
    decide,
    ensemble_noise,
    explain,
)

__all__ = [
    "ANCHORS",
    "DECISION_REVISION",
    "LR_RANGE_FACTOR",
    "MATCH_RULES",
    "STD_FLOOR",
    "Decision",
    "DecisionConfig",
    "Explanation",
    "OutOfSweepWarning",
    "decide",
    "ensemble_noise",
    "explain",
]
