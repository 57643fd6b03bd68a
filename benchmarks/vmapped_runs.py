"""Several LODE-scheduled runs as one vmapped program: the cost of ``axis_name``.

Under ``jax.vmap`` over runs, the decision's ``lax.cond`` gets a per-run
predicate and JAX lowers it to a ``select`` that runs the decision at every
step. ``lode_schedule(..., axis_name="runs")`` inside
``jax.vmap(..., axis_name="runs")`` combines the runs' predicates into one, so
the runs decide together behind one ``cond``. This measures, in one process,
whole runs (one ``lax.scan`` each, every decision included) of ``R`` runs of
the small MLP:

- the R runs vmapped with an optax cosine schedule (the baseline);
- vmapped with ``lode_schedule(axis_name=...)``;
- vmapped with ``lode_schedule`` without it (the ``select``);
- the R LODE runs one after another (no vmap), and the R cosine runs so.

Repetitions are interleaved (the order rotates). It also checks that each
vmapped run's rates equal the rates of the same run alone.

Run: ``python -m benchmarks.vmapped_runs`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._common import (
    OtherLoad,
    markdown_table,
    other_load_note,
    rotated,
    write_result,
)
from benchmarks.overhead import _mlp, _train_step
from optax_lode import LatentODE, lode_schedule

NAME = "vmapped_runs"
AXIS = "runs"
TOL = 1e3  # every member accepted: see main()


def _row(tree, r: int):
    """Run ``r`` of a tree stacked over runs."""
    return jax.tree.map(lambda a: a[r], tree)


def _stack(trees):
    """Trees of single runs stacked over runs (axis 0)."""
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _scan(step, steps):
    """A whole run, unjitted (the caller jits or vmaps it): final parameters
    and state, and each step's loss and learning rate."""

    def run(p, s, x, y):
        def body(carry, _):
            p, s, loss = step(*carry, x, y)
            lr = optax.tree.get(s, "learning_rate")
            lr = jnp.asarray(jnp.nan if lr is None else lr, jnp.float32)
            return (p, s), (loss, lr)

        (p, s), (loss, lr) = jax.lax.scan(body, (p, s), length=steps)
        return p, s, loss, lr

    return run


