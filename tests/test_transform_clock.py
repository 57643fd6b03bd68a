"""The one clock: steps, ticks, decisions at ticks mu, 2 mu, ...; tick records;
the window; warm start; bad input."""

from __future__ import annotations

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _lode_helpers import T, small_model
from hypothesis import given, settings

from optax_lode.decision import DecisionConfig, decide
from optax_lode.transform import LodeState, lode_schedule

MU = 4


@functools.cache
def _runner(k: int, mu: int = MU):
    """A jitted scan feeding given (value, val_metric) sequences to the bare
    transformation with unit updates, so each output update is the rate."""
    model = small_model(3)
    tx = lode_schedule(model, total_steps=T * k, steps_per_tick=k, mu=mu)

    @jax.jit
    def run(values, metrics):
        def step(s, vm):
            u, s = tx.update({"w": jnp.ones(())}, s, value=vm[0], val_metric=vm[1])
            return s, (u["w"], s)

        return jax.lax.scan(step, tx.init({"w": jnp.ones(())}), (values, metrics))

    return model, tx, run


def _latest(metrics, last):
    """The latest finite metric among ``metrics[: last + 1]`` (NaN if none)."""
    finite = [m for m in metrics[: last + 1] if np.isfinite(m)]
    return finite[-1] if finite else np.nan


