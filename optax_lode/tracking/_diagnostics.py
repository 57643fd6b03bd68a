"""Log the LODE scheduler's learning rate and decisions from a training loop.

``lode_schedule`` keeps its diagnostics in its state (``LodeState``): the rate it
applied, how many decisions and fallbacks it made, how many ensemble members the
last decision accepted and the score it predicted, and how many non-finite losses
it saw. :class:`LodeDiagnosticsLogger` copies them to MLflow and/or TensorBoard
next to the user's own metrics.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from optax_lode.tracking._deps import mlflow_client, require

__all__ = ["LodeDiagnosticsLogger", "lode_diagnostics"]

# LodeState fields worth plotting, in display order.
DIAGNOSTIC_FIELDS = (
    "learning_rate",
    "tick",
    "decisions",
    "fallbacks",
    "last_accepted",
    "last_score",
    "nonfinite",
)


def lode_diagnostics(opt_state: Any) -> dict[str, float]:
    """The scheduler's diagnostics, as host floats, from an optimizer state.

    Args:
        opt_state: the state of a transformation containing one
            :func:`~optax_lode.lode_schedule` (e.g. of
            ``optax.chain(optax.adamw(1.0), lode_schedule(model, ...))``).

    Returns:
        ``{field: value}`` for ``learning_rate, tick, decisions, fallbacks,
        last_accepted, last_score, nonfinite``. This copies a few scalars from the
        device (one sync): call it every few steps, not inside a jitted step.

    Raises:
        ValueError: if the state holds no ``LodeState``, more than one, or a
            batched one (from ``jax.vmap`` over runs: index one run first).

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from optax_lode import LatentODE, lode_schedule
        >>> from optax_lode.tracking import lode_diagnostics
        >>> model = LatentODE(T=10, key=jax.random.key(0), latent_size=4,
        ...                   hidden_size=8, depth=1)  # untrained
        >>> tx = optax.chain(optax.adamw(1.0),
        ...                  lode_schedule(model, total_steps=10, steps_per_tick=1))
        >>> diag = lode_diagnostics(tx.init(jnp.zeros(3)))
        >>> diag["tick"], diag["decisions"], diag["fallbacks"]
        (0.0, 0.0, 0.0)
    """

    from optax_lode.transform._schedule import host_fields, lode_states

    found = lode_states(opt_state)
    if not found:
        raise ValueError(
            "no LodeState in this optimizer state: pass the state of a "
            "transformation that contains optax_lode.lode_schedule(...), e.g. "
            "optax.chain(optax.adamw(1.0), lode_schedule(model, ...))."
        )
    if len(found) > 1:
        raise ValueError(
            f"the optimizer state holds {len(found)} LodeStates; pass the sub-state "
            "of the one schedule to log."
        )
    fields = host_fields(found[0])  # NumPy: safe under jax_debug_nans
    values = {f: fields[f] for f in DIAGNOSTIC_FIELDS}
    shape = np.shape(values["learning_rate"])
    if shape != ():
        raise ValueError(
            f"the LodeState is batched (learning_rate has shape {shape}, e.g. from "
            "jax.vmap over runs); select one run's state with "
            "jax.tree.map(lambda x: x[i], state) first."
        )
    return {f: float(np.asarray(v)) for f, v in values.items()}


class LodeDiagnosticsLogger:
    """Logs :func:`lode_diagnostics` to MLflow and/or TensorBoard.

    Metrics are named ``prefix + field`` (``lode/learning_rate``,
    ``lode/decisions``, ...) and logged at the step you pass.

    Args:
        mlflow: ``True`` to log to the active MLflow run (``mlflow.start_run``),
            a run id string to log to that run, ``False`` for no MLflow.
        tracking_uri: MLflow tracking URI when ``mlflow`` is a run id (``None``:
            MLflow's default).
        tensorboard: a log directory to write TensorBoard scalars to (with
            TensorBoard's own ``tensorboard.summary.Writer``), or ``None``.
        prefix: prepended to every metric name.

    Raises:
        ValueError: neither ``mlflow`` nor ``tensorboard`` is given, or
            ``mlflow=True`` while no MLflow run is active.
        ImportError: MLflow or TensorBoard (the ``tracking`` extra) is needed
            and not installed.
        mlflow.exceptions.MlflowException: ``mlflow`` is a run id MLflow does
            not know (checked when the logger is made).

    Examples:
        >>> with mlflow.start_run(), LodeDiagnosticsLogger(  # doctest: +SKIP
        ...         mlflow=True, tensorboard="logs/run0") as log_lode:
        ...     for step in range(total_steps):
        ...         params, opt_state, loss = train_step(params, opt_state, batch)
        ...         if step % 50 == 0:
        ...             log_lode(opt_state, step)
    """

    def __init__(
        self,
        *,
        mlflow: bool | str = False,
        tracking_uri: str | None = None,
        tensorboard: str | os.PathLike | None = None,
        prefix: str = "lode/",
    ):
        if not mlflow and tensorboard is None:
            raise ValueError(
                "nothing to log to: pass mlflow=True (the active run), mlflow=<run "
                "id>, and/or tensorboard=<log directory>."
            )
        self.prefix = prefix
        self._client = None
        self._run_id = None
        if mlflow is True:
            mod = require(
                "mlflow", package="mlflow-skinny", what="LodeDiagnosticsLogger"
            )
            run = mod.active_run()
            if run is None:
                raise ValueError(
                    "mlflow=True logs to the active MLflow run, but none is active: "
                    "call mlflow.start_run() first, or pass mlflow=<run id>."
                )
            self._run_id = run.info.run_id
            self._client = mlflow_client(
                tracking_uri or mod.get_tracking_uri(), what="LodeDiagnosticsLogger"
            )
        elif mlflow:
            self._client = mlflow_client(tracking_uri, what="LodeDiagnosticsLogger")
            self._run_id = str(mlflow)
            self._client.get_run(self._run_id)  # fail now on an unknown run id
        self._writer = None
        if tensorboard is not None:
            require("tensorboard", package="tensorboard", what="LodeDiagnosticsLogger")
            from tensorboard.summary import Writer

            self._writer = Writer(os.fspath(tensorboard))

    def __call__(self, opt_state: Any, step: int) -> dict[str, float]:
        """Logs the diagnostics of ``opt_state`` at ``step``; returns them.

        Also available as :meth:`log`.

        Args:
            opt_state: the optimizer state, as for :func:`lode_diagnostics`.
            step: the step to log the values at (the training step).

        Returns:
            The diagnostics logged, as :func:`lode_diagnostics` returns them
            (names without the prefix).

        Raises:
            ValueError: as :func:`lode_diagnostics`: no, several or a batched
                ``LodeState`` in ``opt_state``.

        Examples:
            >>> import tempfile
            >>> import jax, jax.numpy as jnp, optax
            >>> from optax_lode import LatentODE, lode_schedule
            >>> from optax_lode.tracking import LodeDiagnosticsLogger
            >>> model = LatentODE(T=10, key=jax.random.key(0), latent_size=4,
            ...                   hidden_size=8, depth=1)  # untrained
            >>> tx = optax.chain(optax.adamw(1.0),
            ...                  lode_schedule(model, total_steps=10, steps_per_tick=1))
            >>> state = tx.init(jnp.zeros(3))
            >>> with LodeDiagnosticsLogger(tensorboard=tempfile.mkdtemp()) as log_lode:
            ...     logged = log_lode(state, step=0)
            >>> sorted(logged)[:3]
            ['decisions', 'fallbacks', 'last_accepted']
        """
        values = lode_diagnostics(opt_state)
        step = int(step)
        if self._client is not None:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._client.log_batch(
                self._run_id,
                metrics=[
                    Metric(self.prefix + k, v, now, step) for k, v in values.items()
                ],
            )
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar(self.prefix + k, v, step)
        return values

    log = __call__

    def flush(self) -> None:
        """Writes buffered TensorBoard events to disk."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer (MLflow needs no closing)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> LodeDiagnosticsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
