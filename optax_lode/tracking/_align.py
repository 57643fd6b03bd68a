"""Put experiment-tracker logs on the tick grid (pure pandas, no tracker needed).

Trackers record each key at its own steps: a loss every step or every few steps, a
validation metric once an epoch, a learning rate whenever the user remembered to.
:func:`align_to_ticks` turns such records into the long-format table
``Trajectories.from_dataframe`` reads, one row per (run, tick), under the one clock
of docs/algorithm.md:

- tick ``t`` holds the tracker steps ``s`` with
  ``(s - first_step) // steps_per_tick == t``;
- the **loss** of a tick is the mean of the loss records in it;
- the **metric** of a tick is the last metric record at or before the tick's end,
  carried forward over ticks without one; ticks before a run's first metric record
  take that first value (metrics logged once an epoch would otherwise hide the
  start of every run);
- the **learning rate** of a tick is the mean over its steps of the rate each
  step used: the last record at or before the step (the first record before
  it), so a rate logged only when it changes, or once an epoch, gives the rate
  the run actually had. A tick whose rate is not positive (a warm-up from 0) is
  masked, with a warning: the model works on ``log lr``;
- a run ends at the tick of its last loss record; the grid ends with the
  longest valid run's. Shorter runs (early stopping, crashes, ``FAILED`` runs)
  are **masked** after their end by default: they keep their rows up to it and
  the grid is padded. ``early_stopped="exclude"`` drops them instead, with a
  warning naming each.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from optax_lode.runs._zero_loss import floor_zero_losses

__all__ = ["RunAlignmentError", "align_to_ticks", "to_trajectories"]

# Output column names: the defaults of ``Trajectories.from_dataframe``.
_OUT = ("run", "tick", "loss", "metric", "lr")
# How many problems an error message lists before summarising the rest.
_MAX_LISTED = 10


class RunAlignmentError(ValueError):
    """Some runs cannot be put on the tick grid.

    A ``ValueError``: raised by :func:`align_to_ticks` (and the importers built
    on it) with ``on_invalid="raise"``. The message lists the first ten runs
    and why each failed.

    Args:
        problems: ``(run label, reason)`` for every run that failed, in order.
        hint: a line added after the list (what to do about it).

    Attributes:
        problems: ``(run label, reason)`` for every run that failed, in order.

    Examples:
        >>> from optax_lode.tracking import RunAlignmentError
        >>> err = RunAlignmentError([("a", "no key 'lr'")], hint="Check the keys.")
        >>> print(err)
        1 run(s) cannot be aligned to the tick grid:
          - run a: no key 'lr'
        Check the keys.
        >>> isinstance(err, ValueError), err.problems
        (True, [('a', "no key 'lr'")])
    """

    def __init__(self, problems: list[tuple[str, str]], hint: str = ""):
        self.problems = list(problems)
        lines = [f"  - run {label}: {reason}" for label, reason in problems]
        if len(lines) > _MAX_LISTED:
            lines = [*lines[:_MAX_LISTED], f"  ... and {len(lines) - _MAX_LISTED} more"]
        message = (
            f"{len(problems)} run(s) cannot be aligned to the tick grid:\n"
            + "\n".join(lines)
        )
        if hint:
            message += "\n" + hint
        super().__init__(message)


def _label(run: str, names: Mapping[str, str] | None) -> str:
    name = names.get(run) if names else None
    if name is None or name == run:
        return repr(run)
    return f"{name!r} ({run})"


def _raise_or_skip(labelled: list[tuple[str, str]], on_invalid: str) -> None:
    """Raises a :class:`RunAlignmentError` for these runs, or (``"skip"``) warns
    that they are skipped."""
    if on_invalid == "raise":
        raise RunAlignmentError(
            labelled, hint="Pass on_invalid='skip' to drop these runs with a warning."
        )
    warnings.warn(
        str(RunAlignmentError(labelled, hint="These runs are skipped.")),
        UserWarning,
        stacklevel=3,
    )


def _infer_steps_per_tick(loss_steps: pd.DataFrame) -> tuple[int, pd.Series]:
    """One tick per loss record: each run's spacing is the most common gap between
    its consecutive loss steps; the tick is the spacing most runs share.

    Returns the tick and each run's spacing (runs without two distinct loss steps
    have none). Runs vote, not records: a run logging every step would otherwise
    outvote many logging every 10 and leave them masked 9 ticks in 10.
    """
    unique = loss_steps.drop_duplicates(["run", "step"]).sort_values(["run", "step"])
    gaps = unique.assign(gap=unique.groupby("run", sort=False)["step"].diff())
    gaps = gaps[gaps["gap"] > 0]
    if gaps.empty:
        return 1, pd.Series(dtype=np.int64)
    counts = gaps.groupby(["run", "gap"]).size().rename("n").reset_index()
    # Ties go to the smaller spacing, so no tick ever holds two regular records.
    counts = counts.sort_values(["run", "n", "gap"], ascending=[True, False, True])
    spacing = counts.drop_duplicates("run").set_index("run")["gap"].astype(np.int64)
    votes = spacing.value_counts()
    return int(votes[votes == votes.max()].index.min()), spacing


def _grid_of(
    loss_rows: pd.DataFrame, first_step: int | None, steps_per_tick: int | None
) -> tuple[int, int, pd.Series]:
    """The grid's first step and tick, as given or inferred from ``loss_rows``,
    and each run's loss spacing (empty when the tick is given)."""
    if first_step is None:
        first_step = int(loss_rows["step"].min()) if len(loss_rows) else 0
    spacing = pd.Series(dtype=np.int64)
    if steps_per_tick is None:
        steps_per_tick, spacing = _infer_steps_per_tick(loss_rows[["run", "step"]])
    return int(first_step), int(steps_per_tick), spacing