def _expected_records(values, metrics, lrs, k, upto=None):
    """Hand-computed tick records in the state after step ``upto`` (default:
    the last): mean finite positive loss, mean applied rate, and the latest
    finite metric known by the first step of the next tick (a tick's metric is
    measured after it, so it arrives with that step)."""
    last = len(values) - 1 if upto is None else upto
    records = []
    for t in range((last + 1) // k):
        sl = slice(t * k, (t + 1) * k)
        v = values[sl]
        ok = np.isfinite(v) & (v > 0)
        loss = v[ok].mean() if ok.any() else np.nan
        held = _latest(metrics, min(last, (t + 1) * k))
        records.append([loss, held, lrs[sl].mean()])
    return np.array(records, np.float64).reshape(-1, 3)


def test_decisions_happen_exactly_at_multiples_of_mu():
    k = 2
    model, _, run = _runner(k)
    steps = T * k
    rng = np.random.default_rng(0)
    values = np.exp(-np.linspace(0, 1, steps) + 0.05 * rng.normal(size=steps))
    metrics = np.linspace(0.2, 0.8, steps)
    final, (lrs, states) = run(jnp.asarray(values, jnp.float32), jnp.asarray(metrics))
    lrs = np.asarray(lrs)
    decisions = np.asarray(states.decisions)
    ticks = np.asarray(states.tick)
    # After step s (0-based) the completed ticks are (s + 1) // k.
    np.testing.assert_array_equal(ticks, (np.arange(steps) + 1) // k)
    # Decisions on the first step of ticks mu, 2 mu, ... (never after the run).
    made = np.flatnonzero(np.diff(np.concatenate([[0], decisions])))
    expect = [s for s in range(k, steps) if s % k == 0 and (s // k) % MU == 0]
    np.testing.assert_array_equal(made, expect)
    assert int(final.decisions) == len(expect) == (T - 1) // MU
    # The rate is constant within a tick, and learning_rate is the applied rate.
    np.testing.assert_array_equal(np.asarray(states.learning_rate), lrs)
    per_tick = lrs.reshape(-1, k)
    assert np.all(per_tick == per_tick[:, :1])
    # Warm start: the first mu ticks follow the best run's (clipped) path.
    np.testing.assert_allclose(
        lrs[: MU * k : k], np.asarray(model.best_lr_path)[:MU], rtol=1e-6
    )
    # The window holds the last mu tick records, equal to hand-computed means.
    rec = _expected_records(values, metrics, lrs, k)
    np.testing.assert_allclose(np.asarray(final.window), rec[-MU:], rtol=1e-5)
    assert all(0.0 < r < 1.0 for r in lrs)
    # A fresh ensemble every decision: the key changes exactly at decisions,
    # to the split a decision makes (the same noise each time would repeat
    # the authors' bug).
    keys = np.asarray(states.key)
    changed = np.flatnonzero(np.any(keys != np.vstack([keys[:1], keys[:-1]]), 1))
    np.testing.assert_array_equal(changed, made)
    assert len({tuple(r) for r in keys}) == len(expect) + 1  # never reused


def test_no_decision_after_the_run_and_the_rate_holds():
    """Steps past total_steps (an extra epoch, or the partial tick a
    total_steps that is not a multiple of steps_per_tick leaves) decide
    nothing: tick T would be a decision tick here (T % mu == 0), but the model
    knows nothing after T. The rate holds the last segment's last rate."""
    k = 2
    _, _, run = _runner(k)
    steps = T * k + 3 * MU * k + 1
    values = np.exp(-np.linspace(0, 1, steps))
    metrics = np.linspace(0.2, 0.8, steps)
    _, (lrs, states) = run(jnp.asarray(values, jnp.float32), jnp.asarray(metrics))
    decisions = np.asarray(states.decisions)
    assert T % MU == 0 and decisions[T * k - 1] == (T - 1) // MU
    np.testing.assert_array_equal(decisions[T * k :], decisions[T * k - 1])
    lrs = np.asarray(lrs)
    np.testing.assert_array_equal(lrs[T * k :], lrs[T * k - 1])
    assert np.all(np.isfinite(lrs)) and np.all(lrs > 0)


def test_past_the_run_the_last_segment_runs_out_then_holds():
    """When mu does not divide T the last decision's segment reaches past T:
    the ticks after T follow it to its end, then its last rate holds."""
    k, mu = 2, 5
    assert T % mu != 0
    _, _, run = _runner(k, mu)
    steps = (T + 2 * mu) * k
    values = np.exp(-np.linspace(0, 1, steps))
    metrics = np.linspace(0.2, 0.8, steps)
    _, (lrs, states) = run(jnp.asarray(values, jnp.float32), jnp.asarray(metrics))
    last = (T - 1) // mu * mu  # the last decision tick
    segment = np.asarray(states.segment)[-1]
    assert int(np.asarray(states.decisions)[-1]) == last // mu
    per_tick = np.asarray(lrs)[::k]
    np.testing.assert_array_equal(per_tick[last : last + mu], segment)
    np.testing.assert_array_equal(per_tick[last + mu :], segment[-1])


def test_a_run_without_a_finite_metric_holds_its_rate():
    """val_metric never finite: no window row is complete, so every decision
    falls back (counted) and the rate stays where the warm start left it."""
    k = 1
    _, _, run = _runner(k)
    steps = T * k
    values = np.exp(-np.linspace(0, 1, steps))
    final, (lrs, _) = run(
        jnp.asarray(values, jnp.float32), jnp.full(steps, jnp.nan, jnp.float32)
    )
    assert int(final.decisions) == int(final.fallbacks) == (T - 1) // MU
    lrs = np.asarray(lrs)
    np.testing.assert_array_equal(lrs[MU:], lrs[MU - 1])


@settings(max_examples=10)
@given(
    k=st.sampled_from([1, 2]),
    data=st.data(),
)
def test_window_always_holds_the_last_mu_records_in_order(k, data):
    _, _, run = _runner(k)
    steps = T * k
    finite = st.floats(0.125, 8.0, width=32)
    bad = st.sampled_from([np.nan, np.inf, -1.0, 0.0])
    values = np.array(
        data.draw(
            st.lists(st.one_of(finite, finite, bad), min_size=steps, max_size=steps)
        ),
        np.float32,
    )
    metrics = np.array(
        data.draw(
            st.lists(
                st.one_of(st.floats(0, 1, width=32), st.just(np.nan)),
                min_size=steps,
                max_size=steps,
            )
        ),
        np.float32,
    )
    _, (lrs, states) = run(jnp.asarray(values), jnp.asarray(metrics))
    lrs = np.asarray(lrs)
    for s in range(steps):
        rec = _expected_records(values, metrics, lrs, k, upto=s)
        done = (s + 1) // k
        expect = np.full((MU, 3), np.nan)
        last = rec[max(0, done - MU) : done]
        if len(last):
            expect[MU - len(last) :] = last
        np.testing.assert_allclose(
            np.asarray(states.window[s]), expect, rtol=1e-5, equal_nan=True
        )
    bad_count = np.sum(~(np.isfinite(values) & (values > 0)))
    assert int(states.nonfinite[-1]) == bad_count


def test_nan_value_is_not_recorded_and_holds_the_rate():
    k = 2
    _, _, run = _runner(k)
    steps = T * k
    values = np.full(steps, 0.5, np.float32)
    values[1] = np.nan  # tick 0 keeps only its other step's loss
    values[2] = np.inf
    values[3] = np.nan  # tick 1 has no finite loss at all
    metrics = np.full(steps, 0.3, np.float32)
    metrics[5:] = np.nan  # "nothing new": hold 0.3
    final, (lrs, states) = run(jnp.asarray(values), jnp.asarray(metrics))
    assert int(final.nonfinite) == 3
    w = np.asarray(states.window[MU * k - 1])  # after the first MU ticks
    np.testing.assert_allclose(w[0, 0], 0.5)
    assert np.isnan(w[1, 0])
    np.testing.assert_allclose(np.asarray(final.window)[:, 1], 0.3)
    assert np.all(np.isfinite(np.asarray(lrs))) and np.all(np.asarray(lrs) > 0)
    assert float(final.metric) == pytest.approx(0.3)


def test_decision_sees_the_metric_measured_after_the_last_tick():
    """The metric of tick t is measured after its last step and passed with the
    first step of tick t + 1; the decision at tick mu runs on that step, with
    it in the window (no one-tick lag), and its segment is applied there."""
    k = 2
    model, _, run = _runner(k)
    steps = T * k
    values = np.exp(-np.linspace(0, 1, steps)).astype(np.float32)
    metrics = np.full(steps, np.nan, np.float32)
    # Measured after tick t (0-based), passed on the first step of tick t + 1.
    metrics[k::k] = 0.1 + 0.01 * np.arange(1, T)
    _, (lrs, states) = run(jnp.asarray(values), jnp.asarray(metrics))
    first = MU * k  # the first step of tick MU: the first decision
    window = np.asarray(states.window[first])
    np.testing.assert_allclose(window[:, 1], 0.1 + 0.01 * np.arange(1, MU + 1))
    assert int(states.decisions[first - 1]) == 0
    assert int(states.decisions[first]) == 1
    # The state's segment is exactly decide() on that window, and this very
    # step applies its first rate.
    config = DecisionConfig.from_model(model, run_ticks=T, mu=MU)
    before = jax.tree.map(lambda x: x[first - 1], states)
    _, sub = jax.random.split(jnp.asarray(before.key, jnp.uint32))
    d = jax.jit(decide, static_argnums=4)(model, window, MU, sub, config)
    np.testing.assert_allclose(
        np.asarray(states.segment[first]), np.asarray(d.segment), rtol=1e-6
    )
    np.testing.assert_allclose(float(lrs[first]), float(d.segment[0]), rtol=1e-6)


# -- bad input ---------------------------------------------------------------------


def _tx(**kw):
    base = dict(total_steps=T, steps_per_tick=1, mu=MU)
    base.update(kw)
    return lode_schedule(small_model(3), **base)


@pytest.mark.parametrize("missing", ["value", "val_metric"])
def test_missing_extra_arg_is_a_type_error_naming_it(missing):
    tx = _tx()
    state = tx.init({"w": jnp.ones(())})
    kwargs = {"value": 1.0, "val_metric": 0.5}
    del kwargs[missing]
    with pytest.raises(TypeError, match=f"needs {missing}="):
        tx.update({"w": jnp.ones(())}, state, **kwargs)
    # None (an optional metric not filled in) is named too, not jnp's message.
    with pytest.raises(TypeError, match=f"got {missing}=None"):
        tx.update({"w": jnp.ones(())}, state, **kwargs, **{missing: None})
    # jnp.asarray would read these as 1.0: an argument mixed up, said so.
    # (and under jit keep only a complex number's real part.)
    for odd in ("1.0", True, jnp.bool_(True), 1 + 2j, jnp.complex64(1.0)):
        with pytest.raises(TypeError, match=f"got {missing}=.*real number"):
            tx.update({"w": jnp.ones(())}, state, **kwargs, **{missing: odd})


def test_non_scalar_value_is_rejected():
    tx = _tx()
    state = tx.init({"w": jnp.ones(())})
    with pytest.raises(ValueError, match="scalars"):
        tx.update({"w": jnp.ones(())}, state, value=jnp.ones(3), val_metric=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(mu=1), "mu must be >= 2"),
        (dict(mu=T), "mu must be < T"),
        (dict(n=0), "n must be >= 1"),
        (dict(sigma=-1.0), "sigma"),
        (dict(steps_per_tick=0), "steps_per_tick"),
        (dict(total_steps=0), "total_steps"),
        (dict(total_steps=2 * T), "rescale=True"),
        (dict(total_steps=T, steps_per_tick=2), "rescale=True"),
        (dict(lr_bounds=(1e39, 1e40)), "float32"),
        (dict(lr_bounds=(1e-50, 1e-45)), "float32"),
        # Past 32 bits a key depends on jax_enable_x64 (2**32 is 0 without it).
        (dict(seed=2**32), r"seed must be a whole number in \[0, 2\*\*32\)"),
        (dict(seed=-1), r"seed must be a whole number in \[0, 2\*\*32\)"),
    ],
)
def test_invalid_configuration_is_a_value_error_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _tx(**kwargs)


def test_rescale_accepts_a_different_run_length():
    tx = _tx(total_steps=2 * T, rescale=True, mu=2 * MU)
    state = tx.init({"w": jnp.ones(())})
    assert state.segment.shape == (2 * MU,)


def test_a_model_that_knows_its_runs_clock_refuses_another():
    """A model fitted to runs of k steps per tick (its training summary):
    the same T on another tick, or another T on the same tick, is refused
    unless rescaled; the right clock is built; a model without one is not
    checked (the T check alone)."""
    model = small_model(3, training_summary={"steps_per_tick": 5})
    assert model.steps_per_tick == 5 and small_model(3).steps_per_tick is None

    def build(total_steps, steps_per_tick, **kw):
        return lode_schedule(
            model, total_steps=total_steps, steps_per_tick=steps_per_tick, mu=MU, **kw
        )

    for ok in (5 * T, 5 * T + 4):  # a partial last tick is no tick
        assert build(ok, 5).init({"w": jnp.ones(())}).run_ticks == T
    for total, k in ((2 * T, 2), (5 * 2 * T, 5), (T, 1)):
        with pytest.raises(ValueError) as err:
            build(total, k)
        message = str(err.value)
        assert f"T={T} ticks of 5 optimizer step(s)" in message
        assert f"steps_per_tick=5, total_steps of {5 * T} to {5 * T + 4}" in message
        assert "rescale=True" in message and "with_steps_per_tick" in message
        assert "--optimizer-steps-per-tick K" in message
    # Rescaling is the explicit way onto another clock.
    assert build(2 * T, 2, rescale=True).init({"w": jnp.ones(())}).run_ticks == T
    assert build(T, 1, rescale=True).init({"w": jnp.ones(())}).run_ticks == T
    unknown = small_model(3)
    tx = lode_schedule(unknown, total_steps=2 * T, steps_per_tick=2, mu=MU)
    assert tx.init({"w": jnp.ones(())}).run_ticks == T
    for bad in (0, 2.0, "5", True):
        with pytest.raises(ValueError, match=r"steps_per_tick'\] must be an int"):
            small_model(3, training_summary={"steps_per_tick": bad})
    # k = unknown.steps_per_tick, None: the message says why and what to pass.
    with pytest.raises(TypeError, match=r"got None \(model.steps_per_tick is"):
        lode_schedule(unknown, total_steps=T, steps_per_tick=unknown.steps_per_tick)


@settings(max_examples=40, deadline=None)
@given(
    fitted=st.integers(1, 6),
    k=st.integers(1, 6),
    total=st.integers(3, 6 * T + 12),
    rescale=st.booleans(),
)
def test_the_clock_check_accepts_exactly_the_fitted_clock(fitted, k, total, rescale):
    """Built iff the run is on the fitted runs' clock (same tick, same T), or
    rescaling is asked for and the run has enough ticks for a window."""
    model = _clocked_model(fitted)
    same = k == fitted and total // k == T
    try:
        tx = lode_schedule(
            model, total_steps=total, steps_per_tick=k, mu=MU, rescale=rescale
        )
    except ValueError:
        assert not same
        return
    assert same or rescale
    assert tx.init({"w": jnp.ones(())}).run_ticks == total // k


@functools.cache
def _clocked_model(steps_per_tick: int):
    return small_model(3, training_summary={"steps_per_tick": steps_per_tick})


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(total_steps=float(T)),
        dict(total_steps=np.float64(T)),
        dict(total_steps=str(T)),
        dict(total_steps=T, steps_per_tick=1.0),
        dict(total_steps=T, steps_per_tick=None),
        dict(total_steps=T, n=30.0),
        dict(total_steps=T, seed=1.0),
    ],
)
def test_an_argument_of_the_wrong_type_is_a_type_error(kwargs):
    """As the docstring says, whichever argument it is (total_steps and
    steps_per_tick raised ValueError); an int out of range stays a
    ValueError (test_invalid_configuration_is_a_value_error_at_construction)."""
    (name,) = [k for k in kwargs if k != "total_steps"] or ["total_steps"]
    with pytest.raises(TypeError, match=f"{name} must be an int, got"):
        lode_schedule(small_model(3), mu=MU, **kwargs)


