"""``Trajectories``: a sweep's runs on one tick grid, with readers and writers."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from optax_lode._files import atomic_write
from optax_lode._seeds import check_seed
from optax_lode._warn import caller_stacklevel
from optax_lode._whole import whole

if TYPE_CHECKING:  # annotations only (no runtime shape checks)
    from jaxtyping import Bool, Float

_SERIES = ("loss", "metric", "lr")
# Ticks of one run at most: a larger tick is a step number, or a typo.
_MAX_TICKS = 1_000_000
# Columns every ``info`` table has (others may be added freely).
_INFO_COLUMNS = ("schedule", "seed")
# The long format's columns (to_dataframe), which info columns must not shadow.
_LONG = ("run", "tick", *_SERIES)
# pandas.read_csv's default missing-value strings (its documentation's list),
# applied to every column but the run ids.
_NA_STRINGS = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
    "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
    "nan", "null",
]  # fmt: skip


class DivergedRunWarning(UserWarning):
    """A run had a non-finite value; it is masked from that tick on.

    Issued by the :class:`Trajectories` readers (:meth:`~Trajectories.from_arrays`,
    :meth:`~Trajectories.from_dataframe` and those built on them), once per
    diverged run, naming the run, the series and the tick. Filter it with
    :mod:`warnings` like any ``UserWarning``.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     runs = Trajectories.from_arrays(
        ...         [[1.0, float("nan"), 0.5]], [[0.1, 0.2, 0.3]], [[1e-2] * 3])
        >>> caught[0].category.__name__, runs.mask.tolist()
        ('DivergedRunWarning', [[True, False, False]])
    """


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectories:
    """A set of training runs on one tick grid.

    A tick is ``steps_per_tick`` optimizer steps; its record is ``(mean training
    loss over its steps, validation metric at its end, mean learning rate over its
    steps)``. Runs that end early or miss ticks are padded; a run that diverged is
    masked from its first non-finite tick on (with a :class:`DivergedRunWarning`).
    Invalid entries hold NaN and have ``mask == False``.

    Build one with :meth:`from_arrays`, :meth:`from_dataframe`, :meth:`from_csv` or
    :meth:`from_parquet`, never with the raw constructor unless the arrays are
    already clean.

    Attributes:
        loss: ``(runs, ticks)`` float64 training loss (positive where valid).
        metric: ``(runs, ticks)`` float64 validation metric (higher is better).
        lr: ``(runs, ticks)`` float64 learning rate (positive where valid).
        mask: ``(runs, ticks)`` bool, False for padded, missing or diverged ticks.
        run_ids: one string id per run.
        info: per-run table indexed by run id, with at least the columns
            ``schedule`` and ``seed`` (None/NaN when unknown).
        steps_per_tick: optimizer steps per tick of the runs, or ``None`` when
            unknown. :func:`~optax_lode.sweep.run_sweep` and the tracker
            imports set it, Parquet files keep it, :func:`~optax_lode.fit`
            records it in the model, and
            :func:`~optax_lode.lode_schedule` then refuses a run on another
            clock. :meth:`with_steps_per_tick` declares or corrects it.
        metric_negated: whether ``metric`` is a lower-is-better metric (a
            validation loss, an error rate) negated by
            :meth:`with_negated_metric`, or declared so when read
            (``metric_negated=True`` to :meth:`from_arrays`,
            :meth:`from_dataframe`, :meth:`from_csv`). Parquet files and
            MLflow exports keep it, and :func:`~optax_lode.fit` records it in
            the model (``model.metric_negated``), so that whoever uses the
            model is reminded to pass the negated value too.

    Raises:
        TypeError: (the raw constructor) ``metric_negated`` is not a bool.
        ValueError: (the raw constructor) ``mask`` is not a 2-D bool array, a
            series is not float64 of the mask's shape, ``steps_per_tick`` is
            not a whole number >= 1 (or None), the run ids are not one per
            run and unique, or ``info`` is not indexed by the run ids in
            order.

    Examples:
        >>> import numpy as np
        >>> t = np.arange(10)
        >>> traj = Trajectories.from_arrays(
        ...     loss=[np.exp(-t / 5) + 0.1], metric=[1 - np.exp(-t / 5)],
        ...     lr=[np.full(10, 1e-2)])
        >>> traj.num_runs, traj.num_ticks
        (1, 10)
    """

    loss: np.ndarray
    metric: np.ndarray
    lr: np.ndarray
    mask: np.ndarray
    run_ids: tuple[str, ...]
    info: pd.DataFrame
    steps_per_tick: int | None = None
    metric_negated: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.metric_negated, bool | np.bool_):
            raise TypeError(
                f"metric_negated must be a bool; got {self.metric_negated!r}: "
                "pass True (the metric column holds a lower-is-better metric "
                "already negated) or False."
            )
        object.__setattr__(self, "metric_negated", bool(self.metric_negated))
        if self.steps_per_tick is not None:
            object.__setattr__(
                self, "steps_per_tick", _check_steps_per_tick(self.steps_per_tick)
            )
        shape = self.mask.shape
        if self.mask.ndim != 2 or self.mask.dtype != bool:
            raise ValueError(f"mask must be a 2-D bool array; got {self.mask.dtype}.")
        for name in _SERIES:
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != np.float64:
                raise ValueError(
                    f"{name} must be float64 of shape {shape}; "
                    f"got {arr.dtype} {arr.shape}."
                )
            arr.setflags(write=False)
        self.mask.setflags(write=False)
        if len(self.run_ids) != shape[0]:
            raise ValueError(
                f"{len(self.run_ids)} run ids for {shape[0]} runs; give one per run."
            )
        if len(set(self.run_ids)) != len(self.run_ids):
            raise ValueError(f"run ids must be unique; got {list(self.run_ids)}.")
        if list(self.info.index) != list(self.run_ids):
            raise ValueError("info must be indexed by run_ids, in the same order.")

    # -- properties ----------------------------------------------------------

    @property
    def num_runs(self) -> int:
        """Number of runs."""
        return self.mask.shape[0]

    @property
    def num_ticks(self) -> int:
        """Length of the tick grid (the longest run)."""
        return self.mask.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """Per run: one past its last valid tick."""
        any_valid = self.mask.any(axis=1)
        last = self.num_ticks - np.argmax(self.mask[:, ::-1], axis=1)
        return np.where(any_valid, last, 0)

    @property
    def final_metric(self) -> np.ndarray:
        """Per run: the metric at its last valid tick."""
        idx = np.maximum(self.lengths - 1, 0)
        return self.metric[np.arange(self.num_runs), idx]

    def features(self) -> np.ndarray:
        """The three series stacked as the model's raw features.

        Returns:
            A new ``(runs, ticks, 3)`` float64 array of raw ``(loss, metric,
            lr)`` (NaN where masked), in the order of
            :data:`~optax_lode.model.FEATURES`.

        Examples:
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]])
            >>> runs.features().shape
            (1, 2, 3)
        """
        return np.stack([self.loss, self.metric, self.lr], axis=-1)

    def __len__(self) -> int:
        """The number of runs (:attr:`num_runs`)."""
        return self.num_runs

    def __repr__(self) -> str:
        clock = (
            ""
            if self.steps_per_tick is None
            else f", steps_per_tick={self.steps_per_tick}"
        )
        negated = ", metric_negated=True" if self.metric_negated else ""
        return (
            f"Trajectories(num_runs={self.num_runs}, num_ticks={self.num_ticks}"
            f"{clock}{negated}, valid={int(self.mask.sum())}/{self.mask.size})"
        )

    # -- constructors -----------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        loss: Float[ArrayLike, "runs ticks"],
        metric: Float[ArrayLike, "runs ticks"],
        lr: Float[ArrayLike, "runs ticks"],
        *,
        mask: Bool[ArrayLike, "runs ticks"] | None = None,
        run_ids: Sequence[Any] | None = None,
        info: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None,
        steps_per_tick: int | None = None,
        metric_negated: bool = False,
    ) -> Trajectories:
        """Runs from ``(runs, ticks)`` arrays.

        Args:
            loss: training loss per run and tick; positive where valid.
            metric: validation metric (higher is better).
            lr: learning rate; positive where valid.
            mask: bool, False for padded/missing ticks; ``None`` means every entry
                is meant to be valid.
            run_ids: one id per run (converted to ``str``); default ``"0", "1"...``.
            info: per-run columns, as a DataFrame (one row per run, in order, or
                indexed by the run ids) or a mapping ``column -> sequence``. A
                column named ``run``, ``tick``, ``loss``, ``metric`` or ``lr``
                becomes ``info_<name>``, as in the tracker imports (the long
                format has columns of those names).
            steps_per_tick: optimizer steps per tick of the runs; default
                ``None``, unknown.
            metric_negated: whether ``metric`` is a lower-is-better metric
                already negated (see :meth:`with_negated_metric`, which
                negates one). It does not negate anything.

        Returns:
            The runs. Entries that are masked are set to NaN. A run with a
            non-finite valid entry is masked from that tick on, with a
            :class:`DivergedRunWarning` naming it.

        Raises:
            TypeError: ``metric_negated`` is not a bool.
            ValueError: on a ragged, complex or non-2-D series, mismatched
                shapes, no run or no tick, a ``mask`` that is not boolean,
                duplicate or empty run ids, a non-positive loss or learning
                rate, a run without any valid tick, a ``steps_per_tick`` that
                is not a whole number >= 1, an ``info`` that is neither a
                DataFrame nor a mapping or has another number of rows (or
                values) than runs, or an ``info`` whose index names only some
                run ids or whose integer index reorders the runs (ambiguous:
                by row or by run id?).

        Warns:
            DivergedRunWarning: for each run with a non-finite valid entry.

        Examples:
            >>> import numpy as np
            >>> runs = Trajectories.from_arrays(
            ...     loss=[[1.0, 0.5, np.nan]], metric=[[0.1, 0.2, np.nan]],
            ...     lr=[[1e-2, 1e-2, np.nan]], mask=[[True, True, False]],
            ...     run_ids=["short"], info={"schedule": ["constant"]})
            >>> runs.lengths, runs.info.loc["short", "schedule"]
            (array([2]), 'constant')
        """
        arrays = {}
        for name, value in (("loss", loss), ("metric", metric), ("lr", lr)):
            try:
                # Checked first: float64 would drop the imaginary part. Inside
                # the try: it converts a ragged list, which fails here.
                is_complex = np.iscomplexobj(value)
                arr = None if is_complex else np.array(value, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{name} must be a numeric (runs, ticks) array; ragged runs need "
                    f"padding with NaN and a mask ({err})."
                ) from None
            if is_complex:
                raise ValueError(f"{name} must be real; got complex values.")
            if arr.ndim != 2:
                raise ValueError(
                    f"{name} must be a 2-D (runs, ticks) array; got shape {arr.shape}."
                )
            arrays[name] = arr
        shape = arrays["loss"].shape
        for name, arr in arrays.items():
            if arr.shape != shape:
                raise ValueError(
                    f"{name} has shape {arr.shape} but loss has {shape}; every "
                    "series needs the same (runs, ticks) shape."
                )
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError(f"need at least one run and one tick; got {shape}.")
        if mask is None:
            mask = np.ones(shape, bool)
        else:
            mask = np.array(mask)
            if mask.shape != shape:
                raise ValueError(f"mask has shape {mask.shape}; expected {shape}.")
            if mask.dtype != bool:
                raise ValueError(f"mask must be boolean; got dtype {mask.dtype}.")
        if run_ids is None:
            run_ids = [str(i) for i in range(shape[0])]
        run_ids = tuple(str(r) for r in run_ids)
        if len(run_ids) != shape[0]:
            raise ValueError(f"{len(run_ids)} run_ids for {shape[0]} runs.")
        if len(set(run_ids)) != len(run_ids):
            dup = sorted({r for r in run_ids if run_ids.count(r) > 1})
            raise ValueError(f"duplicate run ids {dup}; run ids must be unique.")
        if "" in run_ids:  # a CSV reads it back as a missing id
            raise ValueError(
                f"run {run_ids.index('')} has an empty run id; name every run."
            )
        mask = _clean(arrays, mask, run_ids)
        return cls(
            loss=arrays["loss"],
            metric=arrays["metric"],
            lr=arrays["lr"],
            mask=mask,
            run_ids=run_ids,
            info=_make_info(info, run_ids),
            steps_per_tick=steps_per_tick,
            metric_negated=metric_negated,
        )

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        run: str = "run",
        tick: str = "tick",
        loss: str = "loss",
        metric: str = "metric",
        lr: str = "lr",
        num_ticks: int | None = None,
        steps_per_tick: int | None = None,
        metric_negated: bool = False,
    ) -> Trajectories:
        """Runs from a long-format table, one row per (run, tick).

        The tick grid is ``0 .. max tick`` (or ``0 .. num_ticks - 1``); ticks a run
        lacks are masked. An empty (NaN) metric or learning-rate cell of a row
        takes the run's last value before it (its first one, before the run's
        first), as a tracker's records do; an empty loss is divergence, and a
        row with none of the three (a summary row) is ignored with a warning. Other
        columns that are constant within every run become ``info`` columns (others
        are dropped with a warning; lists, dicts and arrays compare by value).
        Role columns may be index levels (``df.set_index(["run", "tick"])``).

        Args:
            df: the table.
            run: name of the run id column.
            tick: name of the tick column (integers from 0).
            loss: name of the training loss column.
            metric: name of the validation metric column.
            lr: name of the learning rate column.
            num_ticks: length of the tick grid; default one past the largest tick
                (a grid whose last ticks no run reached needs it: pass
                ``df.attrs["num_ticks"]`` of a :meth:`to_dataframe` table).
            steps_per_tick: optimizer steps per tick of the runs; default
                ``None``, unknown (``df.attrs["steps_per_tick"]`` of a
                :meth:`to_dataframe` table holds a known one).
            metric_negated: whether the ``metric`` column is a lower-is-better
                metric already negated (see :meth:`with_negated_metric`;
                ``df.attrs["metric_negated"]`` of a :meth:`to_dataframe` table
                says so). It does not negate anything.

        Returns:
            The runs, in order of first appearance.

        Raises:
            TypeError: ``df`` is not a pandas DataFrame, or ``metric_negated``
                is not a bool.
            ValueError: naming the run and column, on a missing column, a
                column name used twice, an empty table, missing run ids or
                ids that read as the same text, a duplicate, negative,
                non-integer or too large (a step number?) tick, a non-numeric
                or complex value, a non-positive loss or learning rate, or a
                run whose values are all NaN; and
                on a ``num_ticks`` that is not a whole number above every tick,
                or a ``steps_per_tick`` that is not a whole number >= 1.

        Warns:
            DivergedRunWarning: for each run with an empty (NaN) loss or an
                infinite value: divergence, masked from that tick on.
            UserWarning: rows with no loss, metric or learning rate are
                ignored, columns that vary within a run are dropped, or
                fewer than half of a long grid's ticks hold a record (ticks
                that are step numbers?).

        Examples:
            >>> import pandas as pd
            >>> df = pd.DataFrame({"run": ["a", "a", "b"], "tick": [0, 1, 0],
            ...                    "loss": [1.0, 0.8, 1.1],
            ...                    "metric": [0.1, 0.3, 0.1],
            ...                    "lr": [1e-2, 1e-2, 3e-2],
            ...                    "schedule": ["constant", "constant", "cosine"]})
            >>> runs = Trajectories.from_dataframe(df)
            >>> runs.run_ids, runs.mask.tolist(), runs.info["schedule"].tolist()
            (('a', 'b'), [[True, True], [True, False]], ['constant', 'cosine'])
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(
                "from_dataframe expects a pandas DataFrame (long format, one row "
                f"per run and tick); got a {type(df).__name__}. Convert it first, "
                "e.g. pandas.DataFrame(d) for a dict of columns."
            )
        names = {"run": run, "tick": tick, "loss": loss, "metric": metric, "lr": lr}
        indexed = [
            c for c in names.values() if c not in df.columns and c in df.index.names
        ]
        if indexed:  # df.set_index(["run", "tick"]), as written to Parquet
            df = df.reset_index(level=indexed)
        twice = list(dict.fromkeys(df.columns[df.columns.duplicated()]))
        if twice:
            raise ValueError(
                f"the table has more than one column named {twice}; a column name "
                "must be unique (rename or drop the copies, e.g. df.loc[:, "
                "~df.columns.duplicated()])."
            )
        missing = [  # the role only where the column is named otherwise
            repr(c) if c == role else f"{c!r} ({role})"
            for role, c in names.items()
            if c not in df
        ]
        if missing:
            raise ValueError(
                f"missing column(s) {', '.join(missing)}; the table has "
                f"{list(df.columns)}. Name the columns with from_dataframe(df, "
                "run=..., tick=..., loss=..., metric=..., lr=...)."
            )
        if len(df) == 0:
            raise ValueError("the table has no rows.")
        if df[run].isna().any():
            what = repr(run) if run == "run" else f"{run!r} (run)"
            raise ValueError(f"column {what} has missing run ids.")
        run_keys = df[run].astype(str)
        # Ids that differ only as text (1 and "1") would become one run.
        ids = pd.DataFrame({"id": df[run].to_numpy(), "key": run_keys.to_numpy()})
        ids = ids.drop_duplicates("id")
        clash = ids.duplicated("key")
        if clash.any():
            key = ids["key"][clash].iloc[0]
            same = [v for v in pd.unique(df[run]) if str(v) == key]
            raise ValueError(
                f"column {run!r} (run) has ids {same} that read as the same run "
                f"{key!r}; make the run ids distinct as text."
            )
        blank = df[[loss, metric, lr]].isna().all(axis=1).to_numpy()
        # A row with no value at all (a run's summary row, say) is no tick of
        # it; a run of nothing else stays, for the all-NaN error.
        has_value = pd.Series(~blank).groupby(run_keys.to_numpy()).transform("any")
        blank = blank & has_value.to_numpy()
        if blank.any():
            rows_of = list(pd.unique(run_keys[blank]))
            warnings.warn(
                f"{int(blank.sum())} row(s) hold no {loss!r}, {metric!r} or "
                f"{lr!r} value (summary rows?), of run(s) {rows_of[:3]}"
                + ("..." if len(rows_of) > 3 else "")
                + ": ignored. An empty loss beside a metric or a rate is "
                "divergence.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
            df, run_keys = df[~blank], run_keys[~blank]
        for role, col in names.items():
            kind = df[col].dtype
            if role != "run" and (
                pd.api.types.is_bool_dtype(kind)
                or pd.api.types.is_datetime64_any_dtype(kind)
                or pd.api.types.is_timedelta64_dtype(kind)
            ):
                what = "booleans" if pd.api.types.is_bool_dtype(kind) else "times"
                fix = (
                    "number each run's rows 0, 1, 2, ... in time order (e.g. "
                    "df.groupby(run).cumcount() after sorting)"
                    if role == "tick"
                    else f"give its {role} as numbers"
                )
                named = repr(col) if col == role else f"{col!r} ({role})"
                raise ValueError(f"column {named} holds {what} ({kind}); {fix}.")
        ticks_raw = pd.to_numeric(df[tick], errors="coerce").to_numpy(np.float64)
        for rid, t_val, t_orig in zip(run_keys, ticks_raw, df[tick], strict=True):
            if not np.isfinite(t_val) or t_val != np.round(t_val):
                raise ValueError(
                    f"run {rid!r}: column {tick!r} (tick) has a non-integer value "
                    f"{t_orig!r}; ticks must be integers 0, 1, 2, ..."
                )
            if t_val < 0:
                raise ValueError(
                    f"run {rid!r}: column {tick!r} (tick) has a negative value "
                    f"{int(t_val)}; ticks start at 0."
                )
        if len(ticks_raw) and ticks_raw.max() >= _MAX_TICKS:
            i = int(np.argmax(ticks_raw))
            raise ValueError(
                f"run {run_keys.iloc[i]!r}: column {tick!r} (tick) has the value "
                f"{ticks_raw[i]:.0f}; a run has at most {_MAX_TICKS} ticks. Is it "
                "a step number? Divide steps by steps_per_tick."
            )
        ticks = ticks_raw.astype(np.int64)
        dup = pd.DataFrame({"r": run_keys.to_numpy(), "t": ticks}).duplicated()
        if dup.any():
            i = int(np.argmax(dup.to_numpy()))
            raise ValueError(
                f"run {run_keys.iloc[i]!r}: column {tick!r} (tick) has tick "
                f"{ticks[i]} more than once; one row per (run, tick)."
            )
        run_ids = tuple(pd.unique(run_keys))
        row_of = {r: i for i, r in enumerate(run_ids)}
        rows = np.array([row_of[r] for r in run_keys])
        grid = int(ticks.max()) + 1
        if num_ticks is not None:
            if whole("num_ticks", num_ticks) < grid:
                raise ValueError(
                    f"num_ticks={num_ticks} but the table has tick {grid - 1}; "
                    "num_ticks must exceed every tick."
                )
            grid = int(num_ticks)
        shape = (len(run_ids), grid)
        arrays = {}
        for role in _SERIES:
            col = names[role]
            values = pd.to_numeric(df[col], errors="coerce")
            if np.iscomplexobj(values.to_numpy()):  # float64 keeps the real part
                raise ValueError(f"column {col!r} ({role}) must be real; got complex.")
            bad = values.isna() & df[col].notna()
            if bad.any():
                i = int(np.argmax(bad.to_numpy()))
                raise ValueError(
                    f"run {run_keys.iloc[i]!r}: column {col!r} ({role}) has a "
                    f"non-numeric value {df[col].iloc[i]!r}."
                )
            arr = np.full(shape, np.nan)
            arr[rows, ticks] = values.to_numpy(np.float64)
            arrays[role] = arr
        mask = np.zeros(shape, bool)
        mask[rows, ticks] = True
        _check_all_nan(arrays, mask, run_ids, names)
        for role in ("metric", "lr"):
            arrays[role] = _carry_forward(arrays[role], mask)
        mask = _clean(arrays, mask, run_ids, names)
        _check_tick_column(ticks, mask, tick)
        # Per-run metadata: columns constant within every run.
        extra = [c for c in df.columns if c not in names.values()]
        info_cols = {}
        dropped = []
        # Lists, dicts and arrays (layers=[64, 64]) compared by value.
        keys = pd.DataFrame({c: df[c].map(_hashable) for c in extra}, index=df.index)
        grouped = keys.groupby(run_keys.to_numpy(), sort=False)
        firsts = df[extra].groupby(run_keys.to_numpy(), sort=False)
        for c in extra:
            if (grouped[c].nunique(dropna=False) <= 1).all():
                info_cols[c] = firsts[c].first().reindex(list(run_ids)).tolist()
            else:
                dropped.append(c)
        if dropped:
            warnings.warn(
                f"column(s) {dropped} vary within a run and are not per-run "
                "metadata; dropped.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        return cls(
            loss=arrays["loss"],
            metric=arrays["metric"],
            lr=arrays["lr"],
            mask=mask,
            run_ids=run_ids,
            info=_make_info(info_cols, run_ids),
            steps_per_tick=steps_per_tick,
            metric_negated=metric_negated,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        *,
        text: Sequence[str] = (),
        **columns: Any,
    ) -> Trajectories:
        """:meth:`from_dataframe` of a CSV file (``columns`` name its columns).

        Run ids, tracker tags (columns ``tags.<name>``, as
        :func:`~optax_lode.tracking.from_mlflow` names them) and the columns
        named in ``text`` are read as text, so ``007`` stays ``"007"`` and
        ``NA`` or ``None`` stay values (as written by :meth:`to_csv`); only an
        empty cell is missing there. Other columns are typed by pandas and read
        its usual missing-value strings (``NA``, ``nan``, empty, ...) as
        missing: an info column of codes like ``007`` needs ``text=["code"]``
        (Parquet keeps every type). A CSV file does not keep the runs'
        clock, nor whether their metric was negated: give them as
        ``steps_per_tick=k`` and ``metric_negated=True``.

        Args:
            path: the CSV file, long format (one row per run and tick, with a
                header row).
            text: further columns to read as text (each must be a column of
                the file), e.g. an info column of codes like ``007``.
            **columns: keyword arguments of :meth:`from_dataframe`: the column
                names ``run``, ``tick``, ``loss``, ``metric``, ``lr``, and
                ``num_ticks``, ``steps_per_tick``, ``metric_negated``.

        Returns:
            The runs, as :meth:`from_dataframe` returns them.

        Raises:
            FileNotFoundError: no file at ``path``.
            IsADirectoryError: ``path`` is a directory.
            ValueError: the file is empty, has a header but no rows, is not
                UTF-8 text or cannot be parsed as CSV, ``text`` is a string
                or names a column the file lacks, or as :meth:`from_dataframe`.
            TypeError: as :meth:`from_dataframe`.

        Examples:
            >>> import os, tempfile
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]], run_ids=["007"])
            >>> path = os.path.join(tempfile.mkdtemp(), "runs.csv")
            >>> runs.to_csv(path)
            >>> back = Trajectories.from_csv(path, steps_per_tick=10)
            >>> back.run_ids, back.steps_per_tick
            (('007',), 10)
        """
        run = columns.get("run", "run")
        _check_runs_file(path, "CSV")
        try:
            header = pd.read_csv(path, nrows=0).columns
        except pd.errors.EmptyDataError:  # its message does not name the file
            raise ValueError(
                f"{os.fspath(path)!r} is empty; expected a CSV file with a header "
                "row (columns run, tick, loss, metric, lr) and one row per run "
                "and tick."
            ) from None
        except (UnicodeDecodeError, pd.errors.ParserError) as err:
            raise _not_csv(path, err) from None
        unknown = sorted(set(text) - set(header))
        if isinstance(text, str) or unknown:
            raise ValueError(
                f"text must list columns of the file; got {text!r}"
                + (f" ({unknown} not among {list(header)})" if unknown else "")
            )
        text = [c for c in header if c == run or c.startswith("tags.") or c in text]
        try:
            frame = pd.read_csv(
                path,
                dtype=dict.fromkeys(text, str),
                keep_default_na=False,
                na_values={c: _NA_STRINGS for c in header if c not in text},
            )
        except (UnicodeDecodeError, pd.errors.ParserError) as err:
            raise _not_csv(path, err) from None
        for c in text:
            frame[c] = frame[c].replace("", np.nan)
        if len(frame) == 0:
            raise ValueError(
                f"{os.fspath(path)!r} has a header but no rows; expected one row "
                "per run and tick."
            )
        return cls.from_dataframe(frame, **columns)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike, **columns: Any) -> Trajectories:
        """:meth:`from_dataframe` of a Parquet file (``columns`` name its columns).

        A file written by :meth:`to_parquet` records its grid's length, which is
        used unless ``num_ticks`` is given: ticks that no run reached (runs
        stopped early) stay on the grid. It also records the runs'
        ``steps_per_tick`` when known, used unless ``steps_per_tick`` is given,
        and whether its metric was negated (:meth:`with_negated_metric`).

        Args:
            path: the Parquet file, long format (one row per run and tick).
            **columns: keyword arguments of :meth:`from_dataframe`: the column
                names ``run``, ``tick``, ``loss``, ``metric``, ``lr``, and
                ``num_ticks``, ``steps_per_tick``, ``metric_negated``, each
                overriding what the file records.

        Returns:
            The runs, as :meth:`from_dataframe` returns them.

        Raises:
            FileNotFoundError: no file at ``path``.
            IsADirectoryError: ``path`` is a directory holding no Parquet file
                (a directory of them, a dataset, is read).
            ValueError: the file cannot be read as Parquet (truncated, or
                another format), naming it; the file records an invalid clock
                (a ``steps_per_tick`` that is not a whole number >= 1) or an
                invalid ``metric_negated`` (not a bool), unless the argument
                is given; or as :meth:`from_dataframe`.
            TypeError: as :meth:`from_dataframe`.

        Warns:
            UserWarning: the recorded grid is longer than every run (right
                when every run stopped early; a copy filtered with pandas keeps
                the attrs of the file it came from: pass ``num_ticks``), or as
                :meth:`from_dataframe`.

        Examples:
            >>> import os, tempfile
            >>> runs = Trajectories.from_arrays(
            ...     [[1.0, 0.5]], [[0.1, 0.2]], [[1e-2, 1e-2]], steps_per_tick=10)
            >>> path = os.path.join(tempfile.mkdtemp(), "runs.parquet")
            >>> runs.with_negated_metric().to_parquet(path)
            >>> back = Trajectories.from_parquet(path)
            >>> back.steps_per_tick, back.metric_negated
            (10, True)
        """
        import pyarrow as pa

        _check_runs_file(path, "Parquet")
        try:
            df = pd.read_parquet(path)
        except (pa.ArrowException, OSError) as err:
            if isinstance(err, FileNotFoundError | PermissionError):
                raise
            said = " ".join(str(err).split())  # pyarrow's may span lines
            raise ValueError(
                f"cannot read {os.fspath(path)!r} as Parquet ({said}): is it a "
                "whole Parquet file? Write it again, or export the runs as CSV."
            ) from None
        recorded = df.attrs.get("num_ticks")
        tick = columns.get("tick", "tick")
        if tick not in df and tick in df.index.names:
            df = df.reset_index(level=tick)  # read as from_dataframe would
        if "num_ticks" not in columns and recorded is not None and tick in df:
            # Only a length the file's ticks fit in (a filtered copy keeps attrs).
            last = pd.to_numeric(df[tick], errors="coerce").max() if len(df) else -1
            if len(df) == 0 or int(recorded) > last:
                columns = {**columns, "num_ticks": int(recorded)}
            if len(df) and int(recorded) > last + 1 and np.isfinite(last):
                warnings.warn(
                    f"{os.fspath(path)!r} records a grid of {int(recorded)} "
                    f"ticks, but no run has a tick past {int(last)}: the last "
                    f"{int(recorded - last - 1)} ticks hold no record. Right if "
                    "every run stopped early; for a copy filtered with pandas "
                    "(which keeps the file's attrs), pass "
                    f"num_ticks={int(last) + 1}.",
                    UserWarning,
                    stacklevel=caller_stacklevel(),
                )
        clock = df.attrs.get("steps_per_tick")
        if "steps_per_tick" not in columns and clock is not None:
            try:
                clock = _check_steps_per_tick(clock)
            except ValueError as err:
                raise ValueError(
                    f"{os.fspath(path)!r} records an invalid clock: {err} Pass "
                    "steps_per_tick=k (or None) to read it anyway."
                ) from None
            columns = {**columns, "steps_per_tick": clock}
        negated = df.attrs.get("metric_negated")
        if "metric_negated" not in columns and negated is not None:
            if not isinstance(negated, bool):
                raise ValueError(
                    f"{os.fspath(path)!r} records an invalid metric_negated "
                    f"({negated!r}, not a bool). Pass metric_negated=True or "
                    "False to read it anyway."
                )
            columns = {**columns, "metric_negated": negated}
        return cls.from_dataframe(df, **columns)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, *, text: Sequence[str] = (), **columns: Any
    ) -> Trajectories:
        """Reads ``.csv`` or ``.parquet`` (``.pq``) by the file's extension.

        Args:
            path: a file whose name ends in ``.csv`` (or ``.csv.gz``,
                ``.csv.bz2``, ``.csv.xz``), ``.parquet`` or ``.pq`` (any case),
                or a directory of Parquet files named so.
            text: for a CSV file, further columns to read as text, as for
                :meth:`from_csv` (ignored for Parquet, which keeps every type).
            **columns: keyword arguments of :meth:`from_dataframe` (column
                names, ``num_ticks``, ``steps_per_tick``, ``metric_negated``).

        Returns:
            The runs, read by :meth:`from_csv` or :meth:`from_parquet`.

        Raises:
            ValueError: the extension is neither, or as :meth:`from_csv` or
                :meth:`from_parquet`.
            FileNotFoundError: no file at ``path``.
            TypeError: as :meth:`from_dataframe`.

        Examples:
            >>> import os, tempfile
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]])
            >>> path = os.path.join(tempfile.mkdtemp(), "runs.pq")
            >>> runs.to_parquet(path)
            >>> Trajectories.from_file(path).num_runs
            1
        """
        kind = file_format(path)
        if kind == "csv":
            return cls.from_csv(path, text=text, **columns)
        if kind == "parquet":
            return cls.from_parquet(path, **columns)
        raise ValueError(
            f"cannot tell the format of {os.fspath(path)!r}: use a .csv (or "
            f".csv.{', .csv.'.join(_COMPRESSED)}) or .parquet file."
        )

    @classmethod
    def from_mlflow(cls, experiment: str, **options: Any) -> Trajectories:
        """Runs of an MLflow experiment on one tick grid.

        Delegates to :func:`optax_lode.tracking.from_mlflow` (same arguments:
        ``tracking_uri``, ``loss``, ``metric``, ``lr``, ``tick``, ...). Needs the
        ``tracking`` extra.

        Args:
            experiment: the MLflow experiment's name (or id).
            **options: keyword arguments of
                :func:`optax_lode.tracking.from_mlflow`.

        Returns:
            The experiment's runs, as :func:`optax_lode.tracking.from_mlflow`
            returns them.

        Raises:
            ImportError: MLflow is not installed (the ``tracking`` extra).
            FileNotFoundError: a ``sqlite:///`` store does not exist.
            ValueError: an unknown experiment, or (a
                :class:`~optax_lode.tracking.RunAlignmentError`) runs that
                cannot be put on the tick grid, each named.

        Examples:
            >>> runs = Trajectories.from_mlflow(  # doctest: +SKIP
            ...     "lr-sweep", tracking_uri="sqlite:///mlflow.db",
            ...     loss="train_loss", metric="val_accuracy", lr="lr")
        """
        from optax_lode.tracking import from_mlflow

        return from_mlflow(experiment, **options)

    @classmethod
    def from_tensorboard(
        cls, logdir: str | os.PathLike, **options: Any
    ) -> Trajectories:
        """Runs logged as TensorBoard scalars, one sub-directory per run.

        Delegates to :func:`optax_lode.tracking.from_tensorboard` (same
        arguments: ``loss``, ``metric``, ``lr``, ``tick``, ...). Needs the
        ``tracking`` extra.

        Args:
            logdir: the directory holding one sub-directory of event files
                per run.
            **options: keyword arguments of
                :func:`optax_lode.tracking.from_tensorboard`.

        Returns:
            The runs, as :func:`optax_lode.tracking.from_tensorboard` returns
            them.

        Raises:
            ImportError: TensorBoard is not installed (the ``tracking`` extra).
            FileNotFoundError: ``logdir`` holds no event file.
            ValueError: (a :class:`~optax_lode.tracking.RunAlignmentError`)
                runs that cannot be put on the tick grid, each named.

        Examples:
            >>> runs = Trajectories.from_tensorboard(  # doctest: +SKIP
            ...     "logs/", loss="train/loss", metric="val/accuracy", lr="lr")
        """
        from optax_lode.tracking import from_tensorboard

        return from_tensorboard(logdir, **options)

    # -- writers ---------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """Long format: one row per valid (run, tick), plus the ``info`` columns.

        ``Trajectories.from_dataframe(traj.to_dataframe())`` gives back the same
        runs (padding is simply absent) when its grid ends with a tick some run
        reached; otherwise pass ``num_ticks=table.attrs["num_ticks"]``, the
        grid's length, which :meth:`to_parquet` files keep and
        :meth:`from_parquet` reads. CSV drops it: pass ``num_ticks`` to
        :meth:`from_csv`. A known :attr:`steps_per_tick` is kept the same way
        (``attrs["steps_per_tick"]``; CSV drops it too: pass
        ``steps_per_tick`` to :meth:`from_csv`), and so is
        :attr:`metric_negated` (``attrs["metric_negated"]``, only when true;
        :meth:`from_csv` takes ``metric_negated=True``).

        Returns:
            A new table with columns ``run``, ``tick``, ``loss``, ``metric``,
            ``lr`` and then the :attr:`info` columns, and ``attrs`` as above.

        Examples:
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]])
            >>> table = runs.to_dataframe()
            >>> list(table.columns)
            ['run', 'tick', 'loss', 'metric', 'lr', 'schedule', 'seed']
            >>> table.attrs
            {'num_ticks': 2}
        """
        r, t = np.nonzero(self.mask)
        out = pd.DataFrame(
            {
                "run": np.asarray(self.run_ids, dtype=object)[r],
                "tick": t.astype(np.int64),
                "loss": self.loss[r, t],
                "metric": self.metric[r, t],
                "lr": self.lr[r, t],
            }
        )
        for c in self.info.columns:
            out[c] = self.info[c].to_numpy()[r]
        out.attrs["num_ticks"] = self.num_ticks
        if self.steps_per_tick is not None:
            out.attrs["steps_per_tick"] = self.steps_per_tick
        if self.metric_negated:
            out.attrs["metric_negated"] = True
        return out

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Writes :meth:`to_dataframe` as Parquet (atomically).

        The file keeps everything: the grid's length, :attr:`steps_per_tick`,
        :attr:`metric_negated` and every :attr:`info` column's type;
        :meth:`from_parquet` reads it back.

        Args:
            path: the file to write (conventionally ``*.parquet``); its
                directory must exist. An existing file is replaced.

        Raises:
            ValueError: an :attr:`info` column Parquet cannot hold (of mixed
                types, say), naming it, or another value pyarrow refuses.
            FileNotFoundError: ``path``'s directory does not exist.
            IsADirectoryError: ``path`` is a directory.
            OSError: the file cannot be written (no permission, say), naming
                ``path``.

        Examples:
            >>> import os, tempfile
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]], steps_per_tick=5)
            >>> path = os.path.join(tempfile.mkdtemp(), "runs.parquet")
            >>> runs.to_parquet(path)
            >>> Trajectories.from_parquet(path).digest() == runs.digest()
            True
        """
        import pyarrow as pa

        df = self.to_dataframe()
        try:
            atomic_write(path, lambda p: df.to_parquet(p, index=False))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            bad = [c for c in self.info.columns if not _arrow_can_hold(self.info[c])]
            if not bad:  # not an info column's type: pyarrow's own words
                raise ValueError(
                    f"cannot write {os.fspath(path)!r} as Parquet: {err}"
                ) from err
            raise ValueError(
                f"cannot write {os.fspath(path)!r} as Parquet ({err}): Parquet "
                f"gives each column one type, and info column(s) {bad} have "
                "none (mixed types, or objects); convert them, e.g. "
                "traj.info[col] = traj.info[col].astype(str), or write CSV."
            ) from None

    def to_csv(self, path: str | os.PathLike) -> None:
        """Writes :meth:`to_dataframe` as CSV (atomically).

        CSV keeps neither the grid's length, nor :attr:`steps_per_tick`, nor
        :attr:`metric_negated` (Parquet keeps them; runs whose metric is
        negated get a warning, since reading them back as logged and negating
        again would undo it): give them to :meth:`from_csv` when reading
        back.

        Args:
            path: the file to write (conventionally ``*.csv``); its directory
                must exist. An existing file is replaced.

        Raises:
            FileNotFoundError: ``path``'s directory does not exist.
            IsADirectoryError: ``path`` is a directory.
            OSError: the file cannot be written (no permission, say), naming
                ``path``.

        Warns:
            UserWarning: the runs' metric is negated (:attr:`metric_negated`),
                which the file cannot record.

        Examples:
            >>> import os, tempfile
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]])
            >>> path = os.path.join(tempfile.mkdtemp(), "runs.csv")
            >>> runs.to_csv(path)
            >>> open(path).readline().strip()
            'run,tick,loss,metric,lr,schedule,seed'
        """
        if self.metric_negated:
            warnings.warn(
                f"{os.fspath(path)!r} holds the negated metric, and CSV cannot "
                "say so: read it back with Trajectories.from_csv(..., "
                "metric_negated=True) (and without optax-lode fit's "
                "--lower-is-better), or write Parquet, which keeps it.",
                UserWarning,
                stacklevel=2,
            )
        atomic_write(path, lambda p: self.to_dataframe().to_csv(p, index=False))

    # -- selection ---------------------------------------------------------------

    def select(self, runs: ArrayLike) -> Trajectories:
        """The runs picked by integer indices, a bool mask over runs, or run ids.

        Args:
            runs: integer indices (negative ones count from the end), a
                boolean mask of shape ``(num_runs,)``, or run ids (strings);
                each run at most once. The result has the runs in this order.

        Returns:
            A new ``Trajectories`` of those runs (arrays and :attr:`info`
            copied; :attr:`steps_per_tick` and :attr:`metric_negated` kept).

        Raises:
            ValueError: an empty selection, a run picked twice, an index out
                of range, an unknown run id, a boolean mask of another shape,
                or another kind of selection (floats, say).

        Examples:
            >>> runs = Trajectories.from_arrays(
            ...     [[1.0], [2.0], [3.0]], [[0.1], [0.2], [0.3]], [[1e-2]] * 3,
            ...     run_ids=["a", "b", "c"])
            >>> runs.select([2, 0]).run_ids, runs.select(["b"]).run_ids
            (('c', 'a'), ('b',))
            >>> runs.select([True, False, True]).run_ids
            ('a', 'c')
        """
        runs = np.asarray(runs)
        if runs.dtype == bool:
            if runs.shape != (self.num_runs,):
                raise ValueError(
                    f"a boolean selection needs shape ({self.num_runs},); "
                    f"got {runs.shape}."
                )
            idx = np.nonzero(runs)[0]
        elif runs.dtype.kind in "US" or runs.dtype == object:
            pos = {r: i for i, r in enumerate(self.run_ids)}
            unknown = [r for r in runs.reshape(-1) if str(r) not in pos]
            if unknown:
                raise ValueError(f"unknown run ids {unknown}.")
            idx = np.array([pos[str(r)] for r in runs.reshape(-1)], np.int64)
        elif runs.dtype.kind in "iu":
            idx = runs.reshape(-1).astype(np.int64)
            if idx.size and (idx.min() < -self.num_runs or idx.max() >= self.num_runs):
                raise ValueError(
                    f"run index out of range for {self.num_runs} runs: {idx.tolist()}."
                )
            idx = idx % self.num_runs
        elif runs.size == 0:  # select([]): numpy reads it as float64
            idx = np.zeros(0, np.int64)
        else:
            raise ValueError(
                "select takes integer indices, a boolean mask or run ids; got "
                f"dtype {runs.dtype}."
            )
        if idx.size == 0:
            raise ValueError("the selection is empty; select at least one run.")
        picked, times = np.unique(idx, return_counts=True)
        if picked.size != idx.size:
            twice = self.run_ids[int(picked[times > 1][0])]
            raise ValueError(
                f"the selection picks run {twice!r} more than once; run ids are "
                "unique (to resample runs, e.g. a bootstrap, use the arrays: "
                "Trajectories.from_arrays with new run ids)."
            )
        return Trajectories(
            loss=self.loss[idx].copy(),
            metric=self.metric[idx].copy(),
            lr=self.lr[idx].copy(),
            mask=self.mask[idx].copy(),
            run_ids=tuple(self.run_ids[i] for i in idx),
            info=self.info.iloc[idx].copy(),
            steps_per_tick=self.steps_per_tick,
            metric_negated=self.metric_negated,
        )

    def with_steps_per_tick(self, steps_per_tick: int | None) -> Trajectories:
        """The same runs with their clock declared (or forgotten, with ``None``).

        For runs whose source does not say how many optimizer steps a tick
        is (arrays, CSV), or says it in other units (a tracker whose step
        counts epochs or samples): a model fitted to them records it, and
        :func:`~optax_lode.lode_schedule` checks a live run against it.

        Args:
            steps_per_tick: optimizer steps per tick, a whole number >= 1, or
                ``None`` for unknown.

        Returns:
            A new ``Trajectories`` with the same runs (arrays shared, they
            are read-only; :attr:`info` copied).

        Raises:
            ValueError: ``steps_per_tick`` is neither a whole number >= 1 nor
                ``None``.

        Examples:
            >>> import numpy as np
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]],
            ...                                 [[1e-2, 1e-2]])
            >>> runs.with_steps_per_tick(31).steps_per_tick
            31
        """
        # info is the one mutable part: a copy, as select gives.
        return dataclasses.replace(
            self, info=self.info.copy(), steps_per_tick=steps_per_tick
        )

    def with_negated_metric(self) -> Trajectories:
        """The same runs with their metric negated, for a lower-is-better one.

        The metric is higher-is-better everywhere: :meth:`best_run`, the
        model's warm-start path (its best run's), :func:`~optax_lode.evaluate`'s
        trial selection and the schedule's decisions. Runs whose ``metric`` is
        a validation loss or an error rate need it negated, or the worst run
        is taken for the best. Masked entries stay NaN; everything else is
        unchanged (negating twice gives the runs back). The result says so
        (:attr:`metric_negated`), and a model fitted to it records it
        (``model.metric_negated``, shown by ``optax-lode inspect``): the model
        predicts the negated metric, so a live run passes the negated value
        too (``val_metric=-val_loss`` to :func:`~optax_lode.lode_schedule`'s
        update), and runs given to :func:`~optax_lode.evaluate` are negated
        likewise.

        Returns:
            A new ``Trajectories`` with ``metric`` negated and
            :attr:`metric_negated` flipped.

        Examples:
            >>> runs = Trajectories.from_arrays([[1.0, 0.5]], [[0.9, 0.4]],
            ...                                 [[1e-2, 1e-2]])
            >>> neg = runs.with_negated_metric()
            >>> neg.metric, neg.metric_negated
            (array([[-0.9, -0.4]]), True)
        """
        # info is the one mutable part: a copy, as select gives.
        return dataclasses.replace(
            self,
            metric=-self.metric,
            info=self.info.copy(),
            metric_negated=not self.metric_negated,
        )

    def __getitem__(self, runs: int | str | slice | ArrayLike) -> Trajectories:
        """``traj[runs]``: :meth:`select`, also taking one index, one run id or
        a slice.

        Args:
            runs: an int or a run id (a one-run result), a slice of runs, or
                anything :meth:`select` takes.

        Returns:
            A new ``Trajectories`` of those runs.

        Raises:
            ValueError: as :meth:`select` (an empty slice, say).

        Examples:
            >>> runs = Trajectories.from_arrays(
            ...     [[1.0], [2.0], [3.0]], [[0.1], [0.2], [0.3]], [[1e-2]] * 3,
            ...     run_ids=["a", "b", "c"])
            >>> runs[1].run_ids, runs["c"].run_ids, runs[:2].run_ids
            (('b',), ('c',), ('a', 'b'))
        """
        if isinstance(runs, slice):
            runs = np.arange(self.num_runs)[runs]
        elif isinstance(runs, int | np.integer | str):
            runs = [runs]
        return self.select(runs)

    def split(
        self, held_out: float = 0.2, seed: int = 0
    ) -> tuple[Trajectories, Trajectories]:
        """Splits by run into ``(train, held_out)``.

        Args:
            held_out: fraction of runs held out, in (0, 1); at least one run goes
                to each side.
            seed: seed of the random permutation, in ``[0, 2**32)``.

        Returns:
            ``(train, held_out)``, each keeping the original run order;
            ``round(held_out * num_runs)`` runs (clipped to ``1 ..
            num_runs - 1``) are held out.

        Raises:
            ValueError: ``held_out`` is not in (0, 1), there are fewer than 2
                runs, or ``seed`` is not a whole number in ``[0, 2**32)``.

        Examples:
            >>> runs = Trajectories.from_arrays(
            ...     [[1.0]] * 5, [[0.1]] * 5, [[1e-2]] * 5)
            >>> train, held = runs.split(held_out=0.4, seed=0)
            >>> train.num_runs, held.num_runs
            (3, 2)
        """
        if not 0.0 < float(held_out) < 1.0:
            raise ValueError(f"held_out must be a fraction in (0, 1); got {held_out}.")
        if self.num_runs < 2:
            raise ValueError(
                f"cannot split {self.num_runs} run(s); need at least 2 runs."
            )
        n_held = min(max(1, round(held_out * self.num_runs)), self.num_runs - 1)
        seed = check_seed(seed)
        perm = np.random.default_rng(seed).permutation(self.num_runs)
        is_held = np.zeros(self.num_runs, bool)
        is_held[perm[:n_held]] = True
        return self.select(~is_held), self.select(is_held)

    def best_index(self) -> int:
        """Index of the run with the highest final metric (ties: the first).

        Runs that end before the last tick (early stop, divergence) only count
        if no run is complete; a non-finite final metric counts as the lowest.

        Returns:
            The run's index in ``0 .. num_runs - 1``.

        Examples:
            >>> runs = Trajectories.from_arrays(
            ...     [[1.0, 0.5], [1.0, 0.4]], [[0.1, 0.6], [0.1, 0.8]],
            ...     [[1e-2] * 2, [3e-2] * 2])
            >>> runs.best_index()
            1
        """
        final = np.where(np.isfinite(self.final_metric), self.final_metric, -np.inf)
        # A run that stopped short of the grid (ended early or diverged) is ranked
        # below every complete run: its "final" metric is not a final one.
        complete = self.lengths == self.num_ticks
        if complete.any():
            final = np.where(complete, final, -np.inf)
        return int(np.argmax(final))

    def best_run(self) -> Trajectories:
        """The run with the highest final metric, as a one-run ``Trajectories``.

        Runs that end before the last tick (early stop, divergence) only count if
        no run is complete.

        Returns:
            :meth:`select` of :meth:`best_index`.

        Examples:
            >>> runs = Trajectories.from_arrays(
            ...     [[1.0, 0.5], [1.0, 0.4]], [[0.1, 0.6], [0.1, 0.8]],
            ...     [[1e-2] * 2, [3e-2] * 2], run_ids=["slow", "fast"])
            >>> runs.best_run().run_ids
            ('fast',)
        """
        return self.select([self.best_index()])

    def digest(self) -> str:
        """The SHA-256 (hex) of the runs' content: their ids and series, in order.

        What :func:`optax_lode.fit` reads, and records in a model's training
        summary (``runs_digest``), so a model can be checked against the runs
        it is said to be fitted to. The ``info`` table is not part of it.

        Returns:
            64 hex digits.

        Examples:
            >>> import numpy as np
            >>> a = Trajectories.from_arrays([[1.0, 0.5]], [[0.1, 0.2]], [[1e-2, 1e-2]])
            >>> b = Trajectories.from_arrays([[1.0, 0.4]], [[0.1, 0.2]], [[1e-2, 1e-2]])
            >>> a.digest() == a.select([0]).digest(), a.digest() == b.digest()
            (True, False)
        """
        h = hashlib.sha256(repr(self.mask.shape).encode())
        for arr in (self.loss, self.metric, self.lr, self.mask):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\x00".join(self.run_ids).encode())
        return h.hexdigest()


