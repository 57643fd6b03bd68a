"""The design-choices benchmark: its alternatives compute what the tasks
compute (only slower or faster), and its result renders from the saved JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks import _common
from benchmarks.design_choices import (
    _batch_size,
    _distinct_first_epoch,
    _max_logit_difference,
    headline,
    lax_conv_task,
    main,
    permutation_task,
)


@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-cnn"])
def test_nnx_conv_variant_is_the_same_function(name):
    import jax

    from optax_lode.tasks import get_task

    task = get_task(name)
    other = lax_conv_task(task)
    # The same parameters (paths, shapes, values) from the same key...
    a, _ = task.init(jax.random.key(0))
    b, _ = other.init(jax.random.key(0))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert all(
        bool((x == y).all())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    # ...and the same logits, up to rounding.
    assert _max_logit_difference(task, other) < 1e-4


def test_permutation_variant_visits_each_example_once_per_epoch():
    from optax_lode.tasks import get_task

    task = get_task("digits-mlp")
    other = permutation_task(task)
    visited = task.steps_per_epoch * _batch_size(task)
    assert _batch_size(other) == _batch_size(task)
    assert _distinct_first_epoch(task) == visited
    assert _distinct_first_epoch(other) == visited


@pytest.mark.slow  # the benchmark's quick run: ~15 s
def test_quick_run_renders_its_markdown_from_the_saved_json(tmp_path):
    main(["--quick", "--results-dir", str(tmp_path)])
    payload = json.loads((tmp_path / "design_choices_quick.json").read_text())
    assert payload["renderer"] == "benchmarks.design_choices:markdown"
    md = (tmp_path / "design_choices_quick.md").read_text()
    assert _common.render_markdown(payload) == md
    assert "QUICK RUN" in md
    for case in payload["cases"]:
        reps = case["repetitions"]
        assert len(case["seconds"]["chosen"]) == len(case["seconds"]["alternative"])
        assert len(case["ratio"]["per_repetition"]) == reps
        lo, hi = case["ratio"]["interval"]
        assert lo <= case["ratio"]["median"] <= hi
    assert payload["headline"] == headline(payload["cases"])