def test_a_model_of_fewer_than_3_ticks_is_too_short_to_schedule():
    """No window fits runs of T=2 ticks (2 <= mu < T): the message said
    "lower steps_per_tick", even at steps_per_tick=1, and a longer run then
    failed the T check. LatentODE itself now refuses T < 3; the schedule's
    own check still guards a model made otherwise (a stand-in here)."""
    with pytest.raises(ValueError, match="at least 3"):
        small_model(3, T=2)
    model = small_model(3)
    object.__setattr__(model, "T", 2)  # what LatentODE(T=2) used to build
    for kw in (
        dict(total_steps=2),
        dict(total_steps=3),
        dict(total_steps=40, steps_per_tick=2, rescale=True),
    ):
        with pytest.raises(ValueError) as err:
            lode_schedule(model, **kw)
        message = str(err.value)
        assert "model's runs are too short to schedule" in message
        assert "T=2" in message and "T >= 3" in message
        assert "steps_per_tick" not in message
    # A run too short for a model that is not: lower steps_per_tick only if
    # there is one to lower.
    with pytest.raises(ValueError) as err:
        lode_schedule(small_model(3), total_steps=2)
    assert "(raise total_steps)" in str(err.value)
    with pytest.raises(ValueError, match=r"raise total_steps or lower steps_per_tick"):
        lode_schedule(small_model(3), total_steps=5, steps_per_tick=2)


