"""TensorBoard import (``from_tensorboard``): scalar event files, one run a directory.

Reads the event files that ``tensorboard.summary.Writer``, TF2's
``tf.summary.scalar``, ``tensorboardX``, ``torch.utils.tensorboard`` and flax's
``SummaryWriter`` write. Both encodings of a scalar are understood: the legacy
``simple_value`` (tensorboardX, PyTorch, TF1) and the scalar tensor (TF2, the
native writer), read with TensorBoard's own record loader, which checks each
record's CRC and stops quietly at the first bad one. A file that ends in a
partial record (still being written) is read up to it, with a warning; a
corrupt record makes its run invalid (``on_invalid``): the records after it
are lost, and the run would pass for one that stopped early.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from optax_lode.tracking._align import align_to_ticks, to_trajectories
from optax_lode.tracking._deps import require

if TYPE_CHECKING:
    from optax_lode.runs import Trajectories

__all__ = ["find_tensorboard_runs", "from_tensorboard", "read_tensorboard_records"]


def _is_event_file(name: str) -> bool:
    # TensorBoard's own rule (io_wrapper.IsSummaryEventsFile); profiler
    # placeholders hold no summaries.
    return "tfevents" in name and not name.endswith(".profile-empty")


def find_tensorboard_runs(
    logdir: str | os.PathLike, *, run_depth: int | None = None
) -> dict[str, list[str]]:
    """Maps run name -> its event files (in walk order: a directory's own files
    by name, i.e. creation order, then its sub-directories').

    By default a run is a directory holding event files, named by its path
    relative to ``logdir`` (``"."`` becomes the directory's own name), as
    TensorBoard does; symbolic links to directories are followed (a directory
    reached twice counts once, at its first path in walk order). With
    ``run_depth=k`` a run is a directory ``k`` levels below ``logdir`` and
    holds every event file under it (Keras' ``train/`` and ``validation/``,
    PyTorch's ``add_hparams`` sub-directory); event files above that depth
    belong to no run and are skipped with a warning.

    Args:
        logdir: the root log directory.
        run_depth: ``None`` (default): every directory holding event files is
            a run. ``k`` (an int >= 1): the directories ``k`` levels below
            ``logdir`` are the runs, each with every event file under it.

    Returns:
        ``{run name: [event file paths]}``, runs in walk order (directories
        sorted by name).

    Raises:
        FileNotFoundError: if ``logdir`` does not exist or holds no event file.
        ValueError: if ``run_depth`` is not an int >= 1.

    Warns:
        UserWarning: event files above ``run_depth``, which belong to no run.

    Examples:
        >>> import pathlib, tempfile
        >>> from optax_lode.tracking import find_tensorboard_runs
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for run in ("lr-0.1", "lr-0.01"):
        ...     (root / run).mkdir()
        ...     (root / run / "events.out.tfevents.1").touch()
        >>> runs = find_tensorboard_runs(root)
        >>> list(runs), [len(files) for files in runs.values()]
        (['lr-0.01', 'lr-0.1'], [1, 1])
    """
    if run_depth is not None and (
        isinstance(run_depth, bool) or not isinstance(run_depth, int) or run_depth < 1
    ):
        raise ValueError(f"run_depth must be an int >= 1 or None, got {run_depth!r}.")
    root = os.fspath(logdir)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"TensorBoard log directory {root!r} does not exist (or is not a "
            "directory); pass the directory that holds one sub-directory per run."
        )
    runs: dict[str, list[str]] = {}
    above = []
    # Symlinked run directories are followed, as TensorBoard does; a directory
    # reached twice (a link back up, or two links to one run) is read once.
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        files = sorted(f for f in filenames if _is_event_file(f))
        if not files:
            continue
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        if run_depth is None:
            name = os.path.basename(os.path.abspath(root)) if rel == "." else rel
        else:
            parts = [] if rel == "." else rel.split("/")
            if len(parts) < run_depth:
                above.append(rel)
                continue
            name = "/".join(parts[:run_depth])
        runs.setdefault(name, []).extend(os.path.join(dirpath, f) for f in files)
    if above:
        warnings.warn(
            f"event files in {above[:3]} are above run_depth={run_depth} under "
            f"{root!r} and belong to no run: skipped.",
            UserWarning,
            stacklevel=2,
        )
    if not runs:
        raise FileNotFoundError(
            f"no TensorBoard event files (events.out.tfevents.*) under {root!r}"
            + (f" at depth {run_depth} or deeper" if run_depth else "")
            + "; pass the directory your summary writers logged to."
        )
    return runs


def _scalar(value, tensor_util) -> float | None:
    """The float in a summary value, or None if it is not a scalar."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor"):
        return None
    tensor = value.tensor
    # Fast paths for the encodings scalar writers use; make_ndarray otherwise.
    if tensor.float_val and len(tensor.float_val) == 1:
        return float(tensor.float_val[0])
    if tensor.double_val and len(tensor.double_val) == 1:
        return float(tensor.double_val[0])
    array = tensor_util.make_ndarray(tensor)
    if array.size != 1 or array.dtype.kind not in "biuf":
        return None
    return float(array.reshape(()))


def _cut_short(path: str, offset: int, size: int) -> bool:
    """Whether the unread end of an event file, from ``offset``, is one
    record cut short (a file still being written, a writer killed mid-record)
    rather than a record that fails its checksum: corruption, after which
    any number of records are lost."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(12)
        if len(head) >= 12 and not head.strip(b"\0"):
            # Zeros to the end: the padding a crash leaves after the last
            # write (the file's size was set, its data never written).
            rest = head + f.read()
            if not rest.strip(b"\0"):
                return True
    if len(head) < 12:
        return True
    # TFRecord framing: length (8) + its CRC (4) + data + data CRC (4). A
    # length whose CRC fails is corrupt, not cut short.
    (length,) = struct.unpack("<Q", head[:8])
    (crc,) = struct.unpack("<I", head[8:])
    try:  # the CRC TensorBoard's own reader checks (not public API)
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (
            masked_crc32c,
        )
    except ImportError:  # then a length past the end is taken as cut short
        return offset + 12 + length + 4 > size
    return masked_crc32c(head[:8]) == crc and offset + 12 + length + 4 > size


# Where TensorBoard's hparams plugin writes a trial's hyperparameters.
_HPARAMS_TAG = "_hparams_/session_start_info"


def _hparams(value, plugin_data_pb2) -> dict:
    """The hyperparameters in an hparams-plugin summary value ({} if none)."""
    if value.metadata.plugin_data.plugin_name != "hparams":
        return {}
    data = plugin_data_pb2.HParamsPluginData.FromString(
        value.metadata.plugin_data.content
    )
    if not data.HasField("session_start_info"):
        return {}
    out = {}
    for name, v in data.session_start_info.hparams.items():
        kind = v.WhichOneof("kind")
        if kind in ("number_value", "string_value", "bool_value"):
            out[name] = getattr(v, kind)
    return out


def read_tensorboard_records(
    logdir: str | os.PathLike, *, keys: Sequence[str], run_depth: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reads the scalar series ``keys`` of every run under ``logdir``.

    Args:
        logdir: the root log directory (one sub-directory per run).
        keys: the scalar tags to read; with ``run_depth``, a tag logged in a
            sub-directory of its run is ``"<sub-directory>/<tag>"``.
        run_depth: see :func:`find_tensorboard_runs`.

    Returns:
        ``(records, info)``. Records have columns ``run, key, step, value,
        order``, ``order`` being the position of the value in its run's event
        files (logging order); a run missing a key also has one NaN row per other
        tag it logged, so the error can say what is there instead. ``info`` has
        one row per run, indexed by run name: ``logdir`` (the run's directory)
        and the hyperparameters it logged with TensorBoard's hparams plugin
        (``hparams_pb`` / ``hp.hparams``), if any. ``records.attrs["invalid"]``
        maps each run with a corrupt event file to why (for ``align_to_ticks``'s
        ``invalid``); a file that ends in a partial record is read up to it,
        with a warning.

    Raises:
        ImportError: if tensorboard is not installed.
        FileNotFoundError: if ``logdir`` does not exist or holds no event file.
        ValueError: if ``run_depth`` is not an int >= 1.

    Examples:
        >>> records, info = read_tensorboard_records(  # doctest: +SKIP
        ...     "logs/sweep", keys=("train_loss", "val_accuracy", "lr"))
        >>> records.columns.tolist()  # doctest: +SKIP
        ['run', 'key', 'step', 'value', 'order']
    """
    require("tensorboard", package="tensorboard", what="from_tensorboard")
    # The raw loader skips TensorBoard's per-event compatibility rewrites (a third
    # of the read time); _scalar reads both scalar encodings itself.
    from tensorboard.backend.event_processing.event_file_loader import (
        RawEventFileLoader,
    )
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    wanted = set(keys)
    run_col, key_col, step_col, value_col, order_col = [], [], [], [], []
    info_rows, invalid = {}, {}
    root = os.path.abspath(os.fspath(logdir))
    for run, files in find_tensorboard_runs(logdir, run_depth=run_depth).items():
        run_dir = (
            os.path.dirname(os.path.abspath(files[0]))
            if run_depth is None
            else os.path.join(root, *run.split("/"))
        )
        info_rows[run] = {"logdir": run_dir}
        position = 0
        found, other_tags = set(), set()
        for path in files:
            sub = os.path.relpath(os.path.dirname(os.path.abspath(path)), run_dir)
            prefix = "" if sub == "." else sub.replace(os.sep, "/") + "/"
            consumed = 0
            for raw in RawEventFileLoader(path).Load():
                # TFRecord framing: length (8) + its CRC (4) + data + data CRC (4).
                consumed += len(raw) + 16
                event = event_pb2.Event.FromString(raw)
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    if value.tag == _HPARAMS_TAG:
                        info_rows[run].update(_hparams(value, plugin_data_pb2))
                        continue
                    tag = prefix + value.tag
                    if tag not in wanted:
                        other_tags.add(tag)
                        continue
                    scalar = _scalar(value, tensor_util)
                    if scalar is None:
                        continue
                    found.add(tag)
                    run_col.append(run)
                    key_col.append(tag)
                    step_col.append(event.step)
                    value_col.append(scalar)
                    order_col.append(position)
                    position += 1
            size = os.path.getsize(path)
            # TensorBoard's loader stops quietly at a bad record; here that
            # would pass for an early-stopped run.
            if consumed < size and _cut_short(path, consumed, size):
                # A partial last record (a file still being written): only it
                # is lost.
                warnings.warn(
                    f"TensorBoard event file {path!r} of run {run!r} ends in a "
                    f"partial record after byte {consumed} of {size} (still being "
                    "written, or its writer was killed): the run is read up to it.",
                    UserWarning,
                    stacklevel=2,
                )
            elif consumed < size:
                invalid.setdefault(
                    run,
                    f"its event file {path!r} is corrupt after byte {consumed} of "
                    f"{size} (a record fails its checksum), so the records after "
                    "it are unread and the run would look stopped early there; "
                    "repair or remove the file",
                )
        if not wanted <= found:
            # A wanted tag is missing: one row per other tag, so the alignment's
            # missing-key error can say what the run did log.
            for tag in sorted(other_tags) or [""]:
                run_col.append(run)
                key_col.append(tag)
                step_col.append(0)
                value_col.append(np.nan)
                order_col.append(0)
    info = pd.DataFrame.from_dict(info_rows, orient="index")
    for col in info.columns:
        values = info[col]
        # The hparams plugin stores every number as a double: give integers back.
        numeric = pd.to_numeric(values, errors="coerce")
        present = values.notna()
        if (
            col != "logdir"
            and numeric[present].notna().all()
            and not values[present].map(lambda v: isinstance(v, bool)).any()
            and (numeric[present] == np.round(numeric[present])).all()
        ):
            info[col] = numeric.astype("Int64" if not present.all() else np.int64)
    records = pd.DataFrame(
        {
            "run": run_col,
            "key": key_col,
            "step": np.asarray(step_col, np.int64),
            "value": np.asarray(value_col, np.float64),
            "order": np.asarray(order_col, np.int64),
        }
    )
    records.attrs["invalid"] = invalid
    return records, info


def from_tensorboard(
    logdir: str | os.PathLike,
    *,
    loss: str = "train_loss",
    metric: str = "val_accuracy",
    lr: str = "lr",
    tick: int | None = None,
    first_step: int | None = None,
    num_ticks: int | None = None,
    min_ticks: int = 2,
    early_stopped: Literal["mask", "exclude"] = "mask",
    on_invalid: Literal["raise", "skip"] = "raise",
    run_depth: int | None = None,
) -> Trajectories:
    """Reads TensorBoard scalar logs, one sub-directory per run, onto one tick grid.

    The three series are aligned by :func:`~optax_lode.tracking.align_to_ticks`:
    the loss and learning rate averaged over each tick's steps, the metric carried
    forward from its last logged value; runs that stopped early are masked after
    their last tick (``early_stopped="exclude"`` drops them with a warning).

    Args:
        logdir: the root log directory; each directory under it holding event
            files is a run, named by its relative path.
        loss: scalar tag of the training loss.
        metric: scalar tag of the validation metric (higher is better).
        lr: scalar tag of the learning rate.
        tick: steps per tick; ``None`` means one tick per loss record when
            every run logs alike (the loss spacing most runs share; runs that
            differ are named in a warning: ``align_to_ticks``).
        first_step: the step that opens tick 0; default the first loss step.
        num_ticks: length of the tick grid; default the longest valid run's.
        min_ticks: fewest ticks with a loss record a run may have.
        early_stopped: ``"mask"`` (default) or ``"exclude"`` runs that end early.
        on_invalid: ``"raise"`` (default) or ``"skip"`` (with a warning) runs
            that cannot be aligned.
        run_depth: ``None`` (default): every directory holding event files is
            a run. ``k``: the directories ``k`` levels below ``logdir`` are the
            runs, each with every event file under it, and a tag logged in a
            sub-directory of a run is named ``"<sub-directory>/<tag>"``. For
            Keras' ``logs/<run>/train`` and ``logs/<run>/validation``:
            ``run_depth=1, loss="train/epoch_loss",
            metric="validation/epoch_accuracy", lr="train/epoch_learning_rate"``.
            PyTorch's ``add_hparams`` sub-directory then joins its run, with
            its hyperparameters.

    Returns:
        The runs, ``run_ids`` being the run directories relative to ``logdir``.
        Their ``steps_per_tick`` is the tick in TensorBoard steps, taken as
        optimizer steps (the usual ``global_step``; where the step counts
        epochs or samples, correct it with ``traj.with_steps_per_tick(k)``).
        ``info`` has a ``logdir`` column with each run's absolute directory and
        the hyperparameters logged with TensorBoard's hparams plugin (e.g.
        ``schedule``, ``seed``), if any.

    Raises:
        ImportError: if tensorboard is not installed (install
            the tracking extra).
        FileNotFoundError: if ``logdir`` does not exist or holds no event
            file.
        RunAlignmentError: naming every run with a missing tag, too few points,
            non-monotone steps (e.g. a restarted writer that logged old steps
            again) or a corrupt event file.
        ValueError: a malformed argument (``run_depth``, ``tick``,
            ``num_ticks``, ``min_ticks``, ``early_stopped``, ``on_invalid``;
            ``loss``, ``metric`` and ``lr`` not three different tags), or no
            run left (all skipped as invalid, or all excluded as stopped
            early).

    Examples:
        >>> from optax_lode.tracking import from_tensorboard
        >>> traj = from_tensorboard(  # doctest: +SKIP
        ...     "logs/sweep", loss="train/loss", metric="eval/accuracy", lr="lr")
    """

    records, info = read_tensorboard_records(
        logdir, keys=(loss, metric, lr), run_depth=run_depth
    )
    table = align_to_ticks(
        records,
        loss=loss,
        metric=metric,
        lr=lr,
        steps_per_tick=tick,
        first_step=first_step,
        num_ticks=num_ticks,
        min_ticks=min_ticks,
        early_stopped=early_stopped,
        on_invalid=on_invalid,
        invalid=records.attrs.get("invalid"),
    )
    return to_trajectories(table, info, num_ticks)
