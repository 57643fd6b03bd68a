"""``optax-lode fit``: fit a latent ODE to a sweep's runs and save the artifact."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path

from optax_lode._files import (
    file_path_problem,
    remove_empty,
    writable_directory,
    writable_parent,
)


def _fractions(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fractions, got {text!r}"
        ) from None
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must be in (0, 1), got {text!r}")
    return values


def register(subparsers) -> None:
    """Adds the ``fit`` subcommand."""
    p = subparsers.add_parser(
        "fit",
        help="fit a latent ODE to a sweep's runs and save the model",
        description=(
            "Fit a latent ODE (ODE-RNN encoder, autonomous vector field, decoder) "
            "to the runs in RUNS (long format, one row per run and tick, with "
            "columns run, tick, loss, metric, lr), save it as one model file and "
            "print a Table A1-style report (relative MSE per feature when the "
            "encoder observes the first 5% / 50% of each held-out run) with trial "
            "selection."
        ),
    )
    p.add_argument(
        "runs",
        help="the runs: a .csv/.parquet file, mlflow://EXPERIMENT (with "
        "--tracking-uri or MLFLOW_TRACKING_URI) or tensorboard://LOGDIR",
    )
    p.add_argument(
        "--out",
        required=True,
        help="model file to write, e.g. sweep.lode (a missing directory is made; "
        "not the runs file, nor a .csv/.parquet name)",
    )
    p.add_argument(
        "--mu",
        type=int,
        default=None,
        help="encoder window in ticks (default: 5%% of T, at least 2)",
    )
    p.add_argument(
        "--steps", type=int, default=5000, help="max gradient steps (default 5000)"
    )
    p.add_argument(
        "--batch-size", type=int, default=20, help="windows per step (default 20)"
    )
    p.add_argument(
        "--learning-rate", type=float, default=1e-3, help="peak lr (default 1e-3)"
    )
    p.add_argument(
        "--path-penalty",
        type=float,
        default=1e-3,
        help="weight of the latent path-length penalty (default 1e-3)",
    )
    p.add_argument(
        "--held-out",
        type=float,
        default=0.1,
        help="fraction of runs held out for early stopping and the report "
        "(default 0.1; 0: none, no report)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initialisation, the held-out split and the batches "
        "(default 0)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=10,
        help="evaluations without improvement before stopping (default 10; "
        "0: never stop early)",
    )
    p.add_argument(
        "--latent-size", type=int, default=20, help="latent dimension (default 20)"
    )
    p.add_argument(
        "--hidden-size",
        type=int,
        default=20,
        help="width of the hidden layers and of the encoder's state (default 20)",
    )
    p.add_argument(
        "--depth",
        type=int,
        default=2,
        help="hidden layers of the vector field (default 2)",
    )
    p.add_argument(
        "--solver", default="euler", help="euler, heun, rk4 or tsit5 (default euler)"
    )
    p.add_argument(
        "--ticks-per-step",
        type=int,
        default=None,
        help="ticks per fixed solver step (default: 1 below 300 ticks per run, "
        "else at least 150 steps per run)",
    )
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="directory for a checkpoint, written at every evaluation, from "
        "which the same command resumes a killed fit (default: none)",
    )
    p.add_argument(
        "--observe",
        type=_fractions,
        default=[0.05, 0.5],
        help="comma-separated observed fractions for the report (default 0.05,0.5)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for col in ("run", "tick"):
        p.add_argument(
            f"--{col}-column",
            default=None,
            help=f"column holding {col} (default {col!r}); files only",
        )
    for col, key in (("loss", "train_loss"), ("metric", "val_accuracy"), ("lr", "lr")):
        p.add_argument(
            f"--{col}-column",
            default=None,
            help=f"column holding {col} (default {col!r}); for a tracker, the "
            f"metric key or scalar tag (default {key})",
        )
    p.add_argument(
        "--lower-is-better",
        action="store_true",
        help="the metric is lower-is-better (a validation loss, an error rate): "
        "fit to its negation, since the model ranks runs by a higher-is-better "
        "metric (Trajectories.with_negated_metric); a live run then passes the "
        "negated value as lode_schedule's val_metric",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's "
        "own default); MLflow only",
    )
    p.add_argument(
        "--steps-per-tick",
        type=int,
        default=None,
        help="tracker steps per tick, for the tick grid (default: the "
        "loss-logging spacing most runs share, one tick per loss record when "
        "all log alike); trackers only. The optimizer steps per tick recorded "
        "in the model: --optimizer-steps-per-tick",
    )
    p.add_argument(
        "--optimizer-steps-per-tick",
        type=int,
        default=None,
        metavar="K",
        help="optimizer steps per tick of the runs, recorded in the model so "
        "that lode_schedule refuses a run on another clock (default: what the "
        "runs say: a sweep's .parquet file records it, a CSV file does not, a "
        "tracker's tick is taken in optimizer steps, times the "
        "optax_lode.steps_per_tick tag of runs an optax-lode export logged; "
        "0: unknown)",
    )
    p.add_argument(
        "--first-step",
        type=int,
        default=None,
        help="tracker step that opens tick 0 (default: the first loss step); "
        "trackers only",
    )
    p.add_argument(
        "--num-ticks",
        type=int,
        default=None,
        help="ticks of the grid (default: the longest run's, or the grid a "
        "Parquet file records); a CSV file drops its grid, so a sweep whose runs "
        "all stopped early needs it",
    )
    p.add_argument(
        "--exclude-early-stopped",
        action="store_true",
        help="drop tracker runs that end before the grid does, with a warning "
        "(default: mask them after their end); trackers only",
    )
    p.add_argument(
        "--statuses",
        type=_statuses,
        default=None,
        help="comma-separated MLflow run statuses to read (default FINISHED; "
        "e.g. FINISHED,FAILED,KILLED to learn from crashed runs too); MLflow only",
    )
    p.add_argument(
        "--run-depth",
        type=int,
        default=None,
        help="TensorBoard: the runs are the directories this many levels below "
        "LOGDIR, each with every event file under it, a sub-directory's tags "
        "prefixed by it (Keras' LOGDIR/RUN/train and /validation: 1, with the "
        "tags train/epoch_loss, validation/epoch_accuracy; default: every "
        "directory holding event files is a run); TensorBoard only",
    )
    p.add_argument(
        "--skip-invalid-runs",
        action="store_true",
        help="drop tracker runs that cannot be aligned, with a warning; trackers only",
    )
    p.set_defaults(func=run)


def report_table(model, held_out, observes, *, negated: bool = False) -> str:
    """A Table A1-style report of ``evaluate`` on ``held_out`` runs (``negated``:
    their metric is a lower-is-better one, negated)."""
    from optax_lode.model import evaluate

    reports = [evaluate(model, held_out, observe=o) for o in observes]
    head = ["feature"] + [f"observe {o:.0%}" for o in observes]
    head += [f"persistence {o:.0%}" for o in observes]
    rows = []
    for name in ("loss", "metric", "lr"):
        row = [name] + [f"{r[name]:.4f} ± {r[name + '_std']:.4f}" for r in reports]
        row += [f"{r['persistence'][name]:.4f}" for r in reports]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = [
        f"Relative MSE on {held_out.num_runs} held-out "
        f"{'run' if held_out.num_runs == 1 else 'runs'} (sum of squared errors / "
        "sum of squared values, raw units; the runs that chose the fit's best "
        "step, so slightly optimistic: evaluate() on runs kept out of the fit "
        "altogether for an unbiased figure):",
        *lines,
        "",
        "Trial selection (final "
        + ("negated metric" if negated else "metric")
        + " predicted from the observed part):",
    ]
    left_out = [
        _left_out(o, r, held_out.num_runs)
        for o, r in zip(observes, reports, strict=True)
    ]
    if any(left_out):
        out[1:1] = [f"  {x}" for x in left_out if x]
    for o, r in zip(observes, reports, strict=True):
        if r["selected_run"] is None:
            why = (
                "no run's prediction is finite"
                if r["failed_runs"]
                else "no run has an observed part to rank"
            )
            out.append(f"  observe {o:.0%}: {why}")
            continue
        out.append(
            f"  observe {o:.0%}: selected {r['selected_run']} (true rank "
            f"{r['selected_rank']} of {r['num_runs']}, regret "
            f"{r['selected_regret']:.4g}), Spearman {r['spearman']:.3f}"
        )
    if held_out.num_runs < 3:  # a rank of 1 of 1 and a NaN Spearman say nothing
        out.append(
            f"  (only {held_out.num_runs} held-out run(s): too few to rank; a "
            "larger --held-out holds out more)"
        )
    return "\n".join(out)


def _left_out(observe: float, report: dict, runs: int) -> str:
    """What the report's averages at ``observe`` leave out, or ""."""
    parts = []
    if report["failed_runs"]:
        parts.append(
            f"{report['failed_runs']} whose prediction is not finite (a diverged "
            "fit? a smaller --learning-rate)"
        )
    if report["skipped_runs"]:
        parts.append(
            f"{report['skipped_runs']} with no valid tick to observe or to predict"
        )
    if not parts:
        return ""
    return (
        f"observe {observe:.0%}: {report['num_runs']} of {runs} runs; left out "
        + " and ".join(parts)
    )


