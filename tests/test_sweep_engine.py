"""Sweep engine: tick-record semantics, grid, resume, divergence, errors."""

from __future__ import annotations

import json
import re

import jax
import numpy as np
import optax
import pytest
from _sweep_toy import ToyTask

from optax_lode.sweep import (
    SCHEDULE_SHAPES,
    ZERO_LOSS_FLOOR,
    DivergedSweepRunWarning,
    ZeroLossWarning,
    make_schedule,
    run_sweep,
    sweep_optimizer,
    train_run,
    train_runs,
)
from optax_lode.sweep._sweep import _chunk_path


def _hand_sgd(task, seed, schedule, num_ticks, steps_per_tick):
    """SGD on the toy task in plain numpy, recorded on the tick clock."""
    init_key, data_key = jax.random.split(jax.random.key(seed))
    w = float(task.init(init_key)[0]["w"])
    offset = float(task.target(np.int32(0), data_key)) - 1.0
    losses, metrics, lrs = [], [], []
    step = 0
    for _ in range(num_ticks):
        tick_loss, tick_lr = [], []
        for _ in range(steps_per_tick):
            c = 1.0 + step % 3 + offset
            tick_loss.append(0.5 * (w - c) ** 2 + 0.1)
            lr = float(schedule(step))
            tick_lr.append(lr)
            w -= lr * (w - c)
            step += 1
        losses.append(np.mean(tick_loss))
        lrs.append(np.mean(tick_lr))
        metrics.append(-((w - 2.0) ** 2))
    return np.array(losses), np.array(metrics), np.array(lrs), -((w - 2.5) ** 2)


@pytest.mark.parametrize("ticks_per_epoch", [1, 2, 3])
def test_tick_records_match_hand_computation(ticks_per_epoch):
    task = ToyTask()
    epochs = 2
    spt = task.steps_per_epoch // ticks_per_epoch
    num_ticks = epochs * ticks_per_epoch
    schedule = make_schedule("step", 0.3, num_ticks * spt)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    got = train_run(task, tx, seed=3, epochs=epochs, ticks_per_epoch=ticks_per_epoch)
    loss, metric, lr, test = _hand_sgd(task, 3, schedule, num_ticks, spt)
    np.testing.assert_allclose(got.loss, loss, rtol=1e-5)
    np.testing.assert_allclose(got.metric, metric, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.lr, lr, rtol=1e-6)
    np.testing.assert_allclose(got.test_metric, test, rtol=1e-5, atol=1e-6)
    assert got.mask.all() and got.steps_per_tick == spt


def test_train_run_passes_value_and_val_metric():
    """``value`` is each step's loss; ``val_metric`` the previous tick's metric
    (the initial parameters' at the start)."""
    task = ToyTask()
    seen = []

    def init_fn(params):
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, value, val_metric, **extra):
        jax.debug.callback(
            lambda v, m: seen.append((float(v), float(m))), value, val_metric
        )
        return jax.tree.map(lambda g: -0.1 * g, updates), state

    tx = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    got = train_run(
        task, tx, seed=0, epochs=1, ticks_per_epoch=2, learning_rate_fn=lambda s: 0.1
    )
    values, vals = np.array(seen).T
    np.testing.assert_allclose(values.reshape(2, 3).mean(1), got.loss, rtol=1e-5)
    init_key, _ = jax.random.split(jax.random.key(0))
    w0 = float(task.init(init_key)[0]["w"])
    np.testing.assert_allclose(vals[:3], -((w0 - 2.0) ** 2), rtol=1e-5)
    np.testing.assert_allclose(vals[3:], got.metric[0], rtol=1e-5)


def test_train_run_needs_a_readable_learning_rate():
    with pytest.raises(ValueError, match="inject_hyperparams"):
        train_run(ToyTask(), optax.sgd(0.1), seed=0, epochs=1)
    got = train_run(
        ToyTask(), optax.sgd(0.1), seed=0, epochs=1, learning_rate_fn=lambda s: 0.1
    )
    np.testing.assert_allclose(got.lr, 0.1)


