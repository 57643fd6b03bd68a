"""``chain(base(1.0), lode_schedule)`` is ``base(eta_t)``; the order matters."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _lode_helpers import MU, TOTAL_STEPS, K, fake_metric, mlp_problem, small_model

from optax_lode.transform import lode_schedule


def _run(tx, params, loss_fn, batch, steps):
    """Train ``steps`` steps in one jitted scan; returns params per step and
    the learning rate each step applied (NaN if the state has none)."""

    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, *batch)
        u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
        p = optax.apply_updates(p, u)
        lr = optax.tree.get(s, "learning_rate", jnp.float32(jnp.nan))
        return (p, s), (p, lr)

    @jax.jit
    def run(p):
        _, (ps, lrs) = jax.lax.scan(step, (p, tx.init(p)), length=steps)
        return ps, lrs

    return run(params)


@pytest.fixture(scope="module")
def problem():
    return mlp_problem(0)


def _lode():
    return lode_schedule(
        small_model(0), total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU
    )


@pytest.mark.parametrize(
    "base",
    [
        lambda lr: optax.adamw(lr, weight_decay=0.05),
        lambda lr: optax.sgd(lr, momentum=0.9),
    ],
    ids=["adamw", "sgd-momentum"],
)
def test_chain_equals_base_optimizer_with_the_recorded_rates(problem, base):
    params, loss_fn, batch = problem
    ps_lode, lrs = _run(
        optax.chain(base(1.0), _lode()), params, loss_fn, batch, TOTAL_STEPS
    )
    lrs = np.asarray(lrs)
    assert np.all(np.isfinite(lrs)) and np.all(lrs > 0)
    # The schedule actually moved: several distinct rates were applied.
    assert len(np.unique(lrs)) > 2
    table = jnp.asarray(lrs)
    ps_ref, _ = _run(
        base(lambda count: table[count]), params, loss_fn, batch, TOTAL_STEPS
    )
    chex.assert_trees_all_close(ps_lode, ps_ref, rtol=2e-5, atol=1e-6)


def test_schedule_before_adam_does_not_scale_the_step(problem):
    """Adam normalises away a constant scale: lode_schedule must come after
    (after it, the step is scaled exactly: the equivalence test above)."""
    params, loss_fn, batch = problem
    # Within the first tick the rate is a constant (the warm start, < 1): Adam
    # is invariant to a constant gradient scale.
    steps = K
    ps_before, lrs = _run(
        optax.chain(_lode(), optax.adam(1.0, eps=1e-12)), params, loss_fn, batch, steps
    )
    ps_plain, _ = _run(optax.adam(1.0, eps=1e-12), params, loss_fn, batch, steps)
    assert float(lrs[0]) < 0.1
    # Up to Adam's (tiny) eps, the scaled gradient is normalised back to the plain
    # Adam(1.0) step: the schedule has no effect in that position.
    chex.assert_trees_all_close(ps_before, ps_plain, rtol=1e-3, atol=1e-4)
