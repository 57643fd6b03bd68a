"""``optax-lode sweep``: run a task's (shape x lr x seed) sweep to a file."""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


# run_sweep's Python arguments as this command's flags (``epochs=0`` is
# ``--epochs 0`` here), for optax_lode.cli.fit._as_flags; the more specific first.
_SWEEP_FLAGS = (
    ("ticks_per_epoch=", "--ticks-per-epoch "),
    ("chunk_size=", "--chunk-size "),
    ("seeds=", "--seeds "),
    ("epochs=", "--epochs "),
    ("checkpoint_dir", "--checkpoint-dir"),
)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def task_arg(text: str) -> tuple[str, object]:
    """Parses a ``--task-arg KEY=VALUE`` (shared with ``optax-lode demo``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a plain string, e.g. a data_dir
    return key.strip(), parsed


def add_task_arg(p: argparse.ArgumentParser, example: str) -> None:
    """Adds the repeatable ``--task-arg KEY=VALUE`` option (sweep and demo)."""
    p.add_argument(
        "--task-arg",
        type=task_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"keyword argument of the task factory, e.g. {example} "
        "(repeatable; values parsed as Python literals)",
    )


def _tracker_error(err: BaseException) -> bool:
    """An error of MLflow or of the store or server under it, not a bug here."""
    package = type(err).__module__.split(".")[0]
    return isinstance(err, OSError) or package in (
        "mlflow",
        "sqlalchemy",
        "alembic",
        "requests",
        "urllib3",
    )


def _existing_as_flag(message: str) -> str:
    # The export's advice names its Python argument.
    return message.replace("existing='skip'", "--mlflow-existing skip")


def _mlflow_failed(where: str, err: BaseException, then: str) -> int:
    """Says in one line that MLflow at ``where`` failed, and ``then`` what
    became of the sweep; the exit status."""
    # MLflow's messages may span lines (a server's response, say).
    said = " ".join(str(err).split()) or type(err).__name__
    print(f"optax-lode sweep: --mlflow ({where}): {said}{then}", file=sys.stderr)
    return 2


def register(subparsers) -> None:
    """Adds the ``sweep`` subcommand."""
    from optax_lode.sweep._schedules import PAPER_LRS, PAPER_SHAPES, SCHEDULE_SHAPES

    p = subparsers.add_parser(
        "sweep",
        help="run a hyperparameter sweep of a task and write its runs",
        description=(
            "Train a grid of (schedule shape x peak learning rate x seed) AdamW "
            "runs of a task, vmapped over runs (sharded over all devices), and "
            "write their tick records as Trajectories (Parquet or CSV). The "
            "defaults reproduce the paper's sweep: 4 shapes x 5 lrs x 5 seeds. "
            "Finished chunks are kept in CHECKPOINT_DIR: rerunning a killed "
            "sweep skips them."
        ),
    )
    p.add_argument(
        "--task",
        required=True,
        help="a registered task's name (see optax_lode.tasks.TASKS), or your own "
        "task as MODULE:ATTRIBUTE, a factory or a task object importable from "
        "the current directory (e.g. my_tasks:make_task)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output file, .parquet (keeps the runs' clock) or .csv",
    )
    p.add_argument(
        "--shapes",
        type=_names,
        default=list(PAPER_SHAPES),
        help=f"comma-separated shapes from {','.join(SCHEDULE_SHAPES)} "
        f"(default {','.join(PAPER_SHAPES)})",
    )
    p.add_argument(
        "--lrs",
        type=_floats,
        default=list(PAPER_LRS),
        help="comma-separated peak/initial learning rates "
        f"(default {','.join(f'{x:g}' for x in PAPER_LRS)}; a list starting "
        "with a minus sign needs the --lrs=... form)",
    )
    p.add_argument(
        "--seeds", type=int, default=5, help="number of seeds 0..N-1 (default 5)"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="default: the task's default_epochs"
    )
    p.add_argument(
        "--ticks-per-epoch",
        type=int,
        default=1,
        help="ticks (records) per epoch, the LODE's clock (default 1)",
    )
    p.add_argument(
        "--weight-decay", type=float, default=None, help="default: the task's"
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="runs per compiled program (default 25 per device)",
    )
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="where finished chunks go (default: OUT with suffix .chunks)",
    )
    add_task_arg(p, "batch_size=64")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        default=None,
        metavar="URI",
        help="also log every run to MLflow (params and per-tick train_loss, "
        "val_<the task's metric name> (val_accuracy, or val_neg_log_loss on "
        "nqm), lr) at tracking URI (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db); needs the tracking extra",
    )
    p.add_argument(
        "--mlflow-experiment",
        default=None,
        help="MLflow experiment name (default: optax-lode-sweep-TASK)",
    )
    p.add_argument(
        "--mlflow-existing",
        choices=("warn", "skip", "error"),
        default="warn",
        help="runs the experiment already holds (a re-run sweep): log them "
        "again with a warning (default), skip them, or stop with an error "
        "before logging",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the sweep and writes it; returns the exit code."""
    from optax_lode._files import file_path_problem, remove_empty, writable_parent
    from optax_lode.cli.fit import _as_flags
    from optax_lode.sweep import run_sweep
    from optax_lode.sweep._loop import check_clock
    from optax_lode.sweep._sweep import MIN_FIT_TICKS
    from optax_lode.tasks import DataNotPreparedError, check_task, get_task, metric_name

    # A str, not a Path: Path("d/") drops the separator that says "directory".
    out = Path(args.out)
    if args.out.endswith(("/", os.sep)):
        msg = f"optax-lode sweep: --out {args.out} names a directory; give a file"
        print(msg + " (.parquet or .csv) in it", file=sys.stderr)
        return 2
    # As fit and load_runs read them.
    parquet = out.suffix.lower() in (".parquet", ".pq")
    if not parquet and out.suffix.lower() != ".csv":
        msg = f"optax-lode sweep: --out must end in .parquet or .csv, got {out}"
        print(msg, file=sys.stderr)
        return 2
    why = file_path_problem(out)  # checked first, as fit does: a sweep takes hours
    if why:
        print(f"optax-lode sweep: cannot write --out {out}: {why}", file=sys.stderr)
        return 2
    if args.mlflow is None:
        unused = [
            flag
            for flag, value, default in (
                ("--mlflow-experiment", args.mlflow_experiment, None),
                ("--mlflow-existing", args.mlflow_existing, "warn"),
            )
            if value != default
        ]
        if unused:
            msg = f"optax-lode sweep: {', '.join(unused)} needs --mlflow"
            print(msg, file=sys.stderr)
            return 2
    if ":" in args.task and "" not in sys.path and "." not in sys.path:
        # A console script's sys.path starts at its own bin directory: the
        # user's task module beside them is found as `python -m` finds it.
        sys.path.insert(0, "")
    try:
        task = get_task(args.task, **dict(args.task_arg))
    except KeyError as err:  # an unknown task: the message lists the names
        print(f"optax-lode sweep: {err.args[0]}", file=sys.stderr)
        return 2
    except ImportError as err:  # a missing extra, or a user's module
        print(f"optax-lode sweep: {err}", file=sys.stderr)
        return 2
    except DataNotPreparedError as err:
        print(f"optax-lode sweep: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, ZeroDivisionError) as err:
        given = " --task-arg" if args.task_arg else ""
        msg = f"optax-lode sweep: --task {args.task}{given}: {err}"
        print(msg, file=sys.stderr)
        return 2
    try:  # before anything trains (run_sweep checks again, cheaply)
        check_task(task)
    except (TypeError, ValueError) as err:
        print(f"optax-lode sweep: --task {args.task}: {err}", file=sys.stderr)
        return 2
    epochs = task.default_epochs if args.epochs is None else args.epochs
    try:  # the clock run_sweep will check, checked before anything is made
        run_ticks, _ = check_clock(task, epochs, args.ticks_per_epoch)
    except (TypeError, ValueError) as err:
        print(f"optax-lode sweep: {_as_flags(str(err), _SWEEP_FLAGS)}", file=sys.stderr)
        return 2
    if run_ticks < MIN_FIT_TICKS:
        print(
            f"optax-lode sweep: runs of {_count(run_ticks, 'tick')} "
            f"(--epochs {epochs} x --ticks-per-epoch {args.ticks_per_epoch}) are "
            f"too short to fit: a latent ODE needs at least {MIN_FIT_TICKS}; "
            "raise --epochs or --ticks-per-epoch",
            file=sys.stderr,
        )
        return 2
    experiment = args.mlflow_experiment or f"optax-lode-sweep-{task.name}"
    where = args.mlflow or "the default tracking URI"
    if args.mlflow is not None:
        # Checked before a sweep of hours: MLflow is installed and its store
        # answers (a sqlite:/// file is made here, as the export would).
        from optax_lode.tracking._deps import mlflow_client

        try:
            client = mlflow_client(args.mlflow or None, what="--mlflow")
            client.get_experiment_by_name(experiment)
        except ImportError as err:
            print(f"optax-lode sweep: {err}", file=sys.stderr)
            return 2
        except Exception as err:
            if not _tracker_error(err):
                raise
            return _mlflow_failed(where, err, " (nothing was swept)")
    # Made and checked before the sweep trains, not when it writes --out.
    made, why = writable_parent(out)
    if why:
        print(f"optax-lode sweep: cannot write --out {out}: {why}", file=sys.stderr)
        return 2
    checkpoint = args.checkpoint_dir or out.with_name(out.name + ".chunks")
    try:
        traj = run_sweep(
            task,
            shapes=args.shapes,
            lrs=args.lrs,
            seeds=args.seeds,
            epochs=args.epochs,
            ticks_per_epoch=args.ticks_per_epoch,
            weight_decay=args.weight_decay,
            chunk_size=args.chunk_size,
            checkpoint_dir=checkpoint,
            progress=not args.no_progress,
        )
    except ValueError as err:
        remove_empty(made, out.parent)
        print(f"optax-lode sweep: {_as_flags(str(err), _SWEEP_FLAGS)}", file=sys.stderr)
        return 2
    try:
        if parquet:
            traj.to_parquet(out)
        else:
            traj.to_csv(out)
    except OSError as err:  # the sweep itself is in its checkpoint directory
        print(
            f"optax-lode sweep: cannot write {out} ({err.strerror or err}); the "
            f"runs are kept in {checkpoint}: run again with a writable --out.",
            file=sys.stderr,
        )
        return 2
    msg = (
        f"wrote {_count(traj.num_runs, 'run')} x {_count(traj.num_ticks, 'tick')} "
        f"of {task.name} to {out}"
    )
    tests = traj.info["test_metric"].dropna()
    if len(tests):
        msg += f"; best test metric {tests.max():.4f} ({tests.idxmax()})"
    print(msg)
    spt = traj.steps_per_tick  # the runs' clock
    kept = (
        f"recorded in {out} and the model fitted to it"
        if parquet
        else f"a CSV file drops it: fit with --optimizer-steps-per-tick {spt}"
    )
    print(
        f"{spt} steps per tick ({kept}): schedule a run like these with "
        f"lode_schedule(model, total_steps={traj.num_ticks * spt}, "
        f"steps_per_tick={spt}); the "
        f"finished chunks stay in {checkpoint} (delete it to sweep to {out.name} "
        "again with other settings)"
    )
    if args.mlflow is not None:
        import inspect
        from urllib.parse import quote

        from optax_lode.cli.fit import _warnings_as_flags
        from optax_lode.tracking import from_mlflow, log_trajectories_to_mlflow

        ticks = args.ticks_per_epoch
        metric_key = f"val_{metric_name(task)}"
        try:
            with _warnings_as_flags(_existing_as_flag):
                log_trajectories_to_mlflow(
                    traj,
                    experiment=experiment,
                    tracking_uri=args.mlflow or None,
                    metric=metric_key,
                    # The export tags the runs' steps per tick itself.
                    tags={"optax_lode.ticks_per_epoch": str(ticks)},
                    existing=args.mlflow_existing,
                )
        except ValueError as err:  # --mlflow-existing error; the runs are written
            print(f"optax-lode sweep: {_existing_as_flag(str(err))}", file=sys.stderr)
            return 2
        except Exception as err:
            if not _tracker_error(err):
                raise
            # The runs are written; the chunks kept make a rerun only export.
            return _mlflow_failed(
                where,
                err,
                f". The runs are in {out}; run the same command again with "
                "--mlflow-existing skip to log those not logged yet (the finished "
                "chunks are not trained again)",
            )
        logged = (
            f"logged {traj.num_runs} runs"
            if args.mlflow_existing != "skip"
            else f"logged those of the {traj.num_runs} runs not already there"
        )
        print(
            f"{logged} to MLflow experiment {experiment!r} "
            f"({where}), the validation metric as {metric_key!r}"
        )
        if metric_key != inspect.signature(from_mlflow).parameters["metric"].default:
            print(
                f"fit them with: optax-lode fit 'mlflow://{quote(experiment)}' "
                f"--metric-column {metric_key} ..."
            )
    return 0
