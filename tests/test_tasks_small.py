"""Registry and the offline tasks: digits, MNIST-1D, text-transformer."""

from __future__ import annotations

import functools
import random

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode.sweep import make_schedule, sweep_optimizer, train_run
from optax_lode.tasks import TASKS, Task, get_task, metric_name
from optax_lode.tasks._nnx_task import epoch_batch_fn
from optax_lode.tasks._small import digits_data, mnist1d_data
from optax_lode.tasks._text import text_corpus

_SMALL = {
    "digits-mlp": {},
    "digits-cnn": {"channels": 8},
    "mnist1d-mlp": {},
    "mnist1d-cnn": {"channels": 16},
    "text-transformer": {
        "corpus_bytes": 40_000,
        "context": 32,
        "batch_size": 16,
        "dim": 32,
        "heads": 2,
        "layers": 1,
    },
}


def test_registry_lists_every_task_and_rejects_unknown_names():
    assert set(TASKS) >= {
        "nqm",
        "digits-mlp",
        "digits-cnn",
        "mnist1d-mlp",
        "mnist1d-cnn",
        "text-transformer",
        "fashion_mnist-cnn",
        "cifar100-resnet18",
    }
    with pytest.raises(KeyError, match="registered tasks"):
        get_task("mnist-mlp")
    with pytest.raises(TypeError):
        get_task("digits-mlp", no_such_argument=1)


def test_metric_name_says_what_the_metric_measures():
    assert metric_name(get_task("nqm")) == "neg_log_loss"
    assert metric_name(get_task("digits-mlp")) == "accuracy"

    class Bare:  # a user's task that does not say
        name = "mine"

    assert metric_name(Bare()) == "metric"
    Bare.metric_name = "val accuracy"
    with pytest.raises(ValueError, match="'mine': metric_name must be an identifier"):
        metric_name(Bare())


