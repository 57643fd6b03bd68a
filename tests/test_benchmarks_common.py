"""The benchmarks' confidence interval of a median (their paired timing ratios)."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import benchmarks._common as common
from benchmarks._common import (
    ablation_markdown,
    cpu_info,
    environment,
    holm_p_values,
    median_interval,
    per_task,
    read_result,
    render,
    rows_measured,
    training_seconds,
    verdict,
    versus_reference,
    write_ablation,
    write_result,
)


def _markdown(payload):
    """A toy result's renderer (write_result needs one)."""
    return "T", "| a |\n", ""


def test_median_interval_known_order_statistics():
    # Five values reach 1 - 2/32 with min .. max; fifteen reach 95% with the
    # 4th and 12th; a hundred with the 40th and 61st (the textbook interval).
    assert median_interval([5, 1, 3, 2, 4]) == (1.0, 5.0, 0.9375)
    lo, hi, cov = median_interval(range(15))
    assert (lo, hi) == (3.0, 11.0)
    assert cov == pytest.approx(1 - 2 * 576 / 2**15)
    lo, hi, cov = median_interval(range(100))
    assert (lo, hi) == (39.0, 60.0)
    assert 0.95 <= cov < 0.97
    assert median_interval(range(15), level=0.5)[:2] == (5.0, 9.0)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60))
def test_median_interval_brackets_the_sample_median(values):
    lo, hi, cov = median_interval(values)
    assert lo <= float(np.median(values)) <= hi
    assert 0.0 <= cov < 1.0
    assert cov >= 0.95 or (lo, hi) == (min(values), max(values))


def test_median_interval_covers_at_its_stated_rate():
    rng = np.random.default_rng(0)
    true_median = math.log(2.0)  # exponential(1), skewed like timings
    for n in (5, 15):
        hits = []
        for _ in range(4000):
            lo, hi, cov = median_interval(rng.exponential(size=n))
            hits.append(lo <= true_median <= hi)
        # Binomial standard error of 4000 trials is ~0.004.
        assert np.mean(hits) == pytest.approx(cov, abs=0.015)


def test_median_interval_refuses_empty_and_non_finite():
    with pytest.raises(ValueError, match="finite"):
        median_interval([])
    with pytest.raises(ValueError, match="finite"):
        median_interval([1.0, float("nan")])


def test_verdict_against_an_upper_bound():
    assert verdict(2.5, 9.0, 2.0) == "missed"
    assert verdict(-1.0, 2.0, 2.0) == "met"  # at the bound counts as met
    assert verdict(-1.0, 2.1, 2.0) == "unresolved"
    assert verdict(2.0, 2.0, 2.0) == "met"
    with pytest.raises(ValueError, match="lo <= hi"):
        verdict(3.0, 1.0, 2.0)
    # NaN compared False everywhere: "met" or "unresolved" for no interval.
    for bad in ((float("nan"), 1.0, 2.0), (0.0, float("nan"), 2.0)):
        with pytest.raises(ValueError, match="needs numbers"):
            verdict(*bad)


def test_cpu_info_reads_model_and_vector_extensions(tmp_path):
    text = (
        "processor\t: 0\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu sse4_2 avx avx2 fma avx512f pdpe1gb\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n"
    )
    assert cpu_info(text) == {
        "cpu_model": "AMD EPYC",
        "cpu_isa": ["avx", "avx2", "avx512f", "fma", "sse4_2"],
    }
    assert cpu_info("") == {"cpu_model": None, "cpu_isa": []}
    env = environment()
    assert {"cpu_model", "cpu_isa"} <= env.keys()
    # The Markdown footer names the CPU, so tables from two hosts can be told apart.
    write_result("t", {"x": 1}, render=_markdown, results_dir=tmp_path)
    footer = (tmp_path / "t.md").read_text().splitlines()[-1]
    if env["cpu_model"]:
        assert env["cpu_model"] in footer and "AVX-512" in footer


def test_significant_is_below_alpha_and_false_without_a_test():
    from benchmarks._common import ALPHA, significant

    assert significant(0.0) and significant(ALPHA / 2)
    assert not significant(ALPHA) and not significant(0.5) and not significant(None)


def test_training_seconds_reads_the_cached_records(tmp_path):
    """A cached run keeps the seconds it took when trained, so a table re-run
    from the cache reports the same training time."""
    from types import SimpleNamespace

    from optax_lode.demo._cache import load_run, save_run

    def result(run_s, compile_s):
        ticks = np.ones(3, np.float32)
        return SimpleNamespace(
            loss=ticks,
            metric=ticks,
            lr=ticks,
            mask=np.ones(3, bool),
            test_metric=0.5,
            run_seconds=run_s,
            compile_seconds=compile_s,
        )

    save_run(tmp_path / "a.npz", result(1.5, 0.25))
    save_run(tmp_path / "b.npz", result(2.0, 0.5))
    records = [load_run(tmp_path / f"{k}.npz") for k in "ab"]
    assert training_seconds(records) == pytest.approx(4.25)
    assert training_seconds([{"run_seconds": 1.0}]) == 1.0  # no compile time kept
    assert training_seconds([]) == 0.0


