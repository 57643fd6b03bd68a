"""``lode_schedule``: the LODE scheduler as an Optax gradient transformation.

The whole scheduler lives in the optimizer state and the traced ``update``: the
tick clock, the tick accumulators, the window of the last ``mu`` tick records,
the pending learning-rate segment, the PRNG key and diagnostics. A decision
(:func:`optax_lode.decide`) runs in a ``lax.cond`` branch only on the first
step of ticks ``mu, 2 mu, ...`` (the step that brings the validation metric measured
after the last tick), so the training step stays one XLA program with no host
round trip and no recompilation from one step to the next.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, UInt32
from optax._src import numerics

from optax_lode._jax_defaults import jax_defaults
from optax_lode._seeds import check_seed
from optax_lode.decision import (
    LR_RANGE_FACTOR,
    STD_FLOOR,
    DecisionConfig,
    decide,
)
from optax_lode.decision._config import _is_int

if TYPE_CHECKING:  # annotations only
    from optax_lode.model import LatentODE

_MISSING = object()

_MODEL_FIELDS = (
    "T",
    "normalisation",
    "lr_range",
    "best_lr_path",
    "latent_scale",
    "encode",
    "decode",
)


# Everything but the rate is packed into ONE uint32 vector (floats and ints
# bitcast): in a Python loop calling the jitted step, every state leaf is a
# buffer the runtime passes in and out of each call, ~5 us each on 2 CPU cores
# (measured ad hoc: six leaves instead of one made a small MLP's step ~20%
# slower), and a step of a small model takes ~200 us.
_COUNTERS = (
    "count",
    "tick",
    "step_in_tick",
    "loss_steps",
    "segment_pos",
    "decisions",
    "fallbacks",
    "last_accepted",
    "nonfinite",
    "run_ticks",
)
_SCALARS = ("loss_sum", "metric", "last_score")
_C = {name: i for i, name in enumerate(_COUNTERS)}
_S = {name: i for i, name in enumerate(_SCALARS)}
# Layout of LodeState.data: counters, scalars, key, then window and segment
# (whose length, 4 mu, gives mu).
_KEY = len(_COUNTERS) + len(_SCALARS)
_HEAD = _KEY + 2
# The state holds two key words: threefry's, whatever jax_default_prng_impl
# says (rbg's keys are four words and would shift the packed layout).
_PRNG = "threefry2x32"


def _bits(x: Array, dtype: Any) -> Array:
    return jax.lax.bitcast_convert_type(jnp.asarray(x), dtype)


def _mu_of(data: Array) -> int:
    return (data.shape[-1] - _HEAD) // 4


def _part(name: str, doc: str) -> property:
    def get(self):
        d = self.data
        mu = _mu_of(d)
        if name == "counters":
            return _bits(d[..., : len(_COUNTERS)], jnp.int32)
        if name == "scalars":
            return _bits(d[..., len(_COUNTERS) : _KEY], jnp.float32)
        if name == "key":
            return jnp.asarray(d[..., _KEY:_HEAD])
        if name == "window":
            w = _bits(d[..., _HEAD : _HEAD + 3 * mu], jnp.float32)
            return w.reshape(*w.shape[:-1], mu, 3)
        return _bits(d[..., _HEAD + 3 * mu :], jnp.float32)  # segment

    return property(get, doc=doc)


def _field(name: str, doc: str) -> property:
    # One word sliced, then bitcast: bitcasting the whole scalars vector would
    # trip jax_debug_nans on its NaN placeholders when reading a finite field.
    if name in _C:
        i, dtype = _C[name], jnp.int32
    else:
        i, dtype = len(_COUNTERS) + _S[name], jnp.float32
    return property(lambda self: _bits(self.data[..., i], dtype), doc=doc)


class LodeState(NamedTuple):
    """State of :func:`lode_schedule` (fixed shapes and dtypes from ``init`` on).

    Two arrays: the rate, and everything else packed into one ``uint32``
    vector ``data`` (each leaf costs every call of a jitted step), read
    through the named properties below (which also work on states stacked by
    ``lax.scan`` or ``vmap``).

    Attributes:
        learning_rate: the rate the last ``update`` applied (read it with
            ``optax.tree.get(state, "learning_rate")``).
        data: the packed bookkeeping: ``counters``, ``scalars``, ``key``,
            ``window`` and ``segment`` (properties).

    Examples:
        >>> import jax, jax.numpy as jnp, optax_lode
        >>> model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
        >>> tx = optax_lode.lode_schedule(model, total_steps=40, steps_per_tick=2)
        >>> state = tx.init({"w": jnp.zeros(3)})
        >>> int(state.tick), int(state.run_ticks), int(state.decisions)
        (0, 20, 0)
        >>> state.window.shape, state.segment.shape, state.data.dtype
        ((2, 3), (2,), dtype('uint32'))
    """

    learning_rate: Float[Array, ""]
    data: UInt32[Array, " packed"]

    counters = _part(
        "counters",
        "``int32`` ``count, tick, step_in_tick, loss_steps, segment_pos, "
        "decisions, fallbacks, last_accepted, nonfinite, run_ticks``.",
    )
    scalars = _part("scalars", "``float32`` ``loss_sum, metric, last_score``.")
    window = _part(
        "window",
        "The last ``mu`` tick records ``(loss, metric, lr)``, oldest first "
        "(NaN rows until ``mu`` ticks have completed).",
    )
    segment = _part(
        "segment",
        "Learning rates of the current ``mu``-tick segment, one per tick "
        "(before the first decision: the best training run's path).",
    )
    key = _part("key", "Raw ``uint32`` PRNG key data, split at every decision.")

    count = _field("count", "Updates applied so far.")
    tick = _field("tick", "Completed ticks.")
    step_in_tick = _field("step_in_tick", "Steps accumulated in this tick.")
    loss_steps = _field("loss_steps", "Finite losses in this tick.")
    segment_pos = _field("segment_pos", "This tick's index into segment.")
    decisions = _field("decisions", "Decisions made.")
    fallbacks = _field(
        "fallbacks",
        "Decisions that held the last rate (nothing accepted or non-finite).",
    )
    last_accepted = _field(
        "last_accepted",
        "Accepted ensemble members of the last decision.",
    )
    nonfinite = _field(
        "nonfinite",
        "Steps whose value was non-finite or non-positive (not recorded).",
    )
    run_ticks = _field(
        "run_ticks",
        "Ticks of the run its schedule decides for (``total_steps // "
        "steps_per_tick``; set by every update, so a state continued by "
        "another schedule reports that one's): no decision from then on.",
    )
    loss_sum = _field("loss_sum", "Sum of this tick's losses.")
    metric = _field("metric", "Latest finite validation metric (held).")
    last_score = _field(
        "last_score",
        "Predicted metric of the last decision (NaN before one, on fallback).",
    )

    def __repr__(self) -> str:
        plain = f"LodeState(learning_rate={self.learning_rate!r}, data={self.data!r})"
        data, lr = self.data, self.learning_rate
        if not (
            isinstance(data, np.ndarray | jax.Array) and isinstance(lr, type(data))
        ):
            return plain  # traced, or shapes (jax.eval_shape)
        if isinstance(data, jax.core.Tracer) or data.ndim != 1 or lr.ndim != 0:
            return plain  # stacked over runs: index one first
        if data.dtype != np.uint32:
            return plain
        f = host_fields(self)
        return (
            f"LodeState(learning_rate={float(f['learning_rate']):.6g}, "
            f"tick={int(f['tick'])} of {int(f['run_ticks'])}, "
            f"count={int(f['count'])}, decisions={int(f['decisions'])}, "
            f"fallbacks={int(f['fallbacks'])}, "
            f"last_accepted={int(f['last_accepted'])}, "
            f"nonfinite={int(f['nonfinite'])}, mu={_mu_of(data)}, "
            f"data=uint32[{data.shape[0]}])"
        )

    @classmethod
    def from_parts(
        cls,
        *,
        counters: Array,
        scalars: Array,
        window: Array,
        segment: Array,
        learning_rate: Array,
        key: Array,
    ) -> LodeState:
        """Packs the parts (as the properties return them) into a state.

        Args:
            counters: the ``int32`` counters, in the order of :attr:`counters`.
            scalars: the ``float32`` scalars, in the order of :attr:`scalars`.
            window: ``(mu, 3)`` tick records.
            segment: ``(mu,)`` learning rates.
            learning_rate: the rate the last update applied.
            key: raw ``uint32`` PRNG key data (2 words).

        Returns:
            The state (traceable: it works under ``jit`` and ``vmap``).

        Examples:
            >>> import jax, jax.numpy as jnp, optax_lode
            >>> model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
            >>> tx = optax_lode.lode_schedule(model, total_steps=40, steps_per_tick=2)
            >>> state = tx.init({"w": jnp.zeros(3)})
            >>> again = LodeState.from_parts(
            ...     counters=state.counters, scalars=state.scalars,
            ...     window=state.window, segment=state.segment,
            ...     learning_rate=state.learning_rate, key=state.key)
            >>> bool((again.data == state.data).all())
            True
        """
        data = jnp.concatenate(
            [
                _bits(jnp.asarray(counters, jnp.int32), jnp.uint32),
                _bits(jnp.asarray(scalars, jnp.float32), jnp.uint32),
                jnp.asarray(key, jnp.uint32),
                _bits(jnp.asarray(window, jnp.float32).reshape(-1), jnp.uint32),
                _bits(jnp.asarray(segment, jnp.float32), jnp.uint32),
            ]
        )
        return cls(learning_rate=jnp.asarray(learning_rate, jnp.float32), data=data)

    @classmethod
    def pack(
        cls,
        *,
        window: Array,
        segment: Array,
        learning_rate: Array,
        key: Array,
        **named: Array,
    ) -> LodeState:
        """Builds a state from every named quantity (see the properties).

        Args:
            window: ``(mu, 3)`` tick records.
            segment: ``(mu,)`` learning rates.
            learning_rate: the rate the last update applied.
            key: raw ``uint32`` PRNG key data (2 words).
            **named: every counter (``count``, ``tick``, ``step_in_tick``,
                ``loss_steps``, ``segment_pos``, ``decisions``,
                ``fallbacks``, ``last_accepted``, ``nonfinite``,
                ``run_ticks``) and scalar (``loss_sum``, ``metric``,
                ``last_score``), by name.

        Returns:
            The state.

        Raises:
            TypeError: a counter or scalar is missing, or a name is not one.

        Examples:
            >>> import jax, jax.numpy as jnp, optax_lode
            >>> model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
            >>> tx = optax_lode.lode_schedule(model, total_steps=40, steps_per_tick=2)
            >>> state = tx.init({"w": jnp.zeros(3)})
            >>> names = ("tick step_in_tick loss_steps segment_pos decisions "
            ...          "fallbacks last_accepted nonfinite run_ticks loss_sum "
            ...          "metric last_score").split()
            >>> parts = ("window", "segment", "learning_rate", "key")
            >>> edited = LodeState.pack(
            ...     count=7, **{k: getattr(state, k) for k in (*names, *parts)})
            >>> int(edited.count), int(edited.run_ticks)
            (7, 20)
        """
        missing = set(_COUNTERS + _SCALARS) - set(named)
        unknown = set(named) - set(_COUNTERS + _SCALARS)
        if missing or unknown:
            raise TypeError(
                f"LodeState.pack: missing {sorted(missing)}, unknown "
                f"{sorted(unknown)}; it takes exactly {list(_COUNTERS + _SCALARS)} "
                "besides window, segment, learning_rate and key"
            )
        return cls.from_parts(
            counters=jnp.stack([jnp.asarray(named[k], jnp.int32) for k in _COUNTERS]),
            scalars=jnp.stack([jnp.asarray(named[k], jnp.float32) for k in _SCALARS]),
            window=window,
            segment=segment,
            learning_rate=learning_rate,
            key=key,
        )


def host_fields(state: LodeState) -> dict[str, np.ndarray]:
    """``state``'s learning rate and every counter and scalar, read on the host
    with NumPy: no jax op, so none trips ``jax_debug_nans`` on a NaN
    placeholder (``last_score`` before a decision)."""
    data = np.asarray(jax.device_get(state.data))
    fields = {"learning_rate": np.asarray(jax.device_get(state.learning_rate))}
    for names, start, dtype in ((_C, 0, np.int32), (_S, len(_COUNTERS), np.float32)):
        for name, i in names.items():
            fields[name] = data[..., start + i : start + i + 1].view(dtype)[..., 0]
    return fields


def lode_states(tree: Any) -> list[LodeState]:
    """The :class:`LodeState` nodes of ``tree`` (an optimizer state, whatever
    chains or wrappers hold them), in leaf order."""

    def is_state(x: Any) -> bool:
        return isinstance(x, LodeState)

    return [x for x in jax.tree.leaves(tree, is_leaf=is_state) if is_state(x)]


def _get(state: LodeState, name: str) -> Array:
    """A field as the step reads it: its whole vector bitcast, then indexed.

    Not the property's word-by-word read (which keeps an eager read of a finite
    field clear of ``jax_debug_nans``): the step's program stays the one the
    cost benchmarks measured, and XLA lays out the step anew for any change
    in its graph (docs/schedule.md, "Findings behind the design")."""
    if name in _C:
        return state.counters[..., _C[name]]
    return state.scalars[..., _S[name]]


def _tick_start(state: LodeState) -> Array:
    """Whether this step is a tick's first (after tick 0): the step that brings
    the metric measured after the last tick, and at ticks mu, 2 mu, ... the
    step that decides."""
    return (_get(state, "step_in_tick") == 0) & (_get(state, "tick") > 0)


def _warm_start(model: Any, config: DecisionConfig) -> np.ndarray:
    """Rates for live ticks ``0 .. mu - 1``: the best training run's path.

    Read on the model's tick grid at the same fraction of training (exact
    indices unless rescaling), clipped like every emitted rate.
    """
    path = np.asarray(model.best_lr_path, np.float64).reshape(-1)
    if path.shape[0] != config.model_ticks:
        raise ValueError(
            f"model.best_lr_path has {path.shape[0]} entries, expected T="
            f"{config.model_ticks}; the model artifact is inconsistent"
        )
    pos = np.arange(config.mu) * config.tick_scale
    rates = np.interp(pos, np.arange(path.shape[0]), path)
    mid = math.sqrt(config.lr_min * config.lr_max)
    rates = np.where(np.isfinite(rates) & (rates > 0), rates, mid)
    return np.clip(rates, config.lr_min, config.lr_max).astype(np.float32)


def _check_model_clock(model, total_steps: int, steps_per_tick: int) -> None:
    """Refuses a run whose tick is not the fitted runs' (when the model knows
    theirs): the same T on another tick is another time axis."""
    fitted = getattr(model, "steps_per_tick", None)
    if fitted is None:
        return
    ticks = int(model.T)
    if steps_per_tick == fitted and total_steps // steps_per_tick == ticks:
        return
    raise ValueError(
        f"the model was fitted to runs of T={ticks} ticks of {fitted} optimizer "
        f"step(s) each ({ticks * fitted} steps), but this run has "
        f"total_steps={total_steps}, steps_per_tick={steps_per_tick}. Build the "
        f"schedule on the same clock (steps_per_tick={fitted}, total_steps of "
        f"{ticks * fitted} to {ticks * fitted + fitted - 1}), or pass rescale=True "
        "to map both runs onto the fraction of training done. If the runs' "
        "recorded clock was wrong (a tracker whose step is not the optimizer "
        "step), correct the model with model.with_steps_per_tick(k) (no refit), "
        "or refit on runs.with_steps_per_tick(k) (optax-lode fit "
        "--optimizer-steps-per-tick K)."
    )


def lode_schedule(
    model: LatentODE,
    *,
    total_steps: int,
    steps_per_tick: int = 1,
    mu: int | None = None,
    n: int = 30,
    sigma: float = 0.15,
    horizon: int | float | None = None,
    tol: float = 2.0,
    lr_bounds: tuple[float, float] | None = None,
    seed: int = 0,
    lr_range_factor: float = LR_RANGE_FACTOR,
    std_floor: float = STD_FLOOR,
    rescale: bool = False,
    match_rule: str = "highest_lr",
    anchor: str = "model",
    axis_name: Hashable | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Scales updates by a learning rate chosen by a latent ODE of training.

    Every ``mu`` ticks the scheduler encodes the run's last ``mu`` tick records
    ``(mean training loss, latest validation metric, mean learning rate)``,
    samples an ensemble of nearby latents, rolls them forward, keeps those
    whose predicted loss matches the live loss, scores them by the predicted
    validation metric ``horizon`` ticks ahead and sets the next ``mu`` ticks'
    learning rates to the mean of the best three predicted rate paths
    (:func:`optax_lode.decide`). Before the first decision it follows the best
    training run's rate path. One tick is ``steps_per_tick`` calls of
    ``update``; the rate is constant within a tick.

    **Put it after the base optimizer**, whose learning rate must be 1.0:
    ``optax.chain(optax.adamw(1.0, weight_decay=w), lode_schedule(...))`` is
    exactly AdamW with learning rate ``eta_t`` (decoupled weight decay
    included) and ``chain(sgd(1.0, momentum=m), lode_schedule(...))`` exactly
    SGD with ``eta_t``. Placed *before* Adam the scale cancels in Adam's
    normalisation and the schedule does nothing.

    ``update(updates, state, params=None, *, value, val_metric)`` needs:

    - ``value``: this step's training loss (optax's name, shared with
      ``reduce_on_plateau``). In data-parallel or multi-host training pass the
      *global* mean loss, so every device makes the same decision. A
      non-finite or non-positive value is not recorded (the tick's mean uses
      the other steps) and is counted in ``state.nonfinite``.
    - ``val_metric``: the latest validation metric, higher is better (pass the
      last known one, or NaN for "nothing new": the last finite one is held).
      When ``model.metric_negated`` (fitted to a lower-is-better metric,
      negated), pass the negated value, e.g. ``val_metric=-val_loss``.
      A tick's record takes the latest metric known at the first step of the
      next tick: measure validation after a tick's last step and pass it with
      the next step, as a training loop naturally does. The decision at tick
      ``t*`` runs on that first step, before the step's rate is applied.

    Args:
        model: a fitted :class:`optax_lode.LatentODE` (closed over, like a
            schedule's constants).
        total_steps: optimizer steps in the whole run.
        steps_per_tick: optimizer steps per tick, as in the sweep the model
            was fitted to (checked when the model records it).
        mu: window and decision period in ticks; default the model's training
            window ``model.mu``.
        n: ensemble size.
        sigma: ensemble noise in units of the model's per-dimension latent
            scale.
        horizon: how far ahead the metric is scored (the paper's Delta t):
            ``None`` to the end of the run (``T - t*``, the paper's best
            setting), an int number of ticks (1 to ``T``), or a float
            ``f`` in ``(0, 1]``: ``max(1, round(f * T))`` ticks ahead of each
            decision's matched tick (a distance, not the point ``f`` of the
            run).
        tol: acceptance tolerance in standard deviations of the window's
            (normalised log) losses.
        lr_bounds: ``(lr_min, lr_max)`` every emitted rate is clipped to;
            default the model's ``lr_range`` widened by ``lr_range_factor``.
        seed: seed of the ensemble noise (split at every decision), in
            ``[0, 2**32)`` like every seed of the library.
        lr_range_factor: widening of ``model.lr_range`` (default 2: rates in
            ``[min / 2, 2 max]``).
        std_floor: floor on the window-loss std of the acceptance test.
        rescale: allow a run whose ``T = total_steps // steps_per_tick``
            differs from the model's by mapping both onto the fraction of
            training done. Without it a mismatch raises ``ValueError``, and so
            does a ``steps_per_tick`` other than the fitted runs' when the
            model records theirs (``model.steps_per_tick``).
        match_rule: how a member's matching tick is chosen among the ticks
            whose predicted loss passes the acceptance test: ``"highest_lr"``
            (the paper, default) or ``"closest_loss"`` (opt-in: the tick whose
            predicted loss is closest to the live loss), see
            :data:`optax_lode.decision.MATCH_RULES`.
        anchor: what each decision's segment is anchored to: ``"model"``
            (the paper, default: the chosen members' own predicted rates) or
            ``"live"`` (opt-in: their predicted relative change applied to
            the run's current rate), see :data:`optax_lode.decision.ANCHORS`.
        axis_name: the name of a ``jax.vmap`` axis over independent runs
            (``jax.vmap(train_step, axis_name="runs")``), for training several
            LODE-scheduled runs as one vmapped program. Without it the
            decision's ``lax.cond`` has a per-run predicate there, which JAX
            turns into a ``select`` that runs the decision at *every* step;
            with it the runs' predicates are combined (``lax.pmax`` over the
            axis) into one, the ``cond`` stays a ``cond``, and the runs decide
            together at their decision ticks (a run not at one keeps its own
            state). Each run's rates are those it gets alone, to the vmapped
            training's float rounding. Under nested vmaps over runs, name
            them all (a tuple, outer first): a vmap left out batches the
            predicate again. Runs one per device under ``jax.shard_map`` or
            ``jax.pmap`` need no ``axis_name`` (each device runs its own
            ``cond``); naming a device axis would add a cross-device
            reduction to every step. Default ``None``: no vmap over runs (or
            the slow ``select``).

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` with state
        :class:`LodeState`.

    Raises:
        ValueError: on invalid configuration (``mu < 2``, ``mu >= T``,
            ``n < 1``, ``sigma < 0``, ``steps_per_tick < 1``, a ``T`` or
            ``steps_per_tick`` mismatch without ``rescale``, a model of
            ``T < 3``, ``lr_range_factor`` given with ``lr_bounds``, ...), at
            construction.
        TypeError: on an argument of the wrong type (a float ``total_steps``,
            ``steps_per_tick``, ``n`` or ``seed``, a ``horizon`` that is
            neither an int nor a float, a non-real bound, a ``rescale`` that
            is not a bool, a jax array for any of them, as
            ``optax.inject_hyperparams(lode_schedule)`` passes, an unhashable
            ``axis_name``, a ``model`` that is not a
            :class:`~optax_lode.LatentODE`), at construction. ``update``
            raises one for a missing or non-real ``value`` or ``val_metric``,
            and for a state whose dtypes changed (a cast of the optimizer
            state).

    Examples:
        >>> import jax, jax.numpy as jnp, optax, optax_lode
        >>> model = optax_lode.LatentODE(T=100, key=jax.random.key(0))
        >>> tx = optax.chain(
        ...     optax.adamw(1.0, weight_decay=1e-4),
        ...     optax_lode.lode_schedule(model, total_steps=1000, steps_per_tick=10),
        ... )
        >>> params = {"w": jnp.ones(3)}
        >>> state = tx.init(params)
        >>> grads = {"w": jnp.ones(3)}
        >>> updates, state = tx.update(
        ...     grads, state, params, value=jnp.float32(0.7), val_metric=0.5)
        >>> lr = optax.tree.get(state, "learning_rate")

    References:
        Sampson & Melchior, "Dynamics of Learning: Generative Schedules from
        Latent ODEs", 2025 (arXiv:2509.23052), Section 3.2 and Algorithm 1.
    """
    try:
        hash(axis_name)
    except TypeError:
        raise TypeError(
            "axis_name must be a vmap axis name (a string) or a tuple of "
            f"names, got {axis_name!r}"
        ) from None
    missing = [f for f in _MODEL_FIELDS if not hasattr(model, f)]
    if missing:
        raise TypeError(
            f"model must be an optax_lode.LatentODE; {type(model).__name__} "
            f"lacks {', '.join(missing)}"
        )
    # optax.inject_hyperparams(lode_schedule) makes every numeric argument,
    # defaults included, an array (traced in update): say so, not "must be an
    # int". No number here was ever accepted as a jax array; lr_bounds and
    # rescale are read concrete, so only a traced one is refused.
    numbers = dict(
        total_steps=total_steps,
        steps_per_tick=steps_per_tick,
        mu=mu,
        n=n,
        sigma=sigma,
        horizon=horizon,
        tol=tol,
        seed=seed,
        lr_range_factor=lr_range_factor,
        std_floor=std_floor,
    )
    arrays = [k for k, x in numbers.items() if isinstance(x, jax.Array)] + [
        k
        for k, x in dict(lr_bounds=lr_bounds, rescale=rescale).items()
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))
    ]
    if arrays:
        raise TypeError(
            f"lode_schedule got {', '.join(arrays)} as jax arrays: its arguments "
            "are configuration (Python numbers fixing shapes, the clock and "
            "constants of the step), not hyperparameters to inject. With "
            "optax.inject_hyperparams, build the chain inside the function "
            "given to it, e.g. optax.inject_hyperparams(lambda wd: "
            "optax.chain(optax.adamw(1.0, weight_decay=wd), "
            "lode_schedule(model, total_steps=...)))(wd=1e-4)."
        )
    if not _is_int(total_steps):
        raise TypeError(f"total_steps must be an int, got {total_steps!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")
    if not _is_int(steps_per_tick):
        unknown = (
            " (model.steps_per_tick is None when the runs it was fitted to did "
            "not record their clock: pass the sweep's steps per tick)"
            if steps_per_tick is None
            else ""
        )
        raise TypeError(
            f"steps_per_tick must be an int, got {steps_per_tick!r}{unknown}"
        )
    if steps_per_tick < 1:
        raise ValueError(f"steps_per_tick must be an int >= 1, got {steps_per_tick!r}")
    # Python ints: np.int8(50) would overflow in total_steps // steps_per_tick.
    total_steps, steps_per_tick = int(total_steps), int(steps_per_tick)
    if not _is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(model)):
        raise TypeError(
            "lode_schedule closes over the model's weights as constants, but "
            "this model's arrays are traced (an argument of the jitted or "
            "vmapped function?): build the schedule from a concrete model, e.g. "
            "one closed over or loaded outside the traced function"
        )
    # Everything below is a constant of the step, computed on the host now,
    # even when built inside a trace (optax.inject_hyperparams rebuilds its
    # chain in every update): under jit, jnp on the model would give tracers.
    with jax.ensure_compile_time_eval():
        # The library's one seed domain: past 32 bits (or below 0)
        # jax.random.key keeps the low 32 bits without x64 and all 64 with it,
        # so a seed would collide with another, or name another run under the
        # other setting.
        seed = check_seed(seed)
        key0 = np.asarray(jax.random.key_data(jax.random.key(seed, impl=_PRNG)))
        # Rescaling cannot help a model of fewer ticks: the window must fit in
        # its runs too (DecisionConfig's check, said here in the user's terms).
        if int(model.T) < 3:
            raise ValueError(
                f"the model's runs are too short to schedule: it was fitted to "
                f"runs of T={int(model.T)} ticks, and a decision needs a window "
                "of mu ticks with 2 <= mu < T, so T >= 3. Fit the model to "
                "runs of at least 3 ticks."
            )
        run_ticks = total_steps // steps_per_tick
        if run_ticks < 3:
            fix = "raise total_steps"
            if steps_per_tick > 1:
                fix += " or lower steps_per_tick"
            raise ValueError(
                f"total_steps // steps_per_tick = {run_ticks} ticks; the run needs "
                f"at least 3 ({fix})"
            )
        if not rescale:
            _check_model_clock(model, total_steps, steps_per_tick)
        config = DecisionConfig.from_model(
            model,
            run_ticks=run_ticks,
            mu=mu,
            n=n,
            sigma=sigma,
            tol=tol,
            horizon=horizon,
            lr_bounds=lr_bounds,
            lr_range_factor=lr_range_factor,
            std_floor=std_floor,
            rescale=rescale,
            match_rule=match_rule,
            anchor=anchor,
        )
        warm = _warm_start(model, config)
        # The decision closes over the model as ONE flat constant, rebuilt inside
        # its branch. Closed over leaf by leaf, every weight becomes an operand of
        # the step's conditional, and that alone slowed every step of a small
        # model by ~10% on 2 CPU cores, decisions or not (benchmarks/overhead.py).
        # Inside the branch an optimization_barrier keeps it one constant: XLA
        # would otherwise fold the unravelled weights (and products of them) into
        # ~30 separate constants, each a buffer the CPU runtime sets up on every
        # call of the step (a Python loop calling it: ~3 points of its +20%
        # between decisions, small MLP, measured ad hoc).
        model_arrays, model_static = eqx.partition(model, eqx.is_array)
        flat_model, unravel_model = ravel_pytree(model_arrays)
        flat_model = np.asarray(flat_model)
    mu_ = config.mu
    k = steps_per_tick

    @jax_defaults
    def init_fn(params: optax.Params) -> LodeState:
        del params
        i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return LodeState.pack(
            count=i32(0),
            tick=i32(0),
            step_in_tick=i32(0),
            loss_sum=f32(0.0),
            loss_steps=i32(0),
            metric=f32(jnp.nan),
            window=jnp.full((mu_, 3), jnp.nan, jnp.float32),
            segment=jnp.asarray(warm, jnp.float32),
            segment_pos=i32(0),
            learning_rate=f32(warm[0]),
            key=jnp.asarray(key0),
            decisions=i32(0),
            fallbacks=i32(0),
            last_accepted=i32(0),
            last_score=f32(jnp.nan),
            nonfinite=i32(0),
            run_ticks=i32(run_ticks),
        )

    def _advance(
        value: Array, val_metric: Array, state: LodeState, *, with_decision: bool
    ) -> LodeState:
        """One step of the clock and the tick records, with or without a decision."""
        ok = jnp.isfinite(value) & (value > 0)
        metric = jnp.where(jnp.isfinite(val_metric), val_metric, _get(state, "metric"))
        first = _tick_start(state)
        tick_end = _get(state, "step_in_tick") + 1 >= k

        # Every step: one fused update of each bookkeeping vector. A
        # non-finite/non-positive loss has no log: it is skipped and counted.
        okc = ok.astype(jnp.int32)
        step_delta = {
            "step_in_tick": 1,
            "loss_steps": okc,
            "nonfinite": 1 - okc,
        }
        counters = state.counters + jnp.stack(
            [jnp.asarray(step_delta.get(n, 0), jnp.int32) for n in _COUNTERS]
        )
        # count saturates like optax's counters instead of wrapping around.
        counters = counters.at[_C["count"]].set(
            numerics.safe_increment(_get(state, "count"))
        )
        # A state restored into a schedule of another total_steps reports the
        # run this schedule decides for, not the one that made it.
        counters = counters.at[_C["run_ticks"]].set(run_ticks)
        scalars = jnp.stack(
            [
                _get(state, "loss_sum") + jnp.where(ok, value, 0.0),
                metric,
                _get(state, "last_score"),
            ]
        )

        # On a tick's first step the latest metric completes the last tick's
        # record (it is measured after the tick, so it arrives now) and, at
        # ticks mu, 2 mu, ..., the decision runs before this step's rate is
        # read. On a tick's last step its record enters the window.
        window = state.window
        window = window.at[-1, 1].set(jnp.where(first, metric, window[-1, 1]))
        if with_decision:
            # Traced inside update_fn's jax_defaults: split under the default
            # jax_threefry_partitionable, whatever the user set.
            key = jax.random.wrap_key_data(state.key, impl=_PRNG)
            key, sub = jax.random.split(key)
            key = jax.random.key_data(key)
            flat = jax.lax.optimization_barrier(jnp.asarray(flat_model))
            m = eqx.combine(unravel_model(flat), model_static)
            d = decide(m, window, counters[_C["tick"]], sub, config)
            segment, lr = d.segment, d.segment[0]
            counters = counters.at[_C["decisions"]].add(1)
            counters = counters.at[_C["fallbacks"]].add(d.fallback.astype(jnp.int32))
            counters = counters.at[_C["segment_pos"]].set(0)
            counters = counters.at[_C["last_accepted"]].set(d.accepted)
            scalars = scalars.at[_S["last_score"]].set(d.score)
        else:
            segment, key = state.segment, state.key
            lr = segment[jnp.minimum(counters[_C["segment_pos"]], mu_ - 1)]

        steps = counters[_C["loss_steps"]]
        record = jnp.stack(
            [
                jnp.where(
                    steps > 0,
                    scalars[_S["loss_sum"]] / jnp.maximum(steps, 1).astype(jnp.float32),
                    jnp.nan,
                ),
                metric,
                lr,
            ]
        )
        shifted = jnp.concatenate([window[1:], record[None]], axis=0)
        window = jnp.where(tick_end, shifted, window)
        end = tick_end.astype(jnp.int32)
        reset_c = jnp.array([n in ("step_in_tick", "loss_steps") for n in _COUNTERS])
        counters = jnp.where(reset_c & tick_end, 0, counters)
        counters = counters + end * jnp.array(
            [n in ("tick", "segment_pos") for n in _COUNTERS], jnp.int32
        )
        reset_s = jnp.array([n == "loss_sum" for n in _SCALARS])
        scalars = jnp.where(reset_s & tick_end, 0.0, scalars)
        new_state = LodeState.from_parts(
            counters=counters,
            scalars=scalars,
            window=window,
            segment=segment,
            learning_rate=lr,
            key=key,
        )
        return new_state

    # Built once: cond caches its traced branches by the functions' identity,
    # and lambdas made in every update_fn made an eager update (no jit) trace
    # and compile anew at every call (~3 s a step).
    def _advance_deciding(args):
        return _advance(*args, with_decision=True)

    def _advance_holding(args):
        return _advance(*args, with_decision=False)

    # With axis_name, every run takes the deciding branch when any run
    # decides; one that does not (runs out of step) keeps its holding advance.
    def _advance_deciding_mine(args):
        *args, mine = args
        decided = _advance(*args, with_decision=True)
        held = _advance(*args, with_decision=False)
        return jax.tree.map(lambda a, b: jnp.where(mine, a, b), decided, held)

    def _advance_holding_mine(args):
        return _advance(*args[:-1], with_decision=False)

    def _any_run(decide_now: Array) -> Array:
        try:
            return jax.lax.pmax(decide_now.astype(jnp.int32), axis_name) > 0
        except NameError as e:  # JAX's message speaks of psum and shard_map
            raise ValueError(
                f"lode_schedule(axis_name={axis_name!r}) runs only inside "
                f"jax.vmap(..., axis_name={axis_name!r}); without a vmap over "
                "runs, build it with axis_name=None"
            ) from e

    @jax_defaults
    def update_fn(
        updates: optax.Updates,
        state: LodeState,
        params: optax.Params | None = None,
        *,
        value: Any = _MISSING,
        val_metric: Any = _MISSING,
        **extra_args: Any,
    ) -> tuple[optax.Updates, LodeState]:
        del params, extra_args
        if value is _MISSING:
            raise TypeError(
                "lode_schedule's update needs value=<this step's training loss> "
                "(e.g. tx.update(grads, state, params, value=loss, "
                "val_metric=acc))"
            )
        if val_metric is _MISSING:
            raise TypeError(
                "lode_schedule's update needs val_metric=<latest validation "
                "metric> (pass NaN when there is nothing new: the last one is held)"
            )
        for name, x in (("value", value), ("val_metric", val_metric)):
            if x is None:
                raise TypeError(
                    f"lode_schedule's update got {name}=None; pass a number "
                    "(val_metric=float('nan') when there is no new metric: the "
                    "last one is held)"
                )
            # jnp.asarray reads "1.0" and True as 1.0 (and a complex number's
            # real part, under jit): a mixed-up argument.
            try:
                dtype = None if isinstance(x, (str, bytes)) else jnp.result_type(x)
            except TypeError:  # a list, a dict: "Cannot determine dtype"
                dtype = None
            if dtype is None or dtype == jnp.bool_ or jnp.iscomplexobj(x):
                raise TypeError(
                    f"lode_schedule's update got {name}={x!r}; pass a real number"
                )
        lead = jnp.shape(state.data)[:-1] or jnp.shape(state.learning_rate)
        if lead:
            # Checked first: read as one run's, its leading axis would pass
            # for a window of another mu.
            raise ValueError(
                f"this LodeState has leading axes {lead} that one run's state "
                "has not: it is stacked over runs (jax.vmap(tx.init)?), and a "
                "state stacked over runs needs its update under the same "
                "jax.vmap, e.g. jax.vmap(lambda g, s, p, l, m: tx.update(g, s, "
                "p, value=l, val_metric=m))(grads, state, params, losses, "
                "metrics)."
            )
        dtypes = (jnp.result_type(state.data), jnp.result_type(state.learning_rate))
        if dtypes != (jnp.uint32, jnp.float32):
            raise TypeError(
                f"this LodeState's data is {dtypes[0]} and its learning_rate "
                f"{dtypes[1]}, not uint32 and float32: data packs the counters, "
                "the window and the key as raw uint32 bits, which arithmetic on "
                "the whole optimizer state scrambles (a cast such as "
                "optax.tree.cast, an average of states, a jax.tree.map over "
                "it). Apply such maps to the parameters, or pass LodeState "
                "nodes through as they are (jax.tree.map(f, state, is_leaf="
                "lambda x: isinstance(x, optax_lode.LodeState)), f returning "
                "them unchanged)."
            )
        if state.window.shape != (mu_, 3) or state.segment.shape != (mu_,):
            raise ValueError(
                f"this LodeState holds a window of {state.window.shape[0]} ticks "
                f"but the schedule decides every mu={mu_}: it was made by another "
                "lode_schedule (a checkpoint of another configuration?). "
                "Continue a state with the schedule that made it, or start from "
                "tx.init(params)."
            )
        value = jnp.asarray(value, jnp.float32)
        val_metric = jnp.asarray(val_metric, jnp.float32)
        if value.shape != () or val_metric.shape != ():
            raise ValueError(
                "value and val_metric must be scalars (the step's mean loss and "
                f"metric), got shapes {value.shape} and {val_metric.shape}"
            )

        # The bookkeeping waits for the base optimizer's updates. It needs only
        # the loss, so XLA's CPU runtime would otherwise run it (and the
        # decision's cond) on the second thread beside the backward pass, and
        # the hand-off cost a small MLP's scanned step ~15-25%; ordered after
        # the updates, ~1-4% (ad hoc, one process, no decisions; docs/
        # schedule.md, "Cost"). A step called alone (a Python loop) compiles
        # without it today, and measures the same with or without it.
        (value, val_metric, state), updates = jax.lax.optimization_barrier(
            ((value, val_metric, state), updates)
        )
        # The whole advance of the state sits in the cond, twice: with the
        # decision and without. Computed beside the cond in the step's own
        # graph (as until 2026-12-04), its dozen small fusions changed how
        # XLA's CPU runtime laid out and overlapped the backward pass, a
        # lottery: between decisions a 10x MLP's scanned step cost +0.5% to
        # +13.6% over cosine depending on n and width (one process, paired);
        # inside the cond, 0-2.6% on the same grid (docs/schedule.md, "Cost").
        # Not past the run's T ticks (extra steps, or the partial tick left by
        # a total_steps that is not a multiple of steps_per_tick): the model
        # knows nothing after T, and the rate holds the last segment's end.
        tick = _get(state, "tick")
        decide_now = _tick_start(state) & (tick % mu_ == 0) & (tick < run_ticks)
        if axis_name is None:
            new_state = jax.lax.cond(
                decide_now,
                _advance_deciding,
                _advance_holding,
                (value, val_metric, state),
            )
        else:
            new_state = jax.lax.cond(
                _any_run(decide_now),
                _advance_deciding_mine,
                _advance_holding_mine,
                (value, val_metric, state, decide_now),
            )
        # The rate is the cond's output, one materialised scalar: computed
        # after it from the segment, its ~40 scalar ops were fused into every
        # parameter leaf's update (~0.35% of a small MLP's scanned step).
        lr = new_state.learning_rate
        updates = jax.tree.map(lambda u: lr.astype(u.dtype) * u, updates)
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
