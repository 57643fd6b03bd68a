"""Training one run (or many seeds of one optimizer) with any optax transformation."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_lode._seeds import check_seeds
from optax_lode.sweep._loop import (
    LearningRateFn,
    check_clock,
    default_lr_fn,
    finish_records,
    finite_or_nan,
    init_carry,
    tick,
)
from optax_lode.tasks import Task, check_task
from optax_lode.tasks._protocol import steps_per_epoch

RUNS_AXIS = "runs"
"""The name of :func:`train_runs`' vmap axis over seeds: build a
``lode_schedule(..., axis_name=RUNS_AXIS)`` for it, so its decisions stay
behind one ``lax.cond`` instead of running at every step."""

PyTree = Any


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`train_run` (and, batched over seeds, of
    :func:`train_runs`: every field then has a leading ``seeds`` axis).

    Attributes:
        loss: ``(ticks,)`` mean training loss over each tick's steps.
        metric: ``(ticks,)`` validation metric at each tick's end.
        lr: ``(ticks,)`` mean learning rate over each tick's steps.
        mask: ``(ticks,)`` False from the first non-finite tick on (divergence);
            masked entries are NaN.
        test_metric: test metric of the final parameters (NaN if diverged).
        params: final parameters.
        model_state: final non-trainable model state.
        opt_state: final optimizer state.
        steps_per_tick: optimizer steps per tick.
        compile_seconds: time to compile the tick program.
        run_seconds: wall time of the ticks after compilation.

    Examples:
        >>> import optax
        >>> from optax_lode.tasks import get_task
        >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
        >>> result = train_run(get_task("nqm"), tx, seed=0, epochs=2)
        >>> result.num_ticks, result.steps_per_tick, result.mask.tolist()
        (2, 50, [True, True])
        >>> [round(float(x), 6) for x in result.lr]
        [0.1, 0.1]
    """

    loss: np.ndarray
    metric: np.ndarray
    lr: np.ndarray
    mask: np.ndarray
    test_metric: float | np.ndarray
    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    steps_per_tick: int
    compile_seconds: float
    run_seconds: float

    @property
    def num_ticks(self) -> int:
        """Ticks of the run (the last axis of ``loss``)."""
        return int(self.loss.shape[-1])

    @property
    def seconds_per_step(self) -> float:
        """Wall time per optimizer step after compilation (of all seeds
        together, for :func:`train_runs`)."""
        return self.run_seconds / (self.num_ticks * self.steps_per_tick)


def _as_extra_args(tx) -> optax.GradientTransformationExtraArgs:
    # MultiSteps is no GradientTransformation, and its gradient_transformation()
    # is a plain one whose update forwards extra args: with_extra_args_support
    # would drop the value= and val_metric= that a lode_schedule inside needs.
    update = getattr(tx, "update", None)
    if isinstance(tx, optax.MultiSteps) or isinstance(
        getattr(update, "__self__", None), optax.MultiSteps
    ):
        return optax.GradientTransformationExtraArgs(tx.init, update)
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            f"tx must be an optax.GradientTransformation, got {type(tx).__name__}"
        )
    return optax.with_extra_args_support(tx)


class _Clock(NamedTuple):
    """A run's clock, as its arguments set it: what the lode_schedule checks
    compare the schedule's with and what their advice changes."""

    num_ticks: int
    steps_per_tick: int
    ticks_per_epoch: int
    steps_per_epoch: int


def _run_on(clock: _Clock, ticks: int, steps_per_tick: int) -> str | None:
    """The ``epochs=`` (and ``ticks_per_epoch=``) that make a run of ``ticks``
    ticks of ``steps_per_tick`` steps on this task, or None if none does.
    The run's own ``ticks_per_epoch`` first, then one that divides the epoch."""
    spe = clock.steps_per_epoch
    options = sorted(
        range(1, spe + 1),
        key=lambda t: (t != clock.ticks_per_epoch, spe % t != 0, t),
    )
    for t in options:
        if spe // t == steps_per_tick and ticks % t == 0:
            if t == clock.ticks_per_epoch == 1:
                return f"epochs={ticks // t}"
            return f"epochs={ticks // t}, ticks_per_epoch={t}"
    return None


