"""Sweep throughput: the default 100-run ``mnist1d-mlp`` sweep, and runs/second
per task.

Run: ``python -m benchmarks.sweep_throughput`` (``--quick`` for a smoke run).

1. Headline: wall time of ``run_sweep(get_task("mnist1d-mlp"))`` with the
   paper's defaults (4 shapes x 5 lrs x 5 seeds = 100 runs, 60 epochs, one tick
   per epoch), compilation included: what a user waits for. Target: < 3 min on
   a 2-core CPU (a naive vmapped loop took about 2.6 min).
2. Per task: the sweep engine's program for a few runs (vmapped), compiled
   once and executed three times (median): steady-state run-steps/second, from
   which runs/second at the task's default length follow. The tfds tasks run on
   ``tfds.testing.mock_data`` (no data here), so their evaluation cost is that
   of the small mock splits, and their runs/second are extrapolated to the real
   training-set size.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks._common import (
    OtherLoad,
    markdown_table,
    median_time,
    other_load_note,
    write_result,
)

# name -> (task kwargs, runs vmapped, epochs timed, executions timed (median),
#          real steps per epoch if the data are mocked)
_TASKS = {
    "nqm": ({}, 20, 2, 3, None),
    "digits-mlp": ({}, 20, 2, 3, None),
    "digits-cnn": ({}, 20, 2, 3, None),
    "mnist1d-mlp": ({}, 20, 2, 3, None),
    "mnist1d-cnn": ({}, 20, 2, 3, None),
    "text-transformer": ({}, 4, 1, 1, None),
    "fashion_mnist-cnn": ({"batch_size": 128}, 1, 1, 1, 54000 // 128),
    "cifar100-resnet18": ({"batch_size": 128}, 1, 1, 1, 45000 // 128),
}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def _timed_program(task, runs: int, epochs: int, repeats: int) -> dict:
    """Compile and run the sweep engine's program for ``runs`` runs of
    ``epochs`` epochs (grid order: shapes, then lrs, then seeds), timing the
    compilation and the (median of 3) execution separately."""
    import jax

    from optax_lode.sweep import PAPER_LRS, PAPER_SHAPES
    from optax_lode.sweep._sweep import _run_program

    shapes = PAPER_SHAPES[: min(len(PAPER_SHAPES), runs)]
    lrs = PAPER_LRS[: min(len(PAPER_LRS), max(1, runs // len(shapes)))]
    seeds = max(1, runs // (len(shapes) * len(lrs)))
    grid = [(i, lr, s) for i in range(len(shapes)) for lr in lrs for s in range(seeds)]
    args = (
        np.asarray([g[0] for g in grid], np.int32),
        np.asarray([g[1] for g in grid], np.float32),
        np.asarray([g[2] for g in grid], np.uint32),
    )
    program = _run_program(
        task, shapes, epochs, task.steps_per_epoch, task.weight_decay
    )
    t0 = time.perf_counter()
    compiled = jax.jit(program).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    others = []
    run_s = median_time(
        lambda: jax.block_until_ready(compiled(*args)), repeats=repeats, others=others
    )
    return {
        "runs": len(grid),
        "compile_seconds": compile_s,
        "run_seconds": run_s,
        "other_load_cores": others,
    }


def _task(name: str, kwargs: dict, mocked: bool):
    from optax_lode.tasks import get_task

    if not mocked:
        return get_task(name, **kwargs)
    import tensorflow_datasets as tfds

    # Three minibatches of training data after the 10% validation hold-out.
    n = int(np.ceil(3 * kwargs["batch_size"] / 0.9)) + 1
    with tfds.testing.mock_data(num_examples=n):
        return get_task(name, **kwargs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--skip-headline", action="store_true")
    # cifar100-resnet18 is not in the default list: 3 steps of one batch-128
    # run did not finish within 15 min on this 2-core CPU (run it on a GPU with
    # --tasks cifar100-resnet18).
    parser.add_argument(
        "--tasks", default=",".join(t for t in _TASKS if t != "cifar100-resnet18")
    )
    args = parser.parse_args(argv)

    from optax_lode.sweep import run_sweep
    from optax_lode.tasks import get_task

    started = time.perf_counter()
    data: dict = {"load_before": _load()}
    if not args.skip_headline:
        epochs = 6 if args.quick else 60
        task = get_task("mnist1d-mlp")
        meter = OtherLoad()
        meter.start()
        t0 = time.perf_counter()
        traj = run_sweep(task, epochs=epochs)
        wall = time.perf_counter() - t0
        others = [meter.stop()]
        best = traj.info["test_metric"].max()
        data["headline_sweep"] = {
            "task": "mnist1d-mlp",
            "runs": traj.num_runs,
            "epochs": epochs,
            "ticks": traj.num_ticks,
            "steps_per_run": epochs * task.steps_per_epoch,
            "wall_seconds": wall,
            "other_load_cores": others,
            "best_test_metric": float(best),
            "load_after": _load(),
        }
        data["headline"] = (
            f"default 100-run mnist1d-mlp sweep ({epochs} epochs): {wall / 60:.2f} min "
            f"wall time on {os.cpu_count()} CPU cores (target < 3 min)"
        )

    per_task = {}
    for name in [t for t in args.tasks.split(",") if t]:
        kwargs, runs, epochs, repeats, real_steps = _TASKS[name]
        if args.quick:
            runs, epochs, repeats = min(runs, 4), 1, 1
        task = _task(name, kwargs, mocked=real_steps is not None)
        timing = _timed_program(task, runs, epochs, repeats)
        n = timing["runs"]
        # Steady state (compilation excluded): run-steps per second.
        rate = n * epochs * task.steps_per_epoch / timing["run_seconds"]
        steps_per_epoch = real_steps or task.steps_per_epoch
        runs_per_s = rate / (steps_per_epoch * task.default_epochs)
        per_task[name] = {
            **timing,
            "epochs": epochs,
            "run_steps_per_second": rate,
            "steps_per_epoch": steps_per_epoch,
            "default_epochs": task.default_epochs,
            "runs_per_second_at_default_length": runs_per_s,
            "mock_data": real_steps is not None,
        }
        print(name, per_task[name], flush=True)
    data["per_task"] = per_task
    data["load_after"] = _load()
    data["wall_seconds"] = time.perf_counter() - started
    data["quick"] = args.quick
    write_result(
        "sweep_throughput" + ("_quick" if args.quick else ""),
        data,
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """``(title, table, notes)`` of a saved result, from its JSON alone."""
    rows = []
    head = payload.get("headline_sweep")
    if head is not None:
        wall, runs, epochs = head["wall_seconds"], head["runs"], head["epochs"]
        rows.append(
            [
                f"**{head['task']} default sweep** ({runs} runs, compile included)",
                f"{runs * head['steps_per_run'] / wall:.4g}",
                f"{epochs} x {head['steps_per_run'] // epochs}",
                f"{runs / wall:.3g}",
                f"**{wall:.1f} s wall**",
            ]
        )
    per_task = payload["per_task"]
    for name, t in per_task.items():
        rows.append(
            [
                name + (" (mock data, extrapolated)" if t["mock_data"] else ""),
                f"{t['run_steps_per_second']:.4g}",
                f"{t['default_epochs']} x {t['steps_per_epoch']}",
                f"{t['runs_per_second_at_default_length']:.3g}",
                f"{t['compile_seconds']:.1f} s",
            ]
        )
    table = markdown_table(
        [
            "what",
            "run-steps / s",
            "default run (epochs x steps)",
            "runs / s",
            "compile (one program) / wall",
        ],
        rows,
    )
    cores = payload["environment"]["cpu_count"]
    notes = (
        "Runs/second are at each task's default run length, vmapped over the "
        "small sweep's runs (more runs per program are faster per run on CPU). "
        + other_load_note(
            (head or {}).get("other_load_cores", [])
            + [c for t in per_task.values() for c in t["other_load_cores"]],
            "timed runs (the default sweep, and each execution of a task's program)",
            cpus=cores,
        )
        + f"Machine load average: {payload['load_before']} before, "
        f"{payload['load_after']} after ({cores} cores). "
        "tfds tasks: one run (a vmapped convolution over runs becomes a grouped "
        "convolution, very slow on CPU; they are meant for GPUs), measured on "
        "mock data (evaluation on tiny splits), extrapolated to the real number "
        "of steps per epoch. cifar100-resnet18 is not measured here: three "
        "batch-128 steps of one run did not finish within 15 min on this CPU."
    )
    if payload.get("quick"):
        notes += " QUICK RUN: shortened; not the reference numbers."
    return "Sweep throughput", table, notes


if __name__ == "__main__":
    main()
