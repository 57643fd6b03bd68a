"""LatentODE: shapes, masking, failure handling, stability under jit."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optax_lode import LatentODE, Normalisation


@pytest.fixture(scope="module")
def model():
    return LatentODE(T=40, key=jax.random.key(0))


@pytest.fixture(scope="module")
def encode(model):
    """Jitted encode with a mask (tests run jitted, as users do)."""
    return jax.jit(lambda window, mask: model.encode(window, mask))


def test_defaults_follow_paper_and_contract(model):
    assert model.latent_size == 20 and model.hidden_size == 20 and model.depth == 2
    assert model.mu == 2  # 5% of 40, at least 2
    assert model.lr_range.shape == (2,) and model.lr_range[0] < model.lr_range[1]
    assert model.best_lr_path.shape == (40,)
    np.testing.assert_array_equal(model.latent_scale, np.ones(20))
    assert isinstance(model.normalisation, Normalisation)


def test_encode_decode_shapes_and_row_zero(model):
    window = jax.random.normal(jax.random.key(1), (6, 3))

    @jax.jit
    def run(window):
        z0 = model.encode(window)
        z_start = model.encode_start(window)
        return (
            z0,
            model.decode(z0, 17),
            model.decoder(z0),
            model.latent_path(z_start, 6),
        )

    z0, out, decoded_z0, path = run(window)
    assert z0.shape == (20,) and out.shape == (17, 3)
    assert bool(jnp.all(jnp.isfinite(out)))
    # Row 0 is the encoded tick itself: decoding one tick is the decoder of z0.
    np.testing.assert_allclose(out[0], decoded_z0, rtol=1e-5, atol=1e-6)
    # encode = the ODE-RNN's latent at the window's first tick, carried to its last.
    np.testing.assert_allclose(z0, path[-1], rtol=1e-5, atol=1e-6)


def test_masked_rows_are_ignored(encode):
    window = jax.random.normal(jax.random.key(3), (6, 3))
    mask = jnp.array([True, True, False, True, True, True])
    full = jnp.ones(6, bool)
    garbage = window.at[2].set(jnp.array([1e3, jnp.nan, -7.0]))
    np.testing.assert_allclose(encode(window, mask), encode(garbage, mask), rtol=1e-6)
    # A non-finite row is treated as missing even without a mask.
    np.testing.assert_allclose(
        encode(window.at[2].set(jnp.nan), full), encode(window, mask), rtol=1e-6
    )
    # And the mask matters: the same window unmasked encodes differently.
    assert not np.allclose(encode(window, full), encode(window, mask))


def test_non_finite_latent_gives_nan_rows_not_exception(model):
    out = jax.jit(lambda z: model.decode(z, 8))(jnp.full((20,), jnp.nan))
    assert out.shape == (8, 3) and bool(jnp.all(jnp.isnan(out)))
    out = jax.jit(lambda z: model.decode(z, 8))(jnp.full((20,), jnp.inf))
    assert bool(jnp.all(jnp.isnan(out)))


def test_decode_rollout_rows_with_any_non_finite_entry_are_nan(model):
    """decode_rollout, jitted: a row with one +inf, -inf or NaN entry is NaN
    in every output (tanh(inf) alone would be finite), and finite rows are
    the decoder's output bit for bit."""
    width = model.hidden_size
    states = 0.7 * jax.random.normal(jax.random.key(5), (6, 4, width))
    states = states.at[1, 2, 3].set(jnp.inf)
    states = states.at[2, 0, 0].set(-jnp.inf)
    states = states.at[4, 3, width - 1].set(jnp.nan)
    out = np.asarray(jax.jit(lambda s: model.decode_rollout(s))(states))
    bad = np.zeros((6, 4), bool)
    bad[1, 2] = bad[2, 0] = bad[4, 3] = True
    assert np.isnan(out[bad]).all()
    plain = jax.jit(lambda s: model.decoder.after_first(s))(states)
    np.testing.assert_array_equal(out[~bad], np.asarray(plain)[~bad])


