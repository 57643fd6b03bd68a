"""Shared plumbing of the benchmark scripts: where results go and what they record.

Every benchmark writes ``benchmarks/results/<name>.json`` (the numbers plus the
machine, library versions, seeds and wall time) and ``<name>.md`` (a short table
generated from the same numbers). Nothing in ``results/`` is written by hand.

A benchmark module defines ``markdown(payload) -> (title, table, notes)``, a
function of its saved JSON alone, and writes with
``write_result(name, data, render=markdown)``: the JSON records the renderer
(``"renderer": "benchmarks.<module>:markdown"``) and the Markdown is rendered
from the JSON as read back, so ``python -m benchmarks.render_docs --check``
can render every result again and find a Markdown edited by hand.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optax_lode._files import atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: What a benchmark's ``markdown`` returns: ``(title, table, notes)``.
Renderer = Callable[[dict[str, Any]], tuple[str, str, str]]

_PACKAGES = ("optax-lode", "jax", "jaxlib", "optax", "equinox", "diffrax", "flax")


# The vector extensions that decide which kernels XLA emits on a CPU: two hosts
# that differ in them round differently, which a convnet's training amplifies.
_ISA_PREFIXES = ("sse4", "avx", "fma", "amx")


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name and vector extensions (Linux ``/proc/cpuinfo``).

    Both are ``None`` where ``/proc/cpuinfo`` cannot be read.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"cpu_model": None, "cpu_isa": None}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    return {
        "cpu_model": fields.get("model name"),
        "cpu_isa": sorted(f for f in flags if f.startswith(_ISA_PREFIXES)),
    }


def environment() -> dict[str, Any]:
    """Machine and library versions, recorded with every result."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    import jax

    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **cpu_info(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "versions": versions,
    }


def cpu_label(env: dict[str, Any]) -> str:
    """``"AMD EPYC (no AVX-512)"``: cloud CPUs share a model name across
    generations, and results that round differently (convnets, some
    baselines) differ with the vector extensions."""
    cpu = env.get("cpu_model") or env.get("processor") or "unknown CPU"
    if "cpu_isa" in env:
        cpu += f" ({_avx512(env)})"
    return cpu


def _avx512(env: dict[str, Any]) -> str:
    return f"{'with' if 'avx512f' in env['cpu_isa'] else 'no'} AVX-512"


def per_task(data: dict[str, Any] | None) -> dict[str, dict]:
    """A result's ``tasks`` (task -> its entry). Single-task results written
    before results kept several tasks (``task`` at the top) become one entry,
    with the file's environment: that of the invocation that wrote it."""
    if not data:
        return {}
    if "tasks" in data:
        return dict(data["tasks"])
    if "task" not in data:
        return {}
    entry = {k: v for k, v in data.items() if k not in ("name", "headline", "task")}
    return {data["task"]: entry}


def ablation_entry(
    key: str,
    data: dict,
    *,
    seeds: Sequence[int],
    seconds: float,
    lode_seconds: float,
    model_digest: str | None = None,
) -> dict[str, Any]:
    """One task's entry of an ablation result (Tables 3, 4, the fit budget):
    its rows under ``key``, this invocation's wall time (cached runs cost only
    their reading), the LODE runs' own training time, the environment and,
    where every row used one model, that model's content digest."""
    entry = {
        "seeds": list(seeds),
        key: data,
        "seconds": seconds,
        "lode_training_seconds": lode_seconds,
        "environment": environment(),
    }
    if model_digest is not None:
        entry["model_digest"] = model_digest
    return entry


def reference_row(entries: dict[str, dict]) -> dict | None:
    """An ablation's reference row (Tables 3, 4, the fit budget): the one
    compared with no other (``p_value`` None); None if it has none."""
    return next((e for e in entries.values() if e.get("p_value", 0) is None), None)


