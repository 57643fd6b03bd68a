"""The demo pipeline in-process on the NQM, smallest settings: every stage runs,
the report and figures hold real numbers, and a re-run is served by the cache."""

from __future__ import annotations

import time

import pytest
from _demo_helpers import check_outputs

from optax_lode.demo import fast_config, run_demo


@pytest.mark.slow
def test_demo_pipeline_end_to_end_and_cached_rerun(tmp_path):
    cfg = fast_config("nqm", fit_steps=40, epochs=4)
    result = run_demo(cfg, tmp_path, progress=False, log=None)
    check_outputs(tmp_path, seeds=2)
    assert set(result.methods) == {"LODE", "constant", "cosine"}
    assert not any(result.cached.values())
    lode = result.methods["LODE"]
    assert lode.stack("lr").shape == (2, 4 * cfg.ticks_per_epoch)
    assert all(r["decisions"] >= 1 for r in lode.runs)
    t0 = time.perf_counter()
    again = run_demo(cfg, tmp_path, progress=False, log=None, report=False)
    assert all(again.cached.values()), again.cached
    assert time.perf_counter() - t0 < 60
    for name, m in result.methods.items():
        assert (m.test_metrics == again.methods[name].test_metrics).all()