# The readers' errors and warnings name their Python arguments; here, the
# flags (or what to do without one: min_ticks has none). In order: the more
# specific first.
_FLAGS = (
    ("on_invalid='skip'", "--skip-invalid-runs"),
    ("pass loss=/metric=/lr=", "pass --loss-column/--metric-column/--lr-column"),
    ("Pass statuses=(...)", "Pass --statuses FINISHED,FAILED,..."),
    ("Pass steps_per_tick=k (or None)", "Pass --optimizer-steps-per-tick K (or 0)"),
    ("Pass tick= (steps_per_tick=, --steps-per-tick)", "Pass --steps-per-tick"),
    ("a smaller tick/steps_per_tick", "a smaller --steps-per-tick"),
    ("steps_per_tick must be a positive", "--steps-per-tick must be a positive"),
    (" (or pass a smaller min_ticks)", ""),
    ("(or pass first_step=)", "(or pass --first-step)"),
    ("tracking_uri=", "--tracking-uri"),
    ("early_stopped='exclude'", "--exclude-early-stopped"),
    ("Pass early_stopped='mask'", "Leave out --exclude-early-stopped"),
    ("or early_stopped='mask'", "or leave out --exclude-early-stopped"),
    ("num_ticks must", "--num-ticks must"),
    ("num_ticks=", "--num-ticks "),
    ("run_depth must be an int >= 1 or None", "--run-depth must be an int >= 1"),
    ("run_depth=", "--run-depth "),
    ("from_mlflow needs", "mlflow://EXPERIMENT needs"),
    ("from_tensorboard needs", "tensorboard://LOGDIR needs"),
    (
        "Name the columns with from_dataframe(df, run=..., tick=..., loss=..., "
        "metric=..., lr=...)",
        "Name the columns with --run-column, --tick-column, --loss-column, "
        "--metric-column and --lr-column",
    ),
    (
        "or rebuild the runs of one clock (by "
        "traj.info['tags.optax_lode.steps_per_tick']) on their own grid: "
        "Trajectories.from_dataframe(traj.select(ids).to_dataframe(), "
        "steps_per_tick=k), k being their tag times the tick read with.",
        "or, if the runs you fit do share one, give it with "
        "--optimizer-steps-per-tick K.",
    ),
    ("held_out=", "--held-out "),
    ("checkpoint_dir", "--checkpoint-dir"),
)


