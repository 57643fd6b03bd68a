"""The sweep engine: (schedule shape x peak lr x seed), vmapped, chunked,
sharded over devices and resumable."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from optax_lode._files import atomic_write, atomic_write_bytes, usable_directory
from optax_lode._seeds import check_seeds
from optax_lode._version import __version__
from optax_lode._warn import caller_stacklevel
from optax_lode._whole import whole
from optax_lode.runs._zero_loss import floor_zero_losses
from optax_lode.sweep._loop import check_clock, finish_records, init_carry, tick
from optax_lode.sweep._schedules import (
    PAPER_LRS,
    PAPER_SHAPES,
    SCHEDULE_SHAPES,
    _check_number,
    sweep_optimizer,
    switch_schedule,
)
from optax_lode.tasks import Task, check_task

if TYPE_CHECKING:
    from optax_lode.runs import Trajectories

_MANIFEST = "manifest.json"


class DivergedSweepRunWarning(UserWarning):
    """Sweep runs diverged: before their first tick record (left out), or
    later (masked from their divergence on).

    Issued by :func:`run_sweep` at most twice per sweep (once for each kind),
    naming the runs. A sweep's learning-rate grid usually reaches rates that
    diverge, on purpose; make it an error to catch a grid set too high.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("error", DivergedSweepRunWarning)
        ...     issubclass(DivergedSweepRunWarning, UserWarning)
        True
    """


def sweep_grid(
    shapes: Sequence[str], lrs: Sequence[float], seeds: Sequence[int]
) -> list[tuple[str, float, int]]:
    """The sweep's runs in order: shape-major, then learning rate, then seed.

    Args:
        shapes: schedule shapes.
        lrs: peak (or initial) learning rates.
        seeds: seeds.

    Returns:
        Every ``(shape, lr, seed)``, in :func:`run_sweep`'s order.

    Examples:
        >>> for run in sweep_grid(["constant", "cosine"], [0.01], [0, 1]):
        ...     print(run)
        ('constant', 0.01, 0)
        ('constant', 0.01, 1)
        ('cosine', 0.01, 0)
        ('cosine', 0.01, 1)
    """
    return list(itertools.product(shapes, lrs, seeds))


def run_id(shape: str, lr: float, seed: int) -> str:
    """The run id of a sweep run, e.g. ``"cosine-lr0.01-s3"``.

    Args:
        shape: the schedule shape.
        lr: the peak (or initial) learning rate, printed with ``%g`` (6
            significant digits).
        seed: the seed.

    Returns:
        The id :func:`run_sweep` gives the run.

    Examples:
        >>> run_id("cosine", 0.01, 3), run_id("onecycle", 5e-05, 0)
        ('cosine-lr0.01-s3', 'onecycle-lr5e-05-s0')
    """
    return f"{shape}-lr{lr:g}-s{seed}"


def _listed(name: str, xs: Any, example: str) -> tuple:
    """``xs`` as a tuple; a lone string or number is refused, not iterated
    (``"constant"`` would be the shapes ``c, o, n, ...``)."""
    if isinstance(xs, str | bytes) or not isinstance(xs, Iterable):
        raise TypeError(f"{name} must be a list, e.g. {name}={example}; got {xs!r}")
    return tuple(xs)


def _real(name: str, x: Any) -> float:
    """``x`` as a float; a bool or a string is refused, not converted."""
    try:
        if isinstance(x, bool | str | bytes):
            raise TypeError
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold real numbers; got {x!r}") from None


def _validate(shapes, lrs, seeds) -> tuple[tuple[str, ...], tuple, tuple]:
    shapes = tuple(str(s) for s in _listed("shapes", shapes, "['cosine']"))
    lrs = tuple(_real("lrs", x) for x in _listed("lrs", lrs, "[0.01]"))
    seeds = check_seeds(_listed("seeds", seeds, "[0, 1] (or seeds=2)"))
    empty = [
        n for n, v in (("shapes", shapes), ("lrs", lrs), ("seeds", seeds)) if not v
    ]
    if empty:
        raise ValueError(f"{' and '.join(empty)} must not be empty")
    bad = [s for s in shapes if s not in SCHEDULE_SHAPES]
    if bad:
        raise ValueError(
            f"unknown schedule shapes {bad}; choose from {list(SCHEDULE_SHAPES)}"
        )
    if not all(np.isfinite(x) and x > 0 for x in lrs):
        raise ValueError(f"learning rates must be finite and > 0, got {lrs}")
    # The runs train in float32: a rate past its range would train as inf or
    # 0 and fail only after the sweep.
    tiny, top = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    bad = [x for x in lrs if not tiny <= x <= top]
    if bad:
        raise ValueError(
            f"learning rates {bad} are not finite and > 0 in float32, in which "
            f"the sweep trains: use rates in [{tiny:.3g}, {top:.3g}]"
        )
    for name, xs in (("shapes", shapes), ("lrs", lrs), ("seeds", seeds)):
        if len(set(xs)) != len(xs):
            raise ValueError(f"{name} has duplicates: {xs}")
    # Run ids print the rate with %g: rates that differ past its 6 digits
    # would share an id, found only after training.
    ids = [run_id(shapes[0], x, seeds[0]) for x in lrs]
    if len(set(ids)) != len(ids):
        same = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(
            f"learning rates {lrs} give the same run ids {same} (rates are "
            "printed with 6 significant digits): use rates that differ there."
        )
    return shapes, lrs, seeds


def _run_program(task: Task, shapes, num_ticks, steps_per_tick, weight_decay):
    """The vmapped program of one chunk: ``(shape_idx, peak, seed)[runs] ->
    (loss, metric, lr)[runs, ticks], test[runs]``."""
    total_steps = num_ticks * steps_per_tick

    def run_one(shape_idx, peak, seed):
        schedule = switch_schedule(shapes, shape_idx, peak, total_steps)
        tx = sweep_optimizer(schedule, weight_decay=weight_decay)
        carry, data_key = init_carry(task, tx, jax.random.key(seed))

        def body(c, _):
            return tick(task, tx, c, data_key, steps_per_tick=steps_per_tick)

        carry, recs = jax.lax.scan(body, carry, None, length=num_ticks)
        test = task.metric(carry.params, carry.model_state, "test")
        return recs.loss, recs.metric, recs.lr, test

    return jax.vmap(run_one)


def _task_fingerprint(task: Task) -> tuple[str, float]:
    """What a manifest knows of the task beyond its name, from the task itself:
    its parameters' paths, shapes and dtypes, and at initialisation its first
    minibatch loss, the norm of each parameter's gradient of that loss and its
    validation metric (5 significant digits, so float rounding across
    machines rarely matters). A task built with other arguments (model size,
    batch size, data, gradient noise) gives another fingerprint: the gradient
    sees what the loss's value may not (the NQM reports its noise-free loss,
    whatever its batch size or noise).

    Also returns that first loss, for :func:`_check_initial_loss`."""

    def probe(key):
        params, state = task.init(key)

        def loss_fn(p):
            return task.train_loss(p, state, jnp.int32(0), key)

        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        norms = [jnp.linalg.norm(g.ravel()) for g in jax.tree_util.tree_leaves(grads)]
        return params, loss, norms, task.metric(params, state, "val")

    params, loss, norms, val = jax.jit(probe)(jax.random.key(0))
    leaves = jax.tree_util.tree_leaves_with_path(params)
    shapes = [(jax.tree_util.keystr(k), x.shape, str(x.dtype)) for k, x in leaves]
    numbers = [f"{float(x):.5g}" for x in (loss, *norms, val)]
    text = repr((shapes, numbers))
    return hashlib.sha256(text.encode()).hexdigest()[:16], float(loss)


def _initial_loss(task: Task) -> float:
    """The task's first minibatch loss at initialisation, as the fingerprint
    measures it (key 0, step 0), without its gradient."""

    def probe(key):
        params, state = task.init(key)
        return task.train_loss(params, state, jnp.int32(0), key)[0]

    return float(jax.jit(probe)(jax.random.key(0)))


def _negative_loss(task: Task, where: str, value: float) -> ValueError:
    return ValueError(
        f"task {task.name!r} returned a training loss of {value:.5g} {where}: a "
        "non-positive value, which the sweep cannot record (runs are modelled "
        "by their log loss), so the task's loss must be positive. Make its "
        "train_loss return a positive loss (e.g. add a constant that bounds it "
        "below) and sweep again."
    )


def _check_initial_loss(task: Task, loss: float) -> None:
    """Refuses a task whose loss is negative from the start, before any run
    trains (the records would be refused only after the whole sweep)."""
    if loss < 0:  # NaN passes: a run that diverges at once is masked
        raise _negative_loss(task, "at initialisation (key 0, step 0)", loss)


def _check_chunk_losses(task: Task, runs, arrays: dict[str, np.ndarray]) -> None:
    """Refuses a chunk with a negative loss in a tick the records would keep
    (before divergence), before saving it and training the next chunk."""
    *_, mask, _ = finish_records(
        arrays["loss"], arrays["metric"], arrays["lr"], arrays["test"]
    )
    bad = np.argwhere(mask & (arrays["loss"] < 0))
    if len(bad):
        r, t = bad[0]
        where = f"at tick {t} of run {run_id(*runs[r])!r}"
        raise _negative_loss(task, where, float(arrays["loss"][r, t]))


# What a chunk holds. 2: the manifest fingerprints the task; 3: a tick whose
# last update made the parameters non-finite is masked (it was kept). The demo
# keys its caches by it: bump it only when the records change.
_FORMAT = 3
# How the manifest fingerprints the task. 2: it sees the task's gradient (1,
# unnamed, could not tell NQMs of other batch sizes or noise apart, so its
# checkpoints cannot be checked).
_FINGERPRINT = 2


def _config(
    task, fingerprint, shapes, lrs, seeds, epochs, ticks_per_epoch, chunk_size, wd
):
    return {
        "format": _FORMAT,
        "fingerprint": _FINGERPRINT,
        "task": task.name,
        "task_fingerprint": fingerprint,
        "steps_per_epoch": int(task.steps_per_epoch),
        "weight_decay": float(wd),
        "shapes": list(shapes),
        "lrs": list(lrs),
        "seeds": list(seeds),
        "epochs": int(epochs),
        "ticks_per_epoch": int(ticks_per_epoch),
        "chunk_size": int(chunk_size),
    }


def _open_checkpoint(directory: Path, config: dict[str, Any]) -> None:
    usable_directory(directory, "checkpoint directory")
    manifest = directory / _MANIFEST
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{manifest} is corrupt ({e}); delete {directory} to start over"
            ) from None
        before = old.get("config") if isinstance(old, dict) else None
        if before != config and isinstance(before, dict) and not _has_chunks(directory):
            # Killed before its first chunk was written (out of memory, say):
            # nothing to resume, so the directory starts this sweep, whatever
            # its chunking or grid.
            _write_manifest(manifest, config)
        elif before != config:
            before = before if isinstance(before, dict) else {}
            diff = sorted(
                k for k in {*before, *config} if before.get(k) != config.get(k)
            )
            if "format" in diff or "fingerprint" in diff:
                raise ValueError(
                    f"{directory} holds chunks written by another version of "
                    f"optax-lode (checkpoint format {before.get('format')!r} "
                    f"with task fingerprint {before.get('fingerprint', 1)!r}; "
                    f"now format {_FORMAT} with fingerprint {_FINGERPRINT}), "
                    "whose records or task fingerprint this version cannot "
                    "check; delete it or use another checkpoint directory"
                )
            if diff == ["chunk_size"]:
                # The same runs, cut otherwise: another device count rounds
                # chunk_size up to another multiple of the devices.
                raise ValueError(
                    f"{directory} holds chunks of this sweep of "
                    f"{before['chunk_size']} runs each; now {config['chunk_size']} "
                    "(chunk_size is rounded up to a multiple of the devices). To "
                    f"resume, pass chunk_size={before['chunk_size']} and devices= "
                    "a number of devices that divides it; or use another "
                    "checkpoint directory"
                )
            changes = "; ".join(
                f"{k}: {before.get(k)!r} then, {config.get(k)!r} now" for k in diff
            )
            raise ValueError(
                f"{directory} holds chunks of a different sweep ({changes}); use "
                "another checkpoint directory or delete this one"
            )
    else:
        _write_manifest(manifest, config)


def _write_manifest(manifest: Path, config: dict[str, Any]) -> None:
    atomic_write_bytes(
        manifest,
        json.dumps({"config": config, "optax_lode": __version__}, indent=2).encode(),
    )


def _has_chunks(directory: Path) -> bool:
    """Whether ``directory`` holds a chunk file (a hidden temporary of a
    killed write is none)."""
    return any(directory.glob("chunk-*.npz"))


def _chunk_path(directory: Path, index: int) -> Path:
    return directory / f"chunk-{index:05d}.npz"


def _load_chunk(path: Path, n: int, num_ticks: int, digest: str):
    """A finished chunk's arrays, or None if absent or unusable (rerun it)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("loss", "metric", "lr", "test", "digest")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # truncated or foreign file: recompute the chunk
    if str(arrays.pop("digest")) != digest or arrays["loss"].shape != (n, num_ticks):
        return None
    return arrays


