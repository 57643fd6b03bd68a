"""Clients nobody here wrote: flax nnx.Optimizer, optax.MultiSteps,
optax.apply_if_finite and orbax checkpointing."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _lode_helpers import MU, TOTAL_STEPS, K, T, fake_metric, mlp_problem, small_model

from optax_lode.transform import LodeState, lode_schedule


def _lode(steps_per_tick=K, total_steps=TOTAL_STEPS):
    return lode_schedule(
        small_model(4),
        total_steps=total_steps,
        steps_per_tick=steps_per_tick,
        mu=MU,
    )


def test_flax_nnx_optimizer_matches_the_functional_loop():
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(4, 8, rngs=rngs)
            self.l2 = nnx.Linear(8, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    _, _, (x, y) = mlp_problem(5)
    tx = optax.chain(optax.adamw(1.0, weight_decay=1e-3), _lode())
    model = MLP(nnx.Rngs(0))
    steps = (MU + 2) * K  # past the first decision

    # The reference: the same training written functionally, on a clone (nnx
    # variables are mutable references, so clone before the optimizer runs).
    graphdef, p = nnx.split(nnx.clone(model), nnx.Param)

    def loss_fn(p):
        return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
        return optax.apply_updates(p, u), s

    s = tx.init(p)
    for _ in range(steps):
        p, s = step(p, s)

    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer):
        def loss_fn(m):
            return jnp.mean((m(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads, value=loss, val_metric=fake_metric(loss))
        return loss

    for _ in range(steps):
        nnx_step(model, optimizer)

    lode_state = nnx.to_pure_dict(nnx.state(optimizer, nnx.optimizer.OptState))
    assert s[1].decisions == 1
    leaves = jax.tree.leaves(lode_state)
    # The segment lives in the packed data leaf: the same bits as the loop's.
    data = np.asarray(s[1].data)
    assert any(np.array_equal(a, data) for a in leaves if a.shape == data.shape)
    chex.assert_trees_all_close(
        nnx.to_pure_dict(nnx.state(model, nnx.Param)),
        nnx.to_pure_dict(p),
        rtol=1e-5,
        atol=1e-6,
    )


def test_multisteps_counts_ticks_in_real_optimizer_steps():
    """Inside MultiSteps(every_k=m) the schedule sees only the emitted steps:
    a tick is steps_per_tick *real* optimizer steps (m micro-batches each), and
    the value recorded is the one passed on the emitting micro-step."""
    m = 3
    tx = optax.MultiSteps(optax.chain(optax.sgd(1.0), _lode()), every_k_schedule=m)
    params = {"w": jnp.ones(2)}
    micro = (MU + 1) * K * m

    @jax.jit
    def run(params):
        def step(carry, i):
            p, s = carry
            value = 1.0 + i.astype(jnp.float32)  # distinct per micro-step
            u, s = tx.update({"w": jnp.ones(2)}, s, p, value=value, val_metric=0.5)
            return (optax.apply_updates(p, u), s), None

        (_p, s), _ = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(micro))
        return s

    s = run(params)
    lode = s.inner_opt_state[1]
    assert int(lode.count) == micro // m
    assert int(lode.tick) == micro // m // K
    assert int(lode.decisions) == 1
    # Tick t's loss is the mean of the values on its K emitting micro-steps
    # (micro index m*j + m - 1 for real step j).
    emitted = 1.0 + (m * np.arange(micro // m) + m - 1)
    ticks = emitted.reshape(-1, K).mean(1)
    np.testing.assert_allclose(np.asarray(lode.window)[:, 0], ticks[-MU:])


def test_apply_if_finite_skips_the_schedule_on_bad_steps():
    tx = optax.apply_if_finite(optax.chain(optax.sgd(1.0), _lode()), 5)
    params = {"w": jnp.ones(2)}
    grads = [jnp.ones(2)] * 6
    grads[2] = jnp.array([jnp.nan, 1.0])
    step = jax.jit(
        lambda g, s: tx.update({"w": g}, s, params, value=1.0, val_metric=0.5)
    )
    s = tx.init(params)
    for g in grads:
        _u, s = step(g, s)
    lode = s.inner_state[1]
    # The non-finite step was dropped whole: not counted, not recorded.
    assert int(lode.count) == 5
    assert int(s.total_notfinite) == 1
    assert isinstance(lode, LodeState)


def test_orbax_checkpoint_restore_continues_bit_identically(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    params, loss_fn, (x, y) = mlp_problem(6)
    tx = optax.chain(optax.adamw(1.0), _lode(steps_per_tick=1, total_steps=T))

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
        return optax.apply_updates(p, u), s

    def run(p, s, n):
        lrs = []
        for _ in range(n):
            p, s = step(p, s)
            lrs.append(np.asarray(optax.tree.get(s, "learning_rate")))
        return p, s, lrs

    first, second = MU + 1, 2 * MU + 2  # interrupt mid-segment, past a decision
    p_full, s_full, lrs_full = run(params, tx.init(params), first + second)

    p_mid, s_mid, lrs_a = run(params, tx.init(params), first)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(tmp_path / "ckpt", {"params": p_mid, "opt_state": s_mid})
    ckptr.wait_until_finished()
    target = jax.tree.map(
        ocp.utils.to_shape_dtype_struct, {"params": p_mid, "opt_state": s_mid}
    )
    restored = ckptr.restore(tmp_path / "ckpt", target)
    s_restored = jax.tree.unflatten(
        jax.tree.structure(s_mid), jax.tree.leaves(restored["opt_state"])
    )
    chex.assert_trees_all_equal(s_restored, s_mid)
    p_end, s_end, lrs_b = run(restored["params"], s_restored, second)
    np.testing.assert_array_equal(np.array(lrs_a + lrs_b), np.array(lrs_full))
    chex.assert_trees_all_equal(s_end, s_full)
    chex.assert_trees_all_equal(p_end, p_full)
    assert int(s_end[1].decisions) >= 2


def test_inject_hyperparams_rebuilding_the_chain_under_jit_runs_the_same_run():
    """optax.inject_hyperparams builds its chain inside every (traced) update:
    the schedule's constants are computed there on the host, and the run is
    the one of the chain built once."""
    params, loss_fn, (x, y) = mlp_problem(7)
    model = small_model(4)

    def chain(weight_decay):
        return optax.chain(
            optax.adamw(1.0, weight_decay=weight_decay),
            lode_schedule(model, total_steps=T, mu=MU),
        )

    def run(tx):
        @jax.jit
        def step(p, s):
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
            return optax.apply_updates(p, u), s

        p, s = params, jax.jit(tx.init)(params)
        for _ in range(2 * MU + 2):
            p, s = step(p, s)
        return p, s

    p_ref, s_ref = run(chain(1e-4))
    p_inj, s_inj = run(optax.inject_hyperparams(chain)(weight_decay=1e-4))
    chex.assert_trees_all_close(p_inj, p_ref, rtol=1e-6, atol=1e-7)
    (lode_ref,) = [x for x in s_ref if isinstance(x, LodeState)]
    lode_inj = s_inj.inner_state[1]
    assert int(lode_inj.decisions) == int(lode_ref.decisions) >= 2
    chex.assert_trees_all_close(lode_inj.segment, lode_ref.segment)


def test_inject_hyperparams_on_the_schedule_itself_says_to_build_the_chain():
    """inject_hyperparams(lode_schedule) passes every numeric argument (its
    defaults too) as an array: "total_steps must be an int >= 1, got Array"
    said nothing of why. The configuration is refused as such, with the
    pattern that works (test above)."""
    model = small_model(4)
    params = {"w": jnp.ones(3)}
    for static in ((), ("total_steps", "steps_per_tick", "n", "seed")):
        tx = optax.inject_hyperparams(lode_schedule, static_args=static)(
            model, total_steps=T, mu=MU
        )
        with pytest.raises(TypeError) as err:
            tx.init(params)
        message = str(err.value)
        assert "not hyperparameters to inject" in message
        assert "build the chain inside the function given to it" in message
        assert ("total_steps" in message.split(" as jax arrays")[0]) == (not static)
    # An array argument, concrete or traced, outside any wrapper too.
    with pytest.raises(TypeError, match="tol as jax arrays: its arguments are conf"):
        lode_schedule(model, total_steps=T, mu=MU, tol=jnp.float32(2.0))
    with pytest.raises(TypeError, match="total_steps as jax arrays"):
        jax.jit(lambda t: lode_schedule(model, total_steps=t, mu=MU))(T)
    with pytest.raises(TypeError, match="lr_bounds as jax arrays"):
        jax.jit(lambda b: lode_schedule(model, total_steps=T, lr_bounds=(b, 0.1)))(1e-3)
    # Concrete bounds were and are read as numbers.
    lode_schedule(model, total_steps=T, mu=MU, lr_bounds=(jnp.float32(1e-3), 0.1))


def test_a_traced_model_is_a_type_error_that_says_to_close_over_it():
    model = small_model(4)

    @jax.jit
    def build(m):
        lode_schedule(m, total_steps=T, mu=MU)

    with pytest.raises(TypeError, match="concrete model"):
        build(model)
