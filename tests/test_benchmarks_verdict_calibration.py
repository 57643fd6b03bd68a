"""The verdict-calibration benchmark: the library's verdict on methods drawn
from one distribution, and its result rendered from the saved JSON alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import _common
from benchmarks.verdict_calibration import (
    ALPHA,
    cell,
    main,
    markdown,
    simulate,
    wilson_interval,
)

pytest.importorskip("scipy")  # compare_methods' Welch test


def test_wilson_interval_contains_the_rate_and_stays_in_0_1():
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0.0 < hi < 0.1
    lo, hi = wilson_interval(50, 50)
    assert 0.9 < lo < 1.0 and hi == 1.0
    lo, hi = wilson_interval(30, 100)
    assert lo < 0.3 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * (0.3 * 0.7 / 100) ** 0.5, rel=0.05)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_one_baseline_loses_and_wins_at_about_half_alpha():
    # A single pair is an ordinary two-sided test at alpha: each direction
    # comes out about alpha / 2 of the time (deterministic: seed 0).
    c = cell(1, 5, simulate(1, 5, 2000, np.random.default_rng(0)))
    assert c["trials"] == 2000
    for verdict in ("loses", "wins"):
        lo, hi = c["intervals"][verdict]
        assert lo <= ALPHA / 2 <= hi, (verdict, c["rates"][verdict], lo, hi)


def test_more_baselines_make_loses_likelier_and_wins_rarer():
    rng = np.random.default_rng(1)
    one = cell(1, 5, simulate(1, 5, 1000, rng))
    ten = cell(10, 5, simulate(10, 5, 1000, rng))
    assert ten["intervals"]["loses"][0] > one["intervals"]["loses"][1]
    assert ten["rates"]["wins"] < one["rates"]["wins"]


def test_quick_run_renders_its_markdown_from_the_saved_json(tmp_path):
    main(["--quick", "--results-dir", str(tmp_path)])
    path = tmp_path / "verdict_calibration_quick.json"
    payload = json.loads(path.read_text())
    assert payload["renderer"] == "benchmarks.verdict_calibration:markdown"
    assert [(c["baselines"], c["seeds"]) for c in payload["cells"]] == [
        (1, 5),
        (4, 5),
        (10, 5),
        (1, 10),
        (4, 10),
        (10, 10),
    ]
    md = (tmp_path / "verdict_calibration_quick.md").read_text()
    assert _common.render_markdown(payload) == md
    assert "QUICK RUN" in md
    # Every number shown comes from the JSON: change a count, the table moves.
    payload["cells"][0]["rates"]["loses"] = 0.5
    title, table, _ = markdown(payload)
    assert "50.00%" in table and title.startswith("Verdict calibration")