def test_sweep_grid_shapes_labels_seeds_and_lrs():
    task = ToyTask()
    shapes, lrs, seeds = list(SCHEDULE_SHAPES), [0.05, 0.2], [4, 7, 9]
    traj = run_sweep(
        task,
        shapes=shapes,
        lrs=lrs,
        seeds=seeds,
        epochs=2,
        ticks_per_epoch=3,
        chunk_size=7,
    )
    n = len(shapes) * len(lrs) * len(seeds)
    assert traj.loss.shape == traj.metric.shape == traj.lr.shape == (n, 6)
    # The clock the runs were made on travels with them (to the model).
    assert traj.steps_per_tick == 2 == task.steps_per_epoch // 3
    assert traj.mask.all()
    assert traj.run_ids[0] == "constant-lr0.05-s4"
    assert traj.run_ids[-1] == "step-lr0.2-s9"
    info = traj.info
    assert {"task", "schedule", "peak_lr", "seed", "test_metric"} <= set(info.columns)
    assert (info["task"] == "toy").all()
    assert list(info["schedule"]) == [s for s in shapes for _ in lrs for _ in seeds]
    assert list(info["peak_lr"]) == [lr for _ in shapes for lr in lrs for _ in seeds]
    assert list(info["seed"]) == seeds * (len(shapes) * len(lrs))
    # The recorded lr is the mean of the schedule over each tick's steps.
    for i, (shape, lr) in enumerate((s, r) for s in shapes for r in lrs):
        sched = make_schedule(shape, lr, 12)
        expect = np.array([sched(k) for k in range(12)]).reshape(6, 2).mean(1)
        for j in range(len(seeds)):
            np.testing.assert_allclose(traj.lr[i * 3 + j], expect, rtol=1e-5)
    # Seeds differ, same seed + shape + lr is reproducible across chunks.
    assert not np.allclose(traj.loss[0], traj.loss[1])


