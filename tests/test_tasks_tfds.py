"""fashion_mnist-cnn and cifar100-resnet18 under ``tfds.testing.mock_data``."""

from __future__ import annotations

import jax
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from optax_lode.sweep import make_schedule, sweep_optimizer, train_run  # noqa: E402
from optax_lode.tasks import get_task  # noqa: E402
from optax_lode.tasks._tfds import tfds_arrays  # noqa: E402


@pytest.mark.parametrize(
    ("dataset", "shape", "classes"),
    [("fashion_mnist", (28, 28, 1), 10), ("cifar100", (32, 32, 3), 100)],
)
def test_tfds_arrays_read_example_by_example_under_mock(dataset, shape, classes):
    with tfds.testing.mock_data(num_examples=24):
        x, y = tfds_arrays(dataset, "train")
    assert x.shape == (24, *shape) and x.dtype == np.uint8
    assert y.shape == (24,) and y.dtype == np.int32
    assert 0 <= y.min() and y.max() < classes


def test_fashion_mnist_cnn_builds_under_mock_data():
    with tfds.testing.mock_data(num_examples=40):
        task = get_task("fashion_mnist-cnn", batch_size=8, val_fraction=0.25)
    assert task.steps_per_epoch == 30 // 8
    assert task.eval_sets["val"][0].shape == (10, 28, 28, 1)
    assert task.eval_sets["test"][0].shape == (40, 28, 28, 1)
    assert task.weight_decay == 1e-3  # paper A.2
    x, y = task.batch_fn(jax.random.key(0), np.int32(0))
    assert x.shape == (8, 28, 28, 1) and x.dtype == np.uint8 and y.shape == (8,)


@pytest.mark.slow
def test_fashion_mnist_cnn_trains_under_mock_data():
    with tfds.testing.mock_data(num_examples=40):
        task = get_task("fashion_mnist-cnn", batch_size=8, val_fraction=0.25)
    total = 2 * task.steps_per_epoch
    tx = sweep_optimizer(make_schedule("constant", 1e-3, total), weight_decay=1e-3)
    run = train_run(task, tx, seed=0, epochs=2)
    assert run.mask.all() and np.isfinite(run.loss).all()
    assert 0.0 <= run.test_metric <= 1.0


@pytest.mark.slow
def test_cifar100_resnet18_trains_under_mock_data():
    with tfds.testing.mock_data(num_examples=16):
        task = get_task("cifar100-resnet18", width=8, batch_size=4)
    _, state = task.init(jax.random.key(0))
    assert state  # batch statistics are model state, not parameters
    # Memorise 3 batches of random labels: the loss must fall.
    total = 8 * task.steps_per_epoch
    tx = sweep_optimizer(make_schedule("constant", 3e-3, total), weight_decay=0.0)
    run = train_run(task, tx, seed=0, epochs=8)
    assert run.mask.all() and run.loss[-1] < run.loss[0]
    assert 0.0 <= run.test_metric <= 1.0


def test_tfds_task_errors_are_clear():
    with tfds.testing.mock_data(num_examples=10):
        with pytest.raises(ValueError, match="fewer than batch_size"):
            get_task("fashion_mnist-cnn", batch_size=64)
        with pytest.raises(ValueError, match="val_fraction"):
            get_task("fashion_mnist-cnn", val_fraction=1.5)


