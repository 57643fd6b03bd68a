"""Trajectories: construction, masking, errors, round trips, selection."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode import Normalisation, Trajectories
from optax_lode.runs import DivergedRunWarning, simulate_curve, synthetic_sweep


def _curves(runs=3, ticks=12):
    t = np.arange(ticks)
    rates = np.linspace(0.1, 0.3, runs)[:, None]
    loss = np.exp(-rates * t) + 0.05
    metric = 1.0 - loss
    lr = np.tile(np.linspace(1e-2, 1e-3, ticks), (runs, 1))
    return loss, metric, lr


def _long(runs=2, ticks=5):
    loss, metric, lr = _curves(runs, ticks)
    rows = [
        {
            "run": f"r{i}",
            "tick": t,
            "loss": loss[i, t],
            "metric": metric[i, t],
            "lr": lr[i, t],
            "schedule": "cosine" if i == 0 else "linear",
            "seed": i,
        }
        for i in range(runs)
        for t in range(ticks)
    ]
    return pd.DataFrame(rows)


def test_from_arrays_basics():
    loss, metric, lr = _curves()
    traj = Trajectories.from_arrays(loss, metric, lr, info={"schedule": list("abc")})
    assert traj.num_runs == 3 and traj.num_ticks == 12 and len(traj) == 3
    assert traj.loss.dtype == np.float64 and traj.mask.all()
    assert traj.run_ids == ("0", "1", "2")
    assert list(traj.info["schedule"]) == list("abc")
    assert traj.info["seed"].isna().all()  # unknown seeds, column still present
    with pytest.raises(ValueError):
        traj.loss[0, 0] = 1.0  # frozen arrays


def test_ragged_runs_padded_and_masked_from_dataframe():
    df = _long(3, 6)
    df = df[~((df.run == "r1") & (df.tick >= 4))]  # ended early
    df = df[~((df.run == "r2") & (df.tick == 2))]  # missed a tick in the middle
    traj = Trajectories.from_dataframe(df)
    assert traj.num_ticks == 6
    np.testing.assert_array_equal(traj.mask[1], [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(traj.mask[2], [1, 1, 0, 1, 1, 1])
    assert np.isnan(traj.loss[1, 4:]).all() and np.isnan(traj.lr[2, 2])
    np.testing.assert_array_equal(traj.lengths, [6, 4, 6])
    assert list(traj.info["schedule"]) == ["cosine", "linear", "linear"]


def test_diverged_run_masked_with_warning_naming_it():
    loss, metric, lr = _curves()
    loss[1, 7:] = np.nan
    loss[1, 9] = np.inf
    with pytest.warns(DivergedRunWarning, match=r"run '1' diverged.*tick 7"):
        traj = Trajectories.from_arrays(loss, metric, lr)
    assert traj.mask[1, :7].all() and not traj.mask[1, 7:].any()
    assert traj.mask[[0, 2]].all()
    # A finite value after the divergence does not unmask it.
    metric[2, 5] = np.inf
    with pytest.warns(DivergedRunWarning, match=r"run '2'.*metric.*tick 5"):
        traj = Trajectories.from_arrays(_curves()[0], metric, lr)
    assert not traj.mask[2, 5:].any()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.drop(columns="lr"), r"missing column\(s\) 'lr'; the table"),
        (
            lambda d: pd.concat([d, d.iloc[[3]]]),
            r"run 'r0'.*'tick'.*tick 3 more than once",
        ),
        (
            lambda d: d.assign(tick=d.tick.where(d.index != 6, -1)),
            r"run 'r1'.*negative",
        ),
        (
            lambda d: d.assign(tick=d.tick.astype(float).where(d.index != 7, 2.5)),
            r"run 'r1'.*'tick'.*non-integer",
        ),
        (
            lambda d: d.assign(loss=d.loss.where(d.index != 8, 0.0)),
            r"run 'r1'.*'loss'.*non-positive",
        ),
        (
            lambda d: d.assign(lr=d.lr.where(d.index != 2, -1e-3)),
            r"run 'r0'.*'lr'.*non-positive",
        ),
        (
            lambda d: d.assign(metric=d.metric.where(d.run != "r1", np.nan)),
            r"run 'r1'.*'metric'.*all NaN",
        ),
        (
            lambda d: d.assign(metric=d.metric.astype(object).where(d.index != 1, "x")),
            r"run 'r0'.*'metric'.*non-numeric",
        ),
    ],
    ids=[
        "missing-column",
        "duplicate-tick",
        "negative-tick",
        "non-integer-tick",
        "zero-loss",
        "negative-lr",
        "all-nan-run",
        "non-numeric",
    ],
)
def test_bad_dataframes_raise_clear_errors(mutate, match):
    df = mutate(_long(2, 5).reset_index(drop=True))
    with pytest.raises(ValueError, match=match):
        Trajectories.from_dataframe(df)


def test_custom_column_names_and_missing_one():
    df = _long().rename(columns={"run": "trial", "metric": "acc"})
    traj = Trajectories.from_dataframe(df, run="trial", metric="acc")
    assert traj.run_ids == ("r0", "r1")
    with pytest.raises(ValueError, match=r"'acc' \(metric\)"):
        Trajectories.from_dataframe(df.drop(columns="acc"), run="trial", metric="acc")


def test_bad_arrays_raise_clear_errors():
    loss, metric, lr = _curves()
    with pytest.raises(ValueError, match="lr has shape"):
        Trajectories.from_arrays(loss, metric, lr[:, :5])
    with pytest.raises(ValueError, match="duplicate run ids"):
        Trajectories.from_arrays(loss, metric, lr, run_ids=["a", "a", "b"])
    bad = lr.copy()
    bad[2, 3] = 0.0
    with pytest.raises(ValueError, match=r"run '2'.*'lr'.*non-positive.*tick 3"):
        Trajectories.from_arrays(loss, metric, bad)
    nan_run = loss.copy()
    nan_run[0] = np.nan
    with pytest.raises(ValueError, match=r"run '0'.*'loss'.*all NaN"):
        Trajectories.from_arrays(nan_run, metric, lr)
    unseen = np.ones(loss.shape, bool)
    unseen[1] = False
    with pytest.raises(ValueError, match=r"run '1' has no valid tick"):
        Trajectories.from_arrays(loss, metric, lr, mask=unseen)
    with pytest.raises(ValueError, match=r"picks run '1' more than once"):
        Trajectories.from_arrays(loss, metric, lr).select([1, 0, 1])
    with pytest.raises(ValueError, match="info column 'seed' has 2 values"):
        Trajectories.from_arrays(loss, metric, lr, info={"seed": [1, 2]})
    # float64 would keep only the real part; a CSV reads an empty id as missing.
    with pytest.raises(ValueError, match="loss must be real"):
        Trajectories.from_arrays(loss + 1j, metric, lr)
    with pytest.raises(ValueError, match="run 1 has an empty run id"):
        Trajectories.from_arrays(loss, metric, lr, run_ids=["a", "", "b"])


def test_ids_alike_as_text_and_a_bad_tick_are_named():
    df = _long(2, 5)
    df["run"] = df["run"].map({"r0": 1, "r1": "1"})  # were merged into one run
    with pytest.raises(ValueError, match=r"ids \[1, '1'\] that read as the same run"):
        Trajectories.from_dataframe(df)
    df = _long(2, 5).reset_index(drop=True)
    df["tick"] = df["tick"].astype(object)
    df.loc[3, "tick"] = "x"  # was reported as nan
    with pytest.raises(ValueError, match="non-integer value 'x'"):
        Trajectories.from_dataframe(df)
    df = _long(2, 5)
    df["loss"] = df["loss"] + 1j
    with pytest.raises(ValueError, match=r"column 'loss' \(loss\) must be real"):
        Trajectories.from_dataframe(df)


def test_to_parquet_names_an_info_column_of_mixed_types(tmp_path):
    loss, metric, lr = _curves()
    runs = Trajectories.from_arrays(loss, metric, lr, info={"batch": [64, "auto", 32]})
    runs.to_csv(tmp_path / "ok.csv")
    with pytest.raises(ValueError, match=r"info column\(s\) \['batch'\] have none"):
        runs.to_parquet(tmp_path / "r.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.csv"]
    runs.info["batch"] = runs.info["batch"].astype(str)  # as the message says
    runs.to_parquet(tmp_path / "r.parquet")


def test_varying_extra_column_dropped_with_warning():
    df = _long().assign(wall=np.arange(10.0))
    with pytest.warns(UserWarning, match="wall"):
        traj = Trajectories.from_dataframe(df)
    assert "wall" not in traj.info


def test_list_and_dict_columns_are_compared_by_value(tmp_path):
    """A hyperparameter logged as a list or a dict (a Parquet list or struct
    column) raised pandas' "unhashable type" from the info check."""
    df = _long(3, 4)
    df["layers"] = [[64, 64] if r != "r1" else [32] for r in df.run]
    df["cfg"] = [{"a": 1, "b": [1, 2]} for _ in df.run]
    df["varies"] = [[t] for t in df.tick]
    with pytest.warns(UserWarning, match=r"\['varies'\] vary within a run"):
        runs = Trajectories.from_dataframe(df)
    assert list(runs.info["layers"]) == [[64, 64], [32], [64, 64]]
    assert runs.info["cfg"].iloc[2] == {"a": 1, "b": [1, 2]}
    df.drop(columns="varies").to_parquet(tmp_path / "runs.parquet", index=False)
    back = Trajectories.from_parquet(tmp_path / "runs.parquet")  # arrays there
    assert [list(x) for x in back.info["layers"]] == [[64, 64], [32], [64, 64]]
    assert back.digest() == runs.digest()
    back.to_parquet(tmp_path / "again.parquet")


