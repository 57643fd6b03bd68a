"""The protocol every training task implements.

A task is what the sweep engine, the baselines and the evaluations train. It is
written so that one run is a pure function of its seeds and can be ``jit``-ed
and ``vmap``-ed over runs: data lives on device, the minibatch of a step is
selected inside the traced step from the run's data key.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from optax_lode._warn import caller_stacklevel

PyTree = Any


@runtime_checkable
class Task(Protocol):
    """A training problem: a model, its data, its loss and its metric.

    Attributes:
        name: registry name, e.g. ``"mnist1d-mlp"``.
        steps_per_epoch: optimizer steps in one pass over the training data.
        default_epochs: the run length the paper-style sweep uses for this task.
        weight_decay: the AdamW weight decay the paper-style sweep uses for this
            task (paper A.2; ``0.0`` for none).

    A task may also name what :meth:`metric` measures in a ``metric_name``
    attribute (``"accuracy"``, ``"neg_log_loss"``; read with
    :func:`metric_name`, default ``"metric"``): trackers log the validation
    metric under ``val_<metric_name>``.

    Any object with these members is a task (:func:`check_task` checks one);
    ``run_sweep`` and ``train_run`` take it as it is, and ``get_task`` and
    ``optax-lode sweep --task`` by its import path (``"my_tasks:make_task"``).
    """

    name: str
    steps_per_epoch: int
    default_epochs: int
    weight_decay: float

    def init(self, key: PRNGKeyArray) -> tuple[PyTree, PyTree]:
        """Draws a run's initial parameters and model state.

        Args:
            key: the run's initialisation key.

        Returns:
            ``(params, state)``: trainable parameters and any non-trainable
            model state (batch statistics, ...; ``()`` if none).
        """
        ...

    def train_loss(
        self,
        params: PyTree,
        state: PyTree,
        step: Int[Array, ""],
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], PyTree]:
        """Minibatch training loss at ``step`` and the updated model state.

        ``key`` is the run's data key: the minibatch (and dropout) of ``step``
        are derived from ``(key, step)`` inside the traced function, so a run
        is reproducible and vmappable. Differentiated w.r.t. ``params``.
        Positive: runs are modelled by their log loss (a sweep refuses a
        negative one; add a constant that bounds the loss below).

        Args:
            params: the trainable parameters.
            state: the non-trainable model state.
            step: the optimizer step (a traced integer scalar).
            key: the run's data key.

        Returns:
            ``(loss, new_state)``: the scalar minibatch loss and the model state
            after the step.
        """
        ...

    def metric(self, params: PyTree, state: PyTree, split: str) -> Float[Array, ""]:
        """Validation (``split="val"``) or test (``split="test"``) metric.

        Args:
            params: the parameters to evaluate.
            state: the non-trainable model state.
            split: ``"val"`` or ``"test"``.

        Returns:
            A scalar; higher is better (accuracy, or a documented monotone map
            of a loss).
        """
        ...


def metric_name(task: Task) -> str:
    """What ``task.metric`` measures, read from its ``metric_name`` attribute.

    Trackers log the validation metric under ``val_<metric_name>``.

    Args:
        task: a task (:class:`Task`).

    Returns:
        The name, e.g. ``"accuracy"``; ``"metric"`` for a task that does not
        say.

    Raises:
        ValueError: the task's ``metric_name`` is not a string that is a
            Python identifier.

    Examples:
        >>> from optax_lode.tasks import get_task, metric_name
        >>> metric_name(get_task("nqm"))
        'neg_log_loss'
    """
    name = getattr(task, "metric_name", "metric")
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(
            f"task {getattr(task, 'name', task)!r}: metric_name must be an "
            f"identifier such as 'accuracy', got {name!r}"
        )
    return name


def task_label(task: Any) -> str:
    """``"task 'name'"`` for error messages (the type's name if it has none)."""
    name = getattr(task, "name", None)
    return f"task {name!r}" if isinstance(name, str) else f"task {type(task).__name__}"


def steps_per_epoch(task: Task) -> int:
    """``task.steps_per_epoch`` as an int, or a ``ValueError`` naming the task.

    An int >= 1 (a numpy int too; no bool): a float was floored (12.5 swept
    and recorded 12 steps per tick) and a string failed deep in a comparison.
    """
    value = getattr(task, "steps_per_epoch", None)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            f"{task_label(task)}: steps_per_epoch (optimizer steps per pass over "
            f"the training data) must be an int >= 1; got {value!r}."
        )
    return int(value)


