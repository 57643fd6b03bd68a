"""``optax-lode demo --fast`` end to end, in a subprocess (it turns on JAX's
persistent compilation cache, a process-wide setting)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from _demo_helpers import check_outputs

from optax_lode.demo import DemoConfig, fast_config


def _demo(tmp_path, *args):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "optax_lode", "demo", "--fast", "--quiet"]
    cmd += ["--out", str(out), *args]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, time.perf_counter() - t0


@pytest.mark.slow
def test_fast_demo_on_nqm_and_rerun_adds_only_the_new_seed(tmp_path):
    out, _ = _demo(tmp_path, "--task", "nqm")
    summary = check_outputs(out, seeds=2)
    assert not any(summary["cached"].values())
    cache = out / "cache"
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.*")}
    # The re-run reads everything from the cache and only adds the third seed
    # (and retrains each baseline's batch, which the seeds are part of).
    out, _ = _demo(tmp_path, "--task", "nqm", "--seeds", "3")
    summary = check_outputs(out, seeds=3)
    cached = summary["cached"]
    assert cached["sweep"] and cached["fit"] and cached["tuning"]
    assert cached["reconstruction"]
    assert not cached["lode"] and not cached["baselines"]
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.*")}
    lode = sorted(n for n in after if n.startswith("run-LODE-"))
    assert [n.split("-")[2] for n in lode] == ["s1000", "s1001", "s1002"]
    # Every file of the first run was read, not written again.
    assert {n: after[n] for n in before} == before
    assert summary["timings"]["sweep"] < 30.0 and summary["timings"]["fit"] < 30.0


@pytest.mark.slow
def test_fast_demo_default_task(tmp_path):
    out, _ = _demo(tmp_path)
    check_outputs(out, seeds=2)
    assert "mnist1d-mlp" in (out / "report.md").read_text()


def test_demo_config_validation():
    with pytest.raises(ValueError, match="at least 2 evaluation seeds"):
        fast_config(seeds=1)
    with pytest.raises(ValueError, match="fresh seeds"):
        DemoConfig(first_seed=2)
    # Names a late stage would trip on are refused up front (a typo failed with
    # a bare KeyError after the sweep, the fit and the LODE runs).
    with pytest.raises(ValueError, match=r"got unknown \['cosin'\]"):
        DemoConfig(baselines=("constant", "cosin"))
    with pytest.raises(ValueError, match="baselines must name at least one"):
        DemoConfig(baselines=())
    with pytest.raises(ValueError, match=r"lode_kwargs \['nn'\] are not"):
        DemoConfig(lode_kwargs=(("nn", 5),))
    with pytest.raises(ValueError, match=r"lode_kwargs \['seed'\]"):
        DemoConfig(lode_kwargs={"seed": 3})  # the pipeline sets it per run
    with pytest.raises(ValueError, match=r"lode_kwargs \['axis_name'\]"):
        DemoConfig(lode_kwargs={"axis_name": "runs"})  # runs are trained alone
    # Lists (a --task-arg hidden=[64]) are kept as tuples: the config hashes,
    # and its keys are those of the tuple.
    listed = DemoConfig(task_kwargs={"hidden": [64, [1]]})
    assert listed.task_kwargs == (("hidden", (64, (1,))),) and hash(listed)
    assert (
        listed.sweep_key() == DemoConfig(task_kwargs={"hidden": (64, (1,))}).sweep_key()
    )
    # A mapping is read as its pairs: keyed by values too, not by keys alone.
    small, big = (
        DemoConfig(task_kwargs={"hidden": (8,)}),
        DemoConfig(task_kwargs={"hidden": (256, 256)}),
    )
    assert small.task_kwargs == (("hidden", (8,)),)
    assert small.sweep_key() != big.sweep_key()
    assert small == DemoConfig(task_kwargs=(("hidden", (8,)),))
    with pytest.raises(ValueError, match="fit_kwargs must be"):
        DemoConfig(fit_kwargs=("path_penalty",))
    # Cache keys: the model depends on the sweep; runs do not depend on seeds count.
    a, b = fast_config(), fast_config(seeds=5)
    assert a.model_key() == b.model_key()
    assert a.run_key("LODE", 1000, a.lode_setting("d1")) == b.run_key(
        "LODE", 1000, b.lode_setting("d1")
    )
    # A model fitted with the same settings but other weights is another model.
    assert a.run_key("LODE", 1000, a.lode_setting("d1")) != a.run_key(
        "LODE", 1000, a.lode_setting("d2")
    )
    # ... unless batched: a baseline's run is keyed by the seeds vmapped with it.
    lr = {"learning_rate": 0.01}
    assert a.run_key("cosine", 1000, lr, batch=a.eval_seeds) != b.run_key(
        "cosine", 1000, lr, batch=b.eval_seeds
    )
    assert a.run_key("cosine", 1000, lr, batch=a.eval_seeds) != a.run_key(
        "cosine", 1000, lr
    )
    assert a.sweep_key() != fast_config(lrs=(1e-3, 1e-2)).sweep_key()
    assert a.model_key() != fast_config(fit_steps=10).model_key()


def test_demo_cli_user_errors_exit_2_with_a_message(tmp_path, capsys, monkeypatch):
    """As sweep and fit: no traceback, the message on stderr, exit code 2."""
    import optax_lode.demo as demo
    from optax_lode.cli import main
    from optax_lode.tasks import DataNotPreparedError

    assert main(["demo", "--fast", "--task", "nope", "--out", str(tmp_path)]) == 2
    assert "optax-lode demo: unknown task 'nope'" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["demo", "--fast", "--out", str(afile)]) == 2
    assert f"--out {afile} is a file; the demo writes a directory" in (
        capsys.readouterr().err
    )
    assert main(["demo", "--fast", "--out", str(afile / "sub")]) == 2
    assert f"cannot use --out {afile / 'sub'} as a directory" in (
        capsys.readouterr().err
    )

    def unprepared(*args, **kwargs):
        raise DataNotPreparedError("cannot read TFDS x: --task-arg data_dir=DIR")

    monkeypatch.setattr(demo, "run_demo", unprepared)
    assert main(["demo", "--fast", "--out", str(tmp_path / "d")]) == 2
    assert "optax-lode demo: cannot read TFDS x" in capsys.readouterr().err
    # "" wrote into the working directory.
    assert main(["demo", "--fast", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err

    # Ctrl-C: a line saying how to resume, not JAX's traceback.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", interrupted)
    assert main(["demo", "--fast", "--out", str(tmp_path / "d")]) == 130
    assert "interrupted; the same command resumes" in capsys.readouterr().err


def test_demo_cli_refuses_an_existing_directory_it_cannot_write(
    tmp_path, capsys, monkeypatch
):
    """An existing read-only --out (a read-only mount; chmod 555 for a user)
    failed minutes later with a traceback. Root ignores chmod, so the file
    system's refusal is simulated."""
    import errno
    import tempfile

    import optax_lode.demo as demo
    from optax_lode.cli import main

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(demo, "run_demo", _no_demo)
    assert main(["demo", "--fast", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot use --out {tmp_path} as a directory: cannot write in" in err
    assert "Read-only file system" in err


def _no_demo(*args, **kwargs):
    raise AssertionError("the demo ran")


def test_demo_cli_passes_task_args_and_refuses_bad_ones(tmp_path, capsys, monkeypatch):
    import optax_lode.demo as demo
    from optax_lode.cli import main

    seen = {}

    def record(config, out, **kwargs):
        seen["config"] = config
        raise SystemExit(0)  # stop before the sweep

    monkeypatch.setattr(demo, "run_demo", record)
    args = ["demo", "--fast", "--task", "nqm", "--out", str(tmp_path / "d")]
    with pytest.raises(SystemExit):
        main([*args, "--task-arg", "dim=20", "--task-arg", "batch_size=8"])
    assert seen["config"].task_kwargs == (("batch_size", 8), ("dim", 20))
    # A name given twice: the last value, as the task is built with (dict()).
    with pytest.raises(SystemExit):
        main([*args, "--task-arg", "dim=30", "--task-arg", "dim=20"])
    assert seen["config"].task_kwargs == (("dim", 20),)
    seen.clear()
    assert main([*args, "--task-arg", "dim=-3"]) == 2  # checked before the demo
    err = capsys.readouterr().err
    assert err.startswith("optax-lode demo: --task nqm --task-arg: ") and not seen
    assert main([*args, "--task-arg", "no_such=1"]) == 2
    assert "no_such" in capsys.readouterr().err and not seen


def test_a_sweep_of_one_run_is_refused_before_it_runs():
    # It failed after the sweep, when the fit's runs were split from the held-out.
    with pytest.raises(ValueError, match="the sweep has 1 run"):
        fast_config(shapes=("cosine",), lrs=(1e-2,), sweep_seeds=1)
    assert fast_config(shapes=("cosine",), lrs=(1e-2,)).sweep_seeds == 2
