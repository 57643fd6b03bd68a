"""A task's mistakes, and a lode_schedule built for another run, are said up
front in words that name the fix: train_run, train_runs and run_sweep check
the Task protocol by abstract evaluation before anything trains."""

from __future__ import annotations

import dataclasses
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _lode_helpers import small_model
from _sweep_toy import ToyTask

from optax_lode import lode_schedule
from optax_lode.sweep import (
    make_schedule,
    run_sweep,
    sweep_optimizer,
    train_run,
    train_runs,
)
from optax_lode.tasks import check_task


def _train_run(task):
    tx = sweep_optimizer(make_schedule("constant", 0.1, 6), weight_decay=0.0)
    return train_run(task, tx, seed=0, epochs=1)


def _train_runs(task):
    tx = sweep_optimizer(make_schedule("constant", 0.1, 6), weight_decay=0.0)
    return train_runs(task, tx, seeds=[0, 1], epochs=1)


def _run_sweep(task):
    return run_sweep(task, shapes=["constant"], lrs=[0.1], seeds=1, epochs=1)


ENTRIES = pytest.mark.parametrize(
    "entry", [_train_run, _train_runs, _run_sweep], ids=lambda f: f.__name__[1:]
)


# -- the task's mistakes -------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class LossOnly(ToyTask):
    def train_loss(self, params, state, step, key):
        return super().train_loss(params, state, step, key)[0]


@dataclasses.dataclass(frozen=True, eq=False)
class VectorLoss(ToyTask):
    def train_loss(self, params, state, step, key):
        loss, state = super().train_loss(params, state, step, key)
        return loss * jnp.ones(3), state


@dataclasses.dataclass(frozen=True, eq=False)
class NoMetric(ToyTask):
    metric = None


class Partial:
    """A task without steps_per_epoch or init."""

    name = "partial"
    default_epochs = 1
    weight_decay = 0.0
    train_loss = ToyTask.train_loss
    metric = ToyTask.metric


@dataclasses.dataclass(frozen=True, eq=False)
class ParamsOnly(ToyTask):
    def init(self, key):
        return super().init(key)[0]


@dataclasses.dataclass(frozen=True, eq=False)
class NewStateOfAnotherKind(ToyTask):
    def train_loss(self, params, state, step, key):
        loss, _ = super().train_loss(params, state, step, key)
        return loss, {"count": step}


@dataclasses.dataclass(frozen=True, eq=False)
class VectorMetric(ToyTask):
    def metric(self, params, state, split):
        value = super().metric(params, state, split)
        return value if split == "val" else jnp.stack([value, value])


def _said(*parts: str) -> str:
    return ".*".join(re.escape(p) for p in parts)


MISTAKES = {
    # Was IndexError: Too many indices: array is 0-dimensional (run_sweep),
    # or a failure deep in jax.value_and_grad (train_run).
    "loss only": (
        LossOnly(),
        _said(
            "task 'toy': train_loss(params, state, step, key) returned "
            "float32[]; the Task protocol expects a pair (loss, new_state)",
            "(return `loss, state` for a model without state)",
        ),
    ),
    # Was TypeError: Only scalar arrays can be converted to Python scalars.
    "vector loss": (
        VectorLoss(),
        _said(
            "task 'toy': train_loss(params, state, step, key) returned a loss "
            "of float32[3]; the Task protocol expects a scalar float (float32[])",
            "(a loss per example? return its mean)",
        ),
    ),
    # Was 'NoneType' object is not callable.
    "metric None": (
        NoMetric(),
        _said(
            "task 'toy' does not implement the Task protocol: not callable: "
            "metric=None.",
            "metric(params, state, split)",
        ),
    ),
    # Was a bare AttributeError.
    "missing members": (
        Partial(),
        _said(
            "task 'partial' does not implement the Task protocol: it has no "
            "steps_per_epoch, init.",
            "init(key)",
        ),
    ),
    "params only": (
        ParamsOnly(),
        _said(
            "task 'toy': init(key) returned {'w': float32[]}; the Task protocol "
            "expects a pair (params, state)"
        ),
    ),
    "new state of another kind": (
        NewStateOfAnotherKind(),
        _said(
            "task 'toy': train_loss(params, state, step, key) returned a "
            "new_state of {'count': int32[]}, but init's state is (); the Task "
            "protocol expects the model state after the step, of the same "
            "structure"
        ),
    ),
    "vector test metric": (
        VectorMetric(),
        _said(
            "task 'toy': metric(params, state, 'test') returned float32[2]; the "
            "Task protocol expects a scalar"
        ),
    ),
}


