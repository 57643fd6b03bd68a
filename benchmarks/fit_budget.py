"""How the LODE's fit budget changes its schedules: fit steps and early stopping.

The LODEs of Tables 1-4 are fitted for at most 3000 steps with early stopping
on the held-out runs' error (patience: 10 evaluations); the paper fits for up
to 50,000 steps. From the demo's sweep of the task (80% training split, shared
cache ``results/demo/cache``), LODEs are fitted

- as the demo does: 3000 steps, early stopping (the demo's model, the reference);
- for a tenth of that: 300 steps, early stopping;
- for ten times as long: 30,000 steps, early stopping;
- for 30,000 steps without early stopping (the model of the best held-out
  error is kept, as always);

each with several fit seeds (``DemoConfig.seed``: the split of the sweep
and the fit's own draws; seed 0 is the demo's), and each model schedules
AdamW on the demo's evaluation seeds. Every table of LODE results rests on
one fitted model; the fit seeds say how much of a LODE's result is that
model. The unit of comparison between budgets is therefore the model:
Welch's test of the budgets' per-model mean accuracies against the
reference's, Holm-adjusted over the task's budgets. Reported per model: the
steps its fit took, the step of its best held-out error and that error, and
its test accuracy over the evaluation seeds. Resumable through the cache;
results are rewritten after every model; other tasks' results are kept.

    python -m benchmarks.fit_budget --task mnist1d-mlp --seeds 10 --fit-seeds 3
    python -m benchmarks.fit_budget --render  # the Markdown, from the JSON
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks._common import (
    ablation_entry,
    ablation_markdown,
    format_p,
    per_task,
    read_result,
    reference_row,
    render,
    significant,
    start_task,
    task_parser,
    training_seconds,
    versus_reference,
    write_ablation,
)
from optax_lode.evaluation import summarize, welch_test

NAME = "fit_budget"
CACHE = Path("results/demo/cache")
REFERENCE = "3000 steps, early stopping (reference)"
#: Label -> (fit steps, fit keyword arguments beyond the demo's).
FITS: dict[str, tuple[int, dict[str, Any]]] = {
    REFERENCE: (3000, {}),
    "300 steps, early stopping": (300, {}),
    "30,000 steps, early stopping": (30_000, {}),
    "30,000 steps, no early stopping": (30_000, {"patience": None}),
}


def fit_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """What a fit did, from its model's training summary: steps taken, the
    step of the best held-out error, that error, whether it stopped early and
    its wall time."""
    return {
        "fit_steps_taken": int(summary["steps"]),
        "best_step": int(summary["best_step"]),
        "held_out_mse": float(summary["held_out_mse"]),
        "stopped_early": bool(summary["stopped_early"]),
        "fit_seconds": float(summary["seconds"]),
    }


def model_entry(
    fit_seed: int, summary: dict[str, Any], acc, digest: str | None = None
) -> dict[str, Any]:
    """One fitted model's row: its fit (:func:`fit_facts`), its content
    digest (``digest``, :func:`optax_lode.model.model_digest`) and its LODE
    runs' test metrics over the evaluation seeds."""
    s = summarize(acc)
    return {
        "fit_seed": fit_seed,
        **fit_facts(summary),
        **({"model_digest": digest} if digest is not None else {}),
        "test_metrics": [float(x) for x in acc],
        "mean": s.mean,
        "std": s.std,
    }


def budget_entry(steps: int, models: list[dict], ref: list[float] | None) -> dict:
    """A budget's entry: its models, and their mean accuracies as the sample
    that :func:`benchmarks._common.versus_reference` compares (``ref``: the
    reference budget's, None for the reference itself)."""
    means = [m["mean"] for m in models]
    s = summarize(means)
    return {
        "fit_budget": steps,
        "models": models,
        "test_metrics": means,
        "mean": s.mean,
        "std": s.std,
        "p_value": None if ref is None else welch_test(means, ref).p_value,
    }


class Spread(NamedTuple):
    """The reference budget's spread, in accuracy points."""

    between: float  # std of the models' mean accuracies
    within: float  # mean over the models of their runs' std
    runs: int  # evaluation seeds per model
    mean_within: float  # within / sqrt(runs): the spread of one model's mean
    p: float | None  # :func:`models_differ_p`