def test_adaptive_solver_failure_is_nan_not_exception():
    # A vector field that overflows makes the adaptive solve fail (step rejected
    # to exhaustion of the bounded max_steps); the result must be NaN rows, not a
    # raised error.
    m = LatentODE(T=20, key=jax.random.key(0), solver="tsit5", latent_size=2, depth=0)
    # Linear field dz/dt = 1e4 z: it overflows float32 within the first tick.
    m = eqx.tree_at(
        lambda m: (m.vector_field.layers[0].weight, m.vector_field.layers[0].bias),
        m,
        (jnp.eye(2) * 1e4, jnp.zeros(2)),
    )
    out = jax.jit(lambda z: m.decode(z, 20))(jnp.ones(2))
    # The whole rollout is marked failed: a partial solve is not a prediction.
    assert bool(jnp.all(jnp.isnan(out)))


@pytest.mark.slow  # compiling diffrax's Tsit5 dominates: ~30 s on a loaded CPU
def test_solvers_agree_on_smooth_field():
    z0 = jax.random.normal(jax.random.key(4), (20,))
    models = [
        LatentODE(T=50, key=jax.random.key(0), solver=s)
        for s in ("euler", "heun", "rk4", "tsit5")
    ]
    outs = jax.jit(lambda z: [m.decode(z, 60) for m in models])(z0)
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], atol=5e-3)


@pytest.mark.parametrize("length", [2, 9, 40])
def test_encoder_accepts_any_window_length(model, length):
    window = jax.random.normal(jax.random.key(length), (length, 3))
    z = jax.jit(lambda w: model.encode(w))(window)
    assert z.shape == (20,) and bool(jnp.all(jnp.isfinite(z)))


def test_repeated_calls_do_not_recompile(model):
    traces = {"encode": 0, "decode": 0}

    @jax.jit
    def enc(window):
        traces["encode"] += 1
        return model.encode(window)

    @jax.jit
    def dec(z):
        traces["decode"] += 1
        return jax.vmap(lambda zi: model.decode(zi, 80))(z)

    key = jax.random.key(5)
    for _ in range(4):
        key, k1, k2 = jax.random.split(key, 3)
        enc(jax.random.normal(k1, (2, 3))).block_until_ready()
        dec(jax.random.normal(k2, (30, 20))).block_until_ready()
    assert traces == {"encode": 1, "decode": 1}


def test_constructor_errors_are_clear():
    # Runs too short to decide in (2 <= mu < T): lode_schedule refused the
    # model only later.
    for T in (1, 2):
        with pytest.raises(ValueError, match=rf"at least 3; got {T}: .*Pass T >= 3"):
            LatentODE(T=T, key=jax.random.key(0))
    assert LatentODE(T=3, key=jax.random.key(0)).mu == 2
    with pytest.raises(ValueError, match="solver"):
        LatentODE(T=10, key=jax.random.key(0), solver="dopri9")
    with pytest.raises(ValueError, match="best_lr_path"):
        LatentODE(T=10, key=jax.random.key(0), best_lr_path=np.ones(3))
    with pytest.raises(ValueError, match=r"\(ticks, 3\)"):
        LatentODE(T=10, key=jax.random.key(0)).encode(jnp.zeros((4, 2)))
    # Sizes are whole numbers: 10.9 used to become T=10 silently.
    for kwargs in (dict(T=10.9), dict(T=10, mu=2.5), dict(T=10, depth=True)):
        with pytest.raises(ValueError, match="must be a whole number"):
            LatentODE(key=jax.random.key(0), **kwargs)
    assert LatentODE(T=np.int64(10), mu=3.0, key=jax.random.key(0)).mu == 3
    # Rates the decision clips to and holds: a NaN (the path of a run that
    # ended early) used to save fine and then make the file unloadable.
    ended = np.r_[np.full(9, 1e-2), np.nan]
    for kwargs, match in (
        (dict(best_lr_path=ended), r"best_lr_path .*\[nan\].*forward-fill"),
        (dict(lr_range=[-1.0, 0.1]), "lr_range must be finite and positive"),
        (dict(lr_range=[1e-50, 0.1]), "underflows to 0"),
        (dict(lr_range=[0.1, 1e-3]), r"lr_range must be \(min, max\)"),
        (dict(latent_scale=np.full(20, np.inf)), "latent_scale"),
        # "false" read as true: the model would say its metric was negated.
        (dict(training_summary={"metric_negated": "false"}), "must be a bool"),
    ):
        with pytest.raises(ValueError, match=match):
            LatentODE(T=10, key=jax.random.key(0), **kwargs)
    assert LatentODE(T=10, key=jax.random.key(0), lr_range=[1e-2, 1e-2]).T == 10


