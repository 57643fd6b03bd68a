"""A supervised task around an nnx model: the functional split/merge pattern.

The model is built once to get its ``GraphDef`` (the static structure); a run's
parameters and non-trainable state are *plain nested dicts of arrays*
(``nnx.State.to_pure_dict``), which optax, ``jax.vmap`` and sharding handle as
ordinary pytrees. Each call rebuilds a module view with ``nnx.merge`` inside the
traced function, so nothing stateful crosses a JAX transformation boundary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jaxtyping import Array, Float, Int, PRNGKeyArray

PyTree = Any
# (key, step) -> (inputs, targets) of one training minibatch, traced.
BatchFn = Callable[[PRNGKeyArray, Int[Array, ""]], tuple[Array, Array]]


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, dict, dict]:
    """``(graphdef, params, state)`` with params/state as pure dicts."""
    graphdef, params, state = nnx.split(model, nnx.Param, ...)
    return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(state)


def merge_model(graphdef: nnx.GraphDef, params: dict, state: dict) -> nnx.Module:
    """A module view of ``(params, state)``; call it inside the traced function."""
    return nnx.merge(graphdef, params, state) if state else nnx.merge(graphdef, params)


def epoch_batch_fn(
    x: Array, y: Array, batch_size: int, steps_per_epoch: int
) -> BatchFn:
    """Minibatches that visit every example at most once per epoch, in a new
    order each epoch, as a pure function of ``(key, step)`` (no host-side
    loader, vmappable over runs).

    The order of epoch ``e`` is a bijection of ``[0, n)`` drawn from
    ``fold_in(key, e)``: two random affine maps ``i -> (a i + b) mod n``
    (``a`` coprime to ``n``) around a fixed random shuffle. It costs O(batch)
    per step, where a full ``jax.random.permutation`` costs a sort of ``n``
    keys per step and per run (several times slower in a sweep: ``python -m
    benchmarks.design_choices`` measures it). It is not a uniformly random
    permutation (there are at most ``(phi(n) n)^2`` orders), which is plenty
    to decorrelate minibatches across epochs and runs. For ``n >= 2**16``
    (where ``a i`` would overflow 32 bits) a full permutation is used
    instead.
    """
    n = int(x.shape[0])
    if n * n < 2**32:
        coprime = np.asarray([a for a in range(1, n) if math.gcd(a, n) == 1] or [1])
        coprime = jnp.asarray(coprime, jnp.uint32)
        # affine -> fixed shuffle -> affine: many more distinct epoch orders
        # than one affine map, and batches that are no arithmetic progression.
        mix = jnp.asarray(np.random.default_rng(0).permutation(n), jnp.uint32)

        def affine(key, i):
            ka, kb = jax.random.split(key)
            a = coprime[jax.random.randint(ka, (), 0, coprime.shape[0])]
            b = jax.random.randint(kb, (), 0, n).astype(jnp.uint32)
            return ((a * i) % n + b) % n

        def order(key, positions):
            k1, k2 = jax.random.split(key)
            i = affine(k1, positions.astype(jnp.uint32))
            return affine(k2, mix[i]).astype(jnp.int32)

    else:

        def order(key, positions):
            return jax.random.permutation(key, n)[positions]

    def batch(key: PRNGKeyArray, step: Int[Array, ""]) -> tuple[Array, Array]:
        epoch, pos = jnp.divmod(step, steps_per_epoch)
        positions = pos * batch_size + jnp.arange(batch_size)
        idx = order(jax.random.fold_in(key, epoch), positions)
        return jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)

    return batch


#: Task arguments that are sequences of sizes (an MLP's hidden widths).
_SEQUENCES = frozenset({"hidden"})


def check_task_args(
    name: str,
    *,
    ints: Mapping[str, Any] | None = None,
    weight_decay: float = 0.0,
    dropout: float | None = None,
) -> None:
    """Clear errors for a task factory's arguments, before anything is built:
    sizes are ints >= 1 (a width of 0, or a float batch size, would fail deep
    inside or train on float step counts), weight decay finite and >= 0,
    dropout in [0, 1)."""
    for arg, value in (ints or {}).items():
        # Layer widths are a sequence (one per layer); every other size one int.
        many = arg in _SEQUENCES
        if isinstance(value, tuple | list) != many:
            form = "a tuple of ints >= 1, one per layer" if many else "one int >= 1"
            raise ValueError(f"task {name!r}: {arg}={value!r} must be {form}")
        values = value if many else (value,)
        ok = all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1
            for v in values
        )
        if not ok or not values:
            raise ValueError(f"task {name!r}: {arg}={value!r} must be int(s) >= 1")
    if isinstance(weight_decay, str | bytes | bool):  # np.isfinite's TypeError
        raise ValueError(
            f"task {name!r}: weight_decay={weight_decay!r} must be a number"
        )
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(
            f"task {name!r}: weight_decay={weight_decay!r} must be finite and >= 0"
        )
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"task {name!r}: dropout={dropout!r} must be in [0, 1)")


@dataclasses.dataclass(frozen=True, eq=False)
class NNXTask:
    """A classification-style task: cross-entropy loss, accuracy metric.

    Targets may carry extra axes (next-token prediction: one label per
    position); loss and accuracy then average over all of them.

    Attributes:
        name: registry name.
        model_fn: ``rngs -> nnx.Module`` building a freshly initialised model.
        batch_fn: the training minibatch of ``(key, step)``.
        eval_sets: ``{"val": (x, y), "test": (x, y)}`` on device.
        steps_per_epoch: optimizer steps per pass over the training data.
        default_epochs: run length of the paper-style sweep.
        weight_decay: AdamW weight decay of the paper-style sweep.
        eval_batch_size: examples per evaluation batch (bounds memory).
        preprocess: applied to every input batch inside the traced step (e.g.
            uint8 images to floats), so the data can stay compact on device.
        metric_name: what :meth:`metric` measures (``"accuracy"``); trackers
            log the validation metric as ``val_<metric_name>``.
    """

    name: str
    model_fn: Callable[[nnx.Rngs], nnx.Module]
    batch_fn: BatchFn
    eval_sets: Mapping[str, tuple[Array, Array]]
    steps_per_epoch: int
    default_epochs: int
    weight_decay: float
    eval_batch_size: int = 1024
    preprocess: Callable[[Array], Array] | None = None
    metric_name: str = "accuracy"
    graphdef: nnx.GraphDef = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        check_task_args(
            self.name,
            ints={
                "steps_per_epoch": self.steps_per_epoch,
                "default_epochs": self.default_epochs,
            },
            weight_decay=self.weight_decay,
        )
        # The graph structure is the same for every key: build it once,
        # abstractly (no arrays are allocated).
        abstract = nnx.eval_shape(lambda: self.model_fn(nnx.Rngs(0)))
        object.__setattr__(self, "graphdef", nnx.split(abstract, nnx.Param, ...)[0])

    def _inputs(self, x: Array) -> Array:
        return self.preprocess(x) if self.preprocess is not None else x

    def init(self, key: PRNGKeyArray) -> tuple[PyTree, PyTree]:
        _, params, state = split_model(self.model_fn(nnx.Rngs(key)))
        return params, state

    def apply(
        self,
        params: PyTree,
        state: PyTree,
        x: Array,
        *,
        train: bool = False,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Array, PyTree]:
        """Logits of ``x`` and the model state after the call."""
        model = merge_model(self.graphdef, params, state)
        logits = model(self._inputs(x), train=train, key=key)
        _, _, new_state = split_model(model)
        return logits, new_state

    def train_loss(
        self,
        params: PyTree,
        state: PyTree,
        step: Int[Array, ""],
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], PyTree]:
        step_key = jax.random.fold_in(key, step)
        x, y = self.batch_fn(key, step)
        logits, new_state = self.apply(
            params, state, x, train=True, key=jax.random.fold_in(step_key, 1)
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, new_state

    def metric(self, params: PyTree, state: PyTree, split: str) -> Float[Array, ""]:
        if split not in self.eval_sets:
            raise ValueError(
                f"task {self.name!r} has no split {split!r}; "
                f"use one of {sorted(self.eval_sets)}"
            )
        x, y = self.eval_sets[split]
        n = x.shape[0]
        bs = min(self.eval_batch_size, n)
        nb = -(-n // bs)
        pad = nb * bs - n
        # Pad to whole batches and mask the padding out, so any eval-set size
        # works with a fixed batch shape.
        xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
        yp = jnp.concatenate([y, jnp.zeros((pad, *y.shape[1:]), y.dtype)])
        valid = (jnp.arange(nb * bs) < n).reshape(nb, bs)

        def correct(args):
            xb, yb, vb = args
            logits, _ = self.apply(params, state, xb, train=False)
            hit = (jnp.argmax(logits, -1) == yb).astype(jnp.float32)
            hit = hit.reshape(bs, -1).mean(-1)
            return jnp.sum(jnp.where(vb, hit, 0.0))

        hits = jax.lax.map(
            correct,
            (xp.reshape(nb, bs, *x.shape[1:]), yp.reshape(nb, bs, *y.shape[1:]), valid),
        )
        return jnp.sum(hits) / n


def fixed_split(
    n: int, sizes: tuple[int, int, int], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a fixed (train, val, test) split of ``n`` examples."""
    if sum(sizes) > n:
        raise ValueError(f"split sizes {sizes} exceed the {n} examples available")
    perm = np.random.default_rng(seed).permutation(n)
    a, b, c = sizes
    return perm[:a], perm[a : a + b], perm[a + b : a + b + c]
