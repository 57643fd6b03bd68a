"""The static configuration of one decision (Algorithm 1's parameters).

Everything here is a Python number fixed before tracing: it sets array shapes
(ensemble size, rollout length, window length) or is a constant of the traced
program. Validation happens here, at construction, never inside ``jit``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from optax_lode.model import LatentODE

LR_RANGE_FACTOR = 2.0
"""Default multiplicative widening of the model's learning-rate range before
clipping: rates in ``[lr_min / 2, lr_max * 2]`` are allowed. The LODE cannot
be trusted far outside the rates it saw, but a factor of 2 lets it
extrapolate a little (the authors' untrained model emitted 1.12: unclipped).
"""

DECISION_REVISION = 5
"""Revision of the decision's semantics: bumped whenever the same model, window,
tick and key give a different decision, so caches of LODE-scheduled runs
(the demo's, the benchmarks') are not reused across it. 2: the segment starts
one tick after the matching tick. 3: ``lode_schedule`` decides on the first
step of tick ``t*``, with the metric measured after tick ``t* - 1``. 4: a tick
record's rate is the tick's rate (not a float mean of its equal rates) and the
Euler ensemble rollout folds the first layer; equal up to rounding, but
rounding can flip a decision (the demo's LODE - best baseline differed by ~1
point across the change), so runs made before are not reused. 5: the Euler
ensemble rollout also carries the decoder's first pre-activation, and
``lode_schedule`` computes the weights' products at run time instead of
constant-folding them (both equal up to rounding, as for 4). Not bumped for
a window without one complete record, which now falls back: ``train_run``
(every cached run) measures the metric every tick, so its windows at tick
``mu`` and later are complete and its decisions did not change.
"""

STD_FLOOR = 0.05
"""Default floor on the std of the window's (normalised, log) losses used by
the acceptance test. In normalised units 1.0 is the spread of log-losses
over all training runs; 0.05 keeps a perfectly flat window (std 0) from
rejecting every sample because of the model's own reconstruction error.
"""

#: How many of the best accepted samples are averaged (the paper: three).
TOP = 3

MATCH_RULES: tuple[str, ...] = ("highest_lr", "closest_loss")
"""How a member's matching tick ``k_i`` is chosen among its ticks whose
predicted loss passes the acceptance test:

- ``"highest_lr"`` (default, the paper): the one with the highest predicted
  learning rate. On a decaying predicted path that is the earliest matching
  tick, however far its predicted loss is from the live loss within the
  acceptance band.
- ``"closest_loss"`` (opt-in, not in the paper): the one whose predicted
  loss is closest to the live loss, i.e. where the member's trajectory
  actually is now; ties go to the earliest. It does not inherit a bias of
  the model's reconstruction of the current rate the way the earliest tick
  does (see ``benchmarks/nqm_optimality_gap.py``).
"""

ANCHORS: tuple[str, ...] = ("model", "live")
"""What the chosen members' rate paths are anchored to:

- ``"model"`` (default, the paper): the members' own predicted rates,
  ``eta_i(k_i + 1 + j)``. Each decision restarts from the model's
  reconstruction of the current rate, so a reconstruction bias (a fitted
  LODE regresses the rate toward its sweep's typical rates) is re-applied
  at every decision.
- ``"live"`` (opt-in, not in the paper): the members' predicted *relative*
  change applied to the live run's current rate,
  ``eta_live * eta_i(k_i + 1 + j) / eta_i(k_i)``: the model decides the
  shape of the next segment, the run keeps its own level.
"""


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


@dataclasses.dataclass(frozen=True)
class DecisionConfig:
    """Static parameters of :func:`optax_lode.decide` (hashable, jit-static).

    Build it with :meth:`DecisionConfig.from_model`, which validates every
    field; the constructor itself only checks types and ranges.

    Attributes:
        model_ticks: ``T`` of the model (its training runs' ticks); the
            acceptance test searches predicted ticks ``0 .. model_ticks``.
        run_ticks: ``T`` of the live run (``total_steps // steps_per_tick``).
        mu: window length and decision period, in live ticks.
        n: ensemble size (member 0 is the direct latent).
        sigma: ensemble noise, in units of the model's ``latent_scale``.
        tol: acceptance tolerance, in window-loss standard deviations.
        horizon: how far ahead of each decision's matched tick the metric is
            scored (the paper's Delta t): ``None`` to the end of the run
            (``T - t*``), an int number of live ticks in ``[1, T]``, or a float ``f``:
            ``max(1, round(f * run_ticks))`` ticks. A distance, the same at
            every decision, not a point of the run: with ``f = 0.5`` the decisions
            after mid-run score past its end, where the model extrapolates.
        std_floor: floor on the window-loss std (normalised log-loss units).
        lr_min: smallest learning rate ever emitted.
        lr_max: largest learning rate ever emitted.
        top: how many best accepted samples are averaged.
        match_rule: how a member's matching tick is chosen, one of
            :data:`MATCH_RULES`: ``"highest_lr"`` (the paper, default) or
            ``"closest_loss"``.
        anchor: what the segment is anchored to, one of :data:`ANCHORS`:
            ``"model"`` (the paper, default) or ``"live"``.

    Raises:
        TypeError: ``model_ticks``, ``run_ticks``, ``mu``, ``n`` or ``top`` is
            not an int; ``sigma``, ``tol``, ``std_floor``, ``lr_min`` or
            ``lr_max`` is not a real number; or ``horizon`` is neither None,
            an int nor a float.
        ValueError: ``model_ticks`` or ``run_ticks`` below 3; ``mu`` not in
            ``[2, run_ticks)``; ``n`` or ``top`` below 1; ``sigma`` negative
            or ``tol``, ``std_floor`` non-positive (or any not finite);
            bounds not ``0 < lr_min < lr_max`` normal float32 numbers; an
            unknown ``match_rule`` or ``anchor``; or a ``horizon`` out of
            range (an int not in ``[1, run_ticks]``, a float not in
            ``(0, 1]``).

    Examples:
        >>> cfg = DecisionConfig(model_ticks=100, run_ticks=100, mu=5)
        >>> cfg.n, cfg.top, cfg.horizon_ticks, cfg.grid_ticks
        (30, 3, None, 197)
    """

    model_ticks: int
    run_ticks: int
    mu: int
    n: int = 30
    sigma: float = 0.15
    tol: float = 2.0
    horizon: int | float | None = None
    std_floor: float = STD_FLOOR
    lr_min: float = 1e-8
    lr_max: float = 10.0
    top: int = TOP
    match_rule: str = "highest_lr"
    anchor: str = "model"

    def __post_init__(self) -> None:
        for name in ("model_ticks", "run_ticks", "mu", "n", "top"):
            if not _is_int(getattr(self, name)):
                raise TypeError(f"{name} must be an int, got {getattr(self, name)!r}")
            # A numpy int8 would overflow in the static arithmetic (mu * ...).
            object.__setattr__(self, name, int(getattr(self, name)))
        if _is_int(self.horizon):
            object.__setattr__(self, "horizon", int(self.horizon))
        for name in ("sigma", "tol", "std_floor", "lr_min", "lr_max"):
            if not _is_real(getattr(self, name)):
                raise TypeError(
                    f"{name} must be a real number, got {getattr(self, name)!r}"
                )
        if self.model_ticks < 3:
            raise ValueError(f"the model's T must be >= 3, got {self.model_ticks}")
        if self.run_ticks < 3:
            raise ValueError(
                f"the run must have at least 3 ticks (total_steps // "
                f"steps_per_tick), got {self.run_ticks}"
            )
        if self.mu < 2:
            raise ValueError(
                f"mu must be >= 2 ticks (the window needs a loss spread), "
                f"got mu={self.mu}"
            )
        if self.mu >= self.run_ticks:
            raise ValueError(
                f"mu must be < T={self.run_ticks} ticks of the run so at least "
                f"one decision happens, got mu={self.mu}; lower mu or raise "
                "total_steps / lower steps_per_tick"
            )
        if self.n < 1:
            raise ValueError(f"the ensemble size n must be >= 1, got n={self.n}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"sigma must be finite and >= 0, got {self.sigma}")
        if not (math.isfinite(self.tol) and self.tol > 0):
            raise ValueError(f"tol must be finite and > 0, got {self.tol}")
        if not (math.isfinite(self.std_floor) and self.std_floor > 0):
            raise ValueError(f"std_floor must be finite and > 0, got {self.std_floor}")
        if not (
            math.isfinite(self.lr_min)
            and math.isfinite(self.lr_max)
            and 0 < self.lr_min < self.lr_max
        ):
            raise ValueError(
                "learning-rate bounds must satisfy 0 < lr_min < lr_max < inf, "
                f"got ({self.lr_min}, {self.lr_max})"
            )
        # Rates are float32: bounds that round to 0, a subnormal or inf there
        # would emit rates that are not finite and positive.
        with np.errstate(over="ignore"):
            lo32, hi32 = np.float32(self.lr_min), np.float32(self.lr_max)
        if not (lo32 >= np.finfo(np.float32).tiny and np.isfinite(hi32)):
            raise ValueError(
                "learning-rate bounds must be normal float32 numbers (about "
                f"1.2e-38 .. 3.4e38), got ({self.lr_min}, {self.lr_max})"
            )
        # The decision computes in float32: a tol or floor that rounds to 0
        # there made every decision a fallback, a sigma past its range NaN
        # members.
        tiny, big = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
        for name in ("tol", "std_floor"):
            value = getattr(self, name)
            if not tiny <= value <= big:
                raise ValueError(
                    f"{name} must be a normal float32 number (about 1.2e-38 .. "
                    f"3.4e38), in which the decision computes; got {value}"
                )
        if self.sigma > big:
            raise ValueError(f"sigma must be a float32 number, got {self.sigma}")
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")
        if self.match_rule not in MATCH_RULES:
            raise ValueError(
                f"match_rule must be one of {list(MATCH_RULES)}, got "
                f"{self.match_rule!r}"
            )
        if self.anchor not in ANCHORS:
            raise ValueError(
                f"anchor must be one of {list(ANCHORS)}, got {self.anchor!r}"
            )
        h = self.horizon
        if h is None:
            pass
        elif _is_int(h):
            if not 1 <= h <= self.run_ticks:
                # 0 would score each member at its matched tick, before any
                # rate of the segment acts (a float horizon is >= 1 tick too).
                # Longer than T would score past the end of the run, and the
                # rollout grid (memory and time per decision) grows with it.
                raise ValueError(
                    f"an int horizon is in ticks and must be in [1, T={self.run_ticks}]"
                    f" (the run's ticks), got {h}; None scores at the run's end"
                )
        elif _is_real(h):
            if not (0.0 < float(h) <= 1.0):
                raise ValueError(
                    "a float horizon f scores round(f * T) ticks ahead and must be "
                    f"in (0, 1], got {h}; pass an int for a number of ticks"
                )
        else:
            raise TypeError(
                "horizon must be None (the remaining run), an int number of "
                f"ticks or a float f (round(f * T) ticks), got {h!r}"
            )

    # -- derived, static quantities --------------------------------------------

    @property
    def tick_scale(self) -> float:
        """Model ticks per live tick (1.0 unless the run is rescaled)."""
        return self.model_ticks / self.run_ticks

    @property
    def horizon_ticks(self) -> int | None:
        """The fixed horizon in live ticks, or ``None`` for "the remaining run"."""
        if self.horizon is None:
            return None
        if _is_int(self.horizon):
            return int(self.horizon)
        return max(1, round(float(self.horizon) * self.run_ticks))

    @property
    def window_points(self) -> int:
        """Rows of the window the encoder sees, on the model's tick grid.

        Rounded down: rounded to nearest, the oldest row could fall before the
        window's first live tick (read clamped, half a tick off). The 1e-9
        keeps a product like 3 * (2/3) * 1.5 from flooring below 3.
        """
        return max(2, math.floor((self.mu - 1) * self.tick_scale + 1e-9) + 1)

    @property
    def horizon_max_model(self) -> float:
        """The largest horizon any decision can use, in model ticks."""
        h = self.horizon_ticks
        live = self.run_ticks - self.mu if h is None else h
        return max(0, live) * self.tick_scale

    @property
    def grid_ticks(self) -> int:
        """Length of every rollout: ticks ``0 .. T + max(horizon, mu)`` (+1 so
        fractional positions can interpolate)."""
        reach = max(self.horizon_max_model, self.mu * self.tick_scale)
        return self.model_ticks + math.ceil(reach) + 2

    @property
    def segment_ticks(self) -> int:
        """Rollout rows every decision decodes in full: the acceptance range
        ``0 .. T`` and the segments' reach ``T + mu``, rows ``0 .. T + mu``
        (+1 row with rescaling, as in :attr:`grid_ticks`, for the fractional
        positions' neighbour). The score's rows beyond it are gathered."""
        if self.model_ticks == self.run_ticks:
            # Integer positions: the interpolation reads the row itself, never
            # its neighbour. One row fewer can be a whole rollout block fewer
            # (the demo's T = 60, mu = 3: 64 rows, 8 blocks of 8, not 9).
            return min(self.grid_ticks, self.model_ticks + self.mu + 1)
        return min(
            self.grid_ticks, self.model_ticks + math.ceil(self.mu * self.tick_scale) + 2
        )

    @property
    def num_top(self) -> int:
        """How many members are averaged: ``top``, or ``n`` if smaller."""
        return min(self.top, self.n)

    # -- construction from a model ----------------------------------------------

    @classmethod
    def from_model(
        cls,
        model: LatentODE,
        *,
        run_ticks: int | None = None,
        mu: int | None = None,
        n: int = 30,
        sigma: float = 0.15,
        tol: float = 2.0,
        horizon: int | float | None = None,
        lr_bounds: tuple[float, float] | None = None,
        lr_range_factor: float = LR_RANGE_FACTOR,
        std_floor: float = STD_FLOOR,
        top: int = TOP,
        rescale: bool = False,
        match_rule: str = "highest_lr",
        anchor: str = "model",
    ) -> DecisionConfig:
        """Validated configuration for ``model`` (a :class:`optax_lode.LatentODE`).

        Args:
            model: the fitted latent ODE (reads ``T``, ``mu`` and ``lr_range``).
            run_ticks: ticks of the live run; default the model's ``T``.
            mu: window and decision period in ticks; default the model's
                training window ``model.mu`` (scaled to the run's ticks when
                rescaling).
            n: ensemble size.
            sigma: latent noise in units of ``model.latent_scale``.
            tol: acceptance tolerance in window-loss standard deviations.
            horizon: ``None``, int ticks in ``[1, T]``, or a float ``f``:
                ``max(1, round(f * T))`` ticks ahead of each matched tick (a
                distance).
            lr_bounds: ``(lr_min, lr_max)`` to clip to; default the model's
                ``lr_range`` widened by ``lr_range_factor`` on both sides.
            lr_range_factor: the widening factor (>= 1).
            std_floor: floor on the window-loss std (normalised units).
            top: how many best accepted samples are averaged.
            rescale: allow ``run_ticks != model.T`` by mapping both onto the
                fraction of training done (linear interpolation on the model's
                tick grid). Without it a mismatch is a ``ValueError``.
            match_rule: how a member's matching tick is chosen
                (:data:`MATCH_RULES`); default the paper's ``"highest_lr"``.
            anchor: what the segment is anchored to (:data:`ANCHORS`);
                default the paper's ``"model"``.

        Returns:
            The configuration.

        Raises:
            ValueError: on any invalid value, with what to change.
            TypeError: on a parameter of the wrong type (a float ``mu``,
                ``n``, ``top`` or ``run_ticks``, a non-real ``sigma``,
                ``tol``, ``std_floor`` or bound, a ``horizon`` that is neither
                an int nor a float).

        Examples:
            >>> import jax
            >>> from optax_lode.model import LatentODE
            >>> model = LatentODE(T=100, key=jax.random.key(0))
            >>> cfg = DecisionConfig.from_model(model, lr_bounds=(1e-4, 1e-1))
            >>> cfg.run_ticks, cfg.mu, cfg.lr_min, cfg.lr_max
            (100, 5, 0.0001, 0.1)
            >>> cfg = DecisionConfig.from_model(model, run_ticks=200, rescale=True)
            >>> cfg.mu, cfg.tick_scale  # the model's window, in the run's ticks
            (10, 0.5)
        """
        model_ticks = int(model.T)
        run_ticks = model_ticks if run_ticks is None else run_ticks
        if not _is_int(run_ticks):
            raise TypeError(f"run_ticks must be an int, got {run_ticks!r}")
        if run_ticks != model_ticks and not rescale:
            raise ValueError(
                f"the run has T={run_ticks} ticks (total_steps // steps_per_tick) "
                f"but the model was fitted to runs of T={model_ticks} ticks. "
                f"Choose steps_per_tick so the run has {model_ticks} ticks, or "
                "pass rescale=True to map both onto the fraction of training done."
            )
        if not isinstance(rescale, bool | np.bool_):
            raise TypeError(f"rescale must be True or False, got {rescale!r}")
        if mu is None:
            # The model's training window, in live ticks when rescaling.
            model_mu = getattr(model, "mu", None) or 0.05 * model_ticks
            mu = max(2, round(model_mu * run_ticks / model_ticks))
            if _is_int(run_ticks) and mu >= run_ticks >= 3:
                scaled = (
                    f", scaled to the run's {run_ticks} ticks"
                    if run_ticks != model_ticks
                    else ""
                )
                raise ValueError(
                    f"mu defaults to the model's window (model.mu={model_mu:g} of "
                    f"its T={model_ticks} ticks{scaled}): {mu}, but mu must be < "
                    f"T={run_ticks} ticks of the run so at least one decision "
                    f"happens; pass mu= (2 .. {run_ticks - 1})."
                )
        if not _is_real(lr_range_factor):
            raise TypeError(
                f"lr_range_factor must be a number >= 1, got {lr_range_factor!r}"
            )
        if not (math.isfinite(lr_range_factor) and lr_range_factor >= 1.0):
            raise ValueError(
                f"lr_range_factor must be a finite number >= 1, got {lr_range_factor!r}"
            )
        if lr_bounds is not None and lr_range_factor != LR_RANGE_FACTOR:
            raise ValueError(
                f"lr_range_factor={lr_range_factor!r} widens the model's range, "
                "which lr_bounds replaces: give one of them (lr_bounds=(lo / "
                "factor, hi * factor) to widen your own)."
            )
        if lr_bounds is None:
            lo, hi = (float(x) for x in np.asarray(model.lr_range).reshape(-1)[:2])
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
                raise ValueError(
                    f"the model's lr_range ({lo}, {hi}) is not a valid positive "
                    "range; pass lr_bounds=(lr_min, lr_max) explicitly"
                )
            lr_min, lr_max = lo / lr_range_factor, hi * lr_range_factor
            if lr_min == lr_max:  # a single-rate sweep with factor 1
                lr_max = lr_min * (1 + 1e-6)
        else:
            try:
                if isinstance(lr_bounds, (str, bytes, Mapping)):
                    raise TypeError  # a dict's keys, a string's characters
                lo, hi = lr_bounds
            except (TypeError, ValueError):
                raise ValueError(
                    f"lr_bounds must be a pair (lr_min, lr_max), got {lr_bounds!r}"
                ) from None
            try:
                if any(isinstance(x, str | bytes | bool | np.bool_) for x in (lo, hi)):
                    raise TypeError  # float() would read "1e-3" and True
                lr_min, lr_max = float(lo), float(hi)
            except (TypeError, ValueError):
                raise TypeError(
                    f"lr_bounds must be a pair of real numbers, got {lr_bounds!r}"
                ) from None
        if _is_real(sigma) and math.isfinite(sigma):
            reach = float(np.max(np.abs(np.asarray(model.latent_scale, np.float64))))
            if sigma * reach > float(np.finfo(np.float32).max):
                raise ValueError(
                    f"sigma={sigma} times the model's latent_scale (up to "
                    f"{reach:.3g}) overflows float32: the ensemble would be NaN."
                )
        return cls(
            model_ticks=model_ticks,
            run_ticks=run_ticks,
            mu=mu,
            n=n,
            sigma=float(sigma) if _is_real(sigma) else sigma,
            tol=float(tol) if _is_real(tol) else tol,
            horizon=horizon,
            std_floor=float(std_floor) if _is_real(std_floor) else std_floor,
            lr_min=lr_min,
            lr_max=lr_max,
            top=top,
            match_rule=match_rule,
            anchor=anchor,
        )
