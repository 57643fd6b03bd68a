"""The task registry: ``get_task(name, **kwargs)``.

Factories are referenced as ``"module:function"`` and imported on first use,
so a task's optional dependencies (scikit-learn, mnist1d, tensorflow-datasets)
are only needed by whoever uses it.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import Any

from optax_lode.tasks._protocol import Task

_FACTORIES: dict[str, str] = {
    "nqm": "optax_lode.tasks._nqm:NoisyQuadratic",
    "digits-mlp": "optax_lode.tasks._small:digits_mlp",
    "digits-cnn": "optax_lode.tasks._small:digits_cnn",
    "mnist1d-mlp": "optax_lode.tasks._small:mnist1d_mlp",
    "mnist1d-cnn": "optax_lode.tasks._small:mnist1d_cnn",
    "text-transformer": "optax_lode.tasks._text:text_transformer",
    "fashion_mnist-cnn": "optax_lode.tasks._tfds:fashion_mnist_cnn",
    "cifar100-resnet18": "optax_lode.tasks._tfds:cifar100_resnet18",
}

TASKS = MappingProxyType(_FACTORIES)
"""Registered task names -> ``"module:factory"`` (read-only view)."""


def get_task(name: str, **kwargs: Any) -> Task:
    """Builds the registered task ``name``.

    Args:
        name: one of ``optax_lode.tasks.TASKS``.
        **kwargs: the factory's keyword arguments (model size, batch size,
            ``data_dir``, ...; see each factory's docstring).

    Returns:
        The task, which implements :class:`optax_lode.tasks.Task`.

    Raises:
        KeyError: ``name`` is not registered; the message lists the names.
        TypeError: a keyword argument the task's factory does not take, or a
            factory that returns no :class:`~optax_lode.tasks.Task`.
        ValueError: a keyword argument out of range (the factory checks it,
            e.g. ``get_task("nqm", dim=0)``).
        ImportError: the task needs an optional dependency that is not
            installed; the message names the extra to install.
        DataNotPreparedError: a TFDS task whose data is not in ``data_dir``
            (see the task's factory).

    Examples:
        >>> from optax_lode.tasks import get_task
        >>> task = get_task("digits-mlp")
        >>> task.steps_per_epoch
        18

        The noisy quadratic model needs no data and no optional dependency:

        >>> nqm = get_task("nqm", dim=10)
        >>> nqm.name, nqm.steps_per_epoch * nqm.default_epochs
        ('nqm', 1000)
    """
    try:
        target = _FACTORIES[name]
    except KeyError:
        raise KeyError(
            f"unknown task {name!r}; registered tasks: {sorted(_FACTORIES)}"
        ) from None
    module, _, attr = target.partition(":")
    try:
        # Optional dependencies are imported by the module or by the factory.
        task = getattr(importlib.import_module(module), attr)(**kwargs)
    except ImportError as e:
        raise ImportError(
            f"task {name!r} needs {e.name!r}: install the tasks extra (in a clone "
            "of optax-lode: pip install -e '.[tasks]', and '.[tasks,datasets]' "
            "for the tfds tasks)"
        ) from e
    if not isinstance(task, Task):
        raise TypeError(f"factory {target} returned {type(task).__name__}, not a Task")
    return task
