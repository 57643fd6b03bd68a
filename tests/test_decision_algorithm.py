"""Algorithm 1 step by step against hand-computed values (scripted rollouts),
plus configuration errors and decide/explain agreement on a real LatentODE."""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _lode_helpers import ScriptedModel, small_model

import optax_lode
from optax_lode.decision import DecisionConfig, OutOfSweepWarning, decide, explain

T, MU, N, H = 20, 4, 7, 5


def _config(**kw):
    base = dict(mu=MU, n=N, sigma=1.0, horizon=H, std_floor=0.5, lr_bounds=(1e-4, 1.0))
    base.update(kw)
    return DecisionConfig.from_model(ScriptedModel(T=T, mu=MU), **base)


def _window(loss=1.0, lr=0.01):
    # Constant loss 1 -> normalised l* = log 1 = 0 and std 0, so the acceptance
    # half-width is tol * std_floor = 2 * 0.5 = 1.
    return np.array([[loss, 0.5, lr]] * MU, np.float32)


def _eps():
    """Rows are latents (sigma = 1, latent_scale = 1): lines in normalised units.

    columns: loss0, loss slope, metric0, metric slope, loglr0, loglr slope
    """
    return np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # m0 direct: matches, score 0, lr 1
            [0.5, 0.0, 1.0, 0.01, np.log(0.01), 0.0],  # above l*: accepted
            [-0.5, 0.0, 2.0, 0.0, np.log(0.02), 0.0],  # below l*: accepted
            [1.5, 0.0, 100.0, 0.0, np.log(0.03), 0.0],  # too far: rejected
            [-3.0, 0.2, 0.0, 0.1, np.log(0.005), 0.01],  # matches k=11..19
            [0.0, 0.0, -1.0, 0.0, np.log(0.05), 0.0],  # accepted, worst score
            [-1.5, 0.0, 50.0, 0.0, np.log(0.04), 0.0],  # too far below: rejected
        ],
        np.float32,
    )


def test_each_step_matches_hand_computation():
    model, cfg = ScriptedModel(T=T, mu=MU), _config()
    ex = explain(model, _window(), 8, None, cfg, eps=_eps())
    np.testing.assert_allclose(ex.threshold, 1.0, rtol=1e-6)
    np.testing.assert_allclose(ex.live_loss, 0.0, atol=1e-7)
    # Two-sided acceptance: +0.5 and -0.5 both in, +1.5 and -1.5 both out.
    np.testing.assert_array_equal(
        np.asarray(ex.accepted), [True, True, True, False, True, True, False]
    )
    # m4's loss -3 + 0.2 k is within 1 of 0 for k = 11..19 (k = 20 gives |1| not
    # < 1); its lr rises with k, so the matching tick is the last one, 19.
    np.testing.assert_array_equal(
        np.flatnonzero(np.asarray(ex.match[4])), np.arange(11, 20)
    )
    assert int(ex.match_tick[4]) == 19
    # Constant lr: all matching ticks tie, argmax takes the first (0).
    assert int(ex.match_tick[1]) == 0
    # Scores: metric at k_i + horizon.
    expect = {0: 0.0, 1: 1.0 + 0.01 * H, 2: 2.0, 4: 0.1 * (19 + H), 5: -1.0}
    for i, s in expect.items():
        np.testing.assert_allclose(ex.scores[i], s, rtol=1e-5, atol=1e-6)
    assert np.isneginf(ex.scores[3]) and np.isneginf(ex.scores[6])
    # Top three: m4 (2.4), m2 (2.0), m1 (1.05).
    assert sorted(np.asarray(ex.chosen).tolist()) == [1, 2, 4]
    # Segment: rates one tick after the matching tick (k_i is the window's last
    # tick t* - 1, the segment starts at t*).
    j = np.arange(MU)
    seg4 = np.exp(np.log(0.005) + 0.01 * (19 + 1 + j))
    np.testing.assert_allclose(ex.decision.segment, (seg4 + 0.02 + 0.01) / 3, rtol=1e-5)
    np.testing.assert_allclose(ex.decision.score, (2.4 + 2.0 + 1.05) / 3, rtol=1e-5)
    assert int(ex.decision.accepted) == 5 and not bool(ex.decision.fallback)


