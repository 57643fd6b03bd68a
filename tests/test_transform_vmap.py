"""Several LODE-scheduled runs as one vmapped program (``axis_name``)."""

from __future__ import annotations

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _lode_helpers import MU, TOTAL_STEPS, K, fake_metric, mlp_problem, small_model
from hypothesis import given, settings
from test_transform_compile import _primitives

from optax_lode.transform import lode_schedule

RUNS = 3


def _tx(axis_name=None):
    lode = lode_schedule(
        small_model(2),
        total_steps=TOTAL_STEPS,
        steps_per_tick=K,
        mu=MU,
        axis_name=axis_name,
    )
    return optax.chain(optax.adamw(1.0, weight_decay=1e-3), lode)


def _step_fn(tx, loss_fn, x, y):
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(
            grads, opt_state, params, value=loss, val_metric=fake_metric(loss)
        )
        return optax.apply_updates(params, updates), opt_state

    return step


def _steps(step, num):
    """``num`` steps as one scan, returning the rate of each step."""

    def run(params, opt_state):
        def body(carry, _):
            carry = step(*carry)
            return carry, carry[1][1].learning_rate

        (params, opt_state), lrs = jax.lax.scan(
            body, (params, opt_state), None, length=num
        )
        return params, opt_state, lrs

    return run


def _problem():
    params, loss_fn, (x, y) = mlp_problem(1)
    # Runs differ by their initial parameters (so by their losses and rates).
    keys = jax.random.split(jax.random.key(7), RUNS)
    stacked = jax.vmap(
        lambda k: jax.tree.map(
            lambda p: p + 0.3 * jax.random.normal(k, p.shape), params
        )
    )(keys)
    return stacked, loss_fn, x, y


def _alone(stacked, loss_fn, x, y, steps, start_steps=None):
    """Each run trained alone (no vmap, no axis_name): its rates per step."""
    tx = _tx()
    step = _step_fn(tx, loss_fn, x, y)
    out = []
    for r in range(RUNS):
        params = jax.tree.map(lambda p, r=r: p[r], stacked)
        opt_state = tx.init(params)
        skip = 0 if start_steps is None else start_steps[r]
        if skip:
            params, opt_state, _ = jax.jit(_steps(step, skip))(params, opt_state)
        out.append(np.asarray(jax.jit(_steps(step, steps))(params, opt_state)[2]))
    return np.stack(out)


