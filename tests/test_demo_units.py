"""The demo's pieces without training: config keys, the cache, tuning on a
sweep, the batched final runs, and the report with its figures."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from _demo_helpers import PNGS

import optax_lode
from optax_lode.demo import DemoResult, MethodRuns, fast_config, write_report
from optax_lode.demo._cache import load_run, save_run
from optax_lode.demo._pipeline import _BatchedFinals, baseline_stage, tune_from_sweep
from optax_lode.runs import synthetic_sweep


def test_cache_keys_name_the_settings_not_how_they_were_written():
    """The same stage's settings written another way (pairs in another order,
    a name given twice, the task's default epochs by number, where the data
    lives) hit the same cache entries; inputs a stage does not use are not
    keyed."""
    from optax_lode.demo import DemoConfig

    nqm = DemoConfig(task="nqm", task_kwargs=(("dim", 20), ("batch_size", 8)))
    same = nqm.replace(task_kwargs=(("batch_size", 8), ("dim", 30), ("dim", 20)))
    assert same.task_kwargs == nqm.task_kwargs == (("batch_size", 8), ("dim", 20))
    assert same.sweep_key() == nqm.sweep_key() and same == nqm
    assert nqm.replace(task_kwargs=(("dim", 30),)).sweep_key() != nqm.sweep_key()
    fit = DemoConfig(fit_kwargs=(("patience", 5), ("batch_size", 10)))
    assert fit.model_key() == fit.replace(fit_kwargs=fit.fit_kwargs[::-1]).model_key()
    lode = fast_config(lode_kwargs=(("n", 10), ("sigma", 0.2)))
    flipped = lode.replace(lode_kwargs=lode.lode_kwargs[::-1])
    assert lode.run_key("LODE", 1000, lode.lode_setting("d")) == flipped.run_key(
        "LODE", 1000, flipped.lode_setting("d")
    )
    # Keyed by the run's length, however it was given.
    default = DemoConfig(task="nqm")
    assert default.run_epochs() == 20
    by_number = default.replace(epochs=20)
    by_task_arg = default.replace(task_kwargs={"default_epochs": 20})
    for same in (by_number, by_task_arg):
        assert same.sweep_key() == default.sweep_key()
        assert same.tuning_key("step") == default.tuning_key("step")
    assert default.replace(epochs=21).sweep_key() != default.sweep_key()
    assert DemoConfig().run_epochs() == 60  # mnist1d-mlp
    # Another data_dir can hold other data (another version): keyed.
    tfds = DemoConfig(task="fashion_mnist-cnn")
    moved = tfds.replace(task_kwargs={"data_dir": "/data/tfds"})
    assert moved.sweep_key() != tfds.sweep_key()
    # Prodigy and DoG tune their own multipliers, not the sweep's rates.
    other_lrs = DemoConfig(lrs=(1e-3, 1e-2))
    for name, same in (("prodigy", True), ("dog", True), ("step", False)):
        assert (DemoConfig().tuning_key(name) == other_lrs.tuning_key(name)) is same


def test_cache_keys_change_with_the_sweeps_record_format(monkeypatch):
    """The sweep's chunk format changes when runs' records change meaning
    (format 3 masked a tick that made the parameters non-finite): every
    demo cache entry then goes stale with it."""
    import optax_lode.sweep._sweep as sweep_module

    cfg = fast_config("nqm")
    keys = (cfg.sweep_key(), cfg.model_key(), cfg.tuning_key("step"),
            cfg.run_key("constant", 1000, {"learning_rate": 0.1}))  # fmt: skip
    monkeypatch.setattr(sweep_module, "_FORMAT", sweep_module._FORMAT + 1)
    again = (cfg.sweep_key(), cfg.model_key(), cfg.tuning_key("step"),
             cfg.run_key("constant", 1000, {"learning_rate": 0.1}))  # fmt: skip
    assert all(a != b for a, b in zip(keys, again, strict=True))


def test_tune_from_sweep_selects_best_mean_final_val_and_disqualifies_divergence():
    traj = synthetic_sweep(
        ticks=12, schedules=("constant", "cosine"), peak_lrs=(1e-2, 1e-1), seeds=(0, 1)
    )
    rec = tune_from_sweep(traj, "cosine")
    rows = np.asarray(traj.info["schedule"] == "cosine")
    finals = {
        lr: traj.metric[rows & np.isclose(traj.info["peak_lr"], lr), -1].mean()
        for lr in (1e-2, 1e-1)
    }
    assert rec["best_learning_rate"] == max(finals, key=finals.get)
    assert rec["source"] == "sweep" and len(rec["val_metrics"]) == 2
    # A diverged run (NaN final metric) disqualifies its learning rate.
    best = rec["best_learning_rate"]
    metric = traj.metric.copy()
    mask = traj.mask.copy()
    bad = np.nonzero(rows & np.isclose(traj.info["peak_lr"], best))[0][0]
    metric[bad, -3:] = np.nan
    mask[bad, -3:] = False
    diverged = optax_lode.Trajectories.from_arrays(
        traj.loss, metric, traj.lr, mask=mask, run_ids=traj.run_ids, info=traj.info
    )
    assert tune_from_sweep(diverged, "cosine")["best_learning_rate"] != best
    # A run the sweep left out (diverged in its first tick) counts as diverged
    # once the grid is known; a rate whose runs were all left out stays in it.
    left_out = traj.select([i for i in range(traj.num_runs) if i != bad])
    assert tune_from_sweep(left_out, "cosine")["best_learning_rate"] == best
    rec = tune_from_sweep(left_out, "cosine", lrs=(1e-2, 1e-1, 1.0), seeds=2)
    assert rec["best_learning_rate"] != best and rec["learning_rates"][-1] == 1.0
    assert np.isnan(rec["val_metrics"][-1]).all()
    with pytest.raises(ValueError, match="no runs of shape 'onecycle'"):
        tune_from_sweep(traj, "onecycle")


def test_sweep_and_model_fits_the_complement_of_the_held_out_runs(monkeypatch):
    import optax_lode.demo._pipeline as pipeline

    sweep = synthetic_sweep(
        ticks=8, schedules=("constant", "cosine"), peak_lrs=(1e-2, 1e-1), seeds=(0, 1)
    )
    fitted = []
    monkeypatch.setattr(pipeline, "sweep_stage", lambda *a, **k: (sweep, True))
    monkeypatch.setattr(
        pipeline, "fit_stage", lambda train, *a, **k: (fitted.append(train), True)
    )
    cfg = fast_config(held_out=0.25, seed=3)
    traj, held, _ = pipeline.sweep_and_model(None, cfg, None, progress=False)
    (train,) = fitted
    assert traj is sweep and held.num_runs == 2 and train.num_runs == 6
    assert sorted(train.run_ids + held.run_ids) == sorted(sweep.run_ids)
    # The same split as the demo's (Table A1's held-out runs are never fitted).
    assert held.run_ids == cfg.split(sweep)[1].run_ids
    assert cfg.split(sweep)[1].run_ids != cfg.replace(seed=4).split(sweep)[1].run_ids


class _Result:
    def __init__(self, n, ticks=5):
        rng = np.random.default_rng(n)
        self.loss = rng.uniform(0.5, 1.0, (n, ticks))
        self.metric = rng.uniform(0.0, 1.0, (n, ticks))
        self.lr = np.full((n, ticks), 1e-2)
        self.mask = np.ones((n, ticks), bool)
        self.test_metric = rng.uniform(size=n)
        self.run_seconds, self.compile_seconds = 2.0 * n, 1.0


def test_batched_finals_trains_eval_seeds_once(monkeypatch):
    calls = []

    def fake_train_runs(task, tx, *, seeds, **kw):
        calls.append(("batched", tuple(seeds)))
        return _Result(len(seeds))

    def fake_train_run(task, tx, *, seed, **kw):
        calls.append(("single", seed))
        return "grid-run"

    import optax_lode.sweep as sweep

    monkeypatch.setattr(sweep, "train_runs", fake_train_runs)
    monkeypatch.setattr(sweep, "train_run", fake_train_run)
    run = _BatchedFinals((1000, 1001, 1002))
    assert run(None, None, seed=0) == "grid-run"
    views = [run(None, None, seed=s) for s in (1000, 1001, 1002)]
    assert calls == [("single", 0), ("batched", (1000, 1001, 1002))]
    batch = run.finals[1000].res
    for i, v in enumerate(views):
        np.testing.assert_array_equal(v.metric, batch.metric[i])
        assert v.test_metric == batch.test_metric[i]
        assert v.run_seconds == pytest.approx(2.0)  # amortised per seed


@pytest.mark.slow  # baselines trained twice: ~12 s
def test_baseline_runs_do_not_depend_on_what_the_cache_held(tmp_path, monkeypatch):
    # A convnet's run vmapped alone rounds differently from the same run in a
    # batch of two, and training carries the difference on. Retraining only
    # the seed whose file is gone would make the numbers depend on the cache's
    # history; the whole batch is retrained instead, bit for bit the same.
    from optax_lode.tasks import get_task

    cfg = fast_config(
        "digits-cnn",
        task_kwargs=(("channels", 4),),
        epochs=2,
        ticks_per_epoch=1,
        baselines=("constant",),
    )
    task = get_task("digits-cnn", channels=4)
    tuning = {"constant": {"best_learning_rate": 0.05}}
    first, cached = baseline_stage(task, cfg, tuning, tmp_path, progress=False)
    assert not cached
    files = sorted(tmp_path.glob("run-constant-s*.npz"))
    assert len(files) == len(cfg.eval_seeds) == 2
    files[0].unlink()
    again, cached = baseline_stage(task, cfg, tuning, tmp_path, progress=False)
    assert not cached
    for a, b in zip(first["constant"].runs, again["constant"].runs, strict=True):
        for k in ("loss", "metric", "lr"):
            np.testing.assert_array_equal(a[k], b[k])
    _, cached = baseline_stage(task, cfg, tuning, tmp_path, progress=False)
    assert cached
    # Another set of evaluation seeds is another batch: nothing is reused, the
    # whole batch is trained (stopped at its start, to save the training).
    import optax_lode.sweep

    class Trained(Exception):
        pass

    def train_runs(task, tx, *, seeds, **kwargs):
        raise Trained(seeds)

    monkeypatch.setattr(optax_lode.sweep, "train_runs", train_runs)
    more = cfg.replace(seeds=3)
    with pytest.raises(Trained) as trained:
        baseline_stage(task, more, tuning, tmp_path, progress=False)
    assert list(trained.value.args[0]) == list(more.eval_seeds)


def test_run_cache_round_trip_and_corruption(tmp_path):
    res = _RunLike()
    rec = save_run(tmp_path / "r.npz", res, decisions=3)
    back = load_run(tmp_path / "r.npz")
    for k in ("loss", "metric", "lr", "mask"):
        np.testing.assert_array_equal(back[k], rec[k])
    assert back["test_metric"] == res.test_metric and back["decisions"] == 3.0
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    assert load_run(tmp_path / "bad.npz") is None
    assert load_run(tmp_path / "missing.npz") is None
    whole = (tmp_path / "r.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])  # truncated
    assert load_run(tmp_path / "cut.npz") is None
    flipped = bytearray(whole)
    flipped[len(whole) // 3] ^= 0xFF  # damaged inside a member: bad CRC
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    assert load_run(tmp_path / "flip.npz") is None


def test_a_damaged_cached_sweep_or_model_is_recomputed(tmp_path, monkeypatch):
    import optax_lode.model as model_module
    import optax_lode.sweep as sweep_module
    from optax_lode.demo._pipeline import fit_stage, sweep_stage

    cfg = fast_config("mnist1d-mlp")
    runs = synthetic_sweep(ticks=20, seeds=(0,), peak_lrs=(1e-2,))
    monkeypatch.setattr(sweep_module, "run_sweep", lambda *a, **k: runs)
    model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
    monkeypatch.setattr(model_module, "fit", lambda *a, **k: model)
    task = optax_lode.tasks.get_task("mnist1d-mlp")
    sweep_path = tmp_path / f"sweep-{cfg.sweep_key()}.parquet"
    model_path = tmp_path / f"model-{cfg.model_key()}.lode"
    for stage, path, arg in (
        (sweep_stage, sweep_path, task),
        (fit_stage, model_path, runs),
    ):
        stage(arg, cfg, tmp_path, progress=False)
        path.write_bytes(path.read_bytes()[:100])  # truncated
        with pytest.warns(UserWarning, match="unreadable"):
            _, cached = stage(arg, cfg, tmp_path, progress=False)
        assert not cached
        _, cached = stage(arg, cfg, tmp_path, progress=False)
        assert cached


def test_a_cached_model_fitted_to_other_runs_is_fitted_again(tmp_path, monkeypatch):
    """The model's key names the sweep by its settings: a sweep made again
    elsewhere is other runs, and the model the cache holds was not fitted to
    them (its training summary's runs digest says so). A real (2-step) fit:
    its checkpoint of the first runs made the re-fit, and every later re-run,
    fail ("belongs to a fit of other data")."""
    import optax_lode.model as model_module
    from optax_lode.demo._pipeline import fit_stage

    cfg = fast_config("mnist1d-mlp", fit_steps=2)
    runs = synthetic_sweep(ticks=20, seeds=(0,), peak_lrs=(1e-2,))
    # The same runs, made again where they round differently.
    again = optax_lode.Trajectories.from_arrays(
        runs.loss * (1 + 1e-7), runs.metric, runs.lr,
        mask=runs.mask, run_ids=runs.run_ids, info=runs.info,
    )  # fmt: skip
    assert runs.run_ids == again.run_ids and runs.digest() != again.digest()
    assert fit_stage(runs, cfg, tmp_path, progress=False)[1] is False
    assert fit_stage(runs, cfg, tmp_path, progress=False)[1] is True
    with pytest.warns(UserWarning, match="fitted to other runs"):
        model, cached = fit_stage(again, cfg, tmp_path, progress=False)
    assert not cached and model.training_summary["runs_digest"] == again.digest()
    assert fit_stage(again, cfg, tmp_path, progress=False)[1] is True
    # The stale checkpoint went with the stale model.
    checkpoints = [p.name for p in tmp_path.glob("fit-*")]
    assert checkpoints == [f"fit-{cfg.model_key()}-{again.digest()[:12]}"]
    # A model saved before fits recorded the digest cannot be checked: kept.
    monkeypatch.setattr(
        model_module,
        "fit",
        lambda runs, **kw: optax_lode.LatentODE(T=20, key=jax.random.key(0)),
    )
    other = fast_config("mnist1d-mlp", fit_steps=7)
    fit_stage(runs, other, tmp_path, progress=False)
    assert fit_stage(again, other, tmp_path, progress=False)[1] is True


def test_lode_runs_and_reconstruction_are_keyed_by_the_models_content(
    tmp_path, monkeypatch
):
    """A model fitted again under the same settings (another CPU rounds
    differently) is another model: its LODE runs and its reconstruction are
    computed anew instead of read from the first model's cache entries."""
    import optax_lode.model as model_module
    import optax_lode.sweep as sweep_module
    from optax_lode.demo._pipeline import _clock, lode_stage, reconstruction_stage

    cfg = fast_config("mnist1d-mlp", seeds=2)
    task = optax_lode.tasks.get_task("mnist1d-mlp")
    _, ticks, _ = _clock(task, cfg)
    first = optax_lode.LatentODE(T=ticks, key=jax.random.key(0))
    again = optax_lode.LatentODE(T=ticks, key=jax.random.key(1))
    trained, evaluated = [], []

    def train_run(task, tx, *, seed, **kwargs):
        trained.append(seed)
        res = _RunLike(ticks, seed=seed)
        res.opt_state = tx.init({"w": np.zeros(3, np.float32)})
        return res

    def evaluate(model, runs, *, observe):
        evaluated.append(observe)
        return {"loss": 0.1}

    monkeypatch.setattr(sweep_module, "train_run", train_run)
    monkeypatch.setattr(model_module, "evaluate", evaluate)
    held = synthetic_sweep(ticks=ticks, seeds=(0,), peak_lrs=(1e-2,))
    for model, computed in ((first, True), (first, False), (again, True)):
        trained.clear()
        evaluated.clear()
        runs, cached = lode_stage(task, model, cfg, tmp_path, progress=False)
        assert cached is not computed
        assert trained == (list(cfg.eval_seeds) if computed else [])
        assert "model_digest" not in runs.setting  # a cache key, not a setting
        _, cached = reconstruction_stage(model, held, cfg, tmp_path)
        assert cached is not computed and bool(evaluated) is computed
    # Held-out runs of a sweep made again are other runs: reconstructed anew.
    evaluated.clear()
    other = synthetic_sweep(ticks=ticks, seeds=(1,), peak_lrs=(1e-2,))
    _, cached = reconstruction_stage(again, other, cfg, tmp_path)
    assert not cached and evaluated


def test_tuning_on_the_sweep_is_keyed_by_the_sweeps_content(tmp_path):
    """A sweep made again under the same settings holds other runs; tuning
    read from the cache would select a learning rate from runs now gone."""
    from optax_lode.demo._pipeline import tune_stage

    cfg = fast_config("mnist1d-mlp", seeds=2, baselines=("constant",))
    task = optax_lode.tasks.get_task("mnist1d-mlp")
    grid = dict(peak_lrs=cfg.lrs, seeds=tuple(range(cfg.sweep_seeds)))
    sweep = synthetic_sweep(ticks=12, schedules=("constant",), **grid)
    loss = sweep.loss.copy()
    best = tune_from_sweep(sweep, "constant")["best_learning_rate"]
    # The same runs but the best rate's final metrics made the worst.
    metric = sweep.metric.copy()
    metric[np.isclose(sweep.info["peak_lr"], best), -1] = -1.0
    again = optax_lode.Trajectories.from_arrays(
        loss, metric, sweep.lr, mask=sweep.mask, run_ids=sweep.run_ids, info=sweep.info
    )
    for traj, computed, lr in ((sweep, True, best), (sweep, False, best),
                               (again, True, None)):  # fmt: skip
        tuning, cached = tune_stage(task, traj, cfg, tmp_path, progress=False)
        assert cached is not computed
        chosen = tuning["constant"]["best_learning_rate"]
        assert chosen == lr if lr is not None else chosen != best


class _RunLike:
    def __init__(self, ticks=6, seed=0):
        rng = np.random.default_rng(seed)
        self.loss = np.exp(-np.arange(ticks) / 5) + 0.1
        self.metric = 1 - self.loss / 2 + 0.01 * rng.normal(size=ticks)
        self.lr = np.geomspace(1e-2, 1e-3, ticks)
        self.mask = np.ones(ticks, bool)
        self.test_metric = float(self.metric[-1])
        self.run_seconds, self.compile_seconds = 1.5, 0.5


def test_write_report_and_figures_from_results(tmp_path):
    ticks = 20
    cfg = fast_config("digits-mlp", epochs=10, seeds=3)
    traj = synthetic_sweep(ticks=ticks, schedules=("constant", "cosine"),
                           peak_lrs=(1e-2, 3e-2), seeds=(0, 1))  # fmt: skip
    _, held = traj.split(held_out=0.25, seed=0)
    model = optax_lode.LatentODE(T=ticks, key=jax.random.key(0), mu=2)
    # The report only reads these numbers (evaluate itself is tested elsewhere).
    rec = {"loss": 0.12, "loss_std": 0.03, "metric": 0.02, "metric_std": 0.01,
           "lr": 0.3, "lr_std": 0.1, "selected_rank": 2, "spearman": 0.8,
           "num_runs": held.num_runs,
           "persistence": {"loss": 0.5, "metric": 0.2, "lr": 0.4}}  # fmt: skip
    recon = dict.fromkeys((0.05, 0.1, 0.5), rec)
    methods = {}
    for m, shift in (("LODE", 0.02), ("constant", 0.0), ("cosine", -0.01)):
        runs = []
        for s in cfg.eval_seeds:
            r = _RunLike(ticks, seed=s)
            rec = {"loss": r.loss, "metric": r.metric + shift, "lr": r.lr}
            rec.update(mask=r.mask, test_metric=r.test_metric + shift)
            rec.update(run_seconds=1.0, decisions=9.0, fallbacks=1.0)
            runs.append(rec)
        methods[m] = MethodRuns(m, {}, cfg.eval_seeds, runs)
    tuning = {
        b: {"name": b, "source": "sweep", "learning_rates": [1e-2, 3e-2],
            "val_metrics": [[0.5, 0.6], [0.7, float("nan")]],
            "best_learning_rate": 1e-2}
        for b in ("constant", "cosine")
    }  # fmt: skip
    result = DemoResult(
        config=cfg.replace(baselines=("constant", "cosine")),
        out_dir=tmp_path,
        sweep=traj,
        held_out=held,
        model=model,
        reconstruction=recon,
        tuning=tuning,
        methods=methods,
        timings={"sweep": 1.0, "total": 2.0, "report": 0.5},
        cached={"sweep": True},
    )
    report = write_report(result).read_text()
    run_rows = report.split("## Run")[1].split("\n\n")[1].splitlines()[2:]
    assert [r.split(" | ")[0] for r in run_rows] == ["| sweep", "| report", "| total"]
    for png in PNGS:
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG", png
    assert "| LODE | **" in report and "LODE − " in report
    assert "0.01: 0.55; 0.03: diverged" in report
    # 1e-2 is the grid's lower end: the tuning may have stopped short.
    assert "| constant | 0.01 (grid's edge) | sweep |" in report
    assert (
        "true rank **2**" in report
        and "| train loss | 0.12 ± 0.03 |" in report
        and "| sweep | 1.0 | yes |" in report
        and f"content digest `{optax_lode.model.model_digest(model)}`" in report
    )
    assert f"Model: `cache/model-{cfg.model_key()}.lode`" in report
    assert "held-out run (one epoch)" in report  # 10 epochs: 10% observed
    # A run of one epoch: trial selection observes half of it, and says so.
    one = dataclasses.replace(result, config=result.config.replace(ticks_per_epoch=20))
    report = write_report(one, figures=False).read_text()
    assert "the first 50% of each held-out run (half of its single epoch)" in report


@pytest.mark.parametrize(
    "name", ["nqm", "digits-cnn", "mnist1d-cnn", "text-transformer"]
)
def test_default_config_gives_every_offline_task_decisions_to_make(name):
    # One tick per epoch of text-transformer's 3 epochs was T = 3: a window of
    # 2 and one decision, at the last tick, so Table 1's row measured the warm
    # start. Every default must leave the LODE T >= 20 ticks: at least 9
    # decisions with the default window of 5% of the run (at least 2 ticks).
    from optax_lode.demo import default_config
    from optax_lode.demo._pipeline import _clock
    from optax_lode.tasks import get_task

    cfg = default_config(name)
    task = get_task(name, **dict(cfg.task_kwargs))
    _, T, _ = _clock(task, cfg)
    assert T >= 20
    # The cache keys' run length (read from the factory) is the task's.
    assert cfg.run_epochs() == task.default_epochs
    # An explicit setting still wins over the task's default.
    assert default_config(name, ticks_per_epoch=2).ticks_per_epoch == 2


def test_the_best_parametric_schedule_is_never_one_without_a_finite_run():
    """Fig. 4's rival: a schedule whose every run diverged had a NaN mean,
    which max() kept when it came first."""
    from types import SimpleNamespace

    from optax_lode.demo._report import _best_parametric

    nan = float("nan")
    methods = {
        "LODE": SimpleNamespace(test_metrics=[0.9, 0.91]),
        "constant": SimpleNamespace(test_metrics=[nan, nan]),
        "cosine": SimpleNamespace(test_metrics=[0.8, 0.85]),
    }
    assert _best_parametric(SimpleNamespace(methods=methods)) == "cosine"


@pytest.fixture(scope="module")
def lode_result(tmp_path_factory):
    """A :class:`DemoResult` whose LODE runs are real ``lode_schedule`` runs
    (an untrained model on the NQM, every decision's options set) and whose
    one baseline is not parametric (an hd-adam row reusing those runs)."""
    from optax_lode.demo._pipeline import _clock, lode_stage

    kw = {"n": 10, "tol": 50.0, "match_rule": "closest_loss", "anchor": "live",
          "lr_bounds": (1e-3, 5e-2)}  # fmt: skip
    cfg = fast_config("nqm", lode_kwargs=kw, baselines=("hd-adam",))
    task = optax_lode.tasks.get_task("nqm")
    _, ticks, _ = _clock(task, cfg)
    model = optax_lode.LatentODE(T=ticks, key=jax.random.key(0), mu=2)
    lode, _ = lode_stage(
        task, model, cfg, tmp_path_factory.mktemp("cache"), progress=False
    )
    assert all(r["decisions"] > r["fallbacks"] for r in lode.runs)
    traj = synthetic_sweep(ticks=ticks, schedules=("constant", "cosine"),
                           peak_lrs=(1e-2, 3e-2), seeds=(0, 1))  # fmt: skip
    _, held = traj.split(held_out=0.25, seed=0)
    rec = {"loss": 0.1, "metric": 0.1, "lr": 0.1, "num_runs": held.num_runs}
    base = MethodRuns("hd-adam", {}, lode.seeds, lode.runs)
    tuning = {
        "hd-adam": {
            "name": "hd-adam",
            "source": "tune",
            "learning_rates": [1e-2],
            "val_metrics": [[0.5]],
            "best_learning_rate": 1e-2,
        }
    }
    return DemoResult(
        config=cfg, out_dir=None, sweep=traj, held_out=held, model=model,
        reconstruction=dict.fromkeys((0.05, 0.5), rec), tuning=tuning,
        methods={"LODE": lode, "hd-adam": base}, timings={}, cached={},
    )  # fmt: skip


def test_the_decision_fan_replays_a_decision_the_run_made(
    lode_result, tmp_path, monkeypatch
):
    """decision_fan.png explains a decision of the run: with the run's key
    (lode_schedule's seed, split at every decision) and every lode_kwargs
    option, its segment is the rate the run then followed."""
    import optax_lode.decision as decision
    from optax_lode.demo._report import _figures

    calls, explain = [], decision.explain

    def spy(model, window, t, key, config, **kwargs):
        calls.append((t, explain(model, window, t, key, config, **kwargs)))
        return calls[-1][1]

    monkeypatch.setattr(decision, "explain", spy)
    _figures(dataclasses.replace(lode_result, out_dir=tmp_path))
    lode = lode_result.methods["LODE"]
    lr = lode.runs[0]["lr"]
    assert calls
    for t, ex in calls:
        assert int(np.asarray(ex.accepted).sum()) > 0  # the key matters
        segment = np.asarray(ex.decision.segment)
        np.testing.assert_allclose(segment, lr[t : t + len(segment)], rtol=1e-5)


def test_the_report_links_only_its_figures_and_names_the_real_model_path(
    lode_result, tmp_path
):
    """An output folder that holds an earlier run's Fig. 4 (this run has no
    parametric baseline to draw it against); a cache elsewhere."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "lr_schedules.png").write_bytes(b"\x89PNG stale")
    cache = tmp_path / "cache"
    result = dataclasses.replace(lode_result, out_dir=out, cache_dir=cache)
    for figures in (True, False):  # run_demo's two writes
        report = write_report(result, figures=figures).read_text()
        assert "lr_schedules.png" not in report
        assert "](decision_fan.png)" in report
    assert not (out / "lr_schedules.png").exists()
    key = result.config.model_key()
    assert f"Model: `{(cache / f'model-{key}.lode').resolve()}`" in report
    inside = dataclasses.replace(result, cache_dir=out / "my-cache")
    report = write_report(inside, figures=False).read_text()
    assert f"Model: `my-cache/model-{key}.lode`" in report
