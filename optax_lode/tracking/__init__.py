"""Learn from runs already logged in an experiment tracker, and log back to one."""

from optax_lode.tracking._align import RunAlignmentError, align_to_ticks

__all__ = ["RunAlignmentError", "align_to_ticks"]