def test_finite_diagnostics_read_eagerly_under_debug_nans():
    """Each named field bitcasts its own word only: reading a finite one
    outside jit never trips jax_debug_nans on the NaN placeholders beside it
    (the metric before a validation, last_score before a decision), on one
    run's state or one stacked over runs; the values are the vectors'."""
    from optax_lode.transform._schedule import _COUNTERS, _SCALARS

    tx = _tx()
    w = {"w": jnp.ones(())}
    fresh = jax.jit(tx.init)(w)
    _, stepped = jax.jit(tx.update)(w, fresh, value=1.0, val_metric=0.5)
    stacked = jax.jit(jax.vmap(tx.init))({"w": jnp.ones(3)})
    cases = [
        (fresh, ["loss_sum"]),
        (stepped, ["loss_sum", "metric"]),
        (stacked, ["loss_sum"]),
    ]
    assert np.isnan(fresh.metric) and np.isnan(stepped.last_score)
    for state, scalars in cases:
        expected = {
            f: np.asarray(state.counters)[..., i] for i, f in enumerate(_COUNTERS)
        }
        for f in scalars:
            expected[f] = np.asarray(state.scalars)[..., _SCALARS.index(f)]
        with jax.debug_nans(True):
            got = {
                f: np.asarray(getattr(state, f))
                for f in [*expected, "segment", "key", "learning_rate"]
            }
        for f, want in expected.items():
            np.testing.assert_array_equal(got[f], want, err_msg=f)
            assert got[f].dtype == want.dtype, f
    assert float(stepped.metric) == 0.5
    assert stacked.tick.shape == stacked.metric.shape == (3,)


