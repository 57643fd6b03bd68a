"""The baseline registry: every rival of the LODE schedule behind one factory.

Every baseline is built by ``make_baseline(name, *, learning_rate, total_steps,
weight_decay, **options)`` as an :class:`optax.GradientTransformationExtraArgs`
that a training loop calls uniformly as ``tx.update(grads, state, params,
value=loss, val_metric=acc)``: arguments a baseline does not use are ignored.
Every state holds exactly one ``learning_rate`` leaf, the effective learning
rate of the latest update, so ``optax.tree.get(state, "learning_rate")`` reads
it for any baseline (a sweep logs it as the tick's learning rate).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from optax_lode.baselines._hypergradient import hd_adam, hd_sgd
from optax_lode.baselines._parametric import SCHEDULE_SHAPES, parametric_schedule
from optax_lode.sweep import PAPER_LRS

__all__ = [
    "BASELINES",
    "MULTIPLIER_LEARNING_RATES",
    "PAPER_LEARNING_RATES",
    "Baseline",
    "BaselineState",
    "adamw_with_schedule",
    "eval_params",
    "make_baseline",
]

PAPER_LEARNING_RATES: tuple[float, ...] = PAPER_LRS
"""The paper's learning-rate grid (A.2, Fashion-MNIST and CIFAR-100)."""

MULTIPLIER_LEARNING_RATES: tuple[float, ...] = (0.25, 0.5, 1.0)
"""Learning-rate-free methods estimate the step themselves; their
``learning_rate`` is a dimensionless multiplier (1.0 = the method's own
estimate), so the absolute grid above would be meaningless for them.
"""


class BaselineState(NamedTuple):
    """State of a baseline that has no learning rate of its own in its state.

    Attributes:
        step: updates done.
        learning_rate: effective learning rate of the latest update (before any
            update: the first update's rate if known, else 0).
        inner_state: the wrapped optimizer's state.
    """

    step: Int[Array, ""]
    learning_rate: Float[Array, ""]
    inner_state: optax.OptState


LrReader = Callable[[Array, optax.OptState, optax.OptState], Array]