def test_read_result_returns_what_write_result_wrote(tmp_path):
    assert read_result("absent", results_dir=tmp_path) is None
    write_result("r", {"x": [1, 2]}, render=_markdown, results_dir=tmp_path)
    data = read_result("r", results_dir=tmp_path)
    assert data["x"] == [1, 2] and data["name"] == "r" and "environment" in data


def test_rows_measured_names_each_tasks_date_cpu_and_model():
    xeon = {"date": "2026-12-04T21:29:20", "cpu_model": "Xeon", "cpu_isa": ["avx512f"]}
    amd = {"date": "2026-12-05T07:08:05", "cpu_model": "AMD EPYC", "cpu_isa": ["avx2"]}
    tasks = {
        "a": {"environment": xeon, "model_key": "k1"},
        "b": {"environment": amd, "model_key": "k2"},
        "c": {},
    }
    assert rows_measured(tasks) == (
        "Rows measured: a: 2026-12-04, Xeon (with AVX-512); b: 2026-12-05, "
        "AMD EPYC (no AVX-512); c: by an earlier version (date, CPU, model not kept)."
    )
    assert "b: 2026-12-05, AMD EPYC (no AVX-512), model k2;" in rows_measured(
        tasks, model_key=True
    )


def test_per_task_reads_both_result_formats():
    env = {"date": "2026-12-04"}
    old = {"name": "t3", "headline": "h", "environment": env, "task": "a",
           "seeds": [0], "settings": {"x": {"p_value": None}}}  # fmt: skip
    assert per_task(old) == {
        "a": {"environment": env, "seeds": [0], "settings": {"x": {"p_value": None}}}
    }
    new = {"tasks": {"a": {"seeds": [0]}, "b": {"seeds": [1]}}}
    assert per_task(new) == new["tasks"] and per_task(new) is not new["tasks"]
    assert per_task(None) == {} and per_task({"headline": "h"}) == {}


def test_an_ablations_rows_are_one_family_of_tests_against_its_reference():
    """Holm's correction runs over the rows tested (not the reference), and
    each row's cell shows the raw and the adjusted p-value."""
    from optax_lode.evaluation import welch_test

    ref = [0.60, 0.61, 0.62, 0.63]
    rows = {"ref": ref, "a": [0.64, 0.65, 0.66, 0.67], "b": [0.60, 0.62, 0.61, 0.64]}
    entries = {
        k: {
            "test_metrics": v,
            "p_value": None if k == "ref" else welch_test(v, ref).p_value,
        }
        for k, v in rows.items()
    }
    adjusted = holm_p_values(entries)
    assert set(adjusted) == {"a", "b"}
    pa, pb = entries["a"]["p_value"], entries["b"]["p_value"]
    assert pa < 0.05 and adjusted["a"] == pytest.approx(2 * pa)  # the smaller of two
    assert adjusted["b"] == pytest.approx(max(2 * pa, pb))
    table = {
        label: (cell, adj) for label, _, _, cell, adj in versus_reference("t", entries)
    }
    assert table["ref"] == (None, None)
    assert table["a"][0].endswith(f"p = {pa:.2g} (Holm {2 * pa:.2g})")
    assert table["a"][1] == adjusted["a"]
    # Welch's test drops diverged seeds: the row says how many.
    nan = float("nan")
    entries["b"]["test_metrics"] = [0.60, 0.62, nan, nan]
    stats = {label: s for label, _, s, _, _ in versus_reference("t", entries)}
    assert stats["b"].endswith("(+2 diverged)") and "diverged" not in stats["a"]


def t3_markdown(payload):
    """A toy ablation's renderer (at module level, where the JSON finds it)."""
    return ablation_markdown(
        payload, table=lambda task, entry: f"| {task} |\n", title="T", notes="N."
    )