# -- helpers --------------------------------------------------------------------


def _hashable(value: Any) -> Any:
    """``value`` as something hashable that compares as it does: a list, tuple,
    array, dict or set (a Parquet list or struct cell) by its contents."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return frozenset(_hashable(v) for v in value)
    return value


def _arrow_can_hold(column: pd.Series) -> bool:
    """Whether pyarrow can type ``column`` (for :meth:`Trajectories.to_parquet`'s
    error: which info columns it cannot)."""
    import pyarrow as pa

    try:
        pa.array(column.tolist(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True


class TickColumnWarning(UserWarning):
    """A tick column that looks like step numbers or counts from 1 (not
    exported: the tracker imports, whose aligner numbers the ticks, filter it
    by this category)."""


def _check_tick_column(ticks: np.ndarray, mask: np.ndarray, name: str) -> None:
    """Warns about tick values that look like something else: the grid is
    every integer from 0, so step numbers make a sparse grid of many empty
    ticks, and ticks counted from 1 an empty tick 0 in every run; either fits
    a model of another ``T`` than the runs' (refused later by the schedule,
    with advice about the clock)."""
    step = int(np.gcd.reduce(ticks)) if ticks.size else 0
    distinct = np.unique(ticks).size
    if step > 1 and distinct >= 3:
        warnings.warn(
            f"every value of column {name!r} (tick) is a multiple of {step}: "
            f"are they step numbers, logged every {step} steps? Ticks count "
            "0, 1, 2, ...: divide the steps by the steps per tick (and floor, "
            "or subtract 1 after dividing if each record is a tick's last "
            "step).",
            TickColumnWarning,
            stacklevel=caller_stacklevel(),
        )
    elif mask.mean() < 0.5 and mask.shape[1] > 1000:
        warnings.warn(
            f"only {mask.mean():.0%} of the {mask.shape[1]}-tick grid holds a "
            f"record: are the values of column {name!r} step numbers rather "
            "than ticks? Divide steps by steps_per_tick.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    elif distinct >= 3 and ticks.min() == 1:
        warnings.warn(
            f"no run has tick 0 (column {name!r} starts at 1): the grid starts "
            f"at 0, so every run gets an empty first tick and the runs are "
            f"{mask.shape[1]} ticks long. If the ticks count from 1 (a tick's "
            "last step divided by the steps per tick, say), subtract 1.",
            TickColumnWarning,
            stacklevel=caller_stacklevel(),
        )


def _check_steps_per_tick(value: Any) -> int:
    try:
        k = whole("steps_per_tick", value)
    except ValueError:
        k = 0
    if k < 1:
        raise ValueError(
            f"steps_per_tick must be a whole number >= 1, or None when unknown; "
            f"got {value!r}."
        )
    return k


def _make_info(info, run_ids: tuple[str, ...]) -> pd.DataFrame:
    n = len(run_ids)
    if info is None:
        df = pd.DataFrame(index=pd.Index(run_ids, name="run"))
    elif isinstance(info, pd.DataFrame):
        df = info.copy()
        if len(df) != n:
            raise ValueError(f"info has {len(df)} rows for {n} runs; one row per run.")
        labels = [str(i) for i in df.index]
        named = set(labels) & set(run_ids)
        if named and named != set(labels) and not isinstance(df.index, pd.RangeIndex):
            # Some labels are run ids, some not: by position, a row could land
            # on another run than the one it names.
            stray = sorted(set(labels) - set(run_ids))[:5]
            raise ValueError(
                f"info's index names some of the run ids but not others ({stray} "
                "are not run ids): index it by exactly the run ids, or pass "
                "info.reset_index(drop=True) to pair its rows with the runs in order."
            )
        if (
            set(labels) == set(run_ids)
            and labels != list(run_ids)
            and not isinstance(df.index, pd.RangeIndex)  # a fresh frame's default
        ):
            # An integer index that reorders 0..n-1 (a sorted frame, say) may
            # be run ids or a leftover row order: refuse to guess.
            if pd.api.types.is_integer_dtype(df.index):
                raise ValueError(
                    f"info's integer index {labels[:5]}... reorders the run ids "
                    f"{list(run_ids[:5])}...: are its rows in run order, or indexed "
                    "by run id? Pass info.reset_index(drop=True) for run order, or "
                    "index it by the run ids as strings."
                )
            df.index = pd.Index(labels)
            df = df.loc[list(run_ids)]
        df.index = pd.Index(run_ids, name="run")
    elif isinstance(info, Mapping):
        cols = {}
        for c, v in info.items():
            v = list(v)
            if len(v) != n:
                raise ValueError(
                    f"info column {c!r} has {len(v)} values for {n} runs; one per run."
                )
            cols[c] = v
        df = pd.DataFrame(cols, index=pd.Index(run_ids, name="run"))
    else:
        raise ValueError(
            f"info must be a DataFrame or a mapping column -> values; got {type(info)}."
        )
    # The long format's own columns (to_dataframe) would be overwritten.
    df = df.rename(columns={c: f"info_{c}" for c in df.columns if c in _LONG})
    for c in _INFO_COLUMNS:
        if c not in df:
            df[c] = None
    return df


def _carry_forward(arr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NaN entries of present rows take the run's last value before them (the
    first one after, before the run's first value), as a tracker's records do:
    a metric measured every few ticks, or a rate logged when it changed. Only
    NaN: an infinite value is divergence."""
    filled = pd.DataFrame(np.where(mask, arr, np.nan).T).ffill().bfill().T
    return np.where(mask & np.isnan(arr), filled.to_numpy(), arr)


