"""Image tasks read with ``tfds.data_source`` (no TensorFlow needed).

``fashion_mnist-cnn`` (the paper's CNN) and ``cifar100-resnet18`` are for users
who have the data prepared (``tfds build``, or an existing ``data_dir``) and
preferably a GPU. The whole split is read once, example by example (random
access; batched reads are not supported by every data source, notably not by
``tfds.testing.mock_data``), and kept on device as ``uint8``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from optax_lode.tasks._models import PaperCNN, ResNet18
from optax_lode.tasks._nnx_task import (
    NNXTask,
    check_task_args,
    epoch_batch_fn,
    fixed_split,
)
from optax_lode.tasks._protocol import DataNotPreparedError

# The formats tfds.data_source reads (random access); tfds build writes TFRecord.
_READABLE = ("array_record", "parquet")


def _not_prepared(tfds, name: str, split: str, data_dir: str | None, err) -> str:
    """Why ``name/split`` cannot be read, judged from what is on disk (tfds
    raises the same errors for data missing and data in the wrong format),
    and how to prepare it."""
    root = Path(tfds.core.constants.DATA_DIR if data_dir is None else data_dir)
    where = f"data_dir {str(root)!r}" + (
        " (tfds' default; TFDS_DATA_DIR sets it)" if data_dir is None else ""
    )
    build = (
        "Prepare it once as ArrayRecord (downloads it; needs TensorFlow): "
        f"`tfds build {name} --data_dir={shlex.quote(str(root))} "
        "--file_format=array_record`, and pass that directory: "
        "get_task(..., data_dir=DIR), or --task-arg data_dir=DIR for optax-lode "
        "sweep and optax-lode demo"
    )
    formats = {}  # version directory -> the format it was prepared in
    for info in sorted(root.glob(f"{name}/*/dataset_info.json")):
        try:
            # TFRecord, tfds' default, is left out of older headers.
            fmt = json.loads(info.read_text()).get("fileFormat", "tfrecord")
        except (OSError, ValueError):
            fmt = None
        formats[info.parent] = fmt
    if not formats:
        return (
            f"cannot read TFDS {name}/{split}: {name} is not prepared under "
            f"{where}. {build}"
        )
    unreadable = {d: f for d, f in formats.items() if f not in _READABLE}
    if unreadable:
        d, fmt = next(iter(unreadable.items()))
        held = f"as {fmt} files" if fmt else "with an unreadable dataset_info.json"
        return (
            f"cannot read TFDS {name}/{split}: {d} holds {name} {held}, which "
            "tfds.data_source (the reader the task uses) cannot read. "
            f"{build} (delete {d} first, or use another data_dir)"
        )
    # Prepared in a readable format, yet unreadable: tfds' reason is the news.
    return (
        f"cannot read TFDS {name}/{split} from {where} "
        f"({type(err).__name__}: {err}). {build}"
    )


def tfds_arrays(
    name: str, split: str, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, h, w, c], labels int32 [n])`` of a TFDS split.

    Not cached: a task holds its arrays, and a cache keyed by name would also
    keep data read under ``tfds.testing.mock_data``.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            f"task data {name!r} needs tensorflow-datasets: "
            "install the datasets extra (in a clone of optax-lode: "
            "pip install -e '.[datasets]')"
        ) from e
    try:
        # Never a download at run time: missing data is the user's to prepare
        # (tfds would otherwise fetch it, or retry for minutes offline).
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except (
        ImportError,
        NotImplementedError,
        KeyError,
        FileNotFoundError,
        tfds.core.DatasetNotFoundError,
    ) as e:
        # Not prepared: tfds tries to download and build it (which needs more
        # than tfds: an ImportError, which get_task would blame on the
        # extras), finds no split in the default data_dir (a KeyError,
        # "splits is empty"), no files or no dataset; or prepared as TFRecord
        # (tfds' default, which data_source cannot read). Any other KeyError
        # is a bug, not missing data: it is raised as it is.
        if isinstance(e, KeyError) and "splits" not in str(e):
            raise
        # tfds' own text misleads here (an empty data_dir is "already
        # prepared ... in TFRecord"): the message is ours alone, tfds' error
        # stays chained for debugging.
        raise DataNotPreparedError(_not_prepared(tfds, name, split, data_dir, e)) from e
    n = len(source)
    if n == 0:
        raise ValueError(f"TFDS split {name}/{split} is empty")
    images, labels = [], []
    for i in range(n):
        example = source[i]
        images.append(np.asarray(example["image"], dtype=np.uint8))
        labels.append(int(example["label"]))
    return np.stack(images), np.asarray(labels, dtype=np.int32)


def _image_task(
    name: str,
    dataset: str,
    model_fn,
    *,
    classes: int,
    val_fraction: float,
    batch_size: int,
    default_epochs: int,
    weight_decay: float,
    data_dir: str | None,
) -> NNXTask:
    check_task_args(
        name,
        ints={"batch_size": batch_size, "default_epochs": default_epochs},
        weight_decay=weight_decay,
    )
    x, y = tfds_arrays(dataset, "train", data_dir)
    x_test, y_test = tfds_arrays(dataset, "test", data_dir)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be in (0, 1)")
    n_val = max(1, round(val_fraction * len(y)))
    tr, va, _ = fixed_split(len(y), (len(y) - n_val, n_val, 0), seed=0)
    if len(tr) < batch_size:
        raise ValueError(
            f"{dataset}: {len(tr)} training examples, fewer than batch_size="
            f"{batch_size}"
        )
    if y.max() >= classes or y_test.max() >= classes:
        raise ValueError(f"{dataset}: labels exceed the {classes} classes expected")
    steps = len(tr) // batch_size
    xt, yt = jnp.asarray(x[tr]), jnp.asarray(y[tr])
    return NNXTask(
        name=name,
        model_fn=model_fn,
        batch_fn=epoch_batch_fn(xt, yt, batch_size, steps),
        eval_sets={
            "val": (jnp.asarray(x[va]), jnp.asarray(y[va])),
            "test": (jnp.asarray(x_test), jnp.asarray(y_test)),
        },
        steps_per_epoch=steps,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
        eval_batch_size=500,
        # uint8 on device (4x smaller); scaled to [0, 1] inside the step.
        preprocess=lambda im: im.astype(jnp.float32) / 255.0,
    )


def fashion_mnist_cnn(
    *,
    data_dir: str | None = None,
    batch_size: int = 128,
    default_epochs: int = 30,
    weight_decay: float = 1e-3,
    val_fraction: float = 0.1,
) -> NNXTask:
    """``fashion_mnist-cnn``: the paper's CNN on Fashion-MNIST (A.1), AdamW
    weight decay 1e-3 (A.2). 10% of the training split is held out for
    validation by a fixed permutation; the metric is accuracy."""
    return _image_task(
        "fashion_mnist-cnn",
        "fashion_mnist",
        lambda rngs: PaperCNN(28, 1, 10, rngs=rngs),
        classes=10,
        val_fraction=val_fraction,
        batch_size=batch_size,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
        data_dir=data_dir,
    )


def cifar100_resnet18(
    *,
    data_dir: str | None = None,
    width: int = 64,
    batch_size: int = 128,
    default_epochs: int = 50,
    weight_decay: float = 1e-2,
    val_fraction: float = 0.1,
) -> NNXTask:
    """``cifar100-resnet18``: ResNet18 on CIFAR-100, AdamW weight decay 1e-2
    (A.2). 10% of the training split is held out for validation; the metric
    is top-1 accuracy. ``width`` scales the channel counts (64 = standard)."""
    check_task_args("cifar100-resnet18", ints={"width": width})
    return _image_task(
        "cifar100-resnet18",
        "cifar100",
        lambda rngs: ResNet18(3, 100, width=width, rngs=rngs),
        classes=100,
        val_fraction=val_fraction,
        batch_size=batch_size,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
        data_dir=data_dir,
    )
