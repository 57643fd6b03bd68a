"""The Optax gradient transformation :func:`lode_schedule` and its state."""

from optax_lode.transform._schedule import LodeState, lode_schedule

__all__ = ["LodeState", "lode_schedule"]
