"""Solver choice for ``LatentODE``: speed of the scheduler's rollout and stability.

The scheduler rolls an ensemble of 30 latents over 2T ticks at every decision,
so the solve must cost milliseconds on CPU. Candidates:

- ``euler``, ``heun``, ``rk4``: one fixed step per tick in a ``lax.scan``
  (``LatentODE``'s own loop; step count bounded by construction);
- ``tsit5``: diffrax's adaptive Tsit5 with a PID controller and bounded
  ``max_steps`` (``throw=False``, failures -> NaN);
- for reference, diffrax's ``Euler``/``Heun`` with ``ConstantStepSize`` of one
  tick, to separate the method's cost from the loop's.

Measured on a model fitted (with the default solver) to a synthetic sweep:

1. latency: median time of a jitted, vmapped rollout of 30 latents x 1200 ticks
   (T = 600 grid, the fitted weights);
2. stability on trained weights: for ensembles around encoded held-out windows
   (sigma = 0.15 and a stress test at sigma = 1.0, in latent_scale units), the
   fraction of finite rollouts over 2T ticks and the largest deviation (normalised
   units) from a tight-tolerance Tsit5 reference solve;
3. fidelity: the Table A1 relative MSE of the metric (observe 50%) on held-out
   runs with each solver.

The pick: the fastest solver whose rollouts are all finite and whose fidelity is
within 5% of the best. These solver rows take one step per tick.

Step size (second table): on a synthetic sweep of 600-tick runs (the five smooth
schedules plus ``step``, whose 10x drops happen within one tick), Euler models
are fitted with 1, 2, 4 and 8 ticks per step (each with its own step, as
``LatentODE`` is trained with the step it is used with; mean over fit seeds).
Reported: the held-out Table A1 errors at 5% and 50% observed, the fit's wall
time, and the 30 x 1200 rollout latency with the fitted weights, all steps
measured interleaved in one process. The widest step whose loss and metric
errors (50% observed) stay within 10% of one step per tick's is reported;
``LatentODE``'s default (at least 150 steps per run: 4 ticks per step here)
must not be wider than it.

Run: ``python -m benchmarks.solver_choice``.
"""

from __future__ import annotations

import argparse

from benchmarks._common import (
    OtherLoad,
    markdown_table,
    median_time,
    other_load_note,
    write_result,
)

