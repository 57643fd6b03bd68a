"""The overhead benchmarks' summary lines and statistics, on made-up
measurements."""

import pytest

from benchmarks.overhead import headline


def _amortised(mode, spt, width, pct, lo, hi):
    return {
        "mode": mode,
        "steps_per_tick": spt,
        "width": width,
        "overhead_pct_paired": pct,
        "overhead_pct_paired_interval": [lo, hi],
    }


def test_headline_states_each_verdict_of_the_small_model():
    amort = [
        _amortised("scan", 10, 100, 4.0, 3.0, 5.0),
        _amortised("scan", 50, 100, 1.0, 0.5, 1.5),
        _amortised("loop", 10, 100, 2.5, 1.0, 4.0),
        _amortised("scan", 10, 370, 9.0, 8.0, 10.0),  # the 10x model: not in it
    ]
    bds = [
        {
            "width": 100,
            "overhead_per_step_pct_paired": 0.8,
            "overhead_per_step_pct_paired_interval": [0.3, 1.3],
        }
    ]
    line = headline(amort, bds, {"decision_ms": 3.04})
    assert line.startswith("one decision 3.0 ms at n=30, T=600 (met against 5 ms)")
    assert "+0.8% per step between decisions (CI 0.3 .. 1.3)" in line
    assert "(scan, 10 steps/tick; CI 3.0 .. 5.0: missed against 2%)" in line
    assert "(scan, 50 steps/tick; CI 0.5 .. 1.5: met against 2%)" in line
    assert "(loop, 10 steps/tick; CI 1.0 .. 4.0: unresolved against 2%)" in line
    assert "+9.0%" not in line


def test_headline_decision_over_budget_and_no_latency_row():
    assert "missed against 5 ms" in headline([], [], {"decision_ms": 5.2})
    assert headline([], [], None) == ""


def test_options_headline_gives_each_option_its_verdict():
    from benchmarks.overhead_options import headline as options_headline

    line = options_headline(
        [
            {"option": "defaults", "lode_pct": 7.46, "verdict": "missed"},
            {"option": "n=1", "lode_pct": 1.62, "verdict": "met"},
        ]
    )
    assert line.startswith("whole runs vs cosine: ")
    assert "defaults +7.5% (missed); n=1 +1.6% (met)" in line
    assert options_headline([]) == ""


def test_interval_coverage_is_said_per_repetition_count():
    from benchmarks.overhead import _coverage

    def row(cov, repeats):
        return {"overhead_pct_paired_interval_coverage": cov, "repeats": repeats}

    assert _coverage([row(0.9567, 25), row(0.9567, 25)]) == "96%"
    # 25 repetitions give 95.7%, 5 and 15 give 93.8% and 96.5%: "96%" twice
    # would not say which row has 94%.
    rows = [row(0.9567, 25), row(0.9375, 5), row(0.9648, 15)]
    assert _coverage(rows) == "94% at 5 reps; 96% at 15/25 reps"


def test_hidden_is_the_share_of_the_works_time_saved_beside_the_step():
    from benchmarks.decision_overlap import hidden_pct

    # A step of 10 s and a work of 4 s, per repetition: the two together in
    # 10 s hide all of the work, in 14 s none, in 12 s half; 15 s cost more
    # than running them one after the other, 9 s ran the step faster.
    hidden = hidden_pct([10.0] * 5, [4.0] * 5, [10.0, 14.0, 12.0, 15.0, 9.0])
    assert hidden.tolist() == pytest.approx([100.0, 0.0, 50.0, -25.0, 125.0])
    # Paired: each repetition's own times (a slow second repetition is 50%
    # too, not read against the first's).
    assert hidden_pct([10, 20], [4, 8], [12, 24]).tolist() == pytest.approx(
        [50.0, 50.0]
    )


def test_vmapped_ratios_are_medians_of_each_repetitions_ratio():
    from benchmarks.vmapped_runs import ratios

    # Two repetitions; the second is twice as slow for every program (a busy
    # machine), which a paired ratio ignores. The third makes the median one.
    times = {
        "cosine, 2 runs vmapped": [2.0, 4.0, 2.0],
        "lode, axis_name, 2 runs vmapped": [3.0, 6.0, 4.0],
        "lode, no axis_name, 2 runs vmapped": [10.0, 20.0, 12.0],
        "lode, axis_name, 2 runs vmapped, out of step": [5.0, 10.0, 6.0],
        "cosine, 2 runs one by one": [4.0, 8.0, 2.0],
        "lode, 2 runs one by one": [12.0, 24.0, 8.0],
    }
    r = ratios(times, 2)
    assert r["ratio_axis_name_vs_cosine"] == pytest.approx(1.5)  # 1.5, 1.5, 2
    assert r["ratio_select_vs_cosine"] == pytest.approx(5.0)  # 5, 5, 6
    assert r["ratio_out_of_step_vs_cosine"] == pytest.approx(2.5)  # 2.5, 2.5, 3
    # The vmapped axis_name runs over the LODE runs one by one, and the
    # vmapped cosine runs over the cosine runs one by one.
    assert r["ratio_vs_one_by_one"] == pytest.approx(0.25)  # .25, .25, .5
    assert r["cosine_ratio_vs_one_by_one"] == pytest.approx(0.5)  # .5, .5, 1
    assert r["vs_cosine"]["cosine, 2 runs one by one"] == pytest.approx(2.0)
    assert r["vs_one_by_one"]["lode, 2 runs one by one"] == pytest.approx(1.0)
    assert r["vs_one_by_one"]["cosine, 2 runs vmapped"] == pytest.approx(1 / 6)
    # Unpaired, the ratio of the medians would be 4 / 2 = 2.0, not 1.5.
    medians = {k: sorted(v)[1] for k, v in times.items()}
    assert medians["lode, axis_name, 2 runs vmapped"] / medians[
        "cosine, 2 runs vmapped"
    ] == pytest.approx(2.0)
