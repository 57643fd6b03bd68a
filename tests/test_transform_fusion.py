"""The compiled step applies the learning rate without another pass over the
parameters: XLA fuses it, and the parameter update, into the base optimizer's
elementwise update, exactly as with an optax schedule (docs/schedule.md, Cost)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax
from _lode_helpers import TOTAL_STEPS, K, mlp_problem, small_model

from optax_lode import lode_schedule


def _loop_body_ops(tx, params, loss_fn, data) -> list[str]:
    """Result shapes of the ops in the compiled body of a scanned train loop."""
    tx = optax.with_extra_args_support(tx)

    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, *data)
        u, s = tx.update(g, s, p, value=loss, val_metric=jnp.float32(0.5))
        return (optax.apply_updates(p, u), s), loss

    def run(p, s):
        return jax.lax.scan(step, (p, s), None, length=4 * K)

    text = jax.jit(run).lower(params, tx.init(params)).compile().as_text()
    comps = dict(
        re.findall(r"\n(?:ENTRY )?(%[\w.\-]+) [^\n]*\{\n(.*?)\n\}", text, re.S)
    )
    entry = re.search(r"\nENTRY (%[\w.\-]+)", text).group(1)
    (body,) = re.findall(r"while\(.*?body=(%[\w.\-]+)", comps[entry])
    return re.findall(r" = (f32\[[\d,]*\])\S* ", comps[body])


def test_the_rate_is_fused_into_the_base_optimizers_update():
    params, loss_fn, data = mlp_problem(width=24)
    lode = optax.chain(
        optax.adamw(1.0, weight_decay=1e-2),
        lode_schedule(small_model(), total_steps=TOTAL_STEPS, steps_per_tick=K),
    )
    cosine = optax.adamw(
        optax.cosine_decay_schedule(1e-2, TOTAL_STEPS), weight_decay=1e-2
    )
    ops = {
        name: _loop_body_ops(tx, params, loss_fn, data)
        for name, tx in (("lode", lode), ("cosine", cosine))
    }
    # Ops of a weight matrix's shape: gradients, Adam's moments, the update.
    # Anything in the transform that read the updates beyond scaling them (a
    # norm, say) would materialise them: two more ops of each shape.
    for shape in ("f32[4,24]", "f32[24,1]"):
        assert ops["lode"].count(shape) == ops["cosine"].count(shape) > 0, shape