def test_normalisation_round_trip():
    raw = np.array([[2.0, 0.3, 1e-3], [0.5, 0.9, 1e-1], [1.0, 0.5, 1e-2]])
    norm = Normalisation.from_data(raw)
    x = norm.forward(raw)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(norm.inverse(x), raw, rtol=1e-5)


@pytest.mark.parametrize("units", [1e-3, 1e-7, 1e-12, 1e6])
def test_the_metrics_units_do_not_change_its_normalisation(units):
    """The same runs with the metric in other units normalise the same: an
    absolute floor on its std (1e-6) read a spread of 3.6e-8 as constant."""
    rng = np.random.default_rng(0)
    raw = np.stack(
        [
            rng.uniform(0.1, 2.0, 50),
            rng.uniform(0.0, 1.0, 50),
            rng.uniform(1e-3, 1e-1, 50),
        ],
        -1,
    )
    other = raw * np.array([1.0, units, 1.0])
    x, y = (Normalisation.from_data(r).forward(r) for r in (raw, other))
    np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)
    # A metric of 0 throughout stays finite (the floor is tiny, not 0).
    zero = raw * np.array([1.0, 0.0, 1.0])
    assert np.all(np.isfinite(Normalisation.from_data(zero).forward(zero)))


@pytest.mark.parametrize(
    "std", [[0.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, np.nan], [1.0, np.inf, 1.0]]
)
def test_normalisation_refuses_a_std_that_is_not_positive(std):
    """A zero std divides by zero (inf features), a negative one silently
    flips a feature's sign: both refused, as the docstring promises."""
    with pytest.raises(ValueError, match="finite std > 0"):
        Normalisation(np.zeros(3), std)
    with pytest.raises(ValueError, match="finite std > 0"):
        Normalisation([0.0, np.nan, 0.0], np.ones(3))
    with pytest.raises(ValueError, match="min_std must be finite and > 0"):
        Normalisation.from_data(np.ones((4, 3)), min_std=0.0)
    # Under a transformation the values are unknown: no check, no error.
    jax.jit(lambda s: Normalisation(jnp.zeros(3), s).std)(jnp.ones(3))


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4", "tsit5"])
def test_decode_many_is_vmapped_decode(solver):
    """The ensemble rollout decide() uses (one batched scan) equals vmap of
    decode, and a non-finite member gives NaN rows without touching others."""
    m = LatentODE(T=30, key=jax.random.key(0), solver=solver)
    z = jax.random.normal(jax.random.key(1), (5, m.latent_size))
    z = z.at[3, 0].set(jnp.nan)
    many = jax.jit(lambda z: m.decode_many(z, 70))(z)
    one = jax.jit(jax.vmap(lambda zi: m.decode(zi, 70)))(z)
    assert many.shape == (5, 70, 3)
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)
    assert bool(jnp.all(jnp.isnan(many[3])))
    assert bool(jnp.all(jnp.isfinite(many[jnp.array([0, 1, 2, 4])])))


@pytest.mark.parametrize("depth, ticks_per_step", [(0, 1), (2, 1), (2, 2), (2, 3)])
def test_folded_euler_matches_plain_euler_over_a_long_rollout(depth, ticks_per_step):
    """The ensemble's Euler rollout carries the first layer's pre-activation
    (one product per step fewer); over 2T ticks it must not drift from the
    plain step that fit() trains with."""
    from optax_lode.model._latent_ode import _UNROLL, _fixed_path

    m = LatentODE(
        T=600, key=jax.random.key(2), depth=depth, ticks_per_step=ticks_per_step
    )
    z = 0.5 * jax.random.normal(jax.random.key(3), (7, m.latent_size))
    folded = jax.jit(lambda z: m.latent_paths(z, 1201))(z)
    plain = jax.jit(
        lambda z: _fixed_path(
            "euler", m.vector_field.batched, 1.0 / m.T, z, 1201, _UNROLL, ticks_per_step
        )
    )(z)
    assert folded.shape == (7, 1201, m.latent_size)
    np.testing.assert_allclose(folded, jnp.swapaxes(plain, 0, 1), atol=1e-5)