@ENTRIES
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_task_that_breaks_the_protocol_is_named_before_training(
    entry, mistake, monkeypatch
):
    import optax_lode.sweep._sweep as engine
    import optax_lode.sweep._train as trainer

    def never(*args, **kwargs):
        raise AssertionError("compiled a program for a task that breaks the protocol")

    monkeypatch.setattr(engine, "_run_program", never)
    monkeypatch.setattr(engine, "_initial_loss", never)
    monkeypatch.setattr(trainer, "_compile", never)
    task, said = MISTAKES[mistake]
    with pytest.raises(TypeError, match=said):
        entry(task)


def test_an_error_of_the_task_itself_says_which_call_raised_it():
    @dataclasses.dataclass(frozen=True, eq=False)
    class Raises(ToyTask):
        def train_loss(self, params, state, step, key):
            raise ValueError("the task's own error")

    with pytest.raises(ValueError, match="the task's own error") as info:
        _train_run(Raises())
    assert "raised by task 'toy''s train_loss(params, state, step, key)" in (
        "\n".join(info.value.__notes__)
    )


@pytest.mark.parametrize(
    "task",
    [
        ToyTask(),
        ToyTask(nan_after=0),
        "nqm",
        "digits-mlp",
        "digits-cnn",
        "mnist1d-mlp",
        "mnist1d-cnn",
        "text-transformer",
    ],
    ids=lambda t: t if isinstance(t, str) else "toy",
)
def test_every_built_in_task_keeps_the_protocol(task):
    from optax_lode.tasks import get_task
    from optax_lode.tasks.nqm import NoisyQuadratic

    if isinstance(task, str):
        task = get_task(task)
    check_task(task)
    check_task(NoisyQuadratic(dim=3, report="minibatch"))


def test_the_check_is_abstract_it_compiles_nothing(caplog):
    from optax_lode.tasks import get_task

    task = get_task("nqm", dim=3)
    with caplog.at_level(logging.DEBUG, logger="jax"), jax.log_compiles():
        check_task(task)
        check_task(ToyTask())
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]
    with caplog.at_level(logging.DEBUG, logger="jax"), jax.log_compiles():
        jax.jit(task.metric, static_argnums=2)(
            task.init(jax.random.key(3))[0], (), "val"
        )
    assert [r for r in caplog.records if "Compiling" in r.getMessage()]  # it sees


# -- task.steps_per_epoch ------------------------------------------------------


@ENTRIES
@pytest.mark.parametrize("value", [12.5, 6.0, "12", 0, -6, True, None])
def test_steps_per_epoch_that_is_no_int_of_at_least_1_is_refused(entry, value):
    """12.5 swept with 12 steps per tick (floored) and "12" failed with
    TypeError: '>' not supported."""
    said = (
        r"task 'toy': steps_per_epoch \(optimizer steps per pass over the "
        rf"training data\) must be an int >= 1; got {re.escape(repr(value))}\."
    )
    with pytest.raises(ValueError, match=said):
        entry(ToyTask(steps_per_epoch=value))


def test_steps_per_epoch_may_be_a_numpy_int():
    traj = _run_sweep(ToyTask(steps_per_epoch=np.int64(6)))
    assert traj.steps_per_tick == 6
    assert _train_run(ToyTask(steps_per_epoch=np.int32(6))).steps_per_tick == 6


# -- a lode_schedule built for another run: advice that works -------------------


def _lode(T: int, steps_per_tick: int, total_steps: int, **kwargs):
    model = small_model(T=T).with_steps_per_tick(steps_per_tick)
    return optax.chain(
        optax.adamw(1.0),
        lode_schedule(
            model, total_steps=total_steps, steps_per_tick=steps_per_tick, n=2, **kwargs
        ),
    )


