"""Offline tasks on small bundled or generated data: digits and MNIST-1D.

Both datasets are made on the fly without any download and cached in-process,
so tests and sweeps build each one once.
"""

from __future__ import annotations

import functools
import random

import jax.numpy as jnp
import numpy as np

from optax_lode.tasks._models import CNN1D, MLP, SmallCNN
from optax_lode.tasks._nnx_task import (
    NNXTask,
    check_task_args,
    epoch_batch_fn,
    fixed_split,
)

# Fixed (train, val, test) sizes and split seed: the split is part of the task.
_DIGITS_SPLIT = (1197, 300, 300)
_MNIST1D_SPLIT = (4000, 1000, 1000)
_SPLIT_SEED = 0


@functools.cache
def digits_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8x8 digits (1797 images), scaled to [0, 1], split
    1197 / 300 / 300 into train / val / test by a fixed permutation."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    tr, va, te = fixed_split(len(y), _DIGITS_SPLIT, _SPLIT_SEED)
    return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}


@functools.cache
def mnist1d_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST-1D (Greydanus 2020) generated offline with the package's default
    arguments (seed 42) but 6000 samples, split 4000 / 1000 / 1000.

    ``mnist1d.make_dataset`` reseeds the global ``random`` and ``numpy.random``
    generators; their states are saved and restored around it, so building
    the task does not change the caller's random streams.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = sum(_MNIST1D_SPLIT)
    # The legacy global generator is exactly what the package reseeds.
    np_state = np.random.get_state()  # noqa: NPY002
    py_state = random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int32)
    a, b, _ = _MNIST1D_SPLIT
    # make_dataset already shuffles with its own fixed seed: split in order.
    return {
        "train": (x[:a], y[:a]),
        "val": (x[a : a + b], y[a : a + b]),
        "test": (x[a + b :], y[a + b :]),
    }


def _array_task(
    name, data_fn, model_fn, *, sizes, batch_size, default_epochs, weight_decay
) -> NNXTask:
    # The arguments first: a width of 0 or a float batch size fails clearly,
    # before the data is loaded or the model built.
    check_task_args(
        name,
        ints={**sizes, "batch_size": batch_size, "default_epochs": default_epochs},
        weight_decay=weight_decay,
    )
    data = data_fn()
    x, y = (jnp.asarray(a) for a in data["train"])
    if not 1 <= batch_size <= x.shape[0]:
        raise ValueError(
            f"batch_size={batch_size} must be between 1 and the {x.shape[0]} "
            f"training examples of {name!r}"
        )
    steps = x.shape[0] // batch_size
    return NNXTask(
        name=name,
        model_fn=model_fn,
        batch_fn=epoch_batch_fn(x, y, batch_size, steps),
        eval_sets={s: tuple(jnp.asarray(a) for a in data[s]) for s in ("val", "test")},
        steps_per_epoch=steps,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
    )


def digits_mlp(
    *,
    hidden: tuple[int, ...] = (128,),
    batch_size: int = 64,
    default_epochs: int = 30,
    weight_decay: float = 1e-3,
) -> NNXTask:
    """``digits-mlp``: a ReLU MLP (64 -> ``hidden`` -> 10) on the 8x8 digits."""
    return _array_task(
        "digits-mlp",
        digits_data,
        lambda rngs: MLP(64, tuple(hidden), 10, rngs=rngs),
        sizes={"hidden": hidden},
        batch_size=batch_size,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
    )


def digits_cnn(
    *,
    channels: int = 16,
    batch_size: int = 64,
    default_epochs: int = 30,
    weight_decay: float = 1e-3,
) -> NNXTask:
    """``digits-cnn``: two 3x3 convolutions and a max-pool on the 8x8 digits."""
    return _array_task(
        "digits-cnn",
        digits_data,
        lambda rngs: SmallCNN(8, channels, 10, rngs=rngs),
        sizes={"channels": channels},
        batch_size=batch_size,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
    )


def mnist1d_mlp(
    *,
    hidden: tuple[int, ...] = (100, 100),
    batch_size: int = 128,
    default_epochs: int = 60,
    weight_decay: float = 1e-3,
) -> NNXTask:
    """``mnist1d-mlp``: MNIST-1D's reference MLP (40 -> 100 -> 100 -> 10)."""
    return _array_task(
        "mnist1d-mlp",
        mnist1d_data,
        lambda rngs: MLP(40, tuple(hidden), 10, rngs=rngs),
        sizes={"hidden": hidden},
        batch_size=batch_size,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
    )


def mnist1d_cnn(
    *,
    channels: int = 25,
    batch_size: int = 128,
    default_epochs: int = 30,
    weight_decay: float = 1e-3,
) -> NNXTask:
    """``mnist1d-cnn``: MNIST-1D's reference convnet (three strided 1-D
    convolutions of ``channels`` channels, then a linear read-out)."""
    return _array_task(
        "mnist1d-cnn",
        mnist1d_data,
        lambda rngs: CNN1D(40, channels, 10, rngs=rngs),
        sizes={"channels": channels},
        batch_size=batch_size,
        default_epochs=default_epochs,
        weight_decay=weight_decay,
    )
