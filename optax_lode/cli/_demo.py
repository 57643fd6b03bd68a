"""``optax-lode demo``: the whole method end to end on built-in data."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from optax_lode.cli.sweep import add_task_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="sweep, fit a LODE, train LODE vs every tuned baseline, write a report",
        description=(
            "Runs the paper's pipeline on a built-in task: the default sweep "
            "(4 schedule shapes x 5 learning rates x 5 seeds), a latent ODE "
            "fitted to it, LODE-scheduled training on fresh seeds and every "
            "baseline at its tuned setting on the same seeds. Writes report.md "
            "and PNG figures to --out. A re-run reuses the cached sweep, model "
            "and runs (in OUT/cache) and only computes what is missing."
        ),
    )
    p.add_argument(
        "--task",
        default="mnist1d-mlp",
        help="a registered task's name (default: mnist1d-mlp; your own task: "
        "optax-lode sweep and fit)",
    )
    add_task_arg(p, "data_dir=/data/tfds")
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="evaluation seeds per method (default 5; 2 with --fast)",
    )
    p.add_argument(
        "--out", default="results/demo", help="output directory (default results/demo)"
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="a reduced run (small sweep, short fit, 2 baselines): under a "
        "minute on the default task, longer on others (text-transformer: "
        "about 5 minutes on 2 cores)",
    )
    p.add_argument(
        "--fit-steps", type=int, default=None, help="override the LODE fit's steps"
    )
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache in OUT/cache/xla",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _fail(message: str) -> int:
    # A user's error: said on stderr with exit code 2, as sweep and fit do.
    print(f"optax-lode demo: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from optax_lode._files import writable_directory
    from optax_lode.demo import default_config, fast_config, run_demo
    from optax_lode.tasks import TASKS, DataNotPreparedError

    if args.task not in TASKS and ":" in args.task:
        return _fail(
            f"--task {args.task}: the demo runs the registered tasks only (each "
            f"has its demo settings: {', '.join(sorted(TASKS))}); sweep and fit "
            f"your own with optax-lode sweep --task {args.task} ... and "
            "optax-lode fit"
        )
    make = fast_config if args.fast else default_config
    changes = {}
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    if args.fit_steps is not None:
        changes["fit_steps"] = args.fit_steps
    if args.task_arg:
        changes["task_kwargs"] = tuple(args.task_arg)
    try:
        config = make(args.task, **changes)
    except ValueError as e:
        return _fail(str(e))
    if args.task not in TASKS:
        return _fail(f"unknown task {args.task!r}; choose one of {sorted(TASKS)}")
    if args.task_arg:
        # Checked here, where a bad argument is the user's error: inside the
        # demo it would be a traceback. Costs one more build of the task.
        from optax_lode.tasks import get_task

        try:
            get_task(args.task, **dict(args.task_arg))
        except DataNotPreparedError as e:
            return _fail(str(e))
        except (ValueError, TypeError, ZeroDivisionError) as e:
            return _fail(f"--task {args.task} --task-arg: {e}")
    if not str(args.out).strip():  # "" would scatter it all over the cwd
        return _fail("--out is empty; give the directory to write, e.g. results/demo")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        return _fail(f"--out {args.out} is a file; the demo writes a directory")
    try:
        # Made, and a file created in it: an existing read-only directory
        # failed minutes later, with a traceback.
        writable_directory(args.out)
    except ValueError as e:
        return _fail(f"cannot use --out {args.out} as a directory: {e}")
    t0 = time.perf_counter()
    try:
        result = run_demo(
            config,
            args.out,
            progress=not args.quiet,
            compile_cache=not args.no_compile_cache,
        )
    except DataNotPreparedError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print(
            "\noptax-lode demo: interrupted; the same command resumes from "
            f"what {args.out}/cache holds",
            file=sys.stderr,
        )
        return 130
    print(f"done in {time.perf_counter() - t0:.0f} s: {result.out_dir / 'report.md'}")
    return 0
