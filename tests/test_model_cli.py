"""``optax-lode fit`` and ``optax-lode inspect`` end to end."""

from __future__ import annotations

import pytest

from optax_lode.cli import main
from optax_lode.model import load_model, model_digest
from optax_lode.model._artifact import FORMAT_VERSION
from optax_lode.runs import synthetic_sweep


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "runs.csv"
    synthetic_sweep(ticks=20, seeds=(0,), peak_lrs=(1e-2, 1e-1)).to_csv(path)
    return path


def test_fit_then_inspect(runs_csv, tmp_path, capsys):
    out = tmp_path / "models" / "model.lode"  # a missing directory is made
    code = main(
        [
            "fit",
            str(runs_csv),
            "--out",
            str(out),
            "--steps",
            "30",
            "--learning-rate",
            "3e-3",
            "--held-out",
            "0.25",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"saved {out}" in printed
    assert "Relative MSE on 2 held-out runs" in printed
    for row in ("loss", "metric", "lr", "observe 5%", "observe 50%", "Spearman"):
        assert row in printed
    model = load_model(out)
    assert model.T == 20 and model.training_summary["steps"] == 30
    assert f"model digest {model_digest(model)}" in printed
    # A CSV does not say how many optimizer steps a tick is.
    assert "steps_per_tick=None" in printed and model.steps_per_tick is None

    assert main(["inspect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "T (ticks per run)" in printed and "20" in printed
    assert f"optax-lode.LatentODE v{FORMAT_VERSION}" in printed
    (line,) = [x for x in printed.splitlines() if x.startswith("model digest")]
    assert line.split()[-1] == model_digest(model)
    assert main(["inspect", "--json", str(out)]) == 0
    assert f'"format_version": {FORMAT_VERSION}' in capsys.readouterr().out


def test_fit_records_the_runs_clock_declared_or_from_the_file(tmp_path, capsys):
    """A sweep's Parquet file says its steps per tick and the model records
    it; --optimizer-steps-per-tick declares, corrects (with a note) or
    forgets (0) it; a negative one is refused before fitting."""
    runs = synthetic_sweep(ticks=20, seeds=(0,), peak_lrs=(1e-2, 1e-1))
    parquet, csv = tmp_path / "runs.parquet", tmp_path / "runs.csv"
    runs.with_steps_per_tick(31).to_parquet(parquet)
    runs.to_csv(csv)
    base = ["--steps", "2", "--held-out", "0.25", "--quiet"]
    cases = (
        (parquet, [], 31, "(31 steps per tick)"),
        (csv, ["--optimizer-steps-per-tick", "8"], 8, "(8 steps per tick)"),
        (parquet, ["--optimizer-steps-per-tick", "8"], 8, "the runs say 31"),
        (parquet, ["--optimizer-steps-per-tick", "0"], None, "recording unknown"),
    )
    for source, flags, recorded, said in cases:
        out = tmp_path / "m.lode"
        assert main(["fit", str(source), "--out", str(out), *base, *flags]) == 0
        printed = capsys.readouterr()
        assert said in printed.err
        assert f"steps_per_tick={recorded}" in printed.out
        assert load_model(out).steps_per_tick == recorded
    out = tmp_path / "refused.lode"
    flags = ["--optimizer-steps-per-tick", "-1"]
    # Refused before the runs are read (a tracker's can take minutes).
    missing = str(tmp_path / "missing.csv")
    assert main(["fit", missing, "--out", str(out), *base, *flags]) == 2
    assert "must be >= 1, or 0 for unknown" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow  # five fits: ~15 s
def test_a_csv_grid_and_a_bad_recorded_clock_are_set_by_flags(tmp_path, capsys):
    """A CSV drops its grid (runs that all stopped early read shorter):
    --num-ticks restores it; a Parquet file recording a nonsense clock is read
    with --optimizer-steps-per-tick, as its error says."""
    runs = synthetic_sweep(ticks=12, seeds=(0,), peak_lrs=(1e-2, 1e-1))
    early = runs.to_dataframe().query("tick < 9")
    csv = tmp_path / "early.csv"
    early.to_csv(csv, index=False)
    base = ["--steps", "2", "--held-out", "0.25", "--quiet"]
    out = tmp_path / "m.lode"
    assert main(["fit", str(csv), "--out", str(out), *base]) == 0
    assert load_model(out).T == 9
    assert main(["fit", str(csv), "--out", str(out), *base, "--num-ticks", "12"]) == 0
    assert load_model(out).T == 12
    capsys.readouterr()

    df = runs.to_dataframe()
    df.attrs["steps_per_tick"] = "often"
    parquet = tmp_path / "bad-clock.parquet"
    df.to_parquet(parquet)
    assert main(["fit", str(parquet), "--out", str(out), *base]) == 2
    err = capsys.readouterr().err
    assert "records an invalid clock" in err
    assert "Pass --optimizer-steps-per-tick K (or 0)" in err
    for flag, recorded in (("7", 7), ("0", None)):
        cmd = ["fit", str(parquet), "--out", str(out), *base]
        assert main([*cmd, "--optimizer-steps-per-tick", flag]) == 0
        assert "the runs say often optimizer steps" in capsys.readouterr().err
        assert load_model(out).steps_per_tick == recorded


def test_bad_inputs_exit_2_with_message(runs_csv, tmp_path, capsys):
    bad = tmp_path / "bad.lode"
    bad.write_bytes(b"definitely not a model")
    assert main(["inspect", str(bad)]) == 2
    assert "not an optax-lode file" in capsys.readouterr().err
    assert (
        main(["fit", str(runs_csv), "--out", str(bad), "--metric-column", "acc"]) == 2
    )
    assert "missing column" in capsys.readouterr().err


def test_unwritable_out_and_bad_settings_exit_2_before_fitting(
    runs_csv, tmp_path, capsys, monkeypatch
):
    import optax_lode.model as model_module

    def no_fit(*args, **kwargs):  # the checks must come first
        raise AssertionError("fit ran")

    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = (
        (afile / "m.lode", f"{afile} is not a directory"),
        (tmp_path, ""),
        # Past the file system's 255 bytes: said before the fit, not after.
        (tmp_path / ("m" * 300 + ".lode"), ""),
    )
    for out, why in cases:
        monkeypatch.setattr(model_module, "fit", no_fit)
        assert main(["fit", str(runs_csv), "--out", str(out), "--quiet"]) == 2
        assert f"cannot write --out {out}: {why}" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["inspect", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    for unreadable in (afile / "m.lode", tmp_path / ("m" * 300 + ".lode")):
        assert main(["inspect", str(unreadable)]) == 2  # was a traceback
        assert "cannot read a model file" in capsys.readouterr().err
    args = ["fit", str(runs_csv), "--out", str(tmp_path / "m.lode"), "--quiet"]
    assert main([*args, "--learning-rate", "nan"]) == 2
    assert "learning_rate must be finite" in capsys.readouterr().err
    assert main([*args, "--patience", "-3"]) == 2  # acted as 1
    assert "--patience must be >= 0 (0: off)" in capsys.readouterr().err
    assert not (tmp_path / "m.lode").exists()
    # A file's column flags for a tracker were ignored without a word.
    tracker = ["fit", "tensorboard://x", "--out", str(tmp_path / "m.lode")]
    assert main([*tracker, "--run-column", "r", "--tick-column", "t"]) == 2
    err = capsys.readouterr().err
    assert "--run-column, --tick-column needs a file" in err


def test_writable_parent_measures_the_name_itself(tmp_path):
    from optax_lode._files import writable_parent

    # Its probe file has a short name: the target's own is checked too.
    assert writable_parent(tmp_path / ("m" * 250 + ".lode")) == (None, None)
    made, why = writable_parent(tmp_path / ("m" * 251 + ".lode"))
    assert made is None and why == "its name is longer than 255 bytes"


def test_fit_help_is_literal_about_percentages(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "5% / 50%" in text and "%%" not in text


def test_fit_out_is_checked_writable_and_a_made_directory_not_left(
    runs_csv, tmp_path, capsys, monkeypatch
):
    import tempfile

    import optax_lode.model as model_module

    # Settings the fit refuses: the directory made for --out is removed again.
    out = tmp_path / "new" / "deeper" / "m.lode"
    assert main(["fit", str(runs_csv), "--out", str(out), "--mu", "500"]) == 2
    assert "mu" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()

    # A directory that cannot be written (root ignores modes: simulated) is
    # said before the fit, not after it as a traceback.
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def no_fit(*args, **kwargs):
        raise AssertionError("fit ran")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(model_module, "fit", no_fit)
    assert main(["fit", str(runs_csv), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write --out {out}: cannot write in {out.parent}" in err
    assert "Permission denied" in err and not (tmp_path / "new").exists()


def test_a_reader_that_stops_early_is_not_a_traceback(tmp_path):
    """``optax-lode inspect m.lode | head -1``: the closed pipe ends the
    command quietly (exit 1), as for any Unix filter."""
    import subprocess
    import sys

    import jax

    from optax_lode.model import LatentODE, save_model

    path = tmp_path / "m.lode"
    save_model(path, LatentODE(T=20, key=jax.random.key(0)))
    cmd = [sys.executable, "-m", "optax_lode", "inspect", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes a line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err


@pytest.mark.slow  # a CLI subprocess: ~10 s
def test_warnings_read_as_the_commands_own_lines(tmp_path):
    """A warning raised deep in the library printed the library's file and
    line (``.../_trajectories.py:495: ... return cls.from_dataframe(...)``)."""
    import subprocess
    import sys

    import pandas as pd

    table = pd.DataFrame(
        {
            "run": ["a"] * 4 + ["b"] * 4,
            "tick": [0, 1, 2, 3] * 2,
            "loss": [1.0, 0.9, float("nan"), 1.0, 1.0, 0.9, 0.8, 0.7],
            "metric": [0.1, 0.2, 0.3, 0.4] * 2,
            "lr": [0.1] * 8,
        }
    )
    table.to_csv(tmp_path / "runs.csv", index=False)
    cmd = [sys.executable, "-m", "optax_lode", "fit", str(tmp_path / "runs.csv")]
    cmd += ["--out", str(tmp_path / "m.lode"), "--steps", "2", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (
        "optax-lode: DivergedRunWarning: run 'a' diverged: non-finite loss at "
        "tick 2" in done.stderr
    )
    assert "_trajectories.py" not in done.stderr


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(monkeypatch, capsys):
    """Only a closed stdout ends the command quietly; a broken connection
    elsewhere (a tracking server, say) stays an error."""
    import optax_lode.cli.inspect_model as inspect_model

    def broken(args):
        raise BrokenPipeError("the tracking server went away")

    monkeypatch.setattr(inspect_model, "run", broken)
    with pytest.raises(BrokenPipeError, match="tracking server"):
        main(["inspect", "m.lode"])


@pytest.mark.slow  # three fits: ~10 s
def test_lower_is_better_fits_the_negated_metric(tmp_path, capsys, monkeypatch):
    """A validation loss as the metric: best_run, the warm-start path and the
    trial selection picked the worst run. --lower-is-better negates it, for
    files and trackers alike (applied to what load_runs read)."""
    import numpy as np

    import optax_lode.model as model_module

    runs = synthetic_sweep(ticks=20, seeds=(0,), peak_lrs=(1e-2, 1e-1))
    table = runs.to_dataframe()
    table["val_loss"] = 1.2 - table.pop("metric")
    csv, parquet = tmp_path / "runs.csv", tmp_path / "runs.parquet"
    table.to_csv(csv, index=False)
    table.to_parquet(parquet)
    lowest = runs.run_ids[int(np.argmax(runs.final_metric))]  # lowest val_loss
    out = tmp_path / "m.lode"
    args = ["fit", str(csv), "--out", str(out), "--metric-column", "val_loss"]
    args += ["--steps", "10", "--held-out", "0.25", "--quiet"]
    assert main([*args, "--lower-is-better"]) == 0
    printed = capsys.readouterr()
    assert "metric negated (--lower-is-better)" in printed.err
    assert "Trial selection (final negated metric" in printed.out
    assert "val_metric=-<your metric>" in printed.out  # the reminder
    model = load_model(out)
    assert model.training_summary["best_run"] == lowest
    # The model file records the negation, and inspect shows it.
    assert model.metric_negated
    assert main(["inspect", str(out)]) == 0
    assert "negated before the fit" in capsys.readouterr().out
    # Runs already negated (a Parquet file says so) are not negated again.
    runs.with_negated_metric().to_parquet(tmp_path / "neg.parquet")
    assert main(["fit", str(tmp_path / "neg.parquet"), "--out", str(out),
                 "--lower-is-better"]) == 2  # fmt: skip
    assert "already negated" in capsys.readouterr().err
    # A CSV of negated runs does not say so: every value negative is said.
    with pytest.warns(UserWarning, match="metric_negated=True"):
        runs.with_negated_metric().to_csv(tmp_path / "neg.csv")
    cmd = ["fit", str(tmp_path / "neg.csv"), "--out", str(tmp_path / "n.lode")]
    assert main([*cmd, "--lower-is-better", "--steps", "2", "--held-out", "0"]) == 0
    assert "as if it were negated already" in capsys.readouterr().err
    # One held-out run: a "rank 1 of 1" and a NaN Spearman, said so.
    assert main([*cmd, "--steps", "2", "--held-out", "0.05", "--quiet"]) == 0
    assert "only 1 held-out run(s): too few to rank" in capsys.readouterr().out
    best = runs.select([lowest]).lr[0]
    np.testing.assert_allclose(np.asarray(model.best_lr_path), best, rtol=1e-6)

    seen = []

    def fake_fit(runs, **kwargs):
        seen.append(runs)
        raise ValueError("stop here")

    monkeypatch.setattr(model_module, "fit", fake_fit)
    for source in (csv, parquet):
        cmd = ["fit", str(source), "--out", str(out), "--metric-column", "val_loss"]
        assert main(cmd) == 2
        assert main([*cmd, "--lower-is-better"]) == 2
        plain, negated = seen[-2:]
        np.testing.assert_array_equal(negated.metric, -plain.metric)
        assert negated.best_run().run_ids == (lowest,) != plain.best_run().run_ids


def test_an_unusable_checkpoint_dir_is_said_before_fitting(
    runs_csv, tmp_path, capsys, monkeypatch
):
    """A checkpoint directory that could not be written: the fit trained
    until its first checkpoint, then a traceback naming a hidden file."""
    import os
    import tempfile

    import optax_lode.model as model_module

    def no_fit(*args, **kwargs):
        raise AssertionError("fit ran")

    monkeypatch.setattr(model_module, "fit", no_fit)
    out = tmp_path / "new" / "m.lode"
    base = ["fit", str(runs_csv), "--out", str(out), "--quiet", "--checkpoint-dir"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([*base, str(afile)]) == 2
    err = capsys.readouterr().err
    assert f"cannot use --checkpoint-dir {afile}: {afile} is not a directory" in err
    assert not (tmp_path / "new").exists()  # made for --out, removed

    real = tempfile.TemporaryFile
    ckpt = tmp_path / "ro"

    def read_only(*args, dir=None, **kwargs):  # root ignores modes: simulated
        if dir is not None and os.fspath(dir) == os.fspath(ckpt):
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert main([*base, str(ckpt)]) == 2
    err = capsys.readouterr().err.splitlines()  # what was read, then why not
    assert err[1:] == [
        f"optax-lode fit: cannot use --checkpoint-dir {ckpt}: cannot write in "
        f"{ckpt} (Permission denied)"
    ]
    assert not ckpt.exists() and not (tmp_path / "new").exists()

    # Made unwritable during the fit: a message, not a traceback.
    def fit_fails(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ck" / "x"))

    monkeypatch.setattr(model_module, "fit", fit_fails)
    assert main([*base, str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and not (tmp_path / "ck").exists()
    assert err[1].startswith("optax-lode fit: [Errno 13] Permission denied")


def test_an_empty_runs_file_is_named(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["fit", str(empty), "--out", str(tmp_path / "m.lode")]) == 2
    err = capsys.readouterr().err
    assert f"optax-lode fit: '{empty}' is empty; expected a CSV file" in err


def _no_fit(*args, **kwargs):  # a refusal must come before the fit
    raise AssertionError("fit ran")


def test_fit_refuses_to_write_the_model_over_the_runs(tmp_path, capsys, monkeypatch):
    """``fit runs.parquet --out runs.parquet`` exited 0, the sweep's data
    overwritten by the model; a .csv/.parquet --out is a runs file's name."""
    import os

    import optax_lode.model as model_module

    monkeypatch.setattr(model_module, "fit", _no_fit)
    runs = tmp_path / "runs.parquet"
    synthetic_sweep(ticks=10, seeds=(0,), peak_lrs=(1e-2,)).to_parquet(runs)
    data = runs.read_bytes()
    os.link(runs, tmp_path / "hard.lode")  # the same file under another name
    monkeypatch.chdir(tmp_path)
    cases = (
        ("runs.parquet", "is the runs file"),
        (str(runs), "is the runs file"),
        ("./sub/../runs.parquet", "is the runs file"),
        ("hard.lode", "is the runs file"),
        ("model.CSV", "names a runs file (.CSV); the model is a .lode file"),
        ("model.pq", "e.g. --out model.lode"),
    )
    for out, said in cases:
        assert main(["fit", "runs.parquet", "--out", out, "--steps", "2"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"optax-lode fit: --out {out} ") and said in line
    assert runs.read_bytes() == data
    assert not (tmp_path / "model.CSV").exists()


def test_fit_refuses_an_out_with_a_trailing_separator(runs_csv, tmp_path, capsys):
    """``--out newdir2/`` wrote a file named newdir2 (argparse's Path drops
    the separator)."""
    import os

    out = str(tmp_path / "newdir2") + os.sep
    assert main(["fit", str(runs_csv), "--out", out, "--steps", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"--out {out} ends in {os.sep!r}, which names a directory" in line
    assert not (tmp_path / "newdir2").exists()


def test_a_missing_runs_file_is_said_so(tmp_path, capsys, monkeypatch):
    """A missing Parquet file printed its bare name, a CSV file an errno."""
    monkeypatch.chdir(tmp_path)
    for name in ("nothere.parquet", "nothere.csv", "nothere.pq"):
        assert main(["fit", name, "--out", "m.lode"]) == 2
        err = capsys.readouterr().err
        assert err == f"optax-lode fit: no runs file at '{name}'.\n"


def test_a_directory_given_as_runs_is_said_so(tmp_path, capsys, monkeypatch):
    """An empty directory named d.parquet read as a table without columns."""
    monkeypatch.chdir(tmp_path)
    for name in ("d.parquet", "d.csv"):
        (tmp_path / name).mkdir()
        assert main(["fit", name, "--out", "m.lode"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"optax-lode fit: '{name}' is a directory")
        assert "missing column" not in err


def test_a_binary_csv_file_is_named(tmp_path, capsys, monkeypatch):
    """A binary file named x.csv gave a bare "'utf-8' codec can't decode"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert main(["fit", "x.csv", "--out", "m.lode"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optax-lode fit: cannot read 'x.csv' as CSV text: ")
    assert "not UTF-8" in err and "codec" not in err


def test_a_non_positive_rate_reads_as_a_plain_number(tmp_path, capsys):
    """``column 'lr' (lr) has the non-positive value np.float64(-0.01)``."""
    table = synthetic_sweep(ticks=10, seeds=(0,), peak_lrs=(1e-2,)).to_dataframe()
    table.loc[3, "lr"] = -0.01
    csv = tmp_path / "neg.csv"
    table.to_csv(csv, index=False)
    out = str(tmp_path / "m.lode")
    assert main(["fit", str(csv), "--out", out]) == 2
    err = capsys.readouterr().err
    run, tick = table.loc[3, "run"], table.loc[3, "tick"]
    assert (
        f"run {run!r}: column 'lr' has the non-positive value -0.01 at tick {tick}"
        in err
    )
    table = table.rename(columns={"lr": "rate"})
    table.to_csv(csv, index=False)
    assert main(["fit", str(csv), "--out", out, "--lr-column", "rate"]) == 2
    assert "column 'rate' (lr) has the non-positive value -0.01" in (
        capsys.readouterr().err
    )


def test_a_fit_holding_nothing_out_says_so(runs_csv, tmp_path, capsys):
    """``--held-out 0`` printed ``best held-out MSE None`` and no report,
    without a word why."""
    out = tmp_path / "m.lode"
    args = ["fit", str(runs_csv), "--out", str(out), "--steps", "2", "--quiet"]
    assert main([*args, "--held-out", "0"]) == 0
    printed = capsys.readouterr().out
    assert "held-out MSE None" not in printed and "MSE" not in printed.split("\n")[0]
    assert (
        "no runs held out: no held-out MSE and no report (the model is the last "
        "step's); pass --held-out F (e.g. 0.2) to measure the fit"
    ) in printed
    assert "Relative MSE" not in printed


def test_a_grid_longer_than_every_run_is_warned(tmp_path, capsys, monkeypatch):
    """``--num-ticks 10`` on 3-tick runs: a T=10 model, 70% of it masked,
    without a word."""
    import optax_lode.model as model_module

    def stop(*args, **kwargs):
        raise ValueError("stop here")

    monkeypatch.setattr(model_module, "fit", stop)
    runs = synthetic_sweep(ticks=10, seeds=(0,), peak_lrs=(1e-2,)).to_dataframe()
    csv = tmp_path / "short.csv"
    runs.query("tick < 3").to_csv(csv, index=False)
    args = ["fit", str(csv), "--out", str(tmp_path / "m.lode")]
    with pytest.warns(UserWarning, match="longest run, which has 3 ticks") as seen:
        assert main([*args, "--num-ticks", "10"]) == 2
    assert "last 7 of T=10 ticks are fitted to no record" in str(seen[0].message)
    assert "stop here" in capsys.readouterr().err
    import warnings

    with warnings.catch_warnings():
        # A grid the runs fill: no warning.
        warnings.filterwarnings("error", message="--num-ticks")
        assert main([*args, "--num-ticks", "3"]) == 2


def test_fit_help_gives_every_option_a_help_and_its_default():
    """``--seed``, ``--depth``... had no help; ``--held-out`` and
    ``--patience`` no default; ``--mu`` did not say "at least 2"."""
    import argparse

    from optax_lode.cli import build_parser

    (sub,) = [
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    fit = sub.choices["fit"]
    options = {a.option_strings[-1]: a for a in fit._actions if a.option_strings}
    for flag, action in options.items():
        assert action.help, flag
        takes_a_value = action.nargs != 0
        if takes_a_value and not action.required:
            assert "default" in action.help, flag
    said = {
        "--held-out": "(default 0.1;",
        "--patience": "(default 10;",
        "--seed": "(default 0)",
        "--path-penalty": "(default 1e-3)",
        "--latent-size": "(default 20)",
        "--hidden-size": "(default 20)",
        "--depth": "(default 2)",
        "--solver": "(default euler)",
        "--mu": "(default: 5%% of T, at least 2)",
    }
    for flag, default in said.items():
        assert default in options[flag].help, flag
    assert [options[f].default for f in said] == [0.1, 10, 0, 1e-3, 20, 20, 2,
                                                  "euler", None]  # fmt: skip


def test_a_checkpoint_of_another_fit_says_what_to_do(runs_csv, tmp_path, capsys):
    """The refusal said "a fit of other data or settings; use another
    checkpoint_dir", a Python name, without saying what must match."""
    ckpt = tmp_path / "ck"
    args = ["fit", str(runs_csv), "--out", str(tmp_path / "m.lode"), "--quiet"]
    args += ["--steps", "2", "--checkpoint-dir", str(ckpt)]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--seed", "1"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"optax-lode fit: --checkpoint-dir {ckpt} holds the ")
    assert "which one changed cannot be said" in err and "--seed" in err
    assert "use another --checkpoint-dir" in err
    assert f"delete {ckpt / 'fit-checkpoint.lode'} to start over" in err
    assert "checkpoint_dir" not in err


def test_fit_warnings_name_the_flags(tmp_path):
    """fit's advice named its Python argument (``held_out=0.1``) to a user of
    the command line."""
    runs = synthetic_sweep(ticks=10, seeds=(0,), peak_lrs=(1e-2,))
    one = runs.select([runs.run_ids[0]])
    csv = tmp_path / "one.csv"
    one.to_csv(csv)
    args = ["fit", str(csv), "--out", str(tmp_path / "m.lode"), "--steps", "2"]
    with pytest.warns(UserWarning, match="--held-out 0.1 needs at least 2 runs") as w:
        assert main([*args, "--quiet"]) == 0
    assert not any("held_out=" in str(x.message) for x in w)


def test_the_report_says_which_runs_its_averages_leave_out():
    """A run with no tick past the observed part, and a model whose
    predictions are not finite: the header counted every held-out run and
    the selection said only "no run has an observed part to rank"."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    from optax_lode import LatentODE
    from optax_lode.cli.fit import report_table

    runs = synthetic_sweep(ticks=20, seeds=(0,), peak_lrs=(1e-2, 1e-1))
    mask = runs.mask.copy()
    mask[1, 5:] = False  # stopped early, before the observed half's end
    runs = type(runs).from_arrays(
        runs.loss, runs.metric, runs.lr, mask=mask, run_ids=runs.run_ids
    )
    model = LatentODE(T=20, key=jax.random.key(0))
    text = report_table(model, runs, [0.5])
    n = runs.num_runs
    assert f"Relative MSE on {n} held-out runs" in text
    assert (
        f"observe 50%: {n - 1} of {n} runs; left out 1 with no valid tick to "
        "observe or to predict" in text
    )
    assert f"of {n - 1}, regret" in text
    assert "left out" not in report_table(model, runs.select([0, 2]), [0.5])

    broken = eqx.tree_at(
        lambda m: m.vector_field.layers[-1].bias,
        model,
        jnp.full_like(model.vector_field.layers[-1].bias, np.nan),
    )
    text = report_table(broken, runs, [0.5])
    assert f"{n - 1} whose prediction is not finite" in text
    assert "observe 50%: no run's prediction is finite" in text
