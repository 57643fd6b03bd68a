"""The demo's report: ``report.md`` (Table 1 style, Table A1, trial selection,
tuning and timings) and the figures, from a :class:`DemoResult`."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import equinox as eqx
import numpy as np

from optax_lode._files import atomic_write_text
from optax_lode.evaluation import (
    compare_methods,
    plot_decision_fan,
    plot_lr_schedules,
    plot_metric_curves,
    plot_reconstruction,
    plot_reconstruction_errors,
    summarize,
)

if TYPE_CHECKING:
    from optax_lode.demo._pipeline import DemoResult
    from optax_lode.model import LatentODE

PARAMETRIC = ("constant", "cosine", "onecycle", "exponential", "step")
FIGURES = {
    "lr_schedules": "lr_schedules.png",
    "reconstruction": "reconstruction.png",
    "reconstruction_errors": "reconstruction_errors.png",
    "decision_fan": "decision_fan.png",
    "metric_vs_time": "metric_vs_time.png",
}


def _is_accuracy(task: str) -> bool:
    # Every registered task but the NQM reports an accuracy in [0, 1].
    return task != "nqm"


def predict_observed(
    model: LatentODE,
    truth: np.ndarray,
    observe: float,
    *,
    window: int | None = None,
) -> np.ndarray:
    """The LODE's prediction of one run after observing its first ``observe``.

    The same convention as :func:`optax_lode.evaluate`: with ``k =
    round(observe * T)`` (clipped to ``[1, T - 1]``) the encoder reads the last
    ``window`` (default the model's ``mu``) of the first ``k`` ticks, masked
    where not finite, and the decoder predicts ticks ``k - 1 .. T - 1``.

    Args:
        model: a fitted ``LatentODE``.
        truth: ``(ticks, 3)`` raw ``(loss, metric, lr)`` of the run.
        observe: observed fraction in (0, 1).
        window: encoder window in ticks; default ``model.mu``.

    Returns:
        ``(ticks, 3)`` raw prediction, NaN before tick ``k - 1``.

    Raises:
        ValueError: ``truth`` is not ``(ticks, 3)``, or ``observe`` is not in
            (0, 1).

    Examples:
        >>> import jax, numpy as np
        >>> from optax_lode import LatentODE
        >>> from optax_lode.demo import predict_observed
        >>> model = LatentODE(T=10, key=jax.random.key(0), latent_size=4,
        ...                   hidden_size=8, depth=1)  # untrained
        >>> truth = np.tile([1.0, 0.5, 1e-2], (10, 1))  # loss, metric, lr
        >>> pred = predict_observed(model, truth, 0.5)
        >>> pred.shape, int(np.isnan(pred[:, 0]).sum())
        ((10, 3), 4)
    """
    import jax.numpy as jnp

    truth = np.asarray(truth, np.float64)
    ticks = truth.shape[0]
    if truth.ndim != 2 or truth.shape[1] != 3:
        raise ValueError(f"truth must have shape (ticks, 3), got {truth.shape}.")
    if not 0.0 < observe < 1.0:
        raise ValueError(f"observe must be in (0, 1), got {observe}.")
    k = min(max(1, round(observe * ticks)), ticks - 1)
    w = min(int(window or model.mu), k)
    norm = model.normalisation
    obs = truth[k - w : k]
    ok = np.all(np.isfinite(obs), axis=1) & (obs[:, 0] > 0) & (obs[:, 2] > 0)
    safe = np.where(ok[:, None], obs, 1.0)
    normed = np.asarray(norm.forward(jnp.asarray(safe, jnp.float32)))
    normed = np.where(ok[:, None], normed, 0.0).astype(np.float32)
    pred = _predict(model, jnp.asarray(normed), jnp.asarray(ok), ticks - k + 1)
    out = np.full_like(truth, np.nan)
    out[k - 1 :] = np.asarray(pred, np.float64)
    return out


@eqx.filter_jit
def _predict(model: Any, window: Any, mask: Any, num_ticks: int) -> Any:
    # Jitted (num_ticks is static): an eager diffrax solve is far slower.
    z0 = model.encode(window, mask)
    return model.normalisation.inverse(model.decode(z0, num_ticks))


def _fmt(x: Any, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def _best_parametric(result: Any) -> str | None:
    cands = [n for n in result.methods if n in PARAMETRIC]
    if not cands:
        return None

    def mean(n: str) -> float:  # a schedule with no finite run is no candidate
        s = summarize(result.methods[n].test_metrics)
        return s.mean if s.n else -np.inf

    return max(cands, key=mean)


def _decision_config(model: Any, cfg: Any, ticks: int) -> Any:
    """The :class:`~optax_lode.decision.DecisionConfig` of the demo's LODE runs.

    Built as ``lode_schedule`` builds it: from the model, the run's ``ticks``
    and every option of ``cfg.lode_kwargs`` (``match_rule``, ``anchor``,
    ``lr_bounds``, ...), so a decision replayed with it is the run's.
    """
    from optax_lode.decision import DecisionConfig

    accepted = inspect.signature(DecisionConfig.from_model).parameters
    options = {k: v for k, v in cfg.lode_kwargs if k in accepted}
    return DecisionConfig.from_model(model, run_ticks=ticks, **options)


def _decision_keys(seed: int, ticks: int, mu: int) -> dict[int, Any]:
    """Decision tick -> the PRNG key a LODE run of ``seed`` decided with there.

    ``lode_schedule``'s chain: its seed's threefry key, split at every
    decision (ticks ``mu, 2 mu, ...`` before ``ticks``), the subkey used.
    """
    import jax

    from optax_lode._jax_defaults import default_numerics
    from optax_lode.transform._schedule import _PRNG

    key = jax.random.key(seed, impl=_PRNG)
    keys = {}
    with default_numerics():  # as the schedule splits, whatever the user's flags
        for t in range(mu, ticks, mu):
            key, keys[t] = jax.random.split(key)
    return keys


def _figures(result: Any) -> dict[str, str]:
    """Draws every figure; returns name -> file name of those drawn."""
    from optax_lode.decision import explain

    out = result.out_dir
    cfg = result.config
    drawn: dict[str, str] = {}
    lode = result.methods["LODE"]
    ticks = lode.runs[0]["lr"].shape[0]
    epochs = np.arange(1, ticks + 1) / cfg.ticks_per_epoch

    best = _best_parametric(result)
    if best is not None:
        base_lr = result.methods[best].stack("lr")[0]
        lr = result.tuning[best]["best_learning_rate"]
        plot_lr_schedules(
            out / FIGURES["lr_schedules"],
            lode.stack("lr"),
            base_lr,
            baseline_label=f"best parametric: {best} (lr {lr:g})",
            x=epochs,
            xlabel="epoch",
            title=f"{cfg.task}: LODE ({len(lode.runs)} seeds) vs best parametric "
            "(Fig. 4)",
        )
        drawn["lr_schedules"] = FIGURES["lr_schedules"]

    held = result.held_out
    run = int(held.best_index()) if hasattr(held, "best_index") else 0
    truth = np.stack([held.loss[run], held.metric[run], held.lr[run]], axis=1)
    preds = {f: predict_observed(result.model, truth, f) for f in (0.05, 0.5)}
    plot_reconstruction(
        out / FIGURES["reconstruction"],
        truth,
        preds,
        title=f"{cfg.task}: held-out run {held.run_ids[run]} (paper Fig. 2)",
    )
    drawn["reconstruction"] = FIGURES["reconstruction"]

    errors = {
        obs: {f: rec.get(f, np.nan) for f in ("loss", "metric", "lr")}
        for obs, rec in result.reconstruction.items()
    }
    plot_reconstruction_errors(
        out / FIGURES["reconstruction_errors"],
        errors,
        title=f"{cfg.task}: relative MSE on {held.num_runs} held-out runs (Table A1)",
        stds={
            obs: {f: rec.get(f"{f}_std", np.nan) for f in ("loss", "metric", "lr")}
            for obs, rec in result.reconstruction.items()
        },
    )
    drawn["reconstruction_errors"] = FIGURES["reconstruction_errors"]

    # One decision of the first LODE run, replayed from its records.
    dcfg = _decision_config(result.model, cfg, ticks)
    mu = dcfg.mu
    rec = lode.runs[0]
    records = np.stack([rec["loss"], rec["metric"], rec["lr"]], axis=1)
    keys = _decision_keys(lode.seeds[0], ticks, mu)
    # The decision nearest the middle of the run that accepted something (the
    # most telling picture); the middle one if every decision fell back.
    middle = max(mu, (ticks // 2) // mu * mu)
    candidates = sorted(keys, key=lambda t: abs(t - middle))
    ex, t_star = None, middle
    for t in candidates[:6]:
        e = explain(result.model, records[t - mu : t], t, keys[t], dcfg)
        if ex is None or int(np.asarray(e.accepted).sum()) > 0:
            ex, t_star = e, t
        if int(np.asarray(e.accepted).sum()) > 0:
            break
    plot_decision_fan(
        out / FIGURES["decision_fan"],
        ex,
        normalisation=result.model.normalisation,
        title=f"{cfg.task}: decision at tick {t_star} of LODE seed {lode.seeds[0]}: "
        f"{int(np.asarray(ex.accepted).sum())}/{dcfg.n} accepted",
    )
    drawn["decision_fan"] = FIGURES["decision_fan"]

    curves_epoch = {}
    curves_time = {}
    for name, m in result.methods.items():
        metric = m.stack("metric")
        curves_epoch[name] = (epochs, metric)
        per_tick = np.mean([r["run_seconds"] for r in m.runs]) / ticks
        curves_time[name] = (np.arange(1, ticks + 1) * per_tick, metric)
    fig_path = out / FIGURES["metric_vs_time"]
    _metric_time_figure(fig_path, curves_epoch, curves_time, result)
    drawn["metric_vs_time"] = FIGURES["metric_vs_time"]
    # A figure an earlier run drew here that this one did not (Fig. 4 needs a
    # parametric baseline) would be read as this run's: removed.
    for name, file in FIGURES.items():
        if name not in drawn:
            (out / file).unlink(missing_ok=True)
    return drawn


def _metric_time_figure(path: Path, by_epoch, by_time, result) -> None:
    # Two files would split one story; draw both panels via the library
    # function on one canvas each and keep the by-time one as the main figure.
    plot_metric_curves(
        path,
        by_time,
        xlabel="wall time of the run (s; vmapped runs amortised per seed)",
        ylabel="validation metric",
        title=f"{result.config.task}: validation metric vs time (mean ± std)",
    )
    plot_metric_curves(
        path.with_name("metric_vs_epoch.png"),
        by_epoch,
        xlabel="epoch",
        ylabel="validation metric",
        title=f"{result.config.task}: validation metric vs epoch (mean ± std)",
    )


def write_report(result: DemoResult, *, figures: bool = True) -> Path:
    """Writes ``report.md`` and ``summary.json`` (and the figures) into
    ``result.out_dir``.

    Drawing the figures also removes those of an earlier run in that folder
    that this result does not draw, so the report links this run's only.

    Args:
        result: a :class:`DemoResult`.
        figures: draw the figures; ``False`` links those already in
            ``result.out_dir`` (drawn by an earlier call for this result).

    Returns:
        The path of ``report.md``.

    Raises:
        KeyError: ``result.methods`` has no ``"LODE"`` entry, or a baseline
            of ``result.config.baselines`` has no tuning record.

    Examples:
        >>> from optax_lode.demo import fast_config, run_demo, write_report
        >>> result = run_demo(fast_config(), report=False)  # doctest: +SKIP
        >>> write_report(result)  # doctest: +SKIP
        PosixPath('results/demo/report.md')
    """
    from optax_lode.model import model_digest

    cfg = result.config
    out = Path(result.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = (
        _figures(result)
        if figures
        else {k: v for k, v in FIGURES.items() if (out / v).exists()}
    )
    acc = _is_accuracy(cfg.task)
    scale, unit = (100.0, "test accuracy (%)") if acc else (1.0, "test metric")
    results = {n: m.test_metrics for n, m in result.methods.items()}
    comp = compare_methods(results, reference="LODE")
    lode = result.methods["LODE"]
    ticks = lode.runs[0]["lr"].shape[0]
    epochs = ticks // cfg.ticks_per_epoch

    lines = [
        f"# optax-lode demo: `{cfg.task}`",
        "",
        f"The paper's pipeline end to end on `{cfg.task}` ({epochs} epochs, "
        f"{ticks} ticks per run): a sweep of {len(cfg.shapes)} schedule shapes x "
        f"{len(cfg.lrs)} learning rates x {cfg.sweep_seeds} seeds "
        f"({result.sweep.num_runs} runs), a latent ODE fitted to "
        f"{result.sweep.num_runs - result.held_out.num_runs} of them, then "
        f"LODE-scheduled AdamW and {len(cfg.baselines)} baselines, each at its "
        f"tuned setting, on the same {cfg.seeds} fresh seeds "
        f"{list(cfg.eval_seeds)}.",
        "",
        "## Schedule quality (paper Table 1)",
        "",
        "Final test metric per method, mean ± std over seeds; bold: LODE and the "
        "best baseline. The test is Welch's t-test of LODE minus the best baseline "
        "(chosen after the fact by its mean, leaving out any that diverged on "
        "significantly more seeds than LODE: the strongest rival).",
        "",
        comp.to_markdown(metric=unit, scale=scale, digits=2),
    ]
    verdict = {
        "wins": "LODE is significantly better than the best baseline here.",
        "loses": "**LODE is significantly worse than the best baseline here.** "
        "(The best of several baselines, chosen after the fact with no "
        "correction for their number, makes this verdict come out more often "
        "than α / 2 would say: docs/evaluation.md.)",
        "ties": "LODE and the best baseline are **not significantly different** "
        "here (a tie at this number of seeds).",
        "untested": "Too few finite results for a significance test.",
    }[comp.verdict]
    lines += [verdict, ""]
    decisions = [r.get("decisions", np.nan) for r in lode.runs]
    fallbacks = [r.get("fallbacks", np.nan) for r in lode.runs]
    lines += [
        f"LODE made {_fmt(np.nanmean(decisions))} decisions per run on average; "
        f"fallbacks (nothing accepted: the rate was held): "
        f"{_fmt(np.nanmean(fallbacks))} per run on average. LODE settings: "
        + (", ".join(f"`{k}={v}`" for k, v in lode.setting.items()) or "the defaults")
        + ".",
        "",
        "| method | tuned learning rate | tuned on | s / run |",
        "|---|---|---|---|",
    ]
    for name, m in result.methods.items():
        secs = np.mean([r["run_seconds"] for r in m.runs])
        if name == "LODE":
            lines.append(f"| LODE | (generated) | sweep (fit) | {secs:.2f} |")
            continue
        t = result.tuning[name]
        best, grid = t["best_learning_rate"], t.get("learning_rates") or []
        # A rate at the grid's end may not be the best the method can do.
        edge = (
            " (grid's edge)" if len(grid) > 1 and best in (min(grid), max(grid)) else ""
        )
        lines.append(f"| {name} | {best:g}{edge} | {t['source']} | {secs:.2f} |")
    lines += [""]
    if "lr_schedules" in drawn:
        lines += [
            "## LODE's schedules (paper Fig. 4)",
            "",
            f"![LODE schedules vs the best parametric]({drawn['lr_schedules']})",
            "",
        ]
    lines += [
        "## Reconstruction of held-out runs (paper Table A1) and trial selection (A.3)",
        "",
        f"Relative MSE per feature on the {result.held_out.num_runs} held-out sweep "
        "runs when the encoder observes the first 5% or 50% of each run "
        "(`optax_lode.evaluate`):",
        "",
        "| feature | observed 5% | observed 50% | naive: last value held (5% / 50%) |",
        "|---|---|---|---|",
    ]
    rec = result.reconstruction
    for feat, label in (
        ("loss", "train loss"),
        ("lr", "learning rate"),
        ("metric", "val metric"),
    ):
        cells = []
        for obs in (0.05, 0.5):
            r = rec.get(obs, {})
            cells.append(f"{_fmt(r.get(feat))} ± {_fmt(r.get(feat + '_std'))}")
        naive = " / ".join(
            _fmt(rec.get(obs, {}).get("persistence", {}).get(feat))
            for obs in (0.05, 0.5)
        )
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {naive} |")
    # The trial-selection entry observes one epoch, at most half the run (see
    # reconstruction_stage): a run of one epoch is observed for half of it.
    epoch_frac = min(1.0 / max(epochs, 1), 0.5)
    first = min(rec, key=lambda o: abs(o - epoch_frac)) if rec else None
    sel = rec.get(first, {}) if first is not None else {}
    what = "one epoch" if epochs >= 2 else "half of its single epoch"
    lines += [
        "",
        "± is the standard deviation over runs. Trial selection (paper A.3) from "
        f"the first {_fmt(100 * first if first else float('nan'), 2)}% of each "
        f"held-out run ({what}): the run predicted best has true rank "
        f"**{_fmt(sel.get('selected_rank'))}** of {_fmt(sel.get('num_runs'))}; the "
        "Spearman correlation of predicted and true final metrics is "
        f"**{_fmt(sel.get('spearman'))}**.",
        "",
    ]
    for key, caption in (
        ("reconstruction", "Predicted (orange) vs actual (black), paper Fig. 2"),
        ("reconstruction_errors", "Table A1 as bars"),
    ):
        if key in drawn:
            lines += [f"![{caption}]({drawn[key]})", ""]
    if "decision_fan" in drawn:
        lines += [
            "## One decision (Algorithm 1, `optax_lode.explain`)",
            "",
            "The ensemble of predicted futures at one decision the first LODE "
            "run made (replayed from its records with its key and options): "
            "grey rejected, blue accepted, red those (up to three) averaged "
            "into the next segment (black): the rates the run then followed.",
            "",
            f"![one decision's ensemble]({drawn['decision_fan']})",
            "",
        ]
    if "metric_vs_time" in drawn:
        lines += [
            "## Validation metric against time (all methods)",
            "",
            "Validation metric per tick, mean ± std over seeds, against each "
            "run's wall time (baseline runs are vmapped over seeds, their time is "
            "amortised per seed; LODE runs are not vmapped) and against epochs.",
            "",
            f"![metric vs time]({drawn['metric_vs_time']})",
            "",
            "![metric vs epoch](metric_vs_epoch.png)",
            "",
        ]
    lines += [
        "## Tuning (paper A.2)",
        "",
        "Each baseline's learning-rate grid with the mean final validation "
        "metric; the best is selected (diverged runs count as worst). Sweep "
        "shapes are tuned on the sweep itself.",
        "",
        "| baseline | grid: mean final val metric | selected |",
        "|---|---|---|",
    ]
    for name in cfg.baselines:
        t = result.tuning[name]
        cells = []
        for lr, v in zip(t["learning_rates"], t["val_metrics"], strict=True):
            v = np.asarray(v, np.float64).reshape(-1)
            cells.append(
                f"{lr:g}: {_fmt(np.mean(v)) if np.all(np.isfinite(v)) else 'diverged'}"
            )
        lines.append(f"| {name} | {'; '.join(cells)} | {t['best_learning_rate']:g} |")
    lines += [
        "",
        "## Run",
        "",
        "| stage | seconds | from cache |",
        "|---|---|---|",
    ]
    # The total last: it includes the report, timed after it was first set.
    for stage, secs in sorted(result.timings.items(), key=lambda t: t[0] == "total"):
        c = result.cached.get(stage)
        flag = "" if c is None else ("yes" if c else "no")
        lines.append(f"| {stage} | {secs:.1f} | {flag} |")
    lines += [
        "",
        "Configuration: `" + json.dumps(_config_dict(cfg)) + "`",
        "",
        f"Model: `{_model_path(result)}`, content digest "
        f"`{model_digest(result.model)}` (`optax_lode.model.model_digest`).",
        "",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    save_summary(result, comp)
    return path


def _model_path(result: Any) -> str:
    """The cached model's path: relative to the report's folder if inside it."""
    out = Path(result.out_dir)
    cache = getattr(result, "cache_dir", None)  # a result pickled before it
    cache = out / "cache" if cache is None else Path(cache)
    path = (cache / f"model-{result.config.model_key()}.lode").resolve()
    try:
        return path.relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(path)


def _config_dict(cfg: Any) -> dict[str, Any]:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(cfg).items()}


def save_summary(result: Any, comp: Any) -> Path:
    """``summary.json``: the numbers of the report, for scripts and benchmarks."""
    from optax_lode.decision import DECISION_REVISION
    from optax_lode.model import model_digest

    out = Path(result.out_dir) / "summary.json"
    data = {
        "config": _config_dict(result.config),
        # The fitted model by its content (the config names how it was made).
        "model_digest": model_digest(result.model),
        # The LODE rows' decision semantics (their runs are cached under it).
        "decision_revision": DECISION_REVISION,
        "methods": {
            n: {
                "setting": m.setting,
                "seeds": list(m.seeds),
                "test_metrics": m.test_metrics.tolist(),
                "run_seconds": [r["run_seconds"] for r in m.runs],
            }
            for n, m in result.methods.items()
        },
        "best_baseline": comp.best_baseline,
        "verdict": comp.verdict,
        "welch": comp.test._asdict() if comp.test is not None else None,
        "reconstruction": {str(k): v for k, v in result.reconstruction.items()},
        "timings": result.timings,
        "cached": result.cached,
    }
    atomic_write_text(out, json.dumps(data, indent=1, default=float))
    return out