def _advice(clock: _Clock, run: str | None, train: str) -> str:
    """The fixes: ``train`` with ``run``'s arguments when there are some, or a
    schedule rebuilt for this run."""
    what = (
        f"it for this run (total_steps={clock.num_ticks * clock.steps_per_tick}, "
        f"steps_per_tick={clock.steps_per_tick}), adding rescale=True if its "
        "model records another clock (model.T, model.steps_per_tick)."
    )
    return f"{train} ({run}), or rebuild {what}" if run else f"Rebuild {what}"


def _check_lode_length(opt_state: PyTree, clock: _Clock) -> None:
    """Raises if a ``lode_schedule`` in ``opt_state`` was built for a run of
    another length: its state records its ``run_ticks`` from the start,
    whatever wraps it, so this runs before the first tick (its tick length
    shows only after one: :func:`_check_lode_clock`)."""
    from optax_lode.transform._schedule import lode_states

    num_ticks = clock.num_ticks
    for state in lode_states(opt_state):
        planned = np.asarray(state.run_ticks).ravel()
        if (planned != num_ticks).any():
            i = int(np.argmax(planned != num_ticks))
            ticks = int(planned[i])
            run = _run_on(clock, ticks, clock.steps_per_tick)
            raise ValueError(
                f"lode_schedule was built for a run of {ticks} ticks "
                f"(total_steps // steps_per_tick) but this run has {num_ticks}: "
                "its decisions would fall at the wrong fractions of the run. "
                + _advice(clock, run, f"Train for its {ticks} ticks")
            )


def _check_lode_clock(opt_state: PyTree, clock: _Clock) -> None:
    """Raises if a ``lode_schedule`` in ``opt_state`` counts ticks of another
    length than the run's, read from its state after the run's first tick.

    Where a wrapper skipped some of the tick's updates (``apply_if_finite``,
    ``MultiSteps``) a schedule that has not finished a tick cannot be judged,
    so only definite mismatches raise."""
    from optax_lode.transform._schedule import lode_states

    steps_per_tick = clock.steps_per_tick
    for state in lode_states(opt_state):
        count, tick, step = (
            np.asarray(x).ravel() for x in (state.count, state.tick, state.step_in_tick)
        )
        saw_all = count == steps_per_tick
        wrong = (saw_all & ((tick != 1) | (step != 0))) | (tick >= 2)
        if wrong.any():
            i = int(np.argmax(wrong))
            n, t, s = int(count[i]), int(tick[i]), int(step[i])
            run = None
            # Every update reached it: n = t k + s for its tick of k steps.
            if saw_all[i] and t >= 1 and (n - s) % t == 0:
                k = (n - s) // t
                run = _run_on(clock, clock.num_ticks, k)
            raise ValueError(
                f"lode_schedule's clock differs from the run's: after the run's "
                f"first tick of {steps_per_tick} steps its state counts {t} "
                f"tick(s) and {s} step(s) from {n} update(s). "
                + _advice(clock, run, "Train on its clock")
            )


def _schedule_epochs(task: Task, tx, ticks_per_epoch: int) -> int | None:
    """The epochs of the run the ``lode_schedule`` states in ``tx`` were built for
    (their ``run_ticks``, read from an initial state), or None: there is none,
    they disagree, or ``ticks_per_epoch`` does not divide their run (the
    length check then names the fix)."""
    from optax_lode.transform._schedule import lode_states

    shapes, _ = jax.eval_shape(task.init, jax.random.key(0))
    if not lode_states(jax.eval_shape(tx.init, shapes)):
        return None  # no schedule: nothing to allocate
    # A schedule's state does not depend on the parameters' values.
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    runs = {int(s.run_ticks) for s in lode_states(tx.init(zeros))}
    whole = isinstance(ticks_per_epoch, int | np.integer) and not isinstance(
        ticks_per_epoch, bool
    )
    if len(runs) != 1 or not whole or ticks_per_epoch < 1:
        return None  # check_clock says what is wrong with ticks_per_epoch
    (ticks,) = runs
    epochs, rest = divmod(ticks, ticks_per_epoch)
    return epochs if rest == 0 and epochs >= 1 else None


