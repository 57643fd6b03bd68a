"""``optax-lode sweep`` end to end on a real nnx task, checked run by run."""

from __future__ import annotations

import numpy as np
import pytest

from optax_lode.cli import main
from optax_lode.runs import Trajectories
from optax_lode.sweep import make_schedule, sweep_optimizer, train_run
from optax_lode.tasks import get_task


def test_cli_sweep_writes_runs_that_train_run_reproduces(tmp_path, capsys):
    out = tmp_path / "runs.parquet"
    argv = [
        "sweep",
        "--task",
        "digits-mlp",
        "--out",
        str(out),
        "--shapes",
        "cosine,step",
        "--lrs",
        "0.01",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--ticks-per-epoch",
        "3",
        "--task-arg",
        "hidden=(32,)",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote 4 runs x 6 ticks of digits-mlp" in printed
    # digits-mlp: 18 steps per epoch in 3 ticks: ticks of 6 steps.
    assert "steps_per_tick=6)" in printed and ".chunks (delete it" in printed
    assert f"6 steps per tick (recorded in {out} and the model" in printed
    traj = Trajectories.from_parquet(out)
    assert traj.steps_per_tick == 6  # the clock travels to the model
    assert traj.run_ids == (
        "cosine-lr0.01-s0",
        "cosine-lr0.01-s1",
        "step-lr0.01-s0",
        "step-lr0.01-s1",
    )
    assert list(traj.info["seed"]) == [0, 1, 0, 1]
    assert (tmp_path / "runs.parquet.chunks" / "chunk-00000.npz").exists()

    # The vmapped sweep's run equals the same run trained alone (nnx models
    # through split/merge inside vmap).
    task = get_task("digits-mlp", hidden=(32,))
    total = 2 * 3 * (task.steps_per_epoch // 3)
    tx = sweep_optimizer(make_schedule("step", 0.01, total), weight_decay=1e-3)
    one = train_run(task, tx, seed=1, epochs=2, ticks_per_epoch=3)
    np.testing.assert_allclose(traj.loss[3], one.loss, rtol=1e-4)
    np.testing.assert_allclose(traj.metric[3], one.metric, atol=1e-6)
    np.testing.assert_allclose(traj.lr[3], one.lr, rtol=1e-6)
    assert traj.info["test_metric"].iloc[3] == pytest.approx(one.test_metric, abs=1e-6)

    # Rerunning resumes from the chunk files (nothing to compute) and agrees.
    assert main(argv) == 0
    again = Trajectories.from_parquet(out)
    np.testing.assert_array_equal(again.loss, traj.loss)
    # A CSV keeps no clock: the message says how to give it to fit.
    chunks = ["--checkpoint-dir", str(tmp_path / "runs.parquet.chunks")]
    as_csv = [str(tmp_path / "runs.csv") if a == str(out) else a for a in argv]
    assert main([*as_csv, *chunks]) == 0
    printed = capsys.readouterr().out
    assert "6 steps per tick (a CSV file drops it: fit with " in printed
    assert "--optimizer-steps-per-tick 6)" in printed
    assert Trajectories.from_csv(tmp_path / "runs.csv").steps_per_tick is None


def test_cli_refuses_before_sweeping(tmp_path, capsys, monkeypatch):
    """A bad suffix, MLflow options without --mlflow (they were ignored) and a
    task whose data are not prepared: a message and exit code 2, no sweep."""
    import optax_lode.tasks as tasks

    base = ["sweep", "--task", "digits-mlp", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "x.json")]) == 2
    assert r"--out must end in .parquet or .csv" in capsys.readouterr().err
    for flags in (["--mlflow-experiment", "e"], ["--mlflow-existing", "error"]):
        assert main([*base, "--out", str(tmp_path / "x.CSV"), *flags]) == 2
        assert f"{flags[0]} needs --mlflow" in capsys.readouterr().err

    def unprepared(name, **kwargs):
        raise tasks.DataNotPreparedError("cannot read TFDS x/train: prepare it")

    monkeypatch.setattr(tasks, "get_task", unprepared)
    assert main([*base, "--out", str(tmp_path / "x.pq")]) == 2
    assert "optax-lode sweep: cannot read TFDS x/train" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "nosuch"], "unknown task 'nosuch'; registered tasks"),
        (["--task", "digits-mlp", "--lrs", "0"], "learning rates must be"),
        (["--task", "digits-mlp", "--epochs", "0"], "--epochs 0 must be >= 1"),
        (["--task", "digits-mlp", "--seeds", "0"], "--seeds 0 must be >= 1"),
        (["--task", "digits-mlp", "--shapes", ","], "shapes must not be empty"),
        (
            ["--task", "digits-mlp", "--ticks-per-epoch", "100"],
            "--ticks-per-epoch 100 exceeds the task's 18 steps per epoch",
        ),
        (
            ["--task", "digits-mlp", "--task-arg", "hiden=(8,)"],
            "--task digits-mlp --task-arg: task 'digits-mlp' takes no keyword "
            "argument 'hiden'; it takes hidden, batch_size",
        ),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_message(tmp_path, capsys, argv, message):
    out = ["--out", str(tmp_path / "x.parquet"), "--no-progress"]
    assert main(["sweep", *argv, *out]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


def test_cli_checks_out_before_sweeping(tmp_path, capsys, monkeypatch):
    """An --out that is a directory, or under a file, was found only after the
    whole sweep trained; now it is said first, in one line, with exit 2."""
    import optax_lode.sweep as sweep

    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep trained before --out was checked")

    monkeypatch.setattr(sweep, "run_sweep", no_sweep)
    (tmp_path / "out.parquet").mkdir()
    (tmp_path / "afile").write_text("x")
    base = ["sweep", "--task", "digits-mlp", "--no-progress", "--out"]
    for out, why in (
        (tmp_path / "out.parquet", "is a directory"),
        (tmp_path / "afile" / "o.parquet", "afile is not a directory"),
    ):
        assert main([*base, str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"optax-lode sweep: cannot write --out {out}: ")
        assert why in err and err.count("\n") == 1
    # A failing sweep leaves no directory made for its --out behind.
    monkeypatch.undo()
    out = tmp_path / "new" / "deeper" / "runs.csv"
    assert main([*base, str(out), "--lrs", "1e39"]) == 2
    assert "float32" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
