"""Table 4: how much sweep data the LODE needs, and which.

From the demo's sweep of the task (80% training split, shared cache
``results/demo/cache``), LODEs are fitted to

- all of it: 5 seeds per configuration (the demo's model, the reference);
- 1 seed per configuration (seed 0 only);
- every shape but one-cycle ("no one-cycle");
- one-cycle runs only ("only one-cycle"),

and each schedules AdamW on the demo's evaluation seeds. Reported: test
accuracy mean ± std and Welch's test against the reference, its p-value
Holm-adjusted over the task's variants. Resumable through the cache; results
are rewritten after every variant; other tasks' results are kept.

    python -m benchmarks.table4_data_ablation --task mnist1d-mlp --seeds 10
    python -m benchmarks.table4_data_ablation --render  # the Markdown, from the JSON
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks._common import (
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

NAME = "table4_data_ablation"
CACHE = Path("results/demo/cache")


def task_table(task: str, entry: dict) -> str:
    """One task's table, from its saved variants (the reference first)."""
    rows = []
    for label, d, stats, cell, adjusted in versus_reference(task, entry["variants"]):
        if cell is not None:
            cell += ", significant" if significant(adjusted) else ", tie"
        rows.append(f"| {label} | {d['runs']} | {stats} | {cell or '(reference)'} |")
    return (
        f"**{task}**\n\n"
        "| LODE fitted to | sweep runs | test accuracy (%) | − reference "
        "[95% CI], Welch p (Holm-adjusted) |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    return ablation_markdown(
        payload,
        table=task_table,
        title="Table 4: LODE training data ablation",
        notes=(
            "Every variant is fitted with the demo's fit settings to a subset "
            "of the demo's training split of the task's sweep, then schedules "
            "AdamW on the demo's evaluation seeds. Differences in accuracy "
            "points."
        ),
    )


def write(tasks: dict[str, dict], env: dict | None = None) -> None:
    """Writes the result of every task in ``tasks``."""
    write_ablation(
        NAME,
        tasks,
        "variants",
        headline="LODE fitted to subsets of its sweep (Table 4)",
        verdicts=(
            "some variants differ significantly from the reference",
            "every variant ties with the reference",
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
    from optax_lode.evaluation import summarize, welch_test
    from optax_lode.model import model_digest

    parser = task_parser(__doc__)
    args = parser.parse_args(argv)
    if args.render:
        return render(NAME)
    base, task, t_start = start_task(args, CACHE)
    traj, _ = sweep_stage(task, base, CACHE, progress=True)
    train, _ = base.split(traj)
    info = train.info
    variants = {
        "5 seeds per configuration (reference)": ("", np.ones(train.num_runs, bool)),
        "1 seed per configuration": ("seed0", np.asarray(info["seed"] == 0)),
        "no one-cycle": ("no-onecycle", np.asarray(info["schedule"] != "onecycle")),
        "only one-cycle": ("only-onecycle", np.asarray(info["schedule"] == "onecycle")),
    }
    # Other tasks' results are kept (in place); this task's are measured again.
    tasks = per_task(read_result(NAME))
    data, ref = {}, None
    lode_seconds = 0.0
    for label, (tag, keep) in variants.items():
        cfg = base.replace(tag=tag)
        subset = train.select(keep)
        model, _ = fit_stage(subset, cfg, CACHE, progress=True)
        runs, _ = lode_stage(task, model, cfg, CACHE, progress=True)
        lode_seconds += training_seconds(runs.runs)
        acc = runs.test_metrics
        s = summarize(acc)
        p_value = None
        if ref is None:
            ref = acc
        else:
            p_value = welch_test(acc, ref).p_value
        data[label] = {"runs": subset.num_runs, "test_metrics": acc.tolist(),
                       "mean": s.mean, "std": s.std,
                       "p_value": p_value,
                       "model_digest": model_digest(model)}  # fmt: skip
        tasks[base.task] = ablation_entry(
            "variants",
            data,
            seeds=base.eval_seeds,
            seconds=time.perf_counter() - t_start,
            lode_seconds=lode_seconds,
        )
        write(tasks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