def test_numpy_ints_and_odd_bounds_are_read_as_python_values():
    """np.int8(mu) used to overflow in the static arithmetic; a dict's keys and
    a string's characters were read as lr_bounds."""
    tx = _tx(mu=np.int8(MU), n=np.uint8(4), horizon=np.int16(3))
    state = tx.init({"w": jnp.ones(())})
    for _ in range(MU + 1):  # one step per tick: the first decision at tick MU
        _, state = jax.jit(tx.update)(
            {"w": jnp.ones(())}, state, value=1.0, val_metric=0.5
        )
    assert int(state.decisions) == 1
    config = DecisionConfig.from_model(small_model(3), mu=np.int8(MU), n=np.uint8(4))
    assert type(config.mu) is int and type(config.n) is int
    for bad in ({1e-3: 0, 1e-1: 0}, "ab"):
        with pytest.raises(ValueError, match="lr_bounds must be a pair"):
            _tx(lr_bounds=bad)
    with pytest.raises(ValueError, match="lr_range_factor"):
        _tx(lr_bounds=(1e-3, 1e-1), lr_range_factor=0.5)


def test_a_non_model_is_a_type_error():
    with pytest.raises(TypeError, match="LatentODE"):
        lode_schedule(object(), total_steps=T)


def test_diagnostics_are_read_from_the_state_not_by_tree_get():
    """As docs/schedule.md says: only learning_rate is a tree field."""
    import optax

    tx = optax.chain(optax.sgd(1.0), _tx())
    state = tx.init({"w": jnp.ones(())})
    assert optax.tree.get(state, "decisions") is None
    lode = optax.tree.get(state, "LodeState")
    assert int(lode.decisions) == 0 and float(
        optax.tree.get(state, "learning_rate")
    ) == float(lode.learning_rate)