NAME = "solver_choice"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--step-fit-steps", type=int, default=1500)
    parser.add_argument("--step-seeds", type=int, default=2)
    args = parser.parse_args(argv)

    import diffrax
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    from optax_lode.model import LatentODE, evaluate, fit
    from optax_lode.model._latent_ode import _networks
    from optax_lode.runs import synthetic_sweep

    T_fit, n = 100, 30
    sweep = synthetic_sweep(ticks=T_fit, seeds=(0, 1, 2))
    train, test = sweep.split(held_out=0.25, seed=0)
    trained = fit(train, steps=args.steps, learning_rate=3e-3, progress=False)

    # -- latency on the T = 600 grid with the fitted weights ----------------------
    T, ticks = 600, 1200
    # One step per tick: this table compares methods, the next one step sizes.
    grid_model = LatentODE(T=T, key=jax.random.key(0), ticks_per_step=1)

    def on_grid(solver):
        return eqx.tree_at(
            _networks, grid_model.with_solver(solver), _networks(trained)
        )

    z = trained.latent_scale * jax.random.normal(jax.random.key(1), (n, 20))
    z = z + jax.vmap(trained.encode)(
        jnp.asarray(np.asarray(trained.normalisation.forward(test.features()[:, :5])))
    ).mean(0)

    def diffrax_fixed(method, model):
        ts = jnp.arange(ticks) / T

        def one(z0):
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(lambda t, y, a: model.vector_field(y)),
                method,
                0.0,
                ts[-1],
                1.0 / T,
                z0,
                saveat=diffrax.SaveAt(ts=ts),
                stepsize_controller=diffrax.ConstantStepSize(),
                max_steps=ticks,
                throw=False,
            )
            return model.decode_latents(sol.ys)

        return one

    candidates = {
        s: (lambda m: lambda zi: m.decode(zi, ticks))(on_grid(s))
        for s in ("euler", "heun", "rk4", "tsit5")
    }
    candidates["diffrax Euler (fixed)"] = diffrax_fixed(
        diffrax.Euler(), on_grid("euler")
    )
    candidates["diffrax Heun (fixed)"] = diffrax_fixed(diffrax.Heun(), on_grid("euler"))
    latency, others, meter = {}, [], OtherLoad()
    for name, fn in candidates.items():
        f = jax.jit(jax.vmap(fn))
        jax.block_until_ready(f(z))
        # One reading per solver's series of calls: a call (milliseconds) is
        # shorter than /proc/stat's 10 ms tick.
        meter.start()
        latency[name] = 1e3 * median_time(
            lambda f=f: jax.block_until_ready(f(z)), repeats=args.repeats
        )
        others.append(meter.stop())

    # -- stability and fidelity on the fitted model (its own T) -------------------
    def reference(model, z0, num):
        ts = jnp.arange(num) / model.T
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, a: model.vector_field(y)),
            diffrax.Tsit5(),
            0.0,
            ts[-1],
            1.0 / model.T,
            z0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8),
            max_steps=100_000,
        )
        return model.decode_latents(sol.ys)

    windows = []
    for frac in (0.05, 0.25, 0.5):
        e = max(trained.mu, round(frac * T_fit))
        raw = test.features()[:, e - trained.mu : e]
        windows.append(np.asarray(trained.normalisation.forward(raw)))
    windows = jnp.asarray(np.concatenate(windows))
    z0 = jax.jit(jax.vmap(trained.encode))(windows)
    stability = {}
    for solver in ("euler", "heun", "rk4", "tsit5"):
        m = trained.with_solver(solver)
        row = {}
        for sigma in (0.15, 1.0):
            eps = jax.random.normal(jax.random.key(5), (z0.shape[0], n, 20))
            zs = (z0[:, None] + sigma * trained.latent_scale * eps).reshape(-1, 20)
            got = jax.jit(jax.vmap(lambda zi, m=m: m.decode(zi, 2 * T_fit)))(zs)
            ref = jax.jit(jax.vmap(lambda zi: reference(trained, zi, 2 * T_fit)))(zs)
            finite = np.all(np.isfinite(np.asarray(got)), axis=(1, 2))
            dev = np.abs(np.asarray(got) - np.asarray(ref))[finite]
            row[f"finite_{sigma}"] = float(finite.mean())
            row[f"max_dev_{sigma}"] = float(dev.max()) if dev.size else float("nan")
        row["metric_rel_mse"] = evaluate(m, test, observe=0.5)["metric"]
        row["loss_rel_mse"] = evaluate(m, test, observe=0.5)["loss"]
        stability[solver] = row

    best_fid = min(r["metric_rel_mse"] for r in stability.values())
    eligible = [
        s
        for s, r in stability.items()
        if r["finite_0.15"] == 1.0
        and r["finite_1.0"] == 1.0
        and r["metric_rel_mse"] <= 1.05 * best_fid
    ]
    pick = min(eligible, key=lambda s: latency[s]) if eligible else None
    write_result(
        NAME,
        {
            "config": {
                "fit_T": T_fit,
                "fit_steps": args.steps,
                "latency_T": T,
                "latency_ticks": ticks,
                "n": n,
                "repeats": args.repeats,
            },
            "latency_ms": latency,
            "other_load_cores": others,
            "stability": stability,
            "pick": pick,
            "step_size": _step_sizes(args, n, ticks),
        },
        render=markdown,
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """The result's ``(title, table, notes)``, from its saved JSON."""
    c, stability, steps = payload["config"], payload["stability"], payload["step_size"]
    n, ticks, cpus = c["n"], c["latency_ticks"], payload["environment"]["cpu_count"]
    rows = []
    for name, ms in payload["latency_ms"].items():
        r = stability.get(name)
        rows.append(
            [
                name,
                ms,
                r["finite_0.15"] if r else "-",
                r["finite_1.0"] if r else "-",
                r["max_dev_0.15"] if r else "-",
                r["metric_rel_mse"] if r else "-",
            ]
        )
    step_rows = [
        [
            int(s),
            steps["config"]["T"] // int(s),
            e["rollout_ms"],
            e["fit_seconds"],
            e["observe_5pct"]["loss"],
            e["observe_5pct"]["metric"],
            e["observe_50pct"]["loss"],
            e["observe_50pct"]["metric"],
            e["observe_50pct"]["lr"],
        ]
        for s, e in steps["sizes"].items()
    ]
    table = (
        markdown_table(
            [
                "solver",
                f"rollout {n}x{ticks} (ms)",
                "finite (sigma 0.15)",
                "finite (sigma 1.0)",
                "max dev. vs reference",
                "metric rel. MSE (50%)",
            ],
            rows,
        )
        + "\n**Step size** (Euler, 600-tick runs, fitted per step; errors are "
        "held-out relative MSE, mean over fit seeds):\n\n"
        + markdown_table(
            [
                "ticks per step",
                "steps per run",
                f"rollout {n}x{ticks} (ms)",
                "fit wall (s)",
                "loss (5%)",
                "metric (5%)",
                "loss (50%)",
                "metric (50%)",
                "lr (50%)",
            ],
            step_rows,
        )
    )
    notes = (
        "Pick (fastest, all finite, fidelity within 5% of best): "
        f"**{payload['pick']}**. "
        "`LatentODE` is trained with the solver it is used with (default "
        "`euler`), so its discrete dynamics are what the fit optimised; the "
        "deviation from a tight Tsit5 solve measures how far they are from "
        "the continuous ODE, not an error on the data. Step size: widest "
        "step within 10% of one step per tick on loss and metric (50%): "
        f"**{steps['widest_within_10pct']} ticks**; the default "
        f"`ticks_per_step` for T = 600 is {steps['default_at_600']}. "
        "First table: "
        + other_load_note(
            payload["other_load_cores"],
            f"series of {c['repeats']} timed calls",
            cpus=cpus,
        )
        + "Second table, fits: "
        + other_load_note(steps["other_load_cores"]["fits"], "timed fits", cpus=cpus)
        + "Second table, rollouts: "
        + other_load_note(
            steps["other_load_cores"]["rollouts"],
            "stretch of all the timed rollouts (every step size's, 5 calls "
            f"each, {c['repeats']} times)",
            cpus=cpus,
        )
    )
    return (
        "Solver choice: rollout latency and stability on trained weights",
        table,
        notes,
    )


def _step_sizes(args, n: int, ticks: int):
    """Fits and measures Euler models with coarser steps on 600-tick runs."""
    import time

    import jax
    import numpy as np

    from optax_lode.model import default_ticks_per_step, evaluate, fit
    from optax_lode.runs import synthetic_sweep

    T, sizes = 600, (1, 2, 4, 8)
    sweep = synthetic_sweep(
        ticks=T,
        # "step" drops the rate 10x in one tick: the hardest case for a coarse step.
        schedules=("constant", "cosine", "linear", "exponential", "onecycle", "step"),
        peak_lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        seeds=(0, 1),
    )
    train, test = sweep.split(held_out=0.2, seed=0)
    keys = ("loss", "metric", "lr")
    per = {s: {"fit_s": [], "obs5": [], "obs50": [], "models": []} for s in sizes}
    others, meter = {"fits": [], "rollouts": []}, OtherLoad()
    for seed in range(args.step_seeds):
        for s in sizes:  # interleaved: machine drift hits every size alike
            meter.start()
            t0 = time.perf_counter()
            m = fit(
                train,
                steps=args.step_fit_steps,
                learning_rate=3e-3,
                seed=seed,
                progress=False,
                ticks_per_step=s,
            )
            per[s]["fit_s"].append(time.perf_counter() - t0)
            others["fits"].append(meter.stop())
            per[s]["obs5"].append(evaluate(m, test, observe=0.05))
            per[s]["obs50"].append(evaluate(m, test, observe=0.5))
            per[s]["models"].append(m)
    z = jax.random.normal(jax.random.key(1), (n, 20))
    rollouts = {
        s: jax.jit(lambda z, m=per[s]["models"][0]: m.decode_many(z, ticks))
        for s in sizes
    }
    for f in rollouts.values():
        jax.block_until_ready(f(z))
    times = {s: [] for s in sizes}
    # One reading over all the repetitions, as in rollout_latency: one
    # repetition (every size's rollout, 5 calls each) takes well under
    # OtherLoad.MIN_SECONDS and would read nothing.
    meter.start()
    for _ in range(args.repeats):
        for s, f in rollouts.items():
            times[s].append(
                median_time(lambda f=f: jax.block_until_ready(f(z)), repeats=5)
            )
    others["rollouts"].append(meter.stop())
    data = {"sizes": {}}
    for s in sizes:
        mean = {
            obs: {k: float(np.mean([r[k] for r in per[s][obs]])) for k in keys}
            for obs in ("obs5", "obs50")
        }
        entry = {
            "rollout_ms": 1e3 * float(np.median(times[s])),
            "fit_seconds": float(np.mean(per[s]["fit_s"])),
            "observe_5pct": mean["obs5"],
            "observe_50pct": mean["obs50"],
        }
        data["sizes"][str(s)] = entry
    base = data["sizes"]["1"]["observe_50pct"]
    within = [
        s
        for s in sizes
        if all(
            data["sizes"][str(s)]["observe_50pct"][k] <= 1.10 * base[k]
            for k in ("loss", "metric")
        )
    ]
    data["widest_within_10pct"] = max(within)
    data["default_at_600"] = default_ticks_per_step(T)
    data["other_load_cores"] = others
    data["config"] = {
        "T": T,
        "fit_steps": args.step_fit_steps,
        "seeds": args.step_seeds,
        "train_runs": train.num_runs,
        "test_runs": test.num_runs,
    }
    return data


if __name__ == "__main__":
    main()