def _check_on_grid(
    df: pd.DataFrame,
    runs: list[str],
    *,
    loss: str,
    metric: str,
    lr: str,
    first_step: int,
    steps_per_tick: int,
    num_ticks: int | None,
    min_ticks: int,
) -> tuple[dict[str, str], tuple[pd.DataFrame, pd.Series, pd.DataFrame]]:
    """Puts ``runs`` on one grid and finds those that cannot be put on it.

    Returns ``(problems, (loss_tab, ends, grid))``: why each failing run
    fails; the loss of every (run, tick) with a loss record; each run's last
    tick; and, for the runs that did not fail, every tick 0..end with its
    metric and learning rate.
    """
    df = df[df["run"].isin(runs)]
    df = df.assign(tick=(df["step"] - first_step) // steps_per_tick)
    problems: dict[str, str] = {}

    # Loss: mean over the tick's records; a non-finite record marks divergence.
    lrows = df[(df["key"] == loss) & (df["tick"] >= 0)]
    if num_ticks is not None:
        lrows = lrows[lrows["tick"] < num_ticks]
    lgrp = lrows.assign(bad=~np.isfinite(lrows["value"])).groupby(
        ["run", "tick"], sort=False
    )
    loss_tab = lgrp.agg(loss=("value", "mean"), bad=("bad", "any"))
    loss_tab.loc[loss_tab["bad"], "loss"] = np.nan
    loss_tab = loss_tab.drop(columns="bad")
    counts = loss_tab.groupby(level="run").size()
    # What Trajectories refuses, found here so that on_invalid="skip" drops it:
    # a negative loss record has no log (a tick's mean can hide it; a loss of
    # exactly 0 is underflow: floored at the end), and a run whose first tick
    # already diverged has no valid tick.
    negative = lrows[np.isfinite(lrows["value"]) & (lrows["value"] < 0)]
    for run, rows in negative.groupby("run", sort=False):
        steps = sorted(set(rows["step"].tolist()))
        ticks = sorted(set(rows["tick"].tolist()))
        problems[run] = (
            f"{loss!r} below 0 at step(s) {steps[:5]} (tick(s) {ticks[:5]}): a "
            "loss must be > 0 (it is modelled by its log)"
        )
    for run, per_tick in loss_tab["loss"].groupby(level="run", sort=False):
        if run in problems:
            continue
        per_tick = per_tick.droplevel("run").sort_index()
        if not np.isfinite(per_tick.iloc[0]):
            problems[run] = (
                f"diverged at its first tick: a non-finite {loss!r} record at "
                f"tick {int(per_tick.index[0])}, so no tick is valid"
            )
    steps_in = lrows.groupby("run")["step"]
    n_records, n_steps = steps_in.size(), steps_in.nunique()
    for run in runs:
        if run in problems or counts.get(run, 0) >= min_ticks:
            continue
        n, distinct = int(n_records.get(run, 0)), int(n_steps.get(run, 0))
        if n > 1 and distinct == 1:
            # No tick will tell them apart (MLflow's log_metric without step=).
            advice = (
                f"its {n} {loss!r} records all have step "
                f"{int(steps_in.min()[run])}: log each with its step (MLflow: "
                "log_metric(key, value, step=step)), or exclude the run"
            )
        elif steps_per_tick > 1 and distinct >= min_ticks:
            advice = (
                f"with {steps_per_tick} steps per tick from step {first_step}; pass "
                "a smaller tick/steps_per_tick, or exclude the run"
            )
        else:
            advice = (
                f"it has {loss!r} records at {distinct} distinct step(s) from step "
                f"{first_step}; exclude the run (or pass a smaller min_ticks)"
            )
        problems[run] = (
            f"too few points: {counts.get(run, 0)} tick(s) with a {loss!r} record "
            f"(need at least {min_ticks}); {advice}"
        )
    ends = loss_tab.reset_index().groupby("run")["tick"].max()

    # Metric and lr on every tick 0..end of each run still valid, so values carry
    # forward through ticks that have no loss row. A run left without either is
    # invalid too, and every invalid run is known before the grid length and the
    # early-stopped runs are decided: an invalid long run would otherwise set
    # the grid and exclude every complete run as stopped early.
    keep = [r for r in runs if r not in problems]
    kept_ends = ends[keep]
    grid = pd.DataFrame(
        {
            "run": np.repeat(np.asarray(keep, dtype=object), kept_ends.to_numpy() + 1),
            "tick": np.concatenate(
                [np.arange(e + 1) for e in kept_ends.to_numpy()] or [np.zeros(0, int)]
            ),
        }
    )
    grid_index = pd.MultiIndex.from_frame(grid)
    # Only records up to a run's last loss record count: a rate or metric
    # logged after the run ended (an evaluation after training) is none it ran
    # with. Its end, not the grid's: a run that num_ticks cuts short went on,
    # and a rate it logged just past the grid is the one it ran with.
    ran = df[df["run"].isin(keep)]
    trained = df[(df["key"] == loss) & (df["tick"] >= 0)].groupby("run")["tick"].max()
    ran_end = np.maximum(trained.reindex(keep).fillna(-1).to_numpy(), kept_ends)
    ran_end = pd.Series(ran_end, index=keep)
    ran = ran[ran["tick"].to_numpy() <= ran_end.reindex(ran["run"]).to_numpy()]

    def _held_lr() -> pd.Series:
        rows = ran[ran["key"] == lr]
        rows = rows[np.isfinite(rows["value"])]
        # The last record at a step wins (logging order), as for the metric.
        rows = rows.drop_duplicates(["run", "step"], keep="last")
        by_run = {r: g for r, g in rows.groupby("run", sort=False)}
        # A run's last tick may stop mid-tick: it spans the steps it made (up
        # to its last loss or rate record).
        last = ran[ran["key"].isin([loss, lr])].groupby("run")["step"].max()
        values = [np.zeros(0)]
        for run, end in zip(keep, kept_ends.to_numpy(), strict=True):
            starts = first_step + steps_per_tick * np.arange(end + 1)
            g = by_run.get(run)
            if g is None:
                values.append(np.full(end + 1, np.nan))
                continue
            g = g.sort_values("step")
            stops = np.minimum(starts + steps_per_tick, int(last[run]) + 1)
            stops = np.maximum(stops, starts + 1)
            values.append(
                _held_means(g["step"].to_numpy(), g["value"].to_numpy(), starts, stops)
            )
        return pd.Series(np.concatenate(values), index=grid_index)

    def _per_tick(key: str, how: str) -> pd.Series:
        rows = ran[ran["key"] == key]
        rows = rows[np.isfinite(rows["value"])]
        # Records logged before tick 0 are what is known at tick 0.
        rows = rows.assign(tick=rows["tick"].clip(lower=0))
        per = rows.groupby(["run", "tick"], sort=False)["value"].agg(how)
        per = per.reindex(grid_index)
        # Carry forward, then back-fill the ticks before the first record.
        per = per.groupby(level="run", sort=False).ffill()
        return per.groupby(level="run", sort=False).bfill()

    grid["metric"] = _per_tick(metric, "last").to_numpy()
    grid["lr"] = _held_lr().to_numpy()
    by_run = grid.groupby("run", sort=False)
    no_metric = by_run["metric"].apply(lambda v: v.isna().all())
    no_lr = by_run["lr"].apply(lambda v: v.isna().all())
    # Every tick would be masked: the run would vanish from the table unnamed.
    no_positive_lr = by_run["lr"].apply(lambda v: not (v > 0).any())
    for r in keep:
        for bad, why in (
            (no_metric, f"no finite {metric!r} record at or before its last tick"),
            (no_lr, f"no finite {lr!r} record at or before its last tick"),
            (no_positive_lr, f"{lr!r} never above 0 up to its last tick"),
        ):
            if bad[r]:
                problems[r] = f"{why} ({int(ends[r])})"
                break
    return problems, (loss_tab, ends, grid)


def align_to_ticks(
    records: pd.DataFrame,
    *,
    loss: str,
    metric: str,
    lr: str,
    steps_per_tick: int | None = None,
    first_step: int | None = None,
    num_ticks: int | None = None,
    min_ticks: int = 2,
    early_stopped: Literal["mask", "exclude"] = "mask",
    on_invalid: Literal["raise", "skip"] = "raise",
    names: Mapping[str, str] | None = None,
    invalid: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Aligns per-key step series of many runs onto one tick grid.

    Args:
        records: one row per logged value, with columns ``run`` (str id), ``key``,
            ``step`` (int), ``value`` (float) and optionally ``order`` (anything
            sortable, e.g. a timestamp: the order the values were logged in; the
            row order is used without it).
        loss: the key of the training loss.
        metric: the key of the validation metric (higher is better).
        lr: the key of the learning rate.
        steps_per_tick: tracker steps per tick. ``None`` infers it: each valid
            run's spacing is the most common gap between its consecutive loss
            steps, and the tick is the spacing most runs share (ties: the
            smaller), i.e. one tick per loss record when all runs log alike.
            Runs whose spacing differs are named in a warning.
        first_step: the step that opens tick 0; default the smallest loss step of
            the valid runs (all runs share one clock). Records before it count
            toward tick 0 for the metric and learning rate and are dropped for
            the loss.
        num_ticks: length of the grid; default one past the last tick of the
            longest valid run. Records past the grid are dropped.
        min_ticks: a run needs at least this many ticks with a loss record.
        early_stopped: ``"mask"`` keeps runs that end before the grid does, masked
            after their last tick; ``"exclude"`` drops them with a warning (the
            invalid runs are dropped first: they never set the grid, its
            length, tick or first step), or raises if it would drop every run.
        on_invalid: ``"raise"`` a :class:`RunAlignmentError` listing every run
            that cannot be aligned (a missing key, too few points, steps that go
            backwards, a negative loss record, no usable metric or rate up to
            its last tick); ``"skip"`` drops those runs with a warning instead.
        names: optional ``run id -> display name`` used in messages.
        invalid: optional ``run id -> reason`` for runs already known to be
            unusable (a reader's finding, e.g. a corrupt event file): they are
            handled with the others (``on_invalid``) and never set the grid.

    Returns:
        A long table with columns ``run, tick, loss, metric, lr``: one row per tick
        that has a loss record, from tick 0 to the run's last tick, in run order of
        first appearance. A tick without a loss record has no row (it will be
        masked); a tick whose loss records are non-finite has a NaN loss (the run
        diverged there, and ``Trajectories`` masks it from that tick on).
        ``attrs["num_ticks"]`` holds the grid length: the last ticks may have no
        row in any run (a rate decayed to 0 and logged as is), so pass it to
        ``Trajectories.from_dataframe(table, num_ticks=...)`` (the importers do).
        ``attrs["steps_per_tick"]`` holds the tick in tracker steps, which the
        importers record as the runs' ``steps_per_tick``.

    Raises:
        RunAlignmentError: naming each run that cannot be aligned, and why.
        ValueError: on malformed arguments, a table without the needed columns,
            or no run left (all invalid and skipped, or all excluded as stopped
            early).

    Examples:
        >>> import pandas as pd
        >>> records = pd.DataFrame({
        ...     "run": ["a"] * 6,
        ...     "key": ["loss", "loss", "loss", "loss", "acc", "lr"],
        ...     "step": [0, 1, 2, 3, 3, 0],
        ...     "value": [4.0, 2.0, 1.0, 1.0, 0.9, 0.1]})
        >>> align_to_ticks(records, loss="loss", metric="acc", lr="lr",
        ...                steps_per_tick=2)
          run  tick  loss  metric   lr
        0   a     0   3.0     0.9  0.1
        1   a     1   1.0     0.9  0.1
    """
    missing_cols = [c for c in ("run", "key", "step", "value") if c not in records]
    if missing_cols:
        raise ValueError(
            f"records need columns run, key, step, value; missing {missing_cols} "
            f"(has {list(records.columns)})."
        )
    if len({loss, metric, lr}) != 3:
        raise ValueError(
            f"loss, metric and lr must be three different keys; got loss={loss!r}, "
            f"metric={metric!r}, lr={lr!r}."
        )
    if steps_per_tick is not None and (
        int(steps_per_tick) != steps_per_tick or steps_per_tick < 1
    ):
        raise ValueError(
            f"steps_per_tick must be a positive integer; got {steps_per_tick!r}."
        )
    if num_ticks is not None and (int(num_ticks) != num_ticks or num_ticks < 1):
        raise ValueError(f"num_ticks must be a positive integer; got {num_ticks!r}.")
    if int(min_ticks) != min_ticks or min_ticks < 1:
        raise ValueError(f"min_ticks must be a positive integer; got {min_ticks!r}.")
    if early_stopped not in ("mask", "exclude"):
        raise ValueError(
            f"early_stopped must be 'mask' or 'exclude'; got {early_stopped!r}."
        )
    if on_invalid not in ("raise", "skip"):
        raise ValueError(f"on_invalid must be 'raise' or 'skip'; got {on_invalid!r}.")

    df = pd.DataFrame(
        {
            "run": records["run"].astype(str).to_numpy(),
            "key": records["key"].astype(str).to_numpy(),
            "step": pd.to_numeric(records["step"], errors="coerce").to_numpy(),
            "value": pd.to_numeric(records["value"], errors="coerce").to_numpy(
                np.float64
            ),
            "order": (
                records["order"].to_numpy()
                if "order" in records
                else np.arange(len(records))
            ),
        }
    )
    if df["step"].isna().any() or (df["step"] != np.round(df["step"])).any():
        i = int(
            np.argmax(
                (df["step"].isna() | (df["step"] != np.round(df["step"]))).to_numpy()
            )
        )
        raise ValueError(
            f"run {_label(df['run'].iloc[i], names)}: key {df['key'].iloc[i]!r} has a "
            f"non-integer step {records['step'].iloc[i]!r}; steps must be integers."
        )
    df["step"] = df["step"].astype(np.int64)
    runs = list(pd.unique(df["run"]))
    if not runs:
        raise ValueError("no records: the source holds no logged values.")
    df = df[df["key"].isin([loss, metric, lr])]
    # Logging order within each (run, key); a stable sort keeps ties in row order.
    df = df.sort_values(["run", "key", "order"], kind="stable")

    # What the reader found first: it explains any other problem of the run.
    problems = {str(r): why for r, why in (invalid or {}).items()}
    runs += [r for r in problems if r not in set(runs)]
    # Missing keys, named with what the run did log so the user can fix the name.
    all_keys = records.groupby(records["run"].astype(str))["key"].unique()
    present = df.groupby("run")["key"].unique()
    for run in runs:
        if run in problems:
            continue
        have = set(present.get(run, ()))
        lacking = [k for k in (loss, metric, lr) if k not in have]
        if lacking:
            logged = sorted(k for k in map(str, all_keys.get(run, ())) if k)
            shown = logged[:20] + (["..."] if len(logged) > 20 else [])
            problems[run] = (
                f"no {', '.join(repr(k) for k in lacking)} records (it logged "
                f"{shown}); pass loss=/metric=/lr= with the key names it uses"
            )
    # Steps that go backwards in logging order: a resumed or merged run.
    back = df.groupby(["run", "key"], sort=False)["step"].diff() < 0
    for i in np.nonzero(back.to_numpy())[0]:
        run = df["run"].iloc[i]
        if run in problems:
            continue
        key = df["key"].iloc[i]
        prev = df["step"].iloc[i - 1]
        problems[run] = (
            f"non-monotone steps: key {key!r} goes back from step {prev} to step "
            f"{df['step'].iloc[i]} (was it resumed from a checkpoint or logged by "
            "two processes? In MLflow, the order is the records' timestamps: did "
            "the machine's clock step back?); log each run once with increasing "
            "steps, or exclude it"
        )

    # The rest depends on the grid (tick 0's step and the tick size), which
    # only valid runs may set. Runs that cannot be valid on any grid (a
    # negative or, first of all, non-finite loss record) do not vote; every
    # candidate is checked on the grid the voters infer, and the grid is
    # inferred again from the runs that passed, until they are the voters (a
    # run failing on a grid that failing runs set is checked again on the next).
    candidates = [r for r in runs if r not in problems]
    lrec = df[(df["key"] == loss) & df["run"].isin(candidates)]
    finite = lrec[np.isfinite(lrec["value"])]
    suspect = set(finite.loc[finite["value"] < 0, "run"]) | (
        set(lrec["run"]) - set(finite["run"])
    )
    first_rec = lrec.drop_duplicates("run")  # logging order: each run's first
    suspect |= set(first_rec.loc[~np.isfinite(first_rec["value"]), "run"])
    voters = [r for r in candidates if r not in suspect] or candidates
    loss_rows = lrec[lrec["run"].isin(voters)]
    inferred = _grid_of(loss_rows, first_step, steps_per_tick)
    seen: set[tuple[int, int]] = set()
    while True:
        first, tick, spacing = inferred
        failed, (loss_tab, ends, grid) = _check_on_grid(
            df,
            candidates,
            loss=loss,
            metric=metric,
            lr=lr,
            first_step=first,
            steps_per_tick=tick,
            num_ticks=num_ticks,
            min_ticks=min_ticks,
        )
        seen.add((first, tick))
        passing = [r for r in candidates if r not in failed]
        if passing == voters or not passing:
            break
        following = lrec[lrec["run"].isin(passing)]
        inferred = _grid_of(following, first_step, steps_per_tick)
        if inferred[:2] in seen:  # the same grid again: nothing would change
            break
        voters, loss_rows = passing, following
    problems.update(failed)
    valid = passing
    if first_step is None:
        starts = loss_rows.groupby("run", sort=False)["step"].min()
        if starts.nunique() > 1:
            counts = starts.value_counts().sort_index()
            shown = ", ".join(f"{c} run(s) at step {s}" for s, c in counts.items())
            warnings.warn(
                f"the runs' first {loss!r} records are at different steps ({shown}); "
                f"all share tick 0 from step {first}. If some loggers count "
                "from 0 and others from 1, align them first (or pass first_step=): "
                "a run one step late gets an extra, one-step last tick.",
                UserWarning,
                stacklevel=2,
            )
    if steps_per_tick is None:
        odd = [r for r in valid if r in spacing.index and spacing[r] != tick]
        if odd:
            shown = ", ".join(
                f"{_label(r, names)} (every {int(spacing[r])} steps)"
                for r in odd[:_MAX_LISTED]
            )
            more = (
                f" and {len(odd) - _MAX_LISTED} more" if len(odd) > _MAX_LISTED else ""
            )
            same = int((spacing == tick).sum())
            warnings.warn(
                f"the runs log {loss!r} at different spacings: the tick is inferred as "
                f"{tick} step(s), the spacing of {same} of {len(spacing)} "
                f"runs, and these differ: {shown}{more}. A run logged less "
                "often than once a tick is masked between its records; one logged "
                "more often is averaged over each tick. Pass tick= (steps_per_tick=, "
                f"--steps-per-tick) to choose: {int(spacing.max())}, the largest "
                "spacing, leaves no run with empty ticks between its records.",
                UserWarning,
                stacklevel=2,
            )
    first_step, steps_per_tick = first, tick

    if problems:
        ordered = [(r, problems[r]) for r in runs if r in problems]
        labelled = [(_label(r, names), why) for r, why in ordered]
        _raise_or_skip(labelled, on_invalid)
    keep = [r for r in runs if r not in problems]
    if not keep:
        raise ValueError("no run is left to align (all were skipped or excluded).")
    # The grid is the valid runs' (one past the longest's last tick); it is kept
    # in the table's attrs, since masked ticks (lr <= 0) have no row.
    if num_ticks is None:
        num_ticks = int(ends[keep].max()) + 1
    if early_stopped == "exclude":
        short = [r for r in keep if ends[r] < num_ticks - 1]
        if short:
            shown = ", ".join(
                f"{_label(r, names)} (ends at tick {int(ends[r])})"
                for r in short[:_MAX_LISTED]
            )
            more = (
                f" and {len(short) - _MAX_LISTED} more"
                if len(short) > _MAX_LISTED
                else ""
            )
            if len(short) == len(keep):
                # Only a num_ticks past every run's end gets here: an empty
                # table would fail later with no word of why.
                longest = int(ends[keep].max())
                raise ValueError(
                    f"early_stopped='exclude' leaves no run, since none reaches "
                    f"tick {num_ticks - 1}, the last of num_ticks={num_ticks}: "
                    f"{shown}{more}. Pass num_ticks={longest + 1} or fewer, or "
                    "early_stopped='mask' to keep the runs, masked after their "
                    "last tick."
                )
            warnings.warn(
                f"excluding {len(short)} run(s) that stopped before tick "
                f"{num_ticks - 1}: {shown}{more}. Pass early_stopped='mask' to keep "
                "them, masked after their last tick.",
                UserWarning,
                stacklevel=2,
            )
            keep = [r for r in keep if r not in set(short)]
    grid = grid[grid["run"].isin(keep)]
    loss_tab = loss_tab.reset_index()
    loss_tab = loss_tab[loss_tab["run"].isin(keep)]
    nonpos = grid["lr"] <= 0
    if nonpos.any():
        which = grid.loc[nonpos, ["run", "tick"]]
        shown = ", ".join(
            f"{_label(r, names)} at tick(s) {sorted(g['tick'].tolist())[:5]}"
            for r, g in list(which.groupby("run", sort=False))[:_MAX_LISTED]
        )
        warnings.warn(
            f"a learning rate of 0 (or below) has no log, so these ticks are "
            f"masked: {shown} (a warm-up from 0, or a decay to 0, logged as is).",
            UserWarning,
            stacklevel=2,
        )
        grid = grid[~nonpos]
    out = grid.merge(loss_tab, on=["run", "tick"], how="inner")
    order = {r: i for i, r in enumerate(keep)}
    out = out.sort_values(
        ["run", "tick"], key=lambda c: c.map(order) if c.name == "run" else c
    )
    out["loss"] = floor_zero_losses(out["loss"].to_numpy(), out["run"].to_numpy())
    out = out[list(_OUT)].reset_index(drop=True)
    # Read by Trajectories.from_dataframe: the last ticks may be masked in every
    # run (a decay to 0 logged as is) and so have no row.
    out.attrs["num_ticks"] = int(num_ticks)
    out.attrs["steps_per_tick"] = steps_per_tick
    return out


def _held_means(
    steps: np.ndarray, values: np.ndarray, starts: np.ndarray, stops: np.ndarray
) -> np.ndarray:
    """Per tick (steps ``starts[t] .. stops[t] - 1``), the mean over its steps
    of the value each step held: the last record at or before it, the first
    record before the first. ``steps`` ascending and unique. A tick inside one
    record's span is that record's value exactly."""
    first = np.maximum(np.searchsorted(steps, starts, side="right") - 1, 0)
    last = np.searchsorted(steps, stops - 1, side="right") - 1
    out = values[first].astype(np.float64)
    # Only ticks with a change inside need the weighted mean (often none).
    for t in np.nonzero(last > first)[0]:
        i0, i1, a, b = first[t], last[t], starts[t], stops[t]
        bounds = np.concatenate([[a], steps[i0 + 1 : i1 + 1], [b]])
        held = values[i0 : i1 + 1]
        out[t] += np.sum((held - out[t]) * np.diff(bounds)) / (b - a)
    return out


def to_trajectories(table: pd.DataFrame, info: pd.DataFrame, num_ticks: int | None):
    """``Trajectories`` from an aligned table plus per-run ``info`` (indexed by run).

    Info columns named like the table's columns get an ``info_`` prefix (a
    tracker param called ``lr`` becomes ``info_lr``).
    """
    from optax_lode.runs import Trajectories
    from optax_lode.runs._trajectories import TickColumnWarning

    info = info.loc[info.index.isin(set(table["run"]))]
    info = info.rename(columns={c: f"info_{c}" for c in info.columns if c in _OUT})
    info.index = info.index.astype(str)
    wide = table.join(info, on="run")
    if num_ticks is None:
        # The grid align_to_ticks computed: its last ticks may have no row.
        num_ticks = int(table.attrs.get("num_ticks", table["tick"].max() + 1))
    with warnings.catch_warnings():
        # The aligner numbered the ticks (first_step, tick): a tick column's
        # look of step numbers or of counting from 1 is not the user's.
        warnings.simplefilter("ignore", TickColumnWarning)
        return Trajectories.from_dataframe(
            wide, num_ticks=num_ticks, steps_per_tick=table.attrs.get("steps_per_tick")
        )