def test_run_and_tick_in_the_index_are_read():
    """df.set_index(["run", "tick"]) (then to_parquet) said the columns were
    missing."""
    df = _long(2, 5)
    runs = Trajectories.from_dataframe(df)
    for index in (["run", "tick"], "run", "tick"):
        assert Trajectories.from_dataframe(df.set_index(index)).digest() == (
            runs.digest()
        )


def test_rows_with_no_value_are_ignored_not_divergence():
    """A summary row per run (no loss, metric or lr) made every run "diverge"
    at one tick past its end, and the grid a tick longer."""
    df = _long(3, 5)
    summary = df[df.tick == 4].assign(tick=5, loss=np.nan, metric=np.nan, lr=np.nan)
    with pytest.warns(UserWarning, match=r"3 row\(s\) hold no .*: ignored"):
        runs = Trajectories.from_dataframe(pd.concat([df, summary]))
    assert runs.digest() == Trajectories.from_dataframe(df).digest()
    # An empty loss beside a rate is still divergence.
    diverged = df.copy()
    diverged.loc[(diverged.run == "r1") & (diverged.tick == 3), ["loss", "metric"]] = (
        np.nan
    )
    with pytest.warns(DivergedRunWarning, match="'r1' diverged"):
        assert Trajectories.from_dataframe(diverged).lengths.tolist() == [5, 3, 5]
    # A run of nothing but empty rows is still refused.
    empty = df.copy()
    empty.loc[empty.run == "r2", ["loss", "metric", "lr"]] = np.nan
    with pytest.raises(ValueError, match="r2"):
        Trajectories.from_dataframe(empty)


