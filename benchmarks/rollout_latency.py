"""Rollout latency: 30 latents x 1200 ticks, vmapped and jitted, on CPU.

This is the cost the scheduler pays at every decision (paper defaults: an
ensemble of n = 30 latents rolled out over 2T ticks, T = 600). Measured as the
median wall time of repeated calls of one compiled function, with
``LatentODE``'s defaults (fixed-step Euler, 4 ticks per step at T = 600: at least
150 steps per run; see ``benchmarks/solver_choice.py`` for why), and, for
comparison, the same model stepping once per tick. Also reported: encoding one
window of ``mu`` ticks, and the whole encode + ensemble + rollout. Target: the
rollout in at most 5 ms.

Run: ``python -m benchmarks.rollout_latency``.
"""

from __future__ import annotations

import argparse
import os

from benchmarks._common import (
    OtherLoad,
    markdown_table,
    median_time,
    other_load_note,
    write_result,
)

NAME = "rollout_latency"
TARGET_MS = 5.0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=600)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from optax_lode import LatentODE

    T, n, ticks = args.T, args.n, 2 * args.T
    model = LatentODE(T=T, key=jax.random.key(0))
    per_tick = model.with_solver(model.solver, ticks_per_step=1)
    z = jax.random.normal(jax.random.key(1), (n, model.latent_size))
    window = jax.random.normal(jax.random.key(2), (model.mu, 3))

    # What decide() runs: one batched scan over the ensemble (decode_many);
    # vmap of the single-latent decode is measured alongside for comparison.
    rollout = jax.jit(lambda zs: model.decode_many(zs, ticks))
    rollout_vmap = jax.jit(jax.vmap(lambda zi: model.decode(zi, ticks)))
    rollout_per_tick = jax.jit(lambda zs: per_tick.decode_many(zs, ticks))
    encode = jax.jit(lambda w: model.encode(w))

    @jax.jit
    def decision(window, key):
        z0 = model.encode(window)
        eps = jax.random.normal(key, (n, model.latent_size)).at[0].set(0.0)
        zs = z0 + 0.15 * model.latent_scale * eps
        return model.decode_many(zs, ticks)

    key = jax.random.key(3)
    fns = {
        "rollout_ms": lambda: rollout(z),
        "rollout_vmap_ms": lambda: rollout_vmap(z),
        "rollout_one_step_per_tick_ms": lambda: rollout_per_tick(z),
        "encode_ms": lambda: encode(window),
        "decision_ms": lambda: decision(window, key),
    }
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile
    # One reading over all the series: a call takes milliseconds, and encode's
    # whole series less than /proc/stat's 10 ms tick.
    meter = OtherLoad()
    meter.start()
    results = {
        name: 1e3
        * median_time(lambda fn=fn: jax.block_until_ready(fn()), repeats=args.repeats)
        for name, fn in fns.items()
    }
    others = [meter.stop()]
    assert bool(jnp.all(jnp.isfinite(rollout(z))))
    write_result(
        NAME,
        {
            "config": {
                "T": T,
                "n": n,
                "ticks": ticks,
                "mu": int(model.mu),
                "repeats": args.repeats,
                "solver": model.solver,
                "ticks_per_step": model.ticks_per_step,
                "latent_size": model.latent_size,
                "hidden_size": model.hidden_size,
                "depth": model.depth,
            },
            **results,
            "other_load_cores": others,
            "load_average": os.getloadavg()[0],  # at the end
            "target_ms": TARGET_MS,
            "meets_target": results["rollout_ms"] <= TARGET_MS,
        },
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    c, r = payload["config"], payload
    rows = [
        [
            f"rollout: {c['n']} latents x {c['ticks']} ticks (`decode_many`)",
            r["rollout_ms"],
        ],
        ["... the same as `vmap` of `decode`", r["rollout_vmap_ms"]],
        [
            "... the same model stepping once per tick",
            r["rollout_one_step_per_tick_ms"],
        ],
        [f"encode: one window of mu={c['mu']} ticks", r["encode_ms"]],
        ["encode + ensemble + rollout", r["decision_ms"]],
    ]
    cpus = r["environment"]["cpu_count"]
    notes = (
        f"Solver `{c['solver']}`, {c['ticks_per_step']} ticks per step "
        f"({c['T'] // c['ticks_per_step']} steps per run), latent "
        f"{c['latent_size']}, hidden {c['hidden_size']} x {c['depth']}. "
        f"Target: rollout at most {r['target_ms']:g} ms: "
        f"{'met' if r['meets_target'] else 'NOT met'} on this machine. "
        + other_load_note(
            r["other_load_cores"], "stretch of all the timed calls", cpus=cpus
        )
        + f"Load average {r['load_average']:.1f} at the end ({cpus} cores)."
    )
    return (
        "Rollout latency (jitted, vmapped, CPU)",
        markdown_table(["operation", "median (ms)"], rows),
        notes,
    )


if __name__ == "__main__":
    main()
