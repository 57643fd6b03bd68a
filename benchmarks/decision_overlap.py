"""Can the CPU run a decision beside the training step? (pipelining feasibility)

A decision reads only the window of past tick records, so a variant of
``lode_schedule`` could start it from records the step already holds and apply
its segment a tick later: if XLA ran it on the second core beside the step's
forward and backward pass, its cost would be hidden, and splitting one decision
over the steps of a tick would remove it from the amortised overhead. This
script measures whether that happens, in one jitted ``lax.scan`` per variant
(repetitions interleaved, medians):

- ``step``: a training step (MLP, softmax cross-entropy, grad, ``adamw``);
- ``work``: the extra work alone, in the same scan;
- ``step + work``: both, the work reading only the carry (the previous steps'
  losses), never this step's gradient, so nothing orders the two.

``hidden = 1 - (t[step + work] - t[step]) / t[work]``: 100% if the work runs
entirely beside the step, 0% if the two run one after the other. The work is
one whole decision (:func:`optax_lode.decide`, ``n = 30``, ``T = 600``) or a
tenth of one (the ensemble's rollout over a tenth of its ticks, the piece one
step of a 10-step tick would run).

Run: ``python -m benchmarks.decision_overlap`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import time

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
from benchmarks.overhead import _loss, _mlp, _window
from optax_lode import LatentODE
from optax_lode.decision import DecisionConfig, decide

NAME = "decision_overlap"
SEED = 0


def _works(model, cfg):
    """``name -> (init carry, work(carry, loss) -> carry)``. Each work's
    input changes every step (it depends on the carry), so XLA cannot hoist
    it out of the scan."""
    window0 = _window(cfg.mu)
    t_star = jnp.asarray(cfg.mu, jnp.int32)

    def decision(carry, loss):
        window, key = carry
        key, sub = jax.random.split(key)
        d = decide(model, window, t_star, sub, cfg)
        row = jnp.stack([loss, 1.0 / (1.0 + loss), d.segment[0]])
        return jnp.concatenate([window[1:], row[None]]), key

    latents0 = jax.random.normal(jax.random.key(3), (cfg.n, model.latent_size))
    tenth = max(1, cfg.grid_ticks // 10)

    def rollout_tenth(latents, loss):
        rows = model.rollout(latents, tenth)
        return latents + 1e-6 * (jnp.mean(rows[-1]) + loss)

    return {
        "one decision": ((window0, jax.random.key(SEED)), decision),
        f"a tenth of one ({tenth}-tick rollout)": (latents0, rollout_tenth),
    }


def hidden_pct(step, work, both) -> np.ndarray:
    """Per repetition, the share (%) of the work's time that running it beside
    the step saved: ``100 * (1 - (both - step) / work)``, from the times of
    the step alone, the work alone and the two in one scan."""
    step, work, both = (np.asarray(t, dtype=float) for t in (step, work, both))
    return 100.0 * (1.0 - (both - step) / work)


def measure(model, *, width, steps, repeats, batch=128):
    cfg = DecisionConfig.from_model(model, n=30)
    params = _mlp(width, jax.random.key(SEED))
    x = jax.random.normal(jax.random.key(1), (batch, 40))
    y = jax.random.randint(jax.random.key(2), (batch,), 0, 10)
    tx = optax.adamw(1e-3, weight_decay=1e-4)
    opt0 = tx.init(params)

    def scan(with_step, work):
        @jax.jit
        def run(p, s, c):
            def body(carry, _):
                p, s, c, prev, total = carry
                if with_step:
                    loss, g = jax.value_and_grad(_loss)(p, x, y)
                    u, s = tx.update(g, s, p)
                    p = optax.apply_updates(p, u)
                else:
                    loss = 0.5 + 1e-3 * prev
                if work is not None:
                    # Reads the previous step's loss: independent of this
                    # step's forward and backward pass.
                    c = work(c, prev)
                return (p, s, c, loss, total + loss), None

            init = (p, s, c, jnp.float32(1.0), jnp.float32(0.0))
            (p, s, c, _, total), _ = jax.lax.scan(body, init, length=steps)
            return p, s, c, total

        return run

    works = _works(model, cfg)
    runs = {"step": (scan(True, None), None)}
    for name, (c0, work) in works.items():
        runs[f"work: {name}"] = (scan(False, work), c0)
        runs[f"step + work: {name}"] = (scan(True, work), c0)
    for run, c0 in runs.values():
        jax.block_until_ready(run(params, opt0, c0))  # compile
    walls = {name: [] for name in runs}
    names = list(runs)
    others, meter = [], OtherLoad()
    for i in range(repeats):
        meter.start()  # the order rotates: "step" no longer always first
        for name in rotated(names, i):
            run, c0 = runs[name]
            t0 = time.perf_counter()
            jax.block_until_ready(run(params, opt0, c0))
            walls[name].append(time.perf_counter() - t0)
        others.append(meter.stop())
    us = {k: 1e6 * float(np.median(v)) / steps for k, v in walls.items()}
    step = np.array(walls["step"])
    rows = []
    for name in works:
        alone = np.array(walls[f"work: {name}"])
        both = np.array(walls[f"step + work: {name}"])
        # Paired by repetition (a repetition runs every variant once, close in
        # time), so a drift in machine load cancels out of each estimate.
        hidden = hidden_pct(step, alone, both)
        q1, q3 = np.percentile(hidden, [25, 75])
        rows.append(
            {
                "work": name,
                "step_us": us["step"],
                "work_alone_us": us[f"work: {name}"],
                "step_plus_work_us": us[f"step + work: {name}"],
                "added_us": 1e6 * float(np.median(both - step)) / steps,
                "hidden_pct": float(np.median(hidden)),
                "hidden_pct_iqr": [float(q1), float(q3)],
                "hidden_pct_per_repeat": hidden.tolist(),
            }
        )
    return {
        "width": width,
        "steps": steps,
        "repeats": repeats,
        "rows": rows,
        "other_load_cores": others,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    model = LatentODE(T=600, key=jax.random.key(SEED))  # paper sizes, mu = 30
    steps, repeats = (20, 2) if args.quick else (300, 15)
    results = [
        measure(model, width=w, steps=steps, repeats=repeats) for w in (100, 370)
    ]
    load_after = os.getloadavg()[0]
    small, large = ([row["hidden_pct"] for row in r["rows"]] for r in results)
    headline = (
        "Share of a decision's time hidden beside the training step (100%: "
        f"free, 0%: run after it), small / 10x MLP: a whole decision "
        f"{small[0]:.0f}% / {large[0]:.0f}%, a tenth of one "
        f"{small[1]:.0f}% / {large[1]:.0f}%."
    )
    write_result(
        NAME,
        {
            "quick": args.quick,
            "headline": headline,
            "results": results,
            "load_average": [load_before, load_after],
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "wall_time_s": time.perf_counter() - t_start,
        },
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    results = payload["results"]
    table = markdown_table(
        [
            "train step",
            "work",
            "step us",
            "work alone us",
            "step + work us",
            "added us (paired)",
            "hidden % (paired median)",
            "hidden %, interquartile range",
        ],
        [
            [
                f"MLP 40-{r['width']}-{r['width']}-10",
                row["work"],
                row["step_us"],
                row["work_alone_us"],
                row["step_plus_work_us"],
                row["added_us"],
                row["hidden_pct"],
                "{:.0f} .. {:.0f}".format(*row["hidden_pct_iqr"]),
            ]
            for r in results
            for row in r["rows"]
        ],
    )
    load_before, load_after = payload["load_average"]
    cpus, xla_flags = payload["environment"]["cpu_count"], payload.get("xla_flags")
    notes = (
        f"{results[0]['steps']} steps per scan, {results[0]['repeats']} "
        "interleaved repetitions, batch 128 "
        "of MNIST-1D-shaped inputs; an untrained LatentODE of the paper's "
        "sizes (T=600, n=30; a decision rolls out ticks 0 .. T + mu, farther "
        "only as far as its matching members' scores read). "
        "hidden = 1 - (step+work - step) / work, per repetition (a "
        "repetition runs every variant once, one after the other, in a "
        "rotating order, within a few seconds), then the median: the "
        "share of the work's time that running it beside the step saved. Below "
        "0%: running it beside the step cost more than running it after. Above "
        "100%: the step itself ran faster with the work beside it. "
        + other_load_note(
            [c for r in results for c in r["other_load_cores"]], cpus=cpus
        )
        + f"Load average {load_before:.1f} before and {load_after:.1f} after "
        f"({cpus} cores). " + ("" if xla_flags is None else f"XLA_FLAGS={xla_flags}.")
    )
    return "Decision beside the training step (pipelining feasibility)", table, notes


if __name__ == "__main__":
    main()
