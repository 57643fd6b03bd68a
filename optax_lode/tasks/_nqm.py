"""The noisy quadratic model (NQM) and its closed-form expected loss.

Zhang et al. (2019) model neural-network training as SGD on a quadratic with a
diagonal curvature ``H = diag(h)`` and gradient noise of covariance ``C / B``:

.. math::

    L(\\theta) = \\tfrac12 \\sum_i h_i \\theta_i^2, \\qquad
    g = H\\theta + \\varepsilon, \\quad \\varepsilon \\sim N(0, C / B).

Every coordinate evolves independently and linearly, so the second moments of
SGD (with heavy-ball momentum) under *any* learning-rate schedule follow a
closed-form recurrence. That makes the NQM the one task of this library whose
best possible schedule is known: :func:`optimal_schedule` finds it by gradient
descent on per-tick log learning rates through the recurrence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

__all__ = [
    "NQMSchedule",
    "NoisyQuadratic",
    "best_constant_schedule",
    "best_cosine_schedule",
    "expected_loss",
    "optimal_schedule",
]

ScheduleLike = Float[Array, " steps"] | np.ndarray | Callable[[Array], Array]


@dataclasses.dataclass(frozen=True)
class NoisyQuadratic:
    """The noisy quadratic model as a :class:`~optax_lode.tasks.Task`.

    The curvature spectrum is ``h_i = i^{-p}`` (``i = 1..dim``; ``p =
    curvature_power``, Zhang et al. use ``p = 1``) and the per-example gradient
    noise covariance is ``C = H`` (``noise="curvature"``, as in the paper) or
    ``C = I`` (``noise="isotropic"``); a minibatch of ``batch_size`` divides it
    by ``B``. The initial point is ``theta_0 ~ N(0, init_scale^2 I)``, one draw
    per run seed, so ``E[theta_0,i^2] = init_scale^2``.

    **Loss and metric.** ``train_loss`` returns a function of ``theta`` whose
    gradient is exactly ``H theta + eps`` with fresh noise per ``(key, step)``.
    Its *value* is, with ``report="exact"`` (default), the noise-free loss
    ``L(theta)`` of the current iterate (noise enters the gradient only, as in
    Zhang et al.); with ``report="minibatch"`` it is the loss of a minibatch of a
    linear-regression-like problem, ``1/2 sum_i h_i (theta_i - xi_i)^2`` with
    random targets ``xi = -eps / h``: same gradient, same dynamics, but its value
    carries the irreducible noise floor ``sum_i c_i / (2 B h_i)``. Both are
    positive, so ``log`` of the loss is defined. The metric (``split="val"`` and
    ``"test"`` alike: the NQM has no data split; the population is known) is
    ``-log L(theta)``, a decreasing map of the loss, so higher is better.

    **One clock.** ``steps_per_epoch`` and ``default_epochs`` only fix the run
    length the sweeps use (``steps_per_epoch * default_epochs`` steps); the NQM
    has no dataset to pass over.

    Attributes:
        dim: number of coordinates.
        batch_size: the minibatch size ``B`` dividing the noise covariance.
        curvature_power: ``p`` in ``h_i = i^{-p}``.
        noise: ``"curvature"`` (``C = H``) or ``"isotropic"`` (``C = I``).
        init_scale: standard deviation of the initial point.
        report: what ``train_loss`` returns as its value, see above.
        steps_per_epoch: optimizer steps in one "epoch".
        default_epochs: epochs of a default run.
        weight_decay: weight decay of paper-style sweeps; ``0.0``, since decay
            would change the quadratic (and break the closed form).
        name: registry name.
        metric_name: ``"neg_log_loss"`` (what :meth:`metric` measures).

    Examples:
        >>> import jax, optax
        >>> from optax_lode.tasks.nqm import NoisyQuadratic
        >>> nqm = NoisyQuadratic(dim=10)
        >>> params, state = nqm.init(jax.random.key(0))
        >>> loss, state = nqm.train_loss(params, state, 0, jax.random.key(1))
        >>> params.shape, nqm.metric_name
        ((10,), 'neg_log_loss')

    Raises:
        ValueError: a field out of range: ``dim``, ``batch_size``,
            ``steps_per_epoch`` or ``default_epochs`` not an int >= 1 (a bool
            is refused), ``curvature_power`` not finite and >= 0,
            ``init_scale`` not > 0, ``weight_decay`` not >= 0, or an unknown
            ``noise`` or ``report``.

    References:
        Zhang, Li, Nado, Martens, Sachdeva, Dahl, Shallue, Grosse, `Which
        Algorithmic Choices Matter at Which Batch Sizes? Insights From a Noisy
        Quadratic Model <https://arxiv.org/abs/1907.04164>`_, NeurIPS 2019.
    """

    dim: int = 100
    batch_size: int = 16
    curvature_power: float = 1.0
    noise: Literal["curvature", "isotropic"] = "curvature"
    init_scale: float = 1.0
    report: Literal["exact", "minibatch"] = "exact"
    steps_per_epoch: int = 50
    default_epochs: int = 20
    weight_decay: float = 0.0
    name: str = "nqm"
    metric_name: ClassVar[str] = "neg_log_loss"

    def __post_init__(self) -> None:
        if not (_count(self.dim) and self.dim >= 1):
            raise ValueError(
                f"NoisyQuadratic: dim must be an int >= 1, got {self.dim!r}."
            )
        if not (_count(self.batch_size) and self.batch_size >= 1):
            raise ValueError(
                "NoisyQuadratic: batch_size must be an int >= 1, got "
                f"{self.batch_size!r}."
            )
        if not (math.isfinite(self.curvature_power) and self.curvature_power >= 0):
            raise ValueError(
                "NoisyQuadratic: curvature_power must be finite and >= 0, got "
                f"{self.curvature_power!r}."
            )
        if self.noise not in ("curvature", "isotropic"):
            raise ValueError(
                "NoisyQuadratic: noise must be 'curvature' (C = H) or 'isotropic' "
                f"(C = I), got {self.noise!r}."
            )
        if self.report not in ("exact", "minibatch"):
            raise ValueError(
                "NoisyQuadratic: report must be 'exact' or 'minibatch', got "
                f"{self.report!r}."
            )
        if not (math.isfinite(self.init_scale) and self.init_scale > 0):
            raise ValueError(
                f"NoisyQuadratic: init_scale must be > 0, got {self.init_scale!r}."
            )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(
                f"NoisyQuadratic: weight_decay must be >= 0, got {self.weight_decay!r}."
            )
        for field in ("steps_per_epoch", "default_epochs"):
            value = getattr(self, field)
            if not (_count(value) and value >= 1):
                raise ValueError(
                    f"NoisyQuadratic: {field} must be an int >= 1, got {value!r}."
                )

    # -- the problem's constants (numpy: they are closed over, never traced) --

    @property
    def curvature(self) -> np.ndarray:
        """The diagonal of ``H``, ``h_i = i^{-p}``, float32 ``(dim,)``."""
        i = np.arange(1, self.dim + 1, dtype=np.float64)
        return (i ** (-self.curvature_power)).astype(np.float32)

    @property
    def noise_variance(self) -> np.ndarray:
        """Per-coordinate variance of the *minibatch* gradient noise, ``c_i / B``."""
        c = (
            self.curvature
            if self.noise == "curvature"
            else np.ones(self.dim, np.float32)
        )
        return (c / self.batch_size).astype(np.float32)

    @property
    def noise_floor(self) -> float:
        """Expected ``report="minibatch"`` loss at the optimum, ``sum c/(2 B h)``."""
        return float(np.sum(self.noise_variance / (2.0 * self.curvature)))

    @property
    def max_stable_learning_rate(self) -> float:
        """SGD (no momentum) diverges above ``2 / max_i h_i``."""
        return float(2.0 / np.max(self.curvature))

    # -- the Task protocol --

    def init(self, key: PRNGKeyArray) -> tuple[Float[Array, " dim"], tuple[()]]:
        """Draws ``theta_0 ~ N(0, init_scale^2 I)``; the NQM has no model state.

        Args:
            key: the run's initialisation key.

        Returns:
            ``(theta_0, ())``: float32 parameters of shape ``(dim,)`` and the
            empty model state.
        """
        theta = self.init_scale * jax.random.normal(key, (self.dim,), jnp.float32)
        return theta, ()

    def loss(self, params: Float[Array, " dim"]) -> Float[Array, ""]:
        """The noise-free (population) loss ``L(theta) = 1/2 sum h_i theta_i^2``.

        Args:
            params: ``theta``, shape ``(dim,)``.

        Returns:
            The scalar loss.

        Raises:
            ValueError: ``params`` is not of shape ``(dim,)``.

        Examples:
            >>> import jax.numpy as jnp
            >>> from optax_lode.tasks.nqm import NoisyQuadratic
            >>> float(NoisyQuadratic(dim=2).loss(jnp.ones(2)))
            0.75
        """
        self._check_params(params)
        return 0.5 * jnp.sum(jnp.asarray(self.curvature) * params**2)

    def train_loss(
        self,
        params: Float[Array, " dim"],
        state: tuple[()],
        step: Int[Array, ""] | int,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], tuple[()]]:
        """Minibatch loss at ``step``: gradient ``H theta + eps``, see the class doc.

        Args:
            params: ``theta``, shape ``(dim,)``.
            state: the (empty) model state, returned unchanged.
            step: the optimizer step; the noise is drawn from
                ``fold_in(key, step)``.
            key: the run's data key.

        Returns:
            ``(loss, state)``: the scalar loss (its value as ``report`` says;
            its gradient ``H theta + eps``) and the unchanged state.

        Raises:
            ValueError: ``params`` is not of shape ``(dim,)``.
        """
        self._check_params(params)
        h = jnp.asarray(self.curvature)
        eps = jnp.sqrt(jnp.asarray(self.noise_variance)) * jax.random.normal(
            jax.random.fold_in(key, step), (self.dim,), params.dtype
        )
        if self.report == "minibatch":
            xi = -eps / h  # targets whose residual gradient is -h * xi = eps
            value = 0.5 * jnp.sum(h * (params - xi) ** 2)
        else:
            # The stop_gradient term is zero in value and adds exactly eps to the
            # gradient, so the value stays the iterate's true loss.
            value = self.loss(params) + jnp.vdot(
                eps, params - jax.lax.stop_gradient(params)
            )
        return value, state

    def metric(
        self, params: Float[Array, " dim"], state: tuple[()], split: str
    ) -> Float[Array, ""]:
        """``-log L(theta)`` for ``split`` in ``("val", "test")`` (identical here).

        Args:
            params: ``theta``, shape ``(dim,)``.
            state: the (empty) model state, unused.
            split: ``"val"`` or ``"test"``.

        Returns:
            The scalar metric, higher is better (the loss is floored at the
            smallest positive float32, so the metric stays finite).

        Raises:
            ValueError: ``split`` is neither ``"val"`` nor ``"test"``, or
                ``params`` is not of shape ``(dim,)``.
        """
        if split not in ("val", "test"):
            raise ValueError(
                f"NoisyQuadratic.metric: split must be 'val' or 'test', got {split!r}."
            )
        # The floor keeps the metric finite if an iterate hits the optimum exactly.
        return -jnp.log(jnp.maximum(self.loss(params), jnp.finfo(jnp.float32).tiny))

    def _check_params(self, params: Array) -> None:
        if jnp.shape(params) != (self.dim,):
            raise ValueError(
                f"NoisyQuadratic(dim={self.dim}) expects params of shape "
                f"({self.dim},), "
                f"got {jnp.shape(params)}; create them with task.init(key)."
            )


# ---------------------------------------------------------------------------
# Closed form
# ---------------------------------------------------------------------------


def _as_step_rates(schedule: ScheduleLike, num_steps: int | None) -> Array:
    if callable(schedule):
        if num_steps is None:
            raise ValueError(
                "expected_loss: a callable schedule needs num_steps (the run length)."
            )
        rates = jax.vmap(schedule)(jnp.arange(num_steps))
    else:
        rates = jnp.asarray(schedule, jnp.float32)
        if rates.ndim != 1:
            raise ValueError(
                "expected_loss: schedule must be a 1-d array of per-step learning "
                f"rates or an optax schedule, got an array of shape {rates.shape}."
            )
        if num_steps is not None and rates.shape[0] != num_steps:
            raise ValueError(
                f"expected_loss: schedule has {rates.shape[0]} steps but "
                f"num_steps={num_steps}."
            )
    rates = jnp.asarray(rates, jnp.float32)
    # Concrete rates are checked; traced ones (expected_loss under jit) cannot be.
    if not isinstance(rates, jax.core.Tracer) and not bool(
        jnp.all(jnp.isfinite(rates))
    ):
        raise ValueError(
            "expected_loss: the schedule has non-finite learning rates; give "
            "finite per-step rates."
        )
    return rates


def _moment_trajectory(
    task: NoisyQuadratic, rates: Float[Array, " steps"], momentum: float | Array
) -> Float[Array, " steps_plus_one"]:
    """Expected loss before every step and after the last (``steps + 1`` values).

    Per coordinate, heavy-ball SGD as optax implements it (``v' = beta v + g``,
    ``theta' = theta - lr v'``) is ``x' = A x + b eps`` with ``x = (theta, v)``,
    ``A = [[1 - lr h, -lr beta], [h, beta]]``, ``b = (-lr, 1)``. The raw second
    moments ``S = E[x x^T]`` (over the initial point and the noise) follow
    ``S' = A S A^T + b b^T q`` with ``q = c / B``: no approximation.
    """
    return _moments(
        jnp.asarray(task.curvature),
        jnp.asarray(task.noise_variance),
        jnp.asarray(task.init_scale**2, jnp.float32),
        rates,
        jnp.asarray(momentum, jnp.float32),
    )


def _moments(
    h: Float[Array, " dim"],
    q: Float[Array, " dim"],
    init_var: Float[Array, ""],
    rates: Float[Array, " steps"],
    beta: Float[Array, ""],
) -> Float[Array, " steps_plus_one"]:
    # The problem's constants are arguments, not closed over, so one compiled
    # program serves every NoisyQuadratic of the same dim and run length.
    s_tt0 = jnp.broadcast_to(init_var, h.shape).astype(jnp.float32)
    zeros = jnp.zeros_like(s_tt0)

    def step(carry, lr):
        s_tt, s_tv, s_vv = carry
        a = 1.0 - lr * h
        new_tt = (
            a**2 * s_tt
            - 2.0 * a * lr * beta * s_tv
            + (lr * beta) ** 2 * s_vv
            + lr**2 * q
        )
        new_tv = (
            a * h * s_tt
            + (a * beta - lr * beta * h) * s_tv
            - lr * beta**2 * s_vv
            - lr * q
        )
        new_vv = h**2 * s_tt + 2.0 * h * beta * s_tv + beta**2 * s_vv + q
        return (new_tt, new_tv, new_vv), 0.5 * jnp.sum(h * s_tt)

    (s_tt, _, _), losses = jax.lax.scan(step, (s_tt0, zeros, zeros), rates)
    return jnp.append(losses, 0.5 * jnp.sum(h * s_tt))


def expected_loss(
    schedule: ScheduleLike,
    *,
    task: NoisyQuadratic | None = None,
    num_steps: int | None = None,
    momentum: float = 0.0,
    trajectory: bool = False,
) -> Float[Array, ""] | Float[Array, " steps_plus_one"]:
    """Exact expected NQM loss of SGD (heavy-ball momentum optional) under a schedule.

    The expectation is over the initial point and the gradient noise, for
    ``optax.sgd(schedule, momentum=momentum)`` applied to ``task.train_loss``:
    per coordinate, ``E[theta_i^2]`` evolves as ``(1 - lr h_i)^2 E[theta_i^2] +
    lr^2 c_i / B`` without momentum (a 2x2 second-moment recurrence with it).

    Args:
        schedule: per-step learning rates, shape ``(num_steps,)``, or an optax
            schedule (a callable of the step) together with ``num_steps``.
        task: the quadratic; ``NoisyQuadratic()`` if omitted.
        num_steps: run length; required for a callable schedule.
        momentum: heavy-ball coefficient ``beta`` (optax's ``trace`` decay).
        trajectory: if true, return the expected loss before each step and after
            the last, shape ``(num_steps + 1,)``; else only the final one.

    Returns:
        ``E[L(theta_T)]`` (a scalar), or the whole trajectory.

    Raises:
        ValueError: a callable ``schedule`` without ``num_steps``; an array
            ``schedule`` that is not 1-d, does not have ``num_steps`` entries,
            or (when concrete, not traced) holds a non-finite rate.

    Examples:
        >>> import optax
        >>> from optax_lode.tasks.nqm import NoisyQuadratic, expected_loss
        >>> nqm = NoisyQuadratic()
        >>> final = expected_loss(optax.cosine_decay_schedule(0.5, 1000),
        ...                       task=nqm, num_steps=1000)
        >>> final.shape
        ()

    References:
        Zhang et al., `Which Algorithmic Choices Matter at Which Batch Sizes?
        <https://arxiv.org/abs/1907.04164>`_, NeurIPS 2019, Section 3.
    """
    task = NoisyQuadratic() if task is None else task
    rates = _as_step_rates(schedule, num_steps)
    losses = _jit_moments(
        jnp.asarray(task.curvature),
        jnp.asarray(task.noise_variance),
        jnp.asarray(task.init_scale**2, jnp.float32),
        rates,
        jnp.asarray(momentum, jnp.float32),
    )
    return losses if trajectory else losses[-1]


_jit_moments = jax.jit(_moments)


# ---------------------------------------------------------------------------
# Best schedules
# ---------------------------------------------------------------------------


class NQMSchedule(NamedTuple):
    """A schedule on the NQM and its exact expected final loss.

    Attributes:
        tick_learning_rates: learning rate of every tick, ``(num_ticks,)``.
        step_learning_rates: the same, repeated ``steps_per_tick`` times.
        expected_loss: ``E[L(theta_T)]`` after the last step.
        objective_history: expected final loss along the optimisation (only
            for :func:`optimal_schedule`; empty otherwise).
    """

    tick_learning_rates: Float[np.ndarray, " num_ticks"]
    step_learning_rates: Float[np.ndarray, " num_steps"]
    expected_loss: float
    objective_history: Float[np.ndarray, " iterations"]


def _validate_run(num_ticks: int, steps_per_tick: int, momentum: float) -> None:
    if not (isinstance(num_ticks, int) and num_ticks >= 1):
        raise ValueError(f"num_ticks must be an int >= 1, got {num_ticks!r}.")
    if not (isinstance(steps_per_tick, int) and steps_per_tick >= 1):
        raise ValueError(f"steps_per_tick must be an int >= 1, got {steps_per_tick!r}.")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")


def _lr_ceiling(task: NoisyQuadratic, momentum: float) -> float:
    # Heavy ball is stable for lr * h < 2 (1 + beta): the edge of the search.
    return 2.0 * (1.0 + momentum) / float(np.max(task.curvature))


def _grid_search(
    task: NoisyQuadratic,
    make_ticks: Callable[[Array], Array],
    grid: np.ndarray,
    steps_per_tick: int,
    momentum: float,
) -> NQMSchedule:
    ticks = jax.vmap(make_ticks)(jnp.asarray(grid, jnp.float32))
    steps = jnp.repeat(ticks, steps_per_tick, axis=1)
    finals = jax.jit(jax.vmap(lambda r: _moment_trajectory(task, r, momentum)[-1]))(
        steps
    )
    finals = jnp.where(jnp.isfinite(finals), finals, jnp.inf)
    best = int(jnp.argmin(finals))
    return NQMSchedule(
        np.asarray(ticks[best]),
        np.asarray(steps[best]),
        float(finals[best]),
        np.zeros(0),
    )


def _default_grid(task: NoisyQuadratic, momentum: float, size: int = 64) -> np.ndarray:
    top = _lr_ceiling(task, momentum)
    return np.geomspace(top * 1e-4, top * 0.999, size)


def best_constant_schedule(
    task: NoisyQuadratic | None = None,
    *,
    num_ticks: int,
    steps_per_tick: int = 1,
    momentum: float = 0.0,
    grid: np.ndarray | None = None,
) -> NQMSchedule:
    """The best constant learning rate on a grid, judged by the exact expected loss.

    Args:
        task: the quadratic; ``NoisyQuadratic()`` if omitted.
        num_ticks: ticks in the run.
        steps_per_tick: optimizer steps per tick.
        momentum: heavy-ball coefficient.
        grid: candidate learning rates; default 64 log-spaced values up to the
            stability edge ``2 (1 + beta) / max h``.

    Returns:
        An :class:`NQMSchedule` (its ``objective_history`` is empty).

    Raises:
        ValueError: ``num_ticks`` or ``steps_per_tick`` not an int >= 1, or
            ``momentum`` outside [0, 1).

    Examples:
        >>> from optax_lode.tasks.nqm import NoisyQuadratic, best_constant_schedule
        >>> best = best_constant_schedule(NoisyQuadratic(dim=10), num_ticks=20)
        >>> best.tick_learning_rates.shape, best.objective_history.size
        ((20,), 0)
    """
    task = NoisyQuadratic() if task is None else task
    _validate_run(num_ticks, steps_per_tick, momentum)
    grid = _default_grid(task, momentum) if grid is None else np.asarray(grid)
    return _grid_search(
        task, lambda lr: jnp.full((num_ticks,), lr), grid, steps_per_tick, momentum
    )


def best_cosine_schedule(
    task: NoisyQuadratic | None = None,
    *,
    num_ticks: int,
    steps_per_tick: int = 1,
    momentum: float = 0.0,
    grid: np.ndarray | None = None,
) -> NQMSchedule:
    """The best cosine decay (to zero, per tick) over a grid of peak learning rates.

    The tick-``k`` rate is ``peak * (1 + cos(pi k / num_ticks)) / 2``, i.e.
    ``optax.cosine_decay_schedule(peak, num_ticks)`` on the tick clock.

    Args:
        task: the quadratic; ``NoisyQuadratic()`` if omitted.
        num_ticks: ticks in the run.
        steps_per_tick: optimizer steps per tick.
        momentum: heavy-ball coefficient.
        grid: candidate peak learning rates; default as
            :func:`best_constant_schedule` but up to twice the stability edge
            (a cosine spends little time at its peak).

    Returns:
        An :class:`NQMSchedule` (its ``objective_history`` is empty).

    Raises:
        ValueError: ``num_ticks`` or ``steps_per_tick`` not an int >= 1, or
            ``momentum`` outside [0, 1).

    Examples:
        >>> from optax_lode.tasks.nqm import NoisyQuadratic, best_cosine_schedule
        >>> best = best_cosine_schedule(NoisyQuadratic(dim=10), num_ticks=20,
        ...                             steps_per_tick=5)
        >>> best.step_learning_rates.shape
        (100,)
        >>> bool(best.tick_learning_rates[-1] < best.tick_learning_rates[0])
        True
    """
    task = NoisyQuadratic() if task is None else task
    _validate_run(num_ticks, steps_per_tick, momentum)
    if grid is None:
        grid = np.geomspace(
            _lr_ceiling(task, momentum) * 1e-4, _lr_ceiling(task, momentum) * 2.0, 64
        )
    shape = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.arange(num_ticks) / num_ticks))
    return _grid_search(
        task, lambda lr: lr * shape, np.asarray(grid), steps_per_tick, momentum
    )


def optimal_schedule(
    task: NoisyQuadratic | None = None,
    *,
    num_ticks: int,
    steps_per_tick: int = 1,
    momentum: float = 0.0,
    num_iterations: int = 1000,
    learning_rate: float = 0.05,
    init: Literal["constant", "cosine"] | Float[np.ndarray, " num_ticks"] = "constant",
    lr_bounds: tuple[float, float] | None = None,
) -> NQMSchedule:
    """The schedule minimising the exact expected final NQM loss, by gradient descent.

    Every tick has its own learning rate (held for its ``steps_per_tick``
    steps). They are parameterised as ``log lr = log lo + (log hi - log lo) *
    sigmoid(u)`` (smooth, always inside ``lr_bounds``) and ``u`` is optimised
    with ``optax.adam`` on ``log E[L(theta_T)]`` differentiated through the
    closed-form recurrence of :func:`expected_loss`; the whole optimisation is
    one jitted ``lax.scan``. It starts from the best constant (or cosine)
    schedule of the default grid and returns the best iterate seen.

    Args:
        task: the quadratic; ``NoisyQuadratic()`` if omitted.
        num_ticks: ticks in the run.
        steps_per_tick: optimizer steps per tick.
        momentum: heavy-ball coefficient of the SGD being scheduled.
        num_iterations: Adam iterations.
        learning_rate: Adam's step size on ``u``.
        init: ``"constant"``, ``"cosine"`` (best on the grid), or an array of
            ``num_ticks`` initial learning rates.
        lr_bounds: ``(lo, hi)``; default ``(1e-6 hi, hi)`` with ``hi = 2 (1 +
            beta) / max h`` (the stability edge of a constant rate).

    Returns:
        An :class:`NQMSchedule` with the objective history (the expected final
        loss at every Adam iteration).

    Raises:
        ValueError: ``num_ticks``, ``steps_per_tick`` or ``num_iterations``
            not an int >= 1; ``momentum`` outside [0, 1); ``lr_bounds`` not
            ``0 < lo < hi``; an unknown ``init`` string, or an ``init`` array
            that is not ``num_ticks`` positive finite rates.

    Examples:
        >>> from optax_lode.tasks.nqm import (
        ...     NoisyQuadratic, best_constant_schedule, optimal_schedule)
        >>> task = NoisyQuadratic()
        >>> best = optimal_schedule(task, num_ticks=100, steps_per_tick=10,
        ...                         num_iterations=200)
        >>> best.tick_learning_rates.shape
        (100,)
        >>> constant = best_constant_schedule(task, num_ticks=100, steps_per_tick=10)
        >>> bool(best.expected_loss < 0.5 * constant.expected_loss)
        True
    """
    task = NoisyQuadratic() if task is None else task
    _validate_run(num_ticks, steps_per_tick, momentum)
    if not (isinstance(num_iterations, int) and num_iterations >= 1):
        raise ValueError(f"num_iterations must be an int >= 1, got {num_iterations!r}.")
    hi = _lr_ceiling(task, momentum)
    lo, hi = (hi * 1e-6, hi) if lr_bounds is None else map(float, lr_bounds)
    if not 0.0 < lo < hi:
        raise ValueError(f"lr_bounds must satisfy 0 < lo < hi, got {(lo, hi)}.")
    log_lo, log_span = math.log(lo), math.log(hi) - math.log(lo)

    if isinstance(init, str):
        if init == "constant":
            start = best_constant_schedule(
                task,
                num_ticks=num_ticks,
                steps_per_tick=steps_per_tick,
                momentum=momentum,
            ).tick_learning_rates
        elif init == "cosine":
            start = best_cosine_schedule(
                task,
                num_ticks=num_ticks,
                steps_per_tick=steps_per_tick,
                momentum=momentum,
            ).tick_learning_rates
        else:
            raise ValueError(
                f"init must be 'constant', 'cosine' or an array, got {init!r}."
            )
    else:
        start = np.asarray(init, np.float64)
        if (
            start.shape != (num_ticks,)
            or not np.all(np.isfinite(start))
            or np.any(start <= 0)
        ):
            raise ValueError(
                f"init must hold {num_ticks} positive finite learning rates, "
                f"got shape {start.shape}."
            )
    frac = np.clip(
        (np.log(np.asarray(start, np.float64)) - log_lo) / log_span, 1e-4, 1 - 1e-4
    )
    u0 = jnp.asarray(np.log(frac) - np.log1p(-frac), jnp.float32)

    def tick_rates(u):
        return jnp.exp(log_lo + log_span * jax.nn.sigmoid(u))

    def objective(u):
        rates = jnp.repeat(tick_rates(u), steps_per_tick)
        return jnp.log(_moment_trajectory(task, rates, momentum)[-1])

    opt = optax.adam(learning_rate)

    @jax.jit
    def run(u0):
        def body(carry, _):
            u, opt_state, best_u, best_val = carry
            val, grad = jax.value_and_grad(objective)(u)
            ok = jnp.isfinite(val)
            better = ok & (val < best_val)
            best_u = jnp.where(better, u, best_u)
            best_val = jnp.where(better, val, best_val)
            grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
            updates, opt_state = opt.update(grad, opt_state, u)
            return (optax.apply_updates(u, updates), opt_state, best_u, best_val), val

        init_carry = (u0, opt.init(u0), u0, jnp.asarray(jnp.inf, jnp.float32))
        (u, _, best_u, best_val), history = jax.lax.scan(
            body, init_carry, None, length=num_iterations
        )
        last = objective(u)
        best_u = jnp.where(last < best_val, u, best_u)
        return best_u, history

    best_u, history = run(u0)
    ticks = np.asarray(tick_rates(best_u))
    steps = np.repeat(ticks, steps_per_tick)
    final = float(expected_loss(steps, task=task, momentum=momentum))
    return NQMSchedule(ticks, steps, final, np.exp(np.asarray(history)))


def _count(value: object) -> bool:
    """An int, not a bool (True would be a batch of 1, silently)."""
    return isinstance(value, int) and not isinstance(value, bool)