def ratios(times: dict[str, list[float]], runs: int) -> dict[str, Any]:
    """The timing ratios the result reports, each the median over repetitions
    of one repetition's ratio (paired: a repetition slowed by the machine
    slows both of its programs): each program's against the ``runs`` cosine
    runs vmapped (``vs_cosine``) and the LODE runs one by one
    (``vs_one_by_one``), the table's columns; and the headline's, under the
    result's keys. ``times`` maps a program's label to its seconds, one per
    repetition, in repetition order."""
    vmapped = f"{runs} runs vmapped"

    def paired(label: str, reference: str) -> float:
        return statistics.median(
            a / b for a, b in zip(times[label], times[reference], strict=True)
        )

    base = f"cosine, {vmapped}"
    lode_alone = f"lode, {runs} runs one by one"
    axis = f"lode, axis_name, {vmapped}"
    return {
        "vs_cosine": {label: paired(label, base) for label in times},
        "vs_one_by_one": {label: paired(label, lode_alone) for label in times},
        "ratio_axis_name_vs_cosine": paired(axis, base),
        "ratio_select_vs_cosine": paired(f"lode, no axis_name, {vmapped}", base),
        "ratio_out_of_step_vs_cosine": paired(f"{axis}, out of step", base),
        "ratio_vs_one_by_one": paired(axis, lode_alone),
        "cosine_ratio_vs_one_by_one": paired(base, f"cosine, {runs} runs one by one"),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    t_start = time.perf_counter()

    T, k, width, runs = (60, 2, 100, 2) if args.quick else (600, 2, 100, args.runs)
    repeats = 2 if args.quick else args.repeats
    steps = T * k
    model = LatentODE(T=T, key=jax.random.key(0))  # paper sizes; mu = 5% of T
    mu = model.mu
    params = jax.vmap(lambda key: _mlp(width, key))(
        jax.random.split(jax.random.key(3), runs)
    )
    x = jax.random.normal(jax.random.key(1), (128, 40))
    y = jax.random.randint(jax.random.key(2), (128,), 0, 10)

    def lode(axis_name=None):
        # At the default tol an untrained model's predictions match no live
        # loss: every decision would hold the warm start, the same path for
        # every run, and the rates' check below could not fail.
        sched = lode_schedule(
            model, total_steps=steps, steps_per_tick=k, tol=TOL, axis_name=axis_name
        )
        return optax.chain(optax.adamw(1.0), sched)

    cosine = optax.adamw(optax.cosine_decay_schedule(1e-2, steps))
    txs = {
        "cosine": (cosine, False),
        "lode, axis_name": (lode(AXIS), True),
        "lode, no axis_name": (lode(), True),
    }

    def stacked_init(tx, p):
        return jax.vmap(tx.init)(p)

    # Runs out of step: run r starts r * mu / runs ticks into its run, so no
    # two runs decide at the same step.
    stagger = [r * (mu * k // runs) for r in range(runs)]
    # A run alone: the schedule without axis_name (its state is the same).
    tx_alone = txs["lode, no axis_name"][0]
    one_step = jax.jit(_train_step(tx_alone, True))
    late_p, late_s = [], []
    for r, skip in enumerate(stagger):
        p_r = _row(params, r)
        s_r = tx_alone.init(p_r)
        for _ in range(skip):
            p_r, s_r, _ = one_step(p_r, s_r, x, y)
        late_p.append(p_r)
        late_s.append(s_r)
    late_p, late_s = _stack(late_p), _stack(late_s)

    # label -> (compiled program, () -> (params, state) of a call); the
    # "one by one" programs take one run, the others all.
    programs, compile_s = {}, {}
    for name, (tx, extra) in txs.items():
        run = _scan(_train_step(tx, extra), steps)
        vrun = jax.jit(jax.vmap(run, in_axes=(0, 0, None, None), axis_name=AXIS))
        label = f"{name}, {runs} runs vmapped"
        t0 = time.perf_counter()
        compiled = vrun.lower(params, stacked_init(tx, params), x, y).compile()
        compile_s[label] = time.perf_counter() - t0
        programs[label] = (compiled, lambda tx=tx: (params, stacked_init(tx, params)))
    programs[f"lode, axis_name, {runs} runs vmapped, out of step"] = (
        programs[f"lode, axis_name, {runs} runs vmapped"][0],
        lambda: (late_p, late_s),
    )
    for name in ("cosine", "lode, no axis_name"):
        tx, extra = txs[name]
        alone = jax.jit(_scan(_train_step(tx, extra), steps))
        label = f"{name.split(',')[0]}, {runs} runs one by one"
        t0 = time.perf_counter()
        p0 = _row(params, 0)
        compiled = alone.lower(p0, tx.init(p0), x, y).compile()
        compile_s[label] = time.perf_counter() - t0
        programs[label] = (compiled, lambda tx=tx: (params, stacked_init(tx, params)))

    def call(label):
        fn, inputs = programs[label]
        p, s = inputs()
        if "one by one" not in label:
            return jax.block_until_ready(fn(p, s, x, y))
        outs = [fn(_row(p, r), _row(s, r), x, y) for r in range(runs)]
        return jax.block_until_ready(_stack(outs))

    outputs = {label: call(label) for label in programs}
    lr_vmapped = np.asarray(outputs[f"lode, axis_name, {runs} runs vmapped"][3])
    lr_alone = np.asarray(outputs[f"lode, {runs} runs one by one"][3])
    lr_select = np.asarray(outputs[f"lode, no axis_name, {runs} runs vmapped"][3])
    rel = lambda a: float(np.max(np.abs(a - lr_alone) / lr_alone))  # noqa: E731
    between = float(np.max(np.abs(lr_alone - lr_alone[:1]) / lr_alone[:1]))
    lode_state = outputs[f"lode, axis_name, {runs} runs vmapped"][1][1]
    decisions = np.asarray(lode_state.decisions)
    fallbacks = np.asarray(lode_state.fallbacks)

    labels = list(programs)
    times = {label: [] for label in labels}
    others, meter = [], OtherLoad()
    for rep in range(repeats):
        meter.start()
        for label in rotated(labels, rep):
            t0 = time.perf_counter()
            call(label)
            times[label].append(time.perf_counter() - t0)
        others.append(meter.stop())
    med = {label: statistics.median(v) for label, v in times.items()}
    ratio = ratios(times, runs)
    ratio_axis = ratio["ratio_axis_name_vs_cosine"]
    ratio_select = ratio["ratio_select_vs_cosine"]
    ratio_late = ratio["ratio_out_of_step_vs_cosine"]
    vs_alone = ratio["ratio_vs_one_by_one"]
    cos_vs_alone = ratio["cosine_ratio_vs_one_by_one"]
    headline = (
        f"{runs} LODE runs vmapped with axis_name: {ratio_axis:.2f}x the time of "
        f"{runs} vmapped cosine runs ({ratio_select:.1f}x without axis_name, "
        f"the select; {ratio_late:.2f}x with runs out of step); "
        f"{vs_alone:.2f}x the time of the {runs} LODE runs one by one (cosine: "
        f"{cos_vs_alone:.2f}x); each run's rates are those it gets alone to "
        f"{rel(lr_vmapped):.1e} (relative; without axis_name "
        f"{rel(lr_select):.1e}, the vmapped training's rounding; between runs "
        f"{between:.1e})"
    )
    write_result(
        NAME + ("_quick" if args.quick else ""),
        {
            "headline": headline,
            "config": {
                "T": T,
                "steps_per_tick": k,
                "steps": steps,
                "runs": runs,
                "width": width,
                "repeats": repeats,
                "mu": int(mu),
            },
            "tol": TOL,
            "stagger_steps": stagger,
            "decisions_per_run": int(decisions.min()),
            "fallbacks_per_run": fallbacks.tolist(),
            "seconds": times,
            "other_load_cores": others,
            "load_average": [load[0], os.getloadavg()[0]],  # before, after
            "median_seconds": med,
            "ratio_axis_name_vs_cosine": ratio_axis,
            "ratio_select_vs_cosine": ratio_select,
            "ratio_vs_one_by_one": vs_alone,
            "cosine_ratio_vs_one_by_one": cos_vs_alone,
            "max_rel_lr_difference_axis_name": rel(lr_vmapped),
            "max_rel_lr_difference_select": rel(lr_select),
            "max_rel_lr_difference_between_runs": between,
            "ratio_out_of_step_vs_cosine": ratio_late,
            "compile_seconds": compile_s,
            "wall_seconds": time.perf_counter() - t_start,
        },
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON (the
    table's paired ratios from its saved times, by :func:`ratios`)."""
    c, r = payload["config"], payload
    T, k, steps, runs, mu = c["T"], c["steps_per_tick"], c["steps"], c["runs"], c["mu"]
    med = r["median_seconds"]
    ratio = ratios(r["seconds"], runs)
    rows = [
        [
            label,
            med[label],
            1e3 * med[label] / steps,
            ratio["vs_cosine"][label],
            ratio["vs_one_by_one"][label],
        ]
        for label in r["seconds"]
    ]
    table = markdown_table(
        [
            f"{runs} runs of {steps} steps",
            "s (median)",
            "ms per step of all runs",
            "vs cosine vmapped (paired)",
            "vs LODE one by one (paired)",
        ],
        rows,
    )
    load_before, load_after = r["load_average"]
    cpus = r["environment"]["cpu_count"]
    notes = (
        f"Whole runs of T={T} ticks of {k} steps ({steps} steps, "
        f"{r['decisions_per_run']} decisions per run, "
        f"{max(r['fallbacks_per_run'])} of "
        "them falling back), each one lax.scan; the MLP "
        f"40-{c['width']}-{c['width']}-10, batch 128 of MNIST-1D-shaped inputs "
        "held on device; runs differ by their initial parameters. LODE: "
        "chain(adamw(1.0), lode_schedule(...)) with the defaults (n=30, mu = 5% "
        f"of T) but tol={r['tol']:g}, and an untrained LatentODE of the paper's "
        "sizes: at the default tol its predictions match no live loss, every "
        "decision would hold the warm start (the same path for every run) and "
        "the check of the rates could not fail; with it every member is "
        "accepted and each run's rates are its own. 'out of step': the same "
        f"vmapped program from states where run r is r x {mu * k // runs} steps "
        f"into its run ({mu} ticks of {k} steps between decisions), so no two "
        "runs decide at the same step and each run's decision is a batched "
        f"decision of all {runs}. {c['repeats']} repetitions interleaved, the "
        "order rotating; medians, and ratios as the median of each repetition's "
        "(paired). 'one by one': the same compiled run called for "
        "each run in turn (its time is the sum). Rates: the largest relative "
        "difference between a vmapped run's per-step rates and the same run's "
        f"alone, {r['max_rel_lr_difference_axis_name']:.1e} with axis_name and "
        f"{r['max_rel_lr_difference_select']:.1e} without, against the largest "
        f"between two runs alone, {r['max_rel_lr_difference_between_runs']:.1e}. "
        "Compile seconds: "
        + ", ".join(f"{label} {sec:.1f}" for label, sec in r["compile_seconds"].items())
        + ". "
        + other_load_note(r["other_load_cores"], cpus=cpus)
        + f"Load average {load_before:.1f} before and {load_after:.1f} "
        f"after ({cpus} cores)."
    )
    return "Vmapped LODE runs: axis_name", table, notes


if __name__ == "__main__":
    main()
