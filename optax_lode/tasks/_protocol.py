"""The protocol every training task implements.

A task is what the sweep engine, the baselines and the evaluations train. It is
written so that one run is a pure function of its seeds and can be ``jit``-ed
and ``vmap``-ed over runs: data lives on device, the minibatch of a step is
selected inside the traced step from the run's data key.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from jaxtyping import Array, Float, Int, PRNGKeyArray

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

    A task is registered by adding its factory to
    ``optax_lode/tasks/_registry.py`` (``get_task(name, **kwargs)`` calls it
    with the keyword arguments).
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


class DataNotPreparedError(RuntimeError):
    """A task's dataset is not on this machine in a form it can read.

    Raised when the task is built (:func:`optax_lode.tasks.get_task`); the
    message says how to prepare the data. The command line reports it without
    a traceback.
    """
