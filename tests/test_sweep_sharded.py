"""The sweep sharded over 8 virtual CPU devices equals the 1-device sweep.

Runs in a subprocess: XLA_FLAGS must be set before JAX starts, and never in
this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from optax_lode.sweep import run_sweep
    from optax_lode.tasks import get_task

    assert len(jax.devices()) == 8, jax.devices()
    # Record how many devices each chunk's outputs live on.
    spread = []
    _get = jax.device_get
    def device_get(x):
        spread.append(len(jax.tree.leaves(x)[0].sharding.device_set))
        return _get(x)
    jax.device_get = device_get
    task = get_task("digits-mlp", hidden=(32,))
    kw = dict(shapes=["constant", "cosine"], lrs=[1e-2, 5e-2], seeds=3, epochs=1,
              ticks_per_epoch=3, chunk_size=6)
    sharded = run_sweep(task, **kw)
    n_sharded = len(spread)
    single = run_sweep(task, devices=jax.devices()[:1], **kw)
    jax.device_get = _get
    out = {
        "runs": sharded.num_runs,
        "spread_sharded": spread[:n_sharded],
        "spread_single": spread[n_sharded:],
        "ids_equal": sharded.run_ids == single.run_ids,
        "max_abs_loss": float(np.nanmax(np.abs(sharded.loss - single.loss))),
        "max_abs_metric": float(np.nanmax(np.abs(sharded.metric - single.metric))),
        "max_abs_lr": float(np.nanmax(np.abs(sharded.lr - single.lr))),
        "max_abs_test": float(np.nanmax(np.abs(
            sharded.info["test_metric"].to_numpy()
            - single.info["test_metric"].to_numpy()))),
    }
    print(json.dumps(out))
    """
)


@pytest.mark.slow  # a fresh JAX process compiling for 8 devices: ~40 s loaded
def test_eight_device_sweep_equals_one_device_sweep():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 12 runs in chunks of 6 padded to 8 (a multiple of the device count).
    assert out["runs"] == 12 and out["ids_equal"]
    assert out["spread_sharded"] == [8, 8]  # two chunks, each on all 8 devices
    assert out["spread_single"] == [1, 1]
    assert out["max_abs_loss"] < 1e-5
    assert out["max_abs_metric"] < 1e-5
    assert out["max_abs_lr"] < 1e-9
    assert out["max_abs_test"] < 1e-5