@pytest.mark.parametrize(
    "name",
    [
        "digits-mlp",
        "mnist1d-mlp",
        pytest.param("digits-cnn", marks=pytest.mark.slow),
        pytest.param("mnist1d-cnn", marks=pytest.mark.slow),
        pytest.param("text-transformer", marks=pytest.mark.slow),
    ],
)
def test_loss_falls_over_a_short_run(name):
    task = get_task(name, **_SMALL[name])
    assert isinstance(task, Task) and task.name == name
    epochs = 2 if name != "text-transformer" else 1
    ticks = 3
    total = epochs * ticks * (task.steps_per_epoch // ticks)
    tx = sweep_optimizer(make_schedule("constant", 3e-3, total), weight_decay=1e-4)
    run = train_run(task, tx, seed=0, epochs=epochs, ticks_per_epoch=ticks)
    assert run.mask.all()
    assert run.loss[-1] < 0.8 * run.loss[0], run.loss
    assert 0.0 <= run.metric[-1] <= 1.0 and 0.0 <= run.test_metric <= 1.0
    # better than chance (10 classes; bytes: far above 1/256)
    assert run.metric[-1] > (0.2 if name != "text-transformer" else 0.1)


def test_splits_are_fixed_and_disjoint():
    for data, sizes in (
        (digits_data(), (1197, 300, 300)),
        (mnist1d_data(), (4000, 1000, 1000)),
    ):
        assert tuple(len(data[s][1]) for s in ("train", "val", "test")) == sizes
        rows = np.concatenate(
            [data[s][0].reshape(len(data[s][0]), -1) for s in ("train", "val", "test")]
        )
        assert len(np.unique(rows, axis=0)) == len(rows)  # no example repeated
    again = digits_data.__wrapped__()
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(again[s][0], digits_data()[s][0])


def test_mnist1d_is_deterministic_and_leaves_global_random_state_alone():
    np.random.seed(1234)  # noqa: NPY002 - the global state under test
    random.seed(99)
    before_np, before_py = np.random.get_state(), random.getstate()  # noqa: NPY002
    fresh = mnist1d_data.__wrapped__()  # uncached: really regenerates
    after_np, after_py = np.random.get_state(), random.getstate()  # noqa: NPY002
    assert before_py == after_py
    assert before_np[0] == after_np[0] and before_np[2:] == after_np[2:]
    np.testing.assert_array_equal(before_np[1], after_np[1])
    np.testing.assert_array_equal(fresh["train"][0], mnist1d_data()["train"][0])
    np.testing.assert_array_equal(fresh["test"][1], mnist1d_data()["test"][1])


def test_text_corpus_is_deterministic_python_source():
    tokens, digest = text_corpus(20_000)
    again, digest2 = text_corpus.__wrapped__(20_000)
    np.testing.assert_array_equal(tokens, again)
    assert digest == digest2 and tokens.dtype == np.uint8
    assert b"def " in tokens.tobytes() and b"import" in tokens.tobytes()
    with pytest.raises(ValueError, match="exceeds"):
        text_corpus(10**9)


def test_text_task_targets_are_next_bytes():
    task = get_task("text-transformer", **_SMALL["text-transformer"])
    x, y = task.batch_fn(jax.random.key(0), jnp.int32(5))
    assert x.shape == y.shape == (16, 32)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    xv, yv = task.eval_sets["val"]
    np.testing.assert_array_equal(xv[:, 1:], yv[:, :-1])


@pytest.mark.parametrize(("n", "batch"), [(97, 10), (64, 8)])
@given(seed=st.integers(0, 2**31 - 1))
def test_epoch_batches_visit_each_example_at_most_once_per_epoch(n, batch, seed):
    steps = n // batch
    fn = _batches(n, batch, steps)
    key = jax.random.key(seed)
    epochs = np.asarray(fn(key, jnp.arange(3 * steps))).reshape(3, -1)
    for e in epochs:
        assert len(np.unique(e)) == len(e) == steps * batch
        assert e.min() >= 0 and e.max() < n
    # a new order every epoch (equal orders have probability < 1e-6 here)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])


@functools.cache
def _batches(n, batch, steps):
    x = jnp.arange(n)
    return jax.jit(
        jax.vmap(
            lambda k, s: epoch_batch_fn(x, x, batch, steps)(k, s)[0], in_axes=(None, 0)
        )
    )


def test_metric_handles_a_partial_last_eval_batch():
    task = get_task("digits-mlp")
    params, state = task.init(jax.random.key(0))
    x, y = task.eval_sets["val"]
    logits, _ = task.apply(params, state, x)
    expect = float(jnp.mean(jnp.argmax(logits, -1) == y))
    small = type(task)(
        name=task.name,
        model_fn=task.model_fn,
        batch_fn=task.batch_fn,
        eval_sets=task.eval_sets,
        steps_per_epoch=task.steps_per_epoch,
        default_epochs=task.default_epochs,
        weight_decay=task.weight_decay,
        eval_batch_size=128,  # 300 = 2 * 128 + 44
    )
    got = jax.jit(lambda p, s: small.metric(p, s, "val"))(params, state)
    assert float(got) == pytest.approx(expect, abs=1e-6)
    with pytest.raises(ValueError, match="no split 'train'"):
        task.metric(params, state, "train")


def test_params_are_plain_pytrees_that_vmap_over_runs():
    task = get_task("digits-mlp", hidden=(16,))
    params, state = jax.vmap(task.init)(jax.random.split(jax.random.key(0), 3))
    leaves = jax.tree.leaves(params)
    assert all(isinstance(v, jax.Array) and v.shape[0] == 3 for v in leaves)
    assert isinstance(params, dict)
    loss, _ = jax.jit(jax.vmap(task.train_loss, in_axes=(0, 0, None, 0)))(
        params, state, jnp.int32(0), jax.random.split(jax.random.key(1), 3)
    )
    assert loss.shape == (3,) and np.isfinite(np.asarray(loss)).all()
    # optax handles them as any pytree
    opt = optax.adamw(1e-3)
    assert jax.tree.structure(opt.init(params)) is not None


@pytest.mark.parametrize(
    ("spatial", "kernel", "strides"), [((8, 8), (3, 3), (1, 1)), ((40,), (5,), (2,))]
)
def test_patch_conv_equals_lax_conv(spatial, kernel, strides):
    from flax import nnx

    from optax_lode.tasks._models import PatchConv

    conv = PatchConv(3, 5, kernel, strides=strides, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, *spatial, 3))
    nd = len(spatial)
    dn = (f"N{'HW'[:nd]}C", f"{'HW'[:nd]}IO", f"N{'HW'[:nd]}C")
    ref = jax.lax.conv_general_dilated(
        x, conv.kernel[...], strides, "SAME", dimension_numbers=dn
    )
    np.testing.assert_allclose(conv(x), ref + conv.bias[...], atol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("digits-mlp", {"hidden": (0,)}, "hidden"),
        ("digits-mlp", {"batch_size": 64.5}, "batch_size"),
        ("mnist1d-cnn", {"channels": True}, "channels"),
        ("digits-cnn", {"weight_decay": -1.0}, "weight_decay"),
        ("mnist1d-mlp", {"weight_decay": float("nan")}, "weight_decay"),
        ("text-transformer", {"dropout": 1.5}, "dropout"),
        ("text-transformer", {"heads": 0}, "heads"),
        # Shapes and types said up front, not failing deep inside the build.
        ("digits-mlp", {"hidden": 128}, r"hidden=128 must be a tuple of ints"),
        ("mnist1d-cnn", {"channels": (25,)}, r"channels=\(25,\) must be one int"),
        (
            "digits-mlp",
            {"weight_decay": "1e-3"},
            "weight_decay='1e-3' must be a number",
        ),
        ("text-transformer", {"batch_size": 10**5}, "shorter than one batch"),
    ],
)
def test_bad_task_arguments_are_clear_errors_before_building(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_task(name, **kwargs)
