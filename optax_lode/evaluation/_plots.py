"""The evaluation figures of the paper, as PNG files.

Every function draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot,
no global backend switch, nothing is ever shown) and writes it with
``savefig``, so it is safe in scripts, tests and headless servers. matplotlib
is an optional dependency (the ``bench`` extra); it is imported on first use.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ("loss", "metric", "lr")
_LABELS = {
    "loss": "training loss",
    "metric": "validation metric",
    "lr": "learning rate",
}
# Paper colours: LODE red, best parametric blue, truth black, prediction orange.
_LODE = "#d62728"
_BASE = "#1f77b4"
_PRED = "#ff7f0e"


def _figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plots need matplotlib: install the bench extra (in a clone of "
            "optax-lode: pip install -e '.[bench]')."
        ) from e
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{name} must have shape (runs, ticks), got {a.shape}.")
    return a


def plot_lr_schedules(
    path: str | Path,
    lode_lrs: Any,
    baseline_lr: Any,
    *,
    baseline_label: str = "best parametric",
    x: Any = None,
    xlabel: str = "tick",
    title: str | None = None,
) -> Path:
    """The learning rates LODE generated against the best parametric schedule (Fig. 4).

    Args:
        path: PNG file to write.
        lode_lrs: ``(runs, ticks)`` learning rate per tick of LODE-scheduled runs
            (one red line each).
        baseline_lr: ``(ticks,)`` (or ``(runs, ticks)``) learning rate of the best
            parametric schedule (blue).
        baseline_label: legend label of the baseline.
        x: optional ``(ticks,)`` abscissa (e.g. epochs); defaults to the tick index.
        xlabel: abscissa label.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: ``lode_lrs`` or ``baseline_lr`` is not ``(ticks,)`` or
            ``(runs, ticks)`` with at least one tick, the two have different
            numbers of ticks, or ``x`` does not have one value per tick.
        ImportError: matplotlib (the ``bench`` extra) is not installed.

    Examples:
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> from optax_lode.evaluation import plot_lr_schedules
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "lr.png"
        >>> lode = np.geomspace([1e-2, 2e-2], [1e-4, 1e-4], 20).T  # 2 runs
        >>> path = plot_lr_schedules(out, lode, np.full(20, 5e-3))
        >>> path.name, path.stat().st_size > 0
        ('lr.png', True)
    """
    lode = _as_2d(lode_lrs, "lode_lrs")
    base = _as_2d(baseline_lr, "baseline_lr")
    if base.shape[1] != lode.shape[1]:
        raise ValueError(
            f"lode_lrs has {lode.shape[1]} ticks but baseline_lr has {base.shape[1]}: "
            "both must be on the same tick grid."
        )
    xs = np.arange(lode.shape[1]) if x is None else np.asarray(x)
    if xs.shape != (lode.shape[1],):
        raise ValueError(
            f"x has shape {xs.shape}; the rates have {lode.shape[1]} ticks."
        )
    fig, ax = _figure(size=(6.4, 3.6))
    ax = ax[0, 0]
    for i, row in enumerate(lode):
        ax.plot(
            xs, row, color=_LODE, alpha=0.75, lw=1.2, label="LODE" if i == 0 else None
        )
    for i, row in enumerate(base):
        ax.plot(xs, row, color=_BASE, lw=2.0, label=baseline_label if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.legend(frameon=False)
    ax.set_title(title or f"LODE schedules ({lode.shape[0]} seeds) vs {baseline_label}")
    return _save(fig, path)


def plot_reconstruction(
    path: str | Path,
    truth: Any,
    predictions: Mapping[float, Any],
    *,
    title: str | None = None,
) -> Path:
    """Predicted against actual loss, metric and learning rate of one run (Fig. 2).

    One column per observed fraction, one row per feature; the truth is black,
    the prediction orange and the observed part shaded grey.

    Args:
        path: PNG file to write.
        truth: ``(ticks, 3)`` raw ``(loss, metric, lr)`` of the held-out run
            (NaN where masked).
        predictions: observed fraction (e.g. 0.05, 0.5) -> ``(ticks, 3)`` raw
            prediction on the same grid, NaN where nothing is predicted (before
            the last observed tick).
        title: optional overall title.

    Returns:
        The path written.

    Raises:
        ValueError: ``truth`` is not ``(ticks, 3)``, ``predictions`` is
            empty, or a prediction's shape differs from ``truth``'s.
        ImportError: matplotlib (the ``bench`` extra) is not installed.

    Examples:
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> from optax_lode.evaluation import plot_reconstruction
        >>> ticks = np.arange(20)
        >>> truth = np.stack([np.exp(-ticks / 5) + 0.1, 1 - np.exp(-ticks / 5),
        ...                   np.full(20, 1e-2)], axis=1)
        >>> pred = np.where(ticks[:, None] >= 9, truth * 1.05, np.nan)
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "reconstruction.png"
        >>> plot_reconstruction(out, truth, {0.5: pred}).exists()
        True
    """
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 2 or truth.shape[1] != 3:
        raise ValueError(f"truth must have shape (ticks, 3), got {truth.shape}.")
    if not predictions:
        raise ValueError("predictions is empty: pass at least one observed fraction.")
    ticks = truth.shape[0]
    fracs = sorted(predictions)
    fig, axes = _figure(3, len(fracs), size=(4.2 * len(fracs), 7.0))
    for j, frac in enumerate(fracs):
        pred = np.asarray(predictions[frac], dtype=np.float64)
        if pred.shape != truth.shape:
            raise ValueError(
                f"prediction for {frac} has shape {pred.shape}, truth {truth.shape}."
            )
        observed = max(round(frac * ticks), 1)
        for i, feat in enumerate(FEATURES):
            ax = axes[i, j]
            ax.axvspan(0, observed - 1, color="0.85", lw=0)
            ax.plot(truth[:, i], color="black", lw=1.3, label="actual")
            ax.plot(pred[:, i], color=_PRED, lw=1.6, label="LODE prediction")
            if feat in ("loss", "lr"):
                ax.set_yscale("log")
            if j == 0:
                ax.set_ylabel(_LABELS[feat])
            if i == 0:
                ax.set_title(f"observed first {frac:.0%}")
            if i == 2:
                ax.set_xlabel("tick")
    axes[0, 0].legend(frameon=False, fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_reconstruction_errors(
    path: str | Path,
    errors: Mapping[float, Mapping[str, float | Sequence[float]]],
    *,
    title: str | None = None,
    stds: Mapping[float, Mapping[str, float]] | None = None,
) -> Path:
    """Bar chart of Table A1: relative MSE per feature and observed fraction.

    Args:
        path: PNG file to write.
        errors: observed fraction -> feature (``"loss"``, ``"metric"``, ``"lr"``)
            -> relative MSE (a number, or per-run values whose mean ± std is shown).
        title: optional title.
        stds: the same mapping of the standard deviations over runs of the
            numbers in ``errors`` (e.g. :func:`~optax_lode.model.evaluate`'s
            ``"<feature>_std"``), drawn as error bars; a number without one
            gets none.

    Returns:
        The path written.

    Raises:
        ValueError: ``errors`` is empty.
        KeyError: a fraction's mapping lacks ``"loss"``, ``"metric"`` or
            ``"lr"``.
        ImportError: matplotlib (the ``bench`` extra) is not installed.

    Examples:
        >>> import pathlib, tempfile
        >>> from optax_lode.evaluation import plot_reconstruction_errors
        >>> errors = {0.05: {"loss": 0.2, "metric": 0.3, "lr": 0.1},
        ...           0.5: {"loss": [0.05, 0.07], "metric": 0.1, "lr": 0.02}}
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "errors.png"
        >>> plot_reconstruction_errors(out, errors).exists()
        True
    """
    if not errors:
        raise ValueError("errors is empty.")
    fracs = sorted(errors)
    fig, ax = _figure(size=(6.0, 3.6))
    ax = ax[0, 0]
    width = 0.8 / len(fracs)
    xs = np.arange(len(FEATURES))
    for k, frac in enumerate(fracs):
        means, spreads = [], []
        for feat in FEATURES:
            v = np.atleast_1d(np.asarray(errors[frac][feat], dtype=np.float64))
            v = v[np.isfinite(v)]
            means.append(v.mean() if v.size else np.nan)
            given = (stds or {}).get(frac, {}).get(feat, np.nan)
            spreads.append(v.std(ddof=1) if v.size > 1 else given)
        ax.bar(
            xs + (k - (len(fracs) - 1) / 2) * width,
            means,
            width,
            yerr=spreads,
            capsize=3,
            label=f"observed {100 * frac:.2g}%",  # 1.7%, not 2%, of 60 ticks
        )
    ax.set_xticks(xs, [_LABELS[f] for f in FEATURES])
    ax.set_ylabel("relative MSE")
    ax.legend(frameon=False)
    ax.set_title(title or "LODE reconstruction of held-out runs (Table A1)")
    return _save(fig, path)


def plot_metric_curves(
    path: str | Path,
    curves: Mapping[str, tuple[Any, Any]],
    *,
    xlabel: str = "wall time (s)",
    ylabel: str = "test metric",
    highlight: str = "LODE",
    title: str | None = None,
) -> Path:
    """A metric against time for several methods, mean over seeds with a ±1 std band.

    At each tick the mean and band are over the seeds that had not diverged
    by then (NaN values are left out), as the tables' means are over finite
    values: after some seeds diverge, the curve is that of the survivors. A
    tick where every seed diverged is a gap.

    Args:
        path: PNG file to write.
        curves: method -> ``(x, y)``: ``x`` of shape ``(ticks,)`` (or
            ``(seeds, ticks)``, averaged over seeds) and ``y`` of shape
            ``(seeds, ticks)`` (or ``(ticks,)``).
        xlabel: abscissa label.
        ylabel: ordinate label.
        highlight: the method drawn thick and red.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: ``curves`` is empty, a ``y`` is not ``(ticks,)`` or
            ``(seeds, ticks)`` with at least one tick, or an ``x`` does not
            have one value per tick of its ``y``.
        ImportError: matplotlib (the ``bench`` extra) is not installed.

    Examples:
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> from optax_lode.evaluation import plot_metric_curves
        >>> t = np.arange(1, 11)
        >>> curves = {"LODE": (t, [1 - 1 / t, 1 - 0.9 / t]),
        ...           "cosine": (t, [1 - 1.2 / t, 1 - 1.1 / t])}
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "curves.png"
        >>> plot_metric_curves(out, curves, xlabel="epoch").exists()
        True
    """
    if not curves:
        raise ValueError("curves is empty.")
    fig, ax = _figure(size=(6.8, 4.0))
    ax = ax[0, 0]
    # Rivals never take the highlight's red: tab20 without its two reds.
    import matplotlib

    palette = [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors)
               if i not in (6, 7)]  # fmt: skip
    others = iter(palette * (len(curves) // len(palette) + 1))
    for name, (x, y) in curves.items():
        y = _as_2d(y, f"curves[{name!r}] y")
        x = np.asarray(x, dtype=np.float64)
        x = np.nanmean(x, axis=0) if x.ndim == 2 else x
        if x.shape != (y.shape[1],):
            raise ValueError(
                f"curves[{name!r}]: x has shape {x.shape}, y has {y.shape[1]} ticks."
            )
        # A tick where every seed diverged is NaN: a gap in the curve, said by
        # nanmean as a RuntimeWarning (not an errstate), which is no news here.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(y, axis=0)
            std = np.nanstd(y, axis=0, ddof=1)  # as the tables' std
        hi = name == highlight
        kw = (
            {"color": _LODE, "lw": 2.2, "zorder": 5}
            if hi
            else {"lw": 1.2, "color": next(others)}
        )
        (line,) = ax.plot(x, mean, label=name, **kw)
        if y.shape[0] > 1:
            ax.fill_between(
                x, mean - std, mean + std, color=line.get_color(), alpha=0.15, lw=0
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize="small", ncol=2)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_decision_fan(
    path: str | Path,
    explanation: Any,
    *,
    normalisation: Any = None,
    max_ticks: int | None = None,
    title: str | None = None,
) -> Path:
    """One decision's ensemble as a fan of predicted trajectories.

    Every member's predicted ``(loss, metric, lr)`` is drawn against model
    ticks from the decision (0 = now): rejected members thin grey, accepted
    members blue, the chosen (top-three) members red with their matching tick
    (circle), their scoring point ``match + horizon`` on the metric panel
    (star) and the segment each proposes on the learning-rate panel; the
    resulting segment is black, and so is the observed window (at negative
    ticks) when ``normalisation`` is given.

    Args:
        path: PNG file to write.
        explanation: an :class:`optax_lode.decision.Explanation` from
            :func:`optax_lode.explain`.
        normalisation: the model's :class:`optax_lode.Normalisation`; when
            given, the observed window is drawn. The acceptance band (live
            loss ± threshold, ``explanation.loss_band``) is drawn on the loss
            panel in raw units whenever ``explain`` set it, or with
            ``normalisation``.
        max_ticks: draw only the first ``max_ticks`` ticks of the rollout.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: ``explanation.trajectories`` is not ``(n, grid, 3)``.
        ImportError: matplotlib (the ``bench`` extra) is not installed.

    Examples:
        >>> import pathlib, tempfile
        >>> import jax, numpy as np
        >>> from optax_lode import DecisionConfig, LatentODE, explain
        >>> from optax_lode.evaluation import plot_decision_fan
        >>> model = LatentODE(T=20, key=jax.random.key(0), latent_size=4,
        ...                   hidden_size=8, depth=1)
        >>> config = DecisionConfig.from_model(model, run_ticks=20)
        >>> window = np.tile([1.0, 0.5, 1e-2], (config.mu, 1))  # loss, metric, lr
        >>> # An untrained model's decision at the run's first decision tick.
        >>> ex = explain(model, window, config.mu, jax.random.key(1), config)
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "fan.png"
        >>> plot_decision_fan(out, ex, normalisation=model.normalisation).exists()
        True
    """
    ex = explanation
    traj = np.asarray(ex.trajectories, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[2] != 3:
        raise ValueError(
            "explanation.trajectories must have shape (n, grid, 3); pass the "
            f"result of optax_lode.explain, got {traj.shape}."
        )
    n, grid, _ = traj.shape
    upto = grid if max_ticks is None else max(2, min(int(max_ticks), grid))
    traj = traj[:, :upto]
    accepted = np.asarray(ex.accepted, bool)
    chosen = np.asarray(ex.chosen)[np.asarray(ex.chosen_valid, bool)]
    match_tick = np.asarray(ex.match_tick)
    horizon = float(np.asarray(ex.horizon))
    segment = np.asarray(ex.decision.segment, dtype=np.float64)
    mu = segment.shape[0]
    ticks = np.arange(upto)
    fig, axes = _figure(3, 1, size=(7.0, 8.0))
    for i in range(n):
        if i in chosen:
            continue
        kw = (
            {"color": _BASE, "alpha": 0.55, "lw": 0.9}
            if accepted[i]
            else {"color": "0.6", "alpha": 0.35, "lw": 0.6}
        )
        for f in range(3):
            axes[f, 0].plot(ticks, traj[i, :, f], **kw)
    for rank, i in enumerate(chosen):
        k = int(match_tick[i])
        label = "chosen (top 3)" if rank == 0 else None
        for f in range(3):
            axes[f, 0].plot(ticks, traj[i, :, f], color=_LODE, lw=1.8, label=label)
            if k < upto:
                axes[f, 0].plot(k, traj[i, k, f], "o", color=_LODE, ms=5)
        score_at = round(k + horizon)
        if score_at < upto:
            axes[1, 0].plot(score_at, traj[i, score_at, 1], "*", color=_LODE, ms=11)
        # The segment starts one tick after the matching tick (t* - 1).
        seg_ticks = np.arange(k + 1, min(k + 1 + mu, upto))
        axes[2, 0].plot(seg_ticks, traj[i, seg_ticks, 2], color=_LODE, lw=4, alpha=0.4)
    # Legend proxies for the other classes.
    axes[0, 0].plot([], [], color=_BASE, label=f"accepted ({accepted.sum()}/{n})")
    axes[0, 0].plot([], [], color="0.6", label="rejected")
    if normalisation is not None:
        # The observed window (what the encoder read), at ticks -(w-1) .. 0.
        win = np.asarray(normalisation.inverse(np.asarray(ex.window)), np.float64)
        wmask = np.asarray(ex.window_mask, bool)
        win = np.where(wmask[:, None], win, np.nan)
        wt = np.arange(-win.shape[0] + 1, 1)
        for f in range(3):
            axes[f, 0].plot(
                wt,
                win[:, f],
                color="black",
                lw=2.0,
                label="observed window" if f == 0 else None,
            )
    raw = getattr(ex, "loss_band", None)  # set by explain
    if raw is None and normalisation is not None:
        from optax_lode.decision._decide import loss_band

        raw = loss_band(normalisation, ex.live_loss, ex.threshold)
    if raw is not None:
        raw = np.asarray(raw, np.float64)
        axes[0, 0].axhspan(
            raw[0], raw[1], color="green", alpha=0.15, lw=0, label="acceptance band"
        )
    axes[2, 0].plot(
        np.arange(1, mu + 1),  # tick 0 is the window's last tick
        segment,
        color="black",
        lw=2.5,
        label="decided segment (from now)",
    )
    for f, feat in enumerate(FEATURES):
        ax = axes[f, 0]
        ax.set_ylabel(_LABELS[feat])
        if feat in ("loss", "lr"):
            ax.set_yscale("log")
        ax.axvline(0, color="black", lw=0.8, ls=":")
    axes[1, 0].plot(
        [], [], "*", color=_LODE, label=f"score at match + horizon ({horizon:.0f})"
    )
    axes[0, 0].legend(frameon=False, fontsize="small", loc="upper right")
    axes[1, 0].legend(frameon=False, fontsize="small", loc="lower right")
    axes[2, 0].legend(frameon=False, fontsize="small", loc="upper right")
    axes[2, 0].set_xlabel("model ticks from the decision")
    fallback = bool(np.asarray(ex.decision.fallback))
    fig.suptitle(
        title
        or f"one decision: {accepted.sum()} of {n} accepted"
        + (", fallback (held rate)" if fallback else f", top {len(chosen)} averaged")
    )
    return _save(fig, path)
