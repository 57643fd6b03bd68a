"""The fit-budget benchmark's bookkeeping, on made-up fits: budgets are
compared by their models' mean accuracies, not by pooled runs."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.fit_budget import (
    budget_entry,
    fit_facts,
    model_entry,
    models_differ_p,
    spread,
    task_table,
)
from optax_lode.evaluation import welch_test


def _summary(steps, best, mse, stopped):
    return {"steps": steps, "best_step": best, "held_out_mse": mse,
            "stopped_early": stopped, "seconds": 12.5, "seed": 0}  # fmt: skip


def _models(means, spread_=0.01):
    return [
        model_entry(
            i, _summary(3000, 2000, 0.2, i % 2 == 0), [m - spread_, m + spread_]
        )
        for i, m in enumerate(means)
    ]


def test_fit_facts_reads_what_the_fit_did():
    facts = fit_facts(_summary(2460, 1860, 0.2039, True))
    assert facts == {
        "fit_steps_taken": 2460,
        "best_step": 1860,
        "held_out_mse": pytest.approx(0.2039),
        "stopped_early": True,
        "fit_seconds": 12.5,
    }


def test_a_budget_is_compared_by_its_models_means():
    ref = budget_entry(3000, _models([0.90, 0.95, 0.97]), None)
    assert ref["p_value"] is None
    assert ref["test_metrics"] == pytest.approx([0.90, 0.95, 0.97])
    other = budget_entry(
        300, _models([0.96, 0.97, 0.98], spread_=0.001), ref["test_metrics"]
    )
    expected = welch_test([0.96, 0.97, 0.98], [0.90, 0.95, 0.97]).p_value
    assert other["p_value"] == pytest.approx(expected)
    # Pooling the runs would treat 6 runs of 3 models as 6 independent draws:
    # a smaller p-value for the same models.
    pooled = welch_test(
        [x for m in other["models"] for x in m["test_metrics"]],
        [x for m in ref["models"] for x in m["test_metrics"]],
    ).p_value
    assert pooled < other["p_value"]


def test_spread_separates_models_from_evaluation_seeds():
    entry = {"fits": {"ref": budget_entry(3000, _models([0.90, 0.96]), None)}}
    sp = spread(entry)
    assert sp.between == pytest.approx(100 * np.std([0.90, 0.96], ddof=1))
    assert sp.within == pytest.approx(100 * np.std([0.89, 0.91], ddof=1))
    assert sp.runs == 2
    assert sp.mean_within == pytest.approx(sp.within / np.sqrt(2))
    assert sp.p == models_differ_p(entry)
    one = {"fits": {"ref": budget_entry(3000, _models([0.9]), None)}}
    assert spread(one) is None


def test_task_table_lists_every_model_and_each_budget_against_the_reference():
    ref = budget_entry(3000, _models([0.90, 0.95, 0.97]), None)
    fits = {
        "3000 steps (reference)": ref,
        "300 steps": budget_entry(300, _models([0.5, 0.52, 0.51]), ref["test_metrics"]),
    }
    md = task_table("t", {"fits": fits})
    assert md.startswith("**t**")
    assert md.count("| 3000 steps (reference) | ") == 4  # 3 models, 1 budget
    assert "| 300 steps | 2 | 3,000 (stopped) | 2,000 | 0.2 | 12 |" in md
    assert "| 3000 steps (reference) | 3 | " in md and "(reference) |" in md
    assert "significant" in md  # 0.51 against 0.94: far apart
    assert "differ by" in md and "points" in md


def test_mse_vs_accuracy_ranks_every_model_of_the_task():
    from benchmarks.fit_budget import mse_vs_accuracy

    def fit(mse, mean):
        return model_entry(0, _summary(300, 200, mse, False), [mean, mean])

    # Lower held-out MSE, higher accuracy, across budgets: rho = -1.
    ref = budget_entry(3000, [fit(0.1, 0.9), fit(0.3, 0.7)], None)
    other = budget_entry(300, [fit(0.2, 0.8), fit(0.4, 0.6)], ref["test_metrics"])
    assert mse_vs_accuracy({"fits": {"a": ref, "b": other}}) == pytest.approx(-1.0)
    worse = budget_entry(300, [fit(0.2, 0.95), fit(0.05, 0.5)], ref["test_metrics"])
    assert mse_vs_accuracy({"fits": {"a": ref, "b": worse}}) > -1.0


def test_a_model_two_budgets_made_counts_once():
    """30,000 steps with early stopping that never stopped is the run without:
    the same model (one digest) is one point of the rank correlation."""
    from benchmarks.fit_budget import task_models

    def fit(digest):
        return model_entry(0, _summary(300, 200, 0.1, False), [0.9, 0.8], digest)

    ref = budget_entry(3000, [fit("a"), fit("b")], None)
    es = budget_entry(30000, [fit("c"), fit("d")], ref["test_metrics"])
    no_es = budget_entry(30000, [fit("c"), fit("e")], ref["test_metrics"])
    models = task_models({"fits": {"ref": ref, "es": es, "no": no_es}})
    assert [m["model_digest"] for m in models] == ["a", "b", "c", "d", "e"]


def test_models_differ_p_tests_the_models_means_against_their_runs_noise():
    from scipy import stats

    def entry(groups):
        models = [{"test_metrics": g} for g in groups]
        return {"fits": {"ref": {"models": models, "p_value": None}}}

    # Means 0.01 apart with runs 0.001 apart: far beyond the runs' noise.
    apart = [[0.90, 0.901, 0.899], [0.91, 0.911, 0.909], [0.92, 0.921, 0.919]]
    assert models_differ_p(entry(apart)) < 1e-4
    # Means 0.001 apart with runs 0.05 apart: within it.
    alike = [[0.85, 0.90, 0.95], [0.851, 0.901, 0.951], [0.852, 0.902, 0.952]]
    assert models_differ_p(entry(alike)) > 0.9
    assert models_differ_p(entry(alike)) == stats.f_oneway(*alike).pvalue
    assert models_differ_p(entry(apart[:1])) is None  # one model
    assert models_differ_p(entry([[0.9], [0.8]])) is None  # one run each
