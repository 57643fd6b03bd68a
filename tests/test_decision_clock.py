"""The decision's clock: rollout row 0 (hence a member's matching tick) is the
window's last tick ``t* - 1``, so the segment for ticks ``t* ..`` starts one
tick later on the member's path; and the opt-in ``match_rule``.

Regression: the segment used to read ``eta_i(k_i + j)``, so every segment
began by replaying the rate of the tick that had already happened. On the NQM
benchmark that made each decision restart its decaying path one tick back: a
saw-tooth schedule that decays too slowly.
"""

from __future__ import annotations

import functools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _lode_helpers import ScriptedModel
from hypothesis import given, settings

from optax_lode.decision import ANCHORS, MATCH_RULES, DecisionConfig, decide, explain
from optax_lode.model import Normalisation
from optax_lode.transform import lode_schedule

TICKS, MU, K = 24, 4, 2


class Continuation(eqx.Module):
    """A perfect model of runs whose rate decays by ``exp(slope)`` per tick.

    Identity normalisation (``log loss``, ``metric``, ``log lr``). ``encode``
    reads the window's last row: the latent is the state AT that tick, as a
    fitted LatentODE's is. ``decode`` continues from there, row ``k`` being
    ``k`` ticks later: constant loss and metric, ``log lr(k) = log lr(0) +
    slope * k``. Its best run follows the same decay from ``lr0``.
    """

    normalisation: Normalisation
    lr_range: jax.Array
    best_lr_path: jax.Array
    latent_scale: jax.Array
    # Arrays, not static fields: hypothesis's examples then share one compile.
    slope: jax.Array
    bias: jax.Array
    T: int = eqx.field(static=True)
    mu: int = eqx.field(static=True)

    def __init__(self, slope: float, lr0: float = 0.5, bias: float = 0.0):
        # bias: the encoder overestimates log lr by this much (a fitted LODE's
        # reconstruction error), which decode carries on.
        self.T, self.mu = TICKS, MU
        self.slope = jnp.asarray(slope, jnp.float32)
        self.bias = jnp.asarray(bias, jnp.float32)
        self.normalisation = Normalisation(mean=np.zeros(3), std=np.ones(3))
        path = lr0 * np.exp(slope * np.arange(TICKS))
        self.lr_range = jnp.asarray([path.min(), path.max()], jnp.float32)
        self.best_lr_path = jnp.asarray(path, jnp.float32)
        self.latent_scale = jnp.ones((3,), jnp.float32)

    def encode(self, window, mask=None):
        del mask
        shift = jnp.zeros(3, jnp.float32).at[2].set(self.bias)
        return jnp.asarray(window, jnp.float32)[-1] + shift

    def decode(self, z, num_ticks):
        k = jnp.arange(num_ticks, dtype=jnp.float32)
        ones = jnp.ones_like(k)
        return jnp.stack([z[0] * ones, z[1] * ones, z[2] + self.slope * k], -1)


_decide = eqx.filter_jit(decide)


@settings(max_examples=25, deadline=None)
@given(
    log_lr=st.floats(-9.0, 0.5),
    slope=st.floats(-0.5, -0.01),
    t_star=st.integers(MU, TICKS - 1),
    rule=st.sampled_from(MATCH_RULES),
)
def test_segment_continues_the_matched_path_after_the_window(
    log_lr, slope, t_star, rule
):
    """With a perfect model of a decaying run, the segment is the run's own
    next ``mu`` rates; its first rate is below the window's last one."""
    model = Continuation(slope)
    cfg = DecisionConfig.from_model(
        model, mu=MU, n=5, sigma=0.0, lr_bounds=(1e-12, 10.0), match_rule=rule
    )
    past = np.arange(-(MU - 1), 1)  # window rows: ticks t* - mu .. t* - 1
    window = np.stack(
        [np.full(MU, 0.3), np.full(MU, 0.7), np.exp(log_lr + slope * past)], 1
    ).astype(np.float32)
    d = _decide(model, window, jnp.int32(t_star), jax.random.key(0), cfg)
    assert not bool(d.fallback)
    expect = np.exp(log_lr + slope * (1 + np.arange(MU)))
    np.testing.assert_allclose(d.segment, expect, rtol=2e-5)
    assert float(d.segment[0]) < float(window[-1, 2])


@functools.cache
def _schedule_runner(
    slope: float, rule: str = "highest_lr", anchor: str = "model", bias: float = 0.0
):
    """A jitted whole run of ``lode_schedule`` on a ``Continuation`` model with
    unit updates: it returns the rate of every step."""
    model = Continuation(slope, bias=bias)
    tx = lode_schedule(
        model,
        total_steps=TICKS * K,
        steps_per_tick=K,
        mu=MU,
        sigma=0.0,
        n=3,
        lr_bounds=(1e-12, 10.0),
        match_rule=rule,
        anchor=anchor,
    )

    @jax.jit
    def run():
        def step(s, _):
            u, s = tx.update(
                {"w": jnp.ones(())}, s, value=jnp.float32(0.3), val_metric=0.7
            )
            return s, u["w"]

        return jax.lax.scan(step, tx.init({"w": jnp.ones(())}), None, TICKS * K)[1]

    return model, run