def _recording(
    tx: optax.GradientTransformation,
    read_lr: LrReader,
    initial_lr: Callable[[Any], Array],
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``tx`` so its state records the effective learning rate.

    ``read_lr(step, state_before, state_after)`` gives the rate of the update
    just made; ``initial_lr(inner_state)`` the value before any update.
    """
    tx = optax.with_extra_args_support(tx)

    def init_fn(params):
        inner = tx.init(params)
        return BaselineState(
            step=jnp.zeros((), jnp.int32),
            learning_rate=jnp.asarray(initial_lr(inner), jnp.float32),
            inner_state=inner,
        )

    def update_fn(updates, state, params=None, **extra_args):
        new_updates, inner = tx.update(updates, state.inner_state, params, **extra_args)
        lr = jnp.asarray(read_lr(state.step, state.inner_state, inner), jnp.float32)
        return new_updates, BaselineState(
            step=optax.safe_increment(state.step), learning_rate=lr, inner_state=inner
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ---------------------------------------------------------------------------
# Builders: (learning_rate, total_steps, weight_decay, **options) -> tx
# ---------------------------------------------------------------------------


def adamw_with_schedule(
    shape: str,
    *,
    learning_rate: float,
    total_steps: int,
    weight_decay: float = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """AdamW driven by a parametric schedule (see :func:`parametric_schedule`).

    Args:
        shape: ``"constant"``, ``"cosine"``, ``"onecycle"``, ``"exponential"``
            or ``"step"``.
        learning_rate: initial (peak for one-cycle) learning rate.
        total_steps: optimizer steps in the run.
        weight_decay: AdamW's decoupled weight decay.
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        eps: Adam's epsilon.
        nesterov: Nesterov momentum in Adam (the paper found no difference).

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` whose state (a
        :class:`BaselineState`) records the schedule's rate as
        ``learning_rate``.

    Raises:
        ValueError: (from :func:`parametric_schedule`) an unknown ``shape``,
            a ``learning_rate`` that is not finite and > 0, or a
            ``total_steps`` that is not an integer >= 1.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from optax_lode.baselines import adamw_with_schedule
        >>> tx = adamw_with_schedule("cosine", learning_rate=1e-2, total_steps=100)
        >>> state = tx.init(jnp.zeros(2))
        >>> round(float(optax.tree.get(state, "learning_rate")), 6)
        0.01
    """
    schedule = parametric_schedule(shape, learning_rate, total_steps)
    tx = optax.adamw(
        schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, nesterov=nesterov
    )
    return _recording(
        tx, lambda step, _before, _after: schedule(step), lambda _inner: schedule(0)
    )


def _parametric_builder(shape: str):
    def build(learning_rate, total_steps, weight_decay, **options):
        return adamw_with_schedule(
            shape,
            learning_rate=learning_rate,
            total_steps=total_steps,
            weight_decay=weight_decay,
            **options,
        )

    return build


def _build_hd_sgd(learning_rate, total_steps, weight_decay, **options):
    del total_steps
    return hd_sgd(learning_rate, weight_decay=weight_decay, **options)


def _build_hd_adam(learning_rate, total_steps, weight_decay, **options):
    del total_steps
    return hd_adam(learning_rate, weight_decay=weight_decay, **options)


def _build_schedule_free(
    learning_rate, total_steps, weight_decay, *, warmup_fraction=0.05, **options
):
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}.")
    warmup = int(warmup_fraction * total_steps)
    # Defazio et al. recommend a linear warm-up; optax adds one with warmup_steps.
    tx = optax.contrib.schedule_free_adamw(
        learning_rate,
        warmup_steps=warmup or None,
        weight_decay=weight_decay,
        **options,
    )
    if warmup:
        schedule = optax.warmup_constant_schedule(0.0, learning_rate, warmup)
    else:
        schedule = optax.constant_schedule(learning_rate)
    return _recording(
        tx, lambda step, _before, _after: schedule(step), lambda _inner: schedule(0)
    )


def _build_reduce_on_plateau(
    learning_rate,
    total_steps,
    weight_decay,
    *,
    factor=0.5,
    patience=5,
    cooldown=0,
    rtol=1e-4,
    accumulation_size=None,
    min_scale=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
):
    # The plateau test averages `accumulation_size` training losses (passed as
    # `value=`) per decision: 1% of the run, so a run has 100 decisions.
    if accumulation_size is None:
        accumulation_size = max(1, total_steps // 100)
    tx = optax.chain(
        optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay),
        optax.contrib.reduce_on_plateau(
            factor=factor,
            patience=patience,
            cooldown=cooldown,
            rtol=rtol,
            accumulation_size=accumulation_size,
            min_scale=min_scale,
        ),
    )
    return _recording(
        tx,
        # The plateau state by position: optax.tree.get(after, "scale") would
        # also find Adam's moments of any parameter named "scale" (LayerNorm).
        lambda _step, _before, after: learning_rate * after[1].scale,
        lambda _inner: learning_rate,
    )


def _build_prodigy(learning_rate, total_steps, weight_decay, **options):
    del total_steps
    tx = optax.contrib.prodigy(learning_rate, weight_decay=weight_decay, **options)
    # Prodigy's step is estim_lr * learning_rate (times Adam's bias correction)
    # with the estimate held *before* the update.
    return _recording(
        tx,
        lambda _step, before, _after: learning_rate * before.estim_lr,
        lambda inner: learning_rate * inner.estim_lr,
    )


def _build_dog(learning_rate, total_steps, weight_decay, *, eps=1e-8, **options):
    del total_steps
    tx = optax.contrib.dog(
        learning_rate, eps=eps, weight_decay=weight_decay or None, **options
    )

    init_kind, init_value = options.get("init_step", ("heuristic", None))

    def read(_step, before, after):
        dog_state = optax.tree.get(after, "DoGState")
        rate = dog_state.max_dist / jnp.sqrt(dog_state.sum_sq_norm_grads + eps)
        if init_kind == "learning_rate":  # DoG's first step is then given
            first = optax.tree.get(before, "DoGState").is_init_step
            rate = jnp.where(first, init_value, rate)
        return learning_rate * rate

    # DoG's first rate depends on the first gradient: unknown (0) before it.
    return _recording(tx, read, lambda _inner: 0.0)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A registered baseline.

    Attributes:
        name: registry name.
        summary: one line on what it is.
        learning_rate_role: what ``learning_rate`` means: ``"initial"``,
            ``"peak"``, ``"constant"`` or ``"multiplier"`` (of a learning-rate-free
            method's own estimate).
        default_learning_rates: the grid :func:`~optax_lode.baselines.tune`
            uses by default: the paper's grid, or for learning-rate-free methods
            a grid of multipliers.
        options: keyword options ``make_baseline`` accepts besides the common ones.
        reference: where the method comes from.
        build: the builder :func:`make_baseline` calls, as
            ``build(learning_rate, total_steps, weight_decay, **options)``
            (arguments already checked).

    Examples:
        >>> from optax_lode.baselines import BASELINES
        >>> spec = BASELINES["prodigy"]
        >>> spec.learning_rate_role, spec.default_learning_rates
        ('multiplier', (0.25, 0.5, 1.0))
    """

    name: str
    summary: str
    learning_rate_role: str
    default_learning_rates: tuple[float, ...]
    options: tuple[str, ...]
    reference: str
    build: Callable[..., optax.GradientTransformationExtraArgs] = dataclasses.field(
        repr=False
    )


_ADAM = ("b1", "b2", "eps")
# Valid ranges of the numeric options, (low, high, low_open, high_open): a
# decay rate of 1 or more, or a negative floor on the rate, trains silently
# wrong (growing moments, negative logged rates).
_UNIT = (0.0, 1.0, False, True)  # [0, 1)
_POSITIVE = (0.0, math.inf, True, True)  # (0, inf)
_NON_NEGATIVE = (0.0, math.inf, False, True)  # [0, inf)
_OPTION_RANGES = {
    "b1": _UNIT,
    "b2": _UNIT,
    "beta3": _UNIT,
    "momentum": _UNIT,
    "betas": _UNIT,  # each of the pair
    "eps": _POSITIVE,
    "estim_lr0": _POSITIVE,
    "hyper_lr": _NON_NEGATIVE,
    "min_learning_rate": _NON_NEGATIVE,
    # optax needs rtol or atol > 0, and atol (not an option here) is 0.
    "rtol": (0.0, 1.0, True, False),
    "factor": (0.0, 1.0, True, True),
    # optax cuts when its plateau count equals patience: 0 would cut on every
    # improvement and never on a plateau.
    "patience": (1.0, math.inf, False, True),
    "cooldown": _NON_NEGATIVE,
    "accumulation_size": (1.0, math.inf, False, True),
    "min_scale": (0.0, 1.0, False, False),
    "warmup_fraction": _UNIT,
    "weight_lr_power": _NON_NEGATIVE,
}
# Ranges one baseline narrows: optax's schedule-free needs b1 > 0 (0 trains to
# NaN at once).
_BASELINE_RANGES = {("schedule-free", "b1"): (0.0, 1.0, True, True)}
# Counts: optax compares them with counters, so 2.5 would act as 3, silently.
_WHOLE_OPTIONS = frozenset({"patience", "cooldown", "accumulation_size"})


_BOOL_OPTIONS = frozenset({"nesterov", "safeguard_warmup"})


def _real(name: str, value: Any) -> float:
    """``value`` as a finite float, or a ``ValueError`` naming ``name``: a
    string or a bool is refused, not converted (``"0.1"`` used to train)."""
    if not isinstance(value, bool | str | bytes) and np.ndim(value) == 0:
        try:  # a number or a concrete 0-d array (a traced one cannot set a schedule)
            value = float(value)
        except TypeError:
            pass
    if not (isinstance(value, float) and math.isfinite(value)):
        raise ValueError(
            f"{name} must be a finite real number (not a string or a bool), "
            f"got {value!r}."
        )
    return value


def _check_option(name: str, value: Any, baseline: str = "") -> None:
    """A numeric option outside its range (``baseline``'s own where it has
    one), or a boolean option that is no bool, is a ``ValueError`` naming
    it."""
    if name in _BOOL_OPTIONS:
        # Any truthy value ("yes", and "no" too) used to switch it on.
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"option {name} must be True or False, got {value!r}.")
        return
    if name == "init_step":  # DoG's (kind, value): a lone number failed to unpack
        kinds = ("distance", "learning_rate", "heuristic")
        ok = isinstance(value, tuple | list) and len(value) == 2
        ok = ok and value[0] in kinds and isinstance(value[1], numbers.Real)
        ok = ok and not isinstance(value[1], bool) and math.isfinite(value[1])
        if not (ok and value[1] > 0):
            raise ValueError(
                f"option init_step must be a pair (kind, value > 0) with kind one "
                f"of {kinds}, e.g. ('heuristic', 1e-6); got {value!r}."
            )
        return
    if name == "betas" and not (isinstance(value, tuple | list) and len(value) == 2):
        raise ValueError(f"option betas must be a pair (beta1, beta2), got {value!r}.")
    ranges = _BASELINE_RANGES.get((baseline, name), _OPTION_RANGES.get(name))
    if ranges is None or value is None:
        return
    low, high, low_open, high_open = ranges
    values = tuple(value) if isinstance(value, tuple | list) else (value,)
    for v in values:
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool)
        ok = ok and math.isfinite(v) and (v > low if low_open else v >= low)
        ok = ok and (v < high if high_open else v <= high)
        ok = ok and (name not in _WHOLE_OPTIONS or int(v) == v)
        if not ok:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            interval = f"{left}{low:g}, {high:g}{right}"
            whole = " and a whole number" if name in _WHOLE_OPTIONS else ""
            raise ValueError(f"option {name}={value!r} must be in {interval}{whole}.")


_SHAPE_SUMMARY = {
    "constant": "AdamW, constant learning rate",
    "cosine": "AdamW, cosine decay to 0",
    "onecycle": "AdamW, cosine one-cycle (30% warm-up)",
    "exponential": "AdamW, exponential decay by 100x over the run",
    "step": "AdamW, step decay (x0.1 at 50% and 75%)",
}

_REGISTRY: dict[str, Baseline] = {
    shape: Baseline(
        name=shape,
        summary=_SHAPE_SUMMARY[shape],
        learning_rate_role="peak" if shape == "onecycle" else "initial",
        default_learning_rates=PAPER_LEARNING_RATES,
        options=(*_ADAM, "nesterov"),
        reference="optax schedules; paper A.2",
        build=_parametric_builder(shape),
    )
    for shape in SCHEDULE_SHAPES
}
_REGISTRY.update(
    {
        "hd-sgd": Baseline(
            name="hd-sgd",
            summary="SGD with hypergradient descent on the learning rate",
            learning_rate_role="initial",
            default_learning_rates=PAPER_LEARNING_RATES,
            options=("hyper_lr", "momentum", "nesterov", "min_learning_rate"),
            reference="Baydin et al. 2017, arXiv:1703.04782",
            build=_build_hd_sgd,
        ),
        "hd-adam": Baseline(
            name="hd-adam",
            summary="Adam(W) with hypergradient descent on the learning rate",
            learning_rate_role="initial",
            default_learning_rates=PAPER_LEARNING_RATES,
            options=("hyper_lr", *_ADAM, "min_learning_rate"),
            reference="Baydin et al. 2017, arXiv:1703.04782",
            build=_build_hd_adam,
        ),
        "schedule-free": Baseline(
            name="schedule-free",
            summary="schedule-free AdamW (evaluate at eval_params)",
            learning_rate_role="constant",
            default_learning_rates=PAPER_LEARNING_RATES,
            options=("warmup_fraction", *_ADAM, "weight_lr_power"),
            reference="Defazio et al. 2024, arXiv:2405.15682; optax.contrib",
            build=_build_schedule_free,
        ),
        "reduce-on-plateau": Baseline(
            name="reduce-on-plateau",
            summary="AdamW, rate halved when the training loss plateaus",
            learning_rate_role="initial",
            default_learning_rates=PAPER_LEARNING_RATES,
            options=(
                "factor",
                "patience",
                "cooldown",
                "rtol",
                "accumulation_size",
                "min_scale",
                *_ADAM,
            ),
            reference="optax.contrib.reduce_on_plateau",
            build=_build_reduce_on_plateau,
        ),
        "prodigy": Baseline(
            name="prodigy",
            summary="Prodigy, learning-rate-free AdamW",
            learning_rate_role="multiplier",
            default_learning_rates=MULTIPLIER_LEARNING_RATES,
            options=("betas", "beta3", "eps", "estim_lr0", "safeguard_warmup"),
            reference="Mishchenko & Defazio 2023, arXiv:2306.06101; optax.contrib",
            build=_build_prodigy,
        ),
        "dog": Baseline(
            name="dog",
            summary="DoG (distance over gradients), learning-rate-free SGD",
            learning_rate_role="multiplier",
            default_learning_rates=MULTIPLIER_LEARNING_RATES,
            options=("init_step", "eps"),
            reference="Ivgi, Hinder & Carmon 2023, arXiv:2302.12022; optax.contrib",
            build=_build_dog,
        ),
    }
)

BASELINES = MappingProxyType(_REGISTRY)
"""Baseline name -> :class:`Baseline` (read-only view)."""


def _lookup(name: str) -> Baseline:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; choose one of {sorted(_REGISTRY)}."
        ) from None


def make_baseline(
    name: str,
    *,
    learning_rate: float,
    total_steps: int,
    weight_decay: float = 0.0,
    **options: Any,
) -> optax.GradientTransformationExtraArgs:
    """Builds a registered baseline as an optax transformation.

    Every baseline is updated the same way, ``tx.update(grads, state, params,
    value=loss, val_metric=acc)``; arguments it does not use are ignored
    (reduce-on-plateau needs ``value``). Evaluate at :func:`eval_params` (it
    differs from ``params`` for schedule-free AdamW). The effective learning
    rate of the latest update is ``optax.tree.get(state, "learning_rate")``.

    Args:
        name: one of ``BASELINES``: ``constant``, ``cosine``, ``onecycle``,
            ``exponential``, ``step``, ``hd-sgd``, ``hd-adam``,
            ``schedule-free``, ``reduce-on-plateau``, ``prodigy``, ``dog``.
        learning_rate: the swept rate; its role is ``BASELINES[name].
            learning_rate_role`` (a multiplier for prodigy and dog).
        total_steps: optimizer steps in the run (the schedules' horizon).
        weight_decay: weight decay (decoupled, AdamW style, except DoG whose
            optax implementation adds it to the gradient).
        **options: baseline-specific options, see ``BASELINES[name].options``.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs`.

    Raises:
        ValueError: unknown name; ``learning_rate`` or ``weight_decay`` not a
            finite real number (a string or a bool is refused) or out of
            range; ``total_steps`` not an int >= 1; a numeric option out of
            its range, or a boolean option (``nesterov``,
            ``safeguard_warmup``) that is not ``True`` or ``False``.
        TypeError: an option the baseline does not accept.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from optax_lode.baselines import make_baseline
        >>> tx = make_baseline("cosine", learning_rate=1e-2, total_steps=100)
        >>> params = jnp.ones(3)
        >>> state = tx.init(params)
        >>> updates, state = tx.update(params, state, params, value=1.0,
        ...                            val_metric=0.5)
        >>> round(float(optax.tree.get(state, "learning_rate")), 6)
        0.01
    """
    spec = _lookup(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(
            f"baseline {name!r} does not accept option(s) {unknown}; "
            f"its options are {list(spec.options)}."
        )
    learning_rate = _real("learning_rate", learning_rate)
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}.")
    if isinstance(total_steps, bool) or not (
        isinstance(total_steps, int | np.integer) and total_steps >= 1
    ):
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}.")
    total_steps = int(total_steps)
    weight_decay = _real("weight_decay", weight_decay)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
    for option, value in options.items():
        _check_option(option, value, name)
    return spec.build(float(learning_rate), total_steps, float(weight_decay), **options)


def eval_params(
    name: str, params: optax.Params, opt_state: optax.OptState
) -> optax.Params:
    """The parameters at which a baseline's model is evaluated.

    Schedule-free AdamW trains at an interpolation ``y`` but is evaluated at
    its average ``x`` (``optax.contrib.schedule_free_eval_params``); every
    other baseline is evaluated at ``params`` themselves. The schedule-free
    state is found anywhere in ``opt_state`` (also inside a chain); a name and
    a state that do not belong together are a ``ValueError``.

    Args:
        name: the baseline's registry name.
        params: the current (training) parameters.
        opt_state: the baseline's optimizer state.

    Returns:
        The parameters to evaluate validation and test metrics at.

    Raises:
        ValueError: an unknown ``name``; a schedule-free state with another
            ``name``; or ``name="schedule-free"`` with a state that holds no
            schedule-free state.

    Examples:
        >>> import jax.numpy as jnp
        >>> from optax_lode.baselines import eval_params, make_baseline
        >>> tx = make_baseline("schedule-free", learning_rate=1e-2, total_steps=10)
        >>> state = tx.init(jnp.ones(2))
        >>> eval_params("schedule-free", jnp.ones(2), state).shape
        (2,)
    """
    _lookup(name)
    sf_state = optax.tree.get(opt_state, "ScheduleFreeState")
    if name != "schedule-free":
        if sf_state is not None:
            # The state of another run: evaluating it as `name` would silently
            # report the schedule-free average (or the wrong run's params).
            raise ValueError(
                f"eval_params({name!r}, ...) got a schedule-free optimizer's "
                "state; pass the state of the baseline named, or "
                "name='schedule-free'."
            )
        return params
    if sf_state is None:
        raise ValueError(
            "eval_params('schedule-free', ...) needs the schedule-free "
            "optimizer's state; got a state without a ScheduleFreeState."
        )
    return optax.contrib.schedule_free_eval_params(sf_state, params)
