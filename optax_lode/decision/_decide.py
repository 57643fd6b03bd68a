"""Algorithm 1 of the paper: one learning-rate decision from a window of records.

One pure, fixed-shape function of ``(model, window, t*, key)``: no Python
branching on traced values, no boolean-mask indexing, no host callbacks, so it
runs inside a jitted training step in a ``lax.cond``/``lax.switch`` branch.

Units. The window holds raw tick records ``(loss, metric, lr)``. The model
normalises them (``log loss``, ``metric``, ``log lr``, each standardised); the
acceptance test compares normalised log-losses (so ``tol`` and the std floor
are scale free), the score is the predicted raw metric and the segment is the
mean of the chosen samples' raw learning rates (the paper's ``mean eta_i``).

Time. Positions on the rollout are in *model* ticks. Without rescaling one
live tick is one model tick and every position is an integer, so the linear
interpolation below reads grid points exactly. Row 0 of a rollout is the
window's last tick, live tick ``t* - 1`` (the encoder's latent is the state
there), so a member's matching tick ``k_i`` stands for ``t* - 1``: the score
``v_i(k_i + T - t*)`` is the run's last tick ``T - 1`` and the rate of live
tick ``t* + j`` is the member's rate one tick later, ``eta_i(k_i + 1 + j)``.
Reading ``eta_i(k_i + j)`` instead would replay, as the first rate of every
segment, the rate the member predicts for the tick that already happened.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from optax_lode._jax_defaults import jax_defaults
from optax_lode._warn import caller_stacklevel
from optax_lode.decision._config import DecisionConfig
from optax_lode.model._latent_ode import rows_finite

if TYPE_CHECKING:  # annotations only
    from optax_lode.model import LatentODE


class Decision(NamedTuple):
    """What one decision returns (everything the transformation stores).

    Attributes:
        segment: learning rates for the next ``mu`` ticks, clipped, finite and
            positive.
        accepted: number of ensemble members that passed the acceptance test
            (and whose predictions are finite).
        score: mean predicted raw validation metric of the averaged samples
            (NaN on a fallback).
        fallback: True when nothing was accepted or the prediction was not
            finite, so the segment holds the last rate.

    Examples:
        >>> import jax, jax.numpy as jnp, optax_lode
        >>> model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
        >>> cfg = optax_lode.DecisionConfig.from_model(model, mu=4, n=8)
        >>> window = jnp.tile(jnp.array([1.0, 0.5, 1e-2]), (4, 1))
        >>> d = optax_lode.explain(model, window, 4, jax.random.key(1), cfg).decision
        >>> d.segment.shape, d.accepted.dtype, d.score.shape, d.fallback.dtype
        ((4,), dtype('int32'), (), dtype('bool'))
    """

    segment: Float[Array, " *shape"]
    accepted: Int[Array, ""]
    score: Float[Array, ""]
    fallback: Bool[Array, ""]


class Explanation(NamedTuple):
    """Everything one decision computed, for plotting and debugging.

    Attributes:
        window: the encoder's input, normalised, on the model's tick grid.
        window_mask: which window rows were finite (the others are masked).
        z0: the encoded latent.
        latents: the ensemble (row 0 is ``z0``).
        trajectories: raw decoded ``(loss, metric, lr)`` of every member on
            the rollout grid ``0 .. grid_ticks - 1`` (model ticks from now).
        live_loss: the live run's latest finite tick loss (normalised log).
        threshold: the acceptance half-width (normalised log-loss).
        match: ``(n, T + 1)`` which predicted ticks are within the threshold.
        accepted: per member, passed the test with finite predictions (none
            when the window has no complete record).
        match_tick: per member, the chosen matching tick (by default the one
            with the highest predicted learning rate; see
            ``DecisionConfig.match_rule``), in model ticks; it stands for the
            window's last tick ``t* - 1`` (meaningless where not accepted).
        horizon: the horizon used, in model ticks.
        rollout_ticks: how far the decision needed the rollout, in model
            ticks: the head ``T + mu`` it decodes, or farther where a matching
            member's score reads. Its cost is about linear in it (Euler
            models roll out no farther, up to one loop block).
        scores: per member, the predicted raw metric at
            ``match_tick + horizon`` (``-inf`` where not accepted).
        segments: per member, its raw learning-rate path for live ticks
            ``t* .. t* + mu - 1``: ``lr_i(match_tick + 1 + j)``,
            ``j = 0 .. mu - 1`` (``anchor="live"``: times
            ``held_lr / lr_i(match_tick)``).
        chosen: indices of the ``top`` best members by score.
        chosen_valid: which of ``chosen`` were accepted (fewer than ``top``
            may be).
        held_lr: the rate a fallback holds.
        decision: the resulting :class:`Decision`.
        loss_band: the acceptance test's interval in raw loss units,
            ``(low, high)``: a member matches where its predicted loss (the
            ``trajectories[..., 0]`` it plots) is strictly inside (set by
            :func:`explain`).

    Examples:
        >>> import jax, jax.numpy as jnp, optax_lode
        >>> model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
        >>> cfg = optax_lode.DecisionConfig.from_model(model, mu=4, n=8)
        >>> window = jnp.tile(jnp.array([1.0, 0.5, 1e-2]), (4, 1))
        >>> ex = optax_lode.explain(model, window, 4, jax.random.key(1), cfg)
        >>> ex.latents.shape, ex.match.shape, ex.segments.shape, ex.chosen.shape
        ((8, 20), (8, 21), (8, 4), (3,))
        >>> ex.trajectories.shape == (cfg.n, cfg.grid_ticks, 3)
        True
    """

    window: Float[Array, " *shape"]
    window_mask: Bool[Array, " w"]
    z0: Float[Array, " latent"]
    latents: Float[Array, "n latent"]
    trajectories: Float[Array, "n grid 3"]
    live_loss: Float[Array, ""]
    threshold: Float[Array, ""]
    match: Bool[Array, "n T1"]
    accepted: Bool[Array, " n"]
    match_tick: Int[Array, " n"]
    horizon: Float[Array, ""]
    rollout_ticks: Int[Array, ""]
    scores: Float[Array, " n"]
    segments: Float[Array, "n mu"]
    chosen: Int[Array, " top"]
    chosen_valid: Bool[Array, " top"]
    held_lr: Float[Array, ""]
    decision: Decision
    loss_band: Float[Array, " 2"] | None = None


class OutOfSweepWarning(UserWarning):
    """:func:`explain` was given tick records far outside the runs the model
    was fitted to (a metric of the wrong sign, a loss on another scale): the
    decision extrapolates, and says little."""


# How far (in the sweep's standard deviations) a window's record may sit from
# the sweep's mean before explain warns. Skewed sweeps put a few genuine
# records past 5 (a chance-level accuracy among mostly good runs). A metric
# of the wrong sign is caught nearer: at FLIP_Z or more from the mean while
# its negation is within 2 (a genuine value there would have the other sign
# than the sweep's, e.g. a negative accuracy).
FAR_Z = 6.0
FLIP_Z = 3.0


def _interp(
    x: Float[Array, " g"], pos: Float[Array, " *shape"]
) -> Float[Array, " *shape"]:
    """Linear interpolation of ``x`` at fractional indices (clamped to the grid).

    At integer positions it returns the grid value exactly, even when the
    neighbour is non-finite (``0 * nan`` would otherwise leak in).
    """
    g = x.shape[0]
    pos = jnp.clip(pos, 0.0, g - 1.0)
    i0 = jnp.floor(pos).astype(jnp.int32)
    i1 = jnp.minimum(i0 + 1, g - 1)
    w = (pos - i0).astype(x.dtype)
    lo, hi = x[i0], x[i1]
    return jnp.where(w > 0, lo + w * (hi - lo), lo)


def _sum_rows(x: Array) -> Array:
    """``x.sum(axis=0)`` for a few rows, as elementwise adds."""
    total = x[0]
    for row in x[1:]:
        total = total + row
    return total


def _first_argmax(
    x: Float[Array, "n g"],
) -> tuple[Float[Array, " n"], Int[Array, " n"]]:
    """``(x.max(axis=1), jnp.argmax(x, axis=1))`` via ``top_k`` (first index
    of the maximum).

    XLA's argmax is a two-operand reduction, the costliest kind for the CPU
    runtime to set up on every call of a training step (~4 us, even in a
    branch that does not run); ``top_k`` is one custom call and breaks ties
    by the lower index, like argmax. ``x`` must not contain NaN.
    """
    value, index = jax.lax.top_k(x, 1)
    return value[:, 0], index[:, 0]


def _last_valid(
    x: Float[Array, "w k"], ok: Bool[Array, "w k"]
) -> tuple[Float[Array, " k"], Bool[Array, " k"]]:
    """Per column, the last entry of ``x`` where ``ok`` (NaN where none) and
    whether there is one: fixed shape (no boolean indexing) and one reduction
    for all columns (each reduction costs every call of the training step)."""
    idx = jnp.arange(x.shape[0])[:, None]
    last = jnp.max(jnp.where(ok, idx, -1), axis=0)
    found = last >= 0
    picked = x[jnp.maximum(last, 0), jnp.arange(x.shape[1])]
    return jnp.where(found, picked, jnp.nan), found


@jax_defaults
def ensemble_noise(
    key: PRNGKeyArray, n: int, latent_size: int, dtype: Any = jnp.float32
) -> Float[Array, "n latent"]:
    """Standard normal ensemble offsets with row 0 zero (the direct latent).

    The same for a key whatever the user's ``jax_threefry_partitionable`` (a
    global flag that changes threefry's random bits): a run's rates do not
    depend on the process's JAX configuration. :func:`decide` draws its
    ensemble with it; pass it to :func:`explain` (``eps``) to study a
    decision under other offsets.

    Args:
        key: PRNG key.
        n: ensemble size (rows).
        latent_size: the model's latent dimension (columns).
        dtype: the offsets' floating dtype.

    Returns:
        ``(n, latent_size)`` offsets, row 0 all zeros.

    Examples:
        >>> import jax
        >>> eps = ensemble_noise(jax.random.key(0), 4, 3)
        >>> eps.shape, eps[0].tolist()
        ((4, 3), [0.0, 0.0, 0.0])
    """
    # The flag is recorded in the traced equation, so this holds under jit too.
    eps = jax.random.normal(key, (n, latent_size), dtype)
    return eps.at[0].set(0.0)


@jax_defaults
def _run(
    model: Any,
    window: Float[Array, "mu 3"],
    t_star: Int[Array, ""],
    eps: Float[Array, "n latent"],
    config: DecisionConfig,
    trajectories: bool = False,
) -> Explanation:
    dtype = jnp.float32
    window = jnp.asarray(window, dtype)
    if window.shape != (config.mu, 3):
        raise ValueError(
            f"window must have shape (mu, 3) = ({config.mu}, 3) of raw "
            f"(loss, metric, lr) tick records, got {window.shape}"
        )
    model_T = getattr(model, "T", config.model_ticks)
    if model_T != config.model_ticks:
        raise ValueError(
            f"config was built for a model of T={config.model_ticks} ticks, but "
            f"this model has T={model_T}: build it with "
            "DecisionConfig.from_model(model, ...)."
        )
    latent = jnp.shape(model.latent_scale)[0]
    if eps.shape != (config.n, latent):
        raise ValueError(
            f"eps must have shape (n, latent_size) = ({config.n}, {latent}), got "
            f"{eps.shape}"
        )
    t_star = jnp.asarray(t_star, jnp.int32)
    r = config.tick_scale
    norm = model.normalisation

    # --- 1. Encode the window (resampled to model ticks when rescaling). ----
    # Non-positive losses/rates have no log: they make a row non-finite, and
    # non-finite rows are masked out of the encoder.
    with jax.numpy_dtype_promotion("standard"):
        normed = jnp.asarray(norm.forward(window), dtype)
    # The live loss and its spread use every finite loss, even of a row whose
    # metric is still unknown (NaN before the first validation).
    loss_col = normed[:, 0]
    row_ok = rows_finite(normed)
    normed = jnp.where(row_ok[:, None], normed, 0.0)
    w = config.window_points
    lag = (w - 1 - jnp.arange(w, dtype=dtype)) / r  # live ticks before now
    pos = (config.mu - 1) - lag
    enc_window = jax.vmap(lambda col: _interp(col, pos), in_axes=1, out_axes=1)(normed)
    # A resampled row is valid only if both rows it interpolates are.
    okf = row_ok.astype(dtype)
    enc_mask = _interp(okf, jnp.floor(pos)) * _interp(okf, jnp.ceil(pos)) > 0.5
    z0 = jnp.asarray(model.encode(enc_window, enc_mask), dtype)

    # --- 2. Ensemble: z_i = z0 + sigma * latent_scale * eps_i, eps_0 = 0. ---
    scale = jnp.asarray(model.latent_scale, dtype)
    latents = z0[None, :] + config.sigma * scale[None, :] * eps.astype(dtype)

    # --- 3. Roll out every member on the grid 0 .. T + horizon_max. --------
    # Only the rows this decision reads are computed and decoded: the head
    # 0 .. T + mu (acceptance and segments) in full, and the two rows each
    # matching member's score interpolates (step 5).
    if config.horizon_ticks is None:
        h_live = jnp.maximum(config.run_ticks - t_star, 0)
    else:
        h_live = jnp.asarray(config.horizon_ticks, jnp.int32)
    horizon = h_live.astype(dtype) * r
    g, head = config.grid_ticks, config.segment_ticks
    block = getattr(model, "rollout_block_ticks", None)
    start = g if block is None else min(g, -(-head // block) * block)
    if block is not None and start < g:
        # Euler: the head now, the rest in step 5 from where it ended.
        states, z_end = model.rollout(latents, start, with_end=True)
        decode = model.decode_rollout
    elif hasattr(model, "rollout"):  # other solvers, or a short grid: one rollout
        # Asked to stop at T + max(horizon, mu); only Euler's loop can stop.
        reach = jnp.ceil(jnp.maximum(horizon, config.mu * r)).astype(jnp.int32)
        states = model.rollout(latents, g, valid_ticks=config.model_ticks + reach + 2)
        decode = model.decode_rollout
    else:
        states = jnp.swapaxes(jax.vmap(lambda z: model.decode(z, g))(latents), 0, 1)
        decode = lambda x: x  # noqa: E731

    def inverse(p):
        with jax.numpy_dtype_promotion("standard"):
            return jnp.asarray(norm.inverse(p.astype(dtype)), dtype)

    pred = jnp.swapaxes(decode(states[:head]), 0, 1).astype(dtype)  # (n, head, 3)
    raw = inverse(pred)

    # --- 4. Accept: two-sided loss match somewhere in [0, T]. --------------
    # The latest finite loss and positive rate, and whether any row is
    # complete: a window with none (no finite metric yet, say) encodes to the
    # same latent whatever the run did, so nothing it predicts is accepted.
    loss_ok = jnp.isfinite(loss_col)
    lr_col = window[:, 2]
    lr_ok = jnp.isfinite(lr_col) & (lr_col > 0)
    (live_loss, held, _), (has_loss, has_lr, informed) = _last_valid(
        jnp.stack([loss_col, lr_col, jnp.zeros_like(lr_col)], axis=1),
        jnp.stack([loss_ok, lr_ok, row_ok], axis=1),
    )
    losses = jnp.where(loss_ok, loss_col, jnp.nan)
    n_ok = jnp.maximum(loss_ok.sum(), 1)
    mean = jnp.nansum(losses) / n_ok
    var = jnp.nansum(jnp.where(loss_ok, (losses - mean) ** 2, 0.0)) / n_ok
    threshold = config.tol * jnp.maximum(jnp.sqrt(var), config.std_floor)
    t1 = config.model_ticks + 1
    pred_loss = pred[:, :t1, 0]
    pred_lr = pred[:, :t1, 2]
    match = (
        (jnp.abs(pred_loss - live_loss) < threshold) & jnp.isfinite(pred_lr) & has_loss
    )
    if config.match_rule == "highest_lr":
        # The paper: among a member's matching ticks, the highest predicted lr.
        best, match_tick = _first_argmax(jnp.where(match, pred_lr, -jnp.inf))
    else:  # "closest_loss": where the member's predicted loss is the live one.
        gap = jnp.abs(pred_loss - live_loss)
        best, match_tick = _first_argmax(-jnp.where(match, gap, jnp.inf))
    # Matching entries are finite, the others -inf: this is match.any(axis=1).
    any_match = best > -jnp.inf

    # --- 5. Score by the metric `horizon` ticks after the matching tick. ----
    # _interp on the whole grid, on the two gathered rows it would read.
    kf = match_tick.astype(dtype)
    pos = jnp.clip(kf + horizon, 0.0, g - 1.0)
    i0 = jnp.floor(pos).astype(jnp.int32)
    members = jnp.arange(config.n)
    rows = jnp.stack([i0, jnp.minimum(i0 + 1, g - 1)])
    # The rollout continues only as far as a matching member's score reads:
    # the highest-rate matching tick is often early, so late in the grid
    # nothing is read (rows of members that do not match are NaN and never
    # accepted).
    reach = jnp.max(jnp.where(any_match, rows[1] + 1, 0))
    if start < g:
        tail = model.rollout(z_end, g - start, valid_ticks=reach - start)
        near = states[jnp.minimum(rows, start - 1), members]
        far = tail[jnp.clip(rows - start, 0, g - start - 1), members]
        picked = jnp.where((rows < start)[..., None], near, far)
    else:
        picked = states[rows, members]
    ends = inverse(decode(picked))
    lo, hi = ends[0, :, 1], ends[1, :, 1]
    w = pos - i0
    scores = jnp.where(w > 0, lo + w * (hi - lo), lo)
    # k_i stands for live tick t* - 1: the segment (ticks t* ..) starts one
    # live tick later on the member's path.
    offsets = (jnp.arange(config.mu, dtype=dtype) + 1.0) * r
    segments = jax.vmap(lambda lr, k: _interp(lr, k + offsets))(raw[:, :, 2], kf)
    if config.anchor == "live":
        # The member's relative change from its own "now" (k_i), applied to
        # the live rate: the reconstruction's level does not carry over.
        own_now = jax.vmap(_interp)(raw[:, :, 2], kf)
        ratio = segments / own_now[:, None]
        segments = jnp.where(has_lr, held * ratio, segments)

    accepted = (
        any_match
        & informed
        & jnp.isfinite(scores)
        & jnp.all(jnp.isfinite(segments) & (segments > 0), axis=1)
    )

    # --- 6. Mean of the top three accepted, by score (fixed shape). --------
    masked = jnp.where(accepted, scores, -jnp.inf)
    top_scores, chosen = jax.lax.top_k(masked, config.num_top)
    chosen_valid = top_scores > -jnp.inf
    # Sums over the `top` rows as elementwise adds (see rows_finite: each
    # reduction costs every call of the training step), in jnp.sum's order.
    count = _sum_rows(chosen_valid.astype(jnp.int32))
    denom = jnp.maximum(count, 1).astype(dtype)
    chosen_segments = jnp.where(chosen_valid[:, None], segments[chosen], 0.0)
    segment = _sum_rows(chosen_segments) / denom
    score = jnp.where(
        count > 0, _sum_rows(jnp.where(chosen_valid, top_scores, 0.0)) / denom, jnp.nan
    )

    # --- 7. Clip; fall back to holding the last rate. ----------------------
    geo_mid = jnp.sqrt(jnp.asarray(config.lr_min * config.lr_max, dtype))
    held = jnp.clip(jnp.where(has_lr, held, geo_mid), config.lr_min, config.lr_max)
    fallback = (count == 0) | ~jnp.all(jnp.isfinite(segment))
    segment = jnp.where(
        fallback, held, jnp.clip(segment, config.lr_min, config.lr_max)
    ).astype(dtype)

    decision = Decision(
        segment=segment,
        accepted=accepted.sum().astype(jnp.int32),
        score=jnp.where(fallback, jnp.nan, score).astype(dtype),
        fallback=fallback,
    )
    return Explanation(
        window=enc_window,
        window_mask=enc_mask,
        z0=z0,
        latents=latents,
        trajectories=_whole_grid(model, latents, states, g, inverse)
        if trajectories
        else raw,
        live_loss=live_loss,
        threshold=threshold,
        match=match,
        accepted=accepted,
        match_tick=match_tick.astype(jnp.int32),
        horizon=horizon,
        rollout_ticks=jnp.maximum(reach, head).astype(jnp.int32),
        scores=masked,
        segments=segments,
        chosen=chosen.astype(jnp.int32),
        chosen_valid=chosen_valid,
        held_lr=held,
        decision=decision,
    )


def _whole_grid(model, latents, states, g, inverse) -> Array:
    """Raw predictions of every member on the whole grid, for plotting (a
    decision decodes only the rows it reads, see ``_run``)."""
    if hasattr(model, "rollout"):
        return inverse(model.decode_many(latents, g))
    return inverse(jnp.swapaxes(states, 0, 1))


def decide(
    model: LatentODE,
    window: Float[ArrayLike, "mu 3"],
    t_star: Int[ArrayLike, ""],
    key: PRNGKeyArray,
    config: DecisionConfig,
) -> Decision:
    """One decision of the LODE scheduler (the paper's Algorithm 1).

    Pure, jittable and fixed-shape; ``config`` is static (hashable). With
    ``T`` the model's ticks, ``l*`` the window's latest finite (normalised
    log) loss and ``s`` the std of the window's normalised log-losses:

    1. encode the window (the last ``mu`` tick records) to ``z0``;
    2. ensemble ``z_i = z0 + sigma * latent_scale * eps_i``, ``eps_0 = 0``;
    3. decode every member on ticks ``0 .. T + horizon_max`` (vmapped);
    4. accept member ``i`` if some ``k`` in ``[0, T]`` has
       ``|l_i(k) - l*| < tol * max(s, std_floor)`` (two-sided; the floor keeps
       a flat window from rejecting everything) and its predictions are
       finite; ``k_i`` is the matching tick with the highest predicted rate
       (``config.match_rule="closest_loss"``: the one whose predicted loss is
       closest to ``l*``);
    5. score ``v_i(k_i + horizon)`` (``horizon = T - t*`` by default);
    6. average the raw rate paths ``lr_i(k_i + 1 + j)``, ``j < mu``, of the
       ``top`` (3) best accepted members (rollout row 0, hence ``k_i``, is the
       window's last tick ``t* - 1``; the segment starts at ``t*``); with
       ``config.anchor="live"`` each path is first rescaled to start from the
       live rate: ``eta_live * lr_i(k_i + 1 + j) / lr_i(k_i)``;
    7. clip to ``[lr_min, lr_max]``; if nothing is accepted or the mean is not
       finite, hold the window's last rate (also clipped; a window with no
       valid rate at all, which ``lode_schedule`` never passes, holds the
       bounds' geometric midpoint). A window without one complete record (no
       finite metric yet, say) accepts nothing: its encoding would not depend
       on the run.

    Args:
        model: a :class:`optax_lode.LatentODE` (any module with its
            ``encode``/``decode``/``normalisation``/``latent_scale``).
        window: raw ``(loss, metric, lr)`` of the last ``mu`` ticks, oldest
            first; rows with a non-finite entry, or a loss or learning rate
            of 0 or below (they have no log), are masked.
        t_star: the current live tick (the window's last row is tick
            ``t_star - 1``; the segment starts at ``t_star``), in
            ``[config.mu, config.run_ticks)`` (a ``ValueError`` when it is
            known to be outside; a traced one is not checked).
        key: PRNG key for the ensemble noise (split it every decision).
        config: a :class:`DecisionConfig`.

    Returns:
        A :class:`Decision`: the next ``mu`` rates and diagnostics.

    Raises:
        ValueError: if ``window`` is not ``(config.mu, 3)``, ``config`` was
            built for a model of another ``T``, or a known ``t_star`` is below
            ``config.mu`` or at least ``config.run_ticks``.

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, optax_lode
        >>> model = optax_lode.LatentODE(T=100, key=jax.random.key(0))
        >>> cfg = optax_lode.DecisionConfig.from_model(model, mu=5)
        >>> window = jnp.tile(jnp.array([1.0, 0.5, 1e-3]), (5, 1))
        >>> d = eqx.filter_jit(optax_lode.decide)(  # config is static (hashable)
        ...     model, window, 5, jax.random.key(1), cfg)
        >>> d.segment.shape
        (5,)

    References:
        Sampson & Melchior, "Dynamics of Learning: Generative Schedules from
        Latent ODEs", 2025 (arXiv:2509.23052), Section 3.2 and Algorithm 1.
    """
    _check_t_star(t_star, config)
    latent = jnp.shape(model.latent_scale)[0]
    eps = ensemble_noise(key, config.n, latent)
    return _run(model, window, t_star, eps, config).decision


def _check_t_star(t_star: Any, config: DecisionConfig) -> None:
    """A known ``t_star`` outside ``[mu, T)`` is refused: the rollout's grid is
    sized for decisions from tick ``mu`` on, and an earlier one's default
    horizon would read past it (clipped, silently); from ``T`` on the default
    horizon is 0 (clamped, silently) and the model knows nothing there.
    ``lode_schedule`` decides at no such tick."""
    if isinstance(t_star, jax.core.Tracer):
        return  # traced: checked by whoever knows it (lode_schedule's clock)
    # numpy, not jnp: inside a trace jnp.asarray of a Python int (static under
    # eqx.filter_jit) is a tracer, and the check would be skipped.
    known = np.asarray(t_star)
    if known.dtype == np.bool_ or not (
        np.issubdtype(known.dtype, np.integer)
        or np.issubdtype(known.dtype, np.floating)
    ):
        raise TypeError(f"t_star must be an integer tick, got {t_star!r}")
    if known.shape != () or known != np.round(known):
        raise ValueError(f"t_star must be one whole tick, got {t_star!r}")
    value = int(known)
    if value < config.mu:
        raise ValueError(
            f"t_star={value} is before the first decision tick mu={config.mu}: "
            "a decision needs a full window of mu ticks before t_star."
        )
    if value >= config.run_ticks:
        raise ValueError(
            f"t_star={value} must be below the run's T={config.run_ticks} ticks "
            "(config.run_ticks): the model knows nothing past T, and "
            "lode_schedule never decides there."
        )


def explain(
    model: LatentODE,
    window: Float[ArrayLike, "mu 3"],
    t_star: Int[ArrayLike, ""],
    key: PRNGKeyArray | None,
    config: DecisionConfig,
    *,
    eps: Float[Array, "n latent"] | None = None,
) -> Explanation:
    """The same decision as :func:`decide`, returning every intermediate.

    Meant for notebooks: call it eagerly with numpy inputs; it is jitted
    internally (the model as an argument, ``config`` static) so repeated calls
    compile once. Given the same key it returns exactly the decision of a
    jitted ``decide``; an eager, unjitted ``decide`` can differ in the last
    bits (XLA rounds compiled and op-by-op code differently).

    Args:
        model: the latent ODE.
        window: raw ``(loss, metric, lr)`` of the last ``mu`` ticks.
        t_star: the current live tick, in ``[config.mu, config.run_ticks)``.
        key: PRNG key for the ensemble noise (ignored if ``eps`` is given).
        config: a :class:`DecisionConfig`.
        eps: optional explicit ``(n, latent)`` standard-normal offsets (row 0
            should be zero to keep the direct latent), e.g. to study how the
            decision depends on the ensemble.

    Returns:
        An :class:`Explanation` of jax arrays (``np.asarray`` them to plot).

    Raises:
        ValueError: as :func:`decide`, and if ``eps`` is not ``(config.n,
            latent_size)``.
        TypeError: if neither ``key`` nor ``eps`` is given.

    Warns:
        OutOfSweepWarning: a window record at least ``FAR_Z`` (6) of the
            sweep's standard deviations from its mean (log loss, metric, log
            rate), or a metric at least ``FLIP_Z`` (3) away whose negation is
            within 2 (a ``val_metric`` of the wrong sign): the decision is
            returned all the same.

    Examples:
        >>> import jax, jax.numpy as jnp, optax_lode
        >>> model = optax_lode.LatentODE(T=20, key=jax.random.key(0))
        >>> cfg = optax_lode.DecisionConfig.from_model(model, mu=4, n=8)
        >>> window = jnp.tile(jnp.array([1.0, 0.5, 1e-2]), (4, 1))
        >>> ex = optax_lode.explain(model, window, 4, jax.random.key(1), cfg)
        >>> int(ex.accepted.sum()) == int(ex.decision.accepted)
        True
        >>> eps = optax_lode.decision.ensemble_noise(jax.random.key(1), 8, 20)
        >>> again = optax_lode.explain(model, window, 4, None, cfg, eps=eps)
        >>> bool(jnp.array_equal(again.decision.segment, ex.decision.segment))
        True
    """
    _check_t_star(t_star, config)
    if eps is None:
        if key is None:
            raise TypeError("explain needs a key or explicit eps")
        eps = ensemble_noise(key, config.n, jnp.shape(model.latent_scale)[0])
    ex = _explain_jit(model, window, jnp.asarray(t_star, jnp.int32), eps, config)
    if not isinstance(window, jax.core.Tracer):
        _warn_out_of_sweep(model, window)
    band = loss_band(model.normalisation, ex.live_loss, ex.threshold)
    return ex._replace(loss_band=band)


@jax_defaults
def loss_band(normalisation: Any, live_loss: Array, threshold: Array) -> Array:
    """The acceptance interval ``live_loss -+ threshold`` (normalised log
    loss) in raw loss units (also :func:`plot_decision_fan`'s, for an
    Explanation without one)."""
    edges = jnp.stack([live_loss - threshold, live_loss + threshold])
    feats = jnp.stack([edges, jnp.zeros_like(edges), jnp.zeros_like(edges)], axis=1)
    with jax.numpy_dtype_promotion("standard"):
        return jnp.asarray(normalisation.inverse(feats)[:, 0], jnp.float32)


def _warn_out_of_sweep(model: Any, window: Any) -> None:
    """Warns, once per column, about finite records at least :data:`FAR_Z`
    of the sweep's standard deviations from its mean, and about metrics that
    look negated (at least :data:`FLIP_Z` away, their negation within 2)."""
    w = np.asarray(window, np.float64)
    norm = model.normalisation
    mean, std = (np.asarray(v, np.float64) for v in (norm.mean, norm.std))
    # A loss or rate of 0 or below has no log: its z is not finite, ignored.
    z = np.abs(np.asarray(norm.forward(w), np.float64))
    z = np.where(np.isfinite(z), z, 0.0)
    z_flipped = np.abs((-w[:, 1] - mean[1]) / std[1])
    flipped = (z[:, 1] >= FLIP_Z) & (z_flipped <= 2.0)
    names = ("training loss", "validation metric", "learning rate")
    for col, name in enumerate(names):
        bad = (z[:, col] >= FAR_Z) | (flipped if col == 1 else False)
        if not bad.any():
            continue
        row = int(np.argmax(np.where(bad, z[:, col], -1.0)))
        raw = w[row, col]
        if col == 1:
            where = f"mean {mean[1]:.4g}, std {std[1]:.3g}"
            if flipped[row]:
                hint = (
                    f" Its negation, {-raw:.4g}, is {z_flipped[row]:.1f} std from "
                    "the mean: a metric of the wrong sign? "
                    + (
                        "This model was fitted to a negated lower-is-better "
                        "metric (model.metric_negated): pass val_metric="
                        "-<metric>."
                        if getattr(model, "metric_negated", False)
                        else "This model was fitted to the metric as logged "
                        "(higher is better; model.metric_negated is False)."
                    )
                )
            else:
                hint = (
                    " A metric on another scale (percent for a fraction, "
                    "another metric) looks like this."
                )
        else:
            where = f"geometric mean {np.exp(mean[col]):.4g}, log std {std[col]:.3g}"
            hint = (
                " A loss on another scale (summed instead of averaged, another "
                "task or model) looks like this."
                if col == 0
                else " Rates outside the sweep's are extrapolation too."
            )
        warnings.warn(
            f"the window's {name} {raw:.4g} (row {row}) is {z[row, col]:.1f} "
            f"standard deviations from the runs the model was fitted to "
            f"({where}): the model extrapolates, and its decision says "
            f"little.{hint}",
            OutOfSweepWarning,
            stacklevel=caller_stacklevel(),
        )


_explain_jit = eqx.filter_jit(functools.partial(_run, trajectories=True))