_TASK_ATTRIBUTES = ("name", "steps_per_epoch", "default_epochs", "weight_decay")
_TASK_METHODS = ("init", "train_loss", "metric")


def _abstract(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct)


def _describe(tree: Any) -> str:
    """A short text of an abstract pytree: its structure, leaves as
    ``float32[64]``."""

    class Leaf:
        def __init__(self, x: jax.ShapeDtypeStruct):
            self.text = f"{x.dtype}[{','.join(map(str, x.shape))}]"

        def __repr__(self) -> str:
            return self.text

    text = repr(jax.tree.map(Leaf, tree))
    return text if len(text) <= 200 else text[:197] + "..."


def _same_kind(a: Any, b: Any) -> bool:
    """Same tree structure, leaf shapes and dtypes (what ``lax.scan`` needs of
    a carry)."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        x.shape == y.shape and x.dtype == y.dtype
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _is_real(dtype: Any) -> bool:
    return any(jnp.issubdtype(dtype, k) for k in (jnp.floating, jnp.integer, jnp.bool_))


def check_task(task: Any) -> None:
    """Checks that ``task`` implements the :class:`Task` protocol.

    By abstract evaluation (``jax.eval_shape``: shapes only, no compilation,
    no arithmetic): tens of milliseconds for a small task, a few tenths of a
    second for a ResNet-18 or a transformer. ``run_sweep``, ``train_run`` and
    ``train_runs`` call it before anything trains; call it in your own task's
    tests.

    Args:
        task: the object to check.

    Raises:
        TypeError: naming the task, the method, what it returned and what the
            protocol expects: a missing attribute or method; ``init(key)`` not
            returning ``(params, state)``; ``train_loss(params, state, step,
            key)`` not returning ``(loss, new_state)`` with a scalar float loss
            and a new state of the state's structure, shapes and dtypes;
            ``metric(params, state, split)`` not a scalar for ``"val"`` and
            ``"test"``. An error raised by the task itself while traced
            propagates, with a note saying which call raised it.
        ValueError: ``steps_per_epoch`` is not an int >= 1.

    Examples:
        >>> from optax_lode.tasks import check_task, get_task
        >>> check_task(get_task("nqm"))  # passes silently
        >>> class LossOnly:
        ...     name, steps_per_epoch, default_epochs, weight_decay = "mine", 10, 5, 0.0
        ...     def init(self, key):
        ...         return {"w": jax.numpy.zeros(3)}, ()
        ...     def train_loss(self, params, state, step, key):
        ...         return (params["w"] ** 2).sum()  # forgot the state
        ...     def metric(self, params, state, split):
        ...         return -(params["w"] ** 2).sum()
        >>> check_task(LossOnly())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: task 'mine': train_loss(...) returned float32[]; the Task ...
    """
    label = task_label(task)
    missing = [a for a in (*_TASK_ATTRIBUTES, *_TASK_METHODS) if not hasattr(task, a)]
    uncallable = [
        f"{m}={getattr(task, m)!r}"
        for m in _TASK_METHODS
        if m not in missing and not callable(getattr(task, m))
    ]
    if missing or uncallable:
        problems = (["it has no " + ", ".join(missing)] if missing else []) + (
            ["not callable: " + ", ".join(uncallable)] if uncallable else []
        )
        raise TypeError(
            f"{label} does not implement the Task protocol: {'; '.join(problems)}. "
            "A task has the attributes name, steps_per_epoch, default_epochs and "
            "weight_decay and the methods init(key), train_loss(params, state, "
            "step, key) and metric(params, state, split) (optax_lode.tasks.Task, "
            "docs/tasks.md)."
        )

    steps_per_epoch(task)
    _warn_if_named_lower_is_better(task, label)

    def evaluate(call: str, fn: Callable, *args: Any) -> Any:
        try:
            return jax.eval_shape(fn, *args)
        except Exception as e:
            e.add_note(
                f"(raised by {label}'s {call}, traced with abstract arguments by "
                "optax-lode's check of the Task protocol before training)"
            )
            raise

    # Abstract arguments too: not even a key is computed.
    key = jax.eval_shape(jax.random.key, 0)
    step = jax.ShapeDtypeStruct((), jnp.int32)
    out = evaluate("init(key)", task.init, key)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(
            f"{label}: init(key) returned {_describe(out)}; the Task protocol "
            "expects a pair (params, state): the trainable parameters and the "
            "non-trainable model state (() if none)."
        )
    params, state = out
    call = "train_loss(params, state, step, key)"
    out = evaluate(call, task.train_loss, params, state, step, key)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        hint = ""
        if _abstract(out):
            hint = " (return `loss, state` for a model without state)"
        raise TypeError(
            f"{label}: {call} returned {_describe(out)}; the Task protocol "
            "expects a pair (loss, new_state): the scalar minibatch loss and the "
            f"model state after the step{hint}."
        )
    loss, new_state = out
    if not (
        _abstract(loss)
        and loss.shape == ()
        and jnp.issubdtype(loss.dtype, jnp.floating)
    ):
        hint = ""
        if _abstract(loss) and loss.ndim:
            hint = " (a loss per example? return its mean)"
        raise TypeError(
            f"{label}: {call} returned a loss of {_describe(loss)}; the Task "
            f"protocol expects a scalar float (float32[]), the minibatch loss{hint}."
        )
    if not _same_kind(new_state, state):
        raise TypeError(
            f"{label}: {call} returned a new_state of {_describe(new_state)}, but "
            f"init's state is {_describe(state)}; the Task protocol expects the "
            "model state after the step, of the same structure, shapes and dtypes "
            "(the state as given when the model has none)."
        )
    for split in ("val", "test"):
        call = f"metric(params, state, {split!r})"

        def metric(p, s, split=split):
            return task.metric(p, s, split)

        out = evaluate(call, metric, params, state)
        if not (_abstract(out) and out.shape == () and _is_real(out.dtype)):
            raise TypeError(
                f"{label}: {call} returned {_describe(out)}; the Task protocol "
                "expects a scalar (float32[]), higher is better."
            )


class DataNotPreparedError(RuntimeError):
    """A task's dataset is not on this machine in a form it can read.

    Raised when the task is built (:func:`optax_lode.tasks.get_task`); the
    message says how to prepare the data. The command line reports it without
    a traceback.
    """


# Words of a metric's name that say lower is better (unless negated, "neg_"),
# and endings of a word that do ("valloss", "top1err").
_LOWER_IS_BETTER = frozenset(
    "loss error err perplexity ppl mse mae rmse nll xent ce crossentropy bpb "
    "bpc wer cer regret".split()
)
_LOWER_IS_BETTER_ENDINGS = ("loss", "err", "error", "nll", "crossentropy")


def _warn_if_named_lower_is_better(task: Any, label: str) -> None:
    """The protocol's metric is higher-is-better; a task whose metric_name
    says loss or error most likely returns one as it is, and every "best" run
    of its sweep would be the worst (the sweep's own check needs a long sweep
    whose metric clearly rises with the loss)."""
    name = getattr(task, "metric_name", "metric")
    if not isinstance(name, str):
        return  # metric_name() refuses it where a name is needed
    name = name.lower()
    if name.startswith(("neg", "minus")):
        return
    words = [w for w in re.split(r"[^a-z0-9]+", name) if w]
    lower = any(
        w in _LOWER_IS_BETTER or w.endswith(_LOWER_IS_BETTER_ENDINGS) for w in words
    )
    compact = "".join(words)  # cross_entropy, bits-per-byte
    if lower or "crossentropy" in compact or "bitsper" in compact:
        warnings.warn(
            f"{label}'s metric_name {name!r} reads as a lower-is-better metric, "
            "but the Task protocol's metric is higher-is-better (a sweep's best "
            "run is the one with the highest): return its negation and name it "
            f"so (metric_name='neg_{name}'); ignore this if higher is better.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
