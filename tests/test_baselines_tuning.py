"""The paper's tuning protocol (A.2): grid, select on validation, judge on test."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optax_lode.baselines import PAPER_LEARNING_RATES, eval_params, tune, tune_all
from optax_lode.tasks.nqm import NoisyQuadratic


@dataclasses.dataclass
class FakeResult:
    metric: np.ndarray
    test_metric: float


class RecordingTrainRun:
    """A train_run whose validation metric peaks at lr = 1e-2 (1e-1 diverges)."""

    def __init__(self):
        self.calls = []

    def __call__(self, task, tx, *, seed, epochs, ticks_per_epoch, eval_fn, **kw):
        assert isinstance(tx, optax.GradientTransformationExtraArgs)
        lr = float(optax.tree.get(tx.init(jnp.zeros(2)), "learning_rate"))
        self.calls.append((lr, seed, epochs, ticks_per_epoch, kw))
        assert callable(eval_fn)
        if lr > 0.05:
            return FakeResult(np.array([0.1, np.nan]), float("nan"))
        val = -abs(np.log10(lr) + 2) + 0.01 * seed
        return FakeResult(np.array([val - 1.0, val]), 10.0 + seed)


def test_tune_selects_on_validation_and_reruns_fresh_seeds():
    train_run = RecordingTrainRun()
    task = NoisyQuadratic()
    result = tune(
        train_run,
        task,
        "constant",
        tuning_seeds=(0, 1),
        num_seeds=3,
        first_seed=100,
        epochs=2,
        ticks_per_epoch=4,
        extra="passed",
    )
    assert result.best_learning_rate == pytest.approx(1e-2)
    np.testing.assert_allclose(result.learning_rates, PAPER_LEARNING_RATES)
    assert result.val_metrics.shape == (5, 2)
    assert np.isnan(result.val_metrics[-1]).all()  # the diverged rate
    assert result.seeds == (100, 101, 102)
    np.testing.assert_allclose(result.test_metrics, [110.0, 111.0, 112.0])
    assert result.test_mean == pytest.approx(111.0)
    assert result.test_std == pytest.approx(1.0)
    # 5 rates x 2 tuning seeds, then 3 final runs at the chosen rate.
    assert len(train_run.calls) == 13
    finals = train_run.calls[10:]
    assert {c[1] for c in finals} == {100, 101, 102}
    assert all(c[0] == pytest.approx(1e-2) for c in finals)
    assert all(c[2:] == (2, 4, {"extra": "passed"}) for c in train_run.calls)


@pytest.mark.parametrize(
    ("table", "best"),
    [
        # 1e-3 diverged on every seed, 1e-1 on one: every score used to be
        # -inf and the smallest rate, the worse one, was kept.
        ({1e-3: (np.nan, np.nan), 1e-1: (np.nan, 0.95)}, 1e-1),
        # Fewer diverged seeds beat a better mean over the seeds left.
        ({1e-3: (0.5, 0.6), 1e-2: (np.nan, 0.99)}, 1e-3),
        # Equally many diverged: the better mean over the rest.
        ({1e-3: (np.nan, 0.6), 1e-2: (0.7, np.nan)}, 1e-2),
        ({1e-3: (0.5, 0.6), 1e-2: (0.7, 0.8)}, 1e-2),
        # Every run of every rate diverged: the smallest rate.
        ({1e-2: (np.nan, np.nan), 1e-3: (np.nan, np.inf)}, 1e-3),
    ],
)
def test_tune_prefers_rates_with_fewer_diverged_seeds(table, best):
    def train_run(task, tx, *, seed, epochs, ticks_per_epoch, eval_fn, **kw):
        lr = float(optax.tree.get(tx.init(jnp.zeros(2)), "learning_rate"))
        row = table[round(lr, 8)]
        m = row[seed] if seed < len(row) else 0.9  # a final run
        return FakeResult(np.array([0.0, m]), m)

    result = tune(
        train_run,
        NoisyQuadratic(),
        "constant",
        learning_rates=list(table),
        tuning_seeds=(0, 1),
        num_seeds=1,
        epochs=1,
    )
    assert result.best_learning_rate == pytest.approx(best)


def test_tune_batched_over_seeds():
    calls = []

    def train_runs(task, tx, *, seeds, epochs, ticks_per_epoch, eval_fn):
        lr = float(optax.tree.get(tx.init(jnp.zeros(2)), "learning_rate"))
        calls.append((lr, tuple(seeds)))
        seeds = np.asarray(seeds, np.float64)
        val = -abs(np.log10(lr) + 2) + 0.01 * seeds
        return FakeResult(np.stack([val - 1.0, val], axis=1), 10.0 + seeds)

    result = tune(
        train_runs,
        NoisyQuadratic(),
        "hd-sgd",
        tuning_seeds=(0, 1),
        num_seeds=3,
        first_seed=7,
        batched=True,
    )
    # One call per rate, then one for the final seeds.
    assert len(calls) == 6 and all(c[1] == (0, 1) for c in calls[:5])
    assert calls[5] == (pytest.approx(1e-2), (7, 8, 9))
    assert result.best_learning_rate == pytest.approx(1e-2)
    np.testing.assert_allclose(result.test_metrics, [17.0, 18.0, 19.0])
    np.testing.assert_allclose(result.runs[1].metric, [-0.92, 0.08], rtol=1e-6)
    np.testing.assert_allclose(
        result.val_metrics[:, 1] - result.val_metrics[:, 0], 0.01
    )


def test_tune_rejects_bad_input():
    train_run, task = RecordingTrainRun(), NoisyQuadratic()
    with pytest.raises(ValueError, match="unknown baseline"):
        tune(train_run, task, "rl-controller")
    with pytest.raises(ValueError, match="fresh seeds"):
        tune(train_run, task, "cosine", tuning_seeds=(5,), first_seed=5)
    with pytest.raises(ValueError, match="learning_rates"):
        tune(train_run, task, "cosine", learning_rates=[0.1, -1.0])
    with pytest.raises(TypeError, match="metric"):
        tune(lambda *a, **k: object(), task, "cosine", learning_rates=[0.1])
    # Seeds are checked before the grid trains (a bad first_seed used to fail
    # only when the final runs started), and 0.7 is not truncated to 0.
    for kwargs in (
        dict(first_seed=-5),
        dict(first_seed=2**32 - 2, num_seeds=5),
        dict(tuning_seeds=(0.7,)),
    ):
        with pytest.raises(ValueError, match=r"seed must be a whole number"):
            tune(train_run, task, "cosine", **kwargs)
    with pytest.raises(ValueError, match=r"a sequence of seeds, got 3 .*\(3,\)"):
        tune(train_run, task, "cosine", tuning_seeds=3)
    # Repeats would count one run twice (run_sweep refuses them too).
    with pytest.raises(ValueError, match=r"tuning_seeds has duplicates"):
        tune(train_run, task, "cosine", tuning_seeds=(0, 0))
    with pytest.raises(ValueError, match=r"learning_rates has duplicates"):
        tune(train_run, task, "cosine", learning_rates=[0.1, 0.1])
    # One name as a string was tried letter by letter ("unknown baseline 'd'").
    with pytest.raises(TypeError, match=r"the string 'dog' \(for one: \['dog'\]\)"):
        tune_all(train_run, task, "dog")
    assert train_run.calls == []
    # A numpy count is a count.
    tune(train_run, task, "cosine", learning_rates=[0.1], num_seeds=np.int64(2))
    assert len(train_run.calls) == 1 + 2


def _nqm_train_run(task, tx, *, seed, epochs, ticks_per_epoch, eval_fn):
    """A real (minimal) train_run on the NQM, one jitted scan; the metric is
    taken at eval_fn(params, opt_state), as optax_lode.sweep.train_run does."""
    num_steps = epochs * task.steps_per_epoch
    steps_per_tick = task.steps_per_epoch // ticks_per_epoch

    @jax.jit
    def run(key):
        init_key, data_key = jax.random.split(key)
        params, state = task.init(init_key)
        opt_state = tx.init(params)

        def step(carry, i):
            params, state, opt_state = carry
            (loss, state), grads = jax.value_and_grad(task.train_loss, has_aux=True)(
                params, state, i, data_key
            )
            updates, opt_state = tx.update(
                grads, opt_state, params, value=loss, val_metric=0.0
            )
            params = optax.apply_updates(params, updates)
            metric = task.metric(eval_fn(params, opt_state), state, "val")
            return (params, state, opt_state), metric

        (params, state, opt_state), metrics = jax.lax.scan(
            step, (params, state, opt_state), jnp.arange(num_steps)
        )
        test = task.metric(eval_fn(params, opt_state), state, "test")
        return metrics[steps_per_tick - 1 :: steps_per_tick], test

    metric, test = run(jax.random.key(seed))
    return FakeResult(np.asarray(metric), float(test))


# The default run covers real runs through optax_lode.sweep.train_run
# (test_baselines_sweep_integration.py); this independent loop is the slow check.
@pytest.mark.slow
@pytest.mark.parametrize("names", [["cosine"], ["hd-adam", "schedule-free"]])
def test_tune_all_on_the_nqm_real_runs(names):
    task = NoisyQuadratic(dim=20, steps_per_epoch=20, default_epochs=5)
    results = tune_all(
        _nqm_train_run,
        task,
        names,
        learning_rates=[0.003, 0.3],
        num_seeds=2,
        ticks_per_epoch=2,
    )
    assert list(results) == names
    for res in results.values():
        # 0.003 barely moves in 100 steps: the larger rate wins on validation.
        assert res.best_learning_rate == pytest.approx(0.3)
        assert res.test_metrics.shape == (2,)
        assert np.all(np.isfinite(res.test_metrics))
        # The NQM's val and test metrics coincide: judged at the same point.
        np.testing.assert_allclose(res.final_val_metrics, res.test_metrics, rtol=1e-6)


def test_schedule_free_runs_are_evaluated_at_eval_params():
    # The metric the protocol sees is the one at the schedule-free average x.
    task = NoisyQuadratic(dim=20, steps_per_epoch=20, default_epochs=5)
    seen = {}

    def train_run(task, tx, **kw):
        params = jnp.ones(task.dim)
        state = tx.init(params)

        @jax.jit
        def step(params, state):
            updates, state = tx.update(params, state, params, value=1.0, val_metric=0.0)
            return optax.apply_updates(params, updates), state

        params, state = step(*step(params, state))
        ev = kw["eval_fn"](params, state)
        seen["delta"] = float(jnp.max(jnp.abs(ev - params)))
        expected = eval_params("schedule-free", params, state)
        np.testing.assert_allclose(ev, expected)
        return FakeResult(np.array([float(task.metric(ev, (), "val"))]), 0.0)

    tune(train_run, task, "schedule-free", learning_rates=[0.1], num_seeds=1)
    assert seen["delta"] > 0


def test_tuned_schedules_span_the_steps_the_run_makes(monkeypatch):
    """With 3 ticks per 50-step epoch a tick is 16 steps and a run of 2
    epochs makes 96 steps, not 100: the baseline's schedule must end there,
    as the sweep's and LODE's do, or a cosine would never anneal to 0."""
    import optax_lode.baselines._tuning as tuning

    seen = []
    real = tuning.make_baseline

    def recording(name, **kw):
        seen.append(kw["total_steps"])
        return real(name, **kw)

    monkeypatch.setattr(tuning, "make_baseline", recording)
    task = NoisyQuadratic()
    assert task.steps_per_epoch == 50
    tune(
        RecordingTrainRun(),
        task,
        "cosine",
        tuning_seeds=(0,),
        num_seeds=1,
        first_seed=10,
        epochs=2,
        ticks_per_epoch=3,
        learning_rates=(1e-2,),
    )
    assert seen and set(seen) == {2 * 3 * (50 // 3)}


def test_a_seed_run_amortises_every_timing_over_its_batch():
    from types import SimpleNamespace

    from optax_lode.baselines import SeedRun

    batch = SimpleNamespace(run_seconds=4.0, compile_seconds=2.0, seconds_per_step=0.02)
    one = SeedRun(batch, index=1, count=2)
    assert (one.run_seconds, one.compile_seconds, one.seconds_per_step) == (
        2.0,
        1.0,
        0.01,
    )
