"""MLflow import (``from_mlflow``) and export (``log_trajectories_to_mlflow``).

Both talk to MLflow only through its public ``MlflowClient``, so they work with
any tracking URI MLflow understands: the embedded SQLite store
(``sqlite:///mlflow.db``, MLflow's own default: no server to start) or an
``http(s)://`` tracking server. (MLflow 3 refuses ``file:`` stores unless
``MLFLOW_ALLOW_FILE_STORE=true``; ``mlflow migrate-filestore`` converts one.)
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from optax_lode._warn import caller_stacklevel
from optax_lode.tracking._align import align_to_ticks, to_trajectories
from optax_lode.tracking._deps import mlflow_client, require, sqlite_path

if TYPE_CHECKING:
    from optax_lode.runs import Trajectories

__all__ = ["from_mlflow", "log_trajectories_to_mlflow", "read_mlflow_records"]

# The tag an export puts on each run: optimizer steps per (exported) tick.
_CLOCK_TAG = "optax_lode.steps_per_tick"
_UNKNOWN = "unknown"
# The tag of every exported run: its original run id.
_EXPORT_TAG = "optax_lode.run_id"
# The tag of an exported run whose metric was negated (Trajectories.metric_negated).
_NEGATED_TAG = "optax_lode.metric_negated"


def _check_sqlite_exists(tracking_uri: str | None) -> None:
    """Refuses to read a SQLite store that does not exist.

    MLflow would silently create an empty database and then report a missing
    experiment, which hides the real mistake (a wrong path).
    """
    if tracking_uri is None:
        mlflow = require("mlflow", package="mlflow-skinny", what="from_mlflow")
        tracking_uri = mlflow.get_tracking_uri()
    path = sqlite_path(tracking_uri)
    if path is None or path.startswith(":memory:") or "?" in tracking_uri:
        return
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no MLflow store at {tracking_uri!r}: the file {path!r} does not exist. "
            "Pass tracking_uri= (or set MLFLOW_TRACKING_URI) to the store the runs "
            "were logged to, e.g. 'sqlite:///path/to/mlflow.db' or "
            "'http://127.0.0.1:5000'."
        )


def _resolve_experiment(client, experiment: str, tracking_uri: str) -> str:
    """The experiment id of ``experiment`` (a name, or an id), or a clear error."""
    exp = client.get_experiment_by_name(str(experiment))
    if exp is None and str(experiment).isdigit():
        from mlflow.exceptions import MlflowException

        try:
            exp = client.get_experiment(str(experiment))
        except MlflowException:
            exp = None
    if exp is None:
        names = [e.name for e in client.search_experiments(max_results=50)]
        raise ValueError(
            f"no MLflow experiment named {experiment!r} at tracking URI "
            f"{tracking_uri!r}. Experiments there: {names or 'none'}. Check the "
            "name, or pass tracking_uri= (or set MLFLOW_TRACKING_URI) to the store "
            "the runs were logged to."
        )
    if getattr(exp, "lifecycle_stage", "active") == "deleted":
        raise ValueError(
            f"MLflow experiment {experiment!r} at tracking URI {tracking_uri!r} is "
            "deleted; restore it first (`mlflow experiments restore "
            f"--experiment-id {exp.experiment_id}`)."
        )
    return exp.experiment_id


def _numeric_or_str(values: pd.Series) -> pd.Series:
    """MLflow params are strings: give numbers (and booleans, as Python's
    ``str`` writes them) back where every value is one."""
    present = values.dropna().astype(str)
    if len(present) and present.isin(["True", "False"]).all():
        return values.map({"True": True, "False": False}).astype(
            "boolean" if values.isna().any() else bool
        )
    if present.str.fullmatch(r"[+-]?\d+").all():
        ints = pd.to_numeric(values, errors="coerce")
        return ints.astype("Int64" if ints.isna().any() else np.int64)
    converted = pd.to_numeric(values, errors="coerce")
    if converted[values.notna()].notna().all():
        return converted
    return values


# MLflow's SQL stores cannot hold infinities: they store +-inf as +-max float64.
_SQL_INF = np.finfo(np.float64).max


def _history_frame(run_id, key, history) -> pd.DataFrame:
    n = len(history)
    return pd.DataFrame(
        {
            "run": run_id,
            "key": key,
            "step": np.fromiter((m.step for m in history), np.int64, n),
            "value": np.fromiter((m.value for m in history), np.float64, n),
            "order": np.fromiter((m.timestamp for m in history), np.int64, n),
        }
    )


def _sql_histories(client, run_ids: list[str], keys: Sequence[str]):
    """All histories in a few queries, for MLflow's SQL stores (SQLite, ...).

    ``get_metric_history`` costs one query and one ORM object per value: about
    10 s for 100 runs x 600 ticks. Selecting the columns of MLflow's own metric
    table returns the same rows in well under a second. Any mismatch with the
    installed MLflow (it is not public API) returns None, and the caller falls
    back to ``get_metric_history``.
    """
    try:
        from mlflow.store.tracking.dbmodels.models import SqlMetric
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
        if not isinstance(store, SqlAlchemyStore):
            return None
        cols = (
            SqlMetric.run_uuid,
            SqlMetric.key,
            SqlMetric.step,
            SqlMetric.value,
            SqlMetric.is_nan,
            SqlMetric.timestamp,
        )
        rows = []
        with store.ManagedSessionMaker() as session:
            # Chunks keep the IN list under every database's parameter limit.
            for i in range(0, len(run_ids), 500):
                chunk = run_ids[i : i + 500]
                rows.extend(
                    session.query(*cols)
                    .filter(
                        SqlMetric.run_uuid.in_(chunk), SqlMetric.key.in_(list(keys))
                    )
                    .order_by(
                        SqlMetric.run_uuid,
                        SqlMetric.key,
                        # The order get_metric_history uses: logging order.
                        SqlMetric.timestamp,
                        SqlMetric.step,
                        SqlMetric.value,
                    )
                    .all()
                )
    except Exception:  # any internal mismatch: use the public API
        return None
    names = ("run", "key", "step", "value", "is_nan", "order")
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    frame = pd.DataFrame(dict(zip(names, columns, strict=True)))
    value = np.asarray(frame["value"], np.float64).copy()
    value[np.asarray(frame["is_nan"], bool)] = np.nan
    frame["value"] = value
    return frame.drop(columns="is_nan").astype({"step": np.int64, "order": np.int64})


def _experiment_runs(client, exp_id: str) -> list:
    """Every run of an experiment, oldest first (MLflow pages 1000 at a time)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp_id],
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def read_mlflow_records(
    experiment: str,
    *,
    keys: Sequence[str],
    tracking_uri: str | None = None,
    statuses: str | Sequence[str] = ("FINISHED",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reads the metric histories of an experiment's runs.

    Args:
        experiment: experiment name (or id).
        keys: the metric keys to read.
        tracking_uri: MLflow tracking URI; ``None`` uses MLflow's own resolution
            (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
        statuses: run statuses to read (``FINISHED``, ``FAILED``, ``KILLED``,
            ``RUNNING``, ``SCHEDULED``): one, or a sequence of them.

    Returns:
        ``(records, info)``: the records (columns ``run, key, step, value,
        order``, order being MLflow's timestamp) and one row per run, indexed by
        run id, with ``run_name``, ``status``, the run's params (numbers where they
        parse), the latest value of every other metric it logged and its tags
        other than MLflow's own (``mlflow.*``) as strings in columns
        ``tags.<name>``, as ``mlflow.search_runs`` names them.

    Raises:
        ImportError: if MLflow is not installed (install the tracking extra).
        FileNotFoundError: if a ``sqlite:///`` store does not exist.
        ValueError: on an unknown experiment or status, a deleted experiment,
            or an experiment without runs of the requested statuses.

    Examples:
        >>> records, info = read_mlflow_records(  # doctest: +SKIP
        ...     "digits-sweep", keys=("train_loss", "val_accuracy", "lr"),
        ...     tracking_uri="sqlite:///mlflow.db")
        >>> records.columns.tolist()  # doctest: +SKIP
        ['run', 'key', 'step', 'value', 'order']
    """
    valid = {"FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED"}
    if isinstance(statuses, str):  # one status, not its letters
        statuses = (statuses,)
    statuses = tuple(str(s).upper() for s in statuses)
    unknown = [s for s in statuses if s not in valid]
    if unknown:
        raise ValueError(
            f"unknown run status(es) {unknown}; use some of {sorted(valid)}."
        )
    _check_sqlite_exists(tracking_uri)
    client = mlflow_client(tracking_uri, what="from_mlflow")
    uri = client.tracking_uri
    exp_id = _resolve_experiment(client, experiment, uri)

    runs = _experiment_runs(client, exp_id)
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs} - {None}
    seen_status = sorted({r.info.status for r in runs})
    runs = [r for r in runs if r.info.status in statuses]
    # A sweep's parent run (e.g. from a tuner) groups its children and logs no
    # curves of its own: it is not a training run.
    runs = [
        r
        for r in runs
        if not (r.info.run_id in parents and not set(keys) & set(r.data.metrics))
    ]
    if not runs:
        raise ValueError(
            f"MLflow experiment {experiment!r} at {uri!r} has no run with status in "
            f"{list(statuses)} (statuses present: {seen_status or 'no runs at all'}). "
            "Pass statuses=(...) to include others."
        )

    run_ids = [r.info.run_id for r in runs]
    records = _sql_histories(client, run_ids, keys)
    if records is None:
        frames = [
            _history_frame(
                r.info.run_id, key, client.get_metric_history(r.info.run_id, key)
            )
            for r in runs
            for key in keys
            if key in r.data.metrics
        ]
        records = pd.concat(frames, ignore_index=True) if frames else None
    if records is None or records.empty:
        records = pd.DataFrame(columns=["run", "key", "step", "value", "order"])
    value = records["value"].to_numpy(np.float64).copy()
    value[np.abs(value) >= _SQL_INF] = (
        np.sign(value[np.abs(value) >= _SQL_INF]) * np.inf
    )
    records["value"] = value
    # A run missing a key must show what it did log, for the error message: its
    # other metrics appear as rows (their keys are not aligned, so harmless).
    others = [
        {"run": r.info.run_id, "key": k, "step": 0, "value": v, "order": 0}
        for r in runs
        if not set(keys) <= set(r.data.metrics)
        for k, v in r.data.metrics.items()
        if k not in keys
    ]
    bare = [
        {"run": r.info.run_id, "key": "", "step": 0, "value": np.nan, "order": 0}
        for r in runs
        if not r.data.metrics
    ]
    if others or bare:
        records = pd.concat([records, pd.DataFrame(others + bare)], ignore_index=True)
    # Runs in the experiment's order (start time), which align_to_ticks keeps.
    rank = records["run"].map({rid: i for i, rid in enumerate(run_ids)})
    records = records.iloc[np.argsort(rank.to_numpy(), kind="stable")]
    records = records.reset_index(drop=True)
    info_rows = {}
    for run in runs:
        row = {"run_name": run.info.run_name, "status": run.info.status}
        row.update(run.data.params)
        row.update({k: v for k, v in run.data.metrics.items() if k not in keys})
        # Tags as MLflow's own search_runs names them; MLflow's system tags
        # (mlflow.*) left out. Kept as strings: a tag is often an id ("007").
        row.update(
            {
                f"tags.{k}": v
                for k, v in run.data.tags.items()
                if not k.startswith("mlflow.")
            }
        )
        info_rows[run.info.run_id] = row
    info = pd.DataFrame.from_dict(info_rows, orient="index")
    for col in info.columns:
        if col not in ("run_name", "status") and not col.startswith("tags."):
            info[col] = _numeric_or_str(info[col])
    return records, info


def from_mlflow(
    experiment: str,
    *,
    tracking_uri: str | None = None,
    loss: str = "train_loss",
    metric: str = "val_accuracy",
    lr: str = "lr",
    tick: int | None = None,
    first_step: int | None = None,
    num_ticks: int | None = None,
    statuses: str | Sequence[str] = ("FINISHED",),
    min_ticks: int = 2,
    early_stopped: Literal["mask", "exclude"] = "mask",
    on_invalid: Literal["raise", "skip"] = "raise",
) -> Trajectories:
    """Reads every finished run of an MLflow experiment onto one tick grid.

    Each run's metric histories for ``loss``, ``metric`` and ``lr`` are aligned by
    :func:`~optax_lode.tracking.align_to_ticks`: the loss and the learning rate
    are averaged over each tick's steps, the metric is carried forward from its
    last logged value. Runs that stopped early are masked after their last tick
    (``early_stopped="exclude"`` drops them with a warning).

    Args:
        experiment: the experiment's name (or id).
        tracking_uri: MLflow tracking URI (``sqlite:///path/mlflow.db``,
            ``http://host:port``, ...); ``None`` uses MLflow's own resolution:
            ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working
            directory.
        loss: metric key of the training loss.
        metric: metric key of the validation metric (higher is better; a
            lower-is-better one is negated after reading:
            ``traj.with_negated_metric()``).
        lr: metric key of the learning rate.
        tick: MLflow steps per tick; ``None`` means one tick per loss record
            when every run logs alike (the loss spacing most runs share; runs
            that differ are named in a warning: ``align_to_ticks``).
        first_step: the step that opens tick 0; default the first loss step.
        num_ticks: length of the tick grid; default the longest valid run's.
        statuses: run status(es) to read; add ``"FAILED"``/``"KILLED"`` to
            learn from crashed or stopped runs too (they are masked after their
            end).
        min_ticks: fewest ticks with a loss record a run may have.
        early_stopped: ``"mask"`` (default) or ``"exclude"`` runs that end early.
        on_invalid: ``"raise"`` (default) or ``"skip"`` (with a warning) runs
            that cannot be aligned.

    Returns:
        The runs, ``run_ids`` being MLflow run ids. Their ``steps_per_tick``
        is the tick in MLflow steps, taken as optimizer steps (MLflow's step
        is usually the optimizer step; where it counts epochs or samples,
        correct it with ``traj.with_steps_per_tick(k)``), times the tag
        ``optax_lode.steps_per_tick`` of runs that
        :func:`log_trajectories_to_mlflow` exported (one step per tick;
        unknown if their tag says so, for an export without the tag, and for
        runs on different clocks, with a warning). Their
        ``metric_negated`` is true when every run is an export of negated
        runs (tag ``optax_lode.metric_negated``). ``info`` holds ``run_name``,
        ``status``, the params (numbers where they parse; ``schedule`` and
        ``seed`` if logged), the latest value of every other metric, e.g.
        ``test_metric``, and the tags other than MLflow's own as strings, in
        columns ``tags.<name>`` (e.g. ``tags.optax_lode.run_id``, the original
        id of a run that :func:`log_trajectories_to_mlflow` exported).

    Raises:
        ImportError: if MLflow is not installed (install the tracking extra).
        FileNotFoundError: if a ``sqlite:///`` store does not exist.
        ValueError: (from :func:`read_mlflow_records`) an unknown experiment
            (listing those that exist), a deleted one, an unknown status, or
            no run with one of ``statuses``; (from :func:`align_to_ticks`) a
            malformed argument (``tick``, ``num_ticks``, ``min_ticks``,
            ``early_stopped``, ``on_invalid``; ``loss``, ``metric`` and ``lr``
            not three different keys) or no run left (all skipped as invalid,
            or all excluded as stopped early).
        RunAlignmentError: naming every run with a missing key, too few points or
            non-monotone steps.

    Warns:
        UserWarning: runs on different clocks (their ``steps_per_tick`` is
            left unknown), or an experiment of which only some runs are
            exports of negated runs (their metrics' signs differ).

    Examples:
        >>> from optax_lode.tracking import from_mlflow
        >>> traj = from_mlflow(  # doctest: +SKIP
        ...     "resnet-sweep", tracking_uri="sqlite:///mlflow.db",
        ...     loss="train/loss", metric="val/acc", lr="lr", tick=50)
    """
    records, info = read_mlflow_records(
        experiment,
        keys=(loss, metric, lr),
        tracking_uri=tracking_uri,
        statuses=statuses,
    )
    names = info["run_name"].dropna().to_dict()
    table = align_to_ticks(
        records,
        loss=loss,
        metric=metric,
        lr=lr,
        steps_per_tick=tick,
        first_step=first_step,
        num_ticks=num_ticks,
        min_ticks=min_ticks,
        early_stopped=early_stopped,
        on_invalid=on_invalid,
        names=names,
    )
    return _exported_negation(_exported_clock(to_trajectories(table, info, num_ticks)))


def _exported_clock(traj: Trajectories) -> Trajectories:
    """The runs' clock in optimizer steps. A run that
    :func:`log_trajectories_to_mlflow` exported logs one step per tick and
    carries its ``steps_per_tick`` as a tag (an export without it, from before
    the tag, is of an unknown clock); in any other run a step is taken to be
    an optimizer step. Runs on different clocks leave it unknown."""
    if traj.steps_per_tick is None:
        return traj
    info = traj.info
    exported = info.get(f"tags.{_EXPORT_TAG}", pd.Series(np.nan, info.index))
    tagged = info.get(f"tags.{_CLOCK_TAG}", pd.Series(np.nan, info.index))
    steps = {
        str(tag) if pd.notna(tag) else (_UNKNOWN if pd.notna(run) else "1")
        for run, tag in zip(exported, tagged, strict=True)
    }
    if steps == {_UNKNOWN}:
        return traj.with_steps_per_tick(None)
    step = next(iter(steps)) if len(steps) == 1 else None
    if step is None or not step.isdigit() or int(step) < 1:
        warnings.warn(
            f"the runs' MLflow steps are not all the same number of optimizer "
            f"steps (tags {_CLOCK_TAG}: {sorted(steps)}; '1' for runs not "
            "exported by optax-lode): their steps_per_tick is left unknown. "
            "Runs on different clocks do not belong on one tick grid: keep "
            "them in separate experiments, or rebuild the runs of one clock "
            f"(by traj.info['tags.{_CLOCK_TAG}']) on their own grid: "
            "Trajectories.from_dataframe(traj.select(ids).to_dataframe(), "
            "steps_per_tick=k), k being their tag times the tick read with.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
        return traj.with_steps_per_tick(None)
    return traj.with_steps_per_tick(traj.steps_per_tick * int(step))


def _exported_negation(traj: Trajectories) -> Trajectories:
    """The runs, marked negated when every one is an export of negated runs
    (tag ``optax_lode.metric_negated``). Some but not all: their metrics have
    different signs, which no flag can mend (a warning says so)."""
    tags = traj.info.get(f"tags.{_NEGATED_TAG}")
    if tags is None:
        return traj
    negated = tags.astype(str).eq("true").to_numpy()
    if negated.all():
        return dataclasses.replace(traj, info=traj.info.copy(), metric_negated=True)
    if negated.any():
        warnings.warn(
            f"{int(negated.sum())} of the {negated.size} runs were exported with "
            f"their metric negated (tag {_NEGATED_TAG}), the others were not: "
            "their metrics have opposite signs on one grid. Read them apart "
            f"(by traj.info['tags.{_NEGATED_TAG}']) and negate one part "
            "(traj.select(ids).with_negated_metric()).",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    return traj


def _logged_before(client, exp_id: str, run_ids) -> dict[str, str]:
    """The MLflow run id of each of ``run_ids`` the experiment already holds
    (tag ``optax_lode.run_id``; the earliest where logged more than once).

    Only a ``FINISHED`` run is logged: MLflow may send a large run's tags in
    the first of several requests, so an export interrupted after it (a
    ``FAILED`` run, or ``RUNNING`` if the process was killed) is tagged but
    holds only part of the run.
    """
    wanted, found = set(map(str, run_ids)), {}
    for r in _experiment_runs(client, exp_id):
        rid = r.data.tags.get(_EXPORT_TAG)
        if rid in wanted and r.info.status == "FINISHED":
            found.setdefault(rid, r.info.run_id)
    return found


def log_trajectories_to_mlflow(
    traj: Trajectories,
    *,
    experiment: str,
    tracking_uri: str | None = None,
    loss: str = "train_loss",
    metric: str = "val_accuracy",
    lr: str = "lr",
    summary_metrics: Sequence[str] = ("test_metric",),
    tags: Mapping[str, str] | None = None,
    existing: Literal["warn", "skip", "error"] = "warn",
) -> list[str]:
    """Logs every run of ``traj`` as a finished MLflow run, one step per tick.

    Each run gets its ``info`` columns as params (``schedule``, ``peak_lr``,
    ``seed``, ``task``, ...; missing values are skipped), the columns named in
    ``summary_metrics`` as single metrics, and ``loss``/``metric``/``lr`` at
    step = tick for every valid tick (masked ticks are not logged, so a run
    that stopped early ends early in MLflow too). ``traj.steps_per_tick``
    becomes the tag ``optax_lode.steps_per_tick`` of every run (``unknown``
    for ``None``), and runs whose metric was negated
    (``traj.metric_negated``) get the tag ``optax_lode.metric_negated`` =
    ``true`` (their negated metric is logged under ``metric``). The runs can be
    browsed in the MLflow UI and read back with :func:`from_mlflow` (with the
    same key names), which reads the tags.

    Args:
        traj: the runs.
        experiment: experiment name; created if it does not exist.
        tracking_uri: MLflow tracking URI; ``None`` uses MLflow's default
            (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
        loss: the metric key to log the training loss under.
        metric: the metric key to log the validation metric under.
        lr: the metric key to log the learning rate under.
        summary_metrics: ``info`` columns logged as metrics rather than params.
        tags: extra tags for every run.
        existing: what to do with runs the experiment already holds (exported
            before under the same id, tag ``optax_lode.run_id``; a re-run
            sweep): ``"warn"`` (default) logs them again with a warning
            (reading the experiment back then sees them twice), ``"skip"``
            keeps the logged ones and logs only the others, ``"error"``
            raises before logging anything. Only ``FINISHED`` runs count: an
            interrupted export's partial run (``FAILED``) is logged again.

    Returns:
        The MLflow run ids, in the order of ``traj.run_ids`` (for a skipped
        run, the id it was logged under before).

    Raises:
        ImportError: if MLflow is not installed.
        ValueError: with ``existing="error"``, if some runs were logged before;
            on an unknown ``existing``; on a ``summary_metrics`` value that is
            not a number (before any run is logged).
        mlflow.exceptions.MlflowException: if MLflow refuses a run's data (the
            run is then marked FAILED, and the runs before it stay logged).

    Examples:
        >>> ids = log_trajectories_to_mlflow(  # doctest: +SKIP
        ...     traj, experiment="digits-sweep", tracking_uri="sqlite:///mlflow.db")
    """
    if existing not in ("warn", "skip", "error"):
        raise ValueError(
            f"existing must be 'warn', 'skip' or 'error', got {existing!r}."
        )
    client = mlflow_client(tracking_uri, what="log_trajectories_to_mlflow")
    from mlflow.entities import Metric, Param, RunTag

    exp = client.get_experiment_by_name(experiment)
    exp_id = (
        exp.experiment_id if exp is not None else client.create_experiment(experiment)
    )
    before = {} if exp is None else _logged_before(client, exp_id, traj.run_ids)
    if before and existing != "skip":
        again = [r for r in map(str, traj.run_ids) if r in before]
        what = (
            f"MLflow experiment {experiment!r} already holds {len(again)} of these "
            f"runs (tag optax_lode.run_id, e.g. {again[:3]})"
        )
        if existing == "error":
            raise ValueError(
                f"{what}. Pass existing='skip' to log only the others, log to a "
                "new experiment, or delete the old runs first."
            )
        warnings.warn(
            f"{what}: they are logged again, and reading the experiment back "
            "sees them twice. Pass existing='skip' to keep the logged ones, log "
            "to a new experiment, or delete the old runs first.",
            UserWarning,
            stacklevel=2,
        )
        before = {}
    now = int(time.time() * 1000)
    # Every run's params and summaries first: a value MLflow cannot take as a
    # metric stops the export before any run is logged, not halfway.
    todo = []
    for i, rid in enumerate(traj.run_ids):
        if str(rid) in before:
            continue
        row = traj.info.loc[rid] if rid in traj.info.index else pd.Series(dtype=object)
        params, summaries = [], []
        for col, value in row.items():
            if value is None or (np.ndim(value) == 0 and pd.isna(value)):
                continue
            if col in ("run_name", "status"):  # MLflow's own run attributes
                continue
            if col in summary_metrics:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"run {rid!r}: info column {col!r} is logged as a metric "
                        f"(summary_metrics) but holds {value!r}, not a number; "
                        "make it a number (or missing), or leave it out of "
                        "summary_metrics to log it as a param. Nothing was logged."
                    ) from None
                summaries.append(Metric(str(col), number, now, 0))
            else:
                params.append(Param(str(col), str(value)))
        todo.append((i, rid, params, summaries))
    logged = {}
    run_tags = [RunTag(_CLOCK_TAG, str(traj.steps_per_tick or _UNKNOWN))]
    if traj.metric_negated:
        run_tags.append(RunTag(_NEGATED_TAG, "true"))
    series = ((loss, traj.loss), (metric, traj.metric), (lr, traj.lr))
    for i, rid, params, summaries in todo:
        # Distinct start times keep traj's run order when read back (MLflow
        # lists runs by start time).
        run = client.create_run(
            exp_id, start_time=now + i, run_name=str(rid), tags=dict(tags or {})
        )
        run_id = run.info.run_id
        ticks = np.nonzero(traj.mask[i])[0]
        metrics = [
            Metric(key, float(arr[i, t]), now + int(t), int(t))
            for t in ticks
            for key, arr in series
        ]
        try:
            client.log_batch(
                run_id,
                metrics=metrics + summaries,
                params=params,
                tags=[RunTag(_EXPORT_TAG, str(rid)), *run_tags],
            )
        except BaseException:
            # Not a RUNNING run forever (read back only with statuses=RUNNING);
            # a FAILED run is not "logged" for existing="skip".
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
        logged[i] = run_id
    run_ids = [
        logged[i] if i in logged else before[str(rid)]
        for i, rid in enumerate(traj.run_ids)
    ]
    return run_ids
