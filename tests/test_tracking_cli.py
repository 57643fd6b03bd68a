"""``optax-lode fit mlflow://... | tensorboard://...`` and ``sweep --mlflow``."""

from __future__ import annotations

import importlib.util
import re
import warnings

import numpy as np
import pytest

from optax_lode.cli import main

pytest.importorskip("tensorboard")


def test_fit_reports_a_missing_mlflow_store(tmp_path, capsys):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    code = main(
        ["fit", "mlflow://sweep", "--tracking-uri", uri, "--out", str(tmp_path / "m")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no MLflow store" in err
    assert "Pass --tracking-uri (or set" in err and "tracking_uri" not in err
    assert not (tmp_path / "m").exists()


def test_fit_reports_a_store_mlflow_refuses(tmp_path, capsys):
    """MLflow 3 refuses file: stores with its own exception: a message and
    exit 2, not a traceback."""
    pytest.importorskip("mlflow")
    uri = f"file://{tmp_path / 'mlruns'}"
    out = str(tmp_path / "m")
    code = main(["fit", "mlflow://sweep", "--tracking-uri", uri, "--out", out])
    assert code == 2
    assert "mlflow://sweep" in capsys.readouterr().err


def test_fit_reports_runs_that_cannot_be_aligned(tmp_path, capsys):
    from tensorboard.summary import Writer

    for name, tags in (("good", ("loss", "acc", "lr")), ("bad", ("loss", "lr"))):
        w = Writer(str(tmp_path / "logs" / name))
        for step in range(6):
            for tag in tags:
                w.add_scalar(tag, 0.5, step)
        w.close()
    args = ["fit", f"tensorboard://{tmp_path / 'logs'}", "--out", str(tmp_path / "m")]
    args += ["--loss-column", "loss", "--metric-column", "acc", "--lr-column", "lr"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "run 'bad': no 'acc' records" in err
    # The advice names the CLI's flags, not the Python arguments.
    assert "--skip-invalid-runs" in err and "on_invalid" not in err
    assert "--loss-column/--metric-column/--lr-column" in err


def test_unknown_source_form(tmp_path, capsys):
    assert main(["fit", "wandb://x", "--out", str(tmp_path / "m")]) == 2
    assert "unknown source scheme 'wandb'" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_to_mlflow_then_fit_from_it(tmp_path, capsys):
    """The whole loop: a sweep logged to MLflow, a LODE fitted from MLflow."""
    pytest.importorskip("mlflow")
    from optax_lode.runs import Trajectories
    from optax_lode.tracking import from_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = [
        "sweep",
        "--task",
        "nqm",
        "--out",
        str(tmp_path / "runs.parquet"),
        "--shapes",
        "cosine,constant",
        "--lrs",
        "0.01,0.1",
        "--seeds",
        "2",
        "--epochs",
        "6",
        "--no-progress",
        "--mlflow",
        uri,
        "--mlflow-experiment",
        "nqm sweep",
    ]
    assert main(sweep) == 0
    out = capsys.readouterr().out
    assert "logged 8 runs to MLflow experiment 'nqm sweep'" in out
    # The NQM's metric is -log L, not an accuracy: it is logged as such, and
    # the message says how to read it back.
    assert "the validation metric as 'val_neg_log_loss'" in out
    assert "--metric-column val_neg_log_loss" in out
    assert "mlflow://nqm%20sweep" in out
    written = Trajectories.from_parquet(tmp_path / "runs.parquet")
    logged = from_mlflow(
        "nqm sweep", tracking_uri=uri, tick=1, metric="val_neg_log_loss"
    )
    assert logged.info["run_name"].tolist() == list(written.run_ids)
    # A step per tick, tagged with the sweep's steps per tick: the same clock.
    assert logged.steps_per_tick == written.steps_per_tick is not None
    np.testing.assert_array_equal(logged.loss, written.loss)
    np.testing.assert_allclose(logged.metric, written.metric, rtol=1e-6)
    np.testing.assert_array_equal(logged.info["peak_lr"], written.info["peak_lr"])

    # A re-run of the sweep: refused before logging, or only the new runs.
    assert main([*sweep, "--mlflow-existing", "error"]) == 2
    assert "already holds 8 of these runs" in capsys.readouterr().err
    assert main([*sweep, "--mlflow-existing", "skip"]) == 0
    assert "logged those of the 8 runs not already there" in capsys.readouterr().out
    assert (
        from_mlflow(
            "nqm sweep", tracking_uri=uri, tick=1, metric="val_neg_log_loss"
        ).num_runs
        == 8
    )

    fit = ["fit", "mlflow://nqm%20sweep", "--tracking-uri", uri, "--steps-per-tick"]
    fit += ["1", "--out", str(tmp_path / "model.lode"), "--steps", "3", "--quiet"]
    fit += ["--held-out", "0.25", "--metric-column", "val_neg_log_loss"]
    assert main(fit) == 0
    assert (tmp_path / "model.lode").exists()


def test_tracker_key_defaults_agree_with_the_clis(capsys):
    # One default per series: what sweep --mlflow writes, what the importers
    # read and what fit --help promises are the same keys.
    import inspect

    from optax_lode.tracking import (
        from_mlflow,
        from_tensorboard,
        log_trajectories_to_mlflow,
    )

    def keys(fn):
        params = inspect.signature(fn).parameters
        return tuple(params[k].default for k in ("loss", "metric", "lr"))

    defaults = keys(from_mlflow)
    assert keys(from_tensorboard) == keys(log_trajectories_to_mlflow) == defaults
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for col, key in zip(("loss", "metric", "lr"), defaults, strict=True):
        flag = text.rindex(f"--{col}-column")
        assert f"scalar tag (default {key})" in text[flag : flag + 200]


def _tb_runs(logdir, steps_by_run):
    from tensorboard.summary import Writer

    for name, steps in steps_by_run.items():
        w = Writer(str(logdir / name))
        for step in steps:
            w.add_scalar("train_loss", 1.0 / (1 + step), step)
            w.add_scalar("val_accuracy", 0.01 * step, step)
            w.add_scalar("lr", 0.1, step)
        w.close()


def test_fit_passes_the_grid_flags_to_the_tracker(tmp_path, monkeypatch, capsys):
    """--first-step, --num-ticks and --exclude-early-stopped reach the
    importer: the grid is the one asked for and the short run is dropped."""
    import optax_lode.model as model_pkg

    logs = tmp_path / "logs"
    _tb_runs(logs, {"a": range(1, 30), "b": range(1, 30), "short": range(1, 20)})
    seen = {}

    def fake_fit(runs, **kwargs):
        seen["runs"] = runs
        raise ValueError("stop here")

    monkeypatch.setattr(model_pkg, "fit", fake_fit)
    args = ["fit", f"tensorboard://{logs}", "--out", str(tmp_path / "m")]
    args += ["--steps-per-tick", "1"]
    assert main([*args, "--first-step", "0", "--num-ticks", "40"]) == 2
    runs = seen["runs"]
    assert runs.num_ticks == 40 and list(runs.run_ids) == ["a", "b", "short"]
    assert not runs.mask[:, 0].any()  # step 0, before the first record
    assert runs.mask[:2, 1:30].all() and not runs.mask[:, 30:].any()
    assert runs.mask[2, 1:20].all() and not runs.mask[2, 20:].any()
    with pytest.warns(UserWarning, match="excluding 1 run"):
        assert main([*args, "--exclude-early-stopped"]) == 2
    assert list(seen["runs"].run_ids) == ["a", "b"]
    # --run-depth: the directory above the writers' is the run.
    nested = tmp_path / "nested"
    _tb_runs(nested / "r1", {"train": range(1, 10)})
    deep = ["fit", f"tensorboard://{nested}", "--out", str(tmp_path / "m")]
    assert main([*deep, "--run-depth", "1", "--loss-column", "train/train_loss",
                 "--metric-column", "train/val_accuracy", "--lr-column",
                 "train/lr"]) == 2  # fmt: skip
    assert list(seen["runs"].run_ids) == ["r1"]
    assert "stop here" in capsys.readouterr().err


def test_fit_refuses_tracker_flags_for_a_file(tmp_path, capsys):
    out = ["--out", str(tmp_path / "m")]
    assert main(["fit", "runs.csv", *out, "--first-step", "10"]) == 2
    assert "--first-step needs a tracker" in capsys.readouterr().err
    # A file's clock has its own flag, which the refusal names.
    assert main(["fit", "runs.csv", *out, "--steps-per-tick", "18"]) == 2
    err = capsys.readouterr().err
    assert "--steps-per-tick needs a tracker" in err
    assert "(a file's clock, optimizer steps per tick: " in err
    assert "--optimizer-steps-per-tick 18)" in err
    assert main(["fit", "tensorboard://x", *out, "--statuses", "FAILED"]) == 2
    assert "--statuses needs an MLflow source" in capsys.readouterr().err
    assert main(["fit", "mlflow://x", *out, "--run-depth", "1"]) == 2
    assert "--run-depth needs a TensorBoard source" in capsys.readouterr().err


def test_fit_reads_the_statuses_asked_for(tmp_path, capsys):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("sweep")
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id, status="FAILED")
    base = ["fit", "mlflow://sweep", "--tracking-uri", uri]
    base += ["--out", str(tmp_path / "m")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "statuses present: ['FAILED']" in err
    assert "Pass --statuses FINISHED,FAILED,..." in err
    assert main([*base, "--statuses", "finished,failed"]) == 2
    # Now read: the run logged nothing, which is the error.
    assert "statuses present" not in capsys.readouterr().err


def _fake_sweep(monkeypatch):
    """Replaces the sweep by one that returns a run at once; returns its calls."""
    import optax_lode.sweep as sweep_pkg
    from optax_lode.runs import Trajectories

    calls = []

    def fake(task, **kwargs):
        calls.append(task)
        return Trajectories.from_arrays(
            np.ones((1, 4)),
            np.full((1, 4), 0.5),
            np.full((1, 4), 0.1),
            run_ids=["r0"],
            info={"test_metric": [0.5]},
            steps_per_tick=3,
        )

    monkeypatch.setattr(sweep_pkg, "run_sweep", fake)
    return calls


def test_sweep_mlflow_is_checked_before_sweeping(tmp_path, monkeypatch, capsys):
    """Without MLflow, or with a store it refuses, --mlflow failed only after
    the sweep (hours), with a traceback."""
    import sys

    calls = _fake_sweep(monkeypatch)
    base = ["sweep", "--task", "nqm", "--out", str(tmp_path / "s.parquet")]
    base += ["--no-progress", "--mlflow"]
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "mlflow", None)  # not installed
        assert main(base) == 2
    err = capsys.readouterr().err
    assert "--mlflow needs the optional package 'mlflow-skinny'" in err
    assert "pip install -e '.[tracking]'" in err
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert main([*base, f"file://{tmp_path / 'mlruns'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optax-lode sweep: --mlflow (file://") and "swept" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert calls == [] and not (tmp_path / "s.parquet").exists()


def test_sweep_mlflow_error_after_the_sweep_is_a_message(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    import optax_lode.tracking as tracking

    _fake_sweep(monkeypatch)

    def refused(traj, **kwargs):
        raise MlflowException("the server said no\n  (details on a second line)")

    monkeypatch.setattr(tracking, "log_trajectories_to_mlflow", refused)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "s.parquet"
    argv = ["sweep", "--task", "nqm", "--out", str(out), "--no-progress"]
    assert main([*argv, "--mlflow", uri]) == 2
    # One line (MLflow's own INFO log lines aside).
    (err,) = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("optax-lode sweep:")
    ]
    assert "the server said no (details on a second line)" in err
    assert "--mlflow-existing skip" in err and out.exists()


def _python_arguments(text: str) -> list[str]:
    """The Python keyword arguments (``name=``) a CLI message still names."""
    return re.findall(r"\b[a-z_]+=", text)


def test_fit_advice_names_flags_not_python_arguments(tmp_path, monkeypatch, capsys):
    """Errors and warnings told CLI users to pass num_ticks=, first_step=,
    early_stopped='mask' or a smaller min_ticks (which has no flag)."""
    import optax_lode.model as model_pkg
    from optax_lode.cli.fit import _as_flags
    from optax_lode.runs import Trajectories
    from optax_lode.tracking._mlflow import _exported_clock

    def fake_fit(runs, **kwargs):
        raise ValueError("stop here")

    monkeypatch.setattr(model_pkg, "fit", fake_fit)
    out = ["--out", str(tmp_path / "m")]
    _tb_runs(tmp_path / "ten", {"a": range(10), "b": range(10)})
    args = ["fit", f"tensorboard://{tmp_path / 'ten'}", *out, "--steps-per-tick", "1"]
    assert main([*args, "--num-ticks", "40", "--exclude-early-stopped"]) == 2
    err = capsys.readouterr().err
    assert "--exclude-early-stopped leaves no run" in err
    assert "Pass --num-ticks 10 or fewer, or leave out --exclude-early-stopped" in err
    errors = [err]
    _tb_runs(tmp_path / "tiny", {"a": range(10), "t": [0]})
    assert main(["fit", f"tensorboard://{tmp_path / 'tiny'}", *out]) == 2
    errors.append(capsys.readouterr().err)
    assert "too few points" in errors[-1]
    # Warnings too: runs counting from 0 and from 1, at different spacings.
    _tb_runs(tmp_path / "mixed", {"a": range(40), "b": range(1, 41)})
    _tb_runs(tmp_path / "mixed", {"c": range(1, 41, 10)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", f"tensorboard://{tmp_path / 'mixed'}", *out]) == 2
    warned = [str(w.message) for w in caught]
    assert any("align them first (or pass --first-step)" in m for m in warned)
    assert any("Pass --steps-per-tick to choose" in m for m in warned)
    # An MLflow experiment holding runs on different clocks.
    mixed_clocks = Trajectories.from_arrays(
        np.ones((2, 4)),
        np.full((2, 4), 0.5),
        np.full((2, 4), 0.1),
        run_ids=["a", "b"],
        info={
            "tags.optax_lode.run_id": ["a", "b"],
            "tags.optax_lode.steps_per_tick": ["1", "2"],
        },
        steps_per_tick=1,
    )
    with pytest.warns(UserWarning, match="different clocks") as clock:
        _exported_clock(mixed_clocks)
    warned.append(_as_flags(str(clock[0].message)))
    assert "--optimizer-steps-per-tick K" in warned[-1]
    for message in errors + warned:
        assert not _python_arguments(message), message


def test_sweep_mlflow_existing_advice_names_the_flag(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    _fake_sweep(monkeypatch)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["sweep", "--task", "nqm", "--out", str(tmp_path / "s.parquet")]
    argv += ["--no-progress", "--mlflow", uri]
    assert main(argv) == 0
    capsys.readouterr()
    with pytest.warns(UserWarning, match="Pass --mlflow-existing skip to keep"):
        assert main(argv) == 0
    assert main([*argv, "--mlflow-existing", "error"]) == 2
    err = capsys.readouterr().err
    assert "Pass --mlflow-existing skip to log only the others" in err
    assert "existing=" not in err


def test_lower_is_better_negates_a_trackers_metric(tmp_path, monkeypatch, capsys):
    """--lower-is-better applies to TensorBoard and MLflow runs as to files."""
    import optax_lode.model as model_pkg

    seen = []

    def fake_fit(runs, **kwargs):
        seen.append(runs)
        raise ValueError("stop here")

    monkeypatch.setattr(model_pkg, "fit", fake_fit)
    logs = tmp_path / "logs"
    _tb_runs(logs, {"a": range(1, 12), "b": range(1, 12)})
    sources = [["fit", f"tensorboard://{logs}", "--steps-per-tick", "1"]]
    if importlib.util.find_spec("mlflow") is not None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        client = MlflowClient(uri)
        exp = client.create_experiment("sweep")
        for name, scale in (("a", 1.0), ("b", 2.0)):
            run = client.create_run(exp, run_name=name)
            client.log_batch(
                run.info.run_id,
                metrics=[
                    Metric(key, value, 0, step)
                    for step in range(1, 12)
                    for key, value in (
                        ("train_loss", scale / step),
                        ("val_accuracy", 0.01 * step * scale),
                        ("lr", 0.1),
                    )
                ],
            )
            client.set_terminated(run.info.run_id, status="FINISHED")
        sources.append(["fit", "mlflow://sweep", "--tracking-uri", uri])
    for source in sources:
        cmd = [*source, "--out", str(tmp_path / "m"), "--quiet"]
        assert main(cmd) == 2
        assert main([*cmd, "--lower-is-better"]) == 2
        plain, negated = seen[-2:]
        np.testing.assert_array_equal(negated.metric, -plain.metric)
        np.testing.assert_array_equal(negated.mask, plain.mask)
        assert "metric negated (--lower-is-better)" in capsys.readouterr().err