# Which sources a source-specific flag needs, as its error says them.
_SOURCE_KINDS = {
    "file": ("a file", "RUNS.csv or RUNS.parquet"),
    "tracker": ("a tracker", "mlflow://... or tensorboard://..."),
    "mlflow": ("an MLflow source", "mlflow://EXPERIMENT"),
    "tensorboard": ("a TensorBoard source", "tensorboard://LOGDIR"),
}


def _recorded_clock(path: str) -> object:
    """The clock a Parquet file records, as written (None: none, or not
    Parquet); only its schema is read. The load that follows reports a file
    that cannot be read."""
    if not path.lower().endswith((".parquet", ".pq")):
        return None
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=[]).attrs.get("steps_per_tick")
    except (OSError, ValueError, TypeError):  # pyarrow's errors derive from them
        return None


# What a runs file is named: --out must not be one (the model is a .lode file).
_RUNS_SUFFIXES = (".csv", ".parquet", ".pq")


def _out_problem(out: str, runs: str | None) -> str | None:
    """Why ``--out`` (as typed) cannot be the model file, or None: a trailing
    separator (argparse's Path would drop it, and a file of the directory's
    name be written), the runs file itself (``runs``, None for a tracker), or
    a runs file's name."""
    if out.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        return (
            f"--out {out} ends in {out[-1]!r}, which names a directory; give the "
            f"model file's path, e.g. --out {os.path.join(out, 'model.lode')}"
        )
    path = Path(out)
    if runs is not None:
        same = False
        with contextlib.suppress(OSError):  # a name too long, say: not the same
            same = Path(runs).resolve() == path.resolve()
        with contextlib.suppress(OSError):  # one of them missing: not the same
            same = same or os.path.samefile(runs, out)
        if same:
            return (
                f"--out {out} is the runs file {runs}: the model would overwrite "
                "the runs; give the model its own file, e.g. --out "
                f"{Path(runs).with_suffix('.lode')}"
            )
    if path.suffix.lower() in _RUNS_SUFFIXES:
        return (
            f"--out {out} names a runs file ({path.suffix}); the model is a "
            f".lode file, e.g. --out {path.with_suffix('.lode')}"
        )
    return None


