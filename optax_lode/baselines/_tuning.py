"""The tuning protocol of the paper (A.2): grid, select on validation, judge on test.

Every baseline is trained over the same learning-rate grid with a few tuning
seeds, the rate with the best final validation metric is selected, and the
baseline is re-run at that rate with fresh seeds; those runs' test metrics are
its result (mean +- std over seeds, as in the paper's Table 1).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from optax_lode._seeds import check_seed, check_seeds
from optax_lode.baselines._registry import BASELINES, eval_params, make_baseline
from optax_lode.sweep._loop import check_clock

__all__ = ["SeedRun", "TrainRun", "TuneResult", "final_val_metric", "tune", "tune_all"]


class TrainRun(Protocol):
    """The "train one run" callable :func:`tune` needs.

    ``optax_lode.sweep.train_run`` is one. It trains ``task`` with ``tx`` from
    ``seed``, calling ``tx.update(grads, state, params, value=loss,
    val_metric=v)``, evaluates at ``eval_fn(params, opt_state)``, and returns
    an object with ``metric`` (per-tick validation metric; NaN once diverged)
    and ``test_metric`` (final test metric; NaN if diverged). With
    ``tune(..., batched=True)`` it is called with ``seeds=`` (a list) instead
    of ``seed=`` and returns every field with a leading seeds axis, like
    ``optax_lode.sweep.train_runs``.
    """

    def __call__(
        self,
        task: Any,
        tx: Any,
        *,
        seed: int,
        epochs: int | None,
        ticks_per_epoch: int,
        eval_fn: Callable[[Any, Any], Any],
        **kwargs: Any,
    ) -> Any:
        """Trains one run.

        Args:
            task: the task to train.
            tx: the baseline, from :func:`make_baseline`.
            seed: the run's seed (``seeds``, a list, when batched).
            epochs: run length in epochs.
            ticks_per_epoch: ticks per epoch (the records' clock).
            eval_fn: ``eval_fn(params, opt_state)`` gives the parameters to
                evaluate the metrics at (:func:`eval_params`).
            **kwargs: the ``run_kwargs`` given to :func:`tune`.

        Returns:
            The run's result, with ``metric`` (per-tick validation metric)
            and ``test_metric``, like ``optax_lode.sweep.RunResult``.
        """
        ...


@dataclasses.dataclass(frozen=True)
class SeedRun:
    """Run ``index`` of a result batched over ``count`` seeds.

    Reads any attribute of the batched result (``optax_lode.sweep.train_runs``
    gives every array a leading seeds axis) at ``index``; ``run_seconds``,
    ``compile_seconds`` and ``seconds_per_step`` are the batch's, amortised
    over its runs.

    Attributes:
        result: the batched result, every array with a leading seeds axis.
        index: the run's position on that axis.
        count: the number of runs in the batch (what times are divided by).

    Examples:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> from optax_lode.baselines import SeedRun
        >>> batch = SimpleNamespace(metric=np.array([[0.5, 0.6], [0.7, 0.8]]),
        ...                         run_seconds=4.0)
        >>> run = SeedRun(batch, index=1, count=2)
        >>> run.metric.tolist(), run.run_seconds
        ([0.7, 0.8], 2.0)
    """

    result: Any
    index: int
    count: int

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("result", "index", "count"):
            raise AttributeError(name)
        value = getattr(self.result, name)
        if name in ("run_seconds", "compile_seconds", "seconds_per_step"):
            return value / self.count
        if isinstance(value, int | float | str | bool) or value is None:
            return value
        return jax.tree.map(lambda x: x[self.index] if np.ndim(x) >= 1 else x, value)


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tune` for one baseline.

    Attributes:
        name: the baseline.
        learning_rates: the grid, ``(grid,)``.
        val_metrics: final validation metric per grid point and tuning seed,
            ``(grid, tuning_seeds)``; NaN for a diverged run.
        best_learning_rate: the selected rate: the fewest diverged runs,
            then the best mean final validation metric of the runs that did
            not diverge (as :func:`tune` says).
        seeds: the fresh seeds of the final runs.
        test_metrics: their test metrics, ``(seeds,)``.
        final_val_metrics: their final validation metrics, ``(seeds,)``.
        runs: the final runs' results, as ``train_run`` returned them.
    """

    name: str
    learning_rates: np.ndarray
    val_metrics: np.ndarray
    best_learning_rate: float
    seeds: tuple[int, ...]
    test_metrics: np.ndarray
    final_val_metrics: np.ndarray
    runs: tuple[Any, ...] = dataclasses.field(repr=False, default=())

    @property
    def test_mean(self) -> float:
        """Mean test metric over the final seeds (NaN if any diverged)."""
        return float(np.mean(self.test_metrics))

    @property
    def test_std(self) -> float:
        """Sample standard deviation of the test metric over the final seeds
        (NaN for one seed, as :func:`optax_lode.evaluation.summarize`)."""
        n = self.test_metrics.size
        return float(np.std(self.test_metrics, ddof=1)) if n > 1 else float("nan")


def final_val_metric(result: Any) -> float:
    """The validation metric at the end of a run (NaN if the run diverged).

    Args:
        result: what a :class:`TrainRun` returned, e.g. an
            ``optax_lode.sweep.RunResult``: its ``metric`` holds the per-tick
            validation metrics, the last at the end of the run.

    Returns:
        The last entry of ``result.metric``, as a float (NaN when the run
        diverged).

    Raises:
        TypeError: ``result`` has no ``metric`` attribute (or it is ``None``).
        ValueError: ``result.metric`` is empty.

    Examples:
        >>> from types import SimpleNamespace
        >>> from optax_lode.baselines import final_val_metric
        >>> final_val_metric(SimpleNamespace(metric=[0.5, 0.75, 0.8]))
        0.8
    """
    metric = getattr(result, "metric", None)
    if metric is None:
        raise TypeError(
            "tune: train_run must return an object with a per-tick `metric` "
            f"array (like optax_lode.sweep.RunResult); got {type(result).__name__}."
        )
    metric = np.asarray(metric, np.float64).reshape(-1)
    if metric.size == 0:
        raise ValueError("tune: train_run returned an empty `metric` record.")
    return float(metric[-1])


def _test_metric(result: Any) -> float:
    if not hasattr(result, "test_metric"):
        raise TypeError(
            "tune: train_run must return an object with a `test_metric` "
            f"(like optax_lode.sweep.RunResult); got {type(result).__name__}."
        )
    return float(np.asarray(result.test_metric))


def _select(grid: np.ndarray, val: np.ndarray) -> float:
    """The rate of ``grid`` chosen by the validation metrics ``val[rate, seed]``:
    fewest diverged seeds first, then the best mean over the seeds that did
    not diverge; the smallest rate if every run diverged."""
    finite = np.isfinite(val)
    diverged = (~finite).sum(axis=1)
    if diverged.min() == val.shape[1]:
        return float(grid.min())
    # Ranking diverged runs as worst alone let a rate that diverged on every
    # seed win when every rate had one diverged run (all scores -inf).
    kept = diverged == diverged.min()
    mean = np.where(finite, val, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    return float(grid[int(np.argmax(np.where(kept, mean, -np.inf)))])


def tune(
    train_run: TrainRun,
    task: Any,
    name: str,
    *,
    learning_rates: Sequence[float] | None = None,
    tuning_seeds: Sequence[int] = (0,),
    num_seeds: int = 5,
    first_seed: int = 1000,
    epochs: int | None = None,
    ticks_per_epoch: int = 1,
    weight_decay: float | None = None,
    options: dict[str, Any] | None = None,
    batched: bool = False,
    **run_kwargs: Any,
) -> TuneResult:
    """Tunes one baseline by the paper's protocol (A.2).

    1. For every rate of the grid and every tuning seed, build the baseline
       (:func:`make_baseline`) and train one run with ``train_run``.
    2. Select a rate by the *final validation* metric: among the rates with
       the fewest diverged tuning runs (non-finite metric), the one with the
       best mean metric over its runs that did not diverge (the first in the
       grid on a tie). If every run of every rate diverged, the smallest rate
       is kept (and the final runs will show it).
    3. Re-run at that rate with ``num_seeds`` fresh seeds ``first_seed,
       first_seed + 1, ...`` (disjoint from the tuning seeds) and report their
       *test* metrics.

    Runs are evaluated at :func:`eval_params` (schedule-free's average).

    Args:
        train_run: trains one run, e.g. ``optax_lode.sweep.train_run``; called
            as ``train_run(task, tx, seed=, epochs=, ticks_per_epoch=, eval_fn=,
            **run_kwargs)``.
        task: the task to train.
        name: a baseline of ``BASELINES``.
        learning_rates: the grid; default ``BASELINES[name].
            default_learning_rates`` (the paper's grid, or multipliers for the
            learning-rate-free methods).
        tuning_seeds: seeds of the grid runs.
        num_seeds: number of final runs.
        first_seed: first fresh seed of the final runs.
        epochs: run length; default ``task.default_epochs``.
        ticks_per_epoch: ticks per epoch (the records' clock).
        weight_decay: default ``task.weight_decay`` (0 if it has none).
        options: baseline-specific options for :func:`make_baseline`.
        batched: ``train_run`` trains several seeds at once, as
            ``optax_lode.sweep.train_runs`` does (called with ``seeds=`` instead
            of ``seed=``; every result field gains a leading seeds axis): one
            compilation per learning rate instead of one per run. The runs are
            then :class:`SeedRun` views of the batched results.
        **run_kwargs: passed on to ``train_run``.

    Returns:
        A :class:`TuneResult`.

    Raises:
        ValueError: an unknown baseline, an empty or non-positive learning-rate
            grid or one with duplicates, tuning seeds given as a count, empty
            or with duplicates, a seed that is not a
            whole number in [0, 2**32), a bad ``num_seeds``, final seeds that
            overlap the tuning seeds, a run clock the task cannot have
            (``epochs`` or ``ticks_per_epoch`` < 1, or more ticks per epoch
            than steps), or an argument :func:`make_baseline` refuses.
        TypeError: ``train_run`` returned an object without ``metric`` or
            ``test_metric``; an option the baseline does not accept.

    Examples:
        >>> from optax_lode.baselines import tune
        >>> from optax_lode.sweep import train_run
        >>> from optax_lode.tasks import get_task
        >>> result = tune(train_run, get_task("nqm"), "cosine",
        ...               num_seeds=3)  # doctest: +SKIP
        >>> result.best_learning_rate, result.test_mean  # doctest: +SKIP
    """
    spec = BASELINES.get(name)
    if spec is None:
        raise ValueError(
            f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}."
        )
    grid = np.asarray(
        spec.default_learning_rates if learning_rates is None else learning_rates,
        np.float64,
    )
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
        raise ValueError(
            f"learning_rates must be a non-empty list of positive numbers, got {grid}."
        )
    if np.unique(grid).size != grid.size:  # it would train the same runs twice
        raise ValueError(f"learning_rates has duplicates: {grid.tolist()}.")
    if isinstance(tuning_seeds, int | np.integer):
        raise ValueError(
            f"tuning_seeds must be a sequence of seeds, got {tuning_seeds!r} "
            f"(for one seed: ({tuning_seeds},))."
        )
    tuning_seeds = check_seeds(tuning_seeds)
    if not tuning_seeds:
        raise ValueError("tuning_seeds is empty: give at least one seed.")
    if len(set(tuning_seeds)) != len(tuning_seeds):  # one run counted twice
        raise ValueError(f"tuning_seeds has duplicates: {list(tuning_seeds)}.")
    if isinstance(num_seeds, bool) or not (
        isinstance(num_seeds, int | np.integer) and num_seeds >= 1
    ):
        raise ValueError(f"num_seeds must be an int >= 1, got {num_seeds!r}.")
    num_seeds = int(num_seeds)
    # Checked before the grid trains, not when the final runs start.
    first_seed = check_seed(first_seed)
    final_seeds = check_seeds(range(first_seed, first_seed + num_seeds))
    if set(final_seeds) & set(tuning_seeds):
        raise ValueError(
            f"the final seeds {final_seeds} overlap the tuning seeds {tuning_seeds}: "
            "choose first_seed so that the final runs use fresh seeds."
        )
    epochs = task.default_epochs if epochs is None else epochs
    # The steps a run makes: a tick is whole steps, so fewer than epochs x
    # steps_per_epoch when ticks_per_epoch does not divide the epoch.
    ticks, steps_per_tick = check_clock(task, epochs, ticks_per_epoch)
    total_steps = ticks * steps_per_tick
    if weight_decay is None:
        weight_decay = float(getattr(task, "weight_decay", 0.0))
    options = dict(options or {})
    eval_fn = functools.partial(eval_params, name)

    def runs(lr: float, seeds: tuple[int, ...]) -> list[Any]:
        tx = make_baseline(
            name,
            learning_rate=float(lr),
            total_steps=total_steps,
            weight_decay=weight_decay,
            **options,
        )
        common = dict(
            epochs=epochs,
            ticks_per_epoch=ticks_per_epoch,
            eval_fn=eval_fn,
            **run_kwargs,
        )
        if batched:
            result = train_run(task, tx, seeds=list(seeds), **common)
            return [SeedRun(result, i, len(seeds)) for i in range(len(seeds))]
        return [train_run(task, tx, seed=seed, **common) for seed in seeds]

    val = np.array(
        [[final_val_metric(r) for r in runs(lr, tuning_seeds)] for lr in grid]
    )
    best = _select(grid, val)
    finals = tuple(runs(best, final_seeds))
    return TuneResult(
        name=name,
        learning_rates=grid,
        val_metrics=val,
        best_learning_rate=best,
        seeds=final_seeds,
        test_metrics=np.array([_test_metric(r) for r in finals]),
        final_val_metrics=np.array([final_val_metric(r) for r in finals]),
        runs=finals,
    )


def tune_all(
    train_run: TrainRun,
    task: Any,
    names: Iterable[str] | None = None,
    **kwargs: Any,
) -> dict[str, TuneResult]:
    """:func:`tune` for several baselines (default: all of ``BASELINES``).

    Args:
        train_run: trains one run, e.g. ``optax_lode.sweep.train_run``.
        task: the task.
        names: baselines to tune; default all.
        **kwargs: passed to :func:`tune` for every baseline.

    Returns:
        ``{name: TuneResult}`` in the order of ``names``.

    Raises:
        ValueError: as :func:`tune`, for the first baseline that fails.
        TypeError: as :func:`tune`, or ``names`` given as one string.

    Examples:
        >>> from optax_lode.baselines import tune_all
        >>> from optax_lode.sweep import train_run
        >>> from optax_lode.tasks import get_task
        >>> results = tune_all(train_run, get_task("nqm"),  # doctest: +SKIP
        ...                    ["constant", "cosine"], num_seeds=3)
        >>> {n: r.best_learning_rate for n, r in results.items()}  # doctest: +SKIP
    """
    if isinstance(names, str):  # its characters would be tried as names
        raise TypeError(
            f"names must be a list of baseline names, got the string {names!r} "
            f"(for one: [{names!r}])."
        )
    names = list(BASELINES) if names is None else list(names)
    return {n: tune(train_run, task, n, **kwargs) for n in names}