def reference_model_digest(name: str, entry: dict[str, Any]) -> str | None:
    """The content digest (:func:`optax_lode.model.model_digest`) of the demo's
    model as a task's entry of result ``name`` records it: the model of Table
    1's LODE rows, Table A1's reconstructions, Table 2's LODE row, Table 3's
    rows, Table 4's reference row and the fit budget's reference model of fit
    seed 0. None where the entry predates digests (or has no such model)."""
    if name == "table2_sharpness":
        lode = entry.get("methods", {}).get("LODE", {})
        return lode.get("setting", {}).get("model_digest")
    if name == "table4_data_ablation":
        return (reference_row(entry.get("variants", {})) or {}).get("model_digest")
    if name == "fit_budget":
        fits = reference_row(entry.get("fits", {})) or {"models": []}
        demo = [m for m in fits["models"] if m["fit_seed"] == 0]
        return demo[0].get("model_digest") if demo else None
    return entry.get("model_digest")


def model_digest_mismatches(results: dict[str, dict[str, dict]]) -> list[str]:
    """Where a result's model of a task is not Table 1's: ``results`` maps a
    result's name to its tasks (``per_task``); one line per disagreement
    between two recorded digests."""
    table1 = results.get("table1_schedule_quality", {})
    out = []
    for name, tasks in results.items():
        for task, entry in tasks.items():
            ours = reference_model_digest(name, entry)
            theirs = reference_model_digest(
                "table1_schedule_quality", table1.get(task, {})
            )
            if ours is not None and theirs is not None and ours != theirs:
                out.append(f"{name} {task}: model {ours[:12]}, Table 1's {theirs[:12]}")
    return out


def versus_reference(
    task: str, entries: dict[str, dict]
) -> list[tuple[str, dict, str, str | None, float | None]]:
    """Per row of an ablation (the reference: ``p_value`` None): its label,
    entry, ``mean ± std``, Welch's ``diff [CI], p (Holm p)`` against the
    reference (None for it), in accuracy points (the NQM: loss units), and
    the Holm-adjusted p-value (:func:`holm_p_values`; None for it)."""
    from optax_lode.evaluation import summarize, welch_test

    scale = 100.0 if task != "nqm" else 1.0
    ref = reference_row(entries)["test_metrics"]
    adjusted = holm_p_values(entries)
    out = []
    for label, d in entries.items():
        cell = None
        if d["p_value"] is not None:
            w = welch_test(d["test_metrics"], ref)
            cell = (
                f"{w.diff * scale:+.2f} [{w.ci_low * scale:+.2f}, "
                f"{w.ci_high * scale:+.2f}], p = {format_p(w.p_value)} "
                f"(Holm {format_p(adjusted[label])})"
            )
        summary = summarize(d["test_metrics"])
        stats = summary.format(2, scale)
        if summary.dropped:  # Welch's test above drops them: say how many
            stats += f" (+{summary.dropped} diverged)"
        out.append((label, d, stats, cell, adjusted.get(label)))
    return out


def holm_p_values(entries: dict[str, dict]) -> dict[str, float]:
    """Holm-adjusted p-values of an ablation's rows, by label: the family is
    every row tested against the reference (its ``p_value`` not None), so a
    table of many settings does not find differences by chance alone."""
    from optax_lode.evaluation import holm

    tested = [k for k, e in entries.items() if e["p_value"] is not None]
    adjusted = holm([entries[k]["p_value"] for k in tested]).tolist()
    return dict(zip(tested, adjusted, strict=True))


def write_ablation(
    name: str,
    tasks: dict[str, dict],
    key: str,
    *,
    headline: str,
    verdicts: tuple[str, str],
    render: Renderer,
    env: dict[str, Any] | None = None,
) -> None:
    """Writes an ablation result (Tables 3, 4, the fit budget) of every task
    in ``tasks``: the headline gives each task's verdict (``verdicts``: some
    row differs significantly from the reference, or none), the Markdown is
    ``render`` of the saved JSON (see :func:`ablation_markdown`; ``env``: as
    for :func:`write_result`)."""
    heads = [
        f"{t}: " + (verdicts[0] if any_significant(e[key]) else verdicts[1])
        for t, e in tasks.items()
    ]
    write_result(
        name,
        {"headline": f"{headline}; " + "; ".join(heads), "tasks": tasks},
        render=render,
        env=env,
    )


