"""The benchmarks page's discussion of the ablations follows their results."""

from __future__ import annotations

import json

import benchmarks.render_docs as render_docs


def _write(path, name, key, p_values):
    entries = {label: {"p_value": p} for label, p in p_values.items()}
    data = {"task": "mnist1d-mlp", "seeds": list(range(7)), key: entries}
    (path / f"{name}.json").write_text(json.dumps(data))


def test_ablation_bullet_is_generated_from_the_p_values(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not been run" in render_docs.ablations()
    _write(tmp_path, "table3_ablations", "settings", {"default": None, "n=10": 0.4})
    _write(tmp_path, "table4_data_ablation", "variants", {"ref": None, "1 seed": 0.3})
    text = " ".join(render_docs.ablations().split())
    assert "are not the lever" in text and "`mnist1d-mlp` (7 seeds each)" in text
    assert "ties with the one fitted to all of it" in text
    # A significant setting (p = 0 too) turns the claim around.
    _write(tmp_path, "table3_ablations", "settings", {"default": None, "n=10": 0.0})
    _write(tmp_path, "table4_data_ablation", "variants", {"ref": None, "1 seed": 0.01})
    text = " ".join(render_docs.ablations().split())
    assert "not the lever" not in text and "Some scheduler settings matter" in text
    assert "default: n=10." in text and "all of it: 1 seed." in text
    # A result written before p-values were recorded claims nothing.
    (tmp_path / "table3_ablations.json").write_text(
        json.dumps({"task": "t", "seeds": [0], "settings": {"a": {}}})
    )
    assert "not been run" in render_docs.ablations()
