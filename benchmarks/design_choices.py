"""Two design choices of the tasks, measured against the obvious alternative.

1. **Minibatch order** (``optax_lode.tasks._nnx_task.epoch_batch_fn``): each
   epoch's order is a bijection of two random affine maps around a fixed
   shuffle, computed for the batch's positions only. The alternative is a
   full ``jax.random.permutation`` of the ``n`` training examples at every
   step (``epoch_batch_fn``'s own branch for ``n >= 2**16``, copied here as
   :func:`permutation_batch_fn`): a sort of ``n`` keys per step and per run.
2. **Convolutions under vmap** (``optax_lode.tasks._models.PatchConv``): image
   patches times the kernel matrix, which batches over runs into an ordinary
   matmul. The alternative is ``nnx.Conv`` (``lax.conv``), which batched over
   runs with per-run kernels becomes a grouped convolution. The alternative
   model is the task's own with each ``PatchConv`` replaced by an ``nnx.Conv``
   holding the same kernel and bias (:func:`lax_conv_model`); the benchmark
   checks that the two give the same logits.

Both are timed on the sweep engine's own program
(``optax_lode.sweep._sweep._run_program``: ``R`` runs of the real task vmapped
as one program, one tick per epoch, the validation metric at each tick's end
and the test metric at the end), the chosen variant against the task with
only that one piece swapped. Each program is compiled once (compile time
reported separately) and run once untimed; then each repetition runs every
variant once, in an order that rotates, and the ratio alternative / chosen is
the median of the repetitions' ratios, with a distribution-free interval.

Run: ``python -m benchmarks.design_choices`` (about 6 minutes on 2 cores;
``--quick``: tiny sizes, written as ``design_choices_quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import numpy as np

from benchmarks._common import (
    OtherLoad,
    markdown_table,
    median_interval,
    other_load_note,
    rotated,
    write_result,
)

NAME = "design_choices"

#: (question, task, runs vmapped, epochs, repetitions). The minibatch order
#: on the default sweep's task at its chunk size (a 100-run sweep is four
#: such programs); the convolutions on both convnet tasks at 10 runs and at
#: the sweep's chunk size of 25.
CASES = (
    ("minibatch", "mnist1d-mlp", 25, 3, 11),
    ("minibatch", "digits-mlp", 25, 4, 11),
    ("conv", "digits-cnn", 10, 1, 7),
    ("conv", "digits-cnn", 25, 1, 5),
    ("conv", "mnist1d-cnn", 10, 1, 7),
    ("conv", "mnist1d-cnn", 25, 1, 7),
)
QUICK_CASES = (
    ("minibatch", "digits-mlp", 2, 1, 2),
    ("conv", "digits-cnn", 2, 1, 2),
)
#: What each question compares: (chosen, alternative).
VARIANTS = {
    "minibatch": ("affine bijection (the tasks')", "jax.random.permutation per step"),
    "conv": ("PatchConv (the tasks')", "nnx.Conv (grouped under vmap)"),
}


def permutation_batch_fn(x, y, batch_size: int, steps_per_epoch: int):
    """``epoch_batch_fn`` with a full ``jax.random.permutation`` of the ``n``
    examples per step (its branch for ``n >= 2**16``), for any ``n``."""
    import jax
    import jax.numpy as jnp

    n = int(x.shape[0])

    def batch(key, step):
        epoch, pos = jnp.divmod(step, steps_per_epoch)
        positions = pos * batch_size + jnp.arange(batch_size)
        idx = jax.random.permutation(jax.random.fold_in(key, epoch), n)[positions]
        return jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)

    return batch


def _train_data(name: str):
    from optax_lode.tasks._small import digits_data, mnist1d_data

    data = digits_data() if name.startswith("digits") else mnist1d_data()
    return data["train"]


def permutation_task(task):
    """``task`` whose minibatches come from :func:`permutation_batch_fn` (the
    same examples, batch size and epoch length)."""
    import jax.numpy as jnp

    x, y = (jnp.asarray(a) for a in _train_data(task.name))
    batch_size = _batch_size(task)
    if x.shape[0] // batch_size != task.steps_per_epoch:
        raise ValueError(f"{task.name}: not the task's training set")
    fn = permutation_batch_fn(x, y, batch_size, task.steps_per_epoch)
    return dataclasses.replace(task, batch_fn=fn)


def lax_conv_model(model):
    """``model`` with each ``PatchConv`` (an attribute, or an item of an
    ``nnx.List`` attribute) replaced by an ``nnx.Conv`` of the same shape,
    strides, ``SAME`` padding, kernel and bias."""
    from flax import nnx

    from optax_lode.tasks._models import PatchConv

    def swap(conv):
        *window, cin, cout = conv.kernel.shape
        new = nnx.Conv(
            cin,
            cout,
            tuple(window),
            strides=conv.strides,
            padding="SAME",
            rngs=nnx.Rngs(0),
        )
        new.kernel.set_value(conv.kernel.get_value())
        new.bias.set_value(conv.bias.get_value())
        return new

    found = 0
    for attr, value in list(vars(model).items()):
        if isinstance(value, PatchConv):
            setattr(model, attr, swap(value))
            found += 1
        elif isinstance(value, nnx.List):
            for i, item in enumerate(value):
                if isinstance(item, PatchConv):
                    value[i] = swap(item)
                    found += 1
    if not found:
        raise ValueError(f"{type(model).__name__} has no PatchConv to replace")
    return model


def lax_conv_task(task):
    """``task`` whose model computes its convolutions with ``nnx.Conv``."""
    make = task.model_fn
    return dataclasses.replace(task, model_fn=lambda rngs: lax_conv_model(make(rngs)))


def _max_logit_difference(task, other) -> float:
    """The largest difference of the two tasks' logits on a training batch
    from the same initialisation (0 up to rounding if they compute the same
    function)."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    params, state = task.init(key)
    x, _ = task.batch_fn(key, jnp.int32(0))
    a, _ = jax.jit(lambda p, s: task.apply(p, s, x))(params, state)
    b, _ = jax.jit(lambda p, s: other.apply(p, s, x))(params, state)
    return float(jnp.max(jnp.abs(a - b)))


