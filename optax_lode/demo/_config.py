"""What the demo (and the schedule-quality benchmark) runs, and the cache keys."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optax_lode.runs import Trajectories

#: Cache format version: bump it when a stage's output changes meaning. 2: a
#: tick whose last update made the parameters non-finite is masked (the sweep's
#: chunk format 3), and the keys are normalised (sorted pairs, resolved epochs,
#: ``data_dir`` still keyed). The sweep's chunk format is keyed too (:meth:`_digest`).
CACHE_VERSION = 2


#: Baselines the default demo tunes and runs: all of ``optax_lode.baselines``.
ALL_BASELINES = (
    "constant",
    "cosine",
    "onecycle",
    "exponential",
    "step",
    "hd-sgd",
    "hd-adam",
    "schedule-free",
    "reduce-on-plateau",
    "prodigy",
    "dog",
)


def _frozen(value: Any) -> Any:
    """``value`` with its lists (at any depth) as tuples."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The whole demo pipeline's settings: sweep, fit, evaluation runs.

    Attributes:
        task: registered task name (``optax_lode.tasks.TASKS``).
        task_kwargs: keyword arguments of the task factory, as ``(name, value)``
            pairs (hashable); kept sorted by name, a repeated name's last
            value winning (as ``dict`` and ``--task-arg`` read them).
        epochs: run length in epochs; ``None`` = the task's default.
        ticks_per_epoch: ticks per epoch (the LODE's clock).
        shapes: schedule shapes of the sweep the LODE is fitted to.
        lrs: peak/initial learning rates of the sweep.
        sweep_seeds: seeds per sweep configuration (``range(sweep_seeds)``).
        fit_steps: gradient steps of :func:`optax_lode.fit`.
        fit_kwargs: further ``fit`` keyword arguments, as pairs (sorted, as
            ``task_kwargs``).
        held_out: fraction of sweep runs kept out of the fit, for Table A1.
        seeds: evaluation seeds per method (``first_seed, first_seed + 1, ...``;
            fresh, disjoint from the sweep and tuning seeds).
        first_seed: first evaluation seed.
        baselines: baselines of ``optax_lode.baselines.BASELINES`` to compare.
        tuning_seeds: seeds of the baselines' tuning runs (those not in the
            sweep); the sweep's shapes are tuned on the sweep itself.
        lode_kwargs: ``lode_schedule`` keyword arguments (``n``, ``sigma``,
            ``horizon``, ``mu``, ...), as pairs (sorted, as ``task_kwargs``).
        seed: seed of the held-out split and of ``fit``.
        tag: a label that distinguishes models fitted to a subset of the sweep
            (data ablations); part of the model's cache key.

    Raises:
        ValueError: a setting a later stage would trip on, checked when the
            config is made: ``task_kwargs``, ``fit_kwargs`` or ``lode_kwargs``
            not ``(name, value)`` pairs or a mapping; no baseline or an
            unknown one; a ``lode_kwargs`` name that is no ``lode_schedule``
            option the demo can set; fewer than 2 ``seeds``; ``sweep_seeds``
            or ``fit_steps`` < 1; ``held_out`` not in (0, 1); evaluation
            seeds that overlap the sweep or tuning seeds; no shape or no
            learning rate; or a sweep of fewer than 2 runs.

    Examples:
        >>> from optax_lode.demo import DemoConfig
        >>> cfg = DemoConfig(task="nqm", task_kwargs={"dim": 10}, seeds=3)
        >>> cfg.task_kwargs, cfg.eval_seeds
        ((('dim', 10),), (1000, 1001, 1002))
    """

    task: str = "mnist1d-mlp"
    task_kwargs: tuple[tuple[str, Any], ...] = ()
    epochs: int | None = None
    ticks_per_epoch: int = 1
    shapes: tuple[str, ...] = ("constant", "cosine", "onecycle", "exponential")
    lrs: tuple[float, ...] = (1e-3, 5e-3, 1e-2, 5e-2, 1e-1)
    sweep_seeds: int = 5
    fit_steps: int = 3000
    fit_kwargs: tuple[tuple[str, Any], ...] = ()
    held_out: float = 0.2
    seeds: int = 5
    first_seed: int = 1000
    baselines: tuple[str, ...] = ALL_BASELINES
    tuning_seeds: tuple[int, ...] = (0,)
    lode_kwargs: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    tag: str = ""

    def __post_init__(self) -> None:
        for name in ("task_kwargs", "fit_kwargs", "lode_kwargs"):
            # A dict is natural to pass, but the cache keys list the pairs: as
            # a dict they listed its keys only, and other values hit old keys.
            value = getattr(self, name)
            pairs = tuple(value.items() if isinstance(value, Mapping) else value)
            if not all(
                isinstance(p, tuple | list) and len(p) == 2 and isinstance(p[0], str)
                for p in pairs
            ):
                raise ValueError(
                    f"{name} must be (name, value) pairs or a mapping; got {value!r}."
                )
            # Lists (from --task-arg hidden=[64], say) as tuples: hashable.
            # One order and one value per name (the last, as the factory gets
            # them through dict()): the same settings give the same cache keys.
            pairs = tuple(sorted((k, _frozen(v)) for k, v in dict(pairs).items()))
            object.__setattr__(self, name, pairs)
        self._check_names()
        if self.seeds < 2:
            raise ValueError(
                f"seeds={self.seeds}: at least 2 evaluation seeds are needed for a "
                "mean ± std and a significance test (the paper uses 10-20)."
            )
        if self.sweep_seeds < 1:
            raise ValueError(f"sweep_seeds must be >= 1, got {self.sweep_seeds}.")
        if not 0.0 < self.held_out < 1.0:
            raise ValueError(f"held_out must be in (0, 1), got {self.held_out}.")
        if self.fit_steps < 1:
            raise ValueError(f"fit_steps must be >= 1, got {self.fit_steps}.")
        if self.first_seed < self.sweep_seeds or set(self.tuning_seeds) & set(
            self.eval_seeds
        ):
            raise ValueError(
                f"first_seed={self.first_seed} makes the evaluation seeds overlap "
                "the sweep or tuning seeds; evaluation runs must use fresh seeds."
            )
        if not self.shapes or not self.lrs:
            raise ValueError("the sweep needs at least one shape and one lr.")
        runs = len(self.shapes) * len(self.lrs) * self.sweep_seeds
        if runs < 2:  # else "cannot split" after the sweep has run
            raise ValueError(
                f"the sweep has {runs} run (shapes x lrs x sweep_seeds); the demo "
                "fits the LODE to some runs and holds out others, so it needs at "
                "least 2: add a learning rate, a shape or a sweep seed."
            )

    def _check_names(self) -> None:
        """Names a later stage would trip on, after the sweep and the fit."""
        import inspect

        from optax_lode.baselines import BASELINES
        from optax_lode.transform import lode_schedule

        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or not self.baselines:
            what = f"unknown {unknown}" if unknown else "none"
            raise ValueError(
                f"baselines must name at least one of {sorted(BASELINES)}; got {what}."
            )
        # The pipeline sets the model, the run's length and clock, and the
        # seed; it trains runs one by one (no vmap axis to name).
        taken = {"model", "total_steps", "steps_per_tick", "seed", "axis_name"}
        allowed = set(inspect.signature(lode_schedule).parameters) - taken
        bad = [k for k, _ in self.lode_kwargs if k not in allowed]
        if bad:
            raise ValueError(
                f"lode_kwargs {bad} are not lode_schedule options the demo can "
                f"set; choose among {sorted(allowed)}."
            )

    @property
    def eval_seeds(self) -> tuple[int, ...]:
        """The evaluation seeds: ``first_seed, ..., first_seed + seeds - 1``."""
        return tuple(range(self.first_seed, self.first_seed + self.seeds))

    def replace(self, **changes: Any) -> DemoConfig:
        """A copy with some settings changed (``dataclasses.replace``).

        Args:
            **changes: new values of fields, by name.

        Returns:
            The new config, checked as a new one is.

        Raises:
            ValueError: the changed config is invalid (see the class).
            TypeError: a name that is not a field.

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> DemoConfig(task="nqm").replace(seeds=3).seeds
            3
        """
        return dataclasses.replace(self, **changes)

    def split(self, sweep: Trajectories) -> tuple[Trajectories, Trajectories]:
        """The sweep's ``(train, held_out)`` runs: the LODE is fitted to the
        first, Table A1 is measured on the second (:meth:`model_key` covers
        both settings).

        Args:
            sweep: the sweep's runs.

        Returns:
            ``(train, held_out)``: ``sweep.split(held_out=self.held_out,
            seed=self.seed)``.

        Raises:
            ValueError: the sweep has fewer than 2 runs.
        """
        return sweep.split(held_out=self.held_out, seed=self.seed)

    # -- cache keys: a stage's key covers exactly what its output depends on --

    def _digest(self, **fields: Any) -> str:
        # The sweep's chunk format changes when the runs' records change
        # meaning (format 3 masked a tick that made the parameters non-finite),
        # which the demo's sweeps, tunings and runs all share.
        from optax_lode.sweep._sweep import _FORMAT

        blob = json.dumps(
            {"v": CACHE_VERSION, "sweep_format": _FORMAT, **fields},
            sort_keys=True,
            default=repr,
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def run_epochs(self) -> int | None:
        """The run length in epochs: ``epochs``, or else the task's default.

        Read from the task factory's ``default_epochs`` argument (as given in
        ``task_kwargs``, or its default), without building the task (a TFDS
        task would read its data). ``None`` when that cannot be known: an
        unregistered task, or a factory that does not import.

        Returns:
            The number of epochs of a run, or ``None``.

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> DemoConfig(task="nqm").run_epochs()
            20
            >>> DemoConfig(task="nqm", epochs=5).run_epochs()
            5
        """
        if self.epochs is not None:
            return self.epochs
        kwargs = dict(self.task_kwargs)
        if "default_epochs" in kwargs:
            return kwargs["default_epochs"]
        from optax_lode.tasks import TASKS

        if self.task not in TASKS:
            return None
        module, _, attr = TASKS[self.task].partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
            param = inspect.signature(factory).parameters.get("default_epochs")
        except (ImportError, AttributeError, TypeError, ValueError):
            return None
        if param is None or param.default is inspect.Parameter.empty:
            return None
        return param.default

    def _task_fields(self) -> dict[str, Any]:
        epochs = self.run_epochs()
        # Keyed by the run's length, however it was given (epochs=None or the
        # task's default number; default_epochs only sets that length).
        # data_dir stays keyed: another directory can hold other data (another
        # version of the dataset), and the cached sweep would not know.
        unkeyed = {"default_epochs"} if epochs is not None else set()
        return {
            "task": self.task,
            "task_kwargs": [list(p) for p in self.task_kwargs if p[0] not in unkeyed],
            "epochs": epochs if epochs is not None else self.epochs,
            "ticks_per_epoch": self.ticks_per_epoch,
        }

    def sweep_key(self) -> str:
        """The cache key of the sweep stage.

        Returns:
            12 hex digits of a hash of what the sweep depends on: the task,
            its arguments, the run's length and clock, the shapes, learning
            rates and sweep seeds (and the cache and sweep formats).

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> cfg = DemoConfig(task="nqm")
            >>> len(cfg.sweep_key())
            12
            >>> cfg.replace(fit_steps=10).sweep_key() == cfg.sweep_key()
            True
        """
        return self._digest(
            stage="sweep",
            **self._task_fields(),
            shapes=list(self.shapes),
            lrs=list(self.lrs),
            sweep_seeds=self.sweep_seeds,
        )

    def model_key(self) -> str:
        """The cache key of the fitted model.

        Returns:
            12 hex digits of a hash of the :meth:`sweep_key`, ``fit_steps``,
            ``fit_kwargs``, ``held_out``, ``seed`` and a non-empty ``tag``.

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> cfg = DemoConfig(task="nqm")
            >>> cfg.replace(fit_steps=10).model_key() == cfg.model_key()
            False
        """
        return self._digest(
            stage="model",
            sweep=self.sweep_key(),
            fit_steps=self.fit_steps,
            fit_kwargs=list(self.fit_kwargs),
            held_out=self.held_out,
            seed=self.seed,
            # Only a non-empty tag enters the key (older caches stay valid).
            **({"tag": self.tag} if self.tag else {}),
        )

    def tuning_grid(self, baseline: str) -> tuple[float, ...]:
        """The learning rates ``baseline`` is tuned over.

        Args:
            baseline: a name of ``optax_lode.baselines.BASELINES``.

        Returns:
            The sweep's ``lrs``, or a learning-rate-free method's own
            multipliers (its ``default_learning_rates``).

        Raises:
            KeyError: ``baseline`` is not registered.

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> cfg = DemoConfig(task="nqm", lrs=(0.01, 0.1))
            >>> cfg.tuning_grid("hd-adam"), cfg.tuning_grid("prodigy")
            ((0.01, 0.1), (0.25, 0.5, 1.0))
        """
        from optax_lode.baselines import BASELINES

        spec = BASELINES[baseline]
        if spec.learning_rate_role == "multiplier":
            return tuple(spec.default_learning_rates)
        return tuple(self.lrs)

    def tuning_key(self, baseline: str) -> str:
        """The cache key of a baseline's tuning.

        Args:
            baseline: a name of ``optax_lode.baselines.BASELINES``.

        Returns:
            12 hex digits: for a shape of the sweep (tuned on the sweep), a
            hash of the :meth:`sweep_key`; for another baseline, of the task
            settings, the :meth:`tuning_grid` and the ``tuning_seeds``.

        Raises:
            KeyError: ``baseline`` is neither a sweep shape nor registered.
        """
        if baseline in self.shapes:
            return self._digest(
                stage="tune-sweep", sweep=self.sweep_key(), name=baseline
            )
        return self._digest(
            stage="tune",
            **self._task_fields(),
            name=baseline,
            lrs=list(self.tuning_grid(baseline)),
            tuning_seeds=list(self.tuning_seeds),
        )

    def run_key(
        self,
        method: str,
        seed: int,
        setting: Any,
        batch: tuple[int, ...] | None = None,
    ) -> str:
        """The cache key of one run; ``batch``: the seeds it was trained with.

        A run vmapped with other seeds can round differently from one trained
        alone or in a batch of another size (XLA picks kernels by shape), and
        training a convnet amplifies that into visibly different runs. So the
        batch is part of a batched run's identity, and a re-run reproduces the
        cached runs bit for bit.

        Args:
            method: ``"LODE"`` or a baseline's name.
            seed: the run's seed.
            setting: what the run depends on besides the task and the seed
                (a baseline's tuned rate, :meth:`lode_setting`), JSON-able.
            batch: the seeds the run was trained with, vmapped; ``None`` for
                a run trained alone.

        Returns:
            12 hex digits of a hash of the task settings and the arguments.

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> cfg = DemoConfig(task="nqm")
            >>> alone = cfg.run_key("cosine", 1000, {"learning_rate": 0.1})
            >>> alone == cfg.run_key("cosine", 1000, {"learning_rate": 0.1},
            ...                      batch=(1000, 1001))
            False
        """
        return self._digest(
            stage="run",
            **self._task_fields(),
            method=method,
            seed=seed,
            setting=setting,
            # Only batched runs carry it (runs trained alone keep their keys).
            **({"batch": list(batch)} if batch is not None else {}),
        )

    def lode_setting(self, model_digest: str) -> dict[str, Any]:
        """What a LODE run depends on besides its task and seed: the model (by
        its settings and, as a fit made again on another CPU differs, by its
        content: :func:`optax_lode.model.model_digest`), the decision's
        revision and the schedule's options.

        Args:
            model_digest: the fitted model's content digest
                (:func:`optax_lode.model.model_digest`).

        Returns:
            ``{"model": model_key, "model_digest": ..., "decision_revision":
            ..., **lode_kwargs}``, the ``setting`` of :meth:`run_key`.

        Examples:
            >>> from optax_lode.demo import DemoConfig
            >>> cfg = DemoConfig(task="nqm", lode_kwargs={"n": 10})
            >>> sorted(cfg.lode_setting("0123abcd"))
            ['decision_revision', 'model', 'model_digest', 'n']
        """
        from optax_lode.decision import DECISION_REVISION

        return {
            "model": self.model_key(),
            "model_digest": model_digest,
            "decision_revision": DECISION_REVISION,
            **dict(self.lode_kwargs),
        }


#: Per-task defaults where the global ones would not give the LODE a run to
#: schedule. text-transformer trains 3 epochs of 87 steps: one tick per epoch
#: is T = 3 ticks, a window of 2 and a single decision at the last tick (the
#: rest is the warm start); 29 ticks of 3 steps per epoch are T = 87.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "text-transformer": {"ticks_per_epoch": 29},
}


def default_config(task: str = "mnist1d-mlp", **changes: Any) -> DemoConfig:
    """The default demo: the paper's sweep on ``task``, every baseline, 5 seeds.

    One tick per epoch, except where a task has too few epochs for it (the
    module's ``TASK_DEFAULTS``): text-transformer's 3 epochs of 87 steps run
    29 ticks of 3 steps each, T = 87 ticks. ``changes`` apply after.

    Args:
        task: a registered task name (``optax_lode.tasks.TASKS``).
        **changes: :class:`DemoConfig` fields to set, by name.

    Returns:
        The :class:`DemoConfig`.

    Raises:
        ValueError: ``changes`` make an invalid config (see
            :class:`DemoConfig`).
        TypeError: a name in ``changes`` that is not a field.

    Examples:
        >>> from optax_lode.demo import default_config
        >>> cfg = default_config("text-transformer", seeds=10)
        >>> cfg.ticks_per_epoch, cfg.seeds, len(cfg.baselines)
        (29, 10, 11)
    """
    return DemoConfig(task=task).replace(**{**TASK_DEFAULTS.get(task, {}), **changes})


def fast_config(task: str = "mnist1d-mlp", **changes: Any) -> DemoConfig:
    """A reduced demo (under a minute on a 2-core CPU for mnist1d-mlp): a 2 x 2 x 2
    sweep of 6 epochs, a 150-step fit, 2 seeds and the two baselines the sweep
    tunes for free. Its numbers show that the pipeline works, not how good
    LODE is.

    Args:
        task: a registered task name (``optax_lode.tasks.TASKS``).
        **changes: :class:`DemoConfig` fields to set, by name, after the
            reductions.

    Returns:
        The :class:`DemoConfig`.

    Raises:
        ValueError: ``changes`` make an invalid config (see
            :class:`DemoConfig`).
        TypeError: a name in ``changes`` that is not a field.

    Examples:
        >>> from optax_lode.demo import fast_config
        >>> cfg = fast_config("nqm")
        >>> cfg.epochs, cfg.fit_steps, cfg.baselines
        (6, 150, ('constant', 'cosine'))
    """
    cfg = DemoConfig(
        task=task,
        epochs=6,
        ticks_per_epoch=2,
        shapes=("constant", "cosine"),
        lrs=(3e-3, 3e-2),
        sweep_seeds=2,
        fit_steps=150,
        seeds=2,
        baselines=("constant", "cosine"),
        lode_kwargs=(("n", 10),),
    )
    return cfg.replace(**changes)
