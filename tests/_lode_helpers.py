"""Shared pieces of the decision/transform tests: small models and a problem.

The models are real, untrained :class:`optax_lode.LatentODE` instances (random
weights), small so that compiling a training step with a decision is quick.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from optax_lode.model import LatentODE, Normalisation

# One run: T ticks of K steps; decisions every MU ticks.
T = 24
K = 2
MU = 4
TOTAL_STEPS = T * K


def small_model(seed: int = 0, T: int = T, **kwargs) -> LatentODE:
    """An untrained LatentODE whose learning-rate range is [1e-3, 1e-1]."""
    kwargs.setdefault("latent_size", 6)
    kwargs.setdefault("hidden_size", 8)
    kwargs.setdefault("depth", 1)
    lo, hi = 1e-3, 1e-1
    path = np.geomspace(hi / 2, lo * 2, T)  # a decaying "best run"
    return LatentODE(
        T=T,
        key=jax.random.key(seed),
        normalisation=Normalisation(
            mean=np.array([0.0, 0.5, np.log(1e-2)]), std=np.array([1.0, 0.2, 1.5])
        ),
        lr_range=np.array([lo, hi]),
        best_lr_path=path,
        **kwargs,
    )


def mlp_problem(key: int = 0, width: int = 16):
    """A tiny regression MLP: ``(params, loss_fn, (x, y))``."""
    k1, k2, k3, k4 = jax.random.split(jax.random.key(key), 4)
    x = jax.random.normal(k1, (64, 4))
    y = jnp.sin(x @ jax.random.normal(k2, (4, 1)))
    params = {
        "w1": 0.5 * jax.random.normal(k3, (4, width)),
        "b1": jnp.zeros((width,)),
        "w2": 0.5 * jax.random.normal(k4, (width, 1)),
        "b2": jnp.zeros((1,)),
    }

    def loss_fn(p, x, y):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    return params, loss_fn, (x, y)


def fake_metric(loss):
    """A validation metric that improves as the loss falls (higher is better)."""
    return 1.0 / (1.0 + loss)


class ScriptedModel(eqx.Module):
    """A stand-in with the LatentODE interface whose rollouts are known exactly.

    ``encode`` returns zeros, so member ``i``'s latent is
    ``sigma * latent_scale * eps_i``; ``decode`` maps latent ``z`` to straight
    lines in normalised units (identity normalisation: ``log loss``,
    ``metric``, ``log lr``):

    - loss(k)   = z[0] + z[1] * k
    - metric(k) = z[2] + z[3] * k
    - lr(k)     = z[4] + z[5] * k

    Used to check every step of Algorithm 1 against hand-computed values.
    """

    normalisation: Normalisation
    lr_range: jax.Array
    best_lr_path: jax.Array
    latent_scale: jax.Array
    T: int = eqx.field(static=True)
    mu: int = eqx.field(static=True)

    def __init__(self, T: int = 20, mu: int = 4, lr_range=(1e-3, 1e-1)):
        self.T, self.mu = T, mu
        self.normalisation = Normalisation(mean=np.zeros(3), std=np.ones(3))
        self.lr_range = jnp.asarray(lr_range, jnp.float32)
        self.best_lr_path = jnp.full((T,), 1e-2, jnp.float32)
        self.latent_scale = jnp.ones((6,), jnp.float32)

    def encode(self, window, mask=None):
        del mask
        return jnp.zeros((6,), jnp.float32) + 0.0 * jnp.sum(window)

    def decode(self, z, num_ticks):
        k = jnp.arange(num_ticks, dtype=jnp.float32)
        return jnp.stack([z[0] + z[1] * k, z[2] + z[3] * k, z[4] + z[5] * k], -1)
