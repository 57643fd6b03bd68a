"""Table 2's bookkeeping: which saved rows it reuses, and its check that its
rows are the same runs as Table 1's."""

from __future__ import annotations

import json

from benchmarks.table2_sharpness import row_is_stale, table1_agreement, task_table
from optax_lode.evaluation import welch_test


def _task(cosine_metrics):
    return {
        "seeds": [1, 2],
        "methods": {
            "LODE": {"test_metrics": [0.5, 0.6]},
            "cosine": {"test_metrics": cosine_metrics},
        },
    }


def test_table2_states_whether_its_runs_are_table1s():
    t1 = {
        "tasks": {
            "a": _task([0.7, 0.8]),
            "b": {"seeds": [1, 2, 3], "methods": {}},
        }
    }
    same = _task([0.7, 0.8])
    line = table1_agreement({"a": same}, t1)
    assert "a: every row's test metrics equal Table 1's" in line
    line = table1_agreement({"a": _task([0.7, 0.81])}, t1)
    assert "the test metrics of cosine differ" in line and "LODE" not in line
    # Other seeds than Table 1's: nothing to compare, no claim.
    assert table1_agreement({"b": same}, t1) == ""
    assert table1_agreement({"a": same}, None) == ""


def test_table2_reuses_a_row_only_for_the_same_seeds_and_setting():
    setting = {"model": "abc", "decision_revision": 5, "lr_bounds": (1e-4, 1e-1)}
    row = {
        "seeds": [1, 2],
        "setting": json.loads(json.dumps(setting)),
        "eigenvalues": [3.0, -1.0],
        "converged": [True, False],
        "largest": True,
    }
    assert not row_is_stale(row, [1, 2], setting)  # as read back from JSON
    # Before the shifted second pass: only a negative or unconverged estimate
    # (the one of largest magnitude, or none) is measured again.
    unshifted = {k: v for k, v in row.items() if k != "largest"}
    assert row_is_stale(unshifted, [1, 2], setting)
    for eigenvalues, converged in (
        ([3.0, -1.0], [True, True]),
        ([3.0, 1.0], [True, False]),
    ):
        case = {**unshifted, "eigenvalues": eigenvalues, "converged": converged}
        assert row_is_stale(case, [1, 2], setting)
    positive = {**unshifted, "eigenvalues": [3.0, 1.0], "converged": [True, True]}
    assert not row_is_stale(positive, [1, 2], setting)
    # Measured before the residual test (no `converged`): measured again.
    before = {k: v for k, v in row.items() if k != "converged"}
    assert row_is_stale(before, [1, 2], setting)
    assert row_is_stale(row, [1, 2, 3], setting)
    assert row_is_stale(row, [1, 2], {**setting, "model": "def"})
    assert row_is_stale({}, [1, 2], setting)  # a row from before the keys
    # Not Table 1's runs (the same setting, another CPU's sweep and fit).
    row["test_metrics"] = [0.5, 0.6]
    assert not row_is_stale(row, [1, 2], setting, [0.5, 0.6])
    assert row_is_stale(row, [1, 2], setting, [0.5, 0.61])
    assert row_is_stale(row, [1, 2], setting, [0.5])
    # The committed rows before this key recorded only the rate: re-trained.
    old_row = {"seeds": [1, 2], "learning_rate": 0.01}
    assert row_is_stale(old_row, [1, 2], {"learning_rate": 0.01})


def test_table2_judges_skewed_sharpness_by_medians_and_ranks():
    """One LODE seed far out inflates the mean and its spread: Welch's test
    of the means finds nothing, while every other LODE seed is sharper than
    every baseline seed. The headline counts medians and the Holm-adjusted
    rank tests; an unknown column would be a broken table."""
    lode = [20.0 + i for i in range(9)] + [10_000.0]
    results = {
        "LODE": {"eigenvalues": lode, "test_metrics": [0.5] * 10},
        "flat": {"eigenvalues": [1.0 + i / 10 for i in range(10)]},
        "same": {"eigenvalues": [19.5 + i for i in range(10)]},
        "sharp": {"eigenvalues": [100.0 + i for i in range(10)]},
    }
    for name in ("flat", "same", "sharp"):
        results[name]["test_metrics"] = [0.6] * 10
    table, head = task_table("t", results)
    assert welch_test(lode, results["flat"]["eigenvalues"]).p_value > 0.05
    assert head == (
        "t: LODE's final λ_max (median over 10 seeds) is lower than 1 of 3 "
        "baselines'; by ranks significantly flatter than 1, sharper than 1"
    )
    flat = next(line for line in table.splitlines() if line.startswith("| flat |"))
    cells = [c.strip() for c in flat.strip("|").split("|")]
    assert cells[1] == "1.450" and cells[4].startswith("0%, p = ")
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert len(header.split("|")) == len(flat.split("|"))