def _check_all_nan(arrays, mask, run_ids, names=None):
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(
            f"run {run_ids[int(np.argmax(empty))]!r} has no valid tick (its mask "
            "is False everywhere); drop the run."
        )
    for role in _SERIES:
        arr = arrays[role]
        present = np.where(mask, arr, np.nan)
        all_nan = ~np.any(~np.isnan(present), axis=1)
        if all_nan.any():
            i = int(np.argmax(all_nan))
            col = names[role] if names else role
            raise ValueError(
                f"run {run_ids[i]!r}: column {col!r} ({role}) is all NaN; drop the "
                "run or fill the column."
            )


_COMPRESSED = ("gz", "bz2", "xz")
"""CSV compressions read by extension (pandas; the standard library's codecs)."""


def file_format(path: str | os.PathLike) -> str | None:
    """``"csv"`` or ``"parquet"`` by ``path``'s extension (any case; a CSV
    file may be compressed, a Parquet dataset directory typed with its
    trailing separator), or None."""
    name = os.fsdecode(path).rstrip("/" + os.sep).lower()
    if name.endswith((".csv", *(f".csv.{z}" for z in _COMPRESSED))):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def _check_runs_file(path, kind: str) -> None:
    """Refuses a local ``path`` that holds no runs file, naming it: pandas
    says a missing Parquet file by its bare name, a missing CSV file by its
    errno, and an empty directory as a table without columns. A directory of
    Parquet files (a dataset) is read; a URL or an open file is left to
    pandas."""
    if not isinstance(path, (str, os.PathLike)):
        return
    text = os.fsdecode(path)
    if "://" in text:
        return
    if not os.path.exists(text):
        raise FileNotFoundError(f"no runs file at {text!r}.")
    if not os.path.isdir(text):
        return
    if kind == "Parquet" and any(
        not name.startswith((".", "_"))
        for _, _, names in os.walk(text)
        for name in names
    ):
        return
    raise IsADirectoryError(
        f"{text!r} is a directory"
        + (" holding no Parquet file" if kind == "Parquet" else "")
        + f", not a {kind} file of runs; give the file's path."
    )


