"""Tracker import speed: 100 runs x 600 ticks from MLflow and from TensorBoard.

A synthetic sweep (``optax_lode.runs.synthetic_sweep``: 5 schedules x 5 peak
learning rates x 4 seeds, 600 ticks; every tenth run cut at tick 300 as if it
stopped early) is written

- to an MLflow SQLite store with ``log_trajectories_to_mlflow`` (one step per
  tick, three metrics), and
- to TensorBoard event files, one directory per run, with TensorBoard's own
  ``tensorboard.summary.Writer``,

then read back with ``from_mlflow`` / ``from_tensorboard`` (median of
``--repeats`` imports, each in this one process, MLflow already imported). For
MLflow it also times the public-API path (one ``get_metric_history`` call per
run and key), which the importer replaces by a bulk read on SQL stores.

Run: ``python -m benchmarks.tracking_import [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import markdown_table, median_time, write_result

NAME = "tracking_import"


def _sweep():
    from optax_lode.runs import Trajectories, synthetic_sweep

    full = synthetic_sweep(
        ticks=600,
        schedules=("constant", "cosine", "linear", "exponential", "onecycle"),
        peak_lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        seeds=(0, 1, 2, 3),
    )
    mask = full.mask.copy()
    mask[::10, 300:] = False  # every tenth run stopped early
    return Trajectories.from_arrays(
        np.where(mask, full.loss, np.nan),
        np.where(mask, full.metric, np.nan),
        np.where(mask, full.lr, np.nan),
        mask=mask,
        run_ids=full.run_ids,
        info=full.info,
    )


def _write_tensorboard(traj, root: Path) -> None:
    from tensorboard.summary import Writer

    for i, rid in enumerate(traj.run_ids):
        w = Writer(str(root / rid))
        for t in np.nonzero(traj.mask[i])[0]:
            w.add_scalar("train_loss", traj.loss[i, t], int(t))
            w.add_scalar("val_accuracy", traj.metric[i, t], int(t))
            w.add_scalar("lr", traj.lr[i, t], int(t))
        w.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import mlflow  # noqa: F401 - imported once, outside the timings

    from optax_lode.tracking import (
        _mlflow,
        from_mlflow,
        from_tensorboard,
        log_trajectories_to_mlflow,
    )

    t_wall = time.perf_counter()
    traj = _sweep()
    values = int(traj.mask.sum()) * 3
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        t0 = time.perf_counter()
        log_trajectories_to_mlflow(traj, experiment="bench", tracking_uri=uri)
        export_s = time.perf_counter() - t0

        def check(back):
            assert (back.num_runs, back.num_ticks) == (traj.num_runs, traj.num_ticks)
            assert int(back.mask.sum()) == int(traj.mask.sum())

        def mlflow_import():
            check(from_mlflow("bench", tracking_uri=uri, tick=1))

        mlflow_s = median_time(mlflow_import, repeats=args.repeats)
        bulk = _mlflow._sql_histories
        _mlflow._sql_histories = lambda *a: None  # force the public API path
        try:
            public_s = median_time(mlflow_import, repeats=1)
        finally:
            _mlflow._sql_histories = bulk

        tb = Path(tmp) / "tb"
        t0 = time.perf_counter()
        _write_tensorboard(traj, tb)
        tb_write_s = time.perf_counter() - t0

        def tb_import():
            check(from_tensorboard(tb, tick=1))

        tb_s = median_time(tb_import, repeats=args.repeats)

    write_result(
        NAME,
        {
            "runs": traj.num_runs,
            "ticks": traj.num_ticks,
            "values": values,
            "repeats": args.repeats,
            "from_mlflow_s": mlflow_s,
            "from_mlflow_public_api_s": public_s,
            "export_mlflow_s": export_s,
            "from_tensorboard_s": tb_s,
            "write_tensorboard_s": tb_write_s,
            "wall_s": time.perf_counter() - t_wall,
        },
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """``(title, table, notes)`` of a saved result, from its JSON alone."""
    rows = [
        ["MLflow SQLite: from_mlflow (bulk SQL read)", payload["from_mlflow_s"]],
        [
            "MLflow SQLite: public get_metric_history path",
            payload["from_mlflow_public_api_s"],
        ],
        [
            "MLflow SQLite: log_trajectories_to_mlflow (export)",
            payload["export_mlflow_s"],
        ],
        ["TensorBoard: from_tensorboard", payload["from_tensorboard_s"]],
        ["TensorBoard: writing the event files", payload["write_tensorboard_s"]],
    ]
    size = f"{payload['runs']} runs x {payload['ticks']} ticks"
    table = markdown_table([size, "seconds"], rows)
    notes = (
        f"{payload['values']} logged values (loss, metric, lr per tick; every "
        "tenth run stopped at tick 300). Import times are medians of "
        f"{payload['repeats']} imports in one process, MLflow already imported; "
        "they include the tick alignment and building Trajectories."
    )
    return f"Tracker import: {size}", table, notes


if __name__ == "__main__":
    main()
