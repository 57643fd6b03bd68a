"""Sharded training on 8 virtual CPU devices (in a subprocess: the device count
is an XLA flag that must be set before JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from _lode_helpers import MU, K, TOTAL_STEPS, fake_metric, mlp_problem, small_model
    from optax_lode.transform import lode_schedule

    assert len(jax.devices()) == 8, jax.devices()
    params, loss_fn, (x, y) = mlp_problem(7, width=16)
    tx = optax.chain(
        optax.adamw(1.0, weight_decay=1e-3),
        lode_schedule(small_model(5), total_steps=TOTAL_STEPS, steps_per_tick=K,
                      mu=MU),
    )

    @jax.jit
    def step(p, s, x, y):
        # The loss of a sharded batch is the global mean: every device sees the
        # same value and makes the same decision.
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
        return optax.apply_updates(p, u), s

    def train(p, x, y):
        s = tx.init(p)
        lrs = []
        for _ in range(TOTAL_STEPS):
            p, s = step(p, s, x, y)
            lrs.append(float(optax.tree.get(s, "learning_rate")))
        return p, s, lrs

    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    specs = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None),
             "b2": P()}
    shardings = {k: NamedSharding(mesh, v) for k, v in specs.items()}
    p_sh = {k: jax.device_put(v, shardings[k]) for k, v in params.items()}
    batch = NamedSharding(mesh, P("data", None))
    p_sh, s_sh, lrs_sh = train(p_sh, jax.device_put(x, batch),
                               jax.device_put(y, batch))
    kept = all(p_sh[k].sharding.is_equivalent_to(shardings[k], p_sh[k].ndim)
               for k in specs)
    dev0 = jax.devices()[0]
    p_1, s_1, lrs_1 = train(jax.device_put(params, dev0), jax.device_put(x, dev0),
                            jax.device_put(y, dev0))
    diff = max(float(jnp.max(jnp.abs(jax.device_get(p_sh[k]) - p_1[k])))
               for k in specs)
    print(json.dumps({
        "kept": kept, "lrs_sharded": lrs_sh, "lrs_single": lrs_1,
        "decisions": int(s_sh[1].decisions), "param_diff": diff,
        "state_shardings": sorted({str(l.sharding.is_fully_replicated)
                                   for l in jax.tree.leaves(s_sh[1])}),
    }))
    """
)


