"""Shared checks of the demo's outputs (report, figures, summary)."""

from __future__ import annotations

import json
import re

import numpy as np

from optax_lode.decision import DECISION_REVISION

PNGS = (
    "lr_schedules.png",
    "reconstruction.png",
    "reconstruction_errors.png",
    "decision_fan.png",
    "metric_vs_time.png",
    "metric_vs_epoch.png",
)


def check_outputs(out, seeds):
    report = (out / "report.md").read_text()
    for png in PNGS:
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
        assert f"]({png})" in report, png
    # A Table-1 row per method with a real mean ± std, and the Welch verdict.
    rows = re.findall(r"^\| (\S+) \| \**(-?\d+\.\d+) ± (\d+\.\d+)\** \| (\d+) \|$",
                      report, flags=re.M)  # fmt: skip
    methods = {r[0] for r in rows}
    assert {"LODE", "constant", "cosine"} <= methods, report
    assert all(int(r[3]) == seeds for r in rows)
    assert re.search(r"Welch p = [0-9.e-]+ → \*\*LODE (wins|loses|ties)\*\*", report)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decision_revision"] == DECISION_REVISION
    for m in summary["methods"].values():
        assert len(m["test_metrics"]) == seeds
        assert np.all(np.isfinite(m["test_metrics"]))
    recon = summary["reconstruction"]["0.05"]
    assert np.isfinite(recon["loss"]) and recon["loss"] > 0
    return summary
