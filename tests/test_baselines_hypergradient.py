"""Hypergradient descent (Baydin et al. 2017) against hand computations."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode.baselines import hd_adam, hd_sgd, scale_by_hypergradient


def _two_steps(tx, loss, params):
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params, value=loss(params))
        return optax.apply_updates(params, updates), state

    params1, state1 = step(params, state)
    params2, state2 = step(params1, state1)
    return params1, state1, params2, state2


def test_hd_sgd_two_steps_by_hand():
    # f(theta) = 1/2 (theta_1^2 + 3 theta_2^2), theta_0 = (1, 2),
    # alpha_0 = 0.1, beta = 0.01.
    # Step 1: g_1 = (1, 6), no previous step: alpha_1 = 0.1,
    #         theta_1 = (1, 2) - 0.1 (1, 6) = (0.9, 1.4).
    # Step 2: g_2 = (0.9, 4.2); g_2 . g_1 = 0.9 + 25.2 = 26.1,
    #         alpha_2 = 0.1 + 0.01 * 26.1 = 0.361,
    #         theta_2 = (0.9, 1.4) - 0.361 (0.9, 4.2) = (0.5751, -0.1162).
    def loss(p):
        return 0.5 * (p[0] ** 2 + 3.0 * p[1] ** 2)

    tx = hd_sgd(0.1, hyper_lr=0.01)
    p1, s1, p2, s2 = _two_steps(tx, loss, jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(p1, [0.9, 1.4], rtol=1e-6)
    np.testing.assert_allclose(optax.tree.get(s1, "learning_rate"), 0.1, rtol=1e-6)
    np.testing.assert_allclose(optax.tree.get(s2, "learning_rate"), 0.361, rtol=1e-6)
    np.testing.assert_allclose(s2.hypergradient, -26.1, rtol=1e-6)
    np.testing.assert_allclose(p2, [0.5751, -0.1162], rtol=1e-5)


def test_hd_adam_two_steps_by_hand():
    # f(theta) = theta_1^2 + theta_2^2, theta_0 = (1, -2), alpha_0 = 0.1,
    # beta = 0.01, Adam (0.9, 0.999, 1e-8).
    # Step 1: g_1 = (2, -4); bias-corrected m_hat = g_1, v_hat = g_1^2, so the
    #         Adam direction is sign(g_1) = (1, -1) (up to eps): u_1 = (-1, 1),
    #         alpha_1 = 0.1, theta_1 = (0.9, -1.9).
    # Step 2: g_2 = (1.8, -3.8); g_2 . u_1 = -1.8 - 3.8 = -5.6,
    #         alpha_2 = 0.1 + 0.01 * 5.6 = 0.156;
    #         m_2 = 0.9 * 0.1 g_1 + 0.1 g_2, v_2 = 0.999 * 0.001 g_1^2
    #         + 0.001 g_2^2, theta_2 = theta_1 - alpha_2 m_hat_2 /
    #         (sqrt(v_hat_2) + eps) = (0.744643..., -1.744259...).
    def loss(p):
        return jnp.sum(p**2)

    tx = hd_adam(0.1, hyper_lr=0.01)
    p1, _, p2, s2 = _two_steps(tx, loss, jnp.array([1.0, -2.0]))
    np.testing.assert_allclose(p1, [0.9, -1.9], rtol=1e-6)
    np.testing.assert_allclose(optax.tree.get(s2, "learning_rate"), 0.156, rtol=1e-5)
    g1, g2 = np.array([2.0, -4.0]), np.array([1.8, -3.8])
    m2 = 0.9 * 0.1 * g1 + 0.1 * g2
    v2 = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    step2 = (m2 / (1 - 0.9**2)) / (np.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(p2, np.array([0.9, -1.9]) - 0.156 * step2, rtol=1e-5)
    np.testing.assert_allclose(p2, [0.74464308, -1.74425972], rtol=1e-5)


def test_hd_adam_with_zero_hyper_lr_is_adamw():
    params = {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.3)}

    def loss(p):
        return jnp.sum(jnp.sin(p["w"]) * p["w"]) + p["b"] ** 2

    ours = hd_adam(0.05, hyper_lr=0.0, weight_decay=0.1)
    ref = optax.adamw(0.05, weight_decay=0.1)

    @jax.jit
    def five_steps(params):
        out = []
        for tx in (ours, ref):
            p, s = params, tx.init(params)
            for _ in range(5):
                u, s = tx.update(jax.grad(loss)(p), s, p)
                p = optax.apply_updates(p, u)
            out.append(p)
        return out

    p_ours, p_ref = five_steps(params)
    chex.assert_trees_all_close(p_ours, p_ref, rtol=1e-5, atol=1e-7)


def test_learning_rate_adapts_up_on_consistent_gradients_and_clips_at_zero():
    # Consistent gradients (a linear loss) raise the rate every step.
    tx = hd_sgd(0.01, hyper_lr=0.1)
    params = jnp.zeros(2)
    state = tx.init(params)
    lrs = []
    for _ in range(4):
        updates, state = tx.update(jnp.array([1.0, 1.0]), state, params)
        params = optax.apply_updates(params, updates)
        lrs.append(float(state.learning_rate))
    assert lrs[0] == pytest.approx(0.01) and np.all(np.diff(lrs) > 0)
    # Alternating gradients would push it below 0: clipped at 0 by default,
    # negative without the clip (Baydin et al.'s raw rule).
    for clip, expect_negative in ((0.0, False), (None, True)):
        tx = hd_sgd(0.01, hyper_lr=1.0, min_learning_rate=clip)
        state = tx.init(jnp.zeros(1))
        for g in (1.0, -1.0):
            _, state = tx.update(jnp.array([g]), state, jnp.zeros(1))
        assert (float(state.learning_rate) < 0) == expect_negative


def test_state_is_stable_under_jit_and_lr_readable():
    tx = scale_by_hypergradient(optax.trace(0.9), 0.1, 1e-3, weight_decay=1e-2)
    params = jnp.ones(4)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = 2 * params
        updates, state = tx.update(grads, state, params, value=1.0, val_metric=0.0)
        return optax.apply_updates(params, updates), state

    new_params, new_state = step(params, state)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert optax.tree.get(new_state, "learning_rate").dtype == jnp.float32
    # One compilation serves every later step.
    step(new_params, new_state)
    assert step._cache_size() == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="hyper_lr"):
        hd_sgd(0.1, hyper_lr=-1.0)
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        hd_sgd(0.1, nesterov=True)  # was plain SGD
    with pytest.raises(ValueError, match="learning_rate"):
        hd_adam(float("nan"))
    tx = hd_sgd(0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@given(
    theta=st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    curvature=st.lists(st.floats(0.1, 5.0), min_size=3, max_size=3),
    lr=st.floats(1e-3, 0.3),
    adam=st.booleans(),
)
def test_hypergradient_is_the_derivative_of_the_loss_wrt_the_last_rate(
    theta, curvature, lr, adam
):
    # The hypergradient at step 2 is d f(theta_0 + alpha u_1) / d alpha at
    # alpha = alpha_1: check it against autodiff of exactly that function.
    theta, curvature = jnp.array(theta), jnp.array(curvature)
    result = _hypergradient_check(theta, curvature, lr, adam)
    hypergrad, autodiff = (float(x) for x in result)
    assert hypergrad == pytest.approx(autodiff, rel=1e-4, abs=1e-5)


@functools.partial(jax.jit, static_argnums=3)
def _hypergradient_check(theta, curvature, lr, adam):
    def loss(p):
        return 0.5 * jnp.sum(curvature * p**2) + jnp.sum(jnp.sin(p))

    tx = (hd_adam if adam else hd_sgd)(0.1, hyper_lr=0.0)
    state = tx.init(theta)
    state = state._replace(learning_rate=jnp.asarray(lr, jnp.float32))
    updates, state = tx.update(jax.grad(loss)(theta), state, theta)
    theta1 = optax.apply_updates(theta, updates)
    u1 = state.direction
    _, state2 = tx.update(jax.grad(loss)(theta1), state, theta1)
    autodiff = jax.grad(lambda a: loss(theta + a * u1))(state.learning_rate)
    return state2.hypergradient, autodiff
