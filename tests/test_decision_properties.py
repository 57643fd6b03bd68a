"""Properties of one decision over random (untrained) models, windows,
ensembles and inputs."""

from __future__ import annotations

import functools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _lode_helpers import T, small_model
from hypothesis import given, settings

from optax_lode.decision import DecisionConfig, decide, ensemble_noise, explain

MU, N = 4, 12

# Random windows are mostly far outside any sweep: explain's warning is meant
# for users' windows (tests/test_decision_algorithm.py), not for these.
pytestmark = pytest.mark.filterwarnings("ignore::optax_lode.decision.OutOfSweepWarning")


@functools.cache
def _model(seed: int):
    return small_model(seed)


@functools.cache
def _config():
    return DecisionConfig.from_model(_model(0), mu=MU, n=N)


class Mirror(eqx.Module):
    """A model whose predicted (normalised) losses are reflected about ``c``."""

    inner: eqx.Module
    c: jax.Array

    @property
    def normalisation(self):
        return self.inner.normalisation

    @property
    def latent_scale(self):
        return self.inner.latent_scale

    def encode(self, window, mask=None):
        return self.inner.encode(window, mask)

    def decode(self, z, num_ticks):
        pred = self.inner.decode(z, num_ticks)
        return pred.at[:, 0].set(2 * self.c - pred[:, 0])


@st.composite
def windows(draw):
    """Raw (loss, metric, lr) windows over many orders of magnitude, some rows
    invalid."""
    log_loss = draw(st.floats(-6, 6))
    slope = draw(st.floats(-0.5, 0.5))
    noise = np.array(draw(st.lists(st.floats(-0.3, 0.3), min_size=MU, max_size=MU)))
    loss = np.exp(log_loss + slope * np.arange(MU) + noise)
    metric = np.full(MU, draw(st.floats(-3, 3)))
    lr = np.full(MU, np.exp(draw(st.floats(-12, 2))))
    w = np.stack([loss, metric, lr], 1).astype(np.float32)
    bad = draw(st.lists(st.booleans(), min_size=MU, max_size=MU))
    if not all(bad):
        w[np.array(bad), 0] = np.nan
    return w


common = dict(
    seed=st.integers(0, 3),
    window=windows(),
    t_star=st.integers(MU, T - 1),  # a decision tick: [mu, T)
    key=st.integers(0, 2**31 - 1),
)


@settings(max_examples=20)
@given(**common)
def test_rate_is_finite_positive_and_in_bounds(seed, window, t_star, key):
    cfg = _config()
    ex = explain(_model(seed), window, t_star, jax.random.key(key), cfg)
    seg = np.asarray(ex.decision.segment)
    assert np.all(np.isfinite(seg))
    assert np.all(seg >= np.float32(cfg.lr_min)) and np.all(
        seg <= np.float32(cfg.lr_max)
    )
    if int(ex.decision.accepted) == 0:
        # Nothing accepted: the segment is the held rate.
        assert bool(ex.decision.fallback)
        np.testing.assert_array_equal(seg, np.full(MU, np.asarray(ex.held_lr)))
        np.testing.assert_allclose(
            ex.held_lr, np.clip(window[-1, 2], cfg.lr_min, cfg.lr_max), rtol=1e-6
        )


def test_both_branches_are_exercised():
    """The strategy above reaches accepted and fallback decisions alike."""
    cfg, model = _config(), _model(0)
    near = np.array([[1.0, 0.5, 0.01]] * MU, np.float32)
    far = near.copy()
    far[:, 0] = 1e30
    key = jax.random.key(0)
    assert int(explain(model, far, MU, key, cfg).decision.accepted) == 0
    # The model's own prediction, fed back as the window, matches itself.
    z = model.encode(jnp.asarray(model.normalisation.forward(near)))
    pred = model.normalisation.inverse(model.decode(z, 2))
    near[-1, 0] = float(pred[0, 0])
    assert int(explain(model, near, MU, key, cfg).decision.accepted) >= 1


