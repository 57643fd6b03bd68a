"""One program: one compile, a stable state, no callbacks, no host transfers."""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest
from _lode_helpers import MU, TOTAL_STEPS, K, fake_metric, mlp_problem, small_model
from jax import monitoring
from jax.extend.core import Literal

from optax_lode.transform import LodeState, lode_schedule

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CALLBACKS = {"pure_callback", "io_callback", "debug_callback", "callback"}


@pytest.fixture(scope="module")
def setup():
    params, loss_fn, batch = mlp_problem(1)
    tx = optax.chain(
        optax.adamw(1.0, weight_decay=1e-3),
        lode_schedule(small_model(2), total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU),
    )

    def lode_train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(
            grads, opt_state, params, value=loss, val_metric=fake_metric(loss)
        )
        return optax.apply_updates(params, updates), opt_state

    return params, tx, lode_train_step, batch


def _primitives(jaxpr, seen=None):
    """Every primitive name in a jaxpr, including cond branches and loop bodies."""
    seen = set() if seen is None else seen
    for eqn in jaxpr.eqns:
        seen.add(eqn.primitive.name)
        for v in eqn.params.values():
            for sub in v if isinstance(v, (list, tuple)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _primitives(inner, seen)
    return seen


def test_one_compile_for_three_decision_periods_and_a_stable_state(setup):
    params, tx, train_step, (x, y) = setup
    opt_state = tx.init(params)
    state0 = opt_state[1]
    assert isinstance(state0, LodeState)
    for leaf in jax.tree.leaves(opt_state):
        assert not leaf.weak_type, "weak types in the state would retrace (optax#1440)"

    names = []

    def listener(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            names.append(kwargs.get("fun_name"))

    step = jax.jit(train_step)
    monitoring.register_event_duration_secs_listener(listener)
    try:
        steps = 3 * MU * K + 1  # three decision periods and a bit
        for _ in range(steps):
            new_params, new_state = step(params, opt_state, x, y)
            # Same structure, shapes, dtypes and weak types before and after.
            chex.assert_trees_all_equal_structs(new_state, opt_state)
            chex.assert_trees_all_equal_shapes_and_dtypes(new_state, opt_state)
            for a, b in zip(
                jax.tree.leaves(new_state), jax.tree.leaves(opt_state), strict=True
            ):
                assert a.weak_type == b.weak_type
            params, opt_state = new_params, new_state
    finally:
        monitoring.unregister_event_duration_listener(listener)
    # Exactly one backend compilation in the whole loop, and it is the step.
    assert len(names) == 1 and "lode_train_step" in names[0], names
    assert int(opt_state[1].decisions) >= 3


def test_an_eager_update_compiles_only_at_its_first_call():
    """Called without jit (as the docstring's example does), the cond's branches
    must be the same functions every call: new lambdas compiled anew each time
    (~3 s a step)."""
    tx = lode_schedule(small_model(2), total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    compiles = []

    def listener(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            compiles.append(kwargs.get("fun_name"))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        per_call = []
        for i in range(2 * MU * K + 1):  # through two decisions
            before = len(compiles)
            _, state = tx.update(params, state, value=1.0 / (i + 1), val_metric=0.5)
            jax.block_until_ready(state)
            per_call.append(len(compiles) - before)
    finally:
        monitoring.unregister_event_duration_listener(listener)
    assert per_call[0] > 0 and sum(per_call[1:]) == 0, per_call
    assert int(state.decisions) == 2


def test_no_callbacks_and_no_host_transfers(setup):
    params, tx, train_step, (x, y) = setup
    opt_state = tx.init(params)
    jaxpr = jax.make_jaxpr(train_step)(params, opt_state, x, y)
    prims = _primitives(jaxpr.jaxpr)
    assert not prims & _CALLBACKS, prims & _CALLBACKS
    assert "cond" in prims  # the decision is behind lax.cond

    step = jax.jit(train_step)
    params, opt_state = step(params, opt_state, x, y)
    with jax.transfer_guard("disallow"):
        for _ in range(2 * MU * K):
            params, opt_state = step(params, opt_state, x, y)
        jax.block_until_ready(opt_state)
    assert int(opt_state[1].decisions) >= 2
    assert bool(jnp.isfinite(opt_state[1].learning_rate))


def test_a_donated_step_runs_the_same_run(setup):
    """Donating parameters and state (updated in place, ~20% faster per call
    of a small MLP's looped step on CPU; docs/schedule.md, "Cost") changes
    nothing: the same rates and parameters, bit for bit, through decisions."""
    params, tx, train_step, (x, y) = setup
    plain = jax.jit(train_step)
    donated = jax.jit(train_step, donate_argnums=(0, 1))
    runs = []
    for step in (plain, donated):
        p, s = jax.tree.map(jnp.copy, (params, tx.init(params)))
        rates = []
        for _ in range(3 * MU * K + 1):
            old = jax.tree.leaves((p, s))
            p, s = step(p, s, x, y)
            rates.append(jnp.copy(s[1].learning_rate))  # s goes to the next step
            if step is donated:
                assert all(a.is_deleted() for a in old), "nothing was donated"
        assert int(s[1].decisions) >= 3
        runs.append((jnp.stack(rates), p, s))
    chex.assert_trees_all_equal(runs[0], runs[1])


def test_the_steps_conditional_does_not_grow_with_the_model():
    """The decision branch closes over the model as one flat constant: closed
    over leaf by leaf, every weight became an operand of the step's
    conditional, which alone slowed every step ~10% on 2 CPU cores
    (benchmarks/overhead.py)."""
    params, loss_fn, (x, y) = mlp_problem(1)

    def operands(model):
        tx = lode_schedule(model, total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU)

        def step(params, opt_state):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            return tx.update(grads, opt_state, value=loss, val_metric=0.5)

        jaxpr = jax.make_jaxpr(step)(params, tx.init(params)).jaxpr
        conds = [e for e in jaxpr.eqns if e.primitive.name == "cond"]
        assert len(conds) == 1, "one lax.cond per step"
        assert len(conds[0].params["branches"]) == 2  # hold, decision
        return len(conds[0].invars), len(
            jax.tree.leaves(eqx.filter(model, eqx.is_array))
        )

    small, small_arrays = operands(small_model(2, depth=1))
    big, big_arrays = operands(small_model(2, depth=4))
    assert big_arrays > small_arrays + 5
    assert big == small < small_arrays


def test_bookkeeping_and_decision_wait_for_the_updates():
    """Everything the step's cond reads passes through one
    optimization_barrier with every leaf of the incoming updates: left free,
    XLA's CPU runtime ran the bookkeeping beside the backward pass on the
    second core, and the hand-off cost a small MLP's step ~15-20%
    (docs/schedule.md, "Cost")."""
    params, _, _ = mlp_problem(1)
    tx = lode_schedule(small_model(2), total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU)

    def update(updates, opt_state, loss):
        return tx.update(updates, opt_state, value=loss, val_metric=0.5)

    jaxpr = jax.make_jaxpr(update)(params, tx.init(params), 1.0).jaxpr
    n = len(jax.tree.leaves(params))
    (barrier,) = [e for e in jaxpr.eqns if e.primitive.name == "optimization_barrier"]
    # Every update leaf and the loss go into the barrier (via at most a cast).
    producers = {v: e for e in jaxpr.eqns for v in e.outvars}

    def source(v):
        while (
            not isinstance(v, Literal)
            and v in producers
            and producers[v].primitive.name == "convert_element_type"
        ):
            v = producers[v].invars[0]
        return v

    entering = {source(v) for v in barrier.invars if not isinstance(v, Literal)}
    assert set(jaxpr.invars[:n]) | {jaxpr.invars[-1]} <= entering
    downstream = set(barrier.outvars)
    for eqn in jaxpr.eqns[jaxpr.eqns.index(barrier) + 1 :]:
        if any(v in downstream for v in eqn.invars if not isinstance(v, Literal)):
            downstream.update(eqn.outvars)
    # The scaled updates, the new state and every operand of the cond that is
    # not a closed-over constant come after it.
    assert set(jaxpr.outvars) <= downstream
    (cond,) = [e for e in jaxpr.eqns if e.primitive.name == "cond"]
    operands = [v for v in cond.invars if not isinstance(v, Literal)]
    assert all(v in downstream or v in set(jaxpr.constvars) for v in operands)
    assert any(v in downstream for v in operands)


def test_the_state_advances_inside_the_cond():
    """The new state comes out of the step's cond as is, and outside it the
    update only finds the predicate and scales the updates: the bookkeeping's
    small operations, beside the cond in the step's own graph, changed how
    XLA's CPU runtime overlapped a larger MLP's backward pass (+0.5% to +12%
    between decisions, by n and width; docs/schedule.md, "Cost")."""
    params, _, _ = mlp_problem(1)
    tx = lode_schedule(small_model(2), total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU)

    def update(updates, opt_state, loss):
        return tx.update(updates, opt_state, value=loss, val_metric=0.5)

    jaxpr = jax.make_jaxpr(update)(params, tx.init(params), 1.0).jaxpr
    (cond,) = [e for e in jaxpr.eqns if e.primitive.name == "cond"]
    n = len(jax.tree.leaves(params))
    state_out = jaxpr.outvars[n:]
    assert len(state_out) == len(jax.tree.leaves(tx.init(params)))
    assert set(state_out) <= set(cond.outvars)
    outside = {e.primitive.name for e in jaxpr.eqns}
    assert not outside & {
        "concatenate",
        "scatter",
        "scatter-add",
        "dynamic_slice",
        "dynamic_update_slice",
        "select_n",
    }, outside
    # Both branches advance the state: the clock moves on every step.
    inside = [_primitives(b.jaxpr) for b in cond.params["branches"]]
    assert all("concatenate" in p for p in inside)
