"""Table A1 and A.3: reconstruction of held-out runs and trial selection, per task.

For every task: the paper's default sweep (4 shapes x 5 learning rates x 5
seeds), the LODE fitted to 80% of its runs, and on the 20 held-out runs

- the relative MSE of loss, learning rate and validation metric when the
  encoder observes the first 5% or 50% of each run (``optax_lode.evaluate``),
  with the naive forecast "every feature stays at its last observed value" as
  a reference;
- trial selection from the first epoch: the true rank of the run predicted
  best and the Spearman correlation of predicted and true final metrics.

Stages are the demo's (shared cache ``results/demo/cache``), so a task the demo
or Table 1 already ran costs nothing. Results are rewritten after every task.

    python -m benchmarks.tableA1_reconstruction --task mnist1d-mlp --task nqm
    python -m benchmarks.tableA1_reconstruction --render  # the Markdown, from the JSON
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks._common import (
    RENDER_HELP,
    environment,
    read_result,
    render,
    rows_measured,
    write_result,
)

NAME = "tableA1_reconstruction"
CACHE = Path("results/demo/cache")
TASKS = ("nqm", "digits-mlp", "digits-cnn", "mnist1d-mlp", "mnist1d-cnn",
         "text-transformer")  # fmt: skip


def _fmt(x) -> str:
    try:
        return f"{float(x):.3g}"
    except (TypeError, ValueError):
        return "n/a"


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    tasks = payload["tasks"]
    rows = []
    for t, d in tasks.items():
        obs = {float(k): v for k, v in d["observed"].items()}
        for feat, label in (("loss", "train loss"), ("lr", "learning rate"),
                            ("metric", "val metric")):  # fmt: skip
            cells = []
            for o in (0.05, 0.5):
                r = obs.get(o, {})
                naive = r.get("persistence", {}).get(feat)
                cells.append(
                    f"{_fmt(r.get(feat))} ± {_fmt(r.get(feat + '_std'))} "
                    f"(naive {_fmt(naive)})"
                )
            rows.append(f"| {t} | {label} | {cells[0]} | {cells[1]} |")
    sel_rows = []
    for t, d in tasks.items():
        r = d["observed"][str(d["trial_selection_observe"])]
        sel_rows.append(
            f"| {t} | {100 * d['trial_selection_observe']:.2g}% | "
            f"{r.get('selected_rank')} of {r.get('num_runs')} | "
            f"{_fmt(r.get('spearman'))} |"
        )
    table = (
        "| task | feature | observed 5% | observed 50% |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nTrial selection (A.3) from the first epoch of each held-out run:\n\n"
        "| task | observed | true rank of the run predicted best | Spearman |\n"
        "|---|---|---|---|\n" + "\n".join(sel_rows) + "\n"
    )
    return (
        "Table A1 / A.3: reconstruction and trial selection",
        table,
        "Relative MSE = sum of squared errors over sum of squared truths of "
        "the predicted ticks, per held-out run, mean ± std over the 20 "
        "held-out runs of each task's 100-run sweep (`optax_lode.evaluate`: "
        "the encoder reads the model's window mu = 5% of the run ending at "
        "the observed fraction). 'naive' is the same error for the forecast "
        "that every feature keeps its last observed value: the LODE is "
        "useful where it is below it. Tasks not listed have not been run; "
        "see benchmarks/README.md. " + rows_measured(tasks, model_key=True),
    )


def write(tasks: dict[str, dict]) -> None:
    """Writes every task's rows."""
    write_result(
        NAME,
        {
            "headline": "Table A1: relative MSE of held-out runs at 5% / 50% "
            "observed, and trial selection, for " + ", ".join(tasks),
            "tasks": tasks,
        },
        render=markdown,
    )


def main(argv: list[str] | None = None) -> int:
    from optax_lode.demo import default_config
    from optax_lode.demo._pipeline import (
        _enable_compile_cache,
        reconstruction_stage,
        sweep_and_model,
    )
    from optax_lode.model import model_digest
    from optax_lode.tasks import get_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=TASKS)
    parser.add_argument("--render", action="store_true", help=RENDER_HELP)
    args = parser.parse_args(argv)
    if args.render:
        return render(NAME)
    _enable_compile_cache(CACHE / "xla")
    done = (read_result(NAME) or {}).get("tasks", {})
    for name in args.task or list(TASKS):
        t0 = time.perf_counter()
        cfg = default_config(name)
        task = get_task(name)
        traj, held, model = sweep_and_model(task, cfg, CACHE, progress=True)
        recon, _ = reconstruction_stage(model, held, cfg, CACHE)
        first_epoch = cfg.ticks_per_epoch / held.num_ticks
        epoch = min(recon, key=lambda o: abs(o - first_epoch))
        done[name] = {
            "observed": {str(k): v for k, v in recon.items()},
            "trial_selection_observe": epoch,
            "held_out_runs": held.num_runs,
            "sweep_runs": traj.num_runs,
            "ticks": traj.num_ticks,
            "fit_steps": cfg.fit_steps,
            "model_key": cfg.model_key(),
            "model_digest": model_digest(model),
            "seconds": time.perf_counter() - t0,
            "environment": environment(),
        }
        write(done)
        print(f"{name}: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
