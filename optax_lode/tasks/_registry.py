"""The task registry: ``get_task(name, **kwargs)``.

Factories are referenced as ``"module:function"`` and imported on first use,
so a task's optional dependencies (scikit-learn, mnist1d, tensorflow-datasets)
are only needed by whoever uses it.
"""

from __future__ import annotations

import importlib
import inspect
from types import MappingProxyType
from typing import Any

from optax_lode.tasks._protocol import Task, check_task

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
    """Builds the registered task ``name``, or a task of your own by its
    import path.

    Args:
        name: one of ``optax_lode.tasks.TASKS``, or ``"module:attribute"``
            (``"my_project.tasks:make_task"``, as the registry's own entries
            read): the attribute is a factory, called with ``kwargs``, or a
            task object itself (then with no ``kwargs``). The module is
            imported from ``sys.path`` (``optax-lode sweep --task`` puts the
            current directory first, as ``python -m`` does).
        **kwargs: the factory's keyword arguments (model size, batch size,
            ``data_dir``, ...; see each factory's docstring).

    Returns:
        The task, which implements :class:`optax_lode.tasks.Task`.

    Raises:
        KeyError: ``name`` is neither registered nor an import path; the
            message lists the names.
        TypeError: a keyword argument the task's factory does not take, or a
            factory that returns no :class:`~optax_lode.tasks.Task` (or
            keyword arguments for an attribute that is a task already).
        ValueError: a keyword argument out of range (the factory checks it,
            e.g. ``get_task("nqm", dim=0)``).
        ImportError: the task needs an optional dependency that is not
            installed; the message names the extra to install. For an import
            path: its module cannot be imported, or has no such attribute.
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
    if name not in _FACTORIES and ":" in name:
        return _imported_task(name, kwargs)
    try:
        target = _FACTORIES[name]
    except KeyError:
        raise KeyError(
            f"unknown task {name!r}; registered tasks: {sorted(_FACTORIES)}, or "
            "your own as 'module:factory' (an import path)"
        ) from None
    module, _, attr = target.partition(":")
    try:
        # Optional dependencies are imported by the module or by the factory.
        task = _build(name, getattr(importlib.import_module(module), attr), kwargs)
    except ImportError as e:
        raise ImportError(
            f"task {name!r} needs {e.name!r}: install the tasks extra (in a clone "
            "of optax-lode: pip install -e '.[tasks]', and '.[tasks,datasets]' "
            "for the tfds tasks)"
        ) from e
    if not isinstance(task, Task):
        raise TypeError(f"factory {target} returned {type(task).__name__}, not a Task")
    return task


def _imported_task(path: str, kwargs: dict[str, Any]) -> Task:
    """``get_task("module:attribute", **kwargs)``: a user's own task."""
    module, _, attr = path.partition(":")
    if (
        not module
        or not attr
        or not all(
            part.isidentifier() for part in [*module.split("."), *attr.split(".")]
        )
    ):
        raise KeyError(
            f"unknown task {path!r}: an import path reads 'module:attribute' "
            f"(e.g. 'my_project.tasks:make_task'); registered tasks: "
            f"{sorted(_FACTORIES)}"
        )
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module + ".").startswith(e.name + "."):
            raise ImportError(
                f"task {path!r}: no module {e.name!r} on sys.path (run from the "
                "directory that holds it, or install the package that does)",
                name=e.name,
            ) from e
        raise  # the module's own import of something missing
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImportError(f"task {path!r}: {module} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, Task) and not isinstance(obj, type):
        if kwargs:
            raise TypeError(
                f"task {path!r} is a task object, not a factory: it takes no "
                f"keyword arguments (got {sorted(kwargs)})"
            )
        return obj
    if not callable(obj):
        raise TypeError(
            f"task {path!r} is neither a task nor a factory that returns one "
            f"(it is of type {type(obj).__name__})"
        )
    task = _build(path, obj, kwargs)
    if not isinstance(task, Task):
        what = f"factory {path} returned {type(task).__name__}, not a Task"
        try:
            check_task(task)  # says which members it lacks
        except TypeError as e:
            raise TypeError(f"{what}: {e}") from None
        raise TypeError(what)
    return task


def _build(label: str, factory: Any, kwargs: dict[str, Any]) -> Any:
    """``factory(**kwargs)``; a keyword it does not take is said with the
    ones it does."""
    try:
        return factory(**kwargs)
    except TypeError as e:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # no signature to read
            raise e from None
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = sorted(set(kwargs) - set(params))
        if takes_any or not unknown or "keyword argument" not in str(e):
            raise  # raised inside the factory, not by its signature
        known = [
            n
            for n, p in params.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"
        ]
        raise TypeError(
            f"task {label!r} takes no keyword argument {', '.join(map(repr, unknown))}"
            f"; it takes {', '.join(known) if known else 'none'}"
        ) from None