def test_a_schedule_for_another_run_length_says_the_epochs_of_its_run():
    """A model fitted at T=40 ticks of 12 steps; a task of 12-step epochs whose
    default run is 30 epochs. The message said to build the schedule for 30
    ticks, which lode_schedule refuses for that model without rescale=True."""
    task = ToyTask(steps_per_epoch=12, default_epochs=30)
    tx = _lode(40, 12, 480)
    said = (
        "lode_schedule was built for a run of 40 ticks (total_steps // "
        "steps_per_tick) but this run has 30: its decisions would fall at the "
        "wrong fractions of the run. Train for its 40 ticks (epochs=40), or "
        "rebuild it for this run (total_steps=360, steps_per_tick=12), adding "
        "rescale=True if its model records another clock (model.T, "
        "model.steps_per_tick)."
    )
    with pytest.raises(ValueError, match=re.escape(said)):
        train_run(task, tx, seed=0, epochs=30)
    # Both pieces of advice run; the rebuilt schedule needs its rescale=True.
    assert train_run(task, tx, seed=0, epochs=40).num_ticks == 40
    with pytest.raises(ValueError, match="pass rescale=True"):
        _lode(40, 12, 360)
    rebuilt = _lode(40, 12, 360, rescale=True)
    assert train_run(task, rebuilt, seed=0).num_ticks == 30


def test_epochs_default_to_the_run_a_schedule_was_built_for():
    """Without epochs=, a lode_schedule's own run (40 ticks), not the task's
    default (30 epochs), which it would refuse; where ticks_per_epoch does not
    divide its run, the task's default and the length check's advice."""
    task = ToyTask(steps_per_epoch=12, default_epochs=30)
    run = train_run(task, _lode(40, 12, 480), seed=0)
    assert (run.num_ticks, run.steps_per_tick) == (40, 12)
    state = optax.tree.get(run.opt_state, "LodeState")
    assert int(state.tick) == int(state.run_ticks) == 40
    # 20 ticks of 6 steps: 10 epochs at 2 ticks per epoch.
    two = train_runs(task, _lode(20, 6, 120), seeds=[0, 1], ticks_per_epoch=2)
    assert two.loss.shape == (2, 20) and two.steps_per_tick == 6
    with pytest.raises(ValueError, match=r"a run of 40 ticks .* this run has 90"):
        train_run(task, _lode(40, 12, 480), seed=0, ticks_per_epoch=3)
    # No schedule: the task's default.
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    assert train_run(task, sgd, seed=0).num_ticks == 30


def test_a_schedule_on_another_tick_says_the_ticks_per_epoch_of_its_run():
    task = ToyTask(steps_per_epoch=12, default_epochs=40)
    tx = _lode(40, 6, 240)  # 40 ticks of 6 steps: 2 ticks per 12-step epoch
    said = (
        "lode_schedule's clock differs from the run's: after the run's first "
        "tick of 12 steps its state counts 2 tick(s) and 0 step(s) from 12 "
        "update(s). Train on its clock (epochs=20, ticks_per_epoch=2), or "
        "rebuild it for this run (total_steps=480, steps_per_tick=12), adding "
        "rescale=True if its model records another clock (model.T, "
        "model.steps_per_tick)."
    )
    with pytest.raises(ValueError, match=re.escape(said)):
        train_runs(task, tx, seeds=[0])
    run = train_run(task, tx, seed=0, epochs=20, ticks_per_epoch=2)
    assert (run.num_ticks, run.steps_per_tick) == (40, 6)


def test_a_sweep_whose_metric_rises_with_its_loss_is_flagged():
    import dataclasses
    import warnings

    from _sweep_toy import ToyTask

    from optax_lode import run_sweep

    @dataclasses.dataclass(frozen=True, eq=False)
    class LossAsMetric(ToyTask):
        def metric(self, params, state, split):
            return super().metric(params, state, split) * -1.0 + 0.1  # a loss

    kw = dict(shapes=["constant"], lrs=[0.05, 0.2], seeds=2, epochs=6)  # 24 ticks
    with pytest.warns(UserWarning, match=r"rises with its training loss .*with_neg"):
        run_sweep(LossAsMetric(name="toy-loss"), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sweep(ToyTask(), **kw)  # higher-is-better: silent