def test_a_state_of_another_mu_is_refused_and_run_ticks_follows_the_schedule():
    """A state continued by a schedule of another configuration: another mu is
    refused with what to do (decide's shape error said nothing of states);
    another total_steps (rescaled) takes over run_ticks at the first update."""
    w = {"w": jnp.ones(())}
    old = _tx(mu=MU)
    state = old.init(w)
    with pytest.raises(ValueError, match="made by another lode_schedule"):
        jax.jit(_tx(mu=MU + 2).update)(w, state, value=1.0, val_metric=0.5)
    longer = _tx(total_steps=2 * T, rescale=True)
    assert int(state.run_ticks) == T
    _, state = jax.jit(longer.update)(w, state, value=1.0, val_metric=0.5)
    assert int(state.run_ticks) == 2 * T


def test_pack_names_unknown_and_missing_fields():
    import chex

    from optax_lode.transform import LodeState
    from optax_lode.transform._schedule import _COUNTERS, _SCALARS

    state = _tx().init({"w": jnp.ones(())})
    parts = {
        n: getattr(state, n) for n in ("window", "segment", "learning_rate", "key")
    }
    named = {n: getattr(state, n) for n in _COUNTERS + _SCALARS}
    chex.assert_trees_all_equal(LodeState.pack(**parts, **named), state)
    named["metrc"] = named.pop("metric")
    with pytest.raises(TypeError, match=r"missing \['metric'\], unknown \['metrc'\]"):
        LodeState.pack(**parts, **named)


# -- from an audit as an Optax user ---------------------------------------------


def test_a_state_cast_or_averaged_as_a_tree_is_refused_not_misread():
    """Its data are raw uint32 bits: a tree-wide cast turned tick 6 into
    1086324736 and failed later as an invalid PRNG key."""
    import optax

    tx = optax.chain(optax.sgd(1.0), _tx())
    params = {"w": jnp.ones(())}
    state = tx.init(params)
    step = jax.jit(lambda s: tx.update(params, s, params, value=1.0, val_metric=0.5))
    for cast in (
        lambda s: jax.tree.map(lambda x: x.astype(jnp.float32), s),
        lambda s: optax.tree.cast(s, jnp.bfloat16),
    ):
        with pytest.raises(TypeError, match=r"data is (float32|bfloat16) .* is_leaf="):
            step(cast(state))
    # Passing LodeState nodes through, as the message says, works.
    kept = jax.tree.map(
        lambda x: x if isinstance(x, LodeState) else x.astype(jnp.float32),
        state,
        is_leaf=lambda x: isinstance(x, LodeState),
    )
    step(kept)