def test_data_prepared_as_tfrecord_gets_a_clear_error(tmp_path):
    """`tfds build` writes TFRecord by default, which tfds.data_source cannot
    read: the error says how to prepare the data instead (a directory faked
    the way `tfds build fashion_mnist` lays it out)."""
    import json

    d = tmp_path / "fashion_mnist" / "3.0.1"
    d.mkdir(parents=True)
    template = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    splits = [
        {
            "name": s,
            "numBytes": "1",
            "shardLengths": [str(n)],
            "filepathTemplate": template,
        }
        for s, n in (("train", 60000), ("test", 10000))
    ]
    info = {
        "name": "fashion_mnist",
        "version": "3.0.1",
        "fileFormat": "tfrecord",
        "moduleName": "tensorflow_datasets.image_classification.mnist",
        "splits": splits,
    }
    (d / "dataset_info.json").write_text(json.dumps(info))
    for s in ("train", "test"):
        (d / f"fashion_mnist-{s}.tfrecord-00000-of-00001").write_bytes(b"")
    with pytest.raises(RuntimeError, match="--file_format=array_record") as err:
        get_task("fashion_mnist-cnn", data_dir=str(tmp_path))
    assert f"{d} holds fashion_mnist as tfrecord files" in str(err.value)


def test_missing_data_is_said_without_tfds_misleading_text(tmp_path):
    """With no data under data_dir, tfds.data_source says the dataset is
    "already prepared" there as TFRecord: that text was quoted beside ours.
    The message names what is missing where and how to prepare it; tfds' own
    error stays chained."""
    from optax_lode.tasks import DataNotPreparedError

    with pytest.raises(DataNotPreparedError) as err:
        get_task("fashion_mnist-cnn", data_dir=str(tmp_path))
    said = str(err.value)
    assert said.startswith(
        f"cannot read TFDS fashion_mnist/train: fashion_mnist is not prepared "
        f"under data_dir {str(tmp_path)!r}. "
    )
    assert (
        f"`tfds build fashion_mnist --data_dir={tmp_path} "
        "--file_format=array_record`" in said
    )
    assert "already prepared" not in said and "TFRECORD" not in said
    cause = err.value.__cause__
    assert cause is not None and not isinstance(cause, DataNotPreparedError)


def test_missing_data_is_never_downloaded(tmp_path, monkeypatch):
    """tfds.data_source downloads by default (offline, it retried for minutes
    and raised a ConnectionError): the task asks it not to, and says how to
    prepare the data."""
    from optax_lode.tasks import DataNotPreparedError

    real, seen = tfds.data_source, {}

    def data_source(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tfds, "data_source", data_source)
    with pytest.raises(DataNotPreparedError, match="tfds build fashion_mnist"):
        get_task("fashion_mnist-cnn", data_dir=str(tmp_path))
    assert seen["download"] is False


def test_data_missing_from_the_default_data_dir_is_not_prepared(
    tmp_path, monkeypatch, capsys
):
    """Without data_dir tfds looks in TFDS_DATA_DIR (default
    ~/tensorflow_datasets); finding no dataset there it raised a KeyError
    ("splits is empty"), a traceback from optax-lode demo. A dataset tfds does
    not know (DatasetNotFoundError) is not prepared either."""
    from optax_lode.cli import main
    from optax_lode.tasks import DataNotPreparedError

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(DataNotPreparedError, match="tfds build cifar100"):
        tfds_arrays("cifar100", "train")
    out = tmp_path / "demo"
    cmd = ["demo", "--fast", "--quiet", "--no-compile-cache", "--out", str(out)]
    assert main([*cmd, "--task", "cifar100-resnet18"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optax-lode demo: cannot read TFDS cifar100/train")
    assert "--task-arg data_dir=DIR" in err

    def unknown(name, **kwargs):
        raise tfds.core.DatasetNotFoundError(name)

    monkeypatch.setattr(tfds, "data_source", unknown)
    with pytest.raises(DataNotPreparedError, match="--task-arg data_dir=DIR"):
        tfds_arrays("fashion_mnist", "train", str(tmp_path))

    # Any other KeyError inside tfds is a bug to see, not data to prepare.
    def buggy(name, **kwargs):
        return {}["image"]

    monkeypatch.setattr(tfds, "data_source", buggy)
    with pytest.raises(KeyError, match="image") as err:
        tfds_arrays("fashion_mnist", "train", str(tmp_path))
    assert not isinstance(err.value, DataNotPreparedError)