def test_a_negative_loss_gets_advice_for_a_negative_loss():
    df = _long(2, 5)
    for value, advice in ((0.0, "ZERO_LOSS_FLOOR"), (-1.5, "shifted by a constant")):
        bad = df.copy()
        bad.loc[2, "loss"] = value
        with pytest.raises(ValueError, match=advice):
            Trajectories.from_dataframe(bad)


def test_boolean_and_time_columns_are_refused_compressed_csv_read(tmp_path):
    """Booleans were read as 0/1 (runs.md: non-numeric values are errors);
    timestamps as ticks asked "a step number?"; .csv.gz could not be told."""
    df = _long(2, 5)
    for col, value, match in (
        ("metric", df["metric"] > 0.5, r"column 'metric' holds booleans"),
        ("tick", pd.to_datetime(df["tick"], unit="s"), r"holds times .*cumcount"),
    ):
        with pytest.raises(ValueError, match=match):
            Trajectories.from_dataframe(df.assign(**{col: value}))
    runs = Trajectories.from_dataframe(df)
    runs.to_csv(tmp_path / "runs.csv")
    (tmp_path / "runs.csv.gz").write_bytes(
        __import__("gzip").compress((tmp_path / "runs.csv").read_bytes())
    )
    assert Trajectories.from_file(tmp_path / "runs.csv.gz").digest() == runs.digest()
    from optax_lode.tracking import load_runs

    assert load_runs(str(tmp_path / "runs.csv.gz")).digest() == runs.digest()
    (tmp_path / "set.parquet").mkdir()
    runs.to_parquet(tmp_path / "set.parquet" / "part-0.parquet")
    typed = str(tmp_path / "set.parquet") + "/"  # as tab completion writes it
    assert load_runs(typed).digest() == runs.digest()


def test_duplicate_column_names_are_refused():
    df = _long(2, 5)
    for name in ("loss", "run", "schedule"):
        twice = pd.concat([df, df[[name]]], axis=1)
        with pytest.raises(
            ValueError, match=rf"more than one column named \['{name}'\]"
        ):
            Trajectories.from_dataframe(twice)