def test_value_as_a_list_names_the_argument():
    tx = _tx()
    state = tx.init({"w": jnp.ones(())})
    for bad in ([0.5], {"loss": 0.5}):
        with pytest.raises(TypeError, match=r"update got value=.*; pass a real number"):
            tx.update({"w": jnp.ones(())}, state, value=bad, val_metric=0.5)


def test_the_state_prints_its_clock_and_diagnostics_and_reads_on_the_host():
    """Its repr showed uint32 bit patterns; lode_diagnostics tripped
    jax_debug_nans on last_score's NaN before the first decision."""
    from optax_lode.tracking import lode_diagnostics
    from optax_lode.tracking._diagnostics import DIAGNOSTIC_FIELDS

    tx = _tx()
    state = tx.init({"w": jnp.ones(())})
    for _ in range(MU + 1):  # the first decision at tick MU
        _, state = jax.jit(tx.update)(
            {"w": jnp.ones(())}, state, value=1.0, val_metric=0.5
        )
    text = repr(state)
    assert text.startswith("LodeState(learning_rate=")
    assert f"tick={MU + 1} of {T}, count={MU + 1}, decisions=1" in text
    assert f"mu={MU}, data=uint32[{state.data.shape[0]}])" in text
    # Stacked, traced or abstract: the plain NamedTuple form.
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    assert repr(stacked).startswith("LodeState(learning_rate=Array([")
    assert "ShapeDtypeStruct" in repr(jax.eval_shape(lambda: state))
    fresh = tx.init({"w": jnp.ones(())})
    with jax.debug_nans(True):
        diag = lode_diagnostics(fresh)
        repr(fresh)
    assert np.isnan(diag["last_score"]) and diag["tick"] == 0.0
    assert tuple(diag) == DIAGNOSTIC_FIELDS  # the documented order, not sorted
    assert lode_diagnostics(state)["decisions"] == 1.0


def test_configuration_is_read_strictly():
    """Numpy small ints overflowed in total_steps // steps_per_tick; bools and
    strings passed as bounds; a truthy string rescaled; a factor beside
    lr_bounds was ignored; a default mu of the model's whole run blamed T."""
    model = small_model(3, T=600)
    tx = lode_schedule(model, total_steps=30000, steps_per_tick=np.int8(50), mu=30)
    assert int(tx.init({"w": jnp.ones(())}).run_ticks) == 600
    for kw, error, match in [
        (dict(lr_bounds=(True, 2)), TypeError, "pair of real numbers"),
        (dict(lr_bounds=("1e-3", "0.1")), TypeError, "pair of real numbers"),
        (dict(rescale="no"), TypeError, "rescale must be True or False"),
        (dict(lr_range_factor=True), TypeError, "lr_range_factor"),
        (dict(lr_range_factor=float("inf")), ValueError, "finite number >= 1"),
        (dict(lr_bounds=(1e-3, 1e-1), lr_range_factor=3.0), ValueError, "one of"),
        # The decision computes in float32: 0 there (every decision a
        # fallback) or NaN members.
        (dict(tol=1e-46), ValueError, "tol must be a normal float32"),
        (dict(std_floor=1e-46), ValueError, "std_floor must be a normal float32"),
        (dict(sigma=1e39), ValueError, "overflows float32"),
    ]:
        with pytest.raises(error, match=match):
            _tx(**kw)
    whole = small_model(3, mu=T)  # a window of the model's whole run
    with pytest.raises(ValueError, match=r"model.mu=24 of its T=24 .* pass mu="):
        lode_schedule(whole, total_steps=T)
    with pytest.raises(ValueError, match=r"scaled to the run's 48 ticks\): 48"):
        lode_schedule(whole, total_steps=2 * T, rescale=True)
    assert lode_schedule(whole, total_steps=T, mu=MU) is not None


def test_a_known_t_star_must_be_a_whole_tick():
    model = small_model(3)
    config = DecisionConfig.from_model(model, mu=MU)
    window = jnp.ones((MU, 3))
    key = jax.random.key(0)
    assert decide(model, window, 5.0, key, config).segment.shape == (MU,)
    for bad, error in ((4.9, ValueError), (True, TypeError), ("5", TypeError)):
        with pytest.raises(error, match="t_star must be"):
            decide(model, window, bad, key, config)