@pytest.mark.slow  # 4 runs alone and vmapped: ~15 s
def test_vmapped_runs_get_the_rates_each_gets_alone_and_keep_the_cond():
    stacked, loss_fn, x, y = _problem()
    tx = _tx("runs")
    step = _step_fn(tx, loss_fn, x, y)
    run = jax.vmap(_steps(step, TOTAL_STEPS), axis_name="runs")
    opt_state = jax.vmap(tx.init)(stacked)
    _, final, lrs = jax.jit(run)(stacked, opt_state)
    lode_state = final[1]
    assert np.all(np.asarray(lode_state.decisions) == (TOTAL_STEPS // K - 1) // MU)
    # Decisions were made (the rates left the warm start) and differ by run.
    lrs = np.asarray(lrs)
    assert not np.allclose(lrs[0], lrs[1])
    np.testing.assert_allclose(
        lrs, _alone(stacked, loss_fn, x, y, TOTAL_STEPS), rtol=2e-5
    )

    # The point of axis_name: the decision stays behind a cond. Without it the
    # vmapped predicate turns the cond into a select (a decision every step).
    def vmapped_jaxpr(tx):
        s = jax.vmap(_step_fn(tx, loss_fn, x, y), axis_name="runs")
        return jax.make_jaxpr(s)(stacked, jax.vmap(tx.init)(stacked)).jaxpr

    assert "cond" in _primitives(vmapped_jaxpr(tx))
    assert "cond" not in _primitives(vmapped_jaxpr(_tx()))


@pytest.mark.slow  # 4 runs alone and vmapped: ~20 s
def test_runs_out_of_step_decide_at_their_own_ticks():
    # Run r starts 3 r ticks late: the runs' decision ticks never coincide, so
    # every decision is taken by one run while the others hold.
    stacked, loss_fn, x, y = _problem()
    start = [3 * K * r for r in range(RUNS)]
    steps = TOTAL_STEPS - max(start)
    tx = _tx("runs")
    step = _step_fn(tx, loss_fn, x, y)
    params, states = [], []
    for r in range(RUNS):
        p = jax.tree.map(lambda a, r=r: a[r], stacked)
        s = tx.init(p)
        if start[r]:
            p, s, _ = jax.jit(_steps(_step_fn(_tx(), loss_fn, x, y), start[r]))(p, s)
        params.append(p)
        states.append(s)
    params, states = (
        jax.tree.map(lambda *a: jnp.stack(a), *t) for t in (params, states)
    )
    run = jax.vmap(_steps(step, steps), axis_name="runs")
    lrs = np.asarray(jax.jit(run)(params, states)[2])
    np.testing.assert_allclose(
        lrs, _alone(stacked, loss_fn, x, y, steps, start_steps=start), rtol=2e-5
    )


def test_axis_name_outside_its_vmap_says_what_to_do():
    params, loss_fn, (x, y) = mlp_problem(1)
    tx = _tx("runs")
    step = jax.jit(_step_fn(tx, loss_fn, x, y))
    with pytest.raises(ValueError, match=r"only inside jax.vmap\(\.\.\., axis_name="):
        step(params, tx.init(params))
    with pytest.raises(TypeError, match="axis_name must be a vmap axis name"):
        lode_schedule(small_model(2), total_steps=TOTAL_STEPS, axis_name=["runs"])


@pytest.mark.parametrize("runs", [RUNS, MU])
def test_a_stacked_state_outside_its_vmap_says_so(runs):
    """A state from jax.vmap(tx.init) passed to an update that is not vmapped:
    its leading axis used to be read as a window of `runs` ticks ("another
    lode_schedule", even when runs == mu)."""
    params = jax.tree.map(lambda p: jnp.stack([p] * runs), mlp_problem(1)[0])
    # The bare schedule: adamw's own stacked count would fail first.
    tx = lode_schedule(small_model(2), total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU)
    states = jax.vmap(tx.init)(params)

    def update(grads, state, loss, metric):
        return tx.update(grads, state, params, value=loss, val_metric=metric)

    for fn in (update, jax.jit(update)):
        with pytest.raises(ValueError) as err:
            fn(params, states, 1.0, 0.5)
        message = str(err.value)
        assert f"leading axes ({runs},)" in message
        assert "stacked over runs" in message and "same jax.vmap" in message
        assert "another lode_schedule" not in message
    # Under its vmap: fine.
    losses, metrics = jnp.ones(runs), jnp.full(runs, 0.5)
    jax.jit(jax.vmap(update))(params, states, losses, metrics)


@pytest.mark.slow  # three vmapped compiles: ~15 s
def test_nested_vmaps_keep_the_cond_when_every_axis_is_named():
    """Groups of runs (vmap inside vmap): naming only the inner axis leaves the
    predicate batched over the outer one (a select again, still correct);
    naming both keeps the cond."""
    stacked, loss_fn, x, y = _problem()
    groups = jax.tree.map(lambda a: jnp.stack([a, a * 1.1]), stacked)

    def jaxpr_and_rates(axis_name):
        tx = _tx(axis_name)
        run = _steps(_step_fn(tx, loss_fn, x, y), TOTAL_STEPS)
        nested = jax.vmap(jax.vmap(run, axis_name="runs"), axis_name="groups")
        state = jax.vmap(jax.vmap(tx.init))(groups)
        jaxpr = jax.make_jaxpr(nested)(groups, state).jaxpr
        return _primitives(jaxpr), np.asarray(jax.jit(nested)(groups, state)[2])

    both, lrs = jaxpr_and_rates(("groups", "runs"))
    inner, lrs_inner = jaxpr_and_rates("runs")
    assert "cond" in both and "cond" not in inner
    np.testing.assert_allclose(lrs, lrs_inner, rtol=2e-5)
    alone = _alone(stacked, loss_fn, x, y, TOTAL_STEPS)
    np.testing.assert_allclose(lrs[0], alone, rtol=2e-5)


_SCRIPTED_STEPS = TOTAL_STEPS


@functools.cache
def _scripted():
    """The schedule alone fed scripted losses: one jitted step, and one jitted
    run of ``_SCRIPTED_STEPS`` steps alone and vmapped (axis_name)."""
    alone, named = (
        lode_schedule(
            small_model(2),
            total_steps=TOTAL_STEPS,
            steps_per_tick=K,
            mu=MU,
            axis_name=a,
        )
        for a in (None, "runs")
    )
    u = {"w": jnp.ones(2)}

    def run(tx):
        def f(state, values, metrics):
            def body(s, vm):
                _, s = tx.update(u, s, value=vm[0], val_metric=vm[1])
                return s, s.learning_rate

            return jax.lax.scan(body, state, (values, metrics))

        return f

    step = jax.jit(lambda s, v, m: alone.update(u, s, value=v, val_metric=m)[1])
    return (
        alone.init(u),
        step,
        jax.jit(run(alone)),
        jax.jit(jax.vmap(run(named), axis_name="runs")),
    )


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_vmapped_runs_equal_each_run_alone_for_any_losses_and_starts(data):
    """Property: whatever each run's losses (NaN, inf, <= 0 included), metrics
    and start (runs out of step), a vmapped run with axis_name gets the rates
    it gets alone."""
    init, step, alone, vmapped = _scripted()
    finite = st.floats(0.125, 8.0, width=32)
    bad = st.sampled_from([np.nan, np.inf, -1.0, 0.0])
    draw = lambda s, n: np.array(  # noqa: E731
        data.draw(st.lists(s, min_size=n, max_size=n)), np.float32
    )
    states, lrs_alone = [], []
    values = draw(st.one_of(finite, finite, finite, bad), RUNS * _SCRIPTED_STEPS)
    values = values.reshape(RUNS, _SCRIPTED_STEPS)
    metrics = draw(st.one_of(st.floats(0, 1, width=32), st.just(np.nan)), RUNS)
    metrics = np.repeat(metrics[:, None], _SCRIPTED_STEPS, axis=1)
    for r in range(RUNS):
        s = init
        for i in range(data.draw(st.sampled_from([0, 1, K, 3 * K, MU * K - 1]))):
            s = step(s, np.float32(1.0 + i), np.float32(0.5))
        states.append(s)
        lrs_alone.append(np.asarray(alone(s, values[r], metrics[r])[1]))
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *states)
    _, lrs = vmapped(stacked, values, metrics)
    np.testing.assert_allclose(np.asarray(lrs), np.stack(lrs_alone), rtol=1e-5)
