"""Baselines trained by the sweep engine's single-run trainer (optax_lode.sweep)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optax_lode.baselines import BASELINES, parametric_schedule, tune
from optax_lode.sweep import train_run, train_runs
from optax_lode.tasks import get_task


def _small_nqm():
    return get_task("nqm", dim=20, steps_per_epoch=10, default_epochs=3)


def test_tune_with_the_sweep_train_run():
    task = _small_nqm()
    result = tune(
        train_run,
        task,
        "cosine",
        learning_rates=[0.005, 0.5],
        num_seeds=1,
        ticks_per_epoch=2,
    )
    assert result.best_learning_rate == pytest.approx(0.5)
    (run,) = result.runs
    # The tick records' lr is the baseline's recorded rate: the mean of the
    # cosine schedule over each 5-step tick.
    sched = parametric_schedule("cosine", 0.5, 30)
    expected = np.asarray(jax.vmap(sched)(jnp.arange(30))).reshape(6, 5).mean(axis=1)
    np.testing.assert_allclose(run.lr, expected, rtol=1e-5, atol=1e-8)
    assert np.isfinite(result.test_mean)
    assert run.metric[-1] > run.metric[0]  # -log loss rose: the loss fell


@pytest.mark.slow
def test_batched_tune_equals_run_by_run():
    task = _small_nqm()
    kw = dict(
        learning_rates=[0.005, 0.5],
        tuning_seeds=(0, 1),
        num_seeds=2,
        ticks_per_epoch=2,
    )
    one = tune(train_run, task, "hd-adam", **kw)
    many = tune(train_runs, task, "hd-adam", batched=True, **kw)
    assert one.best_learning_rate == many.best_learning_rate
    np.testing.assert_allclose(one.val_metrics, many.val_metrics, rtol=1e-4)
    np.testing.assert_allclose(one.test_metrics, many.test_metrics, rtol=1e-4)
    for a, b in zip(one.runs, many.runs, strict=True):
        np.testing.assert_allclose(a.lr, b.lr, rtol=1e-5)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_trains_under_train_run(name):
    task = _small_nqm()
    lr = 1.0 if BASELINES[name].learning_rate_role == "multiplier" else 0.1
    result = tune(
        train_run, task, name, learning_rates=[lr], num_seeds=1, ticks_per_epoch=2
    )
    (run,) = result.runs
    assert np.all(np.isfinite(run.lr)) and np.all(run.lr >= 0)
    assert np.all(run.mask)
    assert run.metric[-1] > run.metric[0]