@dataclasses.dataclass(frozen=True)
class _Program:
    """A run's jitted pieces, its tick compiled once: ``start(seed)`` gives
    ``(carry, data_key)``, ``tick`` advances one tick, ``test`` gives the test
    metric. Seeds enter as arguments, so one program serves every seed."""

    start: Callable
    tick: Callable
    test: Callable
    num_ticks: int
    steps_per_tick: int
    compile_seconds: float
    ticks_per_epoch: int
    steps_per_epoch: int

    def run(self, seed_arg, *, callback=None, with_test: bool = True):
        """``(carry, records, test metric or None, seconds)`` of one run (of
        several seeds if batched), timed after its start."""
        carry, data_key = self.start(seed_arg)
        jax.block_until_ready(carry)
        clock = _Clock(
            self.num_ticks,
            self.steps_per_tick,
            self.ticks_per_epoch,
            self.steps_per_epoch,
        )
        _check_lode_length(carry.opt_state, clock)
        records = []
        t0 = time.perf_counter()
        for t in range(self.num_ticks):
            carry, rec = self.tick(carry, data_key)
            if t == 0:
                _check_lode_clock(carry.opt_state, clock)
            if callback is not None:
                callback(t, {k: np.asarray(v) for k, v in rec._asdict().items()})
            records.append(rec)
        test = self.test(carry) if with_test else None
        jax.block_until_ready((carry, records, test))
        return carry, records, test, time.perf_counter() - t0


def _compile(
    task: Task,
    tx,
    seed_arg,
    *,
    epochs: int | None,
    ticks_per_epoch: int,
    learning_rate_fn: LearningRateFn | None,
    eval_fn: Callable[[PyTree, PyTree], PyTree] | None,
    batched: bool,
) -> _Program:
    tx = _as_extra_args(tx)
    if epochs is None:
        epochs = _schedule_epochs(task, tx, ticks_per_epoch) or task.default_epochs
    num_ticks, steps_per_tick = check_clock(task, epochs, ticks_per_epoch)
    lr_fn = default_lr_fn if learning_rate_fn is None else learning_rate_fn

    def eval_params(carry):
        if eval_fn is None:
            return carry.params
        return eval_fn(carry.params, carry.opt_state)

    def start(seed):
        carry, data_key = init_carry(task, tx, jax.random.key(seed))
        if eval_fn is not None:  # the first val_metric too is the evaluated one
            val = jnp.asarray(val_metric_of(carry), jnp.float32)
            carry = carry._replace(val_metric=val)
        return carry, data_key

    def one_tick(carry, data_key):
        carry, rec = tick(
            task, tx, carry, data_key, steps_per_tick=steps_per_tick, lr_fn=lr_fn
        )
        return carry, rec

    def val_metric_of(carry):
        return task.metric(eval_params(carry), carry.model_state, "val")

    def one_tick_eval(carry, data_key):
        carry, rec = one_tick(carry, data_key)
        if eval_fn is not None:
            # The metric of the parameters one evaluates (e.g. schedule-free
            # averages); the optimizer still sees it as its val_metric.
            val = finite_or_nan(val_metric_of(carry), carry.params)
            carry = carry._replace(val_metric=val)
            rec = rec._replace(metric=val)
        return carry, rec

    def test_of(carry):
        return task.metric(eval_params(carry), carry.model_state, "test")

    if batched:
        start, one_tick_eval, test_of = (
            jax.vmap(f, axis_name=RUNS_AXIS) for f in (start, one_tick_eval, test_of)
        )
    start_j = jax.jit(start)
    # Shapes only: the run itself initialises (Program.run).
    carry, data_key = jax.eval_shape(start_j, seed_arg)
    t0 = time.perf_counter()
    tick_c = jax.jit(one_tick_eval, donate_argnums=0).lower(carry, data_key).compile()
    return _Program(
        start=start_j,
        tick=tick_c,
        test=jax.jit(test_of),
        num_ticks=num_ticks,
        steps_per_tick=steps_per_tick,
        compile_seconds=time.perf_counter() - t0,
        ticks_per_epoch=int(ticks_per_epoch),
        steps_per_epoch=steps_per_epoch(task),
    )