@pytest.mark.parametrize("ticks_per_step", [1, 3])
def test_folded_readout_is_the_readout_of_the_folded_path(ticks_per_step):
    """decode_many's rollout carries the decoder's first pre-activation; its
    rows must be that layer applied to the latent rows (including the rows
    interpolated inside a step), and a non-finite member stays non-finite."""
    from optax_lode.model._latent_ode import _UNROLL, _euler_paths_folded

    m = LatentODE(T=300, key=jax.random.key(4), ticks_per_step=ticks_per_step)
    z = 0.5 * jax.random.normal(jax.random.key(5), (6, m.latent_size))
    z = z.at[2, 1].set(jnp.inf)
    first = m.decoder.layers[0]
    got = jax.jit(
        lambda z: _euler_paths_folded(
            m.vector_field, 1.0 / m.T, z, 401, _UNROLL, ticks_per_step, first
        )
    )(z)
    zs = jax.jit(lambda z: m.latent_paths(z, 401))(z)
    want = jnp.swapaxes(zs @ first.weight.T + first.bias, 0, 1)
    assert got.shape == (401, 6, m.hidden_size)
    ok = jnp.array([0, 1, 3, 4, 5])
    np.testing.assert_allclose(got[:, ok], want[:, ok], atol=1e-5)
    assert not bool(jnp.any(jnp.isfinite(got[1:, 2])))
    many = jax.jit(lambda z: m.decode_many(z, 401))(z)
    assert bool(jnp.all(jnp.isnan(many[2, 1:])))
    np.testing.assert_allclose(
        many[ok], jax.vmap(m.decode_latents)(zs[ok]), rtol=1e-5, atol=1e-5
    )