def _save_chunk(path: Path, arrays: dict[str, np.ndarray], digest: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez renames a path
            np.savez(f, digest=np.asarray(digest), **arrays)

    atomic_write(path, write)


def _chunk_digest(runs: Sequence[tuple[str, float, int]]) -> str:
    return hashlib.sha256(repr(list(runs)).encode()).hexdigest()[:16]


# A LatentODE decides from a window of 2 <= mu < T ticks, so it needs T >= 3.
MIN_FIT_TICKS = 3


def run_sweep(
    task: Task,
    *,
    shapes: Sequence[str] = PAPER_SHAPES,
    lrs: Sequence[float] = PAPER_LRS,
    seeds: Sequence[int] | int = 5,
    epochs: int | None = None,
    ticks_per_epoch: int = 1,
    weight_decay: float | None = None,
    chunk_size: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
) -> Trajectories:
    """Runs a (schedule shape x peak learning rate x seed) sweep of ``task``.

    Every run trains with AdamW (``task.weight_decay`` unless overridden)
    whose learning rate follows ``make_schedule(shape, lr, total_steps)``,
    and logs one record per tick (docs/algorithm.md, "One clock"): the mean training
    loss over the tick's steps, the validation metric at the tick's end and
    the mean learning rate the optimizer used over the tick's steps (read
    from its state). The run with seed ``s`` uses ``jax.random.key(s)``,
    exactly as :func:`train_run` does.

    All runs of a chunk are one jitted program, ``vmap``-ed over runs; chunks
    reuse the compiled program. With several devices, each chunk's runs are
    sharded over them (``NamedSharding`` on a 1-D ``runs`` mesh), so N
    devices sweep about N times faster. With ``checkpoint_dir``, every
    finished chunk is written there; calling again with the same arguments
    skips the chunks already done (a killed sweep resumes).

    Args:
        task: the task (:func:`optax_lode.tasks.get_task`).
        shapes: schedule shapes, from :data:`SCHEDULE_SHAPES`. Default: the
            paper's four.
        lrs: peak (onecycle) or initial learning rates. Default: the paper's
            ``1e-3, 5e-3, 1e-2, 5e-2, 1e-1``.
        seeds: the seeds (whole numbers in ``[0, 2**32)``, as for
            ``train_run``), or their number ``n`` for ``range(n)``.
        epochs: run length; default ``task.default_epochs``.
        ticks_per_epoch: ticks per epoch.
        weight_decay: AdamW weight decay; default ``task.weight_decay``.
        chunk_size: runs per compiled program (bounds memory; a finished
            chunk is the unit of resuming); default 25 per device (on a
            2-core CPU, 25-run chunks ran a 100-run sweep faster than one
            100-run program). Rounded up to a multiple of the device count.
        checkpoint_dir: where finished chunks go, for resuming. A directory
            holding no chunk yet (a sweep killed during its first) is taken
            over by this sweep, whatever its manifest says.
        devices: devices to shard over; default ``jax.devices()``.
        progress: show a progress bar (tqdm), one update per chunk.

    Returns:
        :class:`optax_lode.Trajectories` with one run per grid point (order:
        shape, then lr, then seed; ids like ``"cosine-lr0.01-s3"``) and info
        columns ``task``, ``schedule``, ``peak_lr``, ``seed``,
        ``test_metric``. Diverged runs are masked from their first
        non-finite tick on and have a NaN test metric; a run that diverges in
        its very first tick has no record and is left out, with a
        :class:`DivergedSweepRunWarning`. A tick whose mean training loss
        was exactly 0 (float32 underflow) is recorded as
        :data:`ZERO_LOSS_FLOOR`, with a :class:`ZeroLossWarning`: the loss is
        modelled by its log. A negative loss is an error of the task,
        raised before any run trains when the task's first loss is
        negative, else after the chunk that recorded it.

    Raises:
        TypeError: ``task`` does not implement the
            :class:`~optax_lode.tasks.Task` protocol (checked first, by
            abstract evaluation: a missing member, or ``init``,
            ``train_loss`` or ``metric`` returning another structure or
            shape), ``shapes``, ``lrs`` or ``seeds`` given as a single string
            or number instead of a list (``seeds`` may be a count, an int),
            or a learning rate that is no real number (a bool, a string).
        ValueError: a ``task.steps_per_epoch`` that is no int >= 1, an
            unknown shape, an empty or repeating grid, a bad
            learning rate (not finite and > 0 in float32, in which the runs
            train), seed, ``epochs``, ``ticks_per_epoch``, ``weight_decay``,
            ``chunk_size`` or ``devices``, a
            ``checkpoint_dir`` of another sweep or not a directory, a task
            whose training loss is negative, or a sweep whose every run
            diverged in its first tick.

    Warns:
        DivergedSweepRunWarning: runs diverged, in their first tick (left
            out) or later (masked from then on), naming them.
        ZeroLossWarning: a tick's mean training loss was exactly 0, recorded
            as :data:`ZERO_LOSS_FLOOR`.

    Examples:
        >>> from optax_lode.sweep import run_sweep
        >>> from optax_lode.tasks import get_task
        >>> traj = run_sweep(get_task("digits-mlp"), shapes=["constant"],
        ...                  lrs=[1e-2], seeds=2, epochs=3)
        >>> traj.loss.shape
        (2, 3)
    """
    from optax_lode.runs import Trajectories

    check_task(task)
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ValueError(f"seeds={seeds} must be >= 1")
        seeds = range(int(seeds))
    shapes, lrs, seeds = _validate(shapes, lrs, seeds)
    epochs = task.default_epochs if epochs is None else epochs
    num_ticks, steps_per_tick = check_clock(task, epochs, ticks_per_epoch)
    if num_ticks < MIN_FIT_TICKS:
        warnings.warn(
            f"runs of {num_ticks} tick{'' if num_ticks == 1 else 's'} "
            f"(epochs={epochs} x ticks_per_epoch="
            f"{ticks_per_epoch}): a latent ODE needs runs of at least "
            f"{MIN_FIT_TICKS} ticks, and fit will refuse these; raise epochs or "
            "ticks_per_epoch",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    wd = float(task.weight_decay if weight_decay is None else weight_decay)
    _check_number("weight_decay", wd, positive=False)
    runs = sweep_grid(shapes, lrs, seeds)
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty: pass None for every device")
    ndev = len(devices)
    chunk = (
        min(len(runs), 25 * ndev)
        if chunk_size is None
        else whole("chunk_size", chunk_size)
    )
    if chunk < 1:
        raise ValueError(f"chunk_size={chunk_size} must be >= 1")
    chunk = -(-chunk // ndev) * ndev  # whole runs per device
    num_chunks = -(-len(runs) // chunk)

    # A negative loss is refused now, not after the sweep trained (from_arrays
    # refuses it); a checkpointed sweep reads it off the fingerprint's probe.
    directory = None
    if checkpoint_dir is not None:
        directory = Path(checkpoint_dir)
        fingerprint, loss0 = _task_fingerprint(task)
        _check_initial_loss(task, loss0)
        grid = (shapes, lrs, seeds, epochs, ticks_per_epoch, chunk, wd)
        _open_checkpoint(directory, _config(task, fingerprint, *grid))
    else:
        _check_initial_loss(task, _initial_loss(task))

    program = _run_program(task, shapes, num_ticks, steps_per_tick, wd)
    if ndev > 1:
        mesh = Mesh(np.asarray(devices), ("runs",))
        by_run = NamedSharding(mesh, PartitionSpec("runs"))
        compiled = jax.jit(program, in_shardings=by_run, out_shardings=by_run)
    else:
        by_run = None
        compiled = jax.jit(program)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), desc=f"sweep {task.name}", unit="run")

    shape_index = {s: i for i, s in enumerate(shapes)}
    results = []
    for c in range(num_chunks):
        part = runs[c * chunk : (c + 1) * chunk]
        digest = _chunk_digest(part)
        arrays = None
        if directory is not None:
            arrays = _load_chunk(
                _chunk_path(directory, c), len(part), num_ticks, digest
            )
        if arrays is None:
            # Pad the last chunk with copies of its last run, so every chunk
            # has the compiled shape; the copies are dropped.
            padded = part + [part[-1]] * (chunk - len(part))
            args = (
                np.asarray([shape_index[s] for s, _, _ in padded], np.int32),
                np.asarray([lr for _, lr, _ in padded], np.float32),
                np.asarray([seed for _, _, seed in padded], np.uint32),
            )
            if by_run is not None:
                args = tuple(jax.device_put(a, by_run) for a in args)
            out = jax.device_get(compiled(*args))
            arrays = {
                k: np.asarray(v)[: len(part)]
                for k, v in zip(("loss", "metric", "lr", "test"), out, strict=True)
            }
            # A loss that turns negative in training: said after one chunk.
            _check_chunk_losses(task, part, arrays)
            if directory is not None:
                _save_chunk(_chunk_path(directory, c), arrays, digest)
        results.append(arrays)
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()

    cat = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    loss, metric, lr, mask, test = finish_records(
        cat["loss"], cat["metric"], cat["lr"], cat["test"]
    )
    # Masked ticks are NaN (finish_records), so only recorded zeros are floored.
    loss = floor_zero_losses(loss, np.arange(len(loss))[:, None])
    # A run that diverged in its very first tick has no record at all; a
    # Trajectories run needs at least one valid tick, so it is left out.
    keep = mask[:, 0]
    if not keep.all():
        dropped = [run_id(*r) for r, k in zip(runs, keep, strict=True) if not k]
        warnings.warn(
            f"{len(dropped)} run(s) diverged in their first tick and are left "
            f"out of the sweep's Trajectories: {dropped}",
            DivergedSweepRunWarning,
            stacklevel=2,
        )
        if not keep.any():
            raise ValueError(
                "every run of the sweep diverged in its first tick; lower the "
                "learning rates"
            )
    kept = [r for r, k in zip(runs, keep, strict=True) if k]
    # Kept but masked at the end: diverged later (every sweep run has T ticks).
    late = [run_id(*r) for r, m in zip(runs, mask, strict=True) if m[0] and not m[-1]]
    if late:
        warnings.warn(
            f"{len(late)} run(s) diverged after their first tick and are masked "
            f"from their divergence on (test metric NaN): {late}",
            DivergedSweepRunWarning,
            stacklevel=2,
        )
    runs_out = Trajectories.from_arrays(
        loss[keep],
        metric[keep],
        lr[keep],
        mask=mask[keep],
        run_ids=tuple(run_id(*r) for r in kept),
        info={
            "task": [task.name] * len(kept),
            "schedule": [s for s, _, _ in kept],
            "peak_lr": [lr_ for _, lr_, _ in kept],
            "seed": [seed for _, _, seed in kept],
            "test_metric": list(test[keep]),
        },
        steps_per_tick=steps_per_tick,
    )
    _warn_if_metric_rises_with_loss(task, runs_out)
    return runs_out


# Fewer recorded ticks say too little: a 2-run, 2-tick test sweep of a
# higher-is-better toy metric comes out at +0.74.
_RISING_MIN_TICKS = 20


def _warn_if_metric_rises_with_loss(task: Task, runs: Trajectories) -> None:
    """The protocol's metric is higher-is-better; a task whose metric is a
    loss sweeps without error, and then every "best" (best_run, the fit's warm
    start, the test metrics) is the worst. Said here, before a fit, with the
    rule ``fit`` applies (:data:`optax_lode.model._fit.RISING_METRIC_RHO`)."""
    from optax_lode.model._fit import RISING_METRIC_RHO, metric_loss_rho

    ticks = int(runs.mask.sum())
    if ticks < _RISING_MIN_TICKS:
        return
    rho = metric_loss_rho(runs)
    if rho > RISING_METRIC_RHO:
        warnings.warn(
            f"task {task.name!r}: the sweep's validation metric rises with its "
            f"training loss (Spearman {rho:+.2f} over {ticks} "
            "ticks), as a lower-is-better metric (a validation loss, an error "
            "rate) does, but the Task protocol's metric is higher-is-better: "
            "the runs' best is now their worst. Negate it in the task's metric "
            "(and name it so, e.g. metric_name='neg_val_loss'), or negate the "
            "runs' before fitting (runs.with_negated_metric()); ignore this if "
            "yours is higher-is-better.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