def _train(
    task: Task,
    tx,
    seeds: Sequence[int],
    *,
    epochs: int | None,
    ticks_per_epoch: int,
    learning_rate_fn: LearningRateFn | None,
    eval_fn: Callable[[PyTree, PyTree], PyTree] | None,
    callback: Callable[[int, dict[str, np.ndarray]], None] | None,
    batched: bool,
):
    check_task(task)
    seeds = list(check_seeds(seeds))
    # uint32 either way: a Python int past 2**31 overflows jit's int32 parsing.
    seed_arg = jnp.asarray(seeds if batched else seeds[0], jnp.uint32)
    program = _compile(
        task,
        tx,
        seed_arg,
        epochs=epochs,
        ticks_per_epoch=ticks_per_epoch,
        learning_rate_fn=learning_rate_fn,
        eval_fn=eval_fn,
        batched=batched,
    )
    carry, records, test, run_seconds = program.run(seed_arg, callback=callback)

    stack = functools.partial(np.stack, axis=-1)
    loss, metric, lr, mask, test = finish_records(
        stack([np.asarray(r.loss) for r in records]),
        stack([np.asarray(r.metric) for r in records]),
        stack([np.asarray(r.lr) for r in records]),
        np.asarray(test),
    )
    return (
        loss,
        metric,
        lr,
        mask,
        test,
        carry,
        program.steps_per_tick,
        program.compile_seconds,
        run_seconds,
    )