def _statuses(text: str) -> tuple[str, ...]:
    statuses = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not statuses:
        raise argparse.ArgumentTypeError("expected e.g. FINISHED,FAILED")
    return statuses


def _as_flags(message: str, flags: tuple[tuple[str, str], ...] = _FLAGS) -> str:
    """``message`` with each Python argument of ``flags`` replaced by its flag."""
    for python, flag in flags:
        message = message.replace(python, flag)
    return message


@contextlib.contextmanager
def _warnings_as_flags(translate=_as_flags):
    """Issues the warnings raised inside again, their advice in flags."""
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:  # also when it raises: the warnings come before the error
        for w in caught:
            warnings.warn_explicit(
                translate(str(w.message)), w.category, w.filename, w.lineno
            )


def run(args: argparse.Namespace) -> int:
    """Runs ``optax-lode fit``."""
    from optax_lode.model import fit, model_digest, save_model
    from optax_lode.tracking import load_runs

    tracker = "://" in args.runs
    refused = _out_problem(args.out, None if tracker else args.runs)
    if refused:  # checked first: the fit can take minutes
        print(f"optax-lode fit: {refused}", file=sys.stderr)
        return 2
    args.out = Path(args.out)
    why = file_path_problem(args.out)
    if why:
        print(f"optax-lode fit: cannot write --out {args.out}: {why}", file=sys.stderr)
        return 2
    if args.patience < 0:
        msg = f"optax-lode fit: --patience must be >= 0 (0: off); got {args.patience}"
        print(msg, file=sys.stderr)
        return 2
    declared = args.optimizer_steps_per_tick
    if declared is not None and declared < 0:
        print(
            "optax-lode fit: --optimizer-steps-per-tick must be >= 1, or 0 for "
            f"unknown; got {declared}",
            file=sys.stderr,
        )
        return 2
    names = ("loss", "metric", "lr") if tracker else ("run", "tick", "loss")
    options = {c: getattr(args, f"{c}_column") for c in names}
    mlflow = args.runs.startswith("mlflow://")
    tensorboard = args.runs.startswith("tensorboard://")
    allowed = {
        "file": not tracker,
        "tracker": tracker,
        "mlflow": mlflow,
        "tensorboard": tensorboard,
    }
    misplaced = [
        (flag, kind)
        for flag, value, kind in (
            ("--run-column", args.run_column, "file"),
            ("--tick-column", args.tick_column, "file"),
            ("--steps-per-tick", args.steps_per_tick, "tracker"),
            ("--first-step", args.first_step, "tracker"),
            ("--exclude-early-stopped", args.exclude_early_stopped or None, "tracker"),
            ("--skip-invalid-runs", args.skip_invalid_runs or None, "tracker"),
            ("--statuses", args.statuses, "mlflow"),
            ("--tracking-uri", args.tracking_uri, "mlflow"),
            ("--run-depth", args.run_depth, "tensorboard"),
        )
        if value is not None and not allowed[kind]
    ]
    if misplaced:
        kind = misplaced[0][1]
        what, form = _SOURCE_KINDS[kind]
        flags = ", ".join(flag for flag, k in misplaced if k == kind)
        hint = (
            f" (a file's clock, optimizer steps per tick: "
            f"--optimizer-steps-per-tick {args.steps_per_tick})"
            if "--steps-per-tick" in flags
            else ""
        )
        print(
            f"optax-lode fit: {flags} needs {what} ({form}), not {args.runs}{hint}",
            file=sys.stderr,
        )
        return 2
    if tracker:
        options.update(
            tick=args.steps_per_tick,
            first_step=args.first_step,
            early_stopped="exclude" if args.exclude_early_stopped else None,
            on_invalid="skip" if args.skip_invalid_runs else None,
        )
        if mlflow:
            options.update(tracking_uri=args.tracking_uri, statuses=args.statuses)
        if tensorboard:
            options.update(run_depth=args.run_depth)
    else:
        options.update(metric=args.metric_column, lr=args.lr_column)
    options.update(num_ticks=args.num_ticks)
    file_clock = None
    if declared is not None and not tracker:
        # Read with the declared clock, so a file that records a bad one is
        # still read; what it recorded is read apart, for the note below.
        file_clock = _recorded_clock(args.runs)
        # (0, unknown, is declared below: None here would be dropped.)
        options.update(steps_per_tick=declared or 1)
    try:
        with _warnings_as_flags():
            runs = load_runs(args.runs, **options)
    except (ValueError, OSError, ImportError) as err:
        print(f"optax-lode fit: {_as_flags(str(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # the tracker's own errors (a refused store, a URI)
        if type(err).__module__.split(".")[0] not in ("mlflow", "sqlalchemy"):
            raise
        print(f"optax-lode fit: {args.runs}: {err}", file=sys.stderr)
        return 2
    if declared is not None:
        said = runs.steps_per_tick if tracker else file_clock
        if said not in (None, declared or None):
            print(
                f"optax-lode fit: the runs say {said} optimizer "
                f"steps per tick; recording {declared or 'unknown'} "
                "(--optimizer-steps-per-tick)",
                file=sys.stderr,
            )
        runs = runs.with_steps_per_tick(declared or None)
    if args.lower_is_better:
        if runs.metric_negated:  # negating again would undo it
            print(
                f"optax-lode fit: {args.runs} records a metric already negated "
                "(Trajectories.with_negated_metric); drop --lower-is-better",
                file=sys.stderr,
            )
            return 2
        if (runs.metric[runs.mask] < 0).all():  # e.g. negated runs read from CSV
            print(
                "optax-lode fit: warning: every metric value is negative, as "
                "if it were negated already (a CSV file does not say so); "
                "negating it again for --lower-is-better",
                file=sys.stderr,
            )
        runs = runs.with_negated_metric()
    clock = (
        "steps per tick unknown: --optimizer-steps-per-tick K records it"
        if runs.steps_per_tick is None
        else f"{runs.steps_per_tick} steps per tick"
    )
    print(
        f"{runs.num_runs} {'run' if runs.num_runs == 1 else 'runs'} x "
        f"{runs.num_ticks} ticks ({clock}) from {args.runs}"
        + (
            "; metric negated (--lower-is-better)"
            if args.lower_is_better
            else "; metric negated (as the file records)"
            if runs.metric_negated
            else ""
        ),
        file=sys.stderr,
    )
    if args.num_ticks is not None:
        _warn_if_grid_outruns_the_runs(runs, args.num_ticks)
    made, why = writable_parent(args.out)
    if why:
        print(f"optax-lode fit: cannot write --out {args.out}: {why}", file=sys.stderr)
        return 2
    made_checkpoint = None
    if args.checkpoint_dir is not None:  # else said at the first checkpoint
        try:
            made_checkpoint = writable_directory(args.checkpoint_dir)
        except ValueError as err:
            remove_empty(made, args.out.parent)
            print(
                f"optax-lode fit: cannot use --checkpoint-dir {args.checkpoint_dir}: "
                f"{err}",
                file=sys.stderr,
            )
            return 2
    try:
        with _warnings_as_flags():
            model = fit(
                runs,
                mu=args.mu,
                steps=args.steps,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                path_penalty=args.path_penalty,
                held_out=args.held_out,
                seed=args.seed,
                progress=not args.quiet,
                checkpoint_dir=args.checkpoint_dir,
                patience=args.patience or None,
                latent_size=args.latent_size,
                hidden_size=args.hidden_size,
                depth=args.depth,
                solver=args.solver,
                ticks_per_step=args.ticks_per_step,
            )
    except (ValueError, FloatingPointError, OSError) as err:
        # OSError: a checkpoint that cannot be written (the directory changed).
        remove_empty(made_checkpoint, args.checkpoint_dir)
        remove_empty(made, args.out.parent)
        print(f"optax-lode fit: {_fit_error(err, args)}", file=sys.stderr)
        return 2
    try:
        save_model(args.out, model)
    except OSError as err:  # the directory changed during the fit
        print(f"optax-lode fit: cannot write --out {args.out}: {err}", file=sys.stderr)
        return 2
    summary = model.training_summary
    held = bool(summary["held_out_runs"])
    print(
        f"saved {args.out} (T={model.T}, mu={model.mu}, "
        f"steps_per_tick={model.steps_per_tick}, {summary['steps']} steps, "
        + (
            f"best held-out MSE {summary['held_out_mse']} at step "
            f"{summary['best_step']}, "
            if held
            else ""
        )
        + f"{summary['seconds']:.1f} s)\nmodel digest {model_digest(model)}"
        + (
            "\nthe model predicts the negated metric: pass "
            "lode_schedule's update val_metric=-<your metric>"
            if model.metric_negated
            else ""
        )
    )
    if not held:
        print(
            "no runs held out: no held-out MSE and no report (the model is the "
            "last step's); "
            + (
                "pass --held-out F (e.g. 0.2) to measure the fit"
                if args.held_out == 0
                else f"--held-out {args.held_out} could hold none out (the "
                "warning above says why)"
            )
        )
        return 0
    print()
    held_out = runs.select(summary["held_out_runs"])
    print(report_table(model, held_out, args.observe, negated=runs.metric_negated))
    return 0


def _warn_if_grid_outruns_the_runs(runs, num_ticks: int) -> None:
    """Warns when ``--num-ticks`` is longer than every run: the model's last
    ticks are then fitted to no record (right only for a sweep whose runs all
    stopped early, the grid a CSV file drops)."""
    import numpy as np

    ticks = np.flatnonzero(runs.mask.any(axis=0))
    longest = int(ticks[-1]) + 1 if ticks.size else 0
    if num_ticks > longest:
        warnings.warn(
            f"--num-ticks {num_ticks} is longer than the longest run, which has "
            f"{longest} {'tick' if longest == 1 else 'ticks'}: the model's last "
            f"{num_ticks - longest} of T={num_ticks} ticks are fitted to no "
            "record. Right for a sweep whose runs all stopped early on a grid "
            f"of {num_ticks} ticks; else leave out --num-ticks (T is then the "
            "longest run's).",
            UserWarning,
            stacklevel=2,
        )


def _fit_error(err: Exception, args: argparse.Namespace) -> str:
    """``fit``'s error in the command's terms."""
    message = _as_flags(str(err))
    if "belongs to a fit of other data or settings" in message:
        from optax_lode.model._fit import _CHECKPOINT

        # The checkpoint records a fingerprint of the runs and settings, not
        # them: what changed cannot be said, only what must match.
        message = (
            f"--checkpoint-dir {args.checkpoint_dir} holds the checkpoint of a "
            "fit of other runs or settings (it records only their fingerprint, "
            "so which one changed cannot be said): to resume it, run the same "
            "command again (the same runs, read with the same flags, and the "
            "same --mu, --steps, --batch-size, --learning-rate, --path-penalty, "
            "--held-out, --seed, --patience, --latent-size, --hidden-size, "
            "--depth, --solver and --ticks-per-step); else use another "
            "--checkpoint-dir, or delete "
            f"{Path(args.checkpoint_dir) / _CHECKPOINT} to start over"
        )
    return message
