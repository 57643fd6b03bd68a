"""MLflow import and export against a real SQLite tracking store.

Runs are written with MLflow's own client into a temporary ``sqlite:///`` store
(MLflow's embedded default: no server) and read back through ``from_mlflow``.
One store is shared by the module: creating it runs MLflow's migrations.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from optax_lode.runs import Trajectories
from optax_lode.tracking import (
    RunAlignmentError,
    from_mlflow,
    load_runs,
    log_trajectories_to_mlflow,
    read_mlflow_records,
)
from optax_lode.tracking import _mlflow as mlflow_module

STEPS = 60  # steps per full run
K = 5  # steps per tick -> 12 ticks
NAMES = ["rün-α-0", "学习率-1", "run 🚀 2", "plain-3"]


def _curves(seed: int, n: int):
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    loss = 2.0 * np.exp(-steps / 30) + 0.1 + 0.01 * rng.random(n)
    lr = 0.1 * (1 - steps / n) + 1e-3
    return steps, loss, lr


def _log(
    client, exp, name, steps, series, *, status="FINISHED", params=None, tags=None
):
    """Logs ``series`` = {key: (steps, values)}, timestamps in logging order."""
    run = client.create_run(exp, run_name=name, tags=tags or {})
    t0 = int(time.time() * 1000)
    metrics = []
    for key, (st, vals) in series.items():
        metrics += [
            Metric(key, float(v), t0 + j, int(s))
            for j, (s, v) in enumerate(zip(st, vals, strict=True))
        ]
    client.log_batch(
        run.info.run_id,
        metrics=metrics,
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
    )
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite store with a sweep experiment and a broken one; returns (uri, truth)."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("sweep-ü")
    truth = {}
    parent = _log(client, exp, "sweep-parent", [], {})
    for i, name in enumerate(NAMES):
        steps, loss, lr = _curves(i, STEPS)
        if i == 1:  # irregular loss steps: a random subset, at least one per tick
            keep = np.sort(
                np.unique(
                    np.r_[
                        np.arange(0, STEPS, K), np.random.default_rng(9).choice(60, 25)
                    ]
                )
            )
            lsteps, lvals = steps[keep], loss[keep]
        else:
            lsteps, lvals = steps, loss
        # Validation at irregular steps, less often than once a tick.
        msteps = np.array([7, 18, 26, 41, 59])
        mvals = 0.5 + 0.1 * i + msteps / 200
        rid = _log(
            client,
            exp,
            name,
            steps,
            {
                "train_loss": (lsteps, lvals),
                "val_accuracy": (msteps, mvals),
                "lr": (steps, lr),
            },
            params={
                "schedule": ["cosine", "linear"][i % 2],
                "seed": i,
                "peak_lr": 0.1,
                "lr": 0.1,  # a param named like a series column
            },
            tags={"mlflow.parentRunId": parent, "team": f"00{i}"},
        )
        truth[rid] = dict(
            name=name, lsteps=lsteps, lvals=lvals, ms=msteps, mv=mvals, lr=lr
        )
    # Stopped early at step 30 (6 ticks).
    steps, loss, lr = _curves(7, 30)
    early = _log(
        client,
        exp,
        "early-stop",
        steps,
        {
            "train_loss": (steps, loss),
            "val_accuracy": ([9, 29], [0.3, 0.4]),
            "lr": (steps, lr),
        },
        params={"schedule": "constant", "seed": 7},
    )
    failed = _log(
        client,
        exp,
        "crashed",
        steps[:12],
        {
            "train_loss": (steps[:12], loss[:12]),
            "val_accuracy": ([9], [0.2]),
            "lr": (steps[:12], lr[:12]),
        },
        status="FAILED",
    )
    # A second experiment: one good run, one without lr, one resumed, one diverged.
    bad = client.create_experiment("broken")
    steps, loss, lr = _curves(3, 20)
    good = {
        "train_loss": (steps, loss),
        "val_accuracy": ([19], [0.5]),
        "lr": (steps, lr),
    }
    _log(client, bad, "good", steps, good)
    _log(client, bad, "no-lr", steps, {k: v for k, v in good.items() if k != "lr"})
    resumed = dict(good, train_loss=(np.r_[steps, steps[10:]], np.r_[loss, loss[10:]]))
    _log(client, bad, "resumed", steps, resumed)
    diverged = dict(good, train_loss=(steps, np.where(steps >= 12, np.inf, loss)))
    diverged_id = _log(client, bad, "diverged", steps, diverged)
    return dict(
        uri=uri,
        truth=truth,
        early=early,
        failed=failed,
        parent=parent,
        diverged=diverged_id,
        path=path,
    )


def _expected(t, ticks):
    """Block means and carried-forward metric, computed directly."""
    tick_of = t["lsteps"] // K
    loss = np.array([t["lvals"][tick_of == j].mean() for j in range(ticks)])
    lr = t["lr"].reshape(ticks, K).mean(1)
    metric = []
    for j in range(ticks):
        seen = t["ms"] <= (j + 1) * K - 1
        metric.append(t["mv"][seen][-1] if seen.any() else t["mv"][0])
    return loss, np.array(metric), lr


def test_import_matches_what_was_logged(store):
    traj = from_mlflow("sweep-ü", tracking_uri=store["uri"], tick=K)
    assert isinstance(traj, Trajectories)
    # The parent run (no curves) is skipped, the FAILED run is not finished.
    assert set(traj.run_ids) == {*store["truth"], store["early"]}
    assert traj.num_ticks == STEPS // K
    for rid, t in store["truth"].items():
        i = traj.run_ids.index(rid)
        loss, metric, lr = _expected(t, traj.num_ticks)
        np.testing.assert_allclose(traj.loss[i], loss, rtol=1e-12)
        np.testing.assert_allclose(traj.metric[i], metric, rtol=1e-12)
        np.testing.assert_allclose(traj.lr[i], lr, rtol=1e-12)
        assert traj.mask[i].all()
    # Unicode run names survive, params come back typed.
    assert set(traj.info["run_name"]) == {*NAMES, "early-stop"}
    row = traj.info.set_index("run_name").loc[NAMES[0]]
    assert row["schedule"] == "cosine" and row["seed"] == 0 and row["peak_lr"] == 0.1
    assert row["info_lr"] == 0.1  # a param named "lr" does not clash with the series
    assert traj.info["status"].eq("FINISHED").all()
    # User tags come back as strings (an id-like "000" is not the number 0);
    # MLflow's own tags (mlflow.parentRunId, mlflow.runName, ...) do not.
    assert row["tags.team"] == "000"
    assert traj.info.set_index("run_name").loc["early-stop"].isna()["tags.team"]
    assert not [c for c in traj.info.columns if c.startswith("tags.mlflow.")]


def test_early_stopped_run_is_masked_or_excluded(store):
    traj = from_mlflow("sweep-ü", tracking_uri=store["uri"], tick=K)
    i = traj.run_ids.index(store["early"])
    assert traj.lengths[i] == 6 and not traj.mask[i, 6:].any()
    with pytest.warns(UserWarning, match=r"'early-stop' \(.*\) \(ends at tick 5\)"):
        kept = from_mlflow(
            "sweep-ü", tracking_uri=store["uri"], tick=K, early_stopped="exclude"
        )
    assert store["early"] not in kept.run_ids and kept.num_runs == len(NAMES)


def test_statuses_select_failed_runs(store):
    traj = from_mlflow(
        "sweep-ü", tracking_uri=store["uri"], tick=K, statuses=("FINISHED", "FAILED")
    )
    i = traj.run_ids.index(store["failed"])
    assert (
        traj.lengths[i] == -(-12 // K)  # steps 10, 11 open a third tick
        and traj.info.loc[store["failed"], "status"] == "FAILED"
    )


def test_one_status_as_a_string_is_one_status(store):
    """statuses="FAILED" was read letter by letter ('F', 'A', ...)."""
    traj = from_mlflow("sweep-ü", tracking_uri=store["uri"], tick=K, statuses="failed")
    assert traj.run_ids == (store["failed"],)


def test_wrong_experiment_name_is_a_clear_error(store):
    with pytest.raises(
        ValueError, match=r"no MLflow experiment named 'sweep-u'.*sweep-ü"
    ):
        from_mlflow("sweep-u", tracking_uri=store["uri"])


def test_missing_store_file_is_a_clear_error(tmp_path):
    uri = f"sqlite:///{tmp_path / 'nope.db'}"
    with pytest.raises(FileNotFoundError, match="no MLflow store"):
        from_mlflow("sweep-ü", tracking_uri=uri)
    assert not (tmp_path / "nope.db").exists()


def test_bad_runs_are_named(store):
    with pytest.raises(RunAlignmentError) as err:
        from_mlflow("broken", tracking_uri=store["uri"], tick=2)
    message = str(err.value)
    assert "'no-lr'" in message and "no 'lr' records" in message
    assert "'resumed'" in message and "non-monotone steps" in message
    with pytest.warns(UserWarning):
        traj = from_mlflow(
            "broken", tracking_uri=store["uri"], tick=2, on_invalid="skip"
        )
    assert set(traj.info["run_name"]) == {"good", "diverged"}


def test_infinite_loss_survives_the_sql_store_as_divergence(store):
    # MLflow's SQL store saves inf as the largest float64; it must read as inf.
    records, _ = read_mlflow_records(
        "broken", keys=["train_loss"], tracking_uri=store["uri"]
    )
    vals = records.loc[records["run"] == store["diverged"], "value"]
    assert np.isinf(vals).sum() == 8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traj = from_mlflow(
            "broken", tracking_uri=store["uri"], tick=2, on_invalid="skip"
        )
    expected = f"run {store['diverged']!r} diverged"
    assert any(expected in str(w.message) for w in caught)
    assert traj.lengths[traj.run_ids.index(store["diverged"])] == 6


def test_bulk_sql_read_equals_the_public_api(store, monkeypatch):
    keys = ("train_loss", "val_accuracy", "lr")
    bulk, answers = mlflow_module._sql_histories, []

    def spy(*args):
        answers.append(bulk(*args))
        return answers[-1]

    monkeypatch.setattr(mlflow_module, "_sql_histories", spy)
    fast, info_fast = read_mlflow_records(
        "sweep-ü", keys=keys, tracking_uri=store["uri"]
    )
    # The bulk read answered for the SQLite store (its None means "fall back":
    # the comparison below would then hold trivially).
    assert len(answers) == 1 and answers[0] is not None and len(answers[0])
    monkeypatch.setattr(mlflow_module, "_sql_histories", lambda *a: None)
    slow, info_slow = read_mlflow_records(
        "sweep-ü", keys=keys, tracking_uri=store["uri"]
    )

    def norm(df):
        return df.sort_values(["run", "key", "order", "step"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(norm(fast), norm(slow), check_dtype=False)
    pd.testing.assert_frame_equal(info_fast, info_slow)


def test_load_runs_mlflow_scheme(store):
    traj = load_runs(
        "mlflow://sweep-%C3%BC", tracking_uri=store["uri"], tick=K, lr=None
    )
    assert traj.num_runs == len(NAMES) + 1


def test_export_round_trip(store):
    rng = np.random.default_rng(0)
    runs, ticks = 5, 9
    loss = np.exp(-np.arange(ticks) / 4)[None] + rng.uniform(0.1, 0.2, (runs, ticks))
    metric = rng.uniform(0, 1, (runs, ticks))
    lr = rng.uniform(1e-3, 1e-1, (runs, ticks))
    mask = np.ones((runs, ticks), bool)
    mask[2, 5:] = False  # stopped early
    info = {
        "schedule": ["cosine", "linear", "constant", "cosine", "wsd"],
        "seed": [0, 1, 2, 3, 4],
        "task": ["digits-mlp"] * runs,
        "peak_lr": [0.1, 0.01, 0.1, 0.01, 0.1],
        "test_metric": rng.uniform(0, 1, runs),
        "early_stopped": [False, False, True, False, False],
    }
    src = Trajectories.from_arrays(
        loss, metric, lr, mask=mask, run_ids=[f"ω-{i}" for i in range(runs)], info=info
    )
    ids = log_trajectories_to_mlflow(
        src, experiment="exported ✓", tracking_uri=store["uri"]
    )
    assert len(ids) == runs
    back = from_mlflow("exported ✓", tracking_uri=store["uri"], tick=1)
    assert list(back.run_ids) == ids  # the export's run order is kept
    # Not 1: an exported step is a tick, of a clock src did not know.
    assert back.steps_per_tick is None
    order = [back.run_ids.index(i) for i in ids]
    np.testing.assert_array_equal(back.mask[order], src.mask)
    for name in ("loss", "metric", "lr"):
        np.testing.assert_array_equal(getattr(back, name)[order], getattr(src, name))
    got = back.info.iloc[order]
    assert list(got["run_name"]) == list(src.run_ids)
    assert list(got["tags.optax_lode.run_id"]) == list(src.run_ids)
    assert list(got["schedule"]) == info["schedule"]
    assert list(got["seed"]) == info["seed"]
    assert list(got["task"]) == info["task"]
    np.testing.assert_array_equal(got["peak_lr"], info["peak_lr"])
    np.testing.assert_array_equal(got["test_metric"], info["test_metric"])
    assert got["early_stopped"].dtype == bool  # not the strings "True"/"False"
    assert list(got["early_stopped"]) == info["early_stopped"]
    # Exported again (a re-run sweep with --mlflow): refused, skipped or
    # logged twice with a warning (the default), never silently.
    exp = dict(experiment="exported ✓", tracking_uri=store["uri"])
    with pytest.raises(ValueError, match="already holds 2 of these runs"):
        log_trajectories_to_mlflow(src.select([0, 1]), existing="error", **exp)
    assert from_mlflow(tick=1, **exp).num_runs == runs  # nothing was logged
    # Skipped: the old ids come back, only the new run is logged.
    more = Trajectories.from_arrays(
        loss[:3], metric[:3], lr[:3], run_ids=["ω-0", "ω-1", "new"]
    )
    again = log_trajectories_to_mlflow(more, existing="skip", **exp)
    assert again[:2] == ids[:2] and again[2] not in ids
    assert from_mlflow(tick=1, **exp).num_runs == runs + 1
    with pytest.warns(UserWarning, match="already holds 2 of these runs"):
        log_trajectories_to_mlflow(src.select([0, 1]), **exp)
    assert from_mlflow(tick=1, **exp).num_runs == runs + 3
    with pytest.raises(ValueError, match="existing must be"):
        log_trajectories_to_mlflow(src, existing="replace", **exp)


def test_export_keeps_the_runs_clock(store):
    """An export logs a step per tick and tags the runs' steps per tick, so
    reading back gives the same clock, or a multiple of it for coarser
    ticks; runs exported on different clocks leave it unknown."""
    t = np.arange(8)
    src = Trajectories.from_arrays(
        [np.exp(-t / 4) + 0.1] * 2, [t / 8] * 2, [np.full(8, 1e-2)] * 2,
        run_ids=["a", "b"], steps_per_tick=7,
    )  # fmt: skip
    exp = dict(experiment="clock", tracking_uri=store["uri"])
    log_trajectories_to_mlflow(src, **exp)
    back = from_mlflow(**exp)  # the tick inferred: one record per step
    assert back.steps_per_tick == 7 and back.num_ticks == 8
    assert from_mlflow(tick=2, **exp).steps_per_tick == 14
    other = Trajectories.from_arrays(
        src.loss[:1], src.metric[:1], src.lr[:1], run_ids=["c"], steps_per_tick=3
    )
    log_trajectories_to_mlflow(other, **exp)
    with pytest.warns(UserWarning, match=r"steps_per_tick: \['3', '7'\];") as seen:
        mixed = from_mlflow(**exp)
    assert mixed.steps_per_tick is None
    assert seen[0].filename == __file__  # the caller's line, not the library's
    # The warning's advice: the runs of one clock, on their own grid.
    ids = mixed.info.index[mixed.info["tags.optax_lode.steps_per_tick"] == "3"]
    one = Trajectories.from_dataframe(
        mixed.select(list(ids)).to_dataframe(), steps_per_tick=3
    )
    assert (one.num_runs, one.num_ticks, one.steps_per_tick) == (1, 8, 3)


def test_export_keeps_a_negated_metric_negated(store):
    """Runs negated for a lower-is-better metric came back from MLflow as
    not negated: a model fitted to them forgot it."""
    t = np.arange(6)
    src = Trajectories.from_arrays(
        [np.exp(-t / 4) + 0.1] * 2, [1.5 - t / 8] * 2, [np.full(6, 1e-2)] * 2,
        run_ids=["a", "b"], steps_per_tick=2,
    ).with_negated_metric()  # fmt: skip
    exp = dict(experiment="negated", tracking_uri=store["uri"])
    log_trajectories_to_mlflow(src, **exp)
    back = from_mlflow(**exp)
    assert back.metric_negated
    np.testing.assert_allclose(back.metric, src.metric, rtol=1e-6)
    # Not negated: no tag, nothing read; mixed signs: said.
    plain = Trajectories.from_arrays(
        src.loss[:1], -src.metric[:1], src.lr[:1], run_ids=["c"], steps_per_tick=2
    )
    log_trajectories_to_mlflow(plain, experiment="plain", tracking_uri=store["uri"])
    assert not from_mlflow(experiment="plain", tracking_uri=store["uri"]).metric_negated
    log_trajectories_to_mlflow(plain, **exp)
    with pytest.warns(UserWarning, match=r"2 of the 3 runs were exported with"):
        mixed = from_mlflow(**exp)
    assert not mixed.metric_negated


def test_imported_clock_of_native_old_and_odd_runs(store):
    """A run not exported by optax-lode counts optimizer steps; an export
    from before the clock tag is of an unknown clock; a tag that is not a
    count, or runs on different clocks, leave it unknown with a warning."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    t = np.arange(6)
    src = Trajectories.from_arrays(
        [np.exp(-t / 4) + 0.1] * 2, [t / 6] * 2, [np.full(6, 1e-2)] * 2,
        run_ids=["a", "b"], steps_per_tick=5,
    )  # fmt: skip

    def export(name, change=None):
        exp = dict(experiment=name, tracking_uri=store["uri"])
        ids = log_trajectories_to_mlflow(src, **exp)
        for run_id in ids:
            if change is not None:
                change(run_id)
        return exp

    def untag(*keys):
        return lambda run_id: [client.delete_tag(run_id, k) for k in keys]

    native = export("native", untag("optax_lode.steps_per_tick", "optax_lode.run_id"))
    assert from_mlflow(**native).steps_per_tick == 1  # a step per tick, as logged
    old = export("old export", untag("optax_lode.steps_per_tick"))
    assert from_mlflow(**old).steps_per_tick is None
    for bad in ("0", "auto"):
        odd = export(
            f"tag {bad}",
            lambda run_id, b=bad: client.set_tag(
                run_id, "optax_lode.steps_per_tick", b
            ),
        )
        with pytest.warns(UserWarning, match=f"steps_per_tick: \\['{bad}'\\]"):
            assert from_mlflow(**odd).steps_per_tick is None
    # Native runs and exported ones in one experiment: different clocks.
    log_trajectories_to_mlflow(src, **native)
    with pytest.warns(UserWarning, match=r"\['1', '5'\]; '1' for runs not exported"):
        assert from_mlflow(**native).steps_per_tick is None


