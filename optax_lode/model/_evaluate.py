"""``evaluate``: reconstruction fidelity (paper Table A1) and trial selection."""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from optax_lode._jax_defaults import jax_defaults
from optax_lode._warn import caller_stacklevel
from optax_lode._whole import whole
from optax_lode.model._latent_ode import LatentODE
from optax_lode.model._normalisation import FEATURES
from optax_lode.runs import Trajectories


@eqx.filter_jit
def _predict_all(model: LatentODE, windows, masks, num_ticks: int):
    def one(window, mask):
        return model.normalisation.inverse(
            model.decode(model.encode(window, mask), num_ticks)
        )

    return jax.vmap(one)(windows, masks)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks).

    NaN when a value is not finite (a NaN has no rank: it was ranked last),
    when there are fewer than two pairs, or when either side is constant.

    Args:
        a: 1-D real values.
        b: 1-D real values, paired with ``a``'s.

    Returns:
        The correlation of their ranks, in ``[-1, 1]``, or NaN as above.

    Raises:
        ValueError: if ``a`` and ``b`` are not 1-D of one length.

    Examples:
        >>> spearman([1.0, 2.0, 3.0], [10.0, 30.0, 20.0])
        0.5
        >>> spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])  # constant: no ranking
        nan
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"spearman needs two 1-D arrays of one length; got {a.shape}, {b.shape}"
        )
    if a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _relative_mse(pred, true, valid) -> np.ndarray:
    """Per run: sum of squared errors over sum of squared truths (valid ticks)."""
    err = np.where(valid, (pred - true) ** 2, 0.0).sum(-1)
    ref = np.where(valid, true**2, 0.0).sum(-1)
    return err / np.maximum(ref, np.finfo(np.float64).tiny)