def _run_on_devices(script: str, devices: int) -> dict:
    """Runs ``script`` in a fresh JAX process with ``devices`` virtual CPU
    devices (an XLA flag read at start-up); returns its last line's JSON."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    here = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join([str(here), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh JAX process with 8 devices and two compiles
def test_sharded_training_keeps_shardings_and_the_schedule():
    res = _run_on_devices(_SCRIPT, 8)
    assert res["kept"], "parameters lost their NamedSharding"
    assert res["decisions"] >= 2
    assert res["state_shardings"] == ["True"], "the schedule state is replicated"
    np.testing.assert_allclose(res["lrs_sharded"], res["lrs_single"], rtol=1e-5)
    assert res["param_diff"] < 1e-4


_SHARD_MAP_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from _lode_helpers import MU, K, TOTAL_STEPS, fake_metric, mlp_problem, small_model
    from optax_lode import LatentODE
    from optax_lode.transform import lode_schedule

    assert len(jax.devices()) == 2, jax.devices()
    params, loss_fn, (x, y) = mlp_problem(7, width=16)

    def make(axis_name=None):
        lode = lode_schedule(small_model(5), total_steps=TOTAL_STEPS,
                             steps_per_tick=K, mu=MU, axis_name=axis_name)
        return optax.chain(optax.adamw(1.0, weight_decay=1e-3), lode)

    def rates(tx, p, s, x, y, mean_over=None):
        def body(c, _):
            p, s = c
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            if mean_over:  # data parallel: the global mean loss and gradient
                loss, g = jax.lax.pmean((loss, g), mean_over)
            u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
            return (optax.apply_updates(p, u), s), s[1].learning_rate
        (_, s), lrs = jax.lax.scan(body, (p, s), length=TOTAL_STEPS)
        return lrs, s[1].decisions

    alone = make()
    out = {}
    # Data parallel: one run, its batch split over the devices.
    mesh = Mesh(np.array(jax.devices()), ("data",))
    dp = jax.jit(jax.shard_map(
        lambda p, s, x, y: rates(alone, p, s, x, y, mean_over="data"),
        mesh=mesh, in_specs=(P(), P(), P("data"), P("data")), out_specs=P()))
    out["dp"], _ = dp(params, alone.init(params), x, y)
    # jax.make_mesh's Explicit axes (sharding in types): the decision's
    # buffers and loop carries must live on the mesh of what fills them.
    explicit = jax.make_mesh(
        (2,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
    put = lambda a, spec: jax.device_put(a, NamedSharding(explicit, spec))
    # A model of the paper's sizes: its rollout runs in blocks (_run_blocks).
    paper = optax.chain(optax.adamw(1.0, weight_decay=1e-3), lode_schedule(
        LatentODE(T=TOTAL_STEPS // K, key=jax.random.key(0)),
        total_steps=TOTAL_STEPS, steps_per_tick=K, mu=MU))
    out["explicit"], _ = jax.jit(
        lambda p, s, x, y: rates(paper, p, s, x, y))(
        put(params, P()), paper.init(params), put(x, P("data")),
        put(y, P("data")))
    out["explicit_single"], _ = jax.jit(lambda p, s: rates(paper, p, s, x, y))(
        params, paper.init(params))
    out["single"], _ = jax.jit(lambda p, s: rates(alone, p, s, x, y))(
        params, alone.init(params))
    # One run per device: each device its own cond (no axis_name needed; with
    # one, the devices decide together).
    runs = jax.tree.map(lambda a: jnp.stack([a, 1.3 * a]), params)
    mesh = Mesh(np.array(jax.devices()), ("runs",))
    for name, tx in (("runs", alone), ("runs_named", make("runs"))):
        def one(p, s, tx=tx):  # this device's run (a block of one)
            lrs, d = rates(tx, *jax.tree.map(lambda a: a[0], (p, s)), x, y)
            return lrs[None], d[None]
        per_device = jax.jit(jax.shard_map(
            one, mesh=mesh, in_specs=(P("runs"), P("runs")), out_specs=P("runs")))
        out[name], out[name + "_decisions"] = per_device(
            runs, jax.vmap(tx.init)(runs))
    out["runs_alone"] = [
        jax.jit(lambda p, s: rates(alone, p, s, x, y)[0])(
            p, alone.init(p))
        for p in (jax.tree.map(lambda a, i=i: a[i], runs) for i in range(2))
    ]
    print(json.dumps(jax.tree.map(lambda a: np.asarray(a).tolist(), out)))
    """
)


@pytest.mark.slow  # a fresh JAX process with 8 devices: ~30 s
def test_shard_map_explicit_mesh_and_one_run_per_device():
    """Under shard_map: a data-parallel run (the mean loss and gradient over the
    devices) gets the single-device rates, and so does a jitted run on a
    jax.make_mesh mesh of Explicit axes; runs one per device each get the
    rates they get alone, without axis_name (each device its own cond) and
    with it (the devices decide together)."""
    res = _run_on_devices(_SHARD_MAP_SCRIPT, 2)
    np.testing.assert_allclose(res["dp"], res["single"], rtol=1e-5)
    np.testing.assert_allclose(res["explicit"], res["explicit_single"], rtol=1e-5)
    for name in ("runs", "runs_named"):
        assert res[name + "_decisions"] == [5, 5]
        np.testing.assert_allclose(res[name], res["runs_alone"], rtol=1e-5)
    assert not np.allclose(res["runs"][0], res["runs"][1])