def _many_runs(uri, experiment, runs, ticks):
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(experiment)
    for r in range(runs):
        steps, loss, lr = _curves(r, ticks)
        n = ticks if r % 10 else ticks // 2  # every tenth run stops early
        _log(
            client,
            exp,
            f"rün-{r}",
            steps[:n],
            {
                "train_loss": (steps[:n], loss[:n]),
                "val_accuracy": (steps[9:n:10], np.linspace(0, 1, ticks)[9:n:10]),
                "lr": (steps[:n], lr[:n]),
            },
            params={"seed": r},
        )


def test_import_many_runs(store):
    # Writing through MLflow costs ~0.1 s a run here: hundreds are in the slow test.
    _many_runs(store["uri"], "many", runs=30, ticks=20)
    traj = from_mlflow("many", tracking_uri=store["uri"])
    assert (traj.num_runs, traj.num_ticks) == (30, 20)
    lengths = dict(zip(traj.info["run_name"], traj.lengths, strict=True))
    assert lengths == {f"rün-{r}": 10 if r % 10 == 0 else 20 for r in range(30)}


@pytest.mark.slow
def test_import_100_runs_x_600_ticks(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    _many_runs(uri, "big", runs=100, ticks=600)
    start = time.perf_counter()
    traj = from_mlflow("big", tracking_uri=uri)
    elapsed = time.perf_counter() - start
    print(f"\nfrom_mlflow: 100 runs x 600 ticks imported in {elapsed:.2f} s")
    assert (traj.num_runs, traj.num_ticks) == (100, 600)
    assert int(traj.mask.sum()) == 90 * 600 + 10 * 300
    assert elapsed < 60


def test_lode_diagnostics_logged_to_mlflow_and_tensorboard(
    store, tmp_path, monkeypatch
):
    import jax
    import optax
    from _lode_helpers import ScriptedModel, fake_metric, mlp_problem

    from optax_lode.tracking import LodeDiagnosticsLogger, lode_diagnostics
    from optax_lode.transform import lode_schedule

    params, loss_fn, (x, y) = mlp_problem()
    tx = optax.chain(
        optax.sgd(1.0), lode_schedule(ScriptedModel(T=20, mu=4), total_steps=20, n=8)
    )
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, s = tx.update(g, s, p, value=loss, val_metric=fake_metric(loss))
        return optax.apply_updates(p, u), s

    client = MlflowClient(tracking_uri=store["uri"])
    run_id = client.create_run(client.create_experiment("live")).info.run_id
    logged = []
    with LodeDiagnosticsLogger(
        mlflow=run_id, tracking_uri=store["uri"], tensorboard=tmp_path / "tb"
    ) as log:
        for i in range(13):
            params, state = step(params, state)
            if i % 4 == 0 and i > 0:  # decisions on the first step of ticks 4, 8, 12
                logged.append(log(state, i))
    assert [d["decisions"] for d in logged] == [1.0, 2.0, 3.0]
    assert logged[-1] == lode_diagnostics(state)
    assert logged[-1]["learning_rate"] == float(optax.tree.get(state, "learning_rate"))
    history = client.get_metric_history(run_id, "lode/decisions")
    assert [(m.step, m.value) for m in history] == [(4, 1.0), (8, 2.0), (12, 3.0)]
    lr = client.get_metric_history(run_id, "lode/learning_rate")
    np.testing.assert_allclose(
        [m.value for m in lr], [d["learning_rate"] for d in logged]
    )
    # The TensorBoard copy reads back through our own importer's reader.
    from optax_lode.tracking import read_tensorboard_records

    tb, _ = read_tensorboard_records(
        tmp_path / "tb", keys=["lode/fallbacks", "lode/tick"]
    )
    ticks = tb.loc[tb["key"] == "lode/tick"]
    assert ticks["step"].tolist() == [4, 8, 12]
    np.testing.assert_allclose(ticks["value"], [d["tick"] for d in logged])

    # mlflow=True: the active run of MLflow's fluent API.
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    with mlflow.start_run(experiment_id=client.create_experiment("fluent")) as run:
        LodeDiagnosticsLogger(mlflow=True)(state, 11)
    history = client.get_metric_history(run.info.run_id, "lode/fallbacks")
    assert [(m.step, m.value) for m in history] == [(11, logged[-1]["fallbacks"])]


def test_lode_diagnostics_errors(store):
    from optax_lode.tracking import LodeDiagnosticsLogger, lode_diagnostics

    with pytest.raises(ValueError, match="no LodeState"):
        lode_diagnostics({"adam": ()})
    with pytest.raises(ValueError, match="nothing to log to"):
        LodeDiagnosticsLogger()
    with pytest.raises(ValueError, match="none is active"):
        LodeDiagnosticsLogger(mlflow=True, tracking_uri=store["uri"])


def test_a_deleted_experiment_says_so(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("gone")
    steps, loss, lr = _curves(0, 10)
    _log(client, exp, "r", steps, {"train_loss": (steps, loss), "lr": (steps, lr)})
    client.delete_experiment(exp)
    with pytest.raises(ValueError, match="is deleted; restore it"):
        from_mlflow("gone", tracking_uri=uri)


def test_a_refused_export_marks_its_run_failed(store):
    """A run MLflow refuses (a param name with parentheses) is marked FAILED,
    not left RUNNING."""
    mlflow = pytest.importorskip("mlflow")
    src = Trajectories.from_arrays(
        np.ones((2, 4)),
        np.zeros((2, 4)),
        np.full((2, 4), 0.1),
        run_ids=["first", "second"],
        info={"lr(peak)": [0.1, 0.2]},
    )
    with pytest.raises(mlflow.exceptions.MlflowException):
        log_trajectories_to_mlflow(src, experiment="refused", tracking_uri=store["uri"])
    client = MlflowClient(tracking_uri=store["uri"])
    exp = client.get_experiment_by_name("refused").experiment_id
    status = {r.info.run_name: r.info.status for r in client.search_runs([exp])}
    assert status == {"first": "FAILED"}


def test_a_summary_that_is_not_a_number_stops_the_export_before_logging(store):
    """A summary metric that is no number failed after its run was created:
    the run stayed RUNNING, and the error named neither run nor column."""
    src = Trajectories.from_arrays(
        np.ones((2, 4)),
        np.full((2, 4), 0.5),
        np.full((2, 4), 0.1),
        run_ids=["a", "b"],
        info={"test_metric": [0.9, "n/a"]},
    )
    with pytest.raises(ValueError, match=r"run 'b': info column 'test_metric'.*'n/a'"):
        log_trajectories_to_mlflow(src, experiment="summary", tracking_uri=store["uri"])
    client = MlflowClient(tracking_uri=store["uri"])
    exp = client.get_experiment_by_name("summary").experiment_id
    assert client.search_runs([exp]) == []


def test_an_interrupted_export_is_logged_again_by_skip(store, monkeypatch):
    """MLflow sends a large run's tags with its first 1000 values: an export
    interrupted after that left a FAILED run with the export tag holding part
    of the run, which existing="skip" took for logged: the run was lost."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    ticks = 400  # 1200 values a run: two requests each
    src = Trajectories.from_arrays(
        np.ones((2, ticks)),
        np.full((2, ticks), 0.5),
        np.full((2, ticks), 0.1),
        run_ids=["a", "b"],
    )
    log_batch, calls = SqlAlchemyStore.log_batch, []

    def interrupted(self, run_id, metrics, params, tags):
        calls.append(run_id)
        if len(calls) == 4:  # run b's second request: Ctrl-C
            raise KeyboardInterrupt
        return log_batch(self, run_id, metrics, params, tags)

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        log_trajectories_to_mlflow(
            src, experiment="interrupted", tracking_uri=store["uri"]
        )
    monkeypatch.undo()
    client = MlflowClient(tracking_uri=store["uri"])
    exp = client.get_experiment_by_name("interrupted").experiment_id
    (half,) = [r for r in client.search_runs([exp]) if r.info.run_name == "b"]
    assert half.info.status == "FAILED"
    assert half.data.tags["optax_lode.run_id"] == "b"  # tagged, yet partial
    ids = log_trajectories_to_mlflow(
        src, experiment="interrupted", tracking_uri=store["uri"], existing="skip"
    )
    status = {r.info.run_id: r.info.status for r in client.search_runs([exp])}
    assert [status[i] for i in ids] == ["FINISHED", "FINISHED"]
    assert ids[1] != half.info.run_id
    back = from_mlflow("interrupted", tracking_uri=store["uri"], tick=1)
    assert list(back.info["run_name"]) == ["a", "b"]
    assert back.lengths.tolist() == [ticks, ticks]


def test_a_sqlite_store_that_cannot_be_created_fails_at_once(tmp_path, monkeypatch):
    """MLflow retries a store it cannot open for minutes (SQLAlchemy
    warnings): a sqlite:/// file in a missing or read-only directory is
    refused before MLflow is asked."""
    from optax_lode.cli import main
    from optax_lode.tracking._deps import mlflow_client

    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'ml.db'}"
    with pytest.raises(OSError, match="no such directory"):
        mlflow_client(missing, what="test")
    t0 = time.perf_counter()
    out = tmp_path / "runs.parquet"
    argv = ["sweep", "--task", "nqm", "--out", str(out), "--mlflow", missing]
    assert main(argv) == 2
    assert time.perf_counter() - t0 < 30
    assert not out.exists()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode),
    )
    with pytest.raises(OSError, match="not writable"):
        mlflow_client(f"sqlite:///{tmp_path / 'ml.db'}", what="test")