def test_render_rewrites_a_result_from_its_json_keeping_its_environment(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert render("t3") == 1  # nothing saved yet
    measured = {**environment(), "date": "2026-12-01T10:00:00+00:00"}
    tasks = {"a": {"seeds": [0, 1], "settings": {"ref": {"p_value": None}}}}
    write_ablation(
        "t3", tasks, "settings", headline="h", verdicts=("some", "none"),
        render=t3_markdown, env=measured,
    )  # fmt: skip
    md = (tmp_path / "t3.md").read_text()
    (tmp_path / "t3.md").write_text("stale")
    assert render("t3") == 0
    assert (tmp_path / "t3.md").read_text() == md
    assert "| a |" in md and "2026-12-01T10:00:00+00:00; the others earlier" in md
    assert read_result("t3", results_dir=tmp_path)["environment"] == measured
    assert "Holm-adjusted over the task's rows" in md and "Seeds: a [0, 1]." in md
    # A result written without a renderer cannot be rendered again.
    (tmp_path / "old.json").write_text('{"name": "old", "x": 1}')
    assert render("old") == 1


def test_renderer_name_of_a_script_run_as_main_is_its_module(monkeypatch):
    import sys
    from types import SimpleNamespace

    def markdown(payload):
        return "", "", ""

    assert common.renderer_name(t3_markdown) == f"{__name__}:t3_markdown"
    assert common.load_renderer(f"{__name__}:t3_markdown") is t3_markdown
    markdown.__module__ = "__main__"  # python -m benchmarks.demo
    spec = SimpleNamespace(name="benchmarks.demo")
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", spec, raising=False)
    assert common.renderer_name(markdown).startswith("benchmarks.demo:")
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    with pytest.raises(ValueError, match="run by path"):
        common.renderer_name(markdown)


def test_model_digest_mismatches_names_each_result_made_with_another_model():
    same, other = "a" * 64, "b" * 64
    ref = {"p_value": None, "model_digest": same}
    results = {
        "table1_schedule_quality": {"t": {"model_digest": same}, "u": {}},
        "tableA1_reconstruction": {"t": {"model_digest": other}},
        "table2_sharpness": {
            "t": {"methods": {"LODE": {"setting": {"model_digest": same}}}}
        },
        "table3_ablations": {
            "t": {"model_digest": other},
            "u": {"model_digest": other},
        },
        "table4_data_ablation": {
            "t": {
                "variants": {"ref": ref, "x": {"p_value": 0.5, "model_digest": other}}
            }
        },
        "fit_budget": {
            "t": {
                "fits": {
                    "3000": {
                        "p_value": None,
                        "models": [
                            {"fit_seed": 1, "model_digest": same},
                            {"fit_seed": 0, "model_digest": other},
                        ],
                    }
                }
            }
        },
    }
    # Table 4's other subsets and the fit budget's other seeds are other
    # models by design; a task Table 1 has no digest for ("u") is not judged.
    assert common.model_digest_mismatches(results) == [
        f"tableA1_reconstruction t: model {other[:12]}, Table 1's {same[:12]}",
        f"table3_ablations t: model {other[:12]}, Table 1's {same[:12]}",
        f"fit_budget t: model {other[:12]}, Table 1's {same[:12]}",
    ]


def test_p_values_next_to_alpha_show_which_side_they_fall_on():
    from benchmarks._common import format_p

    # .3g alone read 0.04996 and 0.05004 as "0.05".
    assert [format_p(p) for p in (0.04996, 0.05004)] == ["0.04996", "0.05004"]
    assert float(format_p(0.049999999999)) < 0.05  # as many digits as it takes
    assert [format_p(p) for p in (0.0498, 0.05009, 0.05, 0.0056, 0.36)] == [
        "0.0498",
        "0.0501",
        "0.05",
        "0.0056",
        "0.36",
    ]


def test_busy_cpu_seconds_counts_busy_and_stolen_ticks_not_idle(monkeypatch):
    monkeypatch.setattr(common.os, "sysconf", lambda name: 100)
    # user nice system idle iowait irq softirq steal guest guest_nice
    line = "cpu  100 20 50 9000 300 5 5 20 0 0"
    assert common._busy_cpu_seconds(line) == pytest.approx(2.0)
    assert common._busy_cpu_seconds("intr 1 2 3") is None
    assert common._busy_cpu_seconds("cpu 1 2") is None  # truncated


def test_other_load_is_the_machines_busy_time_beyond_this_process(monkeypatch):
    busy = iter([10.0, 13.0])
    clock = iter([0.0, 2.0, 3.0, 4.0])
    own = iter([1.0, 2.0, 2.0, 2.0])
    monkeypatch.setattr(common, "_busy_cpu_seconds", lambda: next(busy))
    fake_time = types.SimpleNamespace(
        perf_counter=lambda: next(clock), process_time=lambda: next(own)
    )
    monkeypatch.setattr(common, "time", fake_time)  # not pytest's own clock
    meter = common.OtherLoad()
    meter.start()
    # 3 busy CPU seconds in 2 s, 1 of them this process's: 1 core's worth.
    assert meter.stop() == pytest.approx(1.0)
    monkeypatch.setattr(common, "_busy_cpu_seconds", lambda: None)
    meter.start()
    assert meter.stop() is None
    note = common.other_load_note([0.0, 0.05, 0.6, None], cpus=2)
    assert "median of 0.05 and at most 0.60" in note
    assert "3 timed repetitions" in note and "1 of them above 0.1 core" in note
    assert "1 more was not measured (under 0.2 s" in note
    assert "not measured" in common.other_load_note([None], cpus=2)
    # Too short for /proc/stat's 10 ms ticks (0.1 s: +-0.2 core): no reading.
    busy = iter([10.0, 10.2])
    monkeypatch.setattr(common, "_busy_cpu_seconds", lambda: next(busy))
    clock, own = iter([0.0, 0.1]), iter([0.0, 0.0])
    meter.start()
    assert meter.stop() is None
    # What a reading covers, where it is not one repetition.
    note = common.other_load_note([0.0, 0.3], "series of 50 timed calls", cpus=2)
    assert "the 2 series of 50 timed calls (/proc/stat" in note
    assert "more were not measured" not in note


def test_median_time_reads_other_load_per_call_only_when_asked(monkeypatch):
    readings = iter([0.1, 0.2, 0.3])

    class Meter:
        def start(self):
            pass

        def stop(self):
            return next(readings)

    monkeypatch.setattr(common, "OtherLoad", Meter)
    calls, others = [], []
    common.median_time(lambda: calls.append(1), repeats=3, others=others)
    assert len(calls) == 3 and others == [0.1, 0.2, 0.3]
    # Without a list, no reading: the exhausted meter would raise.
    common.median_time(lambda: None, repeats=2)


def test_paired_overhead_is_the_median_of_per_repetition_ratios():
    # Repetition 3 ran on a busy machine: both of its times are slow. Paired,
    # it is one ratio among others; unpaired, its slow cosine time would be
    # set against fast LODE times.
    lode = [1.10, 1.10, 3.30, 1.10, 1.10]
    cosine = [1.00, 1.00, 3.00, 1.00, 1.00]
    out = common.paired_overhead(lode, cosine, target=2.0)
    assert out["pct"] == pytest.approx(10.0)
    assert out["per_repetition"] == pytest.approx([10.0] * 5)
    assert out["interval"] == pytest.approx([10.0, 10.0])
    assert out["verdict"] == "missed"
    # The direction: num over den.
    assert common.paired_overhead(cosine, lode)["pct"] == pytest.approx(-100 / 11)
    # A zero or non-finite time is said, not divided by.
    for num, den in (([1.0, 1.0], [1.0, 0.0]), ([1.0, float("nan")], [1.0, 1.0])):
        with pytest.raises(ValueError, match="must be finite"):
            common.paired_overhead(num, den)
    # The verdict reads the CI, not the point estimate: a median below the
    # target with a CI reaching past it is unresolved.
    out = common.paired_overhead([1.0, 1.01, 1.015, 1.02, 1.05], [1.0] * 5, 2.0)
    assert out["pct"] == pytest.approx(1.5) and out["verdict"] == "unresolved"
    assert "verdict" not in common.paired_overhead(lode, cosine)
    with pytest.raises(ValueError, match="equal lengths"):
        common.paired_overhead([1.0, 2.0], [1.0])


def test_rotated_starts_each_repetition_at_the_next_variant():
    names = ["a", "b", "c"]
    assert [common.rotated(names, i) for i in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    pair = (("cosine", 1), ("lode", 2))  # two variants: they alternate
    assert common.rotated(pair, 1) == [("lode", 2), ("cosine", 1)]


def test_the_footer_says_when_rows_were_measured_by_other_invocations(tmp_path):
    """A result keeps each task's rows across invocations: the footer names
    the latest one's machine, and says so when some rows are not its own."""
    env = environment()
    other = {**env, "date": "2026-12-01T10:00:00+00:00", "cpu_isa": ["avx2"]}
    for tasks, mixed in (
        ({"a": {"environment": env}, "b": {"environment": env}}, False),
        ({"a": {"environment": env}, "b": {"environment": other}}, True),
        ({"a": {"environment": env}, "b": {}}, True),  # kept from an old version
    ):
        write_result("r", {"tasks": tasks}, render=_markdown, results_dir=tmp_path)
        md = (tmp_path / "r.md").read_text()
        footer = [line for line in md.splitlines() if line.startswith("_")]
        assert len(footer) == 1 and env["date"] in footer[0]
        assert footer[0].startswith(
            "_Latest rows measured on" if mixed else "_Measured on"
        )


def test_the_footer_reads_an_environment_whose_cpu_was_not_read(tmp_path):
    env = {**environment(), "cpu_model": None, "cpu_isa": None}  # no /proc/cpuinfo
    tasks = {"a": {"environment": env}, "b": {"environment": env}}
    write_result("r", {"tasks": tasks}, render=_markdown, results_dir=tmp_path, env=env)
    assert "_Measured on" in (tmp_path / "r.md").read_text()
