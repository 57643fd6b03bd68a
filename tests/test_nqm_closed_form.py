"""The NQM task and its closed-form expected loss (optax_lode.tasks._nqm)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optax_lode.tasks._protocol import Task
from optax_lode.tasks.nqm import (
    NoisyQuadratic,
    best_constant_schedule,
    best_cosine_schedule,
    expected_loss,
    optimal_schedule,
)


def _monte_carlo(task, rates, momentum, num_runs, seed=0):
    """Mean final loss L(theta_T) of `num_runs` SGD runs driven by train_loss."""
    tx = optax.sgd(lambda count: rates[count], momentum=momentum or None)

    def one_run(key):
        init_key, data_key = jax.random.split(key)
        params, state = task.init(init_key)
        opt_state = tx.init(params)

        def step(carry, i):
            params, state, opt_state = carry
            grads, state = jax.grad(task.train_loss, has_aux=True)(
                params, state, i, data_key
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), state, opt_state), None

        (params, _, _), _ = jax.lax.scan(
            step, (params, state, opt_state), jnp.arange(rates.shape[0])
        )
        return task.loss(params)

    keys = jax.random.split(jax.random.key(seed), num_runs)
    return np.asarray(jax.jit(jax.vmap(one_run))(keys))


@pytest.mark.parametrize(
    "report, momentum",
    [
        ("exact", 0.9),
        pytest.param("minibatch", 0.0, marks=pytest.mark.slow),
        pytest.param("exact", 0.0, marks=pytest.mark.slow),
        pytest.param("minibatch", 0.9, marks=pytest.mark.slow),
    ],
)
def test_closed_form_matches_monte_carlo(report, momentum):
    # A small, strongly noisy problem where the noise term dominates the final
    # loss, under a non-monotone schedule (warm-up then decay).
    task = NoisyQuadratic(dim=8, batch_size=2, report=report)
    num_steps = 120
    sched = optax.cosine_onecycle_schedule(num_steps, 0.6 / (1 + 9 * momentum))
    rates = jax.vmap(sched)(jnp.arange(num_steps)).astype(jnp.float32)

    exact = float(expected_loss(rates, task=task, momentum=momentum))
    samples = _monte_carlo(task, rates, momentum, num_runs=4000)
    mean, sem = samples.mean(), samples.std(ddof=1) / np.sqrt(samples.size)
    # Stated tolerance: 4 standard errors of the Monte Carlo mean (a false
    # alarm has probability < 1e-4), and the standard error itself is below
    # 4% of the mean, so a 16% relative error would always be caught.
    assert sem < 0.04 * mean
    assert abs(mean - exact) < 4 * sem, (mean, sem, exact)


@pytest.mark.slow
def test_trajectory_matches_monte_carlo_mid_run():
    task = NoisyQuadratic(dim=6, batch_size=1)
    rates = jnp.full((40,), 0.3, jnp.float32)
    traj = np.asarray(expected_loss(rates, task=task, trajectory=True))
    assert traj.shape == (41,)
    # Before any step, E[L(theta_0)] = init_scale^2 * sum(h) / 2.
    np.testing.assert_allclose(traj[0], 0.5 * task.curvature.sum(), rtol=1e-6)
    samples = _monte_carlo(task, rates[:20], 0.0, num_runs=4000, seed=1)
    sem = samples.std(ddof=1) / np.sqrt(samples.size)
    assert abs(samples.mean() - traj[20]) < 4 * sem


def test_no_momentum_recurrence_by_hand():
    # One coordinate: E[theta^2] <- (1 - lr h)^2 E[theta^2] + lr^2 c / B.
    task = NoisyQuadratic(dim=1, batch_size=4, init_scale=2.0)
    h, q = 1.0, 1.0 / 4
    s = 4.0
    for lr in (0.5, 0.1):
        s = (1 - lr * h) ** 2 * s + lr**2 * q
    traj = expected_loss(jnp.array([0.5, 0.1]), task=task, trajectory=True)
    assert traj.shape == (3,)
    np.testing.assert_allclose(traj[0], 0.5 * h * 4.0, rtol=1e-6)
    np.testing.assert_allclose(traj[-1], 0.5 * h * s, rtol=1e-6)
    got = float(expected_loss(jnp.array([0.5, 0.1]), task=task))
    np.testing.assert_allclose(got, 0.5 * h * s, rtol=1e-6)


def test_callable_schedule_equals_array():
    task = NoisyQuadratic(dim=20)
    sched = optax.cosine_decay_schedule(0.8, 50)
    a = expected_loss(sched, task=task, num_steps=50)
    b = expected_loss(jax.vmap(sched)(jnp.arange(50)), task=task)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_optimal_schedule_beats_best_constant_and_cosine():
    task = NoisyQuadratic(dim=50)
    kw = dict(num_ticks=40, steps_per_tick=5)
    const = best_constant_schedule(task, **kw)
    cosine = best_cosine_schedule(task, **kw)
    best = optimal_schedule(task, num_iterations=100, **kw)
    assert best.tick_learning_rates.shape == (40,)
    assert best.step_learning_rates.shape == (200,)
    assert np.all(best.tick_learning_rates > 0)
    # Its reported loss is the closed form of its own schedule.
    np.testing.assert_allclose(
        best.expected_loss,
        float(expected_loss(best.step_learning_rates, task=task)),
        rtol=1e-5,
    )
    assert best.expected_loss < 0.95 * cosine.expected_loss < const.expected_loss
    # The optimum decays: the last ticks use far smaller rates than the first.
    assert (
        best.tick_learning_rates[-5:].mean() < 0.2 * best.tick_learning_rates[:5].mean()
    )


@pytest.mark.slow
def test_optimal_schedule_with_momentum_beats_constant():
    task = NoisyQuadratic(dim=30)
    kw = dict(num_ticks=20, steps_per_tick=5, momentum=0.5)
    const = best_constant_schedule(task, **kw)
    best = optimal_schedule(task, num_iterations=200, **kw)
    assert best.expected_loss < const.expected_loss


def test_task_protocol_and_loss_falls():
    task = NoisyQuadratic()
    assert isinstance(task, Task)
    assert task.name == "nqm"
    tx = optax.sgd(0.5)
    key = jax.random.key(1)

    @jax.jit
    def run(init_key):
        params, state = task.init(init_key)

        def step(carry, i):
            params, state, opt_state = carry
            (loss, state), grads = jax.value_and_grad(task.train_loss, has_aux=True)(
                params, state, i, key
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), state, opt_state), loss

        (params, state, _), losses = jax.lax.scan(
            step, (params, state, tx.init(params)), jnp.arange(200)
        )
        return params, state, losses

    params, state, losses = run(jax.random.key(0))
    losses = np.asarray(losses)
    val = float(task.metric(params, state, "val"))
    assert val == float(task.metric(params, state, "test"))
    np.testing.assert_allclose(val, -np.log(float(task.loss(params))), rtol=1e-5)


def test_gradient_is_curvature_times_theta_plus_noise():
    task = NoisyQuadratic(dim=5, report="minibatch")
    exact = NoisyQuadratic(dim=5)
    theta = jnp.arange(1.0, 6.0)
    key = jax.random.key(3)

    @jax.jit
    def grads_and_values(theta):
        def grad(t, step):
            return jax.grad(lambda p: t.train_loss(p, (), step, key)[0])(theta)

        return (
            grad(task, 7),
            grad(exact, 7),
            grad(exact, 8),
            exact.train_loss(theta, (), 7, key)[0],
            exact.loss(theta),
        )

    g1, g2, g3, value, loss = grads_and_values(theta)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)
    noise = g1 - task.curvature * theta
    assert np.all(np.abs(noise) > 0)
    # The exact report's value is the noise-free loss.
    np.testing.assert_allclose(value, loss, rtol=1e-6)
    # Same (key, step): same noise; another step: different noise.
    assert not np.allclose(g2, g3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 0}, "dim"),
        ({"batch_size": 0}, "batch_size"),
        ({"noise": "pink"}, "noise"),
        ({"report": "mean"}, "report"),
        ({"init_scale": -1.0}, "init_scale"),
        ({"batch_size": True}, "batch_size"),  # was a batch of 1, silently
        ({"steps_per_epoch": True}, "steps_per_epoch"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyQuadratic(**kwargs)


def test_bad_inputs_are_rejected():
    task = NoisyQuadratic(dim=4)
    with pytest.raises(ValueError, match="shape"):
        task.loss(jnp.zeros(3))
    with pytest.raises(ValueError, match="split"):
        task.metric(jnp.zeros(4), (), "train")
    with pytest.raises(ValueError, match="num_steps"):
        expected_loss(optax.constant_schedule(0.1), task=task)
    with pytest.raises(ValueError, match="1-d"):
        expected_loss(jnp.zeros((2, 3)), task=task)
    with pytest.raises(ValueError, match="momentum"):
        optimal_schedule(task, num_ticks=3, momentum=1.0)
    with pytest.raises(ValueError, match="init"):
        optimal_schedule(task, num_ticks=3, init=np.array([0.1, -1.0, 0.1]))
