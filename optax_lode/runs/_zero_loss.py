"""A tick whose mean training loss is exactly 0: float32 underflow, floored.

float32 cross-entropy rounds an example's loss below about ``2**-24`` to 0, so
a tick where every example was fit that closely (a convnet at a high rate,
late in its run) records 0. The loss is modelled by its log, so 0 cannot be
kept; it is not divergence either, and dropping the run would drop the runs
that trained best. The sweep engine and the tracker import both record it as
:data:`ZERO_LOSS_FLOOR`, above the true value, with a :class:`ZeroLossWarning`.
"""

from __future__ import annotations

import warnings

import numpy as np

ZERO_LOSS_FLOOR = 2.0**-24
"""The training loss recorded for a tick whose mean loss was exactly 0; its
true loss is below this value.
"""


class ZeroLossWarning(UserWarning):
    """Some ticks' training loss underflowed to 0 and was recorded as
    :data:`ZERO_LOSS_FLOOR`."""


def floor_zero_losses(
    loss: np.ndarray, run_of: np.ndarray, *, stacklevel: int = 3
) -> np.ndarray:
    """``loss`` with every exact 0 replaced by :data:`ZERO_LOSS_FLOOR`, and a
    :class:`ZeroLossWarning` counting them (``run_of``: each entry's run, to
    count the runs)."""
    loss = np.asarray(loss, np.float64)
    zero = loss == 0.0
    if not zero.any():
        return loss
    runs = len(np.unique(np.broadcast_to(run_of, loss.shape)[zero]))
    warnings.warn(
        f"{int(zero.sum())} tick(s) of {runs} run(s) had a mean training loss "
        "of exactly 0 (float32 underflow: every example fit to within "
        f"rounding); recorded as {ZERO_LOSS_FLOOR:g} (2**-24), below which the "
        "true loss lies.",
        ZeroLossWarning,
        stacklevel=stacklevel,
    )
    return np.where(zero, ZERO_LOSS_FLOOR, loss)