def spread(entry: dict) -> Spread | None:
    """The reference budget's spread in accuracy points: the std of its
    models' mean accuracies (between models), the mean over its models of the
    std over evaluation seeds (within a model) and what that makes of a
    model's mean over its runs, with the ANOVA p-value that compares the two;
    None with one model."""
    ref = reference_row(entry["fits"])
    if len(ref["models"]) < 2:
        return None
    within = 100.0 * float(np.mean([m["std"] for m in ref["models"]]))
    runs = len(ref["models"][0]["test_metrics"])
    return Spread(
        100.0 * ref["std"],
        within,
        runs,
        within / np.sqrt(runs),
        models_differ_p(entry),
    )


def models_differ_p(entry: dict) -> float | None:
    """Whether the reference budget's models differ by more than their runs'
    noise explains: the p-value of a one-way ANOVA of the models' test
    metrics over the evaluation seeds (None with one model).

    The between-models std of :func:`spread` is to be read against the
    spread of a model's *mean* over its runs (std / sqrt(runs)), not against
    one run's; the ANOVA makes that comparison a test."""
    from scipy import stats

    ref = reference_row(entry["fits"])
    groups = [np.asarray(m["test_metrics"], float) for m in ref["models"]]
    groups = [g[np.isfinite(g)] for g in groups]
    if len(groups) < 2 or min(g.size for g in groups) < 2:
        return None
    return float(stats.f_oneway(*groups).pvalue)


def _p(p: float | None) -> str:
    return "n/a" if p is None else format_p(p)


def task_models(entry: dict) -> list[dict]:
    """Every distinct model of a task's entry, all budgets: one model counts
    once where two budgets made it (30,000 steps with early stopping that
    never stopped is the run without), known by its digest."""
    seen, out = set(), []
    for d in entry["fits"].values():
        for m in d["models"]:
            digest = m.get("model_digest")
            if digest is None or digest not in seen:
                out.append(m)
            seen.add(digest)
    return out


def models_per_budget(tasks: dict[str, dict]) -> str:
    """How many models the budgets of ``tasks`` have, e.g. ``"3"`` or ``"2/3"``."""
    sizes = {len(e["models"]) for d in tasks.values() for e in d["fits"].values()}
    return "/".join(map(str, sorted(sizes)))


def mse_vs_accuracy(entry: dict) -> float:
    """Spearman's rank correlation, over every model of a task (all budgets),
    of its held-out MSE (the fit's own measure, lower is better) and its
    LODE's mean test accuracy: negative where better fits make better
    schedules."""
    from optax_lode.model._evaluate import spearman

    models = task_models(entry)
    return spearman([m["held_out_mse"] for m in models], [m["mean"] for m in models])