def ablation_markdown(
    payload: dict[str, Any],
    *,
    table: Callable[[str, dict], str],
    title: str,
    notes: str,
) -> tuple[str, str, str]:
    """An ablation result's ``(title, table, notes)`` from its saved JSON:
    each task's ``table(task, entry)``; the notes end with how significance
    is judged, each task's seeds and :func:`rows_measured`."""
    tasks = per_task(payload)
    seeds = "; ".join(f"{t} {e['seeds']}" for t, e in tasks.items())
    return (
        title,
        "\n".join(table(t, e) for t, e in tasks.items()),
        f"{notes} A row differs significantly when its Welch p-value, "
        "Holm-adjusted over the task's rows (each task is one family of "
        "comparisons with its reference), is below "
        f"{ALPHA:g}; the raw p-value is shown beside it. Seeds: {seeds}. "
        + rows_measured(tasks),
    )


RENDER_HELP = (
    "rewrite the Markdown of the saved results (every task's) after a change "
    "in how they are shown, measuring nothing"
)


def task_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a benchmark that studies one task's demo model
    (Tables 2-4, ``fit_budget``): ``--task``, ``--seeds`` (evaluation seeds)
    and ``--render``; ``doc``'s first line describes it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--task", default="mnist1d-mlp")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--render", action="store_true", help=RENDER_HELP)
    return parser


def start_task(args: argparse.Namespace, cache: Path) -> tuple[Any, Any, float]:
    """``(the demo's config of args.task with args.seeds, its task, the start
    time)``, with JAX's compilation cache in ``cache/xla``."""
    from optax_lode.demo import default_config
    from optax_lode.demo._pipeline import _enable_compile_cache
    from optax_lode.tasks import get_task

    _enable_compile_cache(cache / "xla")
    t_start = time.perf_counter()
    cfg = default_config(args.task, seeds=args.seeds)
    return cfg, get_task(cfg.task), t_start


def render(name: str, *, results_dir: Path | None = None) -> int:
    """Rewrites ``<name>.md`` from its saved JSON by the renderer the JSON
    names (a benchmark's ``--render``; ``python -m benchmarks.render_docs``
    does the same for every result); 1 if there is no JSON, or it names no
    renderer."""
    out = Path(results_dir) if results_dir is not None else RESULTS_DIR
    data = read_result(name, results_dir=out)
    if data is None:
        print(f"no saved {name}.json to render: run the benchmark first")
        return 1
    md = render_markdown(data)
    if md is None:
        print(f"{name}.json names no renderer: run the benchmark again")
        return 1
    atomic_write_text(out / f"{name}.md", md)
    return 0


def any_significant(entries: dict[str, dict]) -> bool:
    """Whether any row differs significantly from the reference, by its
    Holm-adjusted Welch p-value."""
    return any(significant(p) for p in holm_p_values(entries).values())


