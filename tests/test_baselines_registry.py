"""Every baseline: built by name, jitted in a loop, uniform extra args, lr readable."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optax_lode.baselines import (
    BASELINES,
    SCHEDULE_SHAPES,
    eval_params,
    make_baseline,
    parametric_schedule,
)

TOTAL_STEPS = 150
CURVATURE = jnp.array([1.0, 3.0, 0.3, 2.0])


def _loss(params):
    # A small ill-conditioned quadratic plus a bias term: two leaves.
    return 0.5 * jnp.sum(CURVATURE * (params["w"] - 1.0) ** 2) + jnp.sum(
        params["b"] ** 2
    )


def _params():
    return {"w": jnp.zeros(4), "b": jnp.full((2,), 0.5)}


def _lr_for(name):
    return 1.0 if BASELINES[name].learning_rate_role == "multiplier" else 0.05


def _train(tx, params, num_steps=TOTAL_STEPS):
    """One jitted lax.scan loop; extra args passed as a training loop would."""

    @jax.jit
    def run(params):
        state = tx.init(params)

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(_loss)(params)
            updates, state = tx.update(
                grads, state, params, value=loss, val_metric=-loss, unused_extra=1.0
            )
            lr = optax.tree.get(state, "learning_rate")
            return (optax.apply_updates(params, updates), state), (loss, lr)

        return jax.lax.scan(step, (params, state), None, length=num_steps)

    return run(params)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_reduces_the_loss_jitted(name):
    tx = make_baseline(
        name, learning_rate=_lr_for(name), total_steps=TOTAL_STEPS, weight_decay=1e-4
    )
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    params0 = _params()
    (params, state), (losses, lrs) = _train(tx, params0)
    final = float(_loss(eval_params(name, params, state)))
    assert np.all(np.isfinite(np.asarray(losses)))
    assert final < 0.05 * float(_loss(params0)), (name, final)
    # The effective learning rate: one float32 scalar, finite and positive.
    lrs = np.asarray(lrs)
    assert lrs.shape == (TOTAL_STEPS,) and lrs.dtype == np.float32
    assert np.all(np.isfinite(lrs)) and np.all(lrs >= 0)
    # Only schedule-free's warm-up (optax's, from 0) starts at a zero rate.
    assert np.all(lrs[1:] > 0)
    if name in SCHEDULE_SHAPES:
        sched = parametric_schedule(name, _lr_for(name), TOTAL_STEPS)
        np.testing.assert_allclose(
            lrs, jax.vmap(sched)(jnp.arange(TOTAL_STEPS)), rtol=1e-5, atol=1e-9
        )
    # State shapes and dtypes never change (no recompilation across steps).
    init_state = tx.init(params0)
    chex.assert_trees_all_equal_shapes_and_dtypes(init_state, state)


@pytest.mark.parametrize(
    "shape",
    [
        "onecycle",
        *(
            pytest.param(s, marks=pytest.mark.slow)
            for s in ("constant", "cosine", "exponential", "step")
        ),
    ],
)
def test_parametric_baseline_is_adamw_with_the_schedule(shape):
    lr, wd = 0.03, 1e-2
    tx = make_baseline(shape, learning_rate=lr, total_steps=40, weight_decay=wd)
    sched = parametric_schedule(shape, lr, 40)
    ref = optax.adamw(sched, weight_decay=wd)
    (p_ours, s_ours), (_, lrs) = _train(tx, _params(), num_steps=40)
    (p_ref, _), _ = _train(ref_with_lr(ref, sched), _params(), num_steps=40)
    chex.assert_trees_all_close(p_ours, p_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        lrs, jax.vmap(sched)(jnp.arange(40)), rtol=1e-5, atol=1e-9
    )
    assert int(s_ours.step) == 40


def ref_with_lr(tx, sched):
    """The reference optimizer, with the same lr record (so _train can read it)."""
    inner = optax.with_extra_args_support(tx)

    def init(params):
        return {
            "learning_rate": jnp.asarray(sched(0), jnp.float32),
            "s": inner.init(params),
        }

    def update(g, state, params=None, **extra):
        u, s = inner.update(g, state["s"], params, **extra)
        return u, {"learning_rate": state["learning_rate"], "s": s}

    return optax.GradientTransformationExtraArgs(init, update)


def test_schedule_shapes_by_hand():
    steps = 100

    def rates(shape):
        sched = parametric_schedule(shape, 0.1, steps)
        return np.asarray(jax.jit(jax.vmap(sched))(jnp.arange(steps + 1)))

    table = {shape: rates(shape) for shape in SCHEDULE_SHAPES}
    np.testing.assert_allclose(table["constant"], 0.1)
    np.testing.assert_allclose(
        table["cosine"][[0, 50, 100]], [0.1, 0.05, 0.0], atol=1e-7
    )
    np.testing.assert_allclose(table["onecycle"][[0, 30]], [0.1 / 25, 0.1], rtol=1e-5)
    assert np.argmax(table["onecycle"]) == 30
    np.testing.assert_allclose(table["exponential"][[0, 100]], [0.1, 0.001], rtol=1e-5)
    np.testing.assert_allclose(
        table["step"][[49, 50, 74, 75]], [0.1, 0.01, 0.01, 0.001], rtol=1e-5
    )
    for shape, r in table.items():
        assert np.all(r[:steps] > 0), shape  # log(lr) finite in every record


@pytest.mark.parametrize(
    "steps, expected",
    [(1, [0.001]), (2, [0.1, 0.001]), (3, [0.1, 0.01, 0.001])],
)
def test_step_shape_divides_by_100_in_very_short_runs(steps, expected):
    # Both boundaries fall on one step under 3 steps; both divisions apply.
    sched = parametric_schedule("step", 0.1, steps)
    rates = jax.jit(jax.vmap(sched))(jnp.arange(steps))
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_parameter_names_that_clash_with_optimizer_state_fields(name):
    """A LayerNorm's ``scale`` (or a ``count``) in the parameters also appears
    in Adam's moments: no baseline may look its own state up by such a name
    (reduce-on-plateau did, and failed on the text transformer)."""
    tx = make_baseline(name, learning_rate=_lr_for(name), total_steps=TOTAL_STEPS)
    params = {"ln": {"scale": jnp.ones(3), "bias": jnp.zeros(3)}, "count": jnp.ones(2)}

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(
            lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))
        )(params)
        updates, state = tx.update(grads, state, params, value=loss, val_metric=-loss)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(3):
        params, state = step(params, state)
    lr = optax.tree.get(state, "learning_rate")
    assert np.isfinite(float(lr)) and float(lr) >= 0


def test_reduce_on_plateau_needs_value_and_reduces_on_a_plateau():
    tx = make_baseline(
        "reduce-on-plateau",
        learning_rate=0.1,
        total_steps=100,
        patience=2,
        accumulation_size=1,
        factor=0.5,
    )
    params = jnp.ones(2)
    state = tx.init(params)
    with pytest.raises(TypeError, match="value"):
        tx.update(params, state, params)
    update = jax.jit(lambda s, v: tx.update(params, s, params, value=v)[1])
    for value in (1.0, 1.0, 1.0, 1.0):  # flat: a plateau after `patience`
        state = update(state, value)
    np.testing.assert_allclose(optax.tree.get(state, "learning_rate"), 0.05)


def test_schedule_free_is_evaluated_at_its_average():
    tx = make_baseline("schedule-free", learning_rate=0.05, total_steps=TOTAL_STEPS)
    (params, state), _ = _train(tx, _params())
    ev = eval_params("schedule-free", params, state)
    expected = optax.contrib.schedule_free_eval_params(
        optax.tree.get(state, "ScheduleFreeState"), params
    )
    chex.assert_trees_all_close(ev, expected)
    # y (trained) and x (evaluated, the average) differ.
    assert not np.allclose(ev["w"], params["w"])
    # Other baselines are evaluated at their params; a wrong state is refused.
    cos = make_baseline("cosine", learning_rate=0.05, total_steps=10)
    assert eval_params("cosine", params, cos.init(params)) is params
    with pytest.raises(ValueError, match="ScheduleFreeState"):
        eval_params("schedule-free", params, cos.init(params))
    # The schedule-free state under another name is a mix-up, not "use params".
    with pytest.raises(ValueError, match="schedule-free optimizer's state"):
        eval_params("cosine", params, state)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("adagrad", learning_rate=0.1, total_steps=10)
    with pytest.raises(TypeError, match="does not accept"):
        make_baseline("cosine", learning_rate=0.1, total_steps=10, hyper_lr=1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        make_baseline("cosine", learning_rate=-0.1, total_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        make_baseline("cosine", learning_rate=0.1, total_steps=0)
    with pytest.raises(ValueError, match="weight_decay"):
        make_baseline("cosine", learning_rate=0.1, total_steps=10, weight_decay=-1.0)
    with pytest.raises(ValueError, match="total_steps"):
        make_baseline("cosine", learning_rate=0.1, total_steps=True)
    with pytest.raises(ValueError, match="learning_rate"):
        make_baseline("cosine", learning_rate=jnp.array([0.1, 0.2]), total_steps=10)
    # numpy and JAX scalars are numbers too.
    a = make_baseline("cosine", learning_rate=0.1, total_steps=10)
    b = make_baseline(
        "cosine", learning_rate=jnp.float32(0.1), total_steps=np.int64(10)
    )
    params = {"w": jnp.ones(2)}
    ua, _ = a.update(params, a.init(params), params)
    ub, _ = b.update(params, b.init(params), params)
    chex.assert_trees_all_close(ua, ub)
    with pytest.raises(ValueError, match="shape"):
        parametric_schedule("linear", 0.1, 10)
    with pytest.raises(ValueError, match="unknown baseline"):
        eval_params("sgd", {}, ())


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("hd-sgd", "min_learning_rate", -1.0),  # negative logged rates
        ("constant", "b2", float("nan")),  # NaN losses
        ("constant", "b1", 1.5),  # growing moments
        ("hd-sgd", "momentum", 2.0),
        ("hd-adam", "eps", 0.0),
        ("prodigy", "betas", (0.9, 1.0)),
        ("reduce-on-plateau", "accumulation_size", 0),
        ("schedule-free", "warmup_fraction", 1.5),
        ("dog", "eps", -1e-6),
        ("reduce-on-plateau", "patience", 2.5),  # a count: acted as 3
        # optax cuts at plateau count == patience: 0 cut on every improvement.
        ("reduce-on-plateau", "patience", 0),
        ("schedule-free", "warmup_fraction", 1.0),  # the builder's [0, 1)
        ("reduce-on-plateau", "accumulation_size", 2.5),
        ("schedule-free", "weight_lr_power", -1.0),
        ("schedule-free", "b1", 0.0),  # optax's needs b1 > 0: NaN at once
        ("reduce-on-plateau", "factor", "0.5"),  # failed inside optax, unnamed
        ("reduce-on-plateau", "factor", 1.0),  # no cut
        ("reduce-on-plateau", "rtol", 0.0),  # optax needs rtol or atol > 0
    ],
)
def test_options_out_of_range_are_named(name, option, value):
    """make_baseline promises a ValueError on invalid numbers: options too,
    not only the learning rate (they used to train silently wrong)."""
    with pytest.raises(ValueError, match=f"option {option}=.* must be in"):
        make_baseline(name, learning_rate=0.1, total_steps=10, **{option: value})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # A string was converted ("0.1" trained) or failed unnamed ("must be
        # real number, not NoneType").
        (dict(learning_rate="0.1"), r"learning_rate must be a finite real number"),
        (dict(learning_rate=True), r"learning_rate must be a finite real number"),
        (dict(weight_decay=None), r"weight_decay must be a finite real .*None"),
        (dict(weight_decay="0.1"), r"weight_decay must be a finite real .*'0.1'"),
        (dict(weight_decay=float("nan")), r"weight_decay must be a finite real"),
        # Any truthy value switched a boolean option on, "no" too.
        (dict(nesterov="yes"), r"option nesterov must be True or False, got 'yes'"),
        (dict(nesterov=1), r"option nesterov must be True or False, got 1"),
    ],
)
def test_arguments_of_the_wrong_kind_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_baseline("cosine", **{"learning_rate": 0.1, "total_steps": 10, **kwargs})


def test_boolean_options_take_bools():
    make_baseline("cosine", learning_rate=0.1, total_steps=10, nesterov=True)
    make_baseline("prodigy", learning_rate=1.0, total_steps=10, safeguard_warmup=False)
    with pytest.raises(ValueError, match="option safeguard_warmup must be True"):
        make_baseline("prodigy", learning_rate=1.0, total_steps=10, safeguard_warmup=0)


@pytest.mark.parametrize(
    "name, option, value, match",
    [
        ("prodigy", "betas", (0.9, 0.99, 0.5), "betas must be a pair"),
        ("prodigy", "betas", 0.9, "betas must be a pair"),
        ("dog", "init_step", 1e-3, "init_step must be a pair"),
        ("dog", "init_step", ("distances", 1e-3), "init_step must be a pair"),
        ("dog", "init_step", ("heuristic", 0.0), "init_step must be a pair"),
    ],
)
def test_paired_options_are_checked_when_built(name, option, value, match):
    """They failed later with a bare unpacking error (or not at all)."""
    with pytest.raises(ValueError, match=match):
        make_baseline(name, learning_rate=1.0, total_steps=10, **{option: value})
    good = {"betas": (0.9, 0.99), "init_step": ("heuristic", 1e-6)}[option]
    make_baseline(name, learning_rate=1.0, total_steps=10, **{option: good})


def test_a_rate_floor_above_the_rate_is_refused():
    """The floor set the first step's rate, not alpha_0 (baselines.md: the
    first step keeps alpha_0); hd_sgd itself took a momentum of 1.5."""
    from optax_lode.baselines import hd_sgd, scale_by_hypergradient

    with pytest.raises(ValueError, match=r"min_learning_rate=0.1 is above"):
        make_baseline(
            "hd-sgd", learning_rate=0.01, total_steps=10, min_learning_rate=0.1
        )
    with pytest.raises(ValueError, match=r"min_learning_rate=0.1 is above"):
        scale_by_hypergradient(optax.identity(), 0.01, 1e-3, min_learning_rate=0.1)
    with pytest.raises(ValueError, match=r"min_learning_rate must be >= 0"):
        scale_by_hypergradient(optax.identity(), 0.01, 1e-3, min_learning_rate=-1.0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        hd_sgd(0.01, 1e-3, momentum=1.5)
    make_baseline("hd-sgd", learning_rate=0.01, total_steps=10, min_learning_rate=0.01)


def test_options_at_the_edges_of_their_ranges_build():
    for name, options in [
        ("hd-adam", dict(b1=0.0, min_learning_rate=None, hyper_lr=0.0)),
        ("reduce-on-plateau", dict(patience=1, accumulation_size=1, min_scale=1.0)),
        ("reduce-on-plateau", dict(rtol=1.0, factor=0.01)),
        ("schedule-free", dict(b1=1e-3)),
        ("schedule-free", dict(warmup_fraction=0.0)),
    ]:
        make_baseline(name, learning_rate=0.1, total_steps=10, **options)


def test_registry_lists_the_paper_baselines():
    for name in (
        "constant",
        "cosine",
        "onecycle",
        "exponential",
        "step",
        "hd-sgd",
        "hd-adam",
        "schedule-free",
        "reduce-on-plateau",
        "prodigy",
        "dog",
    ):
        spec = BASELINES[name]
        assert spec.name == name and spec.default_learning_rates


@pytest.mark.parametrize("init_step", [("learning_rate", 0.1), ("distance", 1e-3)])
def test_dog_records_the_rate_its_first_step_used(init_step):
    """With init_step=("learning_rate", x) DoG's first step is x, not
    max_dist / sqrt(G) (which is 0 there): the recorded rate must say so."""
    tx = make_baseline("dog", learning_rate=1.0, total_steps=10, init_step=init_step)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    applied = float(-updates["w"][0] / grads["w"][0])
    lr = float(optax.tree.get(state, "learning_rate"))
    assert lr == pytest.approx(applied, rel=1e-6) and lr > 0


def test_parametric_schedule_takes_numpy_integers():
    """np.int64(100) (a step count read from an array) was refused as "not an
    int >= 1, got 100"; bools and floats still are."""
    from optax_lode.baselines import parametric_schedule

    sched = parametric_schedule("cosine", 0.1, np.int64(100))
    assert float(sched(0)) == pytest.approx(0.1)
    assert float(sched(100)) == pytest.approx(0.0, abs=1e-9)
    for bad in (True, 100.0):
        with pytest.raises(ValueError, match="total_steps must be an int"):
            parametric_schedule("cosine", 0.1, bad)
