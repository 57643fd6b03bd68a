"""Table 1's per-task timings: a stage read from the cache keeps the seconds it
took when it was computed, and says so when only a cache read was timed."""

from __future__ import annotations

from benchmarks.table1_schedule_quality import STAGES, merge_timings


def _summary(seconds, cached):
    return {
        "timings": {s: seconds for s in STAGES} | {"total": 99.0, "report": 5.0},
        "cached": {s: cached for s in STAGES if s != "setup"},
    }


def test_a_fresh_run_is_timed_as_computed():
    times, cached = merge_timings(_summary(10.0, False), None)
    assert times == {s: 10.0 for s in STAGES} | {"total": 10.0 * len(STAGES)}
    assert not any(cached.values())


def test_a_cached_rerun_keeps_the_computed_seconds():
    first = merge_timings(_summary(10.0, False), None)
    old = {"timings": first[0], "timings_cached": first[1]}
    times, cached = merge_timings(_summary(0.01, True), old)
    # Setup (loading the task) runs every time, so it is timed every time.
    assert {s: times[s] for s in STAGES[1:]} == {s: 10.0 for s in STAGES[1:]}
    assert times["setup"] == 0.01 and not any(cached.values())
    # A stage computed again is timed again; the others stay.
    again = _summary(0.01, True)
    again["timings"]["lode"], again["cached"]["lode"] = 42.0, False
    times, cached = merge_timings(again, old)
    assert times["lode"] == 42.0 and times["sweep"] == 10.0
    assert times["total"] == 42.0 + 0.01 + 10.0 * (len(STAGES) - 2)
    assert not any(cached.values())


def test_cache_reads_without_a_computed_record_are_flagged():
    # A record that never said which timings were cache reads is not trusted.
    old = {"timings": {s: 10.0 for s in STAGES}, "timings_cached": None}
    times, cached = merge_timings(_summary(0.01, True), old)
    assert times["sweep"] == 0.01 and cached["sweep"] and cached["total"]
    assert times["setup"] == 0.01 and not cached["setup"]  # setup is never cached


def test_the_notes_give_each_tasks_clock():
    from benchmarks.table1_schedule_quality import _clock_note

    def task(name, tpe, epochs=None):
        config = {"task": name, "task_kwargs": [], "epochs": epochs}
        return {"config": config | {"ticks_per_epoch": tpe}}

    data = {
        "nqm": task("nqm", 2, epochs=3),
        "text-transformer": task("text-transformer", 29),
    }
    note = _clock_note(data)
    # nqm: 3 epochs x 2 ticks of 25 steps; text: 3 epochs x 29 ticks of 3 steps.
    assert "nqm 6 x 25, text-transformer 87 x 3." in note


def test_only_the_tasks_run_now_are_read_anew_and_stamped(tmp_path, monkeypatch):
    import json

    import benchmarks.table1_schedule_quality as t1

    then = {"date": "2026-01-01", "cpu_model": "old cpu"}
    committed = {
        task: {
            "methods": {"LODE": {"test_metrics": [0.5]}},
            "timings": {},
            "timings_cached": {},
            "environment": then,
        }
        for task in ("digits-mlp", "mnist1d-mlp")
    }
    monkeypatch.setattr(t1, "_committed", lambda: json.loads(json.dumps(committed)))
    monkeypatch.setattr(t1, "CACHE", tmp_path)
    for task in ("digits-mlp", "mnist1d-mlp"):
        # Both tasks' demo summaries are in the cache, with computed stages.
        (tmp_path / task).mkdir()
        summary = _summary(10.0, False) | {"methods": {"LODE": {"test_metrics": [1]}}}
        (tmp_path / task / "summary.json").write_text(json.dumps(summary))
    now = {"date": "2026-12-06", "cpu_model": "new cpu"}
    out = t1._summaries({"mnist1d-mlp": now})
    # The task not run now keeps its record, date and machine.
    assert out["digits-mlp"] == committed["digits-mlp"]
    assert out["mnist1d-mlp"]["environment"] == now
    assert out["mnist1d-mlp"]["methods"]["LODE"]["test_metrics"] == [1]
    # A task run now whose every stage was a cache read keeps its old stamp.
    cached = _summary(0.01, True) | {"methods": {"LODE": {"test_metrics": [1]}}}
    (tmp_path / "mnist1d-mlp" / "summary.json").write_text(json.dumps(cached))
    assert t1._summaries({"mnist1d-mlp": now})["mnist1d-mlp"]["environment"] == then