def test_default_ticks_per_step_keeps_150_steps_per_run():
    from optax_lode.model import default_ticks_per_step

    assert default_ticks_per_step(2) == 1
    for T, want in [(3, 1), (60, 1), (299, 1), (300, 2), (600, 4), (1000, 6)]:
        assert default_ticks_per_step(T) == want
        assert LatentODE(T=T, key=jax.random.key(0)).ticks_per_step == want
        assert T // want >= min(T, 150)
    assert LatentODE(T=3000, key=jax.random.key(0), solver="tsit5").ticks_per_step == 1
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="ticks_per_step"):
            LatentODE(T=100, key=jax.random.key(0), ticks_per_step=bad)
    with pytest.raises(ValueError, match="tsit5"):
        LatentODE(T=100, key=jax.random.key(0), solver="tsit5", ticks_per_step=2)


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4"])
def test_a_coarse_step_is_a_fine_grid_solve_interpolated(solver):
    """With s ticks per step, every s-th row is the solve of a run s times
    shorter (same field, step 1/(T/s)), and the rows between are linear
    interpolation of their step's ends."""
    s, T = 3, 90
    coarse = LatentODE(T=T, key=jax.random.key(7), solver=solver, ticks_per_step=s)
    assert coarse.ticks_per_step == s
    from optax_lode.model._latent_ode import _networks

    shorter = LatentODE(T=T // s, key=jax.random.key(0), solver=solver)
    same_steps = eqx.tree_at(_networks, shorter, _networks(coarse))
    z0 = jax.random.normal(jax.random.key(8), (coarse.latent_size,))
    num = 100  # not a multiple of s: the last step is cut short
    path = jax.jit(lambda z: coarse.latent_path(z, num))(z0)
    steps = jax.jit(lambda z: same_steps.latent_path(z, -(-num // s) + 1))(z0)
    assert path.shape == (num, coarse.latent_size)
    np.testing.assert_allclose(path[::s], steps[: len(path[::s])], atol=1e-6)
    for j in range(1, s):
        k = np.arange(j, num, s)
        lo, hi = steps[k // s], steps[k // s + 1]
        np.testing.assert_allclose(path[k], lo + (j / s) * (hi - lo), atol=1e-6)
    many = jax.jit(lambda z: coarse.decode_many(z, num))(jnp.stack([z0, -z0]))
    np.testing.assert_allclose(
        many[0], coarse.decode_latents(path), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("folded", [False, True])
def test_a_step_that_overflows_leaves_its_first_tick_finite(folded):
    """Only ticks after a non-finite step are non-finite, as with one step per
    tick: the step's own first row is its (finite) starting state."""
    m = LatentODE(T=90, key=jax.random.key(3), ticks_per_step=3)
    inf = jnp.full((m.latent_size,), jnp.inf)
    m = eqx.tree_at(lambda m: m.vector_field.layers[-1].bias, m, inf)
    z0 = jnp.zeros((m.latent_size,))
    paths = (
        jax.jit(lambda z: m.latent_paths(z[None], 7)[0])
        if folded
        else jax.jit(lambda z: m.latent_path(z, 7))
    )(z0)
    assert bool(jnp.all(jnp.isfinite(paths[0])))
    assert not bool(jnp.any(jnp.isfinite(paths[3:])))


@pytest.mark.parametrize("ticks_per_step", [1, 3])
def test_rollout_resumes_from_its_end_bit_for_bit(ticks_per_step):
    """rollout(with_end=True) of a whole number of blocks returns the latents
    from which a second rollout continues the first exactly; other solvers,
    partial blocks and valid_ticks are refused with a clear error."""
    m = LatentODE(T=300, key=jax.random.key(9), ticks_per_step=ticks_per_step)
    z = 0.5 * jax.random.normal(jax.random.key(10), (4, m.latent_size))
    block = m.rollout_block_ticks
    assert block == 8 * ticks_per_step
    head_len, num = 5 * block, 500

    @jax.jit
    def two_phase(z, v):
        head, z_end = m.rollout(z, head_len, with_end=True)
        return head, m.rollout(z_end, num - head_len, valid_ticks=v)

    full = jax.jit(lambda z: m.rollout(z, num))(z)
    head, tail = two_phase(z, jnp.asarray(num, jnp.int32))
    np.testing.assert_array_equal(head, full[:head_len])
    np.testing.assert_array_equal(tail, full[head_len:])
    _, none_run = two_phase(z, jnp.asarray(0, jnp.int32))
    assert not bool(jnp.any(jnp.isfinite(none_run)))
    with pytest.raises(ValueError, match="multiple of rollout_block_ticks"):
        m.rollout(z, head_len + 1, with_end=True)
    with pytest.raises(ValueError, match="no valid_ticks"):
        m.rollout(z, head_len, with_end=True, valid_ticks=3)
    rk4 = m.with_solver("rk4")
    assert rk4.rollout_block_ticks is None
    with pytest.raises(ValueError, match="Euler"):
        rk4.rollout(z, head_len, with_end=True)


@pytest.mark.parametrize("ticks_per_step", [1, 3])
def test_rollout_stops_after_valid_ticks_without_changing_them(ticks_per_step):
    """rollout(valid_ticks=v), v traced: rows before v are bit-identical to the
    full rollout's, the blocks never run are NaN (never stale zeros), and v
    beyond the grid runs it all. decode_rollout of any gather of rows equals
    the same rows of decode_many up to rounding (the two matrix products have
    other shapes, so XLA may sum in another order: 1 ulp apart on CPUs
    without AVX-512)."""
    m = LatentODE(T=300, key=jax.random.key(9), ticks_per_step=ticks_per_step)
    z = 0.5 * jax.random.normal(jax.random.key(10), (4, m.latent_size))
    num = 500
    full = jax.jit(lambda z: m.rollout(z, num))(z)
    cut = jax.jit(lambda z, v: m.rollout(z, num, valid_ticks=v))
    assert full.shape == (num, 4, m.hidden_size)
    for v in (1, 77, 301, num, 10 * num):
        got = cut(z, jnp.asarray(v, jnp.int32))
        assert got.shape == full.shape
        np.testing.assert_array_equal(got[: min(v, num)], full[: min(v, num)])
        ran = np.isfinite(np.asarray(got[:, 0, 0]))
        assert ran[: min(v, num)].all()
        assert not ran[min(v, num) + 8 * ticks_per_step :].any()
    many = jax.jit(lambda z: m.decode_many(z, num))(z)
    rows = jnp.array([[0, 5], [499, 17]])
    picked = jax.jit(lambda s: m.decode_rollout(s[rows, jnp.array([1, 3])]))(full)
    np.testing.assert_allclose(
        picked, many[jnp.array([1, 3]), rows], rtol=1e-5, atol=1e-7
    )