def test_default_horizon_is_the_remaining_run():
    model, cfg = ScriptedModel(T=T, mu=MU), _config(horizon=None)
    ex = explain(model, _window(), 8, None, cfg, eps=_eps())
    assert float(ex.horizon) == T - 8
    np.testing.assert_allclose(ex.scores[1], 1.0 + 0.01 * (T - 8), rtol=1e-5)
    # m4 scores at 19 + 12 = 31 on a grid that reaches T + (T - mu).
    assert cfg.grid_ticks > 31
    np.testing.assert_allclose(ex.scores[4], 3.1, rtol=1e-5)


def test_float_horizon_is_a_fraction_of_T():
    cfg = _config(horizon=0.5)
    assert cfg.horizon_ticks == T // 2


def test_fewer_than_three_accepted_averages_those():
    eps = _eps()[[0, 1, 3, 6]]  # only m0 and m1 accepted
    eps[0] = [5.0, 0, 0, 0, 0, 0]  # push the direct latent out
    cfg = _config(n=4)
    ex = explain(ScriptedModel(T=T, mu=MU), _window(), 8, None, cfg, eps=eps)
    assert int(ex.decision.accepted) == 1
    assert np.asarray(ex.chosen_valid).sum() == 1
    np.testing.assert_allclose(ex.decision.segment, 0.01, rtol=1e-5)


def test_nothing_accepted_holds_the_last_rate():
    eps = _eps()
    eps[:, 0] = 10.0  # every predicted loss far above the live loss
    window = _window(lr=0.0123)
    ex = explain(ScriptedModel(T=T, mu=MU), window, 8, None, _config(), eps=eps)
    assert int(ex.decision.accepted) == 0 and bool(ex.decision.fallback)
    np.testing.assert_allclose(ex.decision.segment, 0.0123, rtol=1e-6)
    assert np.isnan(ex.decision.score)


def test_segment_is_clipped_to_the_bounds():
    eps = _eps()
    eps[:, 4] = np.log(50.0)  # every member predicts lr 50
    cfg = _config(lr_bounds=(1e-4, 0.3))
    ex = explain(ScriptedModel(T=T, mu=MU), _window(), 8, None, cfg, eps=eps)
    np.testing.assert_allclose(ex.decision.segment, 0.3)


def test_default_bounds_widen_the_model_range_by_the_factor():
    cfg = DecisionConfig.from_model(ScriptedModel(T=T, mu=MU, lr_range=(1e-3, 1e-1)))
    assert cfg.lr_min == pytest.approx(5e-4) and cfg.lr_max == pytest.approx(0.2)
    cfg = DecisionConfig.from_model(ScriptedModel(T=T, mu=MU), lr_range_factor=4.0)
    assert cfg.lr_max == pytest.approx(0.4)


def test_non_finite_prediction_is_never_accepted():
    eps = _eps()
    eps[4, 5] = np.inf  # m4's lr path becomes inf
    ex = explain(ScriptedModel(T=T, mu=MU), _window(), 8, None, _config(), eps=eps)
    assert not bool(ex.accepted[4])
    assert np.all(np.isfinite(ex.decision.segment))


def test_non_finite_window_rows_are_masked():
    window = _window()
    window[-1] = [np.nan, 0.5, 0.01]  # the latest tick had no finite loss
    window[0, 0] = 3.0  # an older loss; the live loss is the last finite one
    ex = explain(ScriptedModel(T=T, mu=MU), window, 8, None, _config(), eps=_eps())
    np.testing.assert_array_equal(np.asarray(ex.window_mask), [1, 1, 1, 0])
    np.testing.assert_allclose(ex.live_loss, 0.0, atol=1e-7)


def test_decide_equals_explain_and_is_jittable_with_a_real_model():
    model = small_model(1)
    cfg = DecisionConfig.from_model(model, mu=4, n=12)
    window = np.stack(
        [np.linspace(1.2, 0.9, 4), np.linspace(0.4, 0.5, 4), np.full(4, 0.02)], 1
    )
    key = jax.random.key(3)
    d = eqx.filter_jit(decide)(model, jnp.asarray(window), 4, key, cfg)
    ex = explain(model, window, 4, key, cfg)
    for a, b in zip(d, ex.decision, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert d.segment.shape == (4,) and d.segment.dtype == jnp.float32
    assert np.all(np.asarray(ex.latents[0]) == np.asarray(ex.z0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(mu=1), "mu must be >= 2"),
        (dict(mu=20), "mu must be < T"),
        (dict(n=0), "n must be >= 1"),
        (dict(sigma=-0.1), "sigma"),
        (dict(tol=0.0), "tol"),
        (dict(horizon=1.5), r"float horizon f .* in \(0, 1\]"),
        (dict(horizon=-1), "horizon"),
        (dict(horizon=T + 1), r"must be in \[1, T=20\]"),  # its grid grows with it
        # Scored at the matched tick itself, no rate of the segment would count.
        (dict(horizon=0), r"must be in \[1, T=20\]"),
        (dict(lr_bounds=(0.1, 0.01)), "lr_min < lr_max"),
        (dict(lr_bounds=(0.0, 0.01)), "lr_min < lr_max"),
        (dict(run_ticks=40), "rescale=True"),
        (dict(lr_range_factor=0.5), "lr_range_factor"),
    ],
)
def test_invalid_configuration_is_a_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DecisionConfig.from_model(ScriptedModel(T=T, mu=MU), **kwargs)