def rows_measured(tasks: dict[str, dict], *, model_key: bool = False) -> str:
    """When and where each task's rows were measured (with ``model_key``, with
    which model): the footer dates only the latest invocation, and a result's
    tasks are kept across invocations, possibly on other machines."""
    parts = []
    for task, d in tasks.items():
        env = d.get("environment") or {}
        if not env:
            parts.append(f"{task}: by an earlier version (date, CPU, model not kept)")
            continue
        cpu = cpu_label(env) if env.get("cpu_model") else "CPU not recorded"
        model = f", model {d['model_key']}" if model_key else ""
        parts.append(f"{task}: {str(env.get('date'))[:10]}, {cpu}{model}")
    return "Rows measured: " + "; ".join(parts) + "."


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats get 4 significant digits."""

    def fmt(x: Any) -> str:
        if isinstance(x, float):
            return f"{x:.4g}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def renderer_name(render: Renderer) -> str:
    """``"benchmarks.overhead:markdown"``: where :func:`load_renderer` finds
    ``render`` again (a script run as ``python -m benchmarks.x`` is module
    ``__main__``, so its importable name is read from its spec)."""
    module = render.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:
            raise ValueError(f"{render.__qualname__} of a script run by path")
        module = spec.name
    return f"{module}:{render.__qualname__}"


def load_renderer(ref: str) -> Renderer:
    """The function that :func:`renderer_name` named ``ref``."""
    module, _, attr = ref.partition(":")
    fn: Any = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    return fn


def document(
    title: str,
    table: str,
    notes: str,
    env: dict[str, Any],
    *,
    rows_elsewhere: bool = False,
) -> str:
    """A result's Markdown: its title, table, the footer naming the machine
    of ``env`` and its notes. With ``rows_elsewhere`` (some rows were kept
    from earlier invocations) the footer names only the latest invocation's
    machine and says so."""
    cpu = env["processor"]
    if env.get("cpu_model"):
        cpu += f", {env['cpu_model']}, {_avx512(env)}"
    machine = (
        f"{env['cpu_count']} CPU cores ({cpu}), "
        f"jax {env['versions']['jax']} on {env['jax_backend']}, {env['date']}"
    )
    said = (
        f"Latest rows measured on {machine}; the others earlier (the notes' "
        '"Rows measured" say when and where)'
        if rows_elsewhere
        else f"Measured on {machine}"
    )
    md = f"## {title}\n\n{table}\n_{said}._\n"
    if notes:
        md += f"\n{notes.strip()}\n"
    return md


def render_markdown(payload: dict[str, Any]) -> str | None:
    """A saved result's Markdown, from its JSON ``payload`` alone by the
    renderer it names (None if it names none: it cannot be checked)."""
    ref = payload.get("renderer")
    if ref is None:
        return None
    title, table, notes = load_renderer(ref)(payload)
    env = payload["environment"]
    return document(
        title, table, notes, env, rows_elsewhere=_rows_elsewhere(payload, env)
    )


def _rows_elsewhere(payload: dict[str, Any], env: dict[str, Any]) -> bool:
    """Whether a result's per-task rows (``tasks``, each with the
    ``environment`` that measured it) were not all measured by the
    invocation ``env`` names."""
    tasks = payload.get("tasks")
    if not isinstance(tasks, dict):
        return False

    def invocation(e: dict[str, Any]) -> tuple:
        # cpu_isa is None where the CPU could not be read (cpu_info).
        return e.get("date"), e.get("cpu_model"), tuple(e.get("cpu_isa") or ())

    envs = [d.get("environment") for d in tasks.values() if isinstance(d, dict)]
    return any(not e or invocation(e) != invocation(env) for e in envs)


def write_result(
    name: str,
    data: dict[str, Any],
    *,
    render: Renderer,
    results_dir: Path | None = None,
    env: dict[str, Any] | None = None,
) -> Path:
    """Writes ``<name>.json`` and ``<name>.md``; returns the JSON path.

    ``render`` is the benchmark's module-level ``markdown(payload) -> (title,
    table, notes)``: the JSON records it as ``"renderer"``, and the Markdown
    is ``render`` of the JSON as read back from the file, so it shows what
    the JSON holds and nothing else, and ``python -m benchmarks.render_docs
    --check`` can verify that it still does.

    ``env`` is the environment recorded and named in the footer (default:
    this process's :func:`environment`); a re-render of saved results passes
    the one that measured them."""
    out = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    env = environment() if env is None else env
    payload = {"name": name, "renderer": renderer_name(render), "environment": env}
    payload.update(data)
    json_path = out / f"{name}.json"
    # The JSON first: if rendering fails, the measurements are kept.
    atomic_write_text(json_path, json.dumps(payload, indent=2, default=float) + "\n")
    md = render_markdown(json.loads(json_path.read_text()))
    atomic_write_text(out / f"{name}.md", md)
    print(md)
    return json_path


def read_result(name: str, *, results_dir: Path | None = None) -> dict | None:
    """The ``<name>.json`` that :func:`write_result` wrote, or None if absent."""
    path = (Path(results_dir) if results_dir is not None else RESULTS_DIR) / (
        f"{name}.json"
    )
    return json.loads(path.read_text()) if path.exists() else None


def _busy_cpu_seconds(stat: str | None = None) -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None.

    From the first line of ``/proc/stat``: user, nice, system, irq, softirq
    and steal (time the hypervisor gave another guest: a noisy neighbour
    slows a benchmark as another process does), not idle or iowait.
    """
    try:
        if stat is None:
            with open("/proc/stat") as f:
                stat = f.readline()
        fields = stat.split()
        if fields[0] != "cpu":
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """The CPU other processes took while this one was timed, in cores.

    A load average says little about a timed interval (it is a minute's
    exponential average, and counts this process); this compares the
    machine's busy CPU time over the interval with this process's own (all
    its threads). ``/proc/stat`` counts in clock ticks (10 ms) on each core,
    so a reading is off by up to about ``0.02 / seconds`` cores: an interval
    shorter than :attr:`MIN_SECONDS` (where that is 0.1 core) reads None, as
    does every reading off Linux.

    Example:
        >>> meter = OtherLoad()
        >>> meter.start()
        >>> cores = meter.stop()  # None off Linux
    """

    MIN_SECONDS = 0.2

    def __init__(self) -> None:
        self._t = self._busy = self._own = None

    def start(self) -> None:
        self._t, self._own = time.perf_counter(), time.process_time()
        self._busy = _busy_cpu_seconds()

    def stop(self) -> float | None:
        """Other processes' mean number of busy cores since :meth:`start`."""
        busy = _busy_cpu_seconds()
        wall = time.perf_counter() - self._t
        own = time.process_time() - self._own
        if busy is None or self._busy is None or wall < self.MIN_SECONDS:
            return None
        return max(0.0, (busy - self._busy - own) / wall)


def other_load_note(
    cores: Sequence[float | None],
    what: str = "timed repetitions",
    *,
    cpus: int,
) -> str:
    """A sentence on what other processes took during the timed repetitions
    (``what``: what one reading covers, where it is not one repetition) of
    the machine's ``cpus`` cores (a renderer passes its saved environment's
    ``cpu_count``, so the Markdown does not depend on where it is rendered)."""
    seen = [c for c in cores if c is not None]
    short = f"under {OtherLoad.MIN_SECONDS:g} s, too short for /proc/stat's 10 ms ticks"
    if not seen:
        return f"Other processes' CPU was not measured (no /proc/stat, or {short}). "
    busy = sum(c > 0.1 for c in seen)
    unmeasured = len(cores) - len(seen)
    return (
        f"Other processes (and the hypervisor's steal) took a median of "
        f"{statistics.median(seen):.2f} and at most {max(seen):.2f} of the "
        f"{cpus} cores during the {len(seen)} {what} "
        f"(/proc/stat against this process's CPU time); {busy} of them above "
        "0.1 core, whose times may be inflated. "
        + (
            f"{unmeasured} more {'was' if unmeasured == 1 else 'were'} not "
            f"measured ({short}). "
            if unmeasured
            else ""
        )
    )


def rotated(items: Sequence[Any], i: int) -> list[Any]:
    """``items`` started at position ``i`` (mod their number): repetition
    ``i``'s order, so that no variant always runs first (or after a given
    one) and carries a position effect into the paired differences."""
    k = i % len(items)
    return [*items[k:], *items[:k]]


def paired_overhead(
    num: Sequence[float], den: Sequence[float], target: float | None = None
) -> dict[str, Any]:
    """The overhead of ``num`` over ``den`` in percent, paired by repetition.

    ``num[i]`` and ``den[i]`` are the times of repetition ``i`` (adjacent in
    time, so a drift in machine load hits both): the result is the median of
    the per-repetition ratios, its distribution-free CI
    (:func:`median_interval`) and, against an upper-bound ``target`` (in
    percent), the :func:`verdict` of that CI.
    """
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired times need equal lengths, got {a.shape}, {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(b > 0)):
        raise ValueError(
            f"paired times must be finite, the reference's positive; got {a.tolist()} "
            f"over {b.tolist()}"
        )
    pct = 100.0 * (a / b - 1.0)
    lo, hi, coverage = median_interval(pct)
    out = {
        "pct": float(np.median(pct)),
        "interval": [lo, hi],
        "coverage": coverage,
        "per_repetition": pct.tolist(),
    }
    if target is not None:
        out["verdict"] = verdict(lo, hi, target)
    return out


def median_time(
    fn: Callable[[], Any],
    *,
    repeats: int = 20,
    others: list[float | None] | None = None,
) -> float:
    """Median wall time of ``fn()`` in seconds; ``fn`` must block on its result.

    ``others``: if given, each call's :class:`OtherLoad` reading is appended
    to it (for calls far longer than ``/proc/stat``'s 10 ms tick).
    """
    times = []
    meter = OtherLoad()
    for _ in range(repeats):
        if others is not None:
            meter.start()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if others is not None:
            others.append(meter.stop())
    return statistics.median(times)


def median_interval(
    values: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """Distribution-free confidence interval of the median of ``values``.

    The order statistics ``x_(j) .. x_(n + 1 - j)`` contain the population
    median with probability ``1 - 2 P(B < j)``, ``B ~ Binomial(n, 1/2)``, for
    any continuous distribution; ``j`` is the largest whose coverage is at
    least ``level``. Few values cannot reach every level (5 reach 93.75%, with
    the minimum and maximum): then the interval is ``min .. max`` and the
    coverage says what it is.

    Returns:
        ``(low, high, coverage)``.
    """
    x = sorted(float(v) for v in values)
    n = len(x)
    if n == 0 or not all(math.isfinite(v) for v in x):
        raise ValueError(f"median_interval needs finite values, got {values!r}")

    def coverage(j: int) -> float:
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(j)) / 2.0**n

    j = 1
    while j + 1 <= (n + 1) // 2 and coverage(j + 1) >= level:
        j += 1
    return x[j - 1], x[n - j], coverage(j)


#: Significance level of the benchmarks' Welch tests (an ablation's rows vs
#: its reference: of their Holm-adjusted p-values).
ALPHA = 0.05


def significant(p_value: float | None) -> bool:
    """Whether a Welch p-value is below :data:`ALPHA` (``None``: no test)."""
    return p_value is not None and p_value < ALPHA


def format_p(p: float) -> str:
    """A p-value to two significant digits, or three where two would print
    :data:`ALPHA` itself (0.0498 and 0.0501 both read "0.05" beside
    alpha = 0.05: which side of it they fall on is the point)."""
    text = f"{p:.2g}"
    for digits in range(3, 18):  # "0.05" at .3g too for 0.04996; 17: every double
        if float(text) != ALPHA or p == ALPHA:
            break
        text = f"{p:.{digits}g}"
    return text


def training_seconds(records: Sequence[dict[str, Any]]) -> float:
    """Seconds the runs took when they were trained (compile + ticks).

    Read from the run records, which keep them, so the sum is the same
    whether this invocation trained the runs or read them from the cache
    (its own wall time is then only the cache reads).
    """
    return float(sum(r["run_seconds"] + r.get("compile_seconds", 0.0) for r in records))


def verdict(lo: float, hi: float, target: float) -> str:
    """Where a confidence interval ``lo .. hi`` lies against an upper bound.

    ``"met"``: all of it at or below ``target``; ``"missed"``: all of it above;
    ``"unresolved"``: it contains ``target``.
    """
    if any(np.isnan(x) for x in (lo, hi, target)):
        raise ValueError(f"verdict needs numbers, got {lo} .. {hi} against {target}")
    if lo > hi:
        raise ValueError(f"verdict needs lo <= hi, got {lo} .. {hi}")
    if lo > target:
        return "missed"
    if hi <= target:
        return "met"
    return "unresolved"
