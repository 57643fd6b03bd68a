"""The user's global JAX configuration does not break the library.

``jax_enable_x64`` (float64 by default), ``jax_default_prng_impl="rbg"``
(four-word keys, common on TPU) and ``jax_threefry_partitionable=False`` (the
pre-0.5 random bits) are set process-wide by the user, so each case runs in a
subprocess: the model stays float32, a model file crosses between the two
modes, the schedule's state and learning rates are those of the default
configuration, bit for bit, and so are a fit's model (rbg, partitionable off)
and a key's initial weights (partitionable off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _lode_helpers import small_model

import optax_lode
from optax_lode.runs import synthetic_sweep

TESTS = Path(__file__).resolve().parent
T, K = 24, 3
# The seed domain's top: past 32 bits a key would depend on jax_enable_x64.
SEED = 2**32 - 1

# Run under the configuration the parent sets in the environment.
_PROBE = """
import json, sys
import jax, jax.numpy as jnp, numpy as np, optax
sys.path.insert(0, {tests!r})
from _lode_helpers import small_model
import optax_lode
from optax_lode.runs import synthetic_sweep

out = {{}}
out["partitionable"] = jax.config.jax_threefry_partitionable
model = small_model(T={T})
out["init_digest"] = optax_lode.model.model_digest(model)
leaves = jax.tree.leaves(model)
out["model_dtypes"] = sorted({{str(x.dtype) for x in leaves if hasattr(x, "dtype")
                              and jnp.issubdtype(x.dtype, jnp.inexact)}})
optax_lode.save_model({saved!r}, model)
# The schedule runs the default process's model (weights made under rbg or
# x64 would differ): only the configuration differs.
model = optax_lode.load_model({other!r})
fitted = optax_lode.fit(synthetic_sweep(ticks=30, seeds=(0,)), steps=2, progress=False)
out["fit_digest"] = optax_lode.model.model_digest(fitted)
out["fit_dtypes"] = sorted({{str(x.dtype) for x in jax.tree.leaves(fitted)
                            if hasattr(x, "dtype")
                            and jnp.issubdtype(x.dtype, jnp.inexact)}})
tx = optax.chain(optax.sgd(1.0), optax_lode.lode_schedule(
    model, total_steps={T} * {K}, steps_per_tick={K}, seed={SEED}))
params = {{"w": jnp.ones((2,))}}
state = tx.init(params)
before = jax.tree.map(lambda x: (x.shape, str(x.dtype)), state)

@jax.jit
def step(params, state, i):
    loss = 1.0 / (1.0 + 0.05 * i)
    u, state = tx.update({{"w": jnp.ones((2,))}}, state, params, value=loss,
                         val_metric=0.5 + 0.002 * i)
    return optax.apply_updates(params, u), state

lrs = []
for i in range({T} * {K}):
    params, state = step(params, state, i)
    lrs.append(float(optax.tree.get(state, "learning_rate")))