def test_parquet_that_is_no_parquet_or_indexed_or_filtered(tmp_path):
    runs = synthetic_sweep(ticks=12, seeds=(0,), peak_lrs=(1e-2,))
    path = tmp_path / "runs.parquet"
    runs.to_parquet(path)
    # Corrupt: the file is named, in one line.
    data = bytearray(path.read_bytes())
    broken = tmp_path / "broken.parquet"
    for blob in (bytes(data[: len(data) // 2]), b"run,tick\n", b""):
        broken.write_bytes(blob)
        with pytest.raises(ValueError, match=r"cannot read '.*broken\.parquet' as Pa"):
            Trajectories.from_parquet(broken)
    # Indexed by run and tick.
    indexed = tmp_path / "indexed.parquet"
    table = pd.read_parquet(path)
    table.set_index(["run", "tick"]).to_parquet(indexed)
    assert Trajectories.from_parquet(indexed).digest() == runs.digest()
    # A copy filtered with pandas keeps the attrs' longer grid: said.
    first = tmp_path / "first.parquet"
    table[table.tick < 5].to_parquet(first, index=False)
    with pytest.warns(
        UserWarning,
        match=r"grid of 12 ticks, but no run has a tick past 4.*num_ticks=5",
    ):
        assert Trajectories.from_parquet(first).num_ticks == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Trajectories.from_parquet(first, num_ticks=5).num_ticks == 5
        Trajectories.from_parquet(path)  # a whole file: no warning


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_file_round_trip(tmp_path, fmt):
    df = _long(3, 6)
    df = df[~((df.run == "r2") & (df.tick >= 3))]
    traj = Trajectories.from_dataframe(df)
    path = tmp_path / f"runs.{fmt}"
    getattr(traj, f"to_{fmt}")(path)
    back = Trajectories.from_file(path)
    assert back.run_ids == traj.run_ids
    np.testing.assert_array_equal(back.mask, traj.mask)
    for name in ("loss", "metric", "lr"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    assert list(back.info["schedule"]) == list(traj.info["schedule"])
    assert list(back.info["seed"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="format"):
        Trajectories.from_file(tmp_path / "runs.json")


def test_split_and_select_and_best_run():
    loss, metric, lr = _curves(runs=10)
    metric[:, -1] = np.arange(10) % 7  # run 6 ends best
    traj = Trajectories.from_arrays(loss, metric, lr)
    train, held = traj.split(held_out=0.2, seed=3)
    assert held.num_runs == 2 and train.num_runs == 8
    assert set(train.run_ids) | set(held.run_ids) == set(traj.run_ids)
    assert not set(train.run_ids) & set(held.run_ids)
    assert traj.split(0.2, seed=3)[1].run_ids == held.run_ids  # deterministic
    assert traj.split(0.2, seed=4)[1].run_ids != held.run_ids
    assert traj.best_run().run_ids == ("6",)
    assert traj.select([1, 3]).run_ids == ("1", "3")
    assert traj.select(np.arange(10) < 2).run_ids == ("0", "1")
    assert traj.select(["4"]).run_ids == ("4",)
    assert traj[2:4].run_ids == ("2", "3")
    with pytest.raises(ValueError, match="fraction"):
        traj.split(held_out=1.5)
    for seed in (-1, 1.5, float("nan"), "3"):  # numpy's errors, or a wrap
        with pytest.raises(ValueError, match=r"seed must be a whole number"):
            traj.split(0.2, seed=seed)
    with pytest.raises(ValueError, match="empty"):
        traj.select(np.zeros(10, bool))


def test_best_run_ignores_runs_that_stopped_early():
    loss, metric, lr = _curves(runs=3)
    metric[0, -1] = 0.5
    metric[1, 5] = 0.99  # highest "last" value, but the run diverged after tick 5
    loss[1, 6:] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergedRunWarning)
        traj = Trajectories.from_arrays(loss, metric, lr)
    assert traj.best_index() in (0, 2) and traj.best_index() != 1


@st.composite
def ragged_runs(draw):
    runs = draw(st.integers(1, 5))
    ticks = draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    loss = np.exp(rng.normal(size=(runs, ticks)))
    metric = rng.uniform(size=(runs, ticks))
    lr = np.exp(rng.uniform(-9, 0, size=(runs, ticks)))
    lengths = [draw(st.integers(1, ticks)) for _ in range(runs)]
    mask = np.arange(ticks)[None, :] < np.array(lengths)[:, None]
    holes = rng.uniform(size=(runs, ticks)) < 0.2
    holes[:, 0] = False  # every run keeps its first tick
    mask &= ~holes
    return loss, metric, lr, mask


@given(ragged_runs())
def test_ragged_masked_runs_round_trip(data):
    loss, metric, lr, mask = data
    traj = Trajectories.from_arrays(loss, metric, lr, mask=mask)
    np.testing.assert_array_equal(traj.mask, mask)
    assert np.isnan(traj.loss[~mask]).all()
    back = Trajectories.from_dataframe(traj.to_dataframe(), num_ticks=traj.num_ticks)
    np.testing.assert_array_equal(back.mask, traj.mask)
    np.testing.assert_array_equal(back.lr, traj.lr)
    # Normalisation of the valid entries round-trips to the raw values. Padded to
    # one fixed shape so that the jnp ops compile once for all examples.
    raw = traj.features()
    norm = Normalisation.from_data(raw, traj.mask)
    fixed = np.ones((5, 12, 3))
    fixed[: raw.shape[0], : raw.shape[1]] = np.where(traj.mask[..., None], raw, 1.0)
    x = np.asarray(norm.forward(fixed))
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(norm.inverse(x), fixed, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(
        norm.inverse(x[: raw.shape[0], : raw.shape[1]][traj.mask]),
        raw[traj.mask],
        rtol=2e-5,
        atol=1e-6,
    )


def test_table_metric_and_lr_gaps_carry_forward_like_a_tracker(tmp_path):
    """Validation every few ticks leaves empty metric cells: each takes the
    run's last value (its first, before the first), not divergence. An empty
    loss, or an infinite metric, still is divergence."""
    df = pd.DataFrame(
        {
            "run": ["007"] * 5 + ["008"] * 5,
            "tick": list(range(5)) * 2,
            "loss": [1.0, 0.9, 0.8, 0.7, 0.6] * 2,
            "metric": [np.nan, 0.5, np.nan, np.nan, 0.7, 0.1, 0.2, np.inf, 0.4, 0.5],
            "lr": [0.1, np.nan, np.nan, 0.05, np.nan] * 2,
        }
    )
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = Trajectories.from_csv(path)
    assert runs.run_ids == ("007", "008")  # text ids survive the CSV
    np.testing.assert_array_equal(runs.metric[0], [0.5, 0.5, 0.5, 0.5, 0.7])
    np.testing.assert_array_equal(runs.lr[0], [0.1, 0.1, 0.1, 0.05, 0.05])
    np.testing.assert_array_equal(runs.mask[0], True)
    # inf is divergence: run 008 is masked from tick 2, with a warning.
    np.testing.assert_array_equal(runs.mask[1], [True, True, False, False, False])
    assert [type(w.message) for w in caught] == [DivergedRunWarning]
    runs.to_csv(path)
    assert Trajectories.from_csv(path).run_ids == ("007", "008")


def test_csv_run_ids_that_look_missing_are_ids(tmp_path):
    """ "NA" and "None" are names (pandas would read them as missing); the
    series' "NA" cells still are missing, and an empty id is refused."""
    path = tmp_path / "runs.csv"
    path.write_text(
        "run,tick,loss,metric,lr,seed\n"
        "NA,0,1.0,0.1,0.1,1\nNA,1,0.9,NA,0.1,1\n"
        "None,0,1.0,0.2,0.1,NA\nNone,1,0.8,0.3,0.1,NA\n"
    )
    runs = Trajectories.from_csv(path)
    assert runs.run_ids == ("NA", "None")
    np.testing.assert_array_equal(runs.metric[0], [0.1, 0.1])  # carried forward
    assert runs.info["seed"].isna().tolist() == [False, True]
    runs.to_csv(path)
    assert Trajectories.from_csv(path).run_ids == ("NA", "None")
    path.write_text("run,tick,loss,metric,lr\n,0,1.0,0.1,0.1\n,1,0.9,0.1,0.1\n")
    with pytest.raises(ValueError, match="run"):
        Trajectories.from_csv(path)


def test_step_numbers_as_ticks_are_caught():
    df = pd.DataFrame(
        {"run": ["a", "a"], "tick": [0, 10**12], "loss": 1.0, "metric": 0.5, "lr": 0.1}
    )
    with pytest.raises(ValueError, match="step number"):
        Trajectories.from_dataframe(df)
    df["tick"] = [0, 10**20]
    with pytest.raises(ValueError, match="step number"):
        Trajectories.from_dataframe(df)
    df = pd.DataFrame(
        {"run": "a", "tick": np.arange(0, 5000, 100), "loss": 1.0, "metric": 0.5}
    ).assign(lr=0.1)
    with pytest.warns(UserWarning, match="multiple of 100: are they step numbers"):
        Trajectories.from_dataframe(df)
    df["tick"] = np.r_[0:49, 3001]  # no common step, a grid 2% filled
    with pytest.warns(UserWarning, match="step numbers rather than ticks"):
        Trajectories.from_dataframe(df)


def test_csv_keeps_tracker_tags_as_text(tmp_path):
    """Tags (``tags.<name>``, as from_mlflow names them) are ids more often
    than numbers: "007" and "NA" survive the CSV round trip; an empty tag is
    missing. Other info columns are still typed."""
    runs = Trajectories.from_arrays(
        np.ones((3, 4)),
        np.full((3, 4), 0.5),
        np.full((3, 4), 0.1),
        run_ids=["a", "b", "c"],
        info={"tags.optax_lode.run_id": ["007", "NA", None], "seed": [1, 2, 3]},
    )
    path = tmp_path / "runs.csv"
    runs.to_csv(path)
    back = Trajectories.from_csv(path)
    assert back.info["tags.optax_lode.run_id"].tolist()[:2] == ["007", "NA"]
    assert back.info["tags.optax_lode.run_id"].isna().tolist() == [False, False, True]
    assert back.info["seed"].tolist() == [1, 2, 3]


def test_csv_info_columns_named_as_text_keep_their_values(tmp_path):
    """pandas types a CSV's columns: a code "007" becomes 7 and "NA" missing.
    text=[...] keeps such info columns as written; a column not in the file
    (or a bare string) is refused rather than silently ignored."""
    runs = Trajectories.from_arrays(
        np.ones((2, 3)),
        np.full((2, 3), 0.5),
        np.full((2, 3), 0.1),
        run_ids=["a", "b"],
        info={"code": ["007", "NA"], "seed": [1, 2]},
    )
    path = tmp_path / "runs.csv"
    runs.to_csv(path)
    assert Trajectories.from_csv(path).info["code"].iloc[0] == 7  # typed by pandas
    back = Trajectories.from_csv(path, text=["code"])
    assert back.info["code"].tolist() == ["007", "NA"]
    assert back.info["seed"].tolist() == [1, 2]
    for bad in (["cod"], "code"):
        with pytest.raises(ValueError, match="text must list columns of the file"):
            Trajectories.from_csv(path, text=bad)
    assert Trajectories.from_file(path, text=["code"]).info["code"].iloc[0] == "007"
    runs.to_parquet(tmp_path / "runs.parquet")  # keeps types: text not needed
    back = Trajectories.from_file(tmp_path / "runs.parquet", text=["code"])
    assert back.info["code"].tolist() == ["007", "NA"]


def test_info_with_an_integer_index_that_reorders_the_runs_is_refused():
    """A sorted frame's integer index looks like the default run ids "0".."n-1"
    reordered: matching it by id would attach each row to another run."""
    meta = pd.DataFrame({"peak_lr": [0.01, 0.1, 0.001]}).sort_values("peak_lr")
    lr = np.stack([np.full(4, p) for p in meta["peak_lr"]])
    args = (1.0 + 10 * lr, np.full((3, 4), 0.5), lr)
    with pytest.raises(ValueError, match="reset_index"):
        Trajectories.from_arrays(*args, info=meta)
    runs = Trajectories.from_arrays(*args, info=meta.reset_index(drop=True))
    np.testing.assert_array_equal(runs.info["peak_lr"], lr[:, 0])
    # Indexed by the run ids as strings: matched by id, whatever the order.
    by_id = meta.set_axis(["2", "0", "1"])
    runs = Trajectories.from_arrays(*args, info=by_id)
    assert runs.info["peak_lr"].tolist() == [0.01, 0.1, 0.001]
    # An integer index in run order is unambiguous.
    runs = Trajectories.from_arrays(*args, info=meta.set_axis([0, 1, 2]))
    np.testing.assert_array_equal(runs.info["peak_lr"], lr[:, 0])


def test_info_columns_named_like_the_long_format_are_prefixed():
    """info columns "loss", "run", ... would overwrite the records in
    to_dataframe / to_csv: they become info_<name>, as in the tracker imports."""
    runs = Trajectories.from_arrays(
        [[1.0, 0.9]],
        [[0.1, 0.2]],
        [[0.1, 0.1]],
        run_ids=["r"],
        info={"loss": [0.5], "run": ["X"], "tick": [7], "seed": [3]},
    )
    assert {"info_loss", "info_run", "info_tick", "seed"} <= set(runs.info.columns)
    back = Trajectories.from_dataframe(runs.to_dataframe())
    assert back.run_ids == ("r",)
    np.testing.assert_array_equal(back.loss, runs.loss)
    assert back.info["info_loss"].tolist() == [0.5]


def test_small_edge_cases_get_their_own_messages():
    runs = synthetic_sweep(ticks=5, seeds=(0,))
    with pytest.raises(ValueError, match="the selection is empty"):
        runs.select([])
    with pytest.raises(ValueError, match="ticks must be >= 1"):
        synthetic_sweep(ticks=0)
    with pytest.raises(ValueError, match="schedules is empty"):
        synthetic_sweep(schedules=())
    with pytest.raises(ValueError, match="non-empty 1-D"):
        simulate_curve(np.array([]))
    for bad in (-1, 0):  # -1 made the loss rise; 0 fell back to the default
        with pytest.raises(ValueError, match="ticks_per_unit must be >= 1"):
            simulate_curve(np.full(5, 0.01), ticks_per_unit=bad)


def test_info_whose_index_names_only_some_of_the_run_ids_is_refused():
    """Paired by position, the row labelled 'b' would describe run 'a'."""
    one = np.ones((2, 3))
    info = pd.DataFrame({"schedule": ["for-b", "for-c"]}, index=["b", "c"])
    with pytest.raises(ValueError, match="names some of the run ids"):
        Trajectories.from_arrays(one, one, one, run_ids=["a", "b"], info=info)
    filtered = pd.DataFrame({"seed": [7, 3]}, index=[7, 3])  # rows left by a filter
    with pytest.raises(ValueError, match="reset_index"):
        Trajectories.from_arrays(one, one, one, run_ids=["3", "5"], info=filtered)
    runs = Trajectories.from_arrays(
        one, one, one, run_ids=["3", "5"], info=filtered.reset_index(drop=True)
    )
    assert runs.info["seed"].tolist() == [7, 3]
    # No label a run id (a frame from elsewhere): its rows are in run order.
    other = pd.DataFrame({"seed": [1, 2]}, index=["x", "y"])
    runs = Trajectories.from_arrays(one, one, one, run_ids=["a", "b"], info=other)
    assert runs.info["seed"].tolist() == [1, 2]


def test_parquet_keeps_a_grid_whose_last_ticks_no_run_reached(tmp_path):
    """Runs stopped early: a model of T ticks must still read them back."""
    sweep = synthetic_sweep(ticks=20, seeds=(0,))
    mask = sweep.mask.copy()
    mask[:, 15:] = False
    early = Trajectories.from_arrays(
        sweep.loss, sweep.metric, sweep.lr, mask=mask, run_ids=sweep.run_ids
    )
    early.to_parquet(tmp_path / "runs.parquet")
    with pytest.warns(UserWarning, match="Right if every run stopped early"):
        back = Trajectories.from_parquet(tmp_path / "runs.parquet")
    assert back.num_ticks == 20 and back.digest() == early.digest()
    # In memory the length is explicit: a table cut to its first ticks (pandas
    # keeps attrs through the filter) makes the shorter grid it asks for.
    table = early.to_dataframe()
    assert table.attrs["num_ticks"] == 20
    assert Trajectories.from_dataframe(table[table["tick"] < 10]).num_ticks == 10
    back = Trajectories.from_dataframe(table, num_ticks=table.attrs["num_ticks"])
    assert back.digest() == early.digest()
    early.to_csv(tmp_path / "runs.csv")  # CSV keeps no attrs: pass num_ticks
    assert Trajectories.from_csv(tmp_path / "runs.csv").num_ticks == 15
    back = Trajectories.from_csv(tmp_path / "runs.csv", num_ticks=20)
    assert back.digest() == early.digest()
    with pytest.raises(ValueError, match=r"num_ticks must be a whole number"):
        Trajectories.from_csv(tmp_path / "runs.csv", num_ticks=20.5)


def test_the_runs_clock_travels_with_them_and_is_checked(tmp_path):
    """steps_per_tick: kept by selection, Parquet and the long table; CSV and
    arrays need it declared; a bad one is refused; it is not content."""
    loss, metric, lr = _curves()
    plain = Trajectories.from_arrays(loss, metric, lr)
    assert plain.steps_per_tick is None and "steps_per_tick" not in repr(plain)
    runs = Trajectories.from_arrays(loss, metric, lr, steps_per_tick=np.int64(31))
    assert runs.steps_per_tick == 31 and type(runs.steps_per_tick) is int
    assert "steps_per_tick=31" in repr(runs)
    # The same series on another clock are the same content.
    assert runs.digest() == plain.digest()
    assert runs.select([2, 0]).steps_per_tick == 31
    assert all(part.steps_per_tick == 31 for part in runs.split(0.4))
    assert runs.best_run().steps_per_tick == 31
    assert runs[1:].steps_per_tick == 31
    # Declared, corrected or forgotten, on a copy: the original keeps its own.
    other = runs.with_steps_per_tick(10)
    assert (other.steps_per_tick, runs.steps_per_tick) == (10, 31)
    other.info.loc["0", "seed"] = 99
    assert pd.isna(runs.info.loc["0", "seed"])
    assert runs.with_steps_per_tick(None).steps_per_tick is None
    runs.to_parquet(tmp_path / "runs.parquet")
    assert Trajectories.from_parquet(tmp_path / "runs.parquet").steps_per_tick == 31
    assert Trajectories.from_file(tmp_path / "runs.parquet").steps_per_tick == 31
    given_k = Trajectories.from_parquet(tmp_path / "runs.parquet", steps_per_tick=4)
    assert given_k.steps_per_tick == 4  # an explicit one wins over the file's
    plain.to_parquet(tmp_path / "plain.parquet")
    assert Trajectories.from_parquet(tmp_path / "plain.parquet").steps_per_tick is None
    table = runs.to_dataframe()
    assert table.attrs["steps_per_tick"] == 31
    assert "steps_per_tick" not in plain.to_dataframe().attrs
    runs.to_csv(tmp_path / "runs.csv")  # CSV keeps no attrs: declare it
    assert Trajectories.from_csv(tmp_path / "runs.csv").steps_per_tick is None
    back = Trajectories.from_csv(tmp_path / "runs.csv", steps_per_tick=31)
    assert back.steps_per_tick == 31 and back.digest() == runs.digest()
    for bad in (0, -3, 2.5, True, "10", float("nan")):
        with pytest.raises(ValueError, match=r"steps_per_tick must be a whole"):
            Trajectories.from_arrays(loss, metric, lr, steps_per_tick=bad)
        with pytest.raises(ValueError, match=r"steps_per_tick must be a whole"):
            runs.with_steps_per_tick(bad)
    assert runs.with_steps_per_tick(10.0).steps_per_tick == 10
    # A file whose recorded clock was edited into nonsense names itself.
    table = runs.to_dataframe()
    table.attrs["steps_per_tick"] = "ten"
    table.to_parquet(tmp_path / "odd.parquet", index=False)
    with pytest.raises(ValueError, match=r"odd.parquet' records an invalid clock"):
        Trajectories.from_parquet(tmp_path / "odd.parquet")
    odd = Trajectories.from_parquet(tmp_path / "odd.parquet", steps_per_tick=None)
    assert odd.steps_per_tick is None


def test_with_negated_metric_makes_a_lower_is_better_metric_rank_right():
    """A validation loss read as the metric: negated, the best run is the one
    with the lowest final value (without, the highest: the worst)."""
    loss, metric, lr = _curves(runs=3, ticks=6)
    val_loss = 1.5 - metric  # lower is better; run 2's falls fastest
    mask = np.ones(loss.shape, bool)
    mask[0, 4:] = False  # ragged: masked entries must stay NaN
    runs = Trajectories.from_arrays(
        loss, val_loss, lr, mask=mask, info={"seed": [0, 1, 2]}, steps_per_tick=7
    )
    # The wrong one: the highest final val_loss of the complete runs (run 0
    # stopped early, so it ranks below them).
    assert runs.best_run().run_ids == ("1",)
    negated = runs.with_negated_metric()
    assert negated.best_run().run_ids == ("2",)
    np.testing.assert_array_equal(negated.metric[mask], -runs.metric[mask])
    assert np.isnan(negated.metric[~mask]).all()
    for name in ("loss", "lr", "mask"):
        np.testing.assert_array_equal(getattr(negated, name), getattr(runs, name))
    assert negated.run_ids == runs.run_ids and negated.steps_per_tick == 7
    pd.testing.assert_frame_equal(negated.info, runs.info)
    # A copy: the original keeps its metric and its info.
    negated.info.loc["0", "seed"] = 99
    assert runs.info.loc["0", "seed"] == 0
    assert not negated.metric.flags.writeable
    assert negated.with_negated_metric().digest() == runs.digest()
    # The runs say they were negated, and negating back says they are not.
    assert negated.metric_negated and not runs.metric_negated
    assert not negated.with_negated_metric().metric_negated
    assert "metric_negated=True" in repr(negated)
    assert negated.select([2, 0]).metric_negated and negated[1:].metric_negated


def test_a_tick_column_of_step_numbers_or_counted_from_1_is_said():
    """Steps logged every 10 (ticks 10, 20, ...) made a 10x sparse grid and
    ticks from 1 an empty tick 0 in every run, silently: a model of another T,
    refused only by the schedule, with advice about the clock."""
    import warnings

    def table(ticks):
        n = len(ticks)
        return pd.DataFrame(
            {"run": ["a"] * n, "tick": ticks, "loss": np.linspace(1, 0.5, n),
             "metric": np.linspace(0.1, 0.9, n), "lr": [0.1] * n}
        )  # fmt: skip

    with pytest.warns(UserWarning, match=r"multiple of 10: are they step numbers"):
        Trajectories.from_dataframe(table(list(range(10, 410, 10))))
    with pytest.warns(UserWarning, match=r"no run has tick 0.*subtract 1") as seen:
        runs = Trajectories.from_dataframe(table(list(range(1, 41))))
    assert runs.num_ticks == 41 and not runs.mask[:, 0].any()
    assert seen[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trajectories.from_dataframe(table(list(range(40))))
        Trajectories.from_dataframe(table([0, 4]))  # two ticks: too few to tell


def test_a_readers_warnings_name_the_callers_line(tmp_path):
    """from_csv's warnings named a line of the library, three calls deep."""
    table = pd.DataFrame(
        {"run": ["a"] * 3, "tick": [0, 1, 2], "loss": [1.0, float("nan"), 1.0],
         "metric": [0.1, 0.2, 0.3], "lr": [0.1] * 3, "phase": ["x", "y", "z"]}
    )  # fmt: skip
    table.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.warns(UserWarning) as seen:
        Trajectories.from_csv(tmp_path / "runs.csv")
    kinds = {w.category for w in seen}
    assert DivergedRunWarning in kinds and UserWarning in kinds  # + dropped column
    assert {w.filename for w in seen} == {__file__}


def test_the_negation_survives_parquet_and_can_be_declared_for_csv(tmp_path):
    """A model fitted to runs read back from a file must still know their
    metric was negated: Parquet keeps the flag, CSV takes it as an argument,
    and a file's corrupt flag is refused."""
    loss, metric, lr = _curves(runs=2, ticks=5)
    runs = Trajectories.from_arrays(loss, metric, lr).with_negated_metric()
    runs.to_parquet(tmp_path / "neg.parquet")
    back = Trajectories.from_parquet(tmp_path / "neg.parquet")
    assert back.metric_negated and back.digest() == runs.digest()
    # Not negated: nothing recorded, nothing read.
    runs.with_negated_metric().to_parquet(tmp_path / "plain.parquet")
    assert not Trajectories.from_parquet(tmp_path / "plain.parquet").metric_negated
    with pytest.warns(UserWarning, match=r"from_csv\(\.\.\., metric_negated=True\)"):
        runs.to_csv(tmp_path / "neg.csv")  # CSV cannot say so: the writer does
    assert not Trajectories.from_csv(tmp_path / "neg.csv").metric_negated
    assert Trajectories.from_csv(
        tmp_path / "neg.csv", metric_negated=True
    ).metric_negated
    table = runs.to_dataframe()
    table.attrs["metric_negated"] = "yes"
    table.to_parquet(tmp_path / "odd.parquet", index=False)
    with pytest.raises(
        ValueError, match=r"odd\.parquet' records an invalid metric_neg"
    ):
        Trajectories.from_parquet(tmp_path / "odd.parquet")
    odd = Trajectories.from_parquet(tmp_path / "odd.parquet", metric_negated=True)
    assert odd.metric_negated
    with pytest.raises(TypeError, match=r"metric_negated must be a bool.*pass True"):
        Trajectories.from_dataframe(runs.to_dataframe(), metric_negated="yes")
    # Arrays of a metric negated elsewhere can say so too.
    declared = Trajectories.from_arrays(loss, -metric, lr, metric_negated=True)
    assert declared.metric_negated and declared.digest() == runs.digest()


def test_ragged_lists_and_a_dict_of_columns_get_the_librarys_advice():
    # np.iscomplexobj converted the ragged lists first: numpy's own error.
    with pytest.raises(
        ValueError, match="ragged runs need padding with NaN and a mask"
    ):
        Trajectories.from_arrays(
            [[1.0, 0.5, 0.3], [1.0, 0.5]],
            [[0.1, 0.2, 0.3], [0.1, 0.2]],
            [[1e-2] * 3, [1e-2] * 2],
        )
    columns = {"run": ["a", "a"], "tick": [0, 1], "loss": [1, 0.5]}
    columns.update(metric=[0, 1], lr=[0.1, 0.1])
    with pytest.raises(
        TypeError, match=r"pandas DataFrame.*got a dict.*DataFrame\(d\)"
    ):
        Trajectories.from_dataframe(columns)
    assert Trajectories.from_dataframe(pd.DataFrame(columns)).num_ticks == 2


def test_an_empty_csv_file_is_named(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty.csv' is empty; expected a CSV"):
        Trajectories.from_csv(empty)
    header = tmp_path / "header.csv"
    header.write_text("run,tick,loss,metric,lr\n")
    with pytest.raises(ValueError, match=r"header.csv' has a header but no rows"):
        Trajectories.from_file(header)
