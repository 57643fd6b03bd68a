"""Image tasks read with ``tfds.data_source`` (no TensorFlow needed).

``fashion_mnist-cnn`` (the paper's CNN) and ``cifar100-resnet18`` are for users
who have the data prepared (``tfds build``, or an existing ``data_dir``) and
preferably a GPU. The whole split is read once, example by example (random
access; batched reads are not supported by every data source, notably not by
``tfds.testing.mock_data``), and kept on device as ``uint8``.
"""

from __future__ import annotations

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
        raise DataNotPreparedError(
            f"cannot read TFDS {name}/{split} ({type(e).__name__}: {e}). "
            f"Prepare it once as ArrayRecord, `tfds build {name} "
            "--file_format=array_record` (needs TensorFlow), and pass its "
            "directory: get_task(..., data_dir=DIR), or --task-arg data_dir=DIR "
            "for optax-lode sweep and optax-lode demo"
        ) from e
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