def test_a_decision_before_tick_mu_is_refused():
    """The rollout's grid is sized for decisions from tick mu on; an earlier
    t_star would read its default horizon's score past the grid."""
    model = small_model(0)
    cfg = DecisionConfig.from_model(model, n=4)
    window = jnp.tile(jnp.array([1.0, 0.5, 1e-2]), (cfg.mu, 1))
    key = jax.random.key(0)
    for fn in (decide, explain, eqx.filter_jit(decide)):
        with pytest.raises(ValueError, match="before the first decision tick"):
            fn(model, window, cfg.mu - 1, key, cfg)
    # The first decision tick is fine (a Python int under filter_jit stays
    # concrete, so the check above runs; eager decide would be slower).
    eqx.filter_jit(decide)(model, window, cfg.mu, key, cfg)
    # Traced, t_star is the caller's to check (lode_schedule's clock does).
    jax.jit(lambda t: decide(model, window, t, key, cfg).segment)(jnp.int32(1))


def test_a_decision_at_or_past_the_runs_T_is_refused():
    """From the run's T on the default horizon is 0 (explain scored there
    silently) and the model knows nothing: a known t_star is refused, in live
    ticks when rescaling; a traced one is the caller's, as before."""
    model = small_model(0)
    key = jax.random.key(0)
    filtered = eqx.filter_jit(decide)
    for run_ticks in (None, 2 * model.T):
        cfg = DecisionConfig.from_model(
            model, n=4, run_ticks=run_ticks, rescale=run_ticks is not None
        )
        window = jnp.tile(jnp.array([1.0, 0.5, 1e-2]), (cfg.mu, 1))
        past = (cfg.run_ticks, cfg.run_ticks + 5, np.int32(cfg.run_ticks))
        # filter_jit keeps a Python int static (checked), traces a numpy one.
        for fn, ts in ((decide, past), (explain, past), (filtered, past[:2])):
            for t in ts:
                with pytest.raises(ValueError) as err:
                    fn(model, window, t, key, cfg)
                message = str(err.value)
                assert f"t_star={int(t)} must be below the run's T={cfg.run_ticks}" in (
                    message
                )
                assert "lode_schedule never decides there" in message
        # The last tick before T is a decision tick: one tick of horizon.
        last = explain(model, window, cfg.run_ticks - 1, key, cfg)
        assert float(last.horizon) == cfg.tick_scale
    jax.jit(lambda t: decide(model, window, t, key, cfg).segment)(jnp.int32(10**6))


def test_a_config_or_eps_for_another_model_is_refused():
    """A config built for another T would search and score the wrong grid; an
    eps of the wrong width would broadcast or collapse the ensemble."""
    model = small_model(0)
    cfg = DecisionConfig.from_model(model, n=4)
    window = jnp.tile(jnp.array([1.0, 0.5, 1e-2]), (cfg.mu, 1))
    key = jax.random.key(0)
    longer = DecisionConfig.from_model(small_model(0, T=4 * model.T), mu=cfg.mu, n=4)
    for fn in (decide, explain):
        with pytest.raises(ValueError, match=f"this model has T={model.T}"):
            fn(model, window, longer.mu, key, longer)
    latent = model.latent_size
    for eps in (jnp.zeros((4,)), jnp.zeros((4, 1)), jnp.zeros((4, latent + 1))):
        with pytest.raises(ValueError, match=rf"\(n, latent_size\) = \(4, {latent}\)"):
            explain(model, window, cfg.mu, None, cfg, eps=eps)
    explain(model, window, cfg.mu, None, cfg, eps=jnp.zeros((4, latent)))


