"""Synthetic learning curves whose dynamics depend on the learning rate.

A small, closed-form stand-in for a hyperparameter sweep, for tests, docs and
demos: no network is trained. The training loss follows the expected-loss
recurrence of a noisy quadratic model (Zhang et al. 2019) reduced to one
"effective" coordinate,

    L[t+1] = L[t] + k * eta[t] * (L_floor + b * eta[t] - L[t]),

so a larger learning rate makes faster progress towards a higher noise floor
``L_floor + b * eta``: the trade-off that makes annealing pay off, and that a
learning-rate scheduler has to learn. The validation metric (an accuracy-like
score in (0, 1), higher is better) is a smooth decreasing function of a slowly
tracked copy of the loss, so it lags the loss as a validation metric does. Small
multiplicative noise, seeded per run, plays the part of minibatch noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optax_lode.runs._trajectories import Trajectories

SCHEDULES = {
    "constant": lambda p: np.ones_like(p),
    "cosine": lambda p: 0.5 * (1.0 + np.cos(np.pi * p)) * 0.99 + 0.01,
    "linear": lambda p: 1.0 - 0.99 * p,
    "exponential": lambda p: 0.01**p,
    "onecycle": lambda p: (
        np.where(
            p < 0.3, 0.04 + 0.96 * p / 0.3, 0.5 * (1 + np.cos(np.pi * (p - 0.3) / 0.7))
        )
        * 0.99
        + 0.01
    ),
    # Abrupt drops (x0.1 at half and three quarters of the run): the shape that
    # tests whether a model's time resolution can follow a discontinuity.
    "step": lambda p: np.where(p < 0.5, 1.0, np.where(p < 0.75, 0.1, 0.01)),
}
"""Schedule shapes :func:`synthetic_sweep` knows, as functions of progress in [0, 1]."""


def schedule_path(schedule: str, peak_lr: float, ticks: int) -> np.ndarray:
    """The per-tick learning rate of a named shape scaled to ``peak_lr``.

    Args:
        schedule: a name from :data:`SCHEDULES` (``"constant"``,
            ``"cosine"``, ``"linear"``, ``"exponential"``, ``"onecycle"``,
            ``"step"``).
        peak_lr: the shape's largest rate (its first, but for ``onecycle``,
            which warms up to it).
        ticks: length of the path; progress runs from 0 at tick 0 to 1 at
            tick ``ticks - 1``.

    Returns:
        ``(ticks,)`` float64 learning rates.

    Raises:
        ValueError: ``schedule`` is not a name of :data:`SCHEDULES`.

    Examples:
        >>> schedule_path("step", 1.0, 4).tolist()
        [1.0, 1.0, 0.1, 0.01]
    """
    if schedule not in SCHEDULES:
        raise ValueError(
            f"unknown schedule {schedule!r}; use one of {list(SCHEDULES)}."
        )
    return peak_lr * SCHEDULES[schedule](np.arange(ticks) / max(ticks - 1, 1))


def simulate_curve(
    lr: np.ndarray,
    *,
    seed: int = 0,
    noise: float = 0.02,
    rate: float = 0.3,
    floor: float = 0.05,
    lr_cost: float = 2.0,
    initial_loss: float = 2.3,
    ticks_per_unit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and metric of one synthetic run driven by the learning rates ``lr``.

    Args:
        lr: ``(ticks,)`` positive learning rates, one per tick.
        seed: seed of the run's noise (and of a small spread in its start).
        noise: scale of the multiplicative loss noise and of the metric noise.
        rate: progress per tick per unit learning rate, scaled by
            ``100 / ticks_per_unit`` so curves look alike at any length.
        floor: loss reached with a vanishing learning rate.
        lr_cost: how much the learning rate raises the noise floor.
        initial_loss: loss at tick 0 (before noise).
        ticks_per_unit: ticks that the ``rate`` refers to; default ``len(lr)``.

    Returns:
        ``(loss, metric)``, each ``(ticks,)``; loss is positive, metric in (0, 1).

    Raises:
        ValueError: ``lr`` is not a non-empty 1-D array of positive finite
            rates, or ``ticks_per_unit`` is below 1.

    Examples:
        >>> loss, metric = simulate_curve(schedule_path("cosine", 3e-2, 50), seed=0)
        >>> loss.shape, bool(loss[-1] < loss[0]), bool(metric[-1] > metric[0])
        ((50,), True, True)
    """
    lr = np.asarray(lr, np.float64)
    if lr.ndim != 1 or lr.size == 0 or np.any(~np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError(
            "lr must be a non-empty 1-D array of positive finite learning rates."
        )
    if ticks_per_unit is not None and not ticks_per_unit >= 1:
        raise ValueError(
            f"ticks_per_unit must be >= 1 (or None); got {ticks_per_unit}."
        )
    ticks = lr.shape[0]
    scale = 100.0 / (ticks_per_unit or ticks)
    rng = np.random.default_rng(seed)
    k = rate * scale * 10.0  # the lr grid of interest is ~1e-3 .. 1e-1
    loss = np.empty(ticks)
    tracked = np.empty(ticks)
    L = initial_loss * np.exp(0.05 * rng.normal())
    S = L
    for t in range(ticks):
        # Cap the step so a huge learning rate overshoots to the floor, not past it.
        step = min(k * lr[t], 1.0)
        L = L + step * (floor + lr_cost * lr[t] - L)
        # The metric tracks the loss with a lag of a few percent of the run.
        S = S + min(4.0 * scale, 1.0) * (L - S)
        loss[t] = L * np.exp(noise * rng.normal())
        tracked[t] = S
    metric = 1.0 / (1.0 + 1.5 * tracked) + 0.5 * noise * rng.normal(size=ticks)
    return loss, np.clip(metric, 1e-3, 1 - 1e-3)


def synthetic_sweep(
    *,
    ticks: int = 100,
    schedules: Sequence[str] = ("constant", "cosine", "linear", "exponential"),
    peak_lrs: Sequence[float] = (3e-3, 1e-2, 3e-2, 1e-1),
    seeds: Sequence[int] = (0, 1),
    noise: float = 0.02,
) -> Trajectories:
    """A synthetic sweep: every schedule x peak learning rate x seed.

    Args:
        ticks: ticks per run.
        schedules: names from :data:`SCHEDULES`.
        peak_lrs: peak learning rates.
        seeds: run seeds.
        noise: noise scale (see :func:`simulate_curve`).

    Returns:
        The runs, with ``info`` columns ``schedule``, ``seed``, ``peak_lr`` and
        ``test_metric`` (the final metric plus independent noise), and run ids
        like ``"cosine-0.01-s0"``. Their :attr:`~Trajectories.steps_per_tick`
        is unknown (``None``): no optimizer steps were taken.

    Raises:
        ValueError: ``ticks`` below 1, an empty ``schedules``, ``peak_lrs`` or
            ``seeds``, an unknown schedule name, or a peak learning rate that
            is not positive and finite.

    Examples:
        >>> traj = synthetic_sweep(ticks=50, seeds=(0,))
        >>> traj.num_runs, traj.num_ticks
        (16, 50)
    """
    if int(ticks) < 1:
        raise ValueError(f"ticks must be >= 1; got {ticks}.")
    for name, values in (("schedules", schedules), ("peak_lrs", peak_lrs)):
        if len(values) == 0:
            raise ValueError(f"{name} is empty; give at least one.")
    if len(seeds) == 0:
        raise ValueError("seeds is empty; give at least one.")
    losses, metrics, lrs, info = [], [], [], []
    for s_i, schedule in enumerate(schedules):
        for l_i, peak in enumerate(peak_lrs):
            for seed in seeds:
                lr = schedule_path(schedule, float(peak), ticks)
                run_seed = 1_000_003 * s_i + 1_009 * l_i + int(seed)
                loss, metric = simulate_curve(lr, seed=run_seed, noise=noise)
                losses.append(loss)
                metrics.append(metric)
                lrs.append(lr)
                test = (
                    metric[-1]
                    + 0.5 * noise * np.random.default_rng(run_seed + 1).normal()
                )
                info.append((schedule, int(seed), float(peak), float(test)))
    run_ids = [f"{s}-{p:g}-s{seed}" for s, seed, p, _ in info]
    return Trajectories.from_arrays(
        np.stack(losses),
        np.stack(metrics),
        np.stack(lrs),
        run_ids=run_ids,
        info={
            "schedule": [i[0] for i in info],
            "seed": [i[1] for i in info],
            "peak_lr": [i[2] for i in info],
            "test_metric": [i[3] for i in info],
        },
    )