def task_table(task: str, entry: dict) -> str:
    """One task's tables: every model, then each budget against the reference."""
    models = []
    for label, d in entry["fits"].items():
        for m in d["models"]:
            taken = f"{m['fit_steps_taken']:,}" + (
                " (stopped)" if m["stopped_early"] else ""
            )
            acc = summarize(m["test_metrics"]).format(2, 100.0)
            models.append(
                f"| {label} | {m['fit_seed']} | {taken} | {m['best_step']:,} "
                f"| {m['held_out_mse']:.4g} | {m['fit_seconds']:.0f} | {acc} |"
            )
    budgets = []
    for label, d, stats, cell, adjusted in versus_reference(task, entry["fits"]):
        if cell is not None:
            cell += ", significant" if significant(adjusted) else ", tie"
        budgets.append(
            f"| {label} | {len(d['models'])} | {stats} | {cell or '(reference)'} |"
        )
    out = (
        f"**{task}**\n\n"
        "| LODE fitted for | fit seed | steps taken | best step | held-out MSE "
        "| fit s | test accuracy (%) over evaluation seeds |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(models) + "\n\n"
        "| LODE fitted for | models | test accuracy (%), mean ± std of the "
        "models' means | − reference [95% CI], Welch p (Holm-adjusted) |\n"
        "|---|---|---|---|\n" + "\n".join(budgets) + "\n"
    )
    sp = spread(entry)
    if sp is not None:
        out += (
            f"\nAt the reference budget, models of different fit seeds differ "
            f"by {sp.between:.2f} points (std of their mean accuracies); a model's "
            f"runs over the evaluation seeds by {sp.within:.2f} (mean std), so its "
            f"{sp.runs}-run mean by about {sp.mean_within:.2f}; one-way "
            f"ANOVA of the models' runs: p = {_p(sp.p)}.\n"
        )
    n = len(task_models(entry))
    out += (
        f"Over the task's {n} distinct models, Spearman's rank correlation of the "
        f"held-out MSE and the mean test accuracy: {mse_vs_accuracy(entry):+.2f} "
        "(negative: better fits, better schedules).\n"
    )
    return out


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    return ablation_markdown(
        payload,
        table=task_table,
        title="LODE fit budget: fit steps and early stopping",
        notes=(
            "Every LODE is fitted to the demo's training split of the task's "
            "sweep with the demo's fit settings but its steps, its early "
            "stopping and its fit seed (the split and the fit's draws; seed 0 "
            "is the demo's model), then schedules AdamW on the demo's "
            "evaluation seeds. 'steps taken' stops short of the budget where "
            "early stopping (10 held-out evaluations without improvement) "
            "ended the fit; every fit keeps the model of its best held-out "
            "error (normalised features, the fit's own measure), found at "
            "'best step'. A budget is compared with the reference through its "
            "models' mean accuracies (one value per model: runs of one model "
            "share its errors), so its p-value speaks for another fit, not "
            "only for other evaluation seeds. Differences in accuracy points."
        ),
    )


def write(tasks: dict[str, dict], env: dict | None = None) -> None:
    """Writes the result of every task in ``tasks``."""
    write_ablation(
        NAME,
        tasks,
        "fits",
        headline="LODE fit budget (steps, early stopping; models as the unit)",
        verdicts=(
            "some budgets differ significantly from the reference",
            "no budget differs significantly from the reference "
            f"({models_per_budget(tasks)} models a budget: only large "
            "differences could)",
        ),
        render=markdown,
        env=env,
    )


def main(argv: list[str] | None = None) -> int:
    from optax_lode.demo._pipeline import (
        fit_stage,
        lode_stage,
        sweep_stage,
    )
    from optax_lode.model import model_digest

    parser = task_parser(__doc__)
    parser.add_argument(
        "--fit-seeds", type=int, default=3, help="models per budget (at least 2)"
    )
    args = parser.parse_args(argv)
    if args.render:
        return render(NAME)
    if args.fit_seeds < 2:
        parser.error("--fit-seeds must be at least 2: budgets are compared by models")
    base, task, t_start = start_task(args, CACHE)
    traj, _ = sweep_stage(task, base, CACHE, progress=True)
    # Other tasks' results are kept (in place); this task's are measured again.
    tasks = per_task(read_result(NAME))
    data: dict[str, dict] = {}
    ref = None
    lode_seconds = 0.0
    for label, (steps, kwargs) in FITS.items():
        models = []
        for fit_seed in range(args.fit_seeds):
            cfg = base.replace(
                seed=fit_seed,
                fit_steps=steps,
                fit_kwargs=tuple({**dict(base.fit_kwargs), **kwargs}.items()),
            )
            train, _ = cfg.split(traj)
            model, _ = fit_stage(train, cfg, CACHE, progress=True)
            runs, _ = lode_stage(task, model, cfg, CACHE, progress=True)
            lode_seconds += training_seconds(runs.runs)
            models.append(
                model_entry(
                    fit_seed,
                    model.training_summary,
                    runs.test_metrics,
                    model_digest(model),
                )
            )
            if len(models) < 2:
                continue  # Welch needs two models a side
            data[label] = budget_entry(steps, models, ref)
            tasks[base.task] = ablation_entry(
                "fits",
                data,
                seeds=base.eval_seeds,
                seconds=time.perf_counter() - t_start,
                lode_seconds=lode_seconds,
            )
            write(tasks)
        if ref is None:
            ref = data[label]["test_metrics"]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
