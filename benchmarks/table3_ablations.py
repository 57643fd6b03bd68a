"""Table 3 and Figure 6: LODE's configuration ablations on one task.

With the demo's sweep, fitted LODE and evaluation seeds of the task (shared
cache, ``results/demo/cache``), LODE-scheduled training is repeated with

- the ensemble: ``n`` in {10, 30, 60} x ``sigma`` in {0.15, 0.30} (Table 3);
- the horizon and goal: the metric scored ``mu`` ticks ahead (greedy), or at
  25%, 50% of the run, or at its end (the default, the paper's best) --
  Figure 6 and the goal-conditioning study;
- the match rule: among a sample's matching ticks, the one with the highest
  predicted learning rate (the paper, default) or the closest predicted loss;
- the anchor: the chosen members' own predicted rates (the paper, default) or
  their predicted relative change applied to the live rate.

Each setting reports the test metric mean ± std over the seeds and Welch's
test against the default setting (``n=30, sigma=0.15``, horizon = the rest of
the run), its p-value Holm-adjusted over the task's settings. Resumable
through the cache; results are rewritten after every setting; other tasks'
results are kept. A figure of the mean learning-rate schedule per horizon is
written to ``benchmarks/results/table3_horizon_schedules_<task>.png``
(Figure 6).

    python -m benchmarks.table3_ablations --task mnist1d-mlp --seeds 10
    python -m benchmarks.table3_ablations --render  # the Markdown, from the JSON
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks._common import (
    RESULTS_DIR,
    ablation_entry,
    ablation_markdown,
    per_task,
    read_result,
    render,
    significant,
    start_task,
    task_parser,
    training_seconds,
    versus_reference,
    write_ablation,
)

NAME = "table3_ablations"
CACHE = Path("results/demo/cache")


def settings(mu: int) -> list[tuple[str, str, dict]]:
    grid = [
        ("ensemble", f"n={n}, sigma={s}", {"n": n, "sigma": s})
        for n in (10, 30, 60)
        for s in (0.15, 0.30)
    ]
    horizon = [
        ("horizon", f"horizon = mu = {mu} ticks (greedy)", {"horizon": mu}),
        # A distance ahead of every decision (the paper's Delta t), not the
        # point of the run where the metric should be best.
        ("horizon", "horizon = 25% of T ahead", {"horizon": 0.25}),
        ("horizon", "horizon = 50% of T ahead", {"horizon": 0.5}),
    ]
    # Which matching tick a sample continues from (DecisionConfig.match_rule):
    # the paper's highest predicted lr (default) or the closest predicted loss.
    match = [
        ("match rule", "match_rule = closest_loss", {"match_rule": "closest_loss"})
    ]
    # What the segment is anchored to (DecisionConfig.anchor): the members' own
    # predicted rates (default, the paper) or their relative change applied to
    # the live rate.
    anchor = [
        ("anchor", "anchor = live", {"anchor": "live"}),
        ("anchor", "anchor = live, match_rule = closest_loss",
         {"anchor": "live", "match_rule": "closest_loss"}),
    ]  # fmt: skip
    return grid + horizon + match + anchor


def task_table(task: str, entry: dict) -> str:
    """One task's table, from its saved settings (the default's row first)."""
    rows = []
    for label, d, stats, cell, adjusted in versus_reference(task, entry["settings"]):
        verdict = (
            ""
            if cell is None
            else "different"
            if significant(adjusted)
            else "no significant difference"
        )
        rows.append(
            f"| {d['group']} | {label} | {stats} | {cell or '(reference)'} | "
            f"{verdict} | {d['fallbacks_per_run']:.1f} |"
        )
    return (
        f"**{task}**\n\n"
        "| study | LODE setting | test accuracy (%) | − default [95% CI], Welch p "
        "(Holm-adjusted) "
        "| vs default | fallbacks / run |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def figure_path(task: str) -> Path:
    return RESULTS_DIR / f"table3_horizon_schedules_{task}.png"


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    return ablation_markdown(
        payload,
        table=task_table,
        title="Table 3 / Figure 6: LODE ablations",
        notes=(
            "Each task's fitted LODE, sweep and evaluation seeds are the "
            "demo's; only the scheduler's settings change. Test accuracy mean "
            "± std; the difference to the default and its 95% CI are in "
            "accuracy points (Welch's t-test). `mu` = 5% of the run. The mean "
            "learning rate per horizon is plotted in "
            "`table3_horizon_schedules_<task>.png`."
        ),
    )


def write(tasks: dict[str, dict], env: dict | None = None) -> None:
    """Writes the result of every task in ``tasks``."""
    write_ablation(
        NAME,
        tasks,
        "settings",
        headline="LODE ablations of n, sigma, the horizon (Table 3 / Fig. 6), "
        "the match rule and the anchor",
        verdicts=(
            "some differ significantly from the default",
            "none differs significantly from the default",
        ),
        render=markdown,
        env=env,
    )


def main(argv: list[str] | None = None) -> int:
    from optax_lode.demo._pipeline import (
        lode_stage,
        sweep_and_model,
    )
    from optax_lode.evaluation import summarize, welch_test
    from optax_lode.model import model_digest

    parser = task_parser(__doc__)
    args = parser.parse_args(argv)
    if args.render:
        return render(NAME)
    base, task, t_start = start_task(args, CACHE)
    _, _, model = sweep_and_model(task, base, CACHE, progress=True)
    mu = int(model.mu)
    default, _ = lode_stage(task, model, base, CACHE, progress=True)
    ref = default.test_metrics
    # Other tasks' results are kept (in place); this task's are measured again.
    tasks = per_task(read_result(NAME))
    data, schedules = {}, {"horizon = rest of run (default)": default}
    lode_seconds = 0.0

    def row(group, label, runs, is_default=False):
        nonlocal lode_seconds
        lode_seconds += training_seconds(runs.runs)
        p_value = None if is_default else welch_test(runs.test_metrics, ref).p_value
        s = summarize(runs.test_metrics)
        data[label] = {
            "group": group,
            "test_metrics": runs.test_metrics.tolist(),
            "mean": s.mean,
            "std": s.std,
            "fallbacks_per_run": float(
                np.mean([r.get("fallbacks", np.nan) for r in runs.runs])
            ),
            "p_value": p_value,  # Welch's test against the default (None: it)
        }

    row("ensemble / horizon", "n=30, sigma=0.15, horizon = rest of run (default)",
        default, is_default=True)  # fmt: skip
    for group, label, kw in settings(mu):
        if kw.get("n") == 30 and kw.get("sigma") == 0.15:
            continue  # the default itself
        cfg = base.replace(lode_kwargs=tuple(sorted(kw.items())))
        runs, _ = lode_stage(task, model, cfg, CACHE, progress=True)
        row(group, label, runs)
        if group == "horizon":
            schedules[label] = runs
        tasks[base.task] = ablation_entry(
            "settings",
            data,
            seeds=base.eval_seeds,
            seconds=time.perf_counter() - t_start,
            lode_seconds=lode_seconds,
            model_digest=model_digest(model),
        )
        write(tasks)
    # Figure 6: the mean schedule per horizon.
    from optax_lode.evaluation._plots import _figure, _save

    fig, ax = _figure(size=(7.0, 4.0))
    ax = ax[0, 0]
    for label, runs in schedules.items():
        lr = runs.stack("lr")
        ax.plot(np.exp(np.log(lr).mean(0)), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("tick")
    ax.set_ylabel("learning rate (geometric mean over seeds)")
    ax.set_title(f"{base.task}: LODE schedules by horizon (paper Fig. 6)")
    ax.legend(frameon=False, fontsize="small")
    _save(fig, figure_path(base.task))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
