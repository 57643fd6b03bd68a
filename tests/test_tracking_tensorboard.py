"""TensorBoard import against real event files.

Written with TensorBoard's own writers: ``tensorboard.summary.Writer`` (the
numpy-only native writer; scalars as tensors, like TF2 and flax) and
``EventFileWriter`` with legacy ``simple_value`` protos (what tensorboardX and
``torch.utils.tensorboard`` write). Read back through ``from_tensorboard``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("tensorboard")

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from tensorboard.summary import Writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from optax_lode.tracking import (
    RunAlignmentError,
    find_tensorboard_runs,
    from_tensorboard,
    load_runs,
)

KEYS = {"loss": "train/loss", "metric": "eval/accuracy", "lr": "lr"}


def _write_native(logdir, series):
    """series: list of (step, {tag: value}) in logging order."""
    w = Writer(str(logdir))
    for step, values in series:
        for tag, v in values.items():
            w.add_scalar(tag, v, step)
    w.close()


def _write_legacy(logdir, series, hparams=None):
    w = EventFileWriter(str(logdir))
    if hparams is not None:  # what hp.hparams() / hparams_pb writes
        w.add_event(event_pb2.Event(step=0, summary=hparams_pb(hparams)))
    for step, values in series:
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag=t, simple_value=v)
                for t, v in values.items()
            ]
        )
        w.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))
    w.close()


def _series(n, *, metric_steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n):
        v = {
            "train/loss": 2.0 * np.exp(-s / 20) + 0.1 * rng.random(),
            "lr": 0.1 / (1 + s),
        }
        if s in metric_steps:
            v["eval/accuracy"] = s / 100
        out.append((s, v))
    return out


def _expected(series, k, ticks):
    loss = [[] for _ in range(ticks)]
    lr = [[] for _ in range(ticks)]
    metric = [np.nan] * ticks
    first_metric = None
    for s, v in series:
        t = s // k
        loss[t].append(np.float32(v["train/loss"]))
        lr[t].append(np.float32(v["lr"]))
        if "eval/accuracy" in v:
            metric[t] = np.float32(v["eval/accuracy"])
            first_metric = first_metric if first_metric is not None else metric[t]
    metric = np.array(metric, np.float64)
    last = first_metric
    for t in range(ticks):
        last = metric[t] if not np.isnan(metric[t]) else last
        metric[t] = last
    # The rate each step used: the last record at or before it (the first one
    # before the first), averaged over the tick's steps up to the run's end.
    steps = [s for s, _ in series]
    rates = [np.float64(np.float32(v["lr"])) for _, v in series]
    end = steps[-1] + 1
    held = [
        rates[max(np.searchsorted(steps, u, side="right") - 1, 0)] for u in range(end)
    ]
    return (
        np.array([np.mean(np.float64(x)) for x in loss]),
        metric,
        np.array([np.mean(held[t * k : min((t + 1) * k, end)]) for t in range(ticks)]),
    )


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    runs = {
        "native/rün-α": _series(40, metric_steps={9, 19, 33, 39}, seed=0),
        "legacy/学习率": _series(40, metric_steps={4, 27}, seed=1),
        # Irregular steps: loss at a random subset (every tick still has one).
        "irregular": [
            (s, v)
            for s, v in _series(40, metric_steps={9, 29}, seed=2)
            if s % 4 == 0 or s % 7 == 3 or "eval/accuracy" in v
        ],
        "early": _series(14, metric_steps={5, 13}, seed=3),
    }
    _write_native(root / "native" / "rün-α", runs["native/rün-α"])
    _write_legacy(
        root / "legacy" / "学习率",
        runs["legacy/学习率"],
        hparams={"schedule": "cosine", "seed": 3, "peak_lr": 0.1, "nesterov": True},
    )
    _write_native(root / "irregular", runs["irregular"])
    _write_legacy(root / "early", runs["early"])
    return root, runs


def test_both_scalar_encodings_read_and_aligned(logdir):
    root, runs = logdir
    traj = from_tensorboard(root, **KEYS, tick=4)
    assert set(traj.run_ids) == set(runs)
    assert traj.num_ticks == 10
    assert traj.steps_per_tick == 4  # TensorBoard steps taken as optimizer steps
    for name in ("native/rün-α", "legacy/学习率", "irregular"):
        i = traj.run_ids.index(name)
        loss, metric, lr = _expected(runs[name], 4, 10)
        np.testing.assert_allclose(traj.loss[i], loss, rtol=1e-6)
        np.testing.assert_allclose(traj.metric[i], metric, rtol=1e-6)
        np.testing.assert_allclose(traj.lr[i], lr, rtol=1e-6)
        assert traj.mask[i].all()
    row = traj.info.loc["legacy/学习率"]
    assert row["logdir"] == str(root / "legacy" / "学习率")
    # Hyperparameters from TensorBoard's hparams plugin, typed back.
    assert (row["schedule"], row["seed"], row["peak_lr"]) == ("cosine", 3, 0.1)
    assert bool(row["nesterov"]) is True
    assert traj.info["schedule"].isna().sum() == 3


def test_early_stopped_run_masked(logdir):
    root, _ = logdir
    traj = from_tensorboard(root, **KEYS, tick=4)
    i = traj.run_ids.index("early")
    assert traj.lengths[i] == 4 and not traj.mask[i, 4:].any()
    with pytest.warns(UserWarning, match="'early' \\(ends at tick 3\\)"):
        kept = from_tensorboard(root, **KEYS, tick=4, early_stopped="exclude")
    assert "early" not in kept.run_ids


def test_load_runs_tensorboard_scheme(logdir):
    root, runs = logdir
    traj = load_runs(f"tensorboard://{root}", **KEYS, tick=4, num_ticks=None)
    assert traj.num_runs == len(runs)


def test_missing_tag_names_run_and_its_tags(tmp_path):
    _write_native(tmp_path / "ok", _series(10, metric_steps={4, 9}))
    _write_native(
        tmp_path / "other-names",
        [(s, {"loss": 1.0, "acc": 0.5, "lr": 0.1}) for s in range(10)],
    )
    with pytest.raises(
        RunAlignmentError, match=r"run 'other-names': no 'train/loss', 'eval/accuracy'"
    ) as err:
        from_tensorboard(tmp_path, **KEYS)
    assert "['acc', 'loss', 'lr']" in str(err.value)


def test_restarted_writer_is_non_monotone(tmp_path):
    _write_native(tmp_path / "r", _series(20, metric_steps={9, 19}))
    time.sleep(1.1)  # event file names carry the second they were created
    _write_native(tmp_path / "r", _series(20, metric_steps={9, 19})[10:])
    with pytest.raises(
        RunAlignmentError, match=r"non-monotone steps.*step 19 to step 10"
    ):
        from_tensorboard(tmp_path, **KEYS)


def test_truncated_event_file_warns(tmp_path):
    _write_legacy(tmp_path / "t", _series(20, metric_steps={9, 19}))
    (path,) = find_tensorboard_runs(tmp_path)["t"]
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 7)
    with pytest.warns(UserWarning, match="ends in a partial record"):
        traj = from_tensorboard(tmp_path, **KEYS)
    assert traj.lengths.tolist() == [19]


def _record_offsets(path):
    """Where each TFRecord of an event file starts."""
    data, offsets, at = open(path, "rb").read(), [], 0
    while at < len(data):
        offsets.append(at)
        at += 16 + int.from_bytes(data[at : at + 8], "little")
    return offsets


@pytest.mark.parametrize("where", ["data", "length"])
def test_a_corrupt_event_file_makes_its_run_invalid(tmp_path, where):
    """A bad byte mid-file stops TensorBoard's loader there: the run was read
    up to it and imported as stopped early, with only a warning. A flipped
    length that points past the end is corrupt too (its CRC fails), not a
    partial last record."""
    for name in ("a", "b"):
        _write_legacy(tmp_path / name, _series(20, metric_steps={9, 19}))
    (path,) = find_tensorboard_runs(tmp_path)["b"]
    at = _record_offsets(path)[len(_record_offsets(path)) // 2]
    at += 20 if where == "data" else 7  # a data byte, or the length's top byte
    data = bytearray(open(path, "rb").read())
    data[at] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(RunAlignmentError, match=r"run 'b': its event file .* corrupt"):
        from_tensorboard(tmp_path, **KEYS)
    with pytest.warns(UserWarning, match="These runs are skipped"):
        traj = from_tensorboard(tmp_path, **KEYS, on_invalid="skip")
    assert traj.run_ids == ("a",) and traj.lengths.tolist() == [20]


def test_zero_padding_after_the_last_record_is_a_file_cut_short(tmp_path):
    """A crash can leave zeros past the last write (the size set, the data
    never written): every record was read, so it is the 'cut short' warning,
    not a corrupt file."""
    for name in ("a", "b"):
        _write_legacy(tmp_path / name, _series(20, metric_steps={9, 19}))
    (path,) = find_tensorboard_runs(tmp_path)["b"]
    with open(path, "ab") as f:
        f.write(bytes(4096))
    with pytest.warns(UserWarning, match="cut short|truncated|partial"):
        traj = from_tensorboard(tmp_path, **KEYS)
    assert traj.run_ids == ("a", "b") and traj.lengths.tolist() == [20, 20]


def test_missing_directory_and_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_tensorboard(tmp_path / "nope", **KEYS)
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        from_tensorboard(tmp_path, **KEYS)


@pytest.mark.slow
def test_import_100_runs_x_600_ticks(tmp_path):
    for r in range(100):
        n = 600 if r % 10 else 300
        _write_native(
            tmp_path / f"run-{r:03d}", _series(n, metric_steps=set(range(9, n, 10)))
        )
    start = time.perf_counter()
    traj = from_tensorboard(tmp_path, **KEYS)
    elapsed = time.perf_counter() - start
    print(f"\nfrom_tensorboard: 100 runs x 600 ticks imported in {elapsed:.2f} s")
    assert (traj.num_runs, traj.num_ticks) == (100, 600)
    assert int(traj.mask.sum()) == 90 * 600 + 10 * 300
    assert elapsed < 60


def test_run_depth_reads_keras_and_pytorch_layouts(tmp_path):
    """Keras' TensorBoard callback logs a run as train/ and validation/
    sub-directories with the same tag names; PyTorch's add_hparams writes the
    hyperparameters into a timestamped sub-directory. With run_depth=1 each
    run is one directory and a sub-directory's tags are prefixed by it."""
    logs = tmp_path / "logs"
    for r, name in enumerate(("run-a", "run-b")):
        epochs = range(6)
        _write_native(
            logs / name / "train",
            [
                (e, {"epoch_loss": 1.0 / (1 + e + r), "epoch_learning_rate": 0.1})
                for e in epochs
            ],
        )
        _write_native(
            logs / name / "validation",
            [(e, {"epoch_loss": 2.0, "epoch_accuracy": 0.1 * e + r}) for e in epochs],
        )
        # add_hparams: a sub-directory holding the hyperparameters.
        _write_legacy(logs / name / "1733300000.1", [], hparams={"seed": r})
    # Without run_depth every directory is a run, none with all three tags.
    keras = dict(
        loss="train/epoch_loss",
        metric="validation/epoch_accuracy",
        lr="train/epoch_learning_rate",
        tick=1,
    )
    with pytest.raises(RunAlignmentError, match="run-a/train"):
        from_tensorboard(logs, **keras)
    runs = from_tensorboard(logs, run_depth=1, **keras)
    assert runs.run_ids == ("run-a", "run-b")
    np.testing.assert_allclose(runs.loss[1], 1.0 / (2 + np.arange(6)), rtol=1e-6)
    np.testing.assert_allclose(runs.metric[1], 1 + 0.1 * np.arange(6), rtol=1e-6)
    np.testing.assert_allclose(runs.lr, 0.1, rtol=1e-6)
    assert runs.info["seed"].tolist() == [0, 1]  # from the hparams sub-directory
    assert runs.info["logdir"].tolist() == [str(logs / "run-a"), str(logs / "run-b")]
    # The validation loss is another tag than the training loss.
    other = from_tensorboard(
        logs, run_depth=1, **{**keras, "loss": "validation/epoch_loss"}
    )
    np.testing.assert_allclose(other.loss, 2.0)
    # A stray event file above the runs is skipped, and said.
    _write_native(logs, [(0, {"x": 1.0})])
    with pytest.warns(UserWarning, match="above run_depth=1"):
        assert from_tensorboard(logs, run_depth=1, **keras).num_runs == 2
    with pytest.raises(ValueError, match="run_depth must be"):
        find_tensorboard_runs(logs, run_depth=0)


def test_symlinked_run_directories_are_followed_once(tmp_path):
    """TensorBoard follows links to run directories (a sweep gathered from
    several places); os.walk does not by default, so they were left out."""
    logs = tmp_path / "logs"
    _write_native(logs / "a", _series(10, metric_steps={9}))
    _write_native(tmp_path / "elsewhere" / "b", _series(10, metric_steps={9}))
    try:
        (logs / "b").symlink_to(tmp_path / "elsewhere" / "b", target_is_directory=True)
        (logs / "a" / "up").symlink_to(logs, target_is_directory=True)  # a cycle
    except OSError:
        pytest.skip("symbolic links are not available")
    runs = find_tensorboard_runs(logs)
    assert sorted(runs) == ["a", "b"] and all(len(f) == 1 for f in runs.values())
    assert from_tensorboard(logs, **KEYS).run_ids == ("a", "b")
