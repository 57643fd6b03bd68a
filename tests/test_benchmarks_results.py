"""The committed results are what their scripts render: each table's Markdown
is generated from its JSON (``--render``), so an edit of how a table is shown
that was not re-rendered, or a hand edit of a result, fails here."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest

from benchmarks import _common

TABLES = (
    "table1_schedule_quality",
    "table2_sharpness",
    "table3_ablations",
    "table4_data_ablation",
    "tableA1_reconstruction",
    "fit_budget",
)


@pytest.mark.parametrize("name", TABLES)
def test_committed_markdown_is_what_the_json_renders(name, tmp_path, monkeypatch):
    pytest.importorskip("scipy")
    committed = _common.RESULTS_DIR
    # Every result, as some tables read others (Table 2 checks Table 1's runs).
    shutil.copytree(committed, tmp_path, dirs_exist_ok=True)
    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(_common, "RESULTS_DIR", tmp_path)
    if hasattr(module, "RESULTS_DIR"):
        monkeypatch.setattr(module, "RESULTS_DIR", tmp_path)
    (tmp_path / f"{name}.md").unlink()
    assert module.main(["--render"]) == 0
    rendered = (tmp_path / f"{name}.md").read_text()
    assert rendered == (committed / f"{name}.md").read_text(), (
        f"benchmarks/results/{name}.md is not what its JSON renders to: run "
        f"python -m benchmarks.{name} --render"
    )
    saved = json.loads((committed / f"{name}.json").read_text())
    assert json.loads((tmp_path / f"{name}.json").read_text()) == saved


def test_render_without_a_saved_result_says_to_run_the_benchmark(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(_common, "RESULTS_DIR", tmp_path)
    for name in TABLES:
        module = importlib.import_module(f"benchmarks.{name}")
        if hasattr(module, "RESULTS_DIR"):
            monkeypatch.setattr(module, "RESULTS_DIR", tmp_path)
        assert module.main(["--render"]) == 1
        assert "run the benchmark first" in capsys.readouterr().out


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