def _batch_size(task) -> int:
    import jax
    import jax.numpy as jnp

    shapes = jax.eval_shape(task.batch_fn, jax.random.key(0), jnp.int32(0))
    return int(shapes[0].shape[0])


def _distinct_first_epoch(task) -> int:
    """How many distinct examples the first epoch of seed 3's minibatches
    holds (``steps_per_epoch * batch_size`` if each is visited at most once
    and the training set has no duplicates)."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(3)
    batches = [
        np.asarray(task.batch_fn(key, jnp.int32(s))[0])
        for s in range(task.steps_per_epoch)
    ]
    rows = np.concatenate([b.reshape(b.shape[0], -1) for b in batches])
    return int(np.unique(rows, axis=0).shape[0])


def _grid(runs: int):
    """The first ``runs`` runs of the default sweep's grid (shape, lr, seed),
    as ``_run_program``'s arguments."""
    from optax_lode.sweep import PAPER_LRS, PAPER_SHAPES

    grid = [
        (i, lr, s)
        for i in range(len(PAPER_SHAPES))
        for lr in PAPER_LRS
        for s in range(5)
    ][:runs]
    return (
        np.asarray([g[0] for g in grid], np.int32),
        np.asarray([g[1] for g in grid], np.float32),
        np.asarray([g[2] for g in grid], np.uint32),
    )


def _compiled(task, runs: int, epochs: int):
    import jax

    from optax_lode.sweep import PAPER_SHAPES
    from optax_lode.sweep._sweep import _run_program

    args = _grid(runs)
    program = _run_program(
        task, PAPER_SHAPES, epochs, task.steps_per_epoch, task.weight_decay
    )
    t0 = time.perf_counter()
    compiled = jax.jit(program).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))  # once untimed
    return (lambda: jax.block_until_ready(compiled(*args))), compile_s


def measure(question: str, name: str, runs: int, epochs: int, reps: int) -> dict:
    """One case: both variants compiled, then ``reps`` paired repetitions."""
    from optax_lode.tasks import get_task

    task = get_task(name)
    other = permutation_task(task) if question == "minibatch" else lax_conv_task(task)
    check: dict[str, Any]
    if question == "minibatch":
        check = {
            "distinct_examples_first_epoch": {
                "chosen": _distinct_first_epoch(task),
                "alternative": _distinct_first_epoch(other),
                "visited": task.steps_per_epoch * _batch_size(task),
            }
        }
    else:
        check = {"max_abs_logit_difference": _max_logit_difference(task, other)}
    variants = dict(zip(("chosen", "alternative"), (task, other), strict=True))
    fns, compile_s = {}, {}
    for label, t in variants.items():
        fns[label], compile_s[label] = _compiled(t, runs, epochs)
    seconds: dict[str, list[float]] = {label: [] for label in variants}
    others: list[float | None] = []
    meter = OtherLoad()
    for i in range(reps):
        for label in rotated(list(variants), i):
            meter.start()
            t0 = time.perf_counter()
            fns[label]()
            seconds[label].append(time.perf_counter() - t0)
            others.append(meter.stop())
    ratios = [
        a / b for a, b in zip(seconds["alternative"], seconds["chosen"], strict=True)
    ]
    lo, hi, coverage = median_interval(ratios)
    out = {
        "question": question,
        "task": name,
        "runs": runs,
        "epochs": epochs,
        "steps_per_run": epochs * task.steps_per_epoch,
        "repetitions": reps,
        "variants": dict(zip(variants, VARIANTS[question], strict=True)),
        "compile_seconds": compile_s,
        "seconds": seconds,
        "ratio": {
            "median": statistics.median(ratios),
            "interval": [lo, hi],
            "coverage": coverage,
            "per_repetition": ratios,
        },
        "other_load_cores": others,
        "check": check,
    }
    print(name, question, runs, out["ratio"], flush=True)
    return out


