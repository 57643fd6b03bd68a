"""The committed results are what their scripts render: each result's
Markdown is a function of its JSON alone (the ``markdown`` renderer the JSON
names), so an edit of how a result is shown that was not re-rendered, or a
hand edit of a result's Markdown, fails here."""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pytest

from benchmarks import _common
from benchmarks.render_docs import UNCHECKED

TABLES = (
    "table1_schedule_quality",
    "table2_sharpness",
    "table3_ablations",
    "table4_data_ablation",
    "tableA1_reconstruction",
    "fit_budget",
)
#: Every committed result, by the stem of its JSON or Markdown.
RESULTS = sorted(
    {p.stem for p in _common.RESULTS_DIR.glob("*.json")}
    | {p.stem for p in _common.RESULTS_DIR.glob("*.md")}
)


@pytest.mark.parametrize("name", RESULTS)
def test_committed_markdown_is_what_its_json_renders(name):
    pytest.importorskip("scipy")
    if name in UNCHECKED:
        pytest.skip(f"{name} is allowed unchecked (render_docs.UNCHECKED)")
    payload = _common.read_result(name)
    assert payload is not None, f"benchmarks/results/{name}.md has no JSON"
    assert "renderer" in payload, (
        f"benchmarks/results/{name}.json names no renderer: write it with "
        "write_result(name, data, render=markdown)"
    )
    committed = (_common.RESULTS_DIR / f"{name}.md").read_text()
    assert _common.render_markdown(payload) == committed, (
        f"benchmarks/results/{name}.md is not what its JSON renders (a hand "
        "edit, or a renderer changed): run python -m benchmarks.render_docs"
    )


@pytest.mark.parametrize("name", TABLES)
def test_render_rewrites_a_tables_markdown_from_its_json(name, tmp_path, monkeypatch):
    """A table's ``--render`` is the renderer that ``render_docs`` checks
    with: it rewrites the Markdown from the JSON, and leaves the JSON."""
    pytest.importorskip("scipy")
    committed = _common.RESULTS_DIR
    shutil.copy(committed / f"{name}.json", tmp_path)
    (tmp_path / f"{name}.md").write_text("stale")
    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(_common, "RESULTS_DIR", tmp_path)
    assert module.main(["--render"]) == 0
    rendered = (tmp_path / f"{name}.md").read_text()
    assert rendered == (committed / f"{name}.md").read_text()
    saved = (committed / f"{name}.json").read_text()
    assert (tmp_path / f"{name}.json").read_text() == saved


def test_render_without_a_saved_result_says_to_run_the_benchmark(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(_common, "RESULTS_DIR", tmp_path)
    for name in TABLES:
        module = importlib.import_module(f"benchmarks.{name}")
        assert module.main(["--render"]) == 1
        assert "run the benchmark first" in capsys.readouterr().out


def markdown(payload: dict) -> tuple[str, str, str]:
    """A toy result's renderer (at module level, where the JSON finds it)."""
    return "Toy", f"| {payload['x']!r} |\n", f"From {payload['name']}."


def test_write_result_renders_the_markdown_from_the_saved_json(tmp_path):
    path = _common.write_result(
        "toy", {"x": (1, np.float32(0.5))}, render=markdown, results_dir=tmp_path
    )
    payload = json.loads(path.read_text())
    assert payload["renderer"] == f"{__name__}:markdown"
    md = (tmp_path / "toy.md").read_text()
    assert md == _common.document(*markdown(payload), payload["environment"])
    assert md == _common.render_markdown(payload)
    # What the JSON holds (a list of floats), not what was passed in.
    assert "| [1, 0.5] |" in md and md.startswith("## Toy\n")
    with pytest.raises(TypeError, match="render"):
        _common.write_result("toy", {})  # a Markdown of its own: not any more


def _table(name):
    return _common.read_result(name)["tasks"]


def test_every_table_of_a_task_shows_table1s_runs():
    """Table 2's rows, the reference rows of Tables 3 and 4 and the fit
    budget's reference model of fit seed 0 are Table 1's runs (the same
    seeds, the same test metrics), so a task's tables describe one sweep, one
    fitted model and one set of runs."""
    from benchmarks.table2_sharpness import same_runs

    table1 = _table("table1_schedule_quality")

    def same(metrics, task, method):
        return same_runs(metrics, table1[task]["methods"][method]["test_metrics"])

    for task, d in _table("table2_sharpness").items():
        for method, row in d["methods"].items():
            assert same(row["test_metrics"], task, method), (task, method)
    for name, key in (("table3_ablations", "settings"),
                      ("table4_data_ablation", "variants")):  # fmt: skip
        for task, d in _table(name).items():
            assert d["seeds"] == table1[task]["seeds"], (name, task)
            (reference,) = [e for e in d[key].values() if e.get("p_value") is None]
            assert same(reference["test_metrics"], task, "LODE"), (name, task)
    # The fit budget's reference model of fit seed 0 is the demo's model.
    for task, d in _table("fit_budget").items():
        assert d["seeds"] == table1[task]["seeds"], task
        (reference,) = [e for e in d["fits"].values() if e["p_value"] is None]
        (demo,) = [m for m in reference["models"] if m["fit_seed"] == 0]
        assert same(demo["test_metrics"], task, "LODE"), task


def test_every_table_of_a_task_used_table1s_model():
    """Where results record the model's content digest, a task's tables used
    the model of Table 1's LODE rows: a fit made again elsewhere under the
    same settings (the model key) is another model."""
    results = {name: _table(name) for name in TABLES}
    assert _common.model_digest_mismatches(results) == []
