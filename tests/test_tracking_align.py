"""Tick-grid alignment of tracker logs (pure pandas: no tracker involved)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode.runs import ZERO_LOSS_FLOOR, Trajectories, ZeroLossWarning
from optax_lode.tracking import RunAlignmentError, align_to_ticks

KEYS = {"loss": "train_loss", "metric": "val_acc", "lr": "lr"}


def _records(runs: dict[str, dict[str, tuple[list[int], list[float]]]]) -> pd.DataFrame:
    rows = []
    for run, series in runs.items():
        for key, (steps, values) in series.items():
            rows += [(run, key, s, v) for s, v in zip(steps, values, strict=True)]
    return pd.DataFrame(rows, columns=["run", "key", "step", "value"])


def _run(n_steps: int, *, metric_every: int, lr_every: int = 1, offset: int = 0):
    steps = np.arange(offset, offset + n_steps)
    loss = list(1.0 + 1.0 / (1.0 + steps))
    msteps = [s for s in steps if (s - offset + 1) % metric_every == 0]
    lsteps = [s for s in steps if (s - offset) % lr_every == 0]
    return {
        "train_loss": (list(steps), loss),
        "val_acc": (msteps, [s / 1000 for s in msteps]),
        "lr": (lsteps, [0.1 / (1 + s) for s in lsteps]),
    }


def test_loss_averaged_metric_carried_forward_lr_averaged():
    recs = _records({"a": _run(20, metric_every=10)})
    out = align_to_ticks(recs, **KEYS, steps_per_tick=4)
    assert list(out.columns) == ["run", "tick", "loss", "metric", "lr"]
    assert list(out["tick"]) == [0, 1, 2, 3, 4]
    steps = np.arange(20)
    np.testing.assert_allclose(
        out["loss"], (1.0 + 1.0 / (1.0 + steps)).reshape(5, 4).mean(1)
    )
    np.testing.assert_allclose(out["lr"], (0.1 / (1 + steps)).reshape(5, 4).mean(1))
    # Metric logged at steps 9 and 19: tick 2 (steps 8-11) sees 0.009 first; the
    # ticks before take that first value; tick 4 (16-19) sees 0.019.
    np.testing.assert_allclose(out["metric"], [0.009, 0.009, 0.009, 0.009, 0.019])


def test_irregular_steps_and_sparse_lr():
    # Loss at irregular steps, lr logged once, metric twice.
    recs = _records(
        {
            "r": {
                "train_loss": ([0, 1, 5, 6, 7, 12, 13], [7, 5, 3, 3, 3, 2, 2]),
                "val_acc": ([3, 11], [0.5, 0.7]),
                "lr": ([0], [0.01]),
            }
        }
    )
    out = align_to_ticks(recs, **KEYS, steps_per_tick=5)
    # Ticks: 0 = steps 0-4, 1 = 5-9, 2 = 10-14.
    np.testing.assert_allclose(out["loss"], [6.0, 3.0, 2.0])
    np.testing.assert_allclose(out["metric"], [0.5, 0.5, 0.7])
    np.testing.assert_allclose(out["lr"], [0.01] * 3)


def test_tick_without_loss_record_has_no_row_and_is_masked():
    recs = _records(
        {
            "r": {
                "train_loss": ([0, 1, 6, 7], [4.0, 4.0, 2.0, 2.0]),
                "val_acc": ([1, 7], [0.1, 0.2]),
                "lr": ([0, 2, 4, 6], [0.1, 0.1, 0.1, 0.1]),
            }
        }
    )
    out = align_to_ticks(recs, **KEYS, steps_per_tick=2)
    assert list(out["tick"]) == [0, 3]
    traj = Trajectories.from_dataframe(out)
    assert traj.mask.tolist() == [[True, False, False, True]]


def test_inferred_tick_is_the_loss_spacing_and_first_step_the_first_loss():
    recs = _records({"a": _run(30, metric_every=10, offset=1)})
    recs = recs[(recs["key"] != "train_loss") | (recs["step"] % 3 == 1)]
    out = align_to_ticks(recs, **KEYS)
    # Loss at steps 1, 4, 7, ...: one tick per loss record, tick 0 opens at step 1.
    assert len(out) == 10
    assert out.attrs["steps_per_tick"] == 3  # the tick the importers record
    np.testing.assert_allclose(out["loss"], 1.0 + 1.0 / (2.0 + 3 * np.arange(10)))


def test_records_before_tick_zero_seed_the_metric_and_lr():
    recs = _records(
        {
            "r": {
                "train_loss": ([10, 11, 12, 13], [3.0, 3.0, 2.0, 2.0]),
                "val_acc": ([0], [0.4]),
                "lr": ([0], [0.05]),
            }
        }
    )
    out = align_to_ticks(recs, **KEYS, steps_per_tick=2)
    np.testing.assert_allclose(out["metric"], [0.4, 0.4])
    np.testing.assert_allclose(out["lr"], [0.05, 0.05])


def test_early_stopped_runs_masked_by_default():
    recs = _records(
        {"long": _run(40, metric_every=5), "short": _run(16, metric_every=5)}
    )
    out = align_to_ticks(recs, **KEYS, steps_per_tick=4)
    traj = Trajectories.from_dataframe(out)
    assert traj.num_ticks == 10
    assert traj.lengths.tolist() == [10, 4]
    assert not traj.mask[1, 4:].any()
    assert np.isnan(traj.loss[1, 4:]).all()


def test_early_stopped_runs_excluded_with_a_warning_naming_them():
    recs = _records(
        {"long": _run(40, metric_every=5), "short": _run(16, metric_every=5)}
    )
    with pytest.warns(UserWarning, match=r"'short' \(ends at tick 3\)"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=4, early_stopped="exclude")
    assert set(out["run"]) == {"long"}


def test_num_ticks_truncates_and_pads():
    recs = _records({"a": _run(40, metric_every=5)})
    out = align_to_ticks(recs, **KEYS, steps_per_tick=4, num_ticks=6)
    assert out["tick"].max() == 5
    out = align_to_ticks(recs, **KEYS, steps_per_tick=4, num_ticks=20)
    traj = Trajectories.from_dataframe(out, num_ticks=20)
    assert traj.lengths.tolist() == [10]


def test_missing_key_error_names_the_run_and_what_it_logged():
    run = _run(10, metric_every=5)
    del run["val_acc"]
    run["valid/accuracy"] = ([4, 9], [0.1, 0.2])
    recs = _records({"ok": _run(10, metric_every=5), "bad": run})
    with pytest.raises(
        RunAlignmentError, match=r"run 'bad'.*'val_acc'.*valid/accuracy"
    ):
        align_to_ticks(recs, **KEYS, steps_per_tick=2)


def test_display_names_are_used_in_errors():
    run = _run(10, metric_every=5)
    del run["lr"]
    recs = _records({"abc123": run})
    with pytest.raises(RunAlignmentError, match=r"'ünïcode run' \(abc123\)"):
        align_to_ticks(recs, **KEYS, names={"abc123": "ünïcode run"})


def test_too_few_points():
    recs = _records({"ok": _run(10, metric_every=5), "tiny": _run(1, metric_every=1)})
    with pytest.raises(RunAlignmentError, match=r"run 'tiny': too few points"):
        align_to_ticks(recs, **KEYS, steps_per_tick=1)


def test_non_monotone_steps_named():
    run = _run(10, metric_every=5)
    steps, values = run["train_loss"]
    run["train_loss"] = ([*steps, 3, 4], [*values, 1.0, 1.0])  # resumed at step 3
    recs = _records({"resumed": run})
    with pytest.raises(
        RunAlignmentError, match=r"run 'resumed': non-monotone steps.*step 9 to step 3"
    ):
        align_to_ticks(recs, **KEYS, steps_per_tick=1)


def test_logging_order_comes_from_the_order_column():
    recs = _records({"a": _run(6, metric_every=2)})
    shuffled = recs.sample(frac=1.0, random_state=0).reset_index(drop=True)
    with pytest.raises(RunAlignmentError, match="non-monotone"):
        align_to_ticks(shuffled, **KEYS, steps_per_tick=1)
    ordered = shuffled.assign(order=shuffled["step"])
    pd.testing.assert_frame_equal(
        align_to_ticks(ordered, **KEYS, steps_per_tick=1),
        align_to_ticks(recs, **KEYS, steps_per_tick=1),
    )


def test_every_problem_is_listed_and_skip_drops_them_with_a_warning():
    no_lr = _run(10, metric_every=5)
    del no_lr["lr"]
    recs = _records(
        {
            "ok": _run(10, metric_every=5),
            "no_lr": no_lr,
            "tiny": _run(1, metric_every=1),
        }
    )
    with pytest.raises(RunAlignmentError) as err:
        align_to_ticks(recs, **KEYS, steps_per_tick=1)
    assert [p[0] for p in err.value.problems] == ["'no_lr'", "'tiny'"]
    with pytest.warns(UserWarning, match="These runs are skipped"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=1, on_invalid="skip")
    assert set(out["run"]) == {"ok"}


def test_non_finite_loss_marks_divergence():
    run = _run(12, metric_every=3)
    steps, values = run["train_loss"]
    values = list(values)
    values[7] = float("inf")
    run["train_loss"] = (steps, values)
    out = align_to_ticks(_records({"d": run}), **KEYS, steps_per_tick=2)
    assert np.isnan(out["loss"].iloc[3]) and np.isfinite(out["loss"].iloc[2])
    with pytest.warns(UserWarning, match="diverged"):
        traj = Trajectories.from_dataframe(out)
    assert traj.lengths.tolist() == [3]


def test_bad_arguments():
    recs = _records({"a": _run(6, metric_every=2)})
    with pytest.raises(ValueError, match="three different keys"):
        align_to_ticks(recs, loss="lr", metric="val_acc", lr="lr")
    with pytest.raises(ValueError, match="steps_per_tick"):
        align_to_ticks(recs, **KEYS, steps_per_tick=0)
    with pytest.raises(ValueError, match="columns"):
        align_to_ticks(recs.drop(columns="step"), **KEYS)
    bad = recs.astype({"step": float})
    bad.loc[0, "step"] = 0.5
    with pytest.raises(ValueError, match="non-integer step"):
        align_to_ticks(bad, **KEYS)


@given(
    k=st.integers(1, 7),
    n=st.integers(2, 60),
    metric_every=st.integers(1, 13),
    seed=st.integers(0, 2**16),
)
def test_property_block_means_and_last_metric(k, n, metric_every, seed):
    """Against a direct per-tick computation, for any tick size and spacing."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    loss = rng.uniform(0.5, 2.0, n)
    lr = rng.uniform(1e-3, 1e-1, n)
    msteps = steps[(steps + 1) % metric_every == 0]
    if len(msteps) == 0:
        msteps = steps[-1:]
    metric = rng.uniform(0, 1, len(msteps))
    recs = _records(
        {
            "r": {
                "train_loss": (list(steps), list(loss)),
                "val_acc": (list(msteps), list(metric)),
                "lr": (list(steps), list(lr)),
            }
        }
    )
    ticks = (n + k - 1) // k
    if ticks < 2:
        return
    out = align_to_ticks(recs, **KEYS, steps_per_tick=k)
    assert list(out["tick"]) == list(range(ticks))
    for t in range(ticks):
        block = slice(t * k, min((t + 1) * k, n))
        np.testing.assert_allclose(out["loss"].iloc[t], loss[block].mean())
        np.testing.assert_allclose(out["lr"].iloc[t], lr[block].mean())
        seen = msteps <= min((t + 1) * k, n) - 1
        expected = metric[seen][-1] if seen.any() else metric[0]
        np.testing.assert_allclose(out["metric"].iloc[t], expected)