@pytest.mark.parametrize("rule", MATCH_RULES)
def test_perfect_model_gives_an_unbroken_decay_through_decisions(rule):
    """Warm start and every decision follow the model's decay exactly: the
    rate falls by ``exp(slope)`` at every tick, also at the decision ticks
    ``mu, 2 mu, ...`` (no saw-tooth, no repeated rate)."""
    slope = -0.1
    model, run = _schedule_runner(slope, rule)
    rates = np.asarray(run()).reshape(TICKS, K)
    assert np.all(rates == rates[:, :1])  # constant within a tick
    per_tick = rates[:, 0]
    np.testing.assert_allclose(per_tick, model.best_lr_path, rtol=1e-4)
    np.testing.assert_allclose(per_tick[1:] / per_tick[:-1], np.exp(slope), rtol=1e-4)


def _eps_crossing():
    """ScriptedModel members (normalised lines: loss0, loss slope, metric0,
    metric slope, loglr0, loglr slope), live loss 0, acceptance half-width 1."""
    return np.array(
        [
            # Loss falls through the live loss 0 at k = 5 (matches k = 1..9),
            # rate decays: highest rate at the earliest match, k = 1.
            [1.0, -0.2, 1.0, 0.0, np.log(0.05), -0.1],
            # Loss rises through 0 at k = 15 (matches 11..19), rate rises.
            [-3.0, 0.2, 2.0, 0.0, np.log(0.005), 0.01],
        ],
        np.float32,
    )


@pytest.mark.parametrize(
    "rule, ticks", [("highest_lr", [1, 19]), ("closest_loss", [5, 15])]
)
def test_match_rule_picks_the_documented_tick(rule, ticks):
    model = ScriptedModel(T=20, mu=MU)
    cfg = DecisionConfig.from_model(
        model,
        mu=MU,
        n=2,
        sigma=1.0,
        horizon=5,
        std_floor=0.5,
        lr_bounds=(1e-4, 1.0),
        match_rule=rule,
    )
    window = np.array([[1.0, 0.5, 0.01]] * MU, np.float32)
    ex = explain(model, window, 8, None, cfg, eps=_eps_crossing())
    np.testing.assert_array_equal(np.asarray(ex.match_tick), ticks)
    lr = np.exp(_eps_crossing()[:, 4:5] + _eps_crossing()[:, 5:6] * np.arange(40))
    expect = [lr[i, k + 1 : k + 1 + MU] for i, k in enumerate(ticks)]
    np.testing.assert_allclose(ex.segments, expect, rtol=1e-5)


def test_default_match_rule_is_the_papers():
    assert DecisionConfig.from_model(ScriptedModel(T=20, mu=MU)).match_rule == (
        "highest_lr"
    )


def test_unknown_match_rule_is_a_value_error():
    with pytest.raises(ValueError, match="match_rule"):
        DecisionConfig.from_model(ScriptedModel(T=20, mu=MU), match_rule="latest")
    with pytest.raises(ValueError, match="match_rule"):
        lode_schedule(Continuation(-0.1), total_steps=TICKS, match_rule="nearest")


# -- anchor: the paper's absolute segment vs the opt-in live-anchored one -------


@settings(max_examples=25, deadline=None)
@given(
    log_lr=st.floats(-9.0, 0.5),
    slope=st.floats(-0.5, -0.01),
    bias=st.floats(-1.0, 1.0),
    rule=st.sampled_from(MATCH_RULES),
)
def test_live_anchor_removes_the_reconstruction_bias(log_lr, slope, bias, rule):
    """A model that misreads the current rate by ``exp(bias)`` but knows the
    decay: the paper's segment carries the bias, the live-anchored one is the
    run's own next ``mu`` rates."""
    model = Continuation(slope, bias=bias)
    past = np.arange(-(MU - 1), 1)
    window = np.stack(
        [np.full(MU, 0.3), np.full(MU, 0.7), np.exp(log_lr + slope * past)], 1
    ).astype(np.float32)
    expect = np.exp(log_lr + slope * (1 + np.arange(MU)))
    for anchor, factor in (("model", np.exp(bias)), ("live", 1.0)):
        cfg = DecisionConfig.from_model(
            model,
            mu=MU,
            n=5,
            sigma=0.0,
            lr_bounds=(1e-12, 100.0),
            match_rule=rule,
            anchor=anchor,
        )
        d = _decide(model, window, MU, jax.random.key(0), cfg)
        assert not bool(d.fallback)
        np.testing.assert_allclose(d.segment, expect * factor, rtol=5e-5)


def test_live_anchor_keeps_a_biased_models_schedule_unbroken():
    """Through ``lode_schedule``: with a biased model the paper's anchor jumps
    by ``exp(bias)`` at every decision (the saw-tooth); the live anchor decays
    by ``exp(slope)`` at every tick."""
    slope, bias = -0.1, 0.4
    rates = {}
    for anchor in ANCHORS:
        _, run = _schedule_runner(slope, anchor=anchor, bias=bias)
        rates[anchor] = np.asarray(run()).reshape(TICKS, K)[:, 0]  # per tick
    ratio = {a: r[1:] / r[:-1] for a, r in rates.items()}
    np.testing.assert_allclose(ratio["live"], np.exp(slope), rtol=1e-4)
    jumps = np.arange(MU, TICKS, MU) - 1  # tick t* vs t* - 1
    np.testing.assert_allclose(ratio["model"][jumps], np.exp(slope + bias), rtol=1e-4)


def test_default_anchor_is_the_papers_and_unknown_is_a_value_error():
    model = ScriptedModel(T=20, mu=MU)
    assert DecisionConfig.from_model(model).anchor == "model"
    with pytest.raises(ValueError, match="anchor"):
        DecisionConfig.from_model(model, anchor="run")
    with pytest.raises(ValueError, match="anchor"):
        lode_schedule(Continuation(-0.1), total_steps=TICKS, anchor="now")
