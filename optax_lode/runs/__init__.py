"""A sweep's runs on one tick grid: ``Trajectories`` and its readers and writers."""

from optax_lode.runs._trajectories import DivergedRunWarning, Trajectories

__all__ = ["DivergedRunWarning", "Trajectories"]
