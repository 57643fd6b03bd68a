"""Wall time of ``optax-lode demo`` from scratch: the default run and ``--fast``.

Each variant runs the command in a fresh temporary output directory (nothing
cached, no compilation cache from earlier runs) in a subprocess, and records
its wall time, its CPU time (user + system of the subprocess: on a shared
machine the wall time also counts waiting for the CPU), the load average at
the start and the per-stage timings the demo itself reports. The default
demo's report numbers (LODE vs best baseline) are recorded too.

Resumable: a finished variant is kept in the JSON and skipped on a re-run
unless ``--force``.

    python -m benchmarks.demo            # both variants
    python -m benchmarks.demo --only fast
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import markdown_table, read_result, write_result

NAME = "demo"
VARIANTS = {"default": [], "fast": ["--fast"]}
# The demo's stage timings (summary.json "timings"), in pipeline order.
_STAGES = {
    "setup": "setup",
    "sweep": "sweep",
    "fit": "fit",
    "reconstruction": "reconstruction",
    "lode": "LODE runs",
    "tuning": "baselines' tuning",
    "baselines": "baseline runs",
    "report": "report",
}


def run_variant(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="lode-demo-") as tmp:
        out = Path(tmp) / "demo"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "optax_lode", "demo", "--quiet", "--out", str(out),
             *args],
            capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"demo {args} failed:\n{proc.stderr[-3000:]}")
        summary = json.loads((out / "summary.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "args": args,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "load_average_at_start": load,
        "stage_seconds": summary["timings"],
        "verdict": summary["verdict"],
        "best_baseline": summary["best_baseline"],
        "welch": summary["welch"],
        "test_metrics": {n: m["test_metrics"] for n, m in summary["methods"].items()},
        "config": summary["config"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(VARIANTS), action="append")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    done = (read_result(NAME) or {}).get("variants", {})
    for name in args.only or list(VARIANTS):
        if name in done and not args.force:
            continue
        print(f"running the {name} demo ...", flush=True)
        done[name] = run_variant(VARIANTS[name])
        head = "; ".join(
            f"`optax-lode demo{' ' + ' '.join(v['args']) if v['args'] else ''}` "
            f"takes {v['wall_seconds'] / 60:.1f} min wall "
            f"({v['cpu_seconds'] / 60:.1f} min CPU)"
            for v in done.values()
        )
        write_result(
            NAME,
            {"headline": head + " on this machine, from scratch.", "variants": done},
            render=markdown,
        )
    return 0


def _command(variant: dict) -> str:
    """The variant's command line, as a table cell."""
    return f"`optax-lode demo {' '.join(variant['args'])}`".replace(" `", "`")


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    rows = []
    for v in payload["variants"].values():
        rows.append([
            _command(v),
            f"{v['wall_seconds'] / 60:.1f} min",
            f"{v['cpu_seconds'] / 60:.1f} min",
            f"{v['load_average_at_start']:.1f}",
            f"LODE {v['verdict']} (best baseline: {v['best_baseline']})",
        ])  # fmt: skip
    table = markdown_table(
        ["command", "wall time", "CPU time", "load at start", "report's verdict"],
        rows,
    )
    # Where the time goes, as the demo timed its own stages (wall seconds).
    stages = [
        k
        for k in _STAGES
        if any(k in v["stage_seconds"] for v in payload["variants"].values())
    ]
    stage_rows = [
        [_command(v)]
        + [
            f"{v['stage_seconds'][k]:.0f}" if k in v["stage_seconds"] else "-"
            for k in stages
        ]
        for v in payload["variants"].values()
    ]
    table = (
        table.rstrip("\n")
        + "\n\n"
        + markdown_table(["stage wall s", *(_STAGES[k] for k in stages)], stage_rows)
    )
    notes = (
        "Fresh output directory, nothing cached. The machine has "
        f"{payload['environment']['cpu_count']} CPU cores; the load average at "
        "the start shows how many other processes competed for them (wall time "
        "grows with it, CPU time much less). The second table is the demo's own "
        "timing of its stages (each includes its XLA compiles; the tuning trains "
        "every baseline over its learning-rate grid). A re-run of the same "
        "command reuses the cache and takes seconds."
    )
    return "Demo wall time (from scratch)", table, notes


if __name__ == "__main__":
    raise SystemExit(main())
