"""A tiny deterministic task for sweep-engine tests: the records of every step
can be computed by hand."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True, eq=False)
class ToyTask:
    """Scalar ``w`` pulled towards a step-dependent target.

    ``train_loss = 0.5 (w - c_step)^2 + 0.1`` with ``c_step = 1 + (step % 3)``
    plus a per-run offset from the data key (so seeds differ); the metric is
    ``-(w - 2)^2`` (val) or ``-(w - 2.5)^2`` (test). ``init`` draws ``w`` from
    the key.
    """

    name: str = "toy"
    steps_per_epoch: int = 6
    default_epochs: int = 2
    weight_decay: float = 0.0
    nan_after: int | None = None  # simulate a divergence from this step on
    # From this step on the loss is `flat_value` (0.0: float32 underflow).
    flat_from: int | None = None
    flat_value: float = 0.0

    def init(self, key):
        import jax

        w = jax.random.uniform(key, (), minval=-1.0, maxval=0.0)
        return {"w": w}, ()

    def target(self, step, key):
        import jax

        offset = 0.1 * jax.random.uniform(key, ())
        return 1.0 + (step % 3).astype(jnp.float32) + offset

    def train_loss(self, params, state, step, key):
        c = self.target(step, key)
        loss = 0.5 * (params["w"] - c) ** 2 + 0.1
        if self.flat_from is not None:
            loss = jnp.where(step >= self.flat_from, self.flat_value, loss)
        if self.nan_after is not None:
            loss = jnp.where(step >= self.nan_after, jnp.nan, loss)
        return loss, state

    def metric(self, params, state, split):
        centre = {"val": 2.0, "test": 2.5}[split]
        return -((params["w"] - centre) ** 2)
