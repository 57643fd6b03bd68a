"""Hypergradient descent (Baydin et al. 2017) as an optax transformation.

optax has no hypergradient descent, so it is written here. The learning rate
``alpha`` is itself updated by gradient descent on the loss: if the step is
``theta_t = theta_{t-1} + alpha_t u_t`` with ``u_t`` the base optimizer's
direction at unit learning rate (``-g`` for SGD, ``-m_hat / (sqrt(v_hat) +
eps)`` for Adam), then ``d f(theta_{t-1}) / d alpha = g_t . u_{t-1}`` and

.. math::

    \\alpha_t = \\alpha_{t-1} - \\beta\\, g_t \\cdot u_{t-1},

with ``beta`` the hypergradient learning rate and ``u_0 = 0`` (the first step
keeps the initial rate).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

__all__ = ["HypergradientState", "hd_adam", "hd_sgd", "scale_by_hypergradient"]


class HypergradientState(NamedTuple):
    """State of :func:`scale_by_hypergradient`.

    Attributes:
        count: updates done.
        learning_rate: ``alpha_t``, the learning rate of the latest update (the
            initial rate before any); ``optax.tree.get(state, "learning_rate")``.
        hypergradient: the latest ``g_t . u_{t-1}`` (``d loss / d alpha``).
        direction: ``u_{t-1}``, the previous update per unit learning rate.
        inner_state: the base direction's state.
    """

    count: Int[Array, ""]
    learning_rate: Float[Array, ""]
    hypergradient: Float[Array, ""]
    direction: optax.Updates
    inner_state: optax.OptState


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"hypergradient descent: {name} must be {bound}, got {value!r}."
        )


def scale_by_hypergradient(
    direction: optax.GradientTransformation,
    learning_rate: float,
    hyper_lr: float,
    *,
    weight_decay: float = 0.0,
    min_learning_rate: float | None = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Hypergradient descent on the learning rate of any base direction.

    The update is ``alpha_t * u_t`` with ``u_t = -(d_t + weight_decay *
    theta)``, ``d_t`` being ``direction``'s output (the descent direction at
    unit learning rate, e.g. ``optax.identity()`` for SGD or
    ``optax.scale_by_adam()``); the decay is decoupled (AdamW style) and, being
    part of the step, is part of ``u_t`` in the hypergradient.

    Args:
        direction: the base optimizer without its learning rate.
        learning_rate: the initial learning rate ``alpha_0``.
        hyper_lr: the hypergradient learning rate ``beta``.
        weight_decay: decoupled weight decay (needs ``params`` in ``update``).
        min_learning_rate: the rate is clipped from below to this value (a
            negative rate would ascend the loss). Baydin et al. do not clip:
            pass ``None`` for the unclipped rule.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` (extra arguments
        such as ``value=`` are accepted and ignored). The learning rate is
        ``optax.tree.get(state, "learning_rate")``.

    Raises:
        ValueError: ``learning_rate``, ``hyper_lr``, ``weight_decay`` or
            ``min_learning_rate`` is not finite and >= 0, or
            ``min_learning_rate`` exceeds ``learning_rate``. The returned
            transformation's ``update`` raises it too when
            ``weight_decay > 0`` and no ``params`` are passed.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from optax_lode.baselines import scale_by_hypergradient
        >>> tx = scale_by_hypergradient(optax.identity(), 0.1, 1e-3)
        >>> state = tx.init(jnp.ones(3))
        >>> updates, state = tx.update(jnp.ones(3), state, jnp.ones(3))
        >>> bool(jnp.allclose(updates, -0.1))  # the first step keeps alpha_0
        True

    References:
        Baydin, Cornish, Martinez Rubio, Schmidt, Wood, `Online Learning Rate
        Adaptation with Hypergradient Descent
        <https://arxiv.org/abs/1703.04782>`_, ICLR 2018.
    """
    _check_positive("learning_rate", learning_rate, allow_zero=True)
    _check_positive("hyper_lr", hyper_lr, allow_zero=True)
    _check_positive("weight_decay", weight_decay, allow_zero=True)
    if min_learning_rate is not None:
        _check_positive("min_learning_rate", min_learning_rate, allow_zero=True)
        if min_learning_rate > learning_rate:
            # The clip would set the first step's rate, not alpha_0.
            raise ValueError(
                f"hypergradient descent: min_learning_rate={min_learning_rate!r} "
                f"is above the initial learning_rate={learning_rate!r}; the "
                "floor must not exceed the rate it starts from."
            )
    direction = optax.with_extra_args_support(direction)

    def init_fn(params: optax.Params) -> HypergradientState:
        return HypergradientState(
            count=jnp.zeros((), jnp.int32),
            learning_rate=jnp.asarray(learning_rate, jnp.float32),
            hypergradient=jnp.zeros((), jnp.float32),
            direction=optax.tree.zeros_like(params),
            inner_state=direction.init(params),
        )

    def update_fn(
        updates: optax.Updates,
        state: HypergradientState,
        params: optax.Params | None = None,
        **extra_args,
    ) -> tuple[optax.Updates, HypergradientState]:
        del extra_args
        if weight_decay and params is None:
            raise ValueError(
                "hypergradient descent with weight_decay > 0 needs params: call "
                "tx.update(grads, state, params)."
            )
        grads = updates
        hypergrad = jnp.asarray(optax.tree.vdot(grads, state.direction), jnp.float32)
        lr = state.learning_rate - hyper_lr * hypergrad
        if min_learning_rate is not None:
            lr = jnp.maximum(lr, min_learning_rate)
        descent, inner_state = direction.update(grads, state.inner_state, params)
        if weight_decay:
            descent = jax.tree.map(lambda d, p: d + weight_decay * p, descent, params)
        unit = jax.tree.map(jnp.negative, descent)
        new_updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), unit)
        new_state = HypergradientState(
            count=optax.safe_increment(state.count),
            learning_rate=lr.astype(jnp.float32),
            hypergradient=hypergrad,
            direction=unit,
            inner_state=inner_state,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def hd_sgd(
    learning_rate: float,
    hyper_lr: float = 1e-3,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    min_learning_rate: float | None = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """SGD-HD: SGD (optionally with momentum, SGDN-HD) with hypergradient descent.

    Without momentum ``alpha_t = alpha_{t-1} + beta g_t . g_{t-1}`` and
    ``theta_t = theta_{t-1} - alpha_t g_t``.

    Args:
        learning_rate: initial learning rate ``alpha_0``.
        hyper_lr: hypergradient learning rate ``beta`` (Baydin et al.: 1e-3).
        momentum: heavy-ball coefficient (``optax.trace``); 0 for plain SGD.
        nesterov: Nesterov momentum.
        weight_decay: decoupled weight decay.
        min_learning_rate: lower clip of the rate; ``None`` for none.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs`; its state is a
        :class:`HypergradientState`.

    Raises:
        ValueError: ``momentum`` not in [0, 1), ``nesterov=True`` without
            ``momentum``, or as :func:`scale_by_hypergradient`.

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from optax_lode.baselines import hd_sgd
        >>> tx = hd_sgd(0.1, hyper_lr=1e-3)
        >>> params = jnp.array([1.0, 2.0])
        >>> state = tx.init(params)
        >>> grads = jax.grad(lambda p: jnp.sum(p**2))(params)
        >>> updates, state = tx.update(grads, state, params)
        >>> round(float(optax.tree.get(state, "learning_rate")), 6)
        0.1

    References:
        Baydin et al., `Online Learning Rate Adaptation with Hypergradient
        Descent <https://arxiv.org/abs/1703.04782>`_, ICLR 2018, Algorithm 1.
    """
    if not (math.isfinite(momentum) and 0.0 <= momentum < 1.0):
        raise ValueError(
            f"hypergradient descent: momentum must be in [0, 1), got {momentum!r}."
        )
    if nesterov and not momentum:  # plain SGD, silently
        raise ValueError("nesterov=True needs momentum > 0 (its momentum term).")
    base = (
        optax.trace(decay=momentum, nesterov=nesterov) if momentum else optax.identity()
    )
    return scale_by_hypergradient(
        base,
        learning_rate,
        hyper_lr,
        weight_decay=weight_decay,
        min_learning_rate=min_learning_rate,
    )


def hd_adam(
    learning_rate: float,
    hyper_lr: float = 1e-7,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    min_learning_rate: float | None = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Adam-HD: Adam (AdamW with ``weight_decay``) with hypergradient descent.

    ``alpha_t = alpha_{t-1} + beta g_t . m_hat_{t-1} / (sqrt(v_hat_{t-1}) +
    eps)``, then the Adam step with rate ``alpha_t``.

    Args:
        learning_rate: initial learning rate ``alpha_0``.
        hyper_lr: hypergradient learning rate ``beta`` (Baydin et al.: 1e-7 at
            ``alpha_0 = 1e-3``; it is not scale-free: tune it with the rate).
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        eps: Adam's epsilon.
        weight_decay: decoupled weight decay (AdamW).
        min_learning_rate: lower clip of the rate; ``None`` for none.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs`; its state is a
        :class:`HypergradientState`.

    Raises:
        ValueError: as :func:`scale_by_hypergradient`.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from optax_lode.baselines import hd_adam
        >>> tx = hd_adam(1e-3)
        >>> state = tx.init(jnp.zeros(3))
        >>> round(float(optax.tree.get(state, "learning_rate")), 6)
        0.001

    References:
        Baydin et al., `Online Learning Rate Adaptation with Hypergradient
        Descent <https://arxiv.org/abs/1703.04782>`_, ICLR 2018, Algorithm 3.
    """
    return scale_by_hypergradient(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        learning_rate,
        hyper_lr,
        weight_decay=weight_decay,
        min_learning_rate=min_learning_rate,
    )
