"""Fit speed: how long a usable latent ODE takes on a 2-core CPU.

A synthetic sweep of 100 runs x 600 ticks (5 schedule shapes x 5 peak learning
rates x 4 seeds, ``optax_lode.runs.synthetic_sweep``) is split into 80 runs to
fit on and 20 test runs. ``fit`` runs with its defaults (paper A.3: Adam, one-cycle
peaking at 1e-3, batch 20, up to 5000 steps, early stopping on 10% held-out runs).
After every held-out evaluation a callback measures the Table A1 relative MSE of
the metric on the test runs observing 50% of each run, so the benchmark reports

- the time per gradient step (median over evaluation intervals),
- the wall time until the test relative MSE of the metric first falls below the
  threshold the fit-quality test uses (``tests/test_model_fit.py``: 0.006), not
  counting the callback's own time,
- the final model's Table A1 numbers at 5% and 50% observation, against the
  persistence baseline.

Target: a usable model within 5 minutes of CPU (the paper: under 1 hour on an
A100 for 50k steps).

Run: ``python -m benchmarks.fit_speed [--steps N]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from benchmarks._common import OtherLoad, markdown_table, other_load_note, write_result

NAME = "fit_speed"
THRESHOLD = 0.006  # tests/test_model_fit.py: metric relative MSE at observe=0.5


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from optax_lode.model import evaluate, fit
    from optax_lode.runs import synthetic_sweep

    t_wall = time.perf_counter()
    sweep = synthetic_sweep(
        ticks=600,
        schedules=("constant", "cosine", "linear", "exponential", "onecycle"),
        peak_lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        seeds=(0, 1, 2, 3),
    )
    train, test = sweep.split(held_out=0.2, seed=args.seed)
    trace = []
    callback_seconds = [0.0]
    # One reading per interval up to an evaluation (the per-step times' unit),
    # without the callback's own time, which the times leave out too.
    others, meter = [], OtherLoad()

    def callback(step, model, info):
        others.append(meter.stop())
        t0 = time.perf_counter()
        report = evaluate(model, test, observe=0.5)
        trace.append(
            {
                "step": step,
                # fit's clock includes earlier callbacks: take them out.
                "fit_seconds": info["seconds"] - callback_seconds[0],
                "train_loss": info["loss"],
                "held_out_mse": info["held_out"],
                "test_metric_rel_mse": report["metric"],
            }
        )
        callback_seconds[0] += time.perf_counter() - t0
        meter.start()

    t0 = time.perf_counter()
    meter.start()
    model = fit(
        train,
        steps=args.steps,
        learning_rate=args.learning_rate,
        seed=args.seed,
        progress=False,
        callback=callback,
    )
    fit_wall = time.perf_counter() - t0 - callback_seconds[0]

    per_step = [
        (b["fit_seconds"] - a["fit_seconds"]) / (b["step"] - a["step"])
        for a, b in itertools.pairwise(trace)
    ]
    step_seconds = statistics.median(per_step)
    reached = next((t for t in trace if t["test_metric_rel_mse"] < THRESHOLD), None)
    reports = {o: evaluate(model, test, observe=o) for o in (0.05, 0.5)}
    summary = model.training_summary

    write_result(
        NAME,
        {
            "config": {
                "steps": args.steps,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
                "runs": sweep.num_runs,
                "ticks": sweep.num_ticks,
                "fit_runs": train.num_runs,
                "test_runs": test.num_runs,
                "threshold": THRESHOLD,
            },
            "step_seconds": step_seconds,
            "fit_wall_seconds": fit_wall,
            "time_to_threshold_seconds": reached["fit_seconds"] if reached else None,
            "steps_to_threshold": reached["step"] if reached else None,
            "steps_run": summary["steps"],
            "best_step": summary["best_step"],
            "evaluations": reports,
            "trace": trace,
            "other_load_cores": others,
            "total_wall_seconds": time.perf_counter() - t_wall,
        },
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    c, r = payload["config"], payload
    reached = r["time_to_threshold_seconds"] is not None
    rows = [
        [
            "runs x ticks (fit / test)",
            f"{c['fit_runs']} / {c['test_runs']} x {c['ticks']}",
        ],
        ["time per step (ms, batch 20)", r["step_seconds"] * 1e3],
        ["steps run (early stopping)", r["steps_run"]],
        ["best held-out step", r["best_step"]],
        ["fit wall time incl. compile (s)", r["fit_wall_seconds"]],
        [
            f"time to test metric rel. MSE < {c['threshold']} (s)",
            r["time_to_threshold_seconds"] if reached else "not reached",
        ],
        ["  ... at step", r["steps_to_threshold"] if reached else "-"],
    ]
    for o, e in r["evaluations"].items():
        for name in ("loss", "metric", "lr"):
            rows.append(
                [
                    f"rel. MSE {name}, observe {float(o):.0%} (persistence)",
                    f"{e[name]:.4f} ({e['persistence'][name]:.4f})",
                ]
            )
        rows.append(
            [
                f"selection, observe {float(o):.0%}: rank / Spearman",
                f"{e['selected_rank']} / {e['spearman']:.3f}",
            ]
        )
    notes = (
        "Synthetic sweep (`optax_lode.runs.synthetic_sweep`), fit with the "
        "defaults of `optax_lode.fit`. Time-to-threshold excludes the "
        "benchmark's own evaluation callback. Target: a usable model within "
        "5 minutes of CPU. "
        + other_load_note(
            r["other_load_cores"],
            "intervals of the fit up to an evaluation (the first with compilation)",
            cpus=r["environment"]["cpu_count"],
        )
    )
    return (
        f"Fit speed: {c['runs']} runs x {c['ticks']} ticks on CPU",
        markdown_table(["quantity", "value"], rows),
        notes,
    )


if __name__ == "__main__":
    main()
