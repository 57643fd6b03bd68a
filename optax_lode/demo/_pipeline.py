"""The demo pipeline: sweep -> fit -> LODE runs -> tuned baselines -> report.

Every stage caches its output in ``<out>/cache/`` under a key of exactly the
settings it depends on (:class:`DemoConfig`), so a re-run reuses the sweep and
the model and redoes only what is missing, e.g. the LODE run of a seed added
with ``--seeds``. A baseline's runs are one vmapped batch of all evaluation
seeds, and that batch is part of their key, so adding a seed retrains them
all: a re-run reproduces every cached number bit for bit. The same pipeline
backs the schedule-quality benchmark.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optax_lode.demo._cache import load_json, load_run, save_json, save_run
from optax_lode.demo._config import DemoConfig

PyTree = Any


@dataclasses.dataclass
class MethodRuns:
    """The evaluation runs of one method (LODE or a tuned baseline).

    Attributes:
        name: method name (``"LODE"`` or a baseline's registry name).
        setting: what was run: the tuned learning rate of a baseline, the
            LODE's configuration.
        seeds: the evaluation seeds.
        runs: one cached record per seed: ``loss``, ``metric``, ``lr``, ``mask``
            (per tick), ``test_metric``, ``run_seconds`` (amortised per run
            for vmapped runs), ...

    Examples:
        >>> import numpy as np
        >>> from optax_lode.demo import MethodRuns
        >>> runs = [{"test_metric": 0.9, "lr": np.full(3, 0.1)},
        ...         {"test_metric": 0.8, "lr": np.full(3, 0.2)}]
        >>> m = MethodRuns("cosine", {"learning_rate": 0.1}, (1000, 1001), runs)
        >>> m.test_metrics.tolist(), m.stack("lr").shape
        ([0.9, 0.8], (2, 3))
    """

    name: str
    setting: dict[str, Any]
    seeds: tuple[int, ...]
    runs: list[dict[str, Any]]

    @property
    def test_metrics(self) -> np.ndarray:
        """The final test metric of every run, ``(seeds,)`` float64."""
        return np.array([r["test_metric"] for r in self.runs], np.float64)

    def stack(self, field: str) -> np.ndarray:
        """One per-tick record of every run, stacked.

        Args:
            field: a record of the runs, e.g. ``"loss"``, ``"metric"``,
                ``"lr"`` or ``"mask"``.

        Returns:
            ``(seeds, ticks)`` float64 array.

        Raises:
            KeyError: a run has no ``field``.
        """
        return np.stack([np.asarray(r[field], np.float64) for r in self.runs])


@dataclasses.dataclass
class DemoResult:
    """Everything the report is made of.

    Attributes:
        config: the settings.
        out_dir: where the report and figures are.
        sweep: the sweep's runs (``Trajectories``).
        held_out: the sweep runs kept out of the fit (Table A1).
        model: the fitted ``LatentODE``.
        reconstruction: ``{observe: evaluate(...) dict}`` on the held-out runs.
        tuning: per baseline, the tuning record (grid, validation metrics,
            selected learning rate, source).
        methods: ``"LODE"`` and every baseline -> :class:`MethodRuns`.
        timings: seconds per stage and in total; a stage read from the cache
            takes the time of reading (and checking) it, not nothing.
        cached: which stages were read from the cache.
        cache_dir: where the stages' cache is (``None``: ``out_dir/cache``).
    """

    config: DemoConfig
    out_dir: Path
    sweep: Any
    held_out: Any
    model: Any
    reconstruction: dict[float, dict[str, Any]]
    tuning: dict[str, dict[str, Any]]
    methods: dict[str, MethodRuns]
    timings: dict[str, float]
    cached: dict[str, bool]
    cache_dir: Path | None = None


def _bar(iterable, *, desc: str, total: int | None = None, progress: bool):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="run", leave=True)


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return out


def _clock(task: Any, cfg: DemoConfig) -> tuple[int, int, int]:
    from optax_lode.sweep._loop import check_clock

    epochs = task.default_epochs if cfg.epochs is None else cfg.epochs
    ticks, spt = check_clock(task, epochs, cfg.ticks_per_epoch)
    return epochs, ticks, spt


# -- stages --------------------------------------------------------------------


def _recompute(path: Path, err: Exception) -> None:
    """A damaged cache file: say so, remove it, and let the stage recompute."""
    warnings.warn(f"{path} is unreadable ({err}); recomputing it.", stacklevel=3)
    path.unlink()


def sweep_stage(task: Any, cfg: DemoConfig, cache: Path, *, progress: bool):
    """The paper's sweep of the task, cached as Parquet; ``(trajectories, cached)``."""
    from optax_lode.runs import Trajectories
    from optax_lode.sweep import run_sweep

    key = cfg.sweep_key()
    path = cache / f"sweep-{key}.parquet"
    if path.exists():
        try:
            return Trajectories.from_parquet(path), True
        except (OSError, ValueError) as err:  # pyarrow's errors are ValueErrors
            _recompute(path, err)
    epochs, _, _ = _clock(task, cfg)
    traj = run_sweep(
        task,
        shapes=cfg.shapes,
        lrs=cfg.lrs,
        seeds=cfg.sweep_seeds,
        epochs=epochs,
        ticks_per_epoch=cfg.ticks_per_epoch,
        checkpoint_dir=cache / f"sweep-{key}-chunks",
        progress=progress,
    )
    traj.to_parquet(path)
    return traj, False


def fit_stage(train: Any, cfg: DemoConfig, cache: Path, *, progress: bool):
    """The LODE fitted to the sweep's training runs, cached; ``(model, cached)``."""
    from optax_lode.model import fit, load_model, save_model

    key = cfg.model_key()
    path = cache / f"model-{key}.lode"

    def checkpoint_dir(runs_digest: str) -> Path:
        # By the runs' content too: fit refuses a checkpoint of other runs,
        # and a sweep made again (another CPU) is other runs under one key.
        return cache / f"fit-{key}-{runs_digest[:12]}"

    if path.exists():
        try:
            model = load_model(path)
        except ValueError as err:
            _recompute(path, err)
        else:
            # The key names the runs by their settings; a sweep made again
            # (another CPU) is other runs. Models fitted before fits recorded
            # their runs' digest cannot be checked, and are kept.
            fitted_to = model.training_summary.get("runs_digest")
            if fitted_to in (None, train.digest()):
                return model, True
            warnings.warn(
                f"{path} was fitted to other runs than the cached sweep's "
                "(the sweep was made again); fitting it again.",
                stacklevel=2,
            )
            path.unlink()
            shutil.rmtree(checkpoint_dir(fitted_to), ignore_errors=True)
    model = fit(
        train,
        steps=cfg.fit_steps,
        seed=cfg.seed,
        progress=progress,
        checkpoint_dir=checkpoint_dir(train.digest()),
        **dict(cfg.fit_kwargs),
    )
    save_model(path, model)
    return model, False


def sweep_and_model(
    task: Any, cfg: DemoConfig, cache: Path, *, progress: bool
) -> tuple[Any, Any, Any]:
    """The sweep, its held-out runs and the LODE fitted to the rest, each from
    the cache when there: ``(sweep, held_out, model)``. What the benchmarks
    that study the demo's model start from."""
    traj, _ = sweep_stage(task, cfg, cache, progress=progress)
    train, held_out = cfg.split(traj)
    model, _ = fit_stage(train, cfg, cache, progress=progress)
    return traj, held_out, model


def reconstruction_stage(model: Any, held_out: Any, cfg: DemoConfig, cache: Path):
    """Table A1 and trial selection on the held-out runs (``evaluate``), cached."""
    from optax_lode.model import evaluate, model_digest

    # The model and the runs by their content too: one fitted again elsewhere
    # is another model, and a sweep made again holds other runs.
    digests = f"{model_digest(model)[:12]}-{held_out.digest()[:12]}"
    path = cache / f"reconstruction-{cfg.model_key()}-{digests}.json"
    cached = load_json(path)
    if cached is not None:
        return {float(k): v for k, v in cached.items()}, True
    out = {}
    # 5% and 50% observed (Table A1); one epoch observed (trial selection, A.3).
    first_epoch = 1.0 / (held_out.num_ticks // cfg.ticks_per_epoch)
    for observe in sorted({0.05, 0.5, min(first_epoch, 0.5)}):
        res = evaluate(model, held_out, observe=observe)
        out[observe] = {k: _jsonable(v) for k, v in dict(res).items()}
    save_json(path, {str(k): v for k, v in out.items()})
    return out, False


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    a = np.asarray(v)
    if a.dtype.kind in "fiub":
        return a.tolist() if a.ndim else a.item()
    return str(v)


def tune_from_sweep(
    traj: Any,
    name: str,
    lrs: Sequence[float] | None = None,
    seeds: int | None = None,
) -> dict[str, Any]:
    """The tuning protocol (paper A.2) applied to the sweep's runs of one shape.

    The sweep *is* that shape's grid search: the learning rate with the best
    mean final validation metric over the sweep's seeds is selected; a
    diverged run counts as worst (as :func:`optax_lode.baselines.tune`). Given
    the sweep's grid (``lrs`` and ``seeds`` per configuration), a run missing
    from ``traj`` (the sweep leaves out a run that diverged in its first tick)
    counts as diverged too, and a rate whose runs all diverged stays in the
    grid.
    """
    info = traj.info
    rows = np.asarray(info["schedule"] == name)
    if not rows.any():
        raise ValueError(f"the sweep has no runs of shape {name!r}")
    found = set(info.loc[rows, "peak_lr"].astype(float))
    if lrs is not None:
        found |= {float(lr) for lr in lrs}
    lrs = np.asarray(sorted(found))
    final = traj.metric[:, -1]  # NaN when the run did not reach the end
    vals, scores = [], []
    for lr in lrs:
        sel = rows & np.isclose(info["peak_lr"].astype(float), lr)
        v = final[np.asarray(sel)]
        if seeds is not None and len(v) < seeds:
            v = np.concatenate([v, np.full(seeds - len(v), np.nan)])
        vals.append(v.tolist())
        scores.append(np.where(np.isfinite(v), v, -np.inf).mean())
    scores = np.asarray(scores)
    best = (
        float(lrs[int(np.argmax(scores))])
        if np.isfinite(scores).any()
        else float(lrs.min())
    )
    return {
        "name": name,
        "source": "sweep",
        "learning_rates": lrs.tolist(),
        "val_metrics": vals,
        "best_learning_rate": best,
    }


def tune_stage(
    task: Any, traj: Any, cfg: DemoConfig, cache: Path, *, progress: bool
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Tunes every baseline (paper A.2); returns ``(tuning, all_cached)``.

    Shapes of the sweep are tuned on the sweep (:func:`tune_from_sweep`); the
    others with :func:`optax_lode.baselines.tune` over the sweep's learning
    rates (a learning-rate-free method over its default multipliers), whose
    final runs on the evaluation seeds are cached as that baseline's runs.
    """
    from optax_lode.baselines import tune

    epochs, _, _ = _clock(task, cfg)
    tuning: dict[str, dict[str, Any]] = {}
    all_cached = True
    names = list(cfg.baselines)
    sweep_digest = traj.digest()[:12]
    for name in _bar(names, desc="tune baselines", progress=progress):
        key = cfg.tuning_key(name)
        # Tuned on the sweep: by the sweep's content too (a sweep made again).
        key = f"{key}-{sweep_digest}" if name in cfg.shapes else key
        path = cache / f"tune-{name}-{key}.json"
        record = load_json(path)
        if record is None:
            all_cached = False
            if name in cfg.shapes:
                record = tune_from_sweep(traj, name, cfg.lrs, cfg.sweep_seeds)
            else:
                res = tune(
                    _BatchedFinals(cfg.eval_seeds),
                    task,
                    name,
                    # What the key names: the sweep's rates, or the multipliers.
                    learning_rates=cfg.tuning_grid(name),
                    tuning_seeds=cfg.tuning_seeds,
                    num_seeds=cfg.seeds,
                    first_seed=cfg.first_seed,
                    epochs=epochs,
                    ticks_per_epoch=cfg.ticks_per_epoch,
                )
                lr = float(res.best_learning_rate)
                for seed, run in zip(res.seeds, res.runs, strict=True):
                    key = cfg.run_key(
                        name, seed, {"learning_rate": lr}, batch=cfg.eval_seeds
                    )
                    save_run(cache / f"run-{name}-s{seed}-{key}.npz", run)
                record = {
                    "name": name,
                    "source": "tune",
                    "learning_rates": np.asarray(res.learning_rates).tolist(),
                    "val_metrics": np.asarray(res.val_metrics).tolist(),
                    "best_learning_rate": lr,
                }
            save_json(path, record)
        tuning[name] = record
    return tuning, all_cached


class _BatchedFinals:
    """A ``train_run`` for :func:`optax_lode.baselines.tune` that trains the
    final runs of all evaluation seeds at once.

    ``tune`` trains its grid runs, then the selected setting once per fresh
    seed, one call per seed with the same configuration. The first call with an
    evaluation seed trains every evaluation seed vmapped (one compilation
    instead of one per seed) with that call's transformation; the later calls
    return their seed's run. Grid runs go to ``train_run`` unchanged.
    """

    def __init__(self, eval_seeds: tuple[int, ...]) -> None:
        self.eval_seeds = tuple(eval_seeds)
        self.finals: dict[int, Any] | None = None

    def __call__(self, task: Any, tx: Any, *, seed: int, **kwargs: Any) -> Any:
        from optax_lode.sweep import train_run, train_runs

        if seed not in self.eval_seeds:
            return train_run(task, tx, seed=seed, **kwargs)
        if self.finals is None:
            res = train_runs(task, tx, seeds=list(self.eval_seeds), **kwargs)
            n = len(self.eval_seeds)
            self.finals = {
                s: _RunView(res, i, n) for i, s in enumerate(self.eval_seeds)
            }
        return self.finals[seed]


def baseline_stage(
    task: Any,
    cfg: DemoConfig,
    tuning: dict[str, dict[str, Any]],
    cache: Path,
    *,
    progress: bool,
) -> tuple[dict[str, MethodRuns], bool]:
    """Every baseline at its tuned rate on the evaluation seeds (vmapped over seeds)."""
    from optax_lode.baselines import eval_params, make_baseline
    from optax_lode.sweep import train_runs

    epochs, ticks, spt = _clock(task, cfg)
    out: dict[str, MethodRuns] = {}
    all_cached = True
    for name in _bar(list(cfg.baselines), desc="baseline runs", progress=progress):
        lr = float(tuning[name]["best_learning_rate"])
        setting = {"learning_rate": lr}

        def path(seed: int, name=name, setting=setting) -> Path:
            key = cfg.run_key(name, seed, setting, batch=cfg.eval_seeds)
            return cache / f"run-{name}-s{seed}-{key}.npz"

        records = {s: load_run(path(s)) for s in cfg.eval_seeds}
        if any(r is None for r in records.values()):
            # Always the whole batch: a seed trained in a smaller batch would
            # round differently from its cached neighbours (see run_key).
            all_cached = False
            tx = make_baseline(
                name,
                learning_rate=lr,
                # The steps the run makes (a tick is whole steps), as LODE's.
                total_steps=ticks * spt,
                weight_decay=float(getattr(task, "weight_decay", 0.0)),
            )
            res = train_runs(
                task,
                tx,
                seeds=list(cfg.eval_seeds),
                epochs=epochs,
                ticks_per_epoch=cfg.ticks_per_epoch,
                eval_fn=functools.partial(eval_params, name),
            )
            for i, seed in enumerate(cfg.eval_seeds):
                one = _RunView(res, i, len(cfg.eval_seeds))
                records[seed] = save_run(path(seed), one)
        out[name] = MethodRuns(
            name, setting, cfg.eval_seeds, [records[s] for s in cfg.eval_seeds]
        )
    return out, all_cached


@dataclasses.dataclass
class _RunView:
    """Run ``i`` of a vmapped ``RunResult``; its time is the batch's, amortised."""

    res: Any
    i: int
    n: int

    def __getattr__(self, name: str) -> Any:
        if name in ("run_seconds", "compile_seconds"):
            return getattr(self.res, name) / self.n
        return np.asarray(getattr(self.res, name))[self.i]


def lode_transform(model: Any, task: Any, cfg: DemoConfig, seed: int):
    """``chain(adamw(1.0, wd), lode_schedule(model, ...))``: AdamW with LODE's rate."""
    import optax

    from optax_lode.transform import lode_schedule

    _, ticks, spt = _clock(task, cfg)
    return optax.chain(
        optax.adamw(1.0, weight_decay=float(getattr(task, "weight_decay", 0.0))),
        lode_schedule(
            model,
            total_steps=ticks * spt,
            steps_per_tick=spt,
            seed=seed,
            **dict(cfg.lode_kwargs),
        ),
    )


def _lode_state(opt_state: Any) -> Any:
    """The :class:`optax_lode.LodeState` inside a chain's state."""
    from optax_lode.transform._schedule import lode_states

    found = lode_states(opt_state)
    if len(found) != 1:
        raise ValueError(
            f"expected one LodeState in the optimizer state, got {len(found)}"
        )
    return found[0]


def lode_stage(
    task: Any, model: Any, cfg: DemoConfig, cache: Path, *, progress: bool
) -> tuple[MethodRuns, bool]:
    """LODE-scheduled training on every evaluation seed, one run at a time.

    Runs are not vmapped (``lode_schedule(axis_name=...)`` would keep its
    ``cond``): each run has its own ``lode_schedule`` seed, so its own
    transformation; a convnet vmapped over runs is a slow grouped convolution
    on CPU; and a run's rounding would depend on the batch it trained in,
    which the cache keys of a run alone do not name.
    """
    from optax_lode.model import model_digest
    from optax_lode.sweep import train_run

    epochs, _, _ = _clock(task, cfg)
    setting = cfg.lode_setting(model_digest(model))
    records = {}
    all_cached = True
    for seed in _bar(list(cfg.eval_seeds), desc="LODE runs", progress=progress):
        path = cache / f"run-LODE-s{seed}-{cfg.run_key('LODE', seed, setting)}.npz"
        record = load_run(path)
        if record is None:
            all_cached = False
            res = train_run(
                task,
                lode_transform(model, task, cfg, seed),
                seed=seed,
                epochs=epochs,
                ticks_per_epoch=cfg.ticks_per_epoch,
            )
            lode_state = _lode_state(res.opt_state)
            record = save_run(
                path,
                res,
                decisions=float(lode_state.decisions),
                fallbacks=float(lode_state.fallbacks),
            )
        records[seed] = record
    runs = MethodRuns(
        "LODE",
        # The model and the decision revision are cache keys, not settings.
        {
            k: v
            for k, v in setting.items()
            if k not in ("model", "model_digest", "decision_revision")
        },
        cfg.eval_seeds,
        [records[s] for s in cfg.eval_seeds],
    )
    return runs, all_cached


# -- the whole demo ------------------------------------------------------------


def _enable_compile_cache(directory: Path) -> None:
    import jax

    if jax.config.jax_compilation_cache_dir:
        return  # the user's own cache wins
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run_demo(
    config: DemoConfig,
    out_dir: str | Path = "results/demo",
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    report: bool = True,
    compile_cache: bool = False,
    cache_dir: str | Path | None = None,
) -> DemoResult:
    """Runs (or resumes) the whole demo and writes its report.

    Stages: the sweep (``run_sweep``), the LODE fit (``fit``, on 1 -
    ``held_out`` of the sweep's runs), Table A1 reconstruction and trial
    selection on the held-out runs (``evaluate``), the baselines' tuning,
    ``config.seeds`` LODE runs and every baseline at its tuned setting on the
    same seeds; then ``report.md`` and the figures in ``out_dir``.

    Args:
        config: the settings (:func:`default_config`, :func:`fast_config`).
        out_dir: where the report, figures and ``cache/`` go.
        progress: progress bars per stage.
        log: where stage messages go (``None``: silent).
        report: write ``report.md`` and the figures.
        compile_cache: turn on JAX's persistent compilation cache in
            ``<out_dir>/cache/xla`` (unless one is already configured). Runs of
            the same method on other seeds then reuse the compiled program,
            which saves most of a run's time on a CPU. This changes a global
            JAX setting for the rest of the process, so it is off by default;
            the ``optax-lode demo`` command turns it on.
        cache_dir: where the stages' cache goes; default ``<out_dir>/cache``.
            Keys cover every setting, so one directory can serve several
            tasks and configurations (the benchmarks share the demo's).

    Returns:
        A :class:`DemoResult`.

    Raises:
        KeyError: ``config.task`` is not a registered task.
        ImportError: the task needs an optional dependency that is not
            installed.
        DataNotPreparedError: a TFDS task whose data is not prepared
            (:class:`optax_lode.tasks.DataNotPreparedError`).
        ValueError: a run clock the task cannot have (``ticks_per_epoch``
            above its steps per epoch), or an argument a stage refuses.

    Examples:
        >>> from optax_lode.demo import fast_config, run_demo
        >>> result = run_demo(fast_config("nqm"), "results/demo-nqm",  # doctest: +SKIP
        ...                   progress=False)
        >>> result.methods["LODE"].test_metrics  # doctest: +SKIP
    """
    from optax_lode.tasks import get_task

    say = log or (lambda _msg: None)
    out = Path(out_dir)
    cache = out / "cache" if cache_dir is None else Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    if compile_cache:
        _enable_compile_cache(cache / "xla")
    watch = _Stopwatch()
    cached: dict[str, bool] = {}
    t_start = time.perf_counter()

    task = watch.run("setup", lambda: get_task(config.task, **dict(config.task_kwargs)))
    say(
        f"[1/6] sweep: {config.task}, {len(config.shapes)} shapes x "
        f"{len(config.lrs)} lrs x {config.sweep_seeds} seeds"
    )
    traj, cached["sweep"] = watch.run(
        "sweep", lambda: sweep_stage(task, config, cache, progress=progress)
    )
    train, held_out = config.split(traj)
    say(f"[2/6] fit the LODE on {train.num_runs} runs ({held_out.num_runs} held out)")
    model, cached["fit"] = watch.run(
        "fit", lambda: fit_stage(train, config, cache, progress=progress)
    )
    say("[3/6] reconstruction of held-out runs (Table A1) and trial selection")
    recon, cached["reconstruction"] = watch.run(
        "reconstruction", lambda: reconstruction_stage(model, held_out, config, cache)
    )
    say(f"[4/6] LODE runs on seeds {list(config.eval_seeds)}")
    lode, cached["lode"] = watch.run(
        "lode", lambda: lode_stage(task, model, config, cache, progress=progress)
    )
    say(f"[5/6] tune and run {len(config.baselines)} baselines on the same seeds")
    tuning, cached["tuning"] = watch.run(
        "tuning", lambda: tune_stage(task, traj, config, cache, progress=progress)
    )
    baselines, cached["baselines"] = watch.run(
        "baselines",
        lambda: baseline_stage(task, config, tuning, cache, progress=progress),
    )
    watch.timings["total"] = time.perf_counter() - t_start
    result = DemoResult(
        config=config,
        out_dir=out,
        sweep=traj,
        held_out=held_out,
        model=model,
        reconstruction=recon,
        tuning=tuning,
        methods={"LODE": lode, **baselines},
        timings=watch.timings,
        cached=cached,
        cache_dir=cache,
    )
    if report:
        from optax_lode.demo._report import write_report

        say(f"[6/6] report and figures in {out}")
        t0 = time.perf_counter()
        write_report(result)
        result.timings["report"] = time.perf_counter() - t0
        result.timings["total"] = time.perf_counter() - t_start
        write_report(result, figures=False)  # the final timings into report.md
    return result
