"""Table 1: final test metric of LODE vs every tuned baseline, >= 10 seeds per task.

For each task this runs the demo pipeline (``optax_lode.demo.run_demo``) at
full size: the paper's sweep (4 shapes x 5 learning rates x 5 seeds), the
LODE fitted to 80% of it, then LODE-scheduled AdamW and every baseline of
``optax_lode.baselines`` at its tuned setting (paper A.2) on the same fresh
seeds. Per task it reports mean ± std of the test metric, Welch's t-test of
LODE minus the best baseline with its 95% confidence interval, and the verdict
(wins / ties / loses) in words.

Resumable: everything is cached per task in
``results/demo/cache`` (the demo's own cache: the demo's sweep and model and
its LODE runs are reused, and only the extra seeds' LODE runs are trained; the
baselines run as one batch of all ten seeds, see ``DemoConfig.run_key``);
each task's full report and figures go to
``results/bench-cache/table1/<task>/``. The result files are rewritten after
every task with whatever tasks are done so far.

    python -m benchmarks.table1_schedule_quality --task mnist1d-mlp
    python -m benchmarks.table1_schedule_quality          # every task below
    python -m benchmarks.table1_schedule_quality --render # the Markdown, from the JSON
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks._common import (
    RENDER_HELP,
    RESULTS_DIR,
    environment,
    render,
    rows_measured,
    write_result,
)

NAME = "table1_schedule_quality"
TASKS = ("digits-cnn", "mnist1d-mlp", "mnist1d-cnn", "text-transformer", "digits-mlp")
CACHE = Path("results/bench-cache/table1")
#: The stages' cache is the demo's: keys cover every setting, so the demo's
#: sweep, model and LODE runs of a task are reused (only the extra seeds run).
SHARED_CACHE = Path("results/demo/cache")


def _committed() -> dict[str, dict]:
    """Tasks of the committed result file, as summaries (for a fresh clone).

    ``results/`` is not versioned, so a clone that runs one more task must not
    drop the tasks run elsewhere: they are read back from the committed JSON,
    with the environment they were measured on.
    """
    path = RESULTS_DIR / f"{NAME}.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    out = {}
    for task, d in old.get("tasks", {}).items():
        methods = {
            n: {"test_metrics": m["test_metrics"], "setting": m["setting"]}
            for n, m in d["methods"].items()
        }
        methods["LODE"]["seeds"] = d["seeds"]
        out[task] = {
            "methods": methods,
            "config": d["config"],
            "timings": d["timings_seconds"],
            # None: made before the file said which timings were cache reads.
            "timings_cached": d.get("timings_cached"),
            "decision_revision": d.get("decision_revision"),
            "model_digest": d.get("model_digest"),
            "environment": d.get("environment", old.get("environment")),
        }
    return out


#: The demo's stages, in order; their sum is a task's time from scratch.
STAGES = ("setup", "sweep", "fit", "reconstruction", "lode", "tuning", "baselines")


def merge_timings(new: dict, old: dict | None) -> tuple[dict, dict]:
    """A task's seconds per stage as it took when computed, and which are not.

    ``new`` is a demo summary (``timings``, ``cached``), ``old`` the task's
    previous record (``timings``, ``timings_cached``) or None. A stage the
    latest invocation read from its cache keeps the previous record's time
    for it when that one was computed; otherwise its seconds are the cache
    read's, flagged True. ``total`` is the sum of the stages.
    """
    old_t = (old or {}).get("timings") or {}
    old_c = (old or {}).get("timings_cached")  # None: unknown, so not trusted
    times, cached = {}, {}
    for stage in STAGES:
        if stage not in new["timings"]:
            continue
        read = bool(new.get("cached", {}).get(stage, False))
        if read and old_c is not None and stage in old_t and not old_c.get(stage, True):
            times[stage], cached[stage] = old_t[stage], False
        else:
            times[stage], cached[stage] = new["timings"][stage], read
    times["total"] = sum(times.values())
    cached["total"] = any(cached.values())
    return times, cached


def _summaries(ran: dict[str, dict]) -> dict[str, dict]:
    """The committed tasks, with those of ``ran`` (this invocation's: task ->
    the environment it ran in) read anew from the demo's summaries. Only
    those: another task's summary in the cache says nothing of when or where
    it was made (it records no environment), and re-reading it stamped it
    with this invocation's."""
    out = _committed()
    for task, env in ran.items():
        path = CACHE / task / "summary.json"
        if path.exists():
            new = json.loads(path.read_text())
            old = out.get(task)
            new["timings"], new["timings_cached"] = merge_timings(new, old)
            if old is not None and all(new.get("cached", {}).values()):
                # Nothing was computed: the numbers are the old machine's.
                new["environment"] = old.get("environment")
            else:
                new["environment"] = env
            out[task] = new
    return {t: out[t] for t in TASKS if t in out}


