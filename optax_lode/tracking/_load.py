"""``load_runs``: one entry point for every place runs can come from."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from optax_lode.runs import Trajectories

__all__ = ["load_runs"]

_FORMS = (
    "mlflow://EXPERIMENT (an MLflow experiment name; tracking_uri= or "
    "MLFLOW_TRACKING_URI says where), tensorboard://LOGDIR (a TensorBoard log "
    "directory, one sub-directory per run), or a .csv/.parquet file of runs"
)


def load_runs(source: str | os.PathLike, **options: Any) -> Trajectories:
    """Reads a sweep's runs from a tracker or a file, by the form of ``source``.

    - ``mlflow://EXPERIMENT``: :func:`~optax_lode.tracking.from_mlflow` (the name
      may be percent-encoded, e.g. ``mlflow://my%20sweep``);
    - ``tensorboard://LOGDIR``: :func:`~optax_lode.tracking.from_tensorboard`;
    - ``*.csv`` (also ``.csv.gz``, ``.bz2``, ``.xz``), ``*.parquet``, ``*.pq``:
      ``Trajectories.from_file`` (long format, one row per (run, tick)).

    Args:
        source: where the runs are.
        **options: passed to the reader; options that are ``None`` are dropped,
            so a command line can forward its unset flags. For the trackers
            they are ``tracking_uri`` (MLflow), ``loss``, ``metric``, ``lr``
            (key names), ``tick`` (tracker steps per tick) and the alignment
            options; for files they name the columns (``run``, ``tick``,
            ``loss``, ``metric``, ``lr``) and may give ``num_ticks``,
            ``steps_per_tick`` (optimizer steps per tick) and
            ``metric_negated`` (a CSV file keeps neither).

    Returns:
        The runs on one tick grid.

    Raises:
        ValueError: on a source of no known form.
        TypeError: on an option the chosen reader does not take.

    Examples:
        >>> traj = load_runs("mlflow://digits-sweep",  # doctest: +SKIP
        ...                  tracking_uri="sqlite:///mlflow.db", tick=10)
    """
    text = os.fspath(source)
    options = {k: v for k, v in options.items() if v is not None}
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme == "mlflow":
            from optax_lode.tracking._mlflow import from_mlflow

            if not rest:
                raise ValueError(f"{text!r} names no experiment; expected {_FORMS}.")
            return from_mlflow(unquote(rest), **options)
        if scheme == "tensorboard":
            from optax_lode.tracking._tensorboard import from_tensorboard

            if not rest:
                raise ValueError(f"{text!r} names no directory; expected {_FORMS}.")
            return from_tensorboard(rest, **options)
        raise ValueError(
            f"unknown source scheme {scheme!r} in {text!r}; expected {_FORMS}."
        )
    from optax_lode.runs._trajectories import file_format

    if file_format(text) is not None:
        from optax_lode.runs import Trajectories

        return Trajectories.from_file(text, **options)
    raise ValueError(f"cannot tell what {text!r} is; expected {_FORMS}.")