@jax_defaults
def evaluate(
    model: LatentODE,
    trajectories: Trajectories,
    *,
    observe: float = 0.5,
    window: int | None = None,
) -> dict[str, Any]:
    """Prediction fidelity (paper Table A1) and trial selection (paper A.3).

    For every run, the encoder sees the last ``window`` ticks (default the model's
    ``mu``) of the first ``k = round(observe * T)`` ticks, and the model predicts
    ticks ``k .. T-1``. For each feature ``x`` in raw units (loss, metric, lr) and
    each run, with ``P`` its valid ticks from ``k`` on,

        relative MSE = sum_{t in P} (x_hat_t - x_t)^2 / sum_{t in P} x_t^2,

    averaged over runs (``"<feature>"``) with its standard deviation over runs
    (``"<feature>_std"``). ``"persistence"`` gives the same numbers for the naive
    forecast that every feature stays at its last observed value.

    Trial selection: each run's final metric is predicted from the same
    observation (the prediction at tick ``T-1``); ``"selected_rank"`` is the true
    rank (1 = best) of the run predicted best, by its true final metric (the metric
    at its last valid tick), ``"selected_regret"`` the best true final metric minus
    the selected run's, and ``"spearman"`` the rank correlation between
    predicted and true final metrics. The paper's selection test observes the
    first epoch: pass ``observe`` = one epoch's fraction of the run.

    Runs whose prediction is not finite are counted in ``"failed_runs"`` and left
    out of the averages; runs without a valid tick to observe or to predict are
    left out and counted in ``"skipped_runs"``.

    Args:
        model: a fitted model; its ``T`` must equal ``trajectories.num_ticks``
            and, when both know it, its ``steps_per_tick`` the runs'.
        trajectories: runs to evaluate (normally held-out ones).
        observe: fraction of each run the encoder may see, in (0, 1).
        window: encoder window in ticks (default ``model.mu``).

    Returns:
        A dict with ``"loss"``, ``"metric"``, ``"lr"`` (relative MSEs), their
        ``"_std"`` variants, ``"persistence"`` (a dict of the same three),
        ``"selected_rank"``, ``"selected_run"``, ``"best_run"``,
        ``"selected_regret"``, ``"spearman"``,
        ``"num_runs"``, ``"failed_runs"``, ``"skipped_runs"``, ``"observe"``,
        ``"observed_ticks"`` and ``"window"``.

    Raises:
        TypeError: ``trajectories`` is not a :class:`Trajectories`.
        ValueError: runs on another tick grid than the model's ``T``, on
            another clock than the model's (when both record their
            ``steps_per_tick``), or an ``observe`` or ``window`` out of range.

    Warns:
        UserWarning: the runs' :attr:`~optax_lode.Trajectories.metric_negated`
            is not the model's (one was negated by
            :meth:`~optax_lode.Trajectories.with_negated_metric`, the other
            not).

    Examples:
        >>> import jax
        >>> from optax_lode.runs import synthetic_sweep
        >>> runs = synthetic_sweep(ticks=30, seeds=(0,))
        >>> model = LatentODE(T=30, key=jax.random.key(0))  # fit(...) in practice
        >>> result = evaluate(model, runs, observe=0.5)
        >>> result["num_runs"], result["observed_ticks"], result["window"]
        (16, 15, 2)
        >>> sorted(result["persistence"])
        ['loss', 'lr', 'metric']
    """
    if not isinstance(trajectories, Trajectories):
        raise TypeError("evaluate expects an optax_lode.Trajectories.")
    T = model.T
    fitted, clock = model.steps_per_tick, trajectories.steps_per_tick
    # First: on another clock, a grid of the same length is another time axis.
    if None not in (fitted, clock) and fitted != clock:
        raise ValueError(
            f"the model was fitted to runs of {fitted} optimizer step(s) per "
            f"tick, these runs have {clock}: evaluate runs on the model's clock. "
            "If a recorded clock is wrong (a tracker whose step is not the "
            "optimizer step), correct the runs with "
            f"runs.with_steps_per_tick({fitted}) or the model with "
            f"model.with_steps_per_tick({clock}) (no refit)."
        )
    if trajectories.num_ticks != T:
        # A shorter grid may only have lost its ticks no run reached (CSV).
        hint = (
            f" If their grid is {T} ticks and no run reached its end (a CSV "
            f"file does not keep it), read them with num_ticks={T} "
            "(Trajectories.from_csv / from_dataframe / load_runs)."
            if trajectories.num_ticks < T
            else ""
        )
        raise ValueError(
            f"the model was fitted on runs of T={T} ticks, these have "
            f"{trajectories.num_ticks}; evaluate runs on the model's tick "
            f"grid.{hint}"
        )
    if not 0.0 < float(observe) < 1.0:
        raise ValueError(f"observe must be a fraction in (0, 1); got {observe}.")
    k = min(max(1, round(float(observe) * T)), T - 1)
    if window is not None and whole("window", window) < 1:
        raise ValueError(f"window must be positive; got {window}.")
    w = min(model.mu if window is None else int(window), k)
    if trajectories.metric_negated != model.metric_negated:
        # A warning, not an error: a metric negated by hand carries no flag.
        if model.metric_negated:
            said = (
                "to a negated (lower-is-better) metric (model.metric_negated), "
                "but these runs' metric is not negated. Negate them with "
                "runs.with_negated_metric(), unless you negated it yourself"
            )
        else:
            said = (
                "to a metric as logged, but these runs' metric is negated "
                "(runs.metric_negated). Evaluate them as logged "
                "(runs.with_negated_metric() again), unless the model's runs "
                "were negated by hand"
            )
        warnings.warn(
            f"the model was fitted {said}: the best run and the metric's "
            "errors mean nothing when the signs differ.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )

    raw = trajectories.features()
    mask = trajectories.mask
    norm_win = np.asarray(
        model.normalisation.forward(np.nan_to_num(raw[:, k - w : k], nan=1.0))
    )
    win_mask = mask[:, k - w : k]
    norm_win = np.where(win_mask[..., None], norm_win, 0.0).astype(np.float32)
    pred = np.asarray(
        _predict_all(model, jnp.asarray(norm_win), jnp.asarray(win_mask), T - k + 1),
        np.float64,
    )[:, 1:]  # rows 1.. are ticks k .. T-1
    true = raw[:, k:]
    valid = mask[:, k:]
    has_obs = win_mask.any(axis=1)
    usable = has_obs & valid.any(axis=1)
    finite = np.all(np.isfinite(pred), axis=(1, 2))
    ok = usable & finite

    # The naive forecast: each feature stays at its last observed value.
    obs_mask = mask[:, :k]
    last_idx = k - 1 - np.argmax(obs_mask[:, ::-1], axis=1)
    last = raw[np.arange(len(raw)), last_idx]

    out: dict[str, Any] = {}
    persistence = {}
    for j, name in enumerate(FEATURES):
        rel = _relative_mse(pred[..., j], true[..., j], valid)[ok]
        out[name] = float(rel.mean()) if rel.size else float("nan")
        out[f"{name}_std"] = float(rel.std()) if rel.size else float("nan")
        # Over the same runs as the model's: a failed run is left out of both.
        base = _relative_mse(last[:, None, j], true[..., j], valid)[ok]
        persistence[name] = float(base.mean()) if base.size else float("nan")
    out["persistence"] = persistence

    final_true = trajectories.final_metric
    pred_final = pred[:, -1, 1]
    sel = np.nonzero(ok)[0]
    if sel.size:
        chosen = sel[np.argmax(pred_final[sel])]
        out["selected_rank"] = int(1 + np.sum(final_true[sel] > final_true[chosen]))
        out["selected_run"] = trajectories.run_ids[chosen]
        out["best_run"] = trajectories.run_ids[sel[np.argmax(final_true[sel])]]
        out["selected_regret"] = float(final_true[sel].max() - final_true[chosen])
        out["spearman"] = (
            spearman(pred_final[sel], final_true[sel]) if sel.size > 1 else float("nan")
        )
    else:
        out.update(
            selected_rank=None, selected_run=None, best_run=None, selected_regret=None
        )
        out["spearman"] = float("nan")
    out.update(
        num_runs=int(ok.sum()),
        failed_runs=int((usable & ~finite).sum()),
        skipped_runs=int((~usable).sum()),
        observe=float(observe),
        observed_ticks=int(k),
        window=int(w),
    )
    return out
