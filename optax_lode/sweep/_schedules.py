"""The parametric schedule shapes a sweep runs, from optax.

Every shape is written at peak 1 and scaled by the run's peak (or initial)
learning rate: all five are linear in it, so a sweep can ``vmap`` over the
peak and select the shape with ``lax.switch``, in one program.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

PAPER_SHAPES: tuple[str, ...] = ("constant", "cosine", "onecycle", "exponential")
"""Shapes of the paper's sweep (A.2), in its order."""
SCHEDULE_SHAPES: tuple[str, ...] = (*PAPER_SHAPES, "step")
"""Every shape ``run_sweep`` knows."""
PAPER_LRS: tuple[float, ...] = (1e-3, 5e-3, 1e-2, 5e-2, 1e-1)
"""The paper's learning-rate grid (A.2)."""


def _unit(shape: str, total_steps: int) -> optax.Schedule:
    if shape == "constant":
        return optax.constant_schedule(1.0)
    if shape == "cosine":
        return _positive_cosine(total_steps)
    if shape == "onecycle":
        # optax defaults: 30% warm-up from peak/25, anneal to peak/(25 * 1e4).
        return optax.cosine_onecycle_schedule(
            transition_steps=total_steps, peak_value=1.0
        )
    if shape == "exponential":
        # Continuous decay towards 1% of the initial rate, reached at step
        # total_steps (the last step taken, total_steps - 1, is a little above).
        return optax.exponential_decay(
            1.0, transition_steps=total_steps, decay_rate=0.01
        )
    if shape == "step":
        # Divide by 10 at 50% and again at 75% of the run. Under 3 steps both
        # fall on one step, which a dict of boundaries would keep only once.
        half, three_quarters = total_steps // 2, (3 * total_steps) // 4
        if half == three_quarters:
            return optax.piecewise_constant_schedule(1.0, {half: 0.01})
        return optax.piecewise_constant_schedule(1.0, {half: 0.1, three_quarters: 0.1})
    raise ValueError(
        f"unknown schedule shape {shape!r}; choose from {list(SCHEDULE_SHAPES)}"
    )


def _positive_cosine(total_steps: int) -> optax.Schedule:
    """``optax.cosine_decay_schedule(1.0, total_steps)``, except where its
    float32 ``0.5 (1 + cos(pi t / T))`` rounds to 0 (the last steps of runs of
    over ~13,000 steps): there the same value as ``cos(pi t / 2T) ** 2``, which
    stays positive. A rate of 0 has no log, and a sweep's records must not
    hold one; everywhere else the rates are optax's, bit for bit."""
    base = optax.cosine_decay_schedule(1.0, decay_steps=total_steps, alpha=0.0)

    def schedule(count):
        value = base(count)
        frac = jnp.minimum(count, total_steps) / total_steps
        return jnp.where(value > 0, value, jnp.cos(0.5 * jnp.pi * frac) ** 2)

    return schedule


def make_schedule(shape: str, peak_lr: float, total_steps: int) -> optax.Schedule:
    """The learning-rate schedule of one sweep run.

    Args:
        shape: one of :data:`SCHEDULE_SHAPES`: ``constant``; ``cosine``
            (``optax.cosine_decay_schedule`` to 0); ``onecycle``
            (``optax.cosine_onecycle_schedule`` with optax's defaults);
            ``exponential`` (``optax.exponential_decay`` to 1% at the end);
            ``step`` (divided by 10 from step ``total_steps // 2`` and again
            from ``(3 * total_steps) // 4``).
        peak_lr: the peak (``onecycle``) or initial (other shapes) rate.
        total_steps: the run's length in optimizer steps.

    Returns:
        An optax schedule, ``count -> learning rate``.

    Raises:
        ValueError: an unknown ``shape``, ``total_steps`` below 1, or a
            ``peak_lr`` that is not finite and > 0.

    Examples:
        >>> from optax_lode.sweep import make_schedule
        >>> round(float(make_schedule("cosine", 0.1, 100)(50)), 6)
        0.05
    """
    _check_total(total_steps)
    _check_number("peak_lr", peak_lr, positive=True)
    unit = _unit(shape, total_steps)
    return lambda count: peak_lr * unit(count)


def _check_total(total_steps: int) -> None:
    if int(total_steps) < 1:
        raise ValueError(f"total_steps={total_steps} must be >= 1")


def _check_number(name: str, value: Any, *, positive: bool) -> None:
    """A concrete ``value`` must be finite and > 0 (``positive``) or >= 0; a
    traced one is its caller's to check (a vmapped sweep's validated grid)."""
    try:
        x = float(value)
    except jax.errors.ConcretizationTypeError:
        return
    if not (math.isfinite(x) and (x > 0 if positive else x >= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} must be finite and {bound}")


def switch_schedule(
    shapes: Sequence[str],
    shape_index: Int[Array, ""],
    peak_lr: Float[Array, ""],
    total_steps: int,
) -> Callable[[Int[Array, ""]], Float[Array, ""]]:
    """``make_schedule(shapes[shape_index], peak_lr, total_steps)`` with a
    traced index and peak: the form a vmapped sweep uses.

    Args:
        shapes: the sweep's shapes, from :data:`SCHEDULE_SHAPES`.
        shape_index: index into ``shapes`` (may be traced).
        peak_lr: the peak (or initial) rate (may be traced; not checked).
        total_steps: the run's length in optimizer steps.

    Returns:
        A schedule, ``count -> float32 learning rate``.

    Raises:
        ValueError: ``total_steps`` below 1, or an unknown shape.
    """
    _check_total(total_steps)
    units = [_unit(s, total_steps) for s in shapes]

    def schedule(count):
        branches = [lambda c, u=u: jnp.asarray(u(c), jnp.float32) for u in units]
        return peak_lr * jax.lax.switch(shape_index, branches, count)

    return schedule


def sweep_optimizer(
    schedule: optax.Schedule, *, weight_decay: float
) -> optax.GradientTransformationExtraArgs:
    """AdamW with ``learning_rate=schedule``, the sweep's optimizer.

    Wrapped in ``optax.inject_hyperparams`` so the rate each step used is in
    the state, which is what the tick records read. The schedule's own state
    is also stored under ``learning_rate`` there, so ``optax.tree.get`` finds
    two values: read it with ``optax.tree.get_all_with_path`` and keep the
    array, as ``train_run`` does.

    Args:
        schedule: the learning-rate schedule, e.g. :func:`make_schedule`'s.
        weight_decay: AdamW's decoupled weight decay, finite and >= 0.

    Returns:
        The optimizer, which accepts (and ignores) extra arguments of
        ``update`` such as ``value=``.

    Raises:
        ValueError: if ``weight_decay`` is negative or not finite.

    Examples:
        >>> import jax.numpy as jnp
        >>> tx = sweep_optimizer(make_schedule("cosine", 1e-2, 10), weight_decay=1e-4)
        >>> params = {"w": jnp.zeros(2)}
        >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
        >>> [round(float(u), 6) for u in updates["w"]]  # AdamW's first step
        [-0.01, -0.01]
    """
    _check_number("weight_decay", weight_decay, positive=False)
    return optax.with_extra_args_support(
        optax.inject_hyperparams(optax.adamw)(
            learning_rate=schedule, weight_decay=weight_decay
        )
    )