def train_run(
    task: Task,
    tx: optax.GradientTransformation,
    *,
    seed: int,
    epochs: int | None = None,
    ticks_per_epoch: int = 1,
    learning_rate_fn: LearningRateFn | None = None,
    eval_fn: Callable[[PyTree, PyTree], PyTree] | None = None,
    callback: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> RunResult:
    """Trains one run of ``task`` with any optax transformation.

    The run's key is ``jax.random.key(seed)``, split into the initialisation
    key and the data key exactly as :func:`run_sweep` does, so a run here
    reproduces the sweep's run with the same seed and optimizer. Every step
    calls ``tx.update(grads, state, params, value=loss, val_metric=v)`` with
    the step's training loss and the latest validation metric (the previous
    tick's; the initial parameters' before the first tick); transformations
    without extra arguments are wrapped with
    ``optax.with_extra_args_support``. A tick is one jitted program; ticks
    run from Python so ``callback`` can report progress.

    Args:
        task: the task (:func:`optax_lode.tasks.get_task`).
        tx: any optax transformation, e.g. ``optax.chain(optax.adamw(1.0),
            lode_schedule(model, total_steps=..., steps_per_tick=...))``.
        seed: the run's seed (weights initialisation and data order), a whole
            number in ``[0, 2**32)``.
        epochs: run length; default: the run a ``lode_schedule`` in ``tx``
            was built for (its ``total_steps // steps_per_tick`` ticks, over
            ``ticks_per_epoch``), else ``task.default_epochs``.
        ticks_per_epoch: ticks per epoch; ``steps_per_tick =
            task.steps_per_epoch // ticks_per_epoch``.
        learning_rate_fn: ``opt_state -> learning rate of the step just
            taken``. Default: the one array-valued ``learning_rate`` entry of
            the state (``optax.tree.get_all_with_path``; a schedule's own
            entry, a function, is skipped), which ``optax.inject_hyperparams``
            and ``lode_schedule`` expose.
        eval_fn: ``(params, opt_state) -> params to evaluate``, e.g.
            ``lambda p, s: optax.contrib.schedule_free_eval_params(s, p)``.
        callback: called after every tick as ``callback(tick, record)``.

    Returns:
        A :class:`RunResult`.

    Raises:
        TypeError: ``tx`` is not an optax transformation, or ``task`` does
            not implement the :class:`~optax_lode.tasks.Task` protocol
            (checked first, by abstract evaluation: a missing member, or
            ``init``, ``train_loss`` or ``metric`` returning another structure
            or shape).
        ValueError: a bad ``seed``, ``epochs``, ``ticks_per_epoch`` (an epoch
            shorter than its ticks) or ``task.steps_per_epoch`` (no int >= 1),
            a ``lode_schedule`` in ``tx`` built for a run of another length
            or clock (the message says the ``epochs=``/``ticks_per_epoch=``
            of its run, or how to rebuild it for this one), or a state
            without one array-valued ``learning_rate`` (pass
            ``learning_rate_fn``).

    Examples:
        >>> import optax
        >>> from optax_lode.sweep import make_schedule, sweep_optimizer, train_run
        >>> from optax_lode.tasks import get_task
        >>> task = get_task("digits-mlp")
        >>> tx = sweep_optimizer(make_schedule("cosine", 1e-2, 2 * 18),
        ...                      weight_decay=task.weight_decay)
        >>> result = train_run(task, tx, seed=0, epochs=2)
        >>> result.loss.shape
        (2,)
    """
    out = _train(
        task,
        tx,
        [seed],
        epochs=epochs,
        ticks_per_epoch=ticks_per_epoch,
        learning_rate_fn=learning_rate_fn,
        eval_fn=eval_fn,
        callback=callback,
        batched=False,
    )
    loss, metric, lr, mask, test, carry, spt, comp, run = out
    return RunResult(
        loss=loss,
        metric=metric,
        lr=lr,
        mask=mask,
        test_metric=float(test),
        params=carry.params,
        model_state=carry.model_state,
        opt_state=carry.opt_state,
        steps_per_tick=spt,
        compile_seconds=comp,
        run_seconds=run,
    )


def train_runs(
    task: Task,
    tx: optax.GradientTransformation,
    *,
    seeds: Sequence[int],
    epochs: int | None = None,
    ticks_per_epoch: int = 1,
    learning_rate_fn: LearningRateFn | None = None,
    eval_fn: Callable[[PyTree, PyTree], PyTree] | None = None,
    callback: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> RunResult:
    """:func:`train_run` for several seeds of the same optimizer, vmapped.

    Every field of the result gains a leading ``seeds`` axis (``loss`` is
    ``(seeds, ticks)``, ``test_metric`` an array, params batched). The vmap
    axis is named :data:`RUNS_AXIS` (``"runs"``). Build a ``lode_schedule``
    for it with ``axis_name=RUNS_AXIS``: under ``vmap`` a ``lax.cond`` whose
    predicate differs across runs executes both branches, so without it the
    schedule pays a decision at every step (docs/schedule.md, "Under
    jax.vmap").

    Args:
        task: the task (:func:`optax_lode.tasks.get_task`).
        tx: any optax transformation, as for :func:`train_run`; one
            transformation for every seed.
        seeds: the runs' seeds (a sequence, not a count), whole numbers in
            ``[0, 2**32)``; each run is the :func:`train_run` of its seed, to
            float rounding.
        epochs: run length; default as for :func:`train_run`.
        ticks_per_epoch: ticks per epoch; ``steps_per_tick =
            task.steps_per_epoch // ticks_per_epoch``.
        learning_rate_fn: ``opt_state -> learning rate of the step just
            taken`` (of one run: it is vmapped); default as for
            :func:`train_run`.
        eval_fn: ``(params, opt_state) -> params to evaluate``, as for
            :func:`train_run`.
        callback: called after every tick as ``callback(tick, record)``, each
            array of ``record`` with a leading ``seeds`` axis.

    Returns:
        A :class:`RunResult` whose fields have a leading ``seeds`` axis, in
        the order of ``seeds``.

    Raises:
        TypeError: as :func:`train_run` (``tx``, ``task``).
        ValueError: as :func:`train_run`, and for ``seeds`` given as a count
            or empty.

    Examples:
        >>> from optax_lode.sweep import make_schedule, sweep_optimizer
        >>> from optax_lode.tasks import get_task
        >>> task = get_task("nqm")
        >>> tx = sweep_optimizer(make_schedule("cosine", 0.1, 2 * task.steps_per_epoch),
        ...                      weight_decay=0.0)
        >>> result = train_runs(task, tx, seeds=[0, 1], epochs=2)
        >>> result.loss.shape, result.test_metric.shape
        ((2, 2), (2,))
    """
    if isinstance(seeds, int | np.integer):  # run_sweep's seeds=5 means 5 seeds
        raise ValueError(
            f"train_runs takes the seeds themselves, got seeds={seeds!r}: pass "
            f"range({seeds}) for seeds 0..{seeds - 1}, or ({seeds},) for that seed"
        )
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty")
    out = _train(
        task,
        tx,
        seeds,
        epochs=epochs,
        ticks_per_epoch=ticks_per_epoch,
        learning_rate_fn=learning_rate_fn,
        eval_fn=eval_fn,
        callback=callback,
        batched=True,
    )
    loss, metric, lr, mask, test, carry, spt, comp, run = out
    return RunResult(
        loss=loss,
        metric=metric,
        lr=lr,
        mask=mask,
        test_metric=test,
        params=carry.params,
        model_state=carry.model_state,
        opt_state=carry.opt_state,
        steps_per_tick=spt,
        compile_seconds=comp,
        run_seconds=run,
    )
