"""The figures are written as real PNG files and reject malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from optax_lode.evaluation import (
    plot_lr_schedules,
    plot_metric_curves,
    plot_reconstruction,
    plot_reconstruction_errors,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG and len(data) > 5_000


def test_plots_write_pngs(tmp_path):
    ticks = 40
    t = np.arange(ticks)
    lode = 1e-2 * np.exp(-t / 20)[None] * np.linspace(0.8, 1.2, 5)[:, None]
    assert _is_png(plot_lr_schedules(tmp_path / "a.png", lode, 1e-2 * np.cos(t / 30)))
    truth = np.stack(
        [np.exp(-t / 10) + 0.1, 1 - np.exp(-t / 10), 1e-2 * np.ones(ticks)], 1
    )
    pred = truth * 1.05
    pred_early = pred.copy()
    pred_early[:1] = np.nan
    path = plot_reconstruction(tmp_path / "b.png", truth, {0.05: pred_early, 0.5: pred})
    assert _is_png(path)
    errors = {
        0.05: {"loss": [0.1, 0.2], "metric": 0.05, "lr": [0.3]},
        0.5: {"loss": 0.05, "metric": 0.01, "lr": 0.1},
    }
    assert _is_png(plot_reconstruction_errors(tmp_path / "c.png", errors))
    curves = {"LODE": (t, truth[None, :, 1]), "cosine": (t, 0.9 * truth[None, :, 1])}
    assert _is_png(plot_metric_curves(tmp_path / "sub" / "d.png", curves))


def test_plots_reject_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="same tick grid"):
        plot_lr_schedules(tmp_path / "a.png", np.ones((2, 10)), np.ones(9))
    with pytest.raises(ValueError, match=r"x has shape \(5,\); the rates have 10"):
        plot_lr_schedules(
            tmp_path / "a.png", np.ones((2, 10)), np.ones(10), x=np.arange(5)
        )
    with pytest.raises(ValueError, match=r"\(ticks, 3\)"):
        plot_reconstruction(
            tmp_path / "b.png", np.ones((10, 2)), {0.5: np.ones((10, 2))}
        )
    with pytest.raises(ValueError, match="empty"):
        plot_reconstruction(tmp_path / "b.png", np.ones((10, 3)), {})
    with pytest.raises(ValueError, match="ticks"):
        plot_metric_curves(tmp_path / "d.png", {"x": (np.arange(3), np.ones((2, 4)))})


def test_decision_fan_from_explain(tmp_path):
    import jax
    import jax.numpy as jnp

    import optax_lode
    from optax_lode.decision import DecisionConfig, explain
    from optax_lode.evaluation import plot_decision_fan

    model = optax_lode.LatentODE(T=30, key=jax.random.key(0))
    cfg = DecisionConfig.from_model(model, mu=4)
    window = jnp.array([[1.0, 0.5, 1e-2]] * 4) * jnp.linspace(1.0, 0.9, 4)[:, None]
    ex = explain(model, window, 8, jax.random.key(1), cfg)
    path = plot_decision_fan(
        tmp_path / "fan.png", ex, normalisation=model.normalisation, max_ticks=40
    )
    assert _is_png(path)
    with pytest.raises(ValueError, match=r"optax_lode\.explain"):
        plot_decision_fan(tmp_path / "bad.png", ex._replace(trajectories=jnp.ones(3)))


def test_a_tick_where_every_seed_diverged_is_a_gap_without_warnings(tmp_path):
    import warnings

    y = np.array([[1.0, 2.0, np.nan], [1.0, 2.5, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nanmean's "Mean of empty slice" was one
        plot_metric_curves(tmp_path / "m.png", {"LODE": (np.arange(3), y)})
    assert (tmp_path / "m.png").stat().st_size > 0


def test_decision_fan_draws_the_acceptance_band_explain_computed(tmp_path, monkeypatch):
    import jax
    import jax.numpy as jnp

    import optax_lode
    from optax_lode.decision import DecisionConfig, explain
    from optax_lode.evaluation import _plots, plot_decision_fan

    figures = []
    save = _plots._save
    monkeypatch.setattr(
        _plots, "_save", lambda fig, path: figures.append(fig) or save(fig, path)
    )
    model = optax_lode.LatentODE(T=30, key=jax.random.key(0))
    cfg = DecisionConfig.from_model(model, mu=4)
    window = jnp.array([[1.0, 0.5, 1e-2]] * 4) * jnp.linspace(1.0, 0.9, 4)[:, None]
    ex = explain(model, window, 8, jax.random.key(1), cfg)

    def band(fig):
        (patch,) = [
            p for p in fig.axes[0].patches if p.get_label() == "acceptance band"
        ]
        ys = patch.get_path().transformed(patch.get_patch_transform()).vertices[:, 1]
        return ys.min(), ys.max()

    plot_decision_fan(tmp_path / "a.png", ex)  # no normalisation: explain's band
    plot_decision_fan(tmp_path / "b.png", ex, normalisation=model.normalisation)
    plot_decision_fan(
        tmp_path / "c.png",
        ex._replace(loss_band=None),
        normalisation=model.normalisation,
    )
    for fig in figures:
        np.testing.assert_allclose(band(fig), np.asarray(ex.loss_band), rtol=1e-5)


def test_reconstruction_bars_take_the_stds_of_their_means(tmp_path, monkeypatch):
    """The demo passed means only, and every bar got a zero-length error bar
    beside a table of mean ± std."""
    import matplotlib.axes

    from optax_lode.evaluation import plot_reconstruction_errors

    drawn = []
    bar = matplotlib.axes.Axes.bar

    def spy(self, *args, yerr=None, **kwargs):
        drawn.append(list(yerr))
        return bar(self, *args, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    errors = {0.05: {"loss": 0.2, "metric": 0.3, "lr": 0.1}}
    stds = {0.05: {"loss": 0.02, "metric": 0.03, "lr": 1.07}}
    plot_reconstruction_errors(tmp_path / "a.png", errors, stds=stds)
    plot_reconstruction_errors(tmp_path / "b.png", errors)
    per_run = {0.05: {"loss": [0.1, 0.3], "metric": [0.3], "lr": [0.1, 0.1]}}
    plot_reconstruction_errors(tmp_path / "c.png", per_run)
    assert drawn[0] == [0.02, 0.03, 1.07]
    assert np.isnan(drawn[1]).all()  # no spread known: no bar, not a 0 one
    assert drawn[2][0] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert np.isnan(drawn[2][1]) and drawn[2][2] == 0.0
