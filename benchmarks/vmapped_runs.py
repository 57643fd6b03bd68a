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

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._common import markdown_table, write_result
from benchmarks.overhead import _mlp, _train_step
from optax_lode import LatentODE, lode_schedule

NAME = "vmapped_runs"
AXIS = "runs"


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
    params = jax.vmap(lambda key: _mlp(width, key))(
        jax.random.split(jax.random.key(3), runs)
    )
    x = jax.random.normal(jax.random.key(1), (128, 40))
    y = jax.random.randint(jax.random.key(2), (128,), 0, 10)

    def lode(axis_name=None):
        sched = lode_schedule(
            model, total_steps=steps, steps_per_tick=k, axis_name=axis_name
        )
        return optax.chain(optax.adamw(1.0), sched)

    cosine = optax.adamw(optax.cosine_decay_schedule(1e-2, steps))
    txs = {
        "cosine": (cosine, False),
        "lode, axis_name": (lode(AXIS), True),
        "lode, no axis_name": (lode(), True),
    }
    programs = {}
    for name, (tx, extra) in txs.items():
        run = _scan(_train_step(tx, extra), steps)
        vrun = jax.jit(jax.vmap(run, in_axes=(0, 0, None, None), axis_name=AXIS))
        programs[f"{name}, {runs} runs vmapped"] = (vrun, tx, True)
    for name in ("cosine", "lode, no axis_name"):
        tx, extra = txs[name]
        alone = jax.jit(_scan(_train_step(tx, extra), steps))
        label = f"{name.split(',')[0]}, {runs} runs one by one"
        programs[label] = (alone, tx, False)

    def call(label):
        fn, tx, batched = programs[label]
        if batched:
            out = fn(params, jax.vmap(tx.init)(params), x, y)
        else:
            outs = []
            for r in range(runs):
                p = jax.tree.map(lambda a, r=r: a[r], params)
                outs.append(fn(p, tx.init(p), x, y))
            out = jax.tree.map(lambda *a: jnp.stack(a), *outs)
        return jax.block_until_ready(out)

    t0 = time.perf_counter()
    outputs = {label: call(label) for label in programs}  # compiles
    compile_s = time.perf_counter() - t0
    lr_vmapped = np.asarray(outputs[f"lode, axis_name, {runs} runs vmapped"][3])
    lr_alone = np.asarray(outputs[f"lode, {runs} runs one by one"][3])
    lr_select = np.asarray(outputs[f"lode, no axis_name, {runs} runs vmapped"][3])
    rel = lambda a: float(np.max(np.abs(a - lr_alone) / lr_alone))  # noqa: E731
    decisions = np.asarray(
        outputs[f"lode, axis_name, {runs} runs vmapped"][1][1].decisions
    )

    labels = list(programs)
    times = {label: [] for label in labels}
    for rep in range(repeats):
        for label in labels[rep % len(labels) :] + labels[: rep % len(labels)]:
            t0 = time.perf_counter()
            call(label)
            times[label].append(time.perf_counter() - t0)
    med = {label: statistics.median(v) for label, v in times.items()}
    base = med[f"cosine, {runs} runs vmapped"]
    lode_alone = med[f"lode, {runs} runs one by one"]
    rows = [
        [
            label,
            med[label],
            1e3 * med[label] / steps,
            med[label] / base,
            med[label] / lode_alone,
        ]
        for label in labels
    ]
    table = markdown_table(
        [
            f"{runs} runs of {steps} steps",
            "s (median)",
            "ms per step of all runs",
            "vs cosine vmapped",
            "vs LODE one by one",
        ],
        rows,
    )
    ratio_axis = med[f"lode, axis_name, {runs} runs vmapped"] / base
    ratio_select = med[f"lode, no axis_name, {runs} runs vmapped"] / base
    vs_alone = med[f"lode, axis_name, {runs} runs vmapped"] / lode_alone
    cos_vs_alone = base / med[f"cosine, {runs} runs one by one"]
    headline = (
        f"{runs} LODE runs vmapped with axis_name: {ratio_axis:.2f}x the time of "
        f"{runs} vmapped cosine runs ({ratio_select:.1f}x without axis_name, "
        f"the select); {vs_alone:.2f}x the time of the {runs} LODE runs one by "
        f"one (cosine: {cos_vs_alone:.2f}x); rates equal to each run's alone "
        f"(max relative difference {rel(lr_vmapped):.1e})"
    )
    notes = (
        f"Whole runs of T={T} ticks of {k} steps ({steps} steps, "
        f"{int(decisions.min())} decisions per run), each one lax.scan; the MLP "
        f"40-{width}-{width}-10, batch 128 of MNIST-1D-shaped inputs held on "
        "device; runs differ by their initial parameters. LODE: "
        "chain(adamw(1.0), lode_schedule(...)) with the defaults (n=30, mu = 5% "
        "of T) and an untrained LatentODE of the paper's sizes (its decisions "
        f"roll out the whole grid: the worst case). {repeats} repetitions "
        "interleaved, the order rotating; medians. 'one by one': the same "
        "jitted run called for each run in turn (its time is the sum). Rates: "
        "the largest relative difference between a vmapped run's per-step "
        f"rates and the same run's alone: {rel(lr_vmapped):.1e} with axis_name, "
        f"{rel(lr_select):.1e} without. Compile time of the five programs: "
        f"{compile_s:.1f} s. Load average {load[0]:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after (2 cores)."
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
            },
            "decisions_per_run": int(decisions.min()),
            "seconds": times,
            "median_seconds": med,
            "ratio_axis_name_vs_cosine": ratio_axis,
            "ratio_select_vs_cosine": ratio_select,
            "ratio_vs_one_by_one": vs_alone,
            "cosine_ratio_vs_one_by_one": cos_vs_alone,
            "max_rel_lr_difference_axis_name": rel(lr_vmapped),
            "max_rel_lr_difference_select": rel(lr_select),
            "compile_seconds": compile_s,
            "wall_seconds": time.perf_counter() - t_start,
        },
        table,
        title="Vmapped LODE runs: axis_name",
        notes=notes,
    )


if __name__ == "__main__":
    main()