def test_sweep_run_equals_train_run_with_adamw():
    task = ToyTask()
    traj = run_sweep(
        task,
        shapes=["onecycle", "exponential"],
        lrs=[0.1],
        seeds=[0, 1],
        epochs=2,
        ticks_per_epoch=2,
    )
    for i, (shape, seed) in enumerate(
        [("onecycle", 0), ("onecycle", 1), ("exponential", 0), ("exponential", 1)]
    ):
        tx = sweep_optimizer(make_schedule(shape, 0.1, 12), weight_decay=0.0)
        one = train_run(task, tx, seed=seed, epochs=2, ticks_per_epoch=2)
        np.testing.assert_allclose(traj.loss[i], one.loss, rtol=1e-5)
        np.testing.assert_allclose(traj.metric[i], one.metric, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(traj.lr[i], one.lr, rtol=1e-6)
        np.testing.assert_allclose(
            traj.info["test_metric"].iloc[i], one.test_metric, rtol=1e-5, atol=1e-7
        )


def test_resume_skips_finished_chunks(tmp_path):
    task = ToyTask()
    kw = dict(
        shapes=["constant", "cosine"],
        lrs=[0.1],
        seeds=[0, 1],
        epochs=1,
        chunk_size=2,
        checkpoint_dir=tmp_path,
    )
    full = run_sweep(task, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chunk-00000.npz",
        "chunk-00001.npz",
        "manifest.json",
    ]
    # Simulate a sweep killed after its first chunk, whose saved results are
    # recognisable: the rerun must reuse chunk 0 as saved and compute chunk 1.
    with np.load(_chunk_path(tmp_path, 0)) as z:
        saved = {k: z[k] for k in z.files}
    saved["loss"] = saved["loss"] * 0 + 123.0
    np.savez(_chunk_path(tmp_path, 0), **saved)
    _chunk_path(tmp_path, 1).unlink()
    resumed = run_sweep(task, **kw)
    np.testing.assert_array_equal(resumed.loss[:2], 123.0)
    np.testing.assert_allclose(resumed.loss[2:], full.loss[2:])
    assert _chunk_path(tmp_path, 1).exists()
    # A truncated chunk file is recomputed, not trusted: foreign bytes, or a
    # real chunk cut short (a zip without its directory).
    _chunk_path(tmp_path, 0).write_bytes(b"not an npz")
    again = run_sweep(task, **kw)
    np.testing.assert_allclose(again.loss, full.loss)
    whole = _chunk_path(tmp_path, 0).read_bytes()
    for size in (50, len(whole) // 2, len(whole) - 10):
        _chunk_path(tmp_path, 0).write_bytes(whole[:size])
        again = run_sweep(task, **kw)
        np.testing.assert_allclose(again.loss, full.loss)


def test_resume_refuses_another_sweeps_checkpoint(tmp_path):
    task = ToyTask()
    base = dict(shapes=["constant"], lrs=[0.1], seeds=1, epochs=1)
    run_sweep(task, **base, checkpoint_dir=tmp_path)
    config = json.loads((tmp_path / "manifest.json").read_text())["config"]
    assert config["task"] == "toy" and config["lrs"] == [0.1]
    with pytest.raises(ValueError, match=r"different sweep \(lrs: \[0.1\] then"):
        run_sweep(task, **{**base, "lrs": [0.2]}, checkpoint_dir=tmp_path)
    # Only the chunking differs (another device count rounds chunk_size up to
    # another multiple): said, with how to resume.
    with pytest.raises(
        ValueError, match=r"this sweep of 1 runs each; now 3.*chunk_size=1"
    ):
        run_sweep(task, **base, chunk_size=3, checkpoint_dir=tmp_path)
    # The same name and settings, but a task built with other arguments (here
    # one whose loss differs): its chunks are not another task's results.
    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(ToyTask(nan_after=0), **base, checkpoint_dir=tmp_path)
    # Chunks of an older format (before non-finite parameters were masked)
    # are not mixed with new ones, even when nothing else differs.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["config"]["format"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"format 2 .*now format 3.*delete it"):
        run_sweep(task, **base, checkpoint_dir=tmp_path)
    # The first fingerprint (unnamed in the manifest) could not tell NQMs of
    # other batch sizes apart: its checkpoints are refused, saying why and
    # what to do.
    manifest["config"]["format"] = 3
    del manifest["config"]["fingerprint"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError,
        match=r"format 3 with task fingerprint 1; now format 3 with fingerprint 2"
        r"\), whose .*task fingerprint.*delete it",
    ):
        run_sweep(task, **base, checkpoint_dir=tmp_path)


@pytest.mark.parametrize(
    "other", [dict(batch_size=1), dict(noise="isotropic"), dict(init_scale=2.0)]
)
def test_resume_sees_every_argument_of_the_nqm(tmp_path, other):
    """The NQM reports its noise-free loss: a fingerprint of the loss alone
    took an NQM of another batch size or noise for the same task, and a
    resume returned the old sweep's losses."""
    from optax_lode.tasks import get_task

    base = dict(dim=4, steps_per_epoch=4)
    kw = dict(shapes=["constant"], lrs=[0.05], seeds=2, epochs=2)
    first = run_sweep(get_task("nqm", **base), checkpoint_dir=tmp_path, **kw)
    # The same task and arguments still resume (and reuse the chunks).
    again = run_sweep(get_task("nqm", **base), checkpoint_dir=tmp_path, **kw)
    np.testing.assert_array_equal(again.loss, first.loss)
    with pytest.raises(ValueError, match=r"different sweep.*task_fingerprint"):
        run_sweep(get_task("nqm", **base, **other), checkpoint_dir=tmp_path, **kw)


def test_a_checkpoint_without_chunks_is_taken_over(tmp_path):
    """A sweep killed during its first chunk leaves only its manifest; a rerun
    with a smaller chunk_size (the remedy for running out of memory) or
    another grid starts afresh instead of being refused."""
    task = ToyTask()
    kw = dict(shapes=["constant"], seeds=[0, 1], epochs=1)
    run_sweep(task, lrs=[0.1, 0.2], chunk_size=4, checkpoint_dir=tmp_path, **kw)
    for chunk in tmp_path.glob("chunk-*.npz"):
        chunk.unlink()
    (tmp_path / ".chunk-00000.npz.tmp-123").write_bytes(b"killed mid-write")
    resumed = run_sweep(
        task, lrs=[0.1, 0.3], chunk_size=2, checkpoint_dir=tmp_path, **kw
    )
    fresh = run_sweep(task, lrs=[0.1, 0.3], chunk_size=2, **kw)
    np.testing.assert_array_equal(resumed.loss, fresh.loss)
    config = json.loads((tmp_path / "manifest.json").read_text())["config"]
    assert config["chunk_size"] == 2 and config["lrs"] == [0.1, 0.3]
    # With its chunks written, the directory is this sweep's: another is
    # refused as before.
    with pytest.raises(ValueError, match=r"this sweep of 2 runs each; now 4"):
        run_sweep(task, lrs=[0.1, 0.3], chunk_size=4, checkpoint_dir=tmp_path, **kw)


def test_diverged_runs_are_masked_or_left_out():
    # Every run's loss turns NaN at step 8 (tick 1 of 6-step ticks); with lr
    # 1e30 the first tick already overflows.
    task = ToyTask(nan_after=8)
    with pytest.warns(DivergedSweepRunWarning) as caught:
        traj = run_sweep(task, shapes=["constant"], lrs=[0.1, 1e30], seeds=1, epochs=4)
    said = [str(w.message) for w in caught]
    assert any("first tick" in m and "constant-lr1e+30-s0" in m for m in said)
    # The run kept is said too: it diverged later, and is masked from then on.
    assert any("after their first tick" in m and "constant-lr0.1-s0" in m for m in said)
    assert traj.run_ids == ("constant-lr0.1-s0",)
    np.testing.assert_array_equal(traj.mask[0], [True, False, False, False])
    assert np.isfinite(traj.loss[0, 0]) and np.isnan(traj.loss[0, 1:]).all()
    assert np.isnan(traj.metric[0, 1:]).all() and np.isnan(traj.lr[0, 1:]).all()
    assert np.isnan(traj.info["test_metric"].iloc[0])
    with (
        pytest.raises(ValueError, match="every run"),
        pytest.warns(DivergedSweepRunWarning),
    ):
        run_sweep(
            ToyTask(nan_after=0), shapes=["constant"], lrs=[0.1], seeds=1, epochs=1
        )


def test_a_loss_that_underflowed_to_zero_is_floored_and_the_run_kept():
    # A convnet at a high rate can fit every example of a tick so closely that
    # float32 cross-entropy is exactly 0 (digits-cnn, onecycle at lr 0.1): the
    # sweep used to fail at its end. From step 12 (tick 2 of 6-step ticks) the
    # loss is 0.
    kwargs = dict(shapes=["constant"], lrs=[0.1], seeds=2, epochs=4)
    with pytest.warns(ZeroLossWarning, match="4 tick\\(s\\) of 2 run"):
        traj = run_sweep(ToyTask(flat_from=12), **kwargs)
    ref = run_sweep(ToyTask(), **kwargs)
    assert ZERO_LOSS_FLOOR == 2.0**-24
    assert traj.mask.all() and np.isfinite(traj.info["test_metric"]).all()
    np.testing.assert_array_equal(traj.loss[:, :2], ref.loss[:, :2])
    np.testing.assert_array_equal(traj.loss[:, 2:], ZERO_LOSS_FLOOR)
    np.testing.assert_array_equal(traj.metric[:, :2], ref.metric[:, :2])
    # A negative loss is no rounding: the task is wrong, and it is an error.
    with pytest.raises(ValueError, match="non-positive value"):
        run_sweep(ToyTask(flat_from=12, flat_value=-1.0), **kwargs)


def test_a_negative_loss_is_refused_before_the_sweep_trains(tmp_path, monkeypatch):
    """Trajectories refuses a negative loss (it models the log loss), so a
    custom task's negative loss failed only after its whole sweep trained.
    Negative from the start, it is refused before the sweep builds its
    program or writes a checkpoint; turning negative in training, after the
    first chunk, which is not saved."""
    import optax_lode.sweep._sweep as engine

    def never(*args, **kwargs):
        raise AssertionError("the sweep built its program")

    kwargs = dict(shapes=["constant"], lrs=[0.1], seeds=2, epochs=4)
    negative = ToyTask(flat_from=0, flat_value=-1.0)
    said = (
        r"task 'toy' returned a training loss of -1 at initialisation \(key 0, "
        r"step 0\).*must be positive.*add a constant"
    )
    with monkeypatch.context() as m:
        m.setattr(engine, "_run_program", never)
        with pytest.raises(ValueError, match=said):
            run_sweep(negative, **kwargs)
        ckpt = tmp_path / "ckpt"
        with pytest.raises(ValueError, match=said):
            run_sweep(negative, checkpoint_dir=ckpt, **kwargs)
        assert not ckpt.exists()

    checked = []
    real = engine._check_chunk_losses
    monkeypatch.setattr(
        engine, "_check_chunk_losses", lambda *a: checked.append(1) or real(*a)
    )
    with pytest.raises(ValueError, match=r"-1 at tick 2 of run 'constant-lr0.1-s0'"):
        run_sweep(
            ToyTask(flat_from=12, flat_value=-1.0),
            chunk_size=1,
            checkpoint_dir=ckpt,
            **kwargs,
        )
    assert checked == [1]  # one chunk of the two trained
    assert not list(ckpt.glob("chunk-*.npz"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(shapes=["linear"]), "unknown schedule shapes"),
        (dict(lrs=[0.1, -1.0]), "finite and > 0"),
        (dict(seeds=[1, 1]), "duplicates"),
        (dict(seeds=0), "seeds=0"),
        (dict(epochs=0), "epochs=0"),
        (dict(ticks_per_epoch=7), "exceeds the task's 6 steps"),
        (dict(chunk_size=0), "chunk_size=0"),
        (dict(weight_decay=float("nan")), "weight_decay=nan must be finite"),
        (dict(weight_decay=-5.0), "weight_decay=-5.0 must be finite and >= 0"),
        (dict(lrs=[1e-2, 1.0000001e-2]), r"same run ids \['constant-lr0.01-s0'\]"),
        (dict(epochs=1.5), r"epochs must be a whole number; got 1\.5"),
        (
            dict(ticks_per_epoch=1.5),
            r"ticks_per_epoch must be a whole number; got 1\.5",
        ),
        (dict(epochs=float("nan")), r"epochs must be a whole number; got nan"),
        (dict(chunk_size=1.7), r"chunk_size must be a whole number; got 1\.7"),
        (dict(devices=[]), "devices is empty"),
        # The runs train in float32, where these are inf and 0.
        (dict(lrs=[0.1, 1e39]), r"\[1e\+39\] are not finite and > 0 in float32"),
        (dict(lrs=[1e-46]), r"\[1e-46\] are not finite and > 0 in float32"),
    ],
)
def test_sweep_rejects_bad_arguments(kwargs, match):
    base = dict(shapes=["constant"], lrs=[0.1], seeds=1, epochs=1)
    with pytest.raises(ValueError, match=match):
        run_sweep(ToyTask(), **{**base, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # A lone string was iterated ("unknown schedule shapes ['c', 'o', ...]")
        # and a lone number was not iterable.
        (dict(shapes="constant"), r"shapes must be a list, e.g. shapes=\['cosine'\]"),
        (dict(lrs=0.1), r"lrs must be a list, e.g. lrs=\[0.01\]; got 0.1"),
        (dict(seeds=2.0), r"seeds must be a list.*\(or seeds=2\); got 2.0"),
        (dict(lrs=["0.1"]), "lrs must hold real numbers; got '0.1'"),
        (dict(lrs=[True]), "lrs must hold real numbers; got True"),
    ],
)
def test_sweep_refuses_a_lone_value_for_a_list(kwargs, match):
    base = dict(shapes=["constant"], lrs=[0.1], seeds=1, epochs=1)
    with pytest.raises(TypeError, match=match):
        run_sweep(ToyTask(), **{**base, **kwargs})


def test_seeds_share_one_domain_and_bad_ones_are_named():
    """train_run, train_runs and run_sweep take the same seeds, [0, 2**32):
    train_run(seed=-1) used to run (as train_runs' 2**32 - 1), train_runs
    overflowed deep in jnp.asarray."""
    tx = sweep_optimizer(make_schedule("constant", 0.1, 6), weight_decay=0.0)
    message = r"a seed must be a whole number in \[0, 2\*\*32\); got "
    for seed in (-1, 2**32, 1.5, True, float("nan"), float("inf"), "3", None):
        with pytest.raises(ValueError, match=message + re.escape(repr(seed))):
            train_run(ToyTask(), tx, seed=seed, epochs=1)
        with pytest.raises(ValueError, match=message):
            train_runs(ToyTask(), tx, seeds=[0, seed], epochs=1)
        with pytest.raises(ValueError, match=message):
            run_sweep(
                ToyTask(), shapes=["constant"], lrs=[0.1], seeds=[0, seed], epochs=1
            )


def test_a_checkpoint_directory_that_is_a_file_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    for where in (tmp_path / "afile", tmp_path / "afile" / "chunks"):
        with pytest.raises(ValueError, match=f"{where}' is not a usable directory"):
            run_sweep(
                ToyTask(),
                shapes=["constant"],
                lrs=[0.1],
                seeds=1,
                epochs=1,
                checkpoint_dir=where,
            )


def test_make_schedule_shapes():
    total = 100
    assert float(make_schedule("constant", 0.1, total)(77)) == pytest.approx(0.1)
    assert float(make_schedule("cosine", 0.1, total)(total)) == pytest.approx(0.0)
    one = make_schedule("onecycle", 0.1, total)
    assert max(float(one(k)) for k in range(total)) == pytest.approx(0.1, rel=1e-3)
    assert float(make_schedule("exponential", 0.1, total)(total)) == pytest.approx(1e-3)
    step = make_schedule("step", 0.1, total)
    assert [float(step(k)) for k in (49, 50, 75)] == pytest.approx([0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="unknown schedule shape"):
        make_schedule("triangle", 0.1, total)
    # A non-positive or NaN peak would log non-positive rates as valid records.
    for peak in (-0.05, 0.0, float("nan")):
        with pytest.raises(ValueError, match=r"peak_lr=.* must be finite and > 0"):
            make_schedule("cosine", peak, total)
    with pytest.raises(ValueError, match="weight_decay=-1 must be"):
        sweep_optimizer(make_schedule("constant", 0.1, total), weight_decay=-1)


def test_cosine_stays_positive_and_is_optax_wherever_optax_is():
    """In float32 optax's cosine rounds to 0 at the last steps of long runs;
    a rate of 0 has no log, so the sweep's cosine stays positive there and
    equals optax's everywhere else."""
    import jax.numpy as jnp
    import optax

    for total in (100, 5000, 20000):
        counts = jnp.arange(total)
        ours = jax.jit(jax.vmap(make_schedule("cosine", 0.1, total)))(counts)
        unit = optax.cosine_decay_schedule(1.0, total, alpha=0.0)
        ref = jax.jit(jax.vmap(lambda c, u=unit: 0.1 * u(c)))(counts)
        assert bool(jnp.all(ours > 0))
        np.testing.assert_array_equal(np.asarray(ours)[ref > 0], ref[ref > 0])
    assert float(ref[-1]) == 0.0  # the case this is about


def test_train_runs_vmaps_seeds_like_train_run():
    task = ToyTask()
    sched = make_schedule("cosine", 0.2, 12)
    tx = sweep_optimizer(sched, weight_decay=0.0)
    many = train_runs(task, tx, seeds=[2, 5], epochs=2, ticks_per_epoch=2)
    assert many.loss.shape == (2, 4) and many.test_metric.shape == (2,)
    for i, seed in enumerate([2, 5]):
        one = train_run(task, tx, seed=seed, epochs=2, ticks_per_epoch=2)
        np.testing.assert_allclose(many.loss[i], one.loss, rtol=1e-5)
        np.testing.assert_allclose(many.metric[i], one.metric, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(many.lr[i], one.lr, rtol=1e-6)
    with pytest.raises(ValueError, match="seeds is empty"):
        train_runs(task, tx, seeds=[])
    with pytest.raises(ValueError, match=r"pass range\(2\) for seeds 0..1"):
        train_runs(task, tx, seeds=2)


def test_train_runs_of_a_lode_schedule_on_its_axis_match_train_run():
    """With axis_name=RUNS_AXIS the runs decide together behind one cond; each
    run's rates are those train_run gives it alone."""
    from optax_lode import LatentODE, lode_schedule
    from optax_lode.sweep import RUNS_AXIS
    from optax_lode.tasks import get_task

    task = get_task("nqm", dim=4, steps_per_epoch=4, default_epochs=6)
    model = LatentODE(T=12, mu=2, key=jax.random.key(0))

    def tx(axis_name=None):
        lode = lode_schedule(
            model, total_steps=24, steps_per_tick=2, n=4, axis_name=axis_name
        )
        return optax.chain(optax.adamw(1.0), lode)

    many = train_runs(task, tx(RUNS_AXIS), seeds=[0, 3], ticks_per_epoch=2)
    assert np.all(
        np.asarray(optax.tree.get(many.opt_state, "LodeState").decisions) == 5
    )
    assert not np.allclose(many.lr[0], many.lr[1])
    for i, seed in enumerate([0, 3]):
        one = train_run(task, tx(), seed=seed, ticks_per_epoch=2)
        np.testing.assert_allclose(many.lr[i], one.lr, rtol=1e-5)
        np.testing.assert_allclose(many.loss[i], one.loss, rtol=1e-5)


def test_eval_fn_chooses_the_evaluated_parameters():
    task = ToyTask()
    tx = sweep_optimizer(make_schedule("constant", 0.1, 6), weight_decay=0.0)
    run = train_run(
        task,
        tx,
        seed=0,
        epochs=1,
        ticks_per_epoch=2,
        eval_fn=lambda params, opt_state: {"w": params["w"] * 0 + 2.0},
    )
    np.testing.assert_allclose(run.metric, 0.0, atol=1e-7)  # -(2 - 2)^2
    assert run.test_metric == pytest.approx(-0.25)  # -(2 - 2.5)^2


@pytest.mark.parametrize(
    ("lode_steps_per_tick", "advice"),
    [
        # 1-step ticks: 4 ticks per epoch of 4 steps, 3 epochs make its 12.
        (1, r"Train on its clock \(epochs=3, ticks_per_epoch=4\), or rebuild it"),
        # Longer ticks than the run's are not seen whole after its first tick.
        (4, r"\. Rebuild it"),
    ],
)
def test_train_run_refuses_a_lode_schedule_on_another_clock(
    lode_steps_per_tick, advice
):
    """A lode_schedule counting ticks of another length than the run's would
    decide at the wrong ticks and stop deciding partway: refused after the
    first tick, saying the run on its clock when its tick is known, and the
    schedule for this run. Both run."""
    from optax_lode import LatentODE, lode_schedule
    from optax_lode.tasks import get_task

    task = get_task("nqm", dim=4, steps_per_epoch=4, default_epochs=6)
    spt = 2  # 2 ticks per epoch of 4 steps
    model = LatentODE(T=12, mu=2, key=jax.random.key(0))

    def tx(steps_per_tick):
        lode = lode_schedule(
            model, total_steps=12 * steps_per_tick, steps_per_tick=steps_per_tick, n=4
        )
        return optax.chain(optax.adamw(1.0), lode)

    rebuild = (
        rf" for this run \(total_steps=24, steps_per_tick={spt}\), "
        r"adding rescale=True if its model records another clock"
    )
    with pytest.raises(ValueError, match=advice + rebuild):
        train_run(task, tx(lode_steps_per_tick), seed=0, ticks_per_epoch=2)
    if lode_steps_per_tick == 1:
        on_its_clock = train_run(task, tx(1), seed=0, epochs=3, ticks_per_epoch=4)
        assert on_its_clock.num_ticks == 12 and on_its_clock.steps_per_tick == 1
    run = train_run(task, tx(spt), seed=0, ticks_per_epoch=2)
    state = optax.tree.get(run.opt_state, "LodeState")
    assert int(state.tick) == 12 and int(state.decisions) == 5
    assert int(state.run_ticks) == 12


def test_train_run_takes_multisteps_with_its_extra_args():
    """optax.MultiSteps (no GradientTransformation) and its
    gradient_transformation() (a plain one, whose update forwards extra args):
    a lode_schedule inside still gets value= and val_metric=. With every_k=1
    the run is the unwrapped one's."""
    from optax_lode import LatentODE, lode_schedule
    from optax_lode.tasks import get_task

    task = get_task("nqm", dim=4, steps_per_epoch=4, default_epochs=6)
    model = LatentODE(T=12, mu=2, key=jax.random.key(0))
    inner = optax.chain(
        optax.adamw(1.0), lode_schedule(model, total_steps=24, steps_per_tick=2, n=4)
    )
    plain = train_run(task, inner, seed=0, ticks_per_epoch=2)
    multi = optax.MultiSteps(inner, every_k_schedule=1)
    for tx in (multi, multi.gradient_transformation()):
        run = train_run(task, tx, seed=0, ticks_per_epoch=2)
        np.testing.assert_array_equal(run.lr, plain.lr)
        assert int(optax.tree.get(run.opt_state, "LodeState").decisions) == 5


def test_train_run_refuses_a_lode_schedule_built_for_another_run_length():
    """The right tick length but total_steps for a run twice as long (allowed
    by rescale): its decisions would fall at half the fractions of the run
    they mean. The state's run_ticks makes it an exact check."""
    from optax_lode import LatentODE, lode_schedule
    from optax_lode.tasks import get_task

    task = get_task("nqm", dim=4, steps_per_epoch=4, default_epochs=6)
    model = LatentODE(T=12, mu=2, key=jax.random.key(0))
    lode = lode_schedule(model, total_steps=48, steps_per_tick=2, n=4, rescale=True)
    tx = optax.chain(optax.adamw(1.0), lode)
    said = (
        r"a run of 24 ticks .* this run has 12: .* Train for its 24 ticks "
        r"\(epochs=12, ticks_per_epoch=2\), or rebuild it for this run "
        r"\(total_steps=24, steps_per_tick=2\), adding rescale=True"
    )
    with pytest.raises(ValueError, match=said):
        train_run(task, tx, seed=0, epochs=6, ticks_per_epoch=2)
    # The advice runs.
    assert train_run(task, tx, seed=0, epochs=12, ticks_per_epoch=2).num_ticks == 24


def test_lode_clock_check_judges_only_what_it_can():
    """Where a wrapper skipped some of the first tick's updates, a schedule
    that has not finished its tick cannot be judged; two ticks in one can."""
    import jax.numpy as jnp

    from optax_lode import LatentODE, lode_schedule
    from optax_lode.sweep._train import _check_lode_clock, _check_lode_length, _Clock
    from optax_lode.transform import LodeState

    model = LatentODE(T=12, mu=2, key=jax.random.key(0))
    init = lode_schedule(model, total_steps=48, steps_per_tick=4, n=2).init(
        {"w": jnp.zeros(1)}
    )

    def state(count, tick, step):
        counters = np.asarray(init.counters).copy()
        counters[:3] = (count, tick, step)  # count, tick, step_in_tick
        data = init.data.at[: len(counters)].set(counters.view(np.uint32))
        return init._replace(data=data)

    # 12 ticks of 4 steps: 12 epochs of 4 steps, one tick each.
    clock = _Clock(num_ticks=12, steps_per_tick=4, ticks_per_epoch=1, steps_per_epoch=4)
    _check_lode_clock(state(4, 1, 0), clock)  # right
    _check_lode_clock((state(3, 0, 3),), clock)  # one update skipped: cannot judge
    for bad in [state(4, 0, 4), state(4, 1, 1), state(2, 2, 0)]:
        # No ticks_per_epoch makes its ticks (5+, 3 steps; unknown).
        with pytest.raises(ValueError, match=r"\. Rebuild .*steps_per_tick=4\)"):
            _check_lode_clock({"inner": bad}, clock)
    # 2-step ticks: 2 ticks per epoch, 6 epochs make the run's 12.
    with pytest.raises(ValueError, match=r"its clock \(epochs=6, ticks_per_epoch=2\)"):
        _check_lode_clock(state(4, 2, 0), clock)
    # The run's length is exact from the start, whatever the tick.
    longer = clock._replace(num_ticks=13)
    for good in (init, state(4, 1, 0), state(3, 0, 3)):
        _check_lode_length({"inner": good}, clock)
        with pytest.raises(
            ValueError,
            match=r"a run of 12 ticks .* has 13: .* its 12 ticks \(epochs=12\)",
        ):
            _check_lode_length([good], longer)
    assert isinstance(state(4, 1, 0), LodeState)


def _nan_update_at(step: int) -> optax.GradientTransformation:
    """An update that turns NaN at optimizer step ``step`` (the loss of that
    step, measured before it, is still finite)."""

    def init_fn(params):
        return optax.ScaleByScheduleState(count=jax.numpy.zeros((), jax.numpy.int32))

    def update_fn(updates, state, params=None):
        bad = jax.numpy.where(state.count == step, jax.numpy.nan, 0.0)
        return jax.tree.map(lambda u: u + bad, updates), state._replace(
            count=state.count + 1
        )

    return optax.GradientTransformation(init_fn, update_fn)


@pytest.mark.parametrize(
    ("nan_step", "mask"), [(5, [True, False]), (2, [False, False])]
)
def test_parameters_made_nan_by_a_ticks_last_update_mask_that_tick(nan_step, mask):
    """An accuracy of NaN logits is finite, and a tick's losses come before its
    updates: a run whose last update made its parameters NaN was recorded as
    valid, with a garbage metric and test metric."""
    import dataclasses

    @dataclasses.dataclass(frozen=True, eq=False)
    class FiniteMetricToy(ToyTask):
        def metric(self, params, state, split):
            return jax.numpy.float32(0.5) + 0.0 * jax.numpy.nan_to_num(params["w"])

    tx = optax.chain(
        sweep_optimizer(make_schedule("constant", 0.1, 6), weight_decay=0.0),
        _nan_update_at(nan_step),
    )
    run = train_run(FiniteMetricToy(), tx, seed=0, epochs=1, ticks_per_epoch=2)
    np.testing.assert_array_equal(run.mask, mask)
    assert np.isnan(run.test_metric)


def test_seeds_past_2_to_the_31_train_as_in_train_runs():
    # A Python int past 2**31 overflowed jit's int32 argument in train_run.
    tx = sweep_optimizer(make_schedule("constant", 0.1, 6), weight_decay=0.0)
    one = train_run(ToyTask(), tx, seed=2**31 + 5, epochs=1)
    many = train_runs(ToyTask(), tx, seeds=[2**31 + 5], epochs=1)
    np.testing.assert_array_equal(one.loss, many.loss[0])


def test_eval_fn_gives_the_first_val_metric_too():
    task = ToyTask()
    seen = []

    def update_fn(updates, state, params=None, *, value, val_metric, **extra):
        jax.debug.callback(lambda m: seen.append(float(m)), val_metric)
        return jax.tree.map(lambda g: -0.1 * g, updates), state

    tx = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)
    train_run(
        task,
        tx,
        seed=0,
        epochs=1,
        learning_rate_fn=lambda s: 0.1,
        eval_fn=lambda params, opt_state: {"w": params["w"] * 0 + 2.0},
    )
    np.testing.assert_allclose(seen, 0.0, atol=1e-7)  # -(2 - 2)^2 from the start
