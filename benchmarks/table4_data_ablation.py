"""Table 4: how much sweep data the LODE needs, and which.

From the demo's sweep of the task (80% training split, shared cache
``results/demo/cache``), LODEs are fitted to

- all of it: 5 seeds per configuration (the demo's model, the reference);
- 1 seed per configuration (seed 0 only);
- every shape but one-cycle ("no one-cycle");
- one-cycle runs only ("only one-cycle"),

and each schedules AdamW on the demo's evaluation seeds. Reported: test
accuracy mean ± std and Welch's test against the reference. Resumable through
the cache; results are rewritten after every variant.

    python -m benchmarks.table4_data_ablation --task mnist1d-mlp --seeds 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks._common import significant, training_seconds, write_result

NAME = "table4_data_ablation"
CACHE = Path("results/demo/cache")


def main(argv: list[str] | None = None) -> int:
    from optax_lode.demo import default_config
    from optax_lode.demo._pipeline import (
        _enable_compile_cache,
        fit_stage,
        lode_stage,
        sweep_stage,
    )
    from optax_lode.evaluation import summarize, welch_test
    from optax_lode.tasks import get_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    _enable_compile_cache(CACHE / "xla")
    t_start = time.perf_counter()
    base = default_config(args.task, seeds=args.seeds)
    task = get_task(base.task)
    traj, _ = sweep_stage(task, base, CACHE, progress=True)
    train, _ = base.split(traj)
    info = train.info
    variants = {
        "5 seeds per configuration (reference)": ("", np.ones(train.num_runs, bool)),
        "1 seed per configuration": ("seed0", np.asarray(info["seed"] == 0)),
        "no one-cycle": ("no-onecycle", np.asarray(info["schedule"] != "onecycle")),
        "only one-cycle": ("only-onecycle", np.asarray(info["schedule"] == "onecycle")),
    }
    scale = 100.0 if base.task != "nqm" else 1.0
    data, rows, ref = {}, [], None
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
            ref, cell = acc, "(reference)"
        else:
            w = welch_test(acc, ref)
            p_value = w.p_value
            cell = (
                f"{w.diff * scale:+.2f} [{w.ci_low * scale:+.2f}, "
                f"{w.ci_high * scale:+.2f}], p = {w.p_value:.2g}"
                + (" (significant)" if significant(p_value) else " (tie)")
            )
        rows.append(f"| {label} | {subset.num_runs} | {s.format(2, scale)} | {cell} |")
        data[label] = {"runs": subset.num_runs, "test_metrics": acc.tolist(),
                       "mean": s.mean, "std": s.std,
                       "p_value": p_value}  # fmt: skip
        differ = any(significant(d["p_value"]) for d in data.values())
        write_result(
            NAME,
            {
                "headline": f"{base.task}: LODE fitted to subsets of its sweep "
                f"(Table 4), {args.seeds} seeds each; "
                + (
                    "some variants differ significantly from the reference"
                    if differ
                    else "every variant ties with the reference"
                ),
                "task": base.task,
                "seeds": list(base.eval_seeds),
                "variants": data,
                # This invocation's wall time (cached runs cost only their
                # reading) and the LODE runs' own training time.
                "seconds": time.perf_counter() - t_start,
                "lode_training_seconds": lode_seconds,
            },
            "| LODE fitted to | sweep runs | test accuracy (%) | − reference "
            "[95% CI], Welch p |\n|---|---|---|---|\n" + "\n".join(rows) + "\n",
            title=f"Table 4: LODE training data ablation on {base.task}",
            notes=(
                "Every variant is fitted with the demo's fit settings to a subset "
                "of the demo's training split of the sweep, then schedules AdamW "
                f"on seeds {list(base.eval_seeds)}. Differences in accuracy points."
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