@settings(max_examples=15)
@given(**common)
def test_acceptance_is_symmetric_in_the_sign_of_the_loss_error(
    seed, window, t_star, key
):
    cfg, model = _config(), _model(seed)
    k = jax.random.key(key)
    ex = explain(model, window, t_star, k, cfg)
    mirror = Mirror(model, jnp.asarray(ex.live_loss))
    ex_m = explain(mirror, window, t_star, k, cfg)
    # Distances to the live loss are the same up to rounding; ignore members
    # whose distance sits within rounding of the threshold.
    norm = model.normalisation
    pred = (np.log(np.asarray(ex.trajectories[:, : T + 1, 0])) - norm.mean[0]) / (
        norm.std[0]
    )
    dist = np.abs(pred - np.asarray(ex.live_loss))
    border = np.abs(dist - np.asarray(ex.threshold)) < 1e-4
    same = np.asarray(ex.match) == np.asarray(ex_m.match)
    assert np.all(same | border)


@settings(max_examples=15)
@given(**common, perm_seed=st.integers(0, 1000))
def test_permuting_members_keeps_the_top_three_average(
    seed, window, t_star, key, perm_seed
):
    cfg, model = _config(), _model(seed)
    eps = np.asarray(ensemble_noise(jax.random.key(key), N, model.latent_size))
    perm = np.concatenate(
        [[0], 1 + np.random.default_rng(perm_seed).permutation(N - 1)]
    )
    a = explain(model, window, t_star, None, cfg, eps=eps).decision
    b = explain(model, window, t_star, None, cfg, eps=eps[perm]).decision
    assert int(a.accepted) == int(b.accepted)
    np.testing.assert_allclose(a.segment, b.segment, rtol=1e-5)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-5, equal_nan=True)


@pytest.mark.slow  # eager (op-by-op) decisions: ~10 s each on 2 busy cores
@settings(max_examples=5)
@given(**common)
def test_jit_and_no_jit_agree(seed, window, t_star, key):
    cfg, model = _config(), _model(seed)
    k = jax.random.key(key)
    jitted = eqx.filter_jit(decide)(model, jnp.asarray(window), t_star, k, cfg)
    eager = decide(model, jnp.asarray(window), t_star, k, cfg)
    assert int(jitted.accepted) == int(eager.accepted)
    assert bool(jitted.fallback) == bool(eager.fallback)
    np.testing.assert_allclose(jitted.segment, eager.segment, rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0, np.inf]),
            min_size=5,
            max_size=5,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_first_argmax_is_argmax_with_ties_and_infinities(rows):
    """decide replaces jnp.argmax (a costly reduction for the CPU runtime) by
    top_k: the same first index of the maximum, ties and all--inf rows
    included (NaN never reaches it)."""
    from optax_lode.decision._decide import _first_argmax

    x = jnp.asarray(rows, jnp.float32)
    best, got = jax.jit(_first_argmax)(x)
    np.testing.assert_array_equal(got, np.argmax(np.asarray(rows), axis=1))
    np.testing.assert_array_equal(best, np.max(np.asarray(rows), axis=1))


def test_rows_finite_and_row_sums_match_the_reductions():
    from optax_lode.decision._decide import _sum_rows
    from optax_lode.model._latent_ode import rows_finite

    x = jnp.array([[1.0, np.nan, 2.0], [3.0, 4.0, 5.0], [np.inf, 0.0, 1.0]])
    np.testing.assert_array_equal(
        jax.jit(rows_finite)(x), np.all(np.isfinite(np.asarray(x)), axis=-1)
    )
    y = jax.random.normal(jax.random.key(0), (3, 7))
    np.testing.assert_array_equal(
        jax.jit(_sum_rows)(y), jax.jit(lambda y: jnp.sum(y, axis=0))(y)
    )
