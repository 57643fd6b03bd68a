"""``fit``: train a ``LatentODE`` on a sweep's runs."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_lode._files import atomic_write_bytes, usable_directory
from optax_lode._jax_defaults import jax_defaults
from optax_lode._seeds import check_seed
from optax_lode._version import __version__
from optax_lode._warn import caller_stacklevel
from optax_lode._whole import whole
from optax_lode.model._artifact import (
    deserialise_leaves,
    leaf_specs,
    pack,
    serialise_leaves,
    unpack,
)
from optax_lode.model._evaluate import spearman
from optax_lode.model._latent_ode import LatentODE
from optax_lode.model._latent_ode import _networks as _trained
from optax_lode.model._normalisation import Normalisation
from optax_lode.runs import Trajectories

if TYPE_CHECKING:
    from jax.typing import ArrayLike

_CHECKPOINT = "fit-checkpoint.lode"
_CHECKPOINT_KIND = "optax-lode.fit-checkpoint"
# Windows per run used for the held-out error: ending at these fractions of T.
_EVAL_FRACTIONS = (0.05, 0.25, 0.5, 0.75)
# Floor on the per-dimension std of encoded latents (latent_scale).
_MIN_LATENT_SCALE = 1e-3


class _Data(NamedTuple):
    """Normalised runs padded for fixed-shape window slicing."""

    x: jax.Array  # (runs, mu - 1 + 2 T, 3) float32, 0 where invalid
    m: jax.Array  # (runs, mu - 1 + 2 T) bool
    pairs: jax.Array  # (windows, 2) int32: (run, end tick)


def _check_float32(traj: Trajectories) -> None:
    """Refuses a valid value that float32, the model's dtype, cannot hold (a
    loss or rate that would round to 0 or inf, a metric to inf)."""
    f32 = np.finfo(np.float32)
    raw = traj.features()
    positive = (raw < f32.tiny) | (raw > f32.max)  # loss and rate: logs taken
    out = np.stack(
        [positive[..., 0], np.abs(raw[..., 1]) > f32.max, positive[..., 2]], -1
    )
    out &= traj.mask[..., None] & np.isfinite(raw)
    if out.any():
        r, t, f = (int(i[0]) for i in np.nonzero(out))
        name = ("loss", "metric", "learning rate")[f]
        raise ValueError(
            f"run {traj.run_ids[r]!r}, tick {t}: its {name} {raw[r, t, f]:.3g} is "
            f"outside float32's range ({f32.tiny:.2g} .. {f32.max:.2g}), in which "
            f"the model computes: rescale that series in every run (e.g. "
            "multiply the losses by a constant) or fix the run."
        )


def _prepare(traj: Trajectories, norm: Normalisation, mu: int) -> tuple:
    T = traj.num_ticks
    x = np.asarray(norm.forward(np.nan_to_num(traj.features(), nan=1.0)))
    x = np.where(traj.mask[..., None], x, 0.0).astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        r, t, f = (int(i[0]) for i in np.nonzero(bad))
        name = ("log loss", "metric", "log lr")[f]
        raise ValueError(
            f"run {traj.run_ids[r]!r}, tick {t}: its {name}, normalised by the "
            "training runs' mean and std, overflows float32; the value is far "
            "outside the other runs' range: fix or drop that run."
        )
    # mu - 1 masked ticks in front (windows ending before tick mu - 1), T behind
    # (the prediction horizon past the run's end).
    pad = ((0, 0), (mu - 1, T), (0, 0))
    xp = np.pad(x, pad)
    mp = np.pad(traj.mask, pad[:2])
    return xp, mp


def _windows(traj: Trajectories) -> np.ndarray:
    """Every (run, end tick) with a valid end tick at or after tick 1."""
    r, e = np.nonzero(traj.mask)
    keep = e >= 1
    return np.stack([r[keep], e[keep]], axis=1).astype(np.int32)


def _eval_windows(traj: Trajectories) -> np.ndarray:
    pairs = []
    for r in range(traj.num_runs):
        valid = np.nonzero(traj.mask[r])[0]
        valid = valid[valid >= 1]
        if valid.size == 0:
            continue
        for frac in _EVAL_FRACTIONS:
            target = frac * (traj.num_ticks - 1)
            pairs.append((r, valid[np.argmin(np.abs(valid - target))]))
    return np.unique(np.asarray(pairs, np.int32).reshape(-1, 2), axis=0)


def _sample_loss(model: LatentODE, x, m, pair, horizon: int):
    """Squared error, its count and the path length of one training window."""
    mu = model.mu
    r, e = pair[0], pair[1]
    xr, mr = x[r], m[r]
    window = jax.lax.dynamic_slice_in_dim(xr, e, mu)
    wmask = jax.lax.dynamic_slice_in_dim(mr, e, mu)
    target = jax.lax.dynamic_slice_in_dim(xr, e, horizon)
    tmask = jax.lax.dynamic_slice_in_dim(mr, e, horizon)
    # No unrolling under autodiff: it compiles slower and, measured, runs no faster.
    z_start = model.encode_start(window, wmask)
    zs = model.latent_path(z_start, horizon, unroll=1)
    pred = jax.vmap(model.decoder)(zs)
    sq = jnp.where(tmask[:, None], (pred - target) ** 2, 0.0)
    # The sum of squared latent increments, times T: ~ the integral of |dz/dt|^2
    # over the decoded path in the model's time (a run spans time 1).
    path = model.T * jnp.sum(jnp.diff(zs, axis=0) ** 2)
    return jnp.sum(sq), 3.0 * jnp.sum(tmask), path


def _sample_pairs(pairs, key, step, batch_size: int):
    """The training step's batch: ``batch_size`` windows drawn uniformly with
    replacement, from a key that depends only on ``(key, step)`` (so a resumed
    fit draws the batches an uninterrupted one would have)."""
    k = jax.random.fold_in(key, step)
    return pairs[jax.random.randint(k, (batch_size,), 0, pairs.shape[0])]


def _batch_loss(model, x, m, pairs, horizon, path_penalty):
    sse, count, path = jax.vmap(lambda p: _sample_loss(model, x, m, p, horizon))(pairs)
    mse = jnp.sum(sse) / jnp.maximum(jnp.sum(count), 1.0)
    return mse + path_penalty * jnp.mean(path), mse


def one_cycle(
    count: ArrayLike,
    total_steps: ArrayLike,
    peak: ArrayLike,
    pct_start: float = 0.3,
    div: float = 25.0,
    final_div: float = 1e4,
) -> jax.Array:
    """One-cycle learning rate (Smith & Topin 2019; PyTorch's and optax's defaults).

    Cosine warm-up from ``peak / div`` to ``peak`` over the first ``pct_start`` of
    ``total_steps``, then cosine annealing to ``peak / (div * final_div)``. Written
    with ``jnp`` so that ``total_steps`` and ``peak`` may be traced: fits that
    differ only in them share one compiled step.

    Args:
        count: the step (may be traced).
        total_steps: the schedule's length in steps (may be traced).
        peak: the largest rate (may be traced).
        pct_start: fraction of ``total_steps`` spent warming up.
        div: ``peak / div`` is the first rate.
        final_div: ``peak / (div * final_div)`` is the last rate.

    Returns:
        The rate at ``count``, float32.

    Examples:
        >>> [round(float(one_cycle(c, 100, 1e-3)), 6) for c in (0, 30, 100)]
        [4e-05, 0.001, 0.0]
    """
    count = jnp.asarray(count, jnp.float32)
    up = jnp.maximum(pct_start * total_steps, 1.0)
    start, end = peak / div, peak / (div * final_div)

    def cos_interp(a, b, frac):
        frac = jnp.clip(frac, 0.0, 1.0)
        return b + (a - b) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))

    warm = cos_interp(start, peak, count / up)
    anneal = cos_interp(peak, end, (count - up) / jnp.maximum(total_steps - up, 1.0))
    return jnp.where(count < up, warm, anneal)


def _optimizer(total_steps, peak) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        optax.scale_by_learning_rate(lambda c: one_cycle(c, total_steps, peak)),
    )


# Module-level jitted functions, so repeated fits with the same data shapes,
# batch size and horizon compile once per process (the step count, learning rate
# and penalty are traced).
@eqx.filter_jit
def _train_step(params, opt_state, step, model, data: _Data, key, hyper, sizes):
    total_steps, learning_rate, path_penalty = hyper[0], hyper[1], hyper[2]
    batch_size, horizon = sizes
    static = eqx.partition(_trained(model), eqx.is_inexact_array)[1]
    pairs = _sample_pairs(data.pairs, key, step, batch_size)

    def loss_fn(p):
        m = _with_trained(model, eqx.combine(p, static))
        return _batch_loss(m, data.x, data.m, pairs, horizon, path_penalty)[0]

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = _optimizer(total_steps, learning_rate).update(
        grads, opt_state, params
    )
    return optax.apply_updates(params, updates), opt_state, loss


@eqx.filter_jit
def _held_error(params, model, data: _Data, horizon):
    static = eqx.partition(_trained(model), eqx.is_inexact_array)[1]
    m = _with_trained(model, eqx.combine(params, static))
    return _batch_loss(m, data.x, data.m, data.pairs, horizon, 0.0)[1]


#: The model's graph-shaping settings, resolved by its constructor.
_HYPERPARAMETERS = ("latent_size", "hidden_size", "depth", "solver", "ticks_per_step")


def _fingerprint(traj: Trajectories, config: dict[str, Any]) -> str:
    h = hashlib.sha256(traj.digest().encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


#: Rank correlation of the training loss and the metric over the runs' valid
#: ticks above which fit says the metric looks lower-is-better.
RISING_METRIC_RHO = 0.5


def metric_loss_rho(trajectories: Trajectories) -> float:
    """Spearman correlation of the training loss and the metric over the
    runs' valid ticks: above :data:`RISING_METRIC_RHO` the metric looks
    lower-is-better (``fit`` and ``run_sweep`` warn)."""
    mask = trajectories.mask
    return spearman(trajectories.loss[mask], trajectories.metric[mask])


def _warn_if_metric_rises_with_loss(trajectories: Trajectories) -> None:
    """A validation loss taken for the metric fits without error, and then the
    worst run is the warm start and a schedule's decisions aim at a higher
    loss: say so when the metric rises with the training loss, as a
    lower-is-better one does (a higher-is-better one falls as the loss falls)."""
    mask = trajectories.mask
    rho = metric_loss_rho(trajectories)
    if rho > RISING_METRIC_RHO:
        rises = (
            f"rises with their training loss (Spearman {rho:+.2f} over "
            f"{int(mask.sum())} ticks)"
        )
        advice = (
            f"the runs' metric was negated (runs.metric_negated) but {rises}: "
            "was it higher-is-better already? Fit it as logged."
            if trajectories.metric_negated
            else f"the runs' metric {rises}, as a lower-is-better metric does "
            "(a validation loss, an error rate). The model takes the metric as "
            "higher-is-better: negate it first (runs.with_negated_metric(), "
            "optax-lode fit --lower-is-better), or ignore this if yours is "
            "higher-is-better."
        )
        warnings.warn(
            advice,
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


LR_OUTLIER_FACTOR = 1e3
"""A rate this many times both its run's median rate and every other run's
largest is warned about as an outlier: the largest rate sets the model's ``lr_range``,
which bounds the schedule's rates. (Not the smallest: a schedule decaying to
0 logs rates far below its median.)"""


def _warn_if_uninformative(trajectories: Trajectories) -> None:
    """Runs that fit without error but leave the schedule nothing to choose
    by: a metric or a rate that never varies, or one rate far above the rest."""
    mask = trajectories.mask
    said = []
    for name, values in (
        ("validation metric", trajectories.metric[mask]),
        ("learning rate", trajectories.lr[mask]),
    ):
        if values.size > 1 and values.min() == values.max():
            said.append(
                f"the runs' {name} is {values[0]:g} at every tick of every run: "
                + (
                    "the model cannot rank futures by it"
                    if name == "validation metric"
                    else "the model learns nothing about the rate (the sweep "
                    "varied none)"
                )
            )
    lr = np.where(mask, trajectories.lr, np.nan)
    peaks = np.nanmax(lr, axis=1)
    top = int(np.argmax(peaks))
    others = np.delete(peaks, top)
    usual = max(np.nanmedian(lr[top]), others.max() if others.size else 0.0)
    if peaks[top] > LR_OUTLIER_FACTOR * usual:
        tick = int(np.nanargmax(lr[top]))
        said.append(
            f"run {trajectories.run_ids[top]!r} has the rate {peaks[top]:.3g} at "
            f"tick {tick}, over {LR_OUTLIER_FACTOR:g} times both its median rate "
            "and every other run's largest: an outlier? The largest rate sets the "
            "model's lr_range, which bounds the schedule's rates"
        )
    for text in said:
        warnings.warn(text + ".", UserWarning, stacklevel=caller_stacklevel())


@jax_defaults
def fit(
    trajectories: Trajectories,
    *,
    mu: int | None = None,
    steps: int = 5000,
    batch_size: int = 20,
    learning_rate: float = 1e-3,
    path_penalty: float = 1e-3,
    held_out: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    eval_every: int | None = None,
    patience: int | None = 10,
    callback: Callable[[int, LatentODE, dict[str, float]], Any] | None = None,
    **model_kwargs: Any,
) -> LatentODE:
    """Fits a :class:`LatentODE` to a sweep's runs.

    Training windows are those the scheduler will query: the encoder sees ``mu``
    ticks ending at a random valid tick ``e`` of a random run (ticks before the
    run's start are masked), and the model decodes from the window's first tick
    over ``mu - 1 + T`` ticks, reconstructing the window and predicting the rest of
    the run. The loss is

        MSE + path_penalty * T * sum_k |z[k+1] - z[k]|^2,

    the mean squared error of the normalised features over every valid decoded
    tick of the batch, plus the latent path-length penalty: the sum of squared
    latent increments along each decoded path, times ``T`` (which approximates
    the integral of ``|dz/dt|^2`` in the model's time), averaged over the batch.
    Optimiser: Adam on a one-cycle schedule peaking at ``learning_rate`` (paper
    A.3; :func:`one_cycle`), with gradients clipped to global norm 1, on a jitted
    step vmapped over the batch. Every ``eval_every`` steps the MSE on fixed
    windows of the held-out runs (ending at 5%, 25%, 50% and 75% of the run) is
    measured; the model with the lowest one is returned, and training stops early after
    ``patience`` evaluations without improvement.

    The fit is deterministic for a given ``seed`` (batches are drawn from
    ``fold_in(key, step)``). With ``checkpoint_dir``, the state is saved (one
    atomically written file, same format as the model artifact) at every
    evaluation; calling ``fit`` again with the same data and arguments resumes from
    it and gives the same model as an uninterrupted fit.

    Args:
        trajectories: the sweep's runs (all on one tick grid; ``T`` is its length).
        mu: encoder window in ticks; default 5% of ``T``, at least 2.
        steps: maximum number of gradient steps.
        batch_size: windows per step (paper: 20).
        learning_rate: peak learning rate of the one-cycle schedule (paper: 1e-3).
        path_penalty: weight of the latent path-length penalty.
        held_out: fraction of runs held out for early stopping. 0 holds none
            out: ``patience`` then watches the training loss, and the last
            model is returned (the summary's ``best_step`` is its step). A
            split that leaves either side without a valid tick after tick 0
            falls back to that, with a warning.
        seed: seed of the initialisation, the split and the batches, in
            ``[0, 2**32)``.
        progress: show a progress bar (tqdm) with the loss and held-out error.
        checkpoint_dir: directory for a resumable checkpoint.
        eval_every: steps between held-out evaluations; default ``steps // 50``
            clipped to [10, 200].
        patience: evaluations without improvement before stopping (at least
            1); ``None`` never stops early.
        callback: called after every evaluation as ``callback(step, model,
            {"loss": ..., "held_out": ..., "seconds": ...})`` with the current
            (not the best) model, e.g. to log or to measure time-to-quality.
        **model_kwargs: forwarded to :class:`LatentODE` (``latent_size``,
            ``hidden_size``, ``depth``, ``solver``, ``ticks_per_step``).

    Returns:
        The trained model, carrying its normalisation, ``T``, ``mu``, the runs'
        learning-rate range, the best run's learning-rate path, ``latent_scale``
        (the per-dimension std of encoded training windows) and a training
        summary, which records the runs' ``steps_per_tick`` (when they know
        it) for :func:`~optax_lode.lode_schedule` to check, and whether their
        metric was negated (``model.metric_negated``).

    Raises:
        TypeError: ``trajectories`` is not a :class:`Trajectories`, or
            ``model_kwargs`` holds a keyword :class:`LatentODE` does not take.
        ValueError: an argument out of range (``steps``, ``batch_size``,
            ``mu``, ``held_out``, ``learning_rate``, ``path_penalty``,
            ``eval_every``, ``patience``, ``seed``, or a ``model_kwargs``
            value :class:`LatentODE` refuses), runs too short for a
            window (``T < 3``, or no run with 2 valid ticks), a valid value
            outside float32's range, a ``checkpoint_dir`` that cannot be made
            or written (said before training) or holds a checkpoint of another
            fit, or a held-out error never finite.
        FloatingPointError: the fit diverged (a non-finite training loss);
            lower ``learning_rate`` or ``path_penalty``.

    Warns:
        UserWarning: the metric rises with the training loss, as a
            lower-is-better metric does (negate it first:
            :meth:`~optax_lode.Trajectories.with_negated_metric`), or
            ``held_out`` could not hold runs out (a single run, or a split
            leaving one side nothing to evaluate or train on), so the fit
            stops early on the training loss instead; a metric or a rate the
            same at every tick of every run, or a rate over 1000 times its
            run's median and every other run's largest (an outlier would set
            the model's ``lr_range``).

    Examples:
        >>> from optax_lode.runs import synthetic_sweep
        >>> model = fit(synthetic_sweep(ticks=40, seeds=(0,)), steps=20,
        ...             progress=False)
        >>> model.T
        40

    References:
        Sampson & Melchior, *Dynamics of Learning: Generative Schedules from Latent
        ODEs*, 2025, Appendix A.3.
    """
    if not isinstance(trajectories, Trajectories):
        raise TypeError(
            "fit expects an optax_lode.Trajectories; build one with "
            "Trajectories.from_dataframe / from_csv / from_parquet / from_arrays."
        )
    T = trajectories.num_ticks
    if T < 3:  # before the model, which refuses them in its own terms
        raise ValueError(
            f"runs of T={T} ticks are too short to schedule: a decision needs "
            "a window of mu ticks with 2 <= mu < T, so T >= 3; log more ticks "
            "per run (ticks_per_epoch of the sweep)."
        )
    steps, batch_size = whole("steps", steps), whole("batch_size", batch_size)
    if steps < 1 or batch_size < 1:
        raise ValueError(
            f"steps and batch_size must be positive; got {steps}, {batch_size}."
        )
    if not 0.0 <= float(held_out) < 1.0:
        raise ValueError(f"held_out must be in [0, 1); got {held_out}.")
    if not (math.isfinite(path_penalty) and path_penalty >= 0):
        raise ValueError(
            f"path_penalty must be finite and non-negative; got {path_penalty}."
        )
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be finite and > 0; got {learning_rate}.")
    if eval_every is None:
        eval_every = min(200, max(10, steps // 50))
    eval_every = whole("eval_every", eval_every)
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1 (steps); got {eval_every}.")
    if patience is not None and (
        isinstance(patience, bool) or whole("patience", patience) < 1
    ):
        # 0 would stop at the first evaluation that does not improve.
        raise ValueError(
            f"patience must be a positive number of evaluations, or None to never "
            f"stop early; got {patience!r}."
        )
    patience = None if patience is None else int(patience)
    seed = check_seed(seed)
    if held_out > 0 and trajectories.num_runs < 2:
        warnings.warn(
            f"held_out={held_out} needs at least 2 runs (one to fit, one to hold "
            "out); with 1, fitting on it and early stopping on the training loss "
            "(as with held_out=0).",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )

    _check_float32(trajectories)  # before the normalisation overflows on it
    _warn_if_metric_rises_with_loss(trajectories)
    _warn_if_uninformative(trajectories)
    if held_out > 0 and trajectories.num_runs >= 2:
        train, held = trajectories.split(held_out=held_out, seed=seed)
        why, hint = None, ""
        if len(_eval_windows(held)) == 0:
            why = (
                f"the held-out runs {list(held.run_ids)} have no valid tick after "
                "tick 0, so nothing to evaluate"
            )
        elif len(_windows(train)) == 0:
            why = (
                "the split held out every run with a valid tick after tick 0 "
                f"(held out: {list(held.run_ids)}), leaving nothing to train on"
            )
            hint = "; another seed may split better"
        if why is not None:
            warnings.warn(
                f"{why}: fitting on every run, early stopping on the training loss "
                f"(as with held_out=0{hint}).",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
            train, held = trajectories, None
        elif train.num_runs < 2 <= trajectories.num_runs - 1:
            warnings.warn(
                f"held_out={held_out} leaves {train.num_runs} run to fit of "
                f"{trajectories.num_runs} ({held.num_runs} held out): the model "
                "learns one run's dynamics; a smaller held_out fits more.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
    else:
        train, held = trajectories, None
    norm = Normalisation.from_data(train.features(), train.mask)
    best = trajectories.best_run()
    best_lr = _ffill(best.lr[0])
    valid_lr = trajectories.lr[trajectories.mask]
    # threefry whatever the user's jax_default_prng_impl (rbg on TPU, say): the
    # same seed and runs give the same model everywhere.
    key = jax.random.key(seed, impl="threefry2x32")
    key_init, key_batches = jax.random.split(key)
    model = LatentODE(
        T=T,
        key=key_init,
        mu=mu,
        normalisation=norm,
        lr_range=[valid_lr.min(), valid_lr.max()],
        best_lr_path=best_lr,
        **model_kwargs,
    )
    mu = model.mu
    if not 2 <= mu < T:  # the model would fit, and lode_schedule refuse it
        raise ValueError(
            f"runs of T={T} ticks with a window of mu={mu}: a schedule needs "
            "2 <= mu < T (a window of at least 2 ticks and a decision before "
            f"the run ends); pass mu in [2, {T - 1}]."
        )
    horizon = mu - 1 + T

    windows = _windows(train)
    if len(windows) == 0:
        raise ValueError(
            "no training window: every training run needs at least 2 valid ticks."
        )
    xp, mp = _prepare(train, norm, mu)
    data = _Data(jnp.asarray(xp), jnp.asarray(mp), jnp.asarray(windows))
    if held is not None:
        hx, hm = _prepare(held, norm, mu)
        held_data = _Data(
            jnp.asarray(hx), jnp.asarray(hm), jnp.asarray(_eval_windows(held))
        )
    optim = _optimizer(steps, learning_rate)
    # Only the networks train; normalisation and run statistics are data.
    params, static = eqx.partition(_trained(model), eqx.is_inexact_array)
    opt_state = optim.init(params)
    hyper = jnp.asarray([steps, learning_rate, path_penalty], jnp.float32)
    sizes = (batch_size, horizon)

    config = {
        "mu": mu,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "path_penalty": float(path_penalty),
        "held_out": float(held_out),
        "seed": int(seed),
        "eval_every": eval_every,
        "patience": patience,
        # As resolved, so latent_size=20 written out is the default left out.
        "model": {
            **model_kwargs,
            **{k: getattr(model, k) for k in _HYPERPARAMETERS},
        },
    }
    fingerprint = _fingerprint(trajectories, config)
    state = {
        "step": 0,
        "best_err": math.inf,
        "best_step": 0,
        "bad_evals": 0,
        "history": [],
        "stopped_early": False,
        "seconds": 0.0,
    }
    best_params = params
    ckpt_path = None
    if checkpoint_dir is not None:
        directory = usable_directory(checkpoint_dir, "checkpoint_dir")
        ckpt_path = os.fspath(directory / _CHECKPOINT)
        if os.path.exists(ckpt_path):
            params, opt_state, best_params, state = _load_checkpoint(
                ckpt_path, fingerprint, (params, opt_state, best_params)
            )

    from tqdm.auto import tqdm

    bar = tqdm(
        total=steps,
        initial=state["step"],
        disable=not progress,
        desc="fit",
        dynamic_ncols=True,
    )
    t_start = time.perf_counter() - state["seconds"]
    losses = []
    step = state["step"]
    while step < steps and not state["stopped_early"]:
        params, opt_state, loss = _train_step(
            params, opt_state, jnp.int32(step), model, data, key_batches, hyper, sizes
        )
        losses.append(loss)
        step += 1
        if step % eval_every == 0 or step == steps:
            train_loss = float(np.mean(jax.device_get(losses)))
            losses = []
            if not np.isfinite(train_loss):
                bar.close()
                raise FloatingPointError(
                    f"the fit diverged at step {step} (non-finite loss); lower "
                    "learning_rate or path_penalty."
                )
            err = (
                float(_held_error(params, model, held_data, horizon))
                if held is not None
                else train_loss
            )
            if err < state["best_err"]:
                state.update(best_err=err, best_step=step, bad_evals=0)
                best_params = params
            else:
                state["bad_evals"] += 1
                if patience is not None and state["bad_evals"] >= patience:
                    state["stopped_early"] = True
            elapsed = time.perf_counter() - t_start
            state["history"].append(
                {"step": step, "seconds": elapsed, "loss": train_loss, "held_out": err}
            )
            state.update(step=step, seconds=elapsed)
            bar.set_postfix(loss=f"{train_loss:.4f}", held_out=f"{err:.4f}")
            if callback is not None:
                callback(
                    step,
                    _with_trained(model, eqx.combine(params, static)),
                    dict(state["history"][-1]),
                )
            bar.update(step - bar.n)
            if ckpt_path is not None:
                _save_checkpoint(
                    ckpt_path, fingerprint, (params, opt_state, best_params), state
                )
    bar.close()

    if held is not None and not math.isfinite(state["best_err"]):
        raise ValueError(
            f"the held-out error was not finite at any of {len(state['history'])} "
            f"evaluations, so no fitted model is better than the untrained one: "
            f"the held-out runs {list(held.run_ids)} probably hold a value far "
            "outside the training runs' range (check their loss and metric), or "
            "pass held_out=0."
        )
    if held is None:
        best_params = params
    model = _with_trained(model, eqx.combine(best_params, static))
    latent_scale = _latent_scale(model, data)
    summary = {
        **{k: v for k, v in config.items() if k not in ("model", "steps")},
        "library_version": __version__,
        "max_steps": steps,
        "steps": state["step"],
        # Without held-out runs the model returned is the last one.
        "best_step": state["best_step"] if held is not None else state["step"],
        "stopped_early": state["stopped_early"],
        "held_out_mse": state["best_err"] if held is not None else None,
        # The content of every run given (trajectories.digest()), so the model
        # can be checked against the runs it is said to be fitted to.
        "runs_digest": trajectories.digest(),
        # The runs' clock, checked by lode_schedule (None: they did not say).
        "steps_per_tick": trajectories.steps_per_tick,
        # Only when true, so that other models' summaries (and digests) stay.
        **({"metric_negated": True} if trajectories.metric_negated else {}),
        "train_runs": list(train.run_ids),
        "held_out_runs": list(held.run_ids) if held is not None else [],
        "best_run": best.run_ids[0],
        "seconds": round(state["seconds"], 3),
        "history": state["history"],
    }
    final = LatentODE(
        T=T,
        key=key_init,
        mu=mu,
        normalisation=norm,
        lr_range=model.lr_range,
        best_lr_path=model.best_lr_path,
        latent_scale=latent_scale,
        training_summary=summary,
        **model_kwargs,
    )
    return _with_trained(final, _trained(model))


def _with_trained(model: LatentODE, parts: tuple) -> LatentODE:
    return eqx.tree_at(_trained, model, parts)


def _ffill(lr: np.ndarray) -> np.ndarray:
    """Fills masked ticks with the last valid learning rate (first valid before)."""
    lr = np.asarray(lr, np.float64).copy()
    valid = np.isfinite(lr)
    idx = np.where(valid, np.arange(lr.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = lr[idx]
    first = np.argmax(valid)
    out[:first] = lr[first]
    return out


def _latent_scale(model: LatentODE, data: _Data, max_windows: int = 2048) -> jax.Array:
    pairs = np.asarray(data.pairs)
    if len(pairs) > max_windows:
        pick = np.linspace(0, len(pairs) - 1, max_windows).round().astype(int)
        pairs = pairs[pick]

    @jax.jit
    def encode_all(pairs):
        def one(pair):
            window = jax.lax.dynamic_slice_in_dim(data.x[pair[0]], pair[1], model.mu)
            wmask = jax.lax.dynamic_slice_in_dim(data.m[pair[0]], pair[1], model.mu)
            return model.encode(window, wmask)

        return jax.vmap(one)(pairs)

    z = encode_all(jnp.asarray(pairs))
    return jnp.maximum(jnp.std(z, axis=0), _MIN_LATENT_SCALE)


def _save_checkpoint(path, fingerprint, trees, state) -> None:
    header = {
        "kind": _CHECKPOINT_KIND,
        "fingerprint": fingerprint,
        "state": state,
        "leaves": leaf_specs(trees),
    }
    atomic_write_bytes(path, pack(header, serialise_leaves(trees)))


def _load_checkpoint(path, fingerprint, like):
    fix = "delete it (the fit starts over) or use another checkpoint_dir"
    try:
        with open(path, "rb") as f:
            header, payload = unpack(f.read(), source=repr(path))
    except (ValueError, IsADirectoryError) as err:
        raise ValueError(f"unreadable fit checkpoint: {err} ({fix})") from None
    if header.get("kind") != _CHECKPOINT_KIND:
        raise ValueError(f"{path!r} is not a fit checkpoint ({fix}).")
    if header.get("fingerprint") != fingerprint:
        raise ValueError(
            f"the checkpoint in {os.path.dirname(path)!r} belongs to a fit of other "
            "data or settings; use another checkpoint_dir or delete it."
        )
    trees = deserialise_leaves(payload, like, source=repr(path))
    return (*trees, header["state"])
