"""One run's training loop on the tick clock (docs/algorithm.md, "One clock").

A *tick* is ``steps_per_tick`` optimizer steps. Its record is
``(mean training loss over its steps, validation metric at its end, mean
learning rate over its steps)``. Everything here is a pure function of the
run's key, so it can be jitted, scanned over ticks and vmapped over runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from optax_lode._whole import whole
from optax_lode.tasks import Task
from optax_lode.tasks._protocol import steps_per_epoch

PyTree = Any
LearningRateFn = Callable[[PyTree], Float[Array, ""]]


class Carry(NamedTuple):
    """The state of a run between ticks."""

    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    step: Int[Array, ""]
    val_metric: Float[Array, ""]  # latest validation metric


class TickRecord(NamedTuple):
    """One tick: mean loss over its steps, val metric at its end, mean lr."""

    loss: Float[Array, "*runs"]
    metric: Float[Array, "*runs"]
    lr: Float[Array, "*runs"]


def default_lr_fn(opt_state: PyTree) -> Float[Array, ""]:
    """The learning rate a transformation used at the step just taken, read
    from its state by name (``optax.inject_hyperparams`` and
    ``lode_schedule`` both expose ``learning_rate``)."""
    # inject_hyperparams also keeps a schedule's *state* under that key:
    # keep only array values.
    found = [
        v
        for _, v in optax.tree.get_all_with_path(opt_state, "learning_rate")
        if isinstance(v, jax.Array | np.ndarray | float)
    ]
    if not found:
        raise ValueError(
            "cannot record the learning rate: the optimizer state has no "
            "'learning_rate' entry. Wrap the optimizer with "
            "optax.inject_hyperparams, or pass learning_rate_fn=(opt_state -> lr)."
        )
    if len(found) > 1:
        raise ValueError(
            f"the optimizer state has {len(found)} 'learning_rate' entries; pass "
            "learning_rate_fn=(opt_state -> lr) to say which one is applied"
        )
    (lr,) = found
    return jnp.asarray(lr, jnp.float32)


def check_clock(task: Task, epochs: int, ticks_per_epoch: int) -> tuple[int, int]:
    """``(num_ticks, steps_per_tick)`` of a run, with clear errors."""
    per_epoch = steps_per_epoch(task)
    epochs = whole("epochs", epochs)
    ticks_per_epoch = whole("ticks_per_epoch", ticks_per_epoch)
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    if ticks_per_epoch < 1:
        raise ValueError(f"ticks_per_epoch={ticks_per_epoch} must be >= 1")
    if ticks_per_epoch > per_epoch:
        raise ValueError(
            f"ticks_per_epoch={ticks_per_epoch} exceeds the task's "
            f"{per_epoch} steps per epoch; a tick needs >= 1 step"
        )
    # A tick is a whole number of steps; when ticks_per_epoch does not divide
    # steps_per_epoch the run makes num_ticks * steps_per_tick steps (the
    # data pass still follows the task's own epochs).
    return epochs * ticks_per_epoch, per_epoch // ticks_per_epoch


def init_carry(
    task: Task, tx: optax.GradientTransformationExtraArgs, key: PRNGKeyArray
) -> tuple[Carry, PRNGKeyArray]:
    """A fresh run: ``key`` splits into the init key and the data key."""
    init_key, data_key = jax.random.split(key)
    params, model_state = task.init(init_key)
    val = task.metric(params, model_state, "val")
    carry = Carry(
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        step=jnp.zeros((), jnp.int32),
        val_metric=jnp.asarray(val, jnp.float32),
    )
    return carry, data_key


def tick(
    task: Task,
    tx: optax.GradientTransformationExtraArgs,
    carry: Carry,
    data_key: PRNGKeyArray,
    *,
    steps_per_tick: int,
    lr_fn: LearningRateFn = default_lr_fn,
) -> tuple[Carry, TickRecord]:
    """Advances a run by one tick and returns its record.

    Each step passes ``value=`` (that step's minibatch loss) and
    ``val_metric=`` (the latest validation metric, from the previous tick's
    end) to ``tx.update``, so schedules that read them (``lode_schedule``,
    ``reduce_on_plateau``) work unchanged.
    """
    grad_fn = jax.value_and_grad(task.train_loss, has_aux=True)

    def step(c: Carry, _):
        (loss, model_state), grads = grad_fn(c.params, c.model_state, c.step, data_key)
        updates, opt_state = tx.update(
            grads, c.opt_state, c.params, value=loss, val_metric=c.val_metric
        )
        lr = lr_fn(opt_state)
        params = optax.apply_updates(c.params, updates)
        return c._replace(
            params=params,
            model_state=model_state,
            opt_state=opt_state,
            step=c.step + 1,
        ), (loss, lr)

    carry, (losses, lrs) = jax.lax.scan(step, carry, None, length=steps_per_tick)
    val = task.metric(carry.params, carry.model_state, "val")
    val = finite_or_nan(val, carry.params)
    carry = carry._replace(val_metric=val)
    return carry, TickRecord(jnp.mean(losses), val, jnp.mean(lrs))


def finite_or_nan(metric: ArrayLike, params: PyTree) -> Float[Array, ""]:
    """``metric`` as float32, or NaN if ``params`` hold a non-finite value.

    A tick's loss is measured before each step's update, so parameters that
    a tick's last update made NaN show in no loss of that tick, and an
    accuracy of NaN logits is a finite number: without this, such a tick (the
    run's last, say) was recorded as valid, with a garbage metric.
    """
    finite = jax.tree.reduce(
        lambda ok, p: ok & jnp.all(jnp.isfinite(p)), params, jnp.array(True)
    )
    return jnp.where(finite, jnp.asarray(metric, jnp.float32), jnp.nan)


def finish_records(
    loss: np.ndarray, metric: np.ndarray, lr: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Bool[np.ndarray, "*r t"], np.ndarray]:
    """float64 records with the divergence mask applied.

    A run is valid up to its first tick with a non-finite loss, metric or
    learning rate; from there on its parameters are garbage (an accuracy of
    NaN logits is still a finite number), so that tick and every later one
    are masked and set to NaN, and the test metric of such a run is NaN.
    """
    loss, metric, lr = (np.asarray(a, np.float64) for a in (loss, metric, lr))
    test = np.asarray(test, np.float64)
    ok = np.isfinite(loss) & np.isfinite(metric) & np.isfinite(lr)
    mask = np.cumprod(ok, axis=-1).astype(bool)
    loss, metric, lr = (np.where(mask, a, np.nan) for a in (loss, metric, lr))
    test = np.where(mask.all(axis=-1), test, np.nan)
    return loss, metric, lr, mask, test