def test_no_warning_for_clean_input():
    recs = _records({"a": _run(8, metric_every=2), "b": _run(8, metric_every=4)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = align_to_ticks(recs, **KEYS, steps_per_tick=2)
    assert list(pd.unique(out["run"])) == ["a", "b"]


def test_load_runs_reads_files_and_rejects_unknown_sources(tmp_path):
    from optax_lode.tracking import load_runs

    traj = Trajectories.from_dataframe(
        align_to_ticks(
            _records({"a": _run(8, metric_every=2), "b": _run(6, metric_every=2)}),
            **KEYS,
            steps_per_tick=2,
        )
    )
    traj.to_parquet(tmp_path / "runs.parquet")
    traj.to_csv(tmp_path / "runs.csv")
    for name in ("runs.parquet", "runs.csv"):
        back = load_runs(tmp_path / name, run=None)  # None options are dropped
        np.testing.assert_array_equal(back.mask, traj.mask)
        np.testing.assert_allclose(back.loss[back.mask], traj.loss[traj.mask])
    with pytest.raises(ValueError, match="cannot tell what"):
        load_runs(tmp_path / "runs.json")
    with pytest.raises(ValueError, match="names no experiment"):
        load_runs("mlflow://")


def test_a_rate_logged_when_it_changes_is_the_rate_each_step_used():
    """A step decay logged only at its changes: a tick's rate is the mean over
    its steps of the rate in force (was the mean of the tick's records, held:
    a change at step 10 read as 0.055 for the whole run)."""
    steps = list(range(150))
    for change, expect in (
        (75, [0.1, 0.055, 0.01]),
        (10, [(10 * 0.1 + 40 * 0.01) / 50, 0.01, 0.01]),
    ):
        run = {
            "train_loss": (steps, [1.0] * 150),
            "val_acc": ([49, 99, 149], [0.1, 0.2, 0.3]),
            "lr": ([0, change], [0.1, 0.01]),
        }
        out = align_to_ticks(_records({"a": run}), **KEYS, steps_per_tick=50)
        np.testing.assert_allclose(out["lr"], expect, rtol=1e-12)


def test_a_warm_up_from_zero_masks_its_ticks_instead_of_failing():
    steps = list(range(40))
    run = {
        "train_loss": (steps, [1.0] * 40),
        "val_acc": (steps, [0.5] * 40),
        "lr": (steps, [0.0, 0.0] + [0.01] * 38),  # logged from 0
    }
    recs = _records({"a": run, "b": _run(40, metric_every=1)})
    with pytest.warns(UserWarning, match=r"'a' at tick\(s\) \[0, 1\]"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=1)
    a = out[out["run"] == "a"]
    assert list(a["tick"]) == list(range(2, 40)) and (a["lr"] > 0).all()
    traj = Trajectories.from_dataframe(out)
    assert not traj.mask[0, :2].any() and traj.mask[0, 2:].all()


def test_a_run_without_a_usable_metric_is_skippable_and_named_right():
    """Evaluated only after its last training step: no metric at or before
    its last tick. on_invalid='skip' drops it instead of failing the import."""
    late = _run(20, metric_every=100)
    late["val_acc"] = ([20], [0.9])  # after the last training step (19)
    recs = _records({"late": late, "ok": _run(20, metric_every=5)})
    with pytest.raises(RunAlignmentError, match="no finite 'val_acc' record at or"):
        align_to_ticks(recs, **KEYS, steps_per_tick=5)
    with pytest.warns(UserWarning, match="skipped"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=5, on_invalid="skip")
    assert set(out["run"]) == {"ok"}


def test_runs_counting_steps_from_different_origins_are_warned_about():
    recs = _records(
        {
            "zero": _run(20, metric_every=5),
            "one": _run(20, metric_every=5, offset=1),
        }
    )
    with pytest.warns(UserWarning, match=r"1 run\(s\) at step 0, 1 run\(s\) at step 1"):
        align_to_ticks(recs, **KEYS, steps_per_tick=5)


def test_runs_trajectories_would_refuse_are_skippable():
    """A run that diverged at its first tick (no valid tick) or logged a
    negative loss: Trajectories refuses both, so on_invalid='skip' must drop
    them (it used to fail the whole import); 'raise' names them."""
    nan_first = _run(8, metric_every=2)
    nan_first["train_loss"][1][0] = float("nan")
    negative = _run(8, metric_every=2)
    negative["train_loss"][1][5] = -5.0  # tick 2 (steps 4, 5): mean below 0
    later_nan = _run(8, metric_every=2)  # divergence after tick 0: masked, kept
    later_nan["train_loss"][1][4] = float("nan")
    recs = _records(
        {
            "good": _run(8, metric_every=2),
            "nan0": nan_first,
            "neg": negative,
            "late": later_nan,
        }
    )
    with pytest.raises(RunAlignmentError) as err:
        align_to_ticks(recs, **KEYS, steps_per_tick=2)
    assert "'nan0': diverged at its first tick" in str(err.value)
    assert "'neg': 'train_loss' below 0 at step(s) [5] (tick(s) [2])" in str(err.value)
    assert "'late'" not in str(err.value)
    with pytest.warns(UserWarning, match="These runs are skipped"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=2, on_invalid="skip")
    runs = Trajectories.from_dataframe(out, num_ticks=4)
    assert runs.run_ids == ("good", "late")
    assert runs.lengths.tolist() == [4, 2]


def test_a_loss_that_underflowed_to_zero_is_floored_as_the_sweep_engine_does():
    """A tick whose loss records are all exactly 0 (float32 underflow late in
    a run that fit its data) is floored at ZERO_LOSS_FLOOR with a
    ZeroLossWarning, as run_sweep records it: refusing it dropped the runs
    that trained best. A tick with one 0 among positive records is its mean."""
    fit = _run(8, metric_every=2)
    fit["train_loss"][1][4:] = [0.0] * 4  # ticks 2 and 3 (steps 4-7): all 0
    half = _run(8, metric_every=2)
    half["train_loss"][1][2] = 0.0  # tick 1 (steps 2, 3): one 0
    recs = _records({"good": _run(8, metric_every=2), "fit": fit, "half": half})
    with pytest.warns(ZeroLossWarning, match=r"2 tick\(s\) of 1 run\(s\)"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=2)
    runs = Trajectories.from_dataframe(out, num_ticks=4)
    assert runs.run_ids == ("good", "fit", "half")
    assert runs.mask.all()
    np.testing.assert_array_equal(runs.loss[1, 2:], ZERO_LOSS_FLOOR)
    assert runs.loss[2, 1] == pytest.approx(half["train_loss"][1][3] / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to floor: no warning
        align_to_ticks(_records({"good": _run(8, metric_every=2)}), **KEYS)


def test_a_decay_to_zero_at_the_end_of_every_run_keeps_the_grid():
    """A warm-up cosine decay to 0 logged as is: the last ticks of every run
    have lr 0, so no run has a row there. The grid stays the runs' length,
    masked at the end (it shrank to 17 ticks, and lode_schedule refused a
    model of T=17 for 20 steps)."""
    from optax_lode.tracking._align import to_trajectories

    runs = {}
    for i in range(4):
        run = _run(20, metric_every=5)
        rate = 0.01 * (i + 1) * np.clip(1 - np.arange(20) / 17, 0, None)
        run["lr"] = (list(range(20)), list(rate))  # 0 from step 17 on
        runs[f"r{i}"] = run
    with pytest.warns(UserWarning, match=r"at tick\(s\) \[17, 18, 19\]"):
        out = align_to_ticks(_records(runs), **KEYS)
    assert out["tick"].max() == 16
    for traj in (
        to_trajectories(out, pd.DataFrame(index=list(runs)), None),  # the importers
        Trajectories.from_dataframe(out, num_ticks=out.attrs["num_ticks"]),
    ):
        assert traj.num_ticks == 20
        assert traj.mask[:, :17].all() and not traj.mask[:, 17:].any()
    assert out.attrs["num_ticks"] == 20


def test_a_run_whose_rate_is_never_above_zero_is_named_not_dropped_silently():
    zero = _run(10, metric_every=5)
    zero["lr"] = ([0], [0.0])
    recs = _records({"ok": _run(10, metric_every=5), "zero": zero})
    with pytest.raises(RunAlignmentError, match=r"'zero': 'lr' never above 0"):
        align_to_ticks(recs, **KEYS)


def test_an_invalid_long_run_does_not_set_the_grid_or_exclude_complete_runs():
    """The only long run is invalid (its metric comes after training ends):
    the grid is the valid runs', so early_stopped='exclude' keeps them (they
    were excluded as stopped before tick 19, then 'long' was skipped and
    nothing was left)."""
    long = _run(20, metric_every=100)
    long["val_acc"] = ([25], [0.5])
    recs = _records(
        {"long": long, "a": _run(10, metric_every=5), "b": _run(10, metric_every=5)}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = align_to_ticks(recs, **KEYS, early_stopped="exclude", on_invalid="skip")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "'long': no finite 'val_acc'" in messages[0]
    assert out.groupby("run").size().to_dict() == {"a": 10, "b": 10}
    assert out.attrs["num_ticks"] == 10


def test_runs_logging_the_loss_at_different_spacings_are_warned_about():
    """Each run votes with its own loss spacing: one run logging every step
    no longer sets the tick for three logging every 10 (which were masked 9
    ticks in 10, silently); the runs that differ are named."""
    every = _run(40, metric_every=10)
    tens = {}
    for name in ("b", "c", "d"):
        run = _run(40, metric_every=10)
        steps, values = run["train_loss"]
        run["train_loss"] = (steps[::10], values[::10])
        tens[name] = run
    with pytest.warns(UserWarning, match=r"10 step\(s\), the spacing of 3 of 4.*'a' "):
        out = align_to_ticks(_records({"a": every, **tens}), **KEYS)
    assert out.groupby("run").size().to_dict() == {"a": 4, "b": 4, "c": 4, "d": 4}
    # One run each: a tie goes to the smaller spacing, as before, with a warning
    # naming the other run and the tick that masks no run between records.
    with pytest.warns(UserWarning, match=r"'b' \(every 10 steps\).*: 10, the largest"):
        out = align_to_ticks(_records({"a": every, "b": tens["b"]}), **KEYS)
    assert out.groupby("run").size().to_dict() == {"a": 40, "b": 4}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # uniform spacing: no warning
        out = align_to_ticks(_records(tens), **KEYS)
    assert out["tick"].max() == 3


def test_too_few_points_advice_fits_the_case():
    """Records that all share one step (MLflow's log_metric without step=) are
    told to log a step, not to pass a smaller tick (already 1)."""
    nostep = _run(20, metric_every=5)
    nostep = {k: ([0] * len(s), v) for k, (s, v) in nostep.items()}
    recs = _records({"nostep": nostep})
    with pytest.raises(RunAlignmentError) as err:
        align_to_ticks(recs, **KEYS)
    assert "its 20 'train_loss' records all have step 0" in str(err.value)
    assert "step=step" in str(err.value) and "smaller tick" not in str(err.value)
    # A smaller tick would help: said so.
    with pytest.raises(RunAlignmentError, match="pass a smaller tick/steps_per_tick"):
        align_to_ticks(
            _records({"a": _run(6, metric_every=2)}),
            **KEYS,
            min_ticks=3,
            steps_per_tick=3,
        )
    # One record at tick 1 step: no tick helps.
    with pytest.raises(RunAlignmentError) as err:
        align_to_ticks(_records({"tiny": _run(1, metric_every=1)}), **KEYS)
    assert "at 1 distinct step(s)" in str(err.value)
    assert "smaller tick" not in str(err.value)


def test_invalid_runs_do_not_set_the_tick_or_the_first_step():
    """Runs dropped as invalid (here: evaluated only after training) used to
    vote on the tick and set tick 0's step: three of them logging every step
    made the tick 1 for the two valid runs logging every 10 (masked 9 ticks in
    10, a wrong steps_per_tick recorded); one counting from 0 shifted the
    grid of valid runs counting from 1, masking their tick 0."""

    def every_10(run):
        steps, values = run["train_loss"]
        return {**run, "train_loss": (steps[::10], values[::10])}

    late = {}
    for name in ("x", "y", "z"):
        late[name] = _run(40, metric_every=100)
        late[name]["val_acc"] = ([500], [0.9])
    valid = {"a": every_10(_run(40, metric_every=10))}
    valid["b"] = every_10(_run(40, metric_every=10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = align_to_ticks(_records({**late, **valid}), **KEYS, on_invalid="skip")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "These runs are skipped" in messages[0]
    assert out.groupby("run").size().to_dict() == {"a": 4, "b": 4}
    assert out.attrs == {"num_ticks": 4, "steps_per_tick": 10}

    early = _run(20, metric_every=100)
    early["val_acc"] = ([500], [0.9])
    recs = _records({"a": _run(20, metric_every=5, offset=1), "early": early})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = align_to_ticks(recs, **KEYS, on_invalid="skip")
    assert not any("different steps" in str(w.message) for w in caught)
    assert list(out["tick"]) == list(range(20))  # tick 0 opens at step 1


def test_a_rate_logged_past_a_grid_that_cut_the_run_short_is_still_its_rate():
    """num_ticks cuts the run, which went on: the rate it logged at step 5
    (tick 2, past a 2-tick grid) is the one it ran with, back-filled as for a
    run whose rate is first logged late (not "no rate")."""
    rows = [("r", "loss", s, 1.0) for s in (3, 4, 5)]
    rows += [("r", "acc", 3, 0.5), ("r", "lr", 5, 0.1)]
    recs = pd.DataFrame(rows, columns=["run", "key", "step", "value"])
    out = align_to_ticks(recs, loss="loss", metric="acc", lr="lr", num_ticks=2)
    assert out["lr"].tolist() == [0.1, 0.1] and out["tick"].tolist() == [0, 1]


def test_a_run_failing_on_a_grid_that_invalid_runs_set_is_checked_again():
    """Two runs logging a negative loss every 10 steps (a log-loss: invalid on
    any grid) no longer set a 10-step tick on which a valid run logging
    every step had too few points and was dropped with them."""
    rows = []
    for r in ("n1", "n2"):
        rows += [(r, "loss", s, -1.0) for s in range(0, 100, 10)]
        rows += [(r, "acc", 0, 0.5), (r, "lr", 0, 0.1)]
    rows += [("good", "loss", s, 1.0) for s in range(8)]
    rows += [("good", "acc", 0, 0.5), ("good", "lr", 0, 0.1)]
    recs = pd.DataFrame(rows, columns=["run", "key", "step", "value"])
    keys = {"loss": "loss", "metric": "acc", "lr": "lr"}
    with pytest.warns(UserWarning, match="'n1'.*below 0") as caught:
        out = align_to_ticks(recs, **keys, on_invalid="skip")
    assert not any("'good'" in str(w.message) for w in caught)
    assert out.groupby("run").size().to_dict() == {"good": 8}
    assert out.attrs["steps_per_tick"] == 1


def test_a_rate_logged_after_the_run_ended_is_no_rate():
    """The rate, like the metric, counts only up to the run's last tick: a
    rate logged once after training was spread back over the whole run."""
    late = _run(20, metric_every=5)
    late["lr"] = ([50], [0.1])
    recs = _records({"late": late, "ok": _run(20, metric_every=5)})
    with pytest.raises(RunAlignmentError, match=r"'late': no finite 'lr' record at"):
        align_to_ticks(recs, **KEYS, steps_per_tick=5)
    # A rate logged after the end does not change the rate the run had.
    after = _run(20, metric_every=5)
    after["lr"] = ([0, 50], [0.1, 0.5])
    out = align_to_ticks(_records({"a": after}), **KEYS, steps_per_tick=5)
    np.testing.assert_allclose(out["lr"], [0.1] * 4)


def test_a_negative_loss_record_is_refused_even_when_its_tick_mean_is_not():
    run = _run(8, metric_every=2)
    run["train_loss"][1][1] = -0.5  # tick 0 (steps 0, 1): mean above 0
    recs = _records({"neg": run, "ok": _run(8, metric_every=2)})
    with pytest.raises(RunAlignmentError, match=r"'neg': 'train_loss' below 0 at step"):
        align_to_ticks(recs, **KEYS, steps_per_tick=2)
    with pytest.warns(UserWarning, match="skipped"):
        out = align_to_ticks(recs, **KEYS, steps_per_tick=2, on_invalid="skip")
    assert set(out["run"]) == {"ok"}


def test_excluding_every_run_as_stopped_early_is_an_error_naming_the_grid():
    """A num_ticks past every run's end with early_stopped='exclude' left an
    empty table after a warning (the fit then said 'the table has no rows')."""
    recs = _records({"a": _run(10, metric_every=5), "b": _run(8, metric_every=5)})
    with pytest.raises(ValueError) as err:
        align_to_ticks(
            recs, **KEYS, steps_per_tick=1, num_ticks=20, early_stopped="exclude"
        )
    message = str(err.value)
    assert "leaves no run" in message and "the last of num_ticks=20" in message
    assert "'a' (ends at tick 9), 'b' (ends at tick 7)" in message
    assert "Pass num_ticks=10 or fewer" in message


def test_tracker_ticks_from_step_1_do_not_warn_as_a_users_tick_column():
    """Records from step 1 aligned with first_step=0 leave tick 0 empty on
    purpose: the readers' warning about a tick column counted from 1 is for a
    table the user numbered, not for the aligner's (filtered by its category,
    not by its wording)."""
    from optax_lode.runs._trajectories import TickColumnWarning
    from optax_lode.tracking._align import to_trajectories

    runs = {name: _run(12, metric_every=1, offset=1) for name in ("a", "b")}
    out = align_to_ticks(_records(runs), first_step=0, steps_per_tick=1, **KEYS)
    assert out["tick"].min() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", TickColumnWarning)
        traj = to_trajectories(out, pd.DataFrame(index=list(runs)), None)
    assert not traj.mask[:, 0].any()
    with pytest.warns(TickColumnWarning, match="no run has tick 0"):
        Trajectories.from_dataframe(out)  # the same table, as a user's