out["state_same"] = jax.tree.map(lambda x: (x.shape, str(x.dtype)), state) == before
out["lrs"] = lrs
out["decisions"] = int(optax.tree.get(state, "LodeState").decisions)
out["data"] = np.asarray(optax.tree.get(state, "LodeState").data).tolist()
print(json.dumps(out))
"""


def _reference_lrs(path: Path) -> tuple[list[float], int, list[int]]:
    """The default configuration's rates, decisions and final packed state
    (this process: x64 off, threefry, partitionable)."""
    model = optax_lode.load_model(path)
    tx = optax.chain(
        optax.sgd(1.0),
        optax_lode.lode_schedule(model, total_steps=T * K, steps_per_tick=K, seed=SEED),
    )
    params = {"w": jnp.ones((2,))}
    state = tx.init(params)

    @jax.jit
    def step(params, state, i):
        loss = 1.0 / (1.0 + 0.05 * i)
        u, state = tx.update(
            {"w": jnp.ones((2,))},
            state,
            params,
            value=loss,
            val_metric=0.5 + 0.002 * i,
        )
        return optax.apply_updates(params, u), state

    lrs = []
    for i in range(T * K):
        params, state = step(params, state, i)
        lrs.append(float(optax.tree.get(state, "learning_rate")))
    lode = optax.tree.get(state, "LodeState")
    return lrs, int(lode.decisions), np.asarray(lode.data).tolist()


def _start_probe(env_changes: dict, saved: Path, other: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(env_changes)
    code = _PROBE.format(
        tests=str(TESTS),
        T=T,
        K=K,
        SEED=SEED,
        saved=str(saved),
        other=str(other),
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _result(probe: subprocess.Popen) -> dict:
    stdout, stderr = probe.communicate()
    assert probe.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a subprocess per configuration: ~20 s
def test_x64_rbg_keys_and_threefry_partitionable_change_nothing(tmp_path):
    # A model saved in this (default) process, loaded under x64, and back. The
    # probes run beside each other and this process's reference run.
    default_file = tmp_path / "default.lode"
    optax_lode.save_model(default_file, small_model(T=T))
    x64_file = tmp_path / "x64.lode"
    x64_probe = _start_probe({"JAX_ENABLE_X64": "1"}, x64_file, default_file)
    rbg_probe = _start_probe(
        {"JAX_DEFAULT_PRNG_IMPL": "rbg"}, tmp_path / "rbg.lode", default_file
    )
    # The ensemble noise and the key's split at every decision would take the
    # flag's other random bits (~10% other rates).
    unpartitioned_probe = _start_probe(
        {"JAX_THREEFRY_PARTITIONABLE": "0"}, tmp_path / "unpart.lode", default_file
    )
    try:
        ref_lrs, ref_decisions, ref_data = _reference_lrs(default_file)
        ref_init = optax_lode.model.model_digest(small_model(T=T))
        ref_fit = optax_lode.model.model_digest(
            optax_lode.fit(
                synthetic_sweep(ticks=30, seeds=(0,)), steps=2, progress=False
            )
        )
    finally:
        x64, rbg = _result(x64_probe), _result(rbg_probe)
        unpartitioned = _result(unpartitioned_probe)
    assert ref_decisions >= 3
    assert x64["model_dtypes"] == ["float32"] and x64["fit_dtypes"] == ["float32"]
    assert x64["state_same"]
    assert x64["decisions"] == ref_decisions
    np.testing.assert_allclose(x64["lrs"], ref_lrs, rtol=1e-6)
    loaded = optax_lode.load_model(x64_file)  # made under x64, read without
    inexact = [
        x.dtype
        for x in jax.tree.leaves(loaded)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    assert inexact and set(inexact) == {np.dtype("float32")}

    assert rbg["state_same"] and rbg["decisions"] == ref_decisions
    assert rbg["lrs"] == ref_lrs  # the state's key is threefry's: bit for bit
    # fit seeds a threefry key itself (small_model's key is rbg's: other weights)
    assert rbg["fit_digest"] == ref_fit

    assert unpartitioned["partitionable"] is False
    assert unpartitioned["state_same"]
    assert unpartitioned["decisions"] == ref_decisions
    assert unpartitioned["lrs"] == ref_lrs
    assert unpartitioned["data"] == ref_data  # the key's splits too
    # The same key initialises the same weights, and a fit draws the same
    # initialisation and batches.
    assert unpartitioned["init_digest"] == ref_init
    assert unpartitioned["fit_digest"] == ref_fit


def test_threefry_partitionable_off_changes_no_draw_even_under_jit():
    """The flag as a context (a library may set it around its own code): the
    ensemble noise, eager or traced, and the decision are the default's."""
    from optax_lode.decision import DecisionConfig, ensemble_noise, explain

    model = small_model(T=T)
    config = DecisionConfig.from_model(model, mu=4, n=8)
    window = np.tile(np.array([1.0, 0.5, 1e-2], np.float32), (4, 1))

    def draws():
        key = jax.random.key(3)
        return (
            np.asarray(ensemble_noise(key, 8, 6)),
            np.asarray(jax.jit(ensemble_noise, static_argnums=(1, 2))(key, 8, 6)),
            np.asarray(explain(model, window, 8, key, config).decision.segment),
        )

    plain = np.asarray(jax.random.normal(jax.random.key(3), (8, 6)))
    with jax.threefry_partitionable(False):
        # What the flag changes, without the library's own setting.
        assert not np.array_equal(jax.random.normal(jax.random.key(3), (8, 6)), plain)
        off = draws()
    for a, b in zip(off, draws(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # a subprocess per configuration: ~20 s
def test_rank_promotion_raise_changes_nothing():
    """Codebases that set ``jax_numpy_rank_promotion="raise"`` (optax runs
    under it): the model's bias and normalisation broadcasts are explicit, and
    explicit as jnp's implicit promotion is, so the numbers are the same."""
    from optax_lode.runs import synthetic_sweep

    runs = synthetic_sweep(ticks=T, seeds=(0,))

    def everything():
        model = optax_lode.fit(runs, steps=3, held_out=0.0, progress=False)
        folded = optax_lode.fit(
            runs, steps=3, held_out=0.0, progress=False, ticks_per_step=4, depth=3
        )
        report = optax_lode.evaluate(model, runs, observe=0.25)
        lrs = []
        for m in (model, folded):
            tx = optax.chain(
                optax.sgd(1.0), optax_lode.lode_schedule(m, total_steps=T, mu=4)
            )
            params = {"w": jnp.ones((2,))}
            state = tx.init(params)
            step = jax.jit(
                lambda p, s, v, tx=tx: tx.update(p, s, p, value=v, val_metric=0.5)
            )
            for i in range(T):
                _, state = step(params, state, 1.0 / (1.0 + i))
                lrs.append(float(optax.tree.get(state, "learning_rate")))
        return optax_lode.model.model_digest(folded), report["loss"], lrs

    with jax.numpy_rank_promotion("raise"):
        strict = everything()
    assert strict == everything()


@pytest.mark.slow  # everything again under another config: ~15 s
def test_strict_dtype_promotion_changes_nothing():
    """``jax_numpy_dtype_promotion="strict"`` (no implicit int/float mixing):
    optax's sgd runs under it, and so must the schedule, the decision, the fit
    and the evaluation; each traces under standard promotion, so the numbers
    are those of the default setting, bit for bit."""
    from optax_lode.decision import DecisionConfig, explain
    from optax_lode.runs import synthetic_sweep

    runs = synthetic_sweep(ticks=T, seeds=(0, 1))

    def everything():
        model = optax_lode.fit(runs, steps=3, held_out=0.5, progress=False)
        report = optax_lode.evaluate(model, runs, observe=0.25)
        tx = optax.chain(
            optax.sgd(1.0, momentum=0.9),
            optax_lode.lode_schedule(model, total_steps=T * 2, steps_per_tick=2, mu=4),
        )
        params = {"w": jnp.ones((2,))}
        state = tx.init(params)
        step = jax.jit(lambda p, s, v: tx.update(p, s, p, value=v, val_metric=0.5))
        lrs = []
        for i in range(T * 2):
            _, state = step(params, state, 1.0 / (1.0 + i))
            lrs.append(float(optax.tree.get(state, "learning_rate")))
        config = DecisionConfig.from_model(model, run_ticks=T, mu=4)
        window = runs.features()[0, 4:8]
        e = explain(model, window, 8, jax.random.key(0), config)
        return (
            optax_lode.model.model_digest(model),
            report["loss"],
            lrs,
            int(optax.tree.get(state, "LodeState").decisions),
            np.asarray(e.scores).tobytes(),
        )

    with jax.numpy_dtype_promotion("strict"):
        strict = everything()
    assert strict[3] > 0
    assert strict == everything()