def write(
    summaries: dict[str, dict], *, pending: list[str], env: dict | None = None
) -> None:
    """Writes the result of every task in ``summaries`` (``env``: that of
    the invocation that wrote the result)."""
    from optax_lode.evaluation import compare_methods

    data = {}
    for task, s in summaries.items():
        results = {n: m["test_metrics"] for n, m in s["methods"].items()}
        comp = compare_methods(results)
        t = comp.test
        data[task] = {
            "methods": {
                n: {
                    "mean": comp.summaries[n].mean,
                    "std": comp.summaries[n].std,
                    "n": comp.summaries[n].n,
                    "test_metrics": results[n],
                    "setting": s["methods"][n]["setting"],
                }
                for n in results
            },
            "best_baseline": comp.best_baseline,
            "welch": t._asdict() if t is not None else None,
            "verdict": comp.verdict,
            "seeds": s["methods"]["LODE"]["seeds"],
            "config": s["config"],
            # The run as the LODE saw it, for the notes.
            "clock": task_clock(s["config"]),
            # None: made before summaries recorded it.
            "decision_revision": s.get("decision_revision"),
            "model_digest": s.get("model_digest"),
            # Seconds per stage when it was computed; True where only a cache
            # read was ever timed (see merge_timings).
            "timings_seconds": s["timings"],
            "timings_cached": s.get("timings_cached"),
            # Tasks can be run on different days and machines.
            "environment": s.get("environment") or environment(),
        }
    verdicts = [f"{t}: LODE {d['verdict']}" for t, d in data.items()]
    headline = "Table 1 (test accuracy, LODE vs best tuned baseline): " + (
        "; ".join(verdicts) if verdicts else "no task finished yet"
    )
    write_result(
        NAME,
        {"headline": headline, "tasks": data, "pending": pending},
        render=markdown,
        env=env,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON: the
    summaries and Welch's test are computed again from each method's saved
    test metrics, as :func:`write` computed them."""
    from optax_lode.evaluation import compare_methods

    data, pending = payload["tasks"], payload["pending"]
    rows = []
    for task, d in data.items():
        comp = compare_methods({n: m["test_metrics"] for n, m in d["methods"].items()})
        scale = 100.0 if task != "nqm" else 1.0
        t = comp.test
        lode = comp.summaries["LODE"]
        best = comp.summaries[comp.best_baseline]
        rows.append(
            "| {task} | {lode} | {best} ({name}) | {diff} | [{lo}, {hi}] | {p} | "
            "**LODE {verdict}** |".format(
                task=task,
                lode=lode.format(2, scale),
                best=best.format(2, scale),
                name=comp.best_baseline,
                diff=f"{t.diff * scale:+.2f}" if t else "n/a",
                lo=f"{t.ci_low * scale:+.2f}" if t else "n/a",
                hi=f"{t.ci_high * scale:+.2f}" if t else "n/a",
                p=f"{t.p_value:.3g}" if t else "n/a",
                verdict=comp.verdict,
            )
        )
    table = (
        "| task | LODE | best baseline | LODE − best | 95% CI | Welch p | verdict |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    # Every method of every task, as the paper's Table 1 lists them.
    methods = sorted({n for d in data.values() for n in d["methods"]},
                     key=lambda n: (n != "LODE", n))  # fmt: skip
    full = "\n| method | " + " | ".join(data) + " |\n"
    full += "|---|" + "---|" * len(data) + "\n"
    for n in methods:
        cells = []
        for task in data:
            m = data[task]["methods"].get(n)
            if m is None:
                cells.append("–")
                continue
            scale = 100.0 if task != "nqm" else 1.0
            cell = f"{m['mean'] * scale:.2f} ± {m['std'] * scale:.2f}"
            if n in ("LODE", data[task]["best_baseline"]):
                cell = f"**{cell}**"
            cells.append(cell)
        full += f"| {n} | " + " | ".join(cells) + " |\n"
    notes = (
        "Test accuracy (%) mean ± std over the seeds listed in the JSON; every "
        "baseline at the learning rate selected on the validation metric (paper "
        "A.2; the sweep's shapes are tuned on the sweep itself, the others with "
        "`optax_lode.baselines.tune` over the same grid, but prodigy and dog, "
        "learning-rate-free, over multipliers of their own step estimate, "
        "`MULTIPLIER_LEARNING_RATES`). 'best baseline' is the "
        "baseline with the best mean test accuracy (leaving out any that "
        "diverged on significantly more seeds than LODE), chosen after the fact; "
        "'LODE − best' and its 95% CI are in accuracy points; a Welch p >= 0.05 "
        "is reported as a tie."
    )
    notes += _clock_note(data)
    notes += " " + rows_measured(data)
    if pending:
        notes += (
            "\n\n**Not run yet:** "
            + ", ".join(pending)
            + " (see benchmarks/README.md)."
        )
    return (
        "Table 1: schedule quality (LODE vs every tuned baseline)",
        table + full,
        notes,
    )


def task_clock(config: dict) -> dict[str, int]:
    """A task's run as the LODE sees it, from its saved demo config: T ticks
    of k steps (its model's window, and so its decision period, is 5% of T,
    at least 2 ticks)."""
    from types import SimpleNamespace

    from optax_lode.demo._pipeline import _clock
    from optax_lode.tasks import get_task

    cfg = SimpleNamespace(**config)  # the demo config, as saved
    task = get_task(cfg.task, **dict(cfg.task_kwargs or ()))
    _, T, k = _clock(task, cfg)
    return {"ticks": T, "steps_per_tick": k}


def _clock_note(data: dict) -> str:
    """Each task's clock (:func:`task_clock`; its saved ``clock``, where the
    result was written with one)."""
    parts = []
    for name, d in data.items():
        clock = d.get("clock") or task_clock(d["config"])
        parts.append(f"{name} {clock['ticks']} x {clock['steps_per_tick']}")
    return (
        " Runs are T ticks x steps per tick (the LODE decides every 5% of T, at "
        "least every 2 ticks): " + ", ".join(parts) + "."
    )


def main(argv: list[str] | None = None) -> int:
    from optax_lode.demo import default_config, run_demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=TASKS,
                        help="task(s) to run (default: all)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--fit-steps", type=int, default=3000)
    parser.add_argument("--render", action="store_true", help=RENDER_HELP)
    args = parser.parse_args(argv)
    if args.render:
        return render(NAME)
    tasks = args.task or list(TASKS)
    ran: dict[str, dict] = {}
    for task in tasks:
        t0 = time.perf_counter()
        cfg = default_config(task, seeds=args.seeds, fit_steps=args.fit_steps)
        run_demo(cfg, CACHE / task, compile_cache=True, cache_dir=SHARED_CACHE)
        print(f"{task}: {time.perf_counter() - t0:.0f} s")
        ran[task] = environment()
        done = _summaries(ran)
        write(done, pending=[t for t in TASKS if t not in done])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
