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


@pytest.mark.slow  # a fresh JAX process with 8 devices and two compiles
def test_sharded_training_keeps_shardings_and_the_schedule():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    here = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join([str(here), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["kept"], "parameters lost their NamedSharding"
    assert res["decisions"] >= 2
    assert res["state_shardings"] == ["True"], "the schedule state is replicated"
    np.testing.assert_allclose(res["lrs_sharded"], res["lrs_single"], rtol=1e-5)
    assert res["param_diff"] < 1e-4