def _ratio(case: dict) -> str:
    r = case["ratio"]
    lo, hi = r["interval"]
    return f"{r['median']:.2f}x ({lo:.2f} .. {hi:.2f})"


def headline(cases: list[dict]) -> str:
    """One line: each case's ratio, alternative over chosen."""
    parts = []
    for q, (what, against) in (
        ("minibatch", ("a jax.random.permutation per step", "the affine bijection")),
        ("conv", ("nnx.Conv under vmap", "PatchConv")),
    ):
        rows = [c for c in cases if c["question"] == q]
        if rows:
            each = ", ".join(
                f"{c['task']} {c['runs']} runs {c['ratio']['median']:.1f}x"
                for c in rows
            )
            parts.append(f"{what} against {against}: {each}")
    return "design choices (time of the alternative over the tasks'): " + "; ".join(
        parts
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """``(title, table, notes)`` of a saved result, from its JSON alone."""
    cases = payload["cases"]
    rows = []
    for c in cases:
        chosen, alternative = c["variants"]["chosen"], c["variants"]["alternative"]
        rows.append(
            [
                f"{chosen} vs {alternative}",
                c["task"],
                f"{c['runs']} x {c['steps_per_run']}",
                f"{statistics.median(c['seconds']['chosen']):.3f}",
                f"{statistics.median(c['seconds']['alternative']):.3f}",
                _ratio(c),
                f"{c['compile_seconds']['chosen']:.1f} / "
                f"{c['compile_seconds']['alternative']:.1f}",
            ]
        )
    table = markdown_table(
        [
            "the tasks' choice vs the alternative",
            "task",
            "runs x steps",
            "chosen (s)",
            "alternative (s)",
            "alternative / chosen (interval)",
            "compile (s), chosen / alternative",
        ],
        rows,
    )
    reps = sorted({c["repetitions"] for c in cases})
    coverage = sorted({round(100 * c["ratio"]["coverage"], 1) for c in cases})
    logits, epochs = [], []
    for c in cases:
        check = c["check"]
        if "max_abs_logit_difference" in check:
            logits.append(f"{c['task']} {check['max_abs_logit_difference']:.1e}")
        if "distinct_examples_first_epoch" in check:
            d = check["distinct_examples_first_epoch"]
            epochs.append(
                f"{c['task']} {d['chosen']} and {d['alternative']} of {d['visited']}"
            )
    notes = (
        "Each row times one compiled program of the sweep engine "
        "(`_run_program`: the runs vmapped, one tick per epoch, the validation "
        "metric at each tick's end and the test metric at the end) for the "
        "real task (chosen) and for the same task with only the minibatch "
        "order or only the convolutions swapped (alternative), compilation "
        "excluded (its time is the last column). Runs are the first of the "
        "default sweep's grid (a 100-run sweep runs as chunks of 25). "
        f"Times: medians over {' or '.join(map(str, reps))} repetitions, each "
        "running both programs once in an order that rotates; the ratio is the "
        "median of the repetitions' ratios (paired), with its distribution-free "
        "interval (order statistics of the ratios; coverage "
        f"{' or '.join(f'{x:g}%' for x in coverage)} by the number of "
        "repetitions). Checks: the "
        "alternative convolution (`nnx.Conv`, the same kernels) gave the "
        "largest logit difference from `PatchConv`'s "
        + (", ".join(dict.fromkeys(logits)) or "(not run)")
        + "; distinct examples in a first epoch's minibatches (the chosen and "
        "the alternative order, of the examples visited): "
        + (", ".join(dict.fromkeys(epochs)) or "(not run)")
        + ". "
        + other_load_note(
            [x for c in cases for x in c["other_load_cores"]],
            "timed programs",
            cpus=payload["environment"]["cpu_count"],
        )
        + f"Wall time of the whole benchmark: {payload['seconds']:.0f} s."
    )
    if payload.get("quick"):
        notes += " QUICK RUN: tiny sizes; not the reference numbers."
    return "Design choices: minibatch order, convolutions under vmap", table, notes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    cases = [measure(*case) for case in (QUICK_CASES if args.quick else CASES)]
    data = {
        "headline": headline(cases),
        "quick": args.quick,
        "cases": cases,
        "seconds": time.perf_counter() - t0,
    }
    write_result(
        NAME + ("_quick" if args.quick else ""),
        data,
        render=markdown,
        results_dir=args.results_dir,
    )


if __name__ == "__main__":
    main()