def _not_csv(path, err: Exception) -> ValueError:
    """A CSV reader's error that does not name the file, naming it."""
    why = (
        "it is not UTF-8 text (a binary file? a Parquet file is read by its "
        ".parquet or .pq name)"
        if isinstance(err, UnicodeDecodeError)
        else str(err).strip()
    )
    name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else path
    return ValueError(f"cannot read {name!r} as CSV text: {why}.")


def _clean(arrays, mask, run_ids, names=None) -> np.ndarray:
    """Masks divergence, checks positivity, NaN-fills invalid entries (in place)."""
    names = names or {r: r for r in _SERIES}
    _check_all_nan(arrays, mask, run_ids, names)
    finite = np.ones_like(mask)
    for role in _SERIES:
        finite &= np.isfinite(arrays[role])
    bad = mask & ~finite
    mask = mask.copy()
    for i in np.nonzero(bad.any(axis=1))[0]:
        first = int(np.argmax(bad[i]))
        which = [names[r] for r in _SERIES if not np.isfinite(arrays[r][i, first])]
        mask[i, first:] = False
        warnings.warn(
            f"run {run_ids[i]!r} diverged: non-finite {', '.join(which)} at tick "
            f"{first}; masked from tick {first} on.",
            DivergedRunWarning,
            stacklevel=caller_stacklevel(),
        )
    for role in ("loss", "lr"):
        arr = arrays[role]
        nonpos = mask & (arr <= 0)
        if nonpos.any():
            i, t = (int(x[0]) for x in np.nonzero(nonpos))
            column = repr(names[role])
            if names[role] != role:  # the role only when the name is another
                column += f" ({role})"
            raise ValueError(
                f"run {run_ids[i]!r}: column {column} has the "
                f"non-positive value {float(arr[i, t])} at tick {t}; {role} is "
                "log-transformed, so it must be positive: "
                + (
                    "drop the tick, or floor a loss that underflowed to 0 at "
                    "optax_lode.runs.ZERO_LOSS_FLOOR as run_sweep and the "
                    "tracker imports do."
                    if role == "loss" and arr[i, t] == 0
                    else "log a positive loss (a negative log-likelihood, "
                    "say, shifted by a constant that keeps every run's "
                    "losses above 0)."
                    if role == "loss"
                    else "drop the tick."
                )
            )
    empty = ~mask.any(axis=1)
    if empty.any():
        i = int(np.argmax(empty))
        raise ValueError(
            f"run {run_ids[i]!r} has no valid tick (it diverged at its first tick); "
            "drop the run."
        )
    for role in _SERIES:
        arrays[role][~mask] = np.nan
    return mask