def test_horizon_type_error():
    with pytest.raises(TypeError, match="horizon"):
        DecisionConfig.from_model(ScriptedModel(T=T, mu=MU), horizon="end")


def test_rescaled_config_resamples_onto_the_model_grid():
    model = ScriptedModel(T=T, mu=MU)
    common = dict(run_ticks=2 * T, mu=8, rescale=True)
    cfg = DecisionConfig.from_model(model, **common)
    assert cfg.tick_scale == 0.5
    # 8 live ticks span 3.5 model ticks: rows 0, 1, 2, 3 model ticks back. (5
    # rows reached 4 model ticks back, before the window: read clamped.)
    assert cfg.window_points == 4
    for run_ticks in range(T // 3, 3 * T):
        for mu in (2, 3, 5, 8):
            if mu >= run_ticks:
                continue
            c = DecisionConfig.from_model(
                model, run_ticks=run_ticks, mu=mu, rescale=True
            )
            if (mu - 1) * c.tick_scale < 1:
                continue  # the encoder's two-row minimum reaches one model tick
            assert (c.window_points - 1) / c.tick_scale <= mu - 1 + 1e-9
    cfg = _config(horizon=10, **common)
    ex = explain(model, _window().repeat(2, 0), 16, None, cfg, eps=_eps())
    # m1's metric rises 0.01 per model tick; a 10-live-tick horizon is 5 model
    # ticks.
    np.testing.assert_allclose(ex.scores[1], 1.0 + 0.01 * 5, rtol=1e-5)
    # m4's segment is read every half model tick from k = 19 + 0.5 (one live
    # tick after the matching tick), linearly interpolated between grid points
    # in raw units.
    grid = np.exp(np.log(0.005) + 0.01 * np.arange(19, 25))
    seg4 = np.interp(19 + 0.5 * (1 + np.arange(8)), np.arange(19, 25), grid)
    np.testing.assert_allclose(ex.segments[4], seg4, rtol=1e-5)


def test_unknown_metric_does_not_hide_the_live_loss():
    """Before the first validation the metric is NaN: those rows are masked
    from the encoder, but their losses still set l* and the threshold."""
    window = _window()
    window[:3, 1] = np.nan  # one complete record, the last
    window[:, 0] = np.exp([0.0, 0.2, -0.2, 0.1])
    ex = explain(ScriptedModel(T=T, mu=MU), window, 8, None, _config(), eps=_eps())
    np.testing.assert_array_equal(ex.window_mask, [False, False, False, True])
    np.testing.assert_allclose(ex.live_loss, 0.1, rtol=1e-5)
    std = np.std([0.0, 0.2, -0.2, 0.1])
    np.testing.assert_allclose(ex.threshold, 2 * max(std, 0.5), rtol=1e-5)
    assert int(ex.decision.accepted) > 0


def test_a_window_without_a_complete_record_holds_the_rate():
    """No finite metric in the window (none measured yet): the encoder sees
    nothing, so its latent is the same whatever the run did, and the decision
    falls back instead of scheduling from it. The live loss is still read."""
    window = _window()
    window[:, 1] = np.nan
    window[:, 0] = np.exp([0.0, 0.2, -0.2, 0.1])
    held = window[-1, 2]
    ex = explain(ScriptedModel(T=T, mu=MU), window, 8, None, _config(), eps=_eps())
    assert not np.asarray(ex.window_mask).any()
    np.testing.assert_allclose(ex.live_loss, 0.1, rtol=1e-5)
    assert np.asarray(ex.match).any()  # members would have matched
    assert int(ex.decision.accepted) == 0 and bool(ex.decision.fallback)
    np.testing.assert_allclose(ex.decision.segment, held, rtol=1e-6)
    d = eqx.filter_jit(decide)(
        ScriptedModel(T=T, mu=MU), window, 8, jax.random.key(0), _config()
    )
    assert bool(d.fallback) and int(d.accepted) == 0


def test_default_mu_is_the_model_window_in_live_ticks():
    model = ScriptedModel(T=T, mu=MU)
    assert DecisionConfig.from_model(model).mu == MU
    cfg = DecisionConfig.from_model(model, run_ticks=3 * T, rescale=True)
    assert cfg.mu == 3 * MU


class _FullRollout:
    """A model that ignores rollout's valid_ticks and cannot resume a rollout:
    every row is computed, in one rollout."""

    rollout_block_ticks = None

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def rollout(self, z0s, num_ticks, *, valid_ticks=None):
        del valid_ticks
        return self._model.rollout(z0s, num_ticks)


@pytest.mark.parametrize(
    ("horizon", "run_ticks", "t_star", "sigma", "tol", "mu"),
    [
        (None, None, 4, 3.0, 100.0, 4),
        (None, None, 40, 3.0, 100.0, 4),
        (None, 150, 120, 3.0, 100.0, 4),
        (0.25, None, 40, 3.0, 100.0, 4),
        (None, None, 4, 1.0, 2.0, 4),
        (None, None, 4, 3.0, 1e-6, 4),
        # T + mu + 1 = 64 rows: the head ends exactly at a rollout block's end.
        (None, None, 4, 3.0, 100.0, 3),
        (None, None, 57, 3.0, 100.0, 3),
    ],
)
def test_decision_reads_only_rows_it_computed(
    horizon, run_ticks, t_star, sigma, tol, mu
):
    """decide rolls out the head T + mu, then only as far as a matching
    member's score reads (at most T + horizon), and decodes the head and the
    score's rows only: the decision and every per-member quantity equal those
    of one full-grid rollout, bit for bit, whether the matches are late
    (wide ensemble, tol=100: some at tick T itself), early or absent."""
    model = small_model(1, T=60)
    cfg = DecisionConfig.from_model(
        model,
        mu=mu,
        n=40,
        sigma=sigma,
        tol=tol,
        horizon=horizon,
        run_ticks=run_ticks,
        rescale=run_ticks is not None,
    )
    window = np.stack(
        [np.linspace(1.2, 0.9, mu), np.linspace(0.4, 0.5, mu), np.full(mu, 0.02)], 1
    )
    eps = jax.random.normal(jax.random.key(4), (40, model.latent_size)).at[0].set(0)
    from optax_lode.decision._decide import _run

    def run(m):
        return jax.jit(lambda w, t: _run(m, w, t, eps, cfg))(window, t_star)

    cut, full = run(model), run(_FullRollout(model))
    if tol < 1e-3:
        assert int(cut.decision.accepted) == 0
    else:
        assert int(cut.decision.accepted) > 0
    if tol == 100:
        # The farthest rows a decision reads: score and segment from tick T.
        assert int(cut.match_tick[cut.accepted].max()) == model.T
    elif tol == 2:
        # Early matches only: the rollout after the head is never read.
        assert int(cut.match_tick[cut.accepted].max()) + cut.horizon < cfg.segment_ticks
    for name in ("accepted", "match_tick", "scores", "segments", "chosen"):
        np.testing.assert_array_equal(getattr(cut, name), getattr(full, name))
    # How far the rollout was needed: the head, or the farthest score row.
    matched = np.asarray(cut.match).any(axis=1)
    far = np.floor(np.asarray(cut.match_tick)[matched] + float(cut.horizon)) + 2
    want = max([cfg.segment_ticks, *np.minimum(far, cfg.grid_ticks)])
    assert int(cut.rollout_ticks) == want == int(full.rollout_ticks)
    if tol != 100:
        assert want == cfg.segment_ticks
    for a, b in zip(cut.decision, full.decision, strict=True):
        np.testing.assert_array_equal(a, b)
    # ... and what it reads is what the whole grid has at those ticks.
    traj = np.asarray(explain(model, window, t_star, None, cfg, eps=eps).trajectories)
    grid = np.arange(traj.shape[1])
    k = np.asarray(cut.match_tick, np.float64)
    r = cfg.tick_scale
    for i in range(cfg.n):
        seg = np.interp(k[i] + r * np.arange(1, cfg.mu + 1), grid, traj[i, :, 2])
        np.testing.assert_allclose(cut.segments[i], seg, rtol=1e-5)
    ok = np.asarray(cut.accepted)
    score = [
        np.interp(k[i] + float(cut.horizon), grid, traj[i, :, 1]) for i in range(cfg.n)
    ]
    np.testing.assert_allclose(
        np.asarray(cut.scores)[ok], np.array(score)[ok], rtol=1e-5
    )


@pytest.mark.parametrize(
    "solver",
    ["heun", pytest.param("tsit5", marks=pytest.mark.slow)],  # tsit5: ~10 s
)
def test_solvers_that_cannot_resume_decide_in_one_rollout(solver):
    """Models whose rollouts cannot stop and resume (all but Euler) take the
    one-rollout path: under jit the decision equals explain's and is a valid
    segment."""
    model = small_model(1, T=60).with_solver(solver)
    assert model.rollout_block_ticks is None
    cfg = DecisionConfig.from_model(model, mu=4, n=8, sigma=1.0, tol=5.0)
    window = np.stack(
        [np.linspace(1.2, 0.9, 4), np.linspace(0.4, 0.5, 4), np.full(4, 0.02)], 1
    )
    key = jax.random.key(2)
    d = eqx.filter_jit(decide)(model, window, 10, key, cfg)
    ex = explain(model, window, 10, key, cfg)
    for a, b in zip(d, ex.decision, strict=True):
        np.testing.assert_array_equal(a, b)
    seg = np.asarray(d.segment)
    assert np.isfinite(seg).all() and (seg >= cfg.lr_min).all()
    assert (seg <= cfg.lr_max).all()
    assert cfg.segment_ticks <= int(ex.rollout_ticks) <= cfg.grid_ticks


def _live_window(loss=1.0, metric=0.6, lr=1e-2):
    # small_model's sweep: log loss ~ N(0, 1), metric ~ N(0.5, 0.2), log lr
    # ~ N(log 1e-2, 1.5).
    return np.array([[loss, metric, lr]] * 4, np.float32)


def test_explain_is_silent_on_records_like_the_sweeps():
    model = small_model()
    cfg = DecisionConfig.from_model(model, mu=4, n=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain(model, _live_window(loss=0.05, metric=0.95), 4, jax.random.key(0), cfg)
        # A metric not yet known (NaN) is not a record to check.
        explain(model, _live_window(metric=np.nan), 4, jax.random.key(0), cfg)


@pytest.mark.parametrize("negated", [False, True])
def test_explain_warns_about_a_metric_of_the_wrong_sign(negated):
    # -0.6 is only 5.5 std from the sweep's mean: not "far", but its negation
    # is 0.5 std from it.
    model = small_model(training_summary={"metric_negated": negated})
    assert model.metric_negated == negated
    cfg = DecisionConfig.from_model(model, mu=4, n=5)
    window = _live_window(metric=-0.6)
    with pytest.warns(OutOfSweepWarning, match="wrong sign") as record:
        explain(model, window, 4, jax.random.key(0), cfg)
    (w,) = record  # one warning per column
    assert w.filename == __file__  # names the caller's line
    message = str(w.message)
    assert "validation metric -0.6" in message and "5.5 standard" in message
    assert ("val_metric=-<metric>" in message) == negated


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        (0, 1e4, "training loss 1e\\+04 .* 9.2 standard .*another scale"),
        (1, 60.0, "validation metric 60 .* 297.5 standard .*percent"),
        (2, 1e-9, "learning rate 1e-09 .* 10.7 standard"),
    ],
)
def test_explain_warns_about_records_far_outside_the_sweep(column, value, match):
    model = small_model()
    cfg = DecisionConfig.from_model(model, mu=4, n=5)
    window = _live_window()
    window[2, column] = value
    with pytest.warns(OutOfSweepWarning, match=match):
        ex = explain(model, window, 4, jax.random.key(0), cfg)
    # A warning, not a refusal: the decision is the one decide makes.
    latent = model.latent_scale.shape[0]
    eps = optax_lode.decision.ensemble_noise(jax.random.key(0), 5, latent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfSweepWarning)
        again = explain(model, window, 4, None, cfg, eps=eps)
    np.testing.assert_array_equal(ex.decision.segment, again.decision.segment)


def test_explain_loss_band_is_the_acceptance_interval_in_raw_units():
    model, cfg = ScriptedModel(T=T, mu=MU), _config()
    ex = explain(model, _window(loss=2.0), 8, None, cfg, eps=_eps())
    # Identity normalisation: l* = log 2, half-width tol * std_floor = 1.
    np.testing.assert_allclose(ex.loss_band, [2.0 / np.e, 2.0 * np.e], rtol=1e-5)
    # A member matches exactly where its raw predicted loss is inside the band.
    pred = np.asarray(ex.trajectories[:, : T + 1, 0])
    lo, hi = np.asarray(ex.loss_band)
    inside = (pred > lo) & (pred < hi)
    np.testing.assert_array_equal(np.asarray(ex.match), inside)
