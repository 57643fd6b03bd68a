"""Evaluation of schedules: sharpness, statistics over seeds, reports and figures.

What the paper measures (Section 5, Appendix A.3), as library functions:

- :func:`hessian_max_eigenvalue`: sharpness, the largest Hessian eigenvalue by
  power iteration with Hessian-vector products (Table 2);
- :func:`summarize`, :func:`welch_test`, :func:`compare_methods`: mean ± std over
  seeds and Welch's t-test of LODE against the best baseline (Table 1);
- :func:`rank_test`: the Mann-Whitney U test, for values skewed over seeds
  (Table 2's sharpness);
- :func:`signed_rank_test`: Wilcoxon's signed-rank test, for rows measured on
  the same seeds (the NQM benchmark's settings against its default);
- :func:`holm`: Holm's adjustment of a family of p-values (an ablation's rows
  against its reference, Tables 3 and 4);
- ``plot_*``: the paper's figures as PNG files (Figures 2, 4 and the decision
  ensemble), drawn without pyplot.

scipy and matplotlib (the ``bench`` extra) are imported only when used.
"""

from optax_lode.evaluation._compare import Comparison, compare_methods
from optax_lode.evaluation._plots import (
    plot_decision_fan,
    plot_lr_schedules,
    plot_metric_curves,
    plot_reconstruction,
    plot_reconstruction_errors,
)
from optax_lode.evaluation._sharpness import (
    SharpnessResult,
    hessian_max_eigenvalue,
    hessian_vector_product,
)
from optax_lode.evaluation._stats import (
    RankResult,
    SignedRankResult,
    Summary,
    WelchResult,
    holm,
    rank_test,
    signed_rank_test,
    summarize,
    welch_test,
)

__all__ = [
    "Comparison",
    "RankResult",
    "SharpnessResult",
    "SignedRankResult",
    "Summary",
    "WelchResult",
    "compare_methods",
    "hessian_max_eigenvalue",
    "hessian_vector_product",
    "holm",
    "plot_decision_fan",
    "plot_lr_schedules",
    "plot_metric_curves",
    "plot_reconstruction",
    "plot_reconstruction_errors",
    "rank_test",
    "signed_rank_test",
    "summarize",
    "welch_test",
]
