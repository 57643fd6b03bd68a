"""Lazy imports of the optional trackers, with an error that says how to get them.

The core library never imports MLflow or TensorBoard: they are heavy (MLflow takes
seconds to import) and optional. Every function that needs one calls these helpers
at run time.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

_HINT = (
    "{what} needs the optional package {package!r}, which is not installed. "
    "Install the tracking extra (in a clone of optax-lode: "
    "pip install -e '.[tracking]')"
)


def require(module: str, *, package: str, what: str) -> ModuleType:
    """Imports ``module`` or raises an ImportError naming the extra to install.

    Args:
        module: the module to import, e.g. ``"mlflow"``.
        package: the PyPI distribution that provides it, for the message.
        what: what the user was doing, for the message (e.g. ``"from_mlflow"``).

    Returns:
        The imported module.

    Raises:
        ImportError: if the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(_HINT.format(what=what, package=package)) from err


def mlflow_client(tracking_uri: str | None, *, what: str):
    """An ``mlflow.MlflowClient`` for ``tracking_uri`` (MLflow's default if None)."""
    mlflow = require("mlflow", package="mlflow-skinny", what=what)
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    if str(uri).startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        # mlflow-skinny leaves out what its SQL stores (the default) need.
        require("sqlalchemy", package="sqlalchemy", what=what)
        require("alembic", package="alembic", what=what)
    _check_sqlite_store(str(uri), what)
    return MlflowClient(tracking_uri=tracking_uri)


def sqlite_path(uri: str) -> str | None:
    """The file of a ``sqlite:///`` tracking URI, its query dropped; None for
    another store (or ``sqlite://`` in memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    return uri[len("sqlite:///") :].split("?", 1)[0]


def _check_sqlite_store(uri: str, what: str) -> None:
    """Raises ``OSError`` for a ``sqlite:///`` store that cannot be created:
    MLflow would retry its connection for minutes before failing."""
    path = sqlite_path(uri)
    if not path or path == ":memory:" or os.path.exists(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        why = "no such directory"
    elif not os.access(parent, os.W_OK):
        why = "not writable"
    else:
        return
    raise OSError(
        f"{what}: the MLflow store {uri} does not exist and cannot be created "
        f"there ({parent}: {why}); pass a sqlite:/// path in a writable "
        "directory, or a tracking server's URI"
    )
