"""The benchmarks page's discussion of the ablations follows their results."""

from __future__ import annotations

import json

import pytest

import benchmarks.render_docs as render_docs


def _write(path, name, key, p_values, *, more=None):
    """An ablation's JSON of mnist1d-mlp (7 seeds), and ``more``: other
    tasks' ``{task: p_values}`` in the multi-task format."""
    entries = lambda ps: {label: {"p_value": p} for label, p in ps.items()}  # noqa: E731
    data = {"task": "mnist1d-mlp", "seeds": list(range(7)), key: entries(p_values)}
    if more:
        tasks = {"mnist1d-mlp": {"seeds": data["seeds"], key: data[key]}}
        for task, ps in more.items():
            tasks[task] = {"seeds": list(range(10)), key: entries(ps)}
        data = {"tasks": tasks}
    (path / f"{name}.json").write_text(json.dumps(data))


def test_ablation_bullet_is_generated_from_the_p_values(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not been run" in render_docs.ablations()
    # A single-task result (as written before results kept several tasks).
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
    assert "settings: on `mnist1d-mlp` (7 seeds each): `n=10`." in text
    assert "all of it: on `mnist1d-mlp` (7 seeds each): `1 seed`." in text
    # Several tasks: each is named with what differs there, after Holm's
    # correction over the task's rows (0.03 alone would be significant).
    t3 = {"digits-mlp": {"default": None, "n=10": 0.5, "n=60": 0.001, "n=5": 0.03}}
    _write(tmp_path, "table3_ablations", "settings", {"default": None}, more=t3)
    text = " ".join(render_docs.ablations().split())
    assert (
        "settings: on `mnist1d-mlp` (7 seeds each): none; on `digits-mlp` "
        "(10 seeds each): `n=60`." in text
    )
    t3 = {"digits-mlp": {"default": None, "n=10": 0.5}}
    _write(tmp_path, "table3_ablations", "settings", {"default": None}, more=t3)
    text = " ".join(render_docs.ablations().split())
    assert "on `mnist1d-mlp`, `digits-mlp` (7/10 seeds each)" in text
    assert "NQM" not in text
    # The NQM's rows of Table 3's settings, by their Holm-adjusted p-values.
    nqm = {"n=10": {"p_holm": 0.2}, "n=60": {"p_holm": 0.01}}
    path = tmp_path / "nqm_optimality_gap.json"
    path.write_text(json.dumps({"ablations": nqm}))
    text = " ".join(render_docs.ablations().split())
    assert "1 of Table 3's 2 ensemble and horizon settings differ" in text
    assert "from the default (seed by seed, Wilcoxon's signed-rank test, " in text
    assert "Holm-adjusted): `n=60`." in text
    nqm["n=60"]["p_holm"] = 0.06
    data = {"no one-cycle": {"p_holm": 0.001}}
    path.write_text(json.dumps({"ablations": nqm, "data_variants": data}))
    text = " ".join(render_docs.ablations().split())
    assert "none of Table 3's 2 ensemble and horizon settings differs" in text
    assert (
        "1 of Table 4's 1 subsets of the sweep differ significantly from the "
        "whole sweep (seed by seed, Wilcoxon's signed-rank test, Holm-adjusted): "
        "`no one-cycle`." in text
    )
    # A result written before p-values were recorded claims nothing.
    (tmp_path / "table3_ablations.json").write_text(
        json.dumps({"task": "t", "seeds": [0], "settings": {"a": {}}})
    )
    assert "not been run" in render_docs.ablations()


def _table1(path, verdicts):
    tasks = {task: {"verdict": v} for task, v in verdicts.items()}
    (path / "table1_schedule_quality.json").write_text(json.dumps({"tasks": tasks}))


def test_table1_claim_follows_the_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not been run" in render_docs.table1_claim()
    _table1(tmp_path, {})  # no task done yet: no claim either way
    assert "not been run" in render_docs.table1_claim()
    _table1(tmp_path, {"a": "loses", "b": "ties", "c": "loses"})
    text = render_docs.table1_claim()
    assert "do **not** reproduce" in text
    assert "loses on 2 of 3 tasks (`a`, `c`), ties on 1 (`b`) and wins on none." in text
    _table1(tmp_path, {"a": "wins", "b": "ties"})
    text = render_docs.table1_claim()
    assert "do **not** reproduce" in text
    assert "ties on 1 of 2 tasks (`b`) and wins on 1 (`a`)." in text
    _table1(tmp_path, {"a": "wins", "b": "wins"})
    assert "They reproduce the paper's claim" in render_docs.table1_claim()


def test_anchor_live_claim_follows_its_p_value(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not measured" in render_docs.anchor_live_claim()

    def settings(p, mean):
        return {
            "default": {"p_value": None, "mean": 0.6},
            render_docs.ANCHOR_LIVE: {"p_value": p, "mean": mean},
        }

    def write(p, mean):
        data = {"task": "mnist1d-mlp", "seeds": [0], "settings": settings(p, mean)}
        (tmp_path / "table3_ablations.json").write_text(json.dumps(data))

    write(0.66, 0.61)
    text = render_docs.anchor_live_claim()
    assert "does not change the accuracy significantly" in text and "0.66" in text
    write(0.01, 0.63)
    text = render_docs.anchor_live_claim()
    assert "changes the accuracy significantly" in text and "+3.00 points" in text
    # Holm's correction over the task's settings: 0.02 alone, 0.06 of three.
    more = {f"n={n}": {"p_value": 0.5, "mean": 0.6} for n in (10, 60)}
    data = {"task": "t", "seeds": [0], "settings": {**settings(0.02, 0.62), **more}}
    (tmp_path / "table3_ablations.json").write_text(json.dumps(data))
    text = render_docs.anchor_live_claim()
    assert "does not change the accuracy significantly" in text
    assert "p = 0.02, Holm-adjusted 0.06" in text
    tasks = {
        "mnist1d-mlp": {"seeds": [0], "settings": settings(0.66, 0.61)},
        "digits-mlp": {"seeds": [0], "settings": settings(0.01, 0.59)},
    }
    (tmp_path / "table3_ablations.json").write_text(json.dumps({"tasks": tasks}))
    text = render_docs.anchor_live_claim()
    assert "On `mnist1d-mlp` it does not change" in text
    assert "On `digits-mlp` it changes the accuracy significantly" in text
    assert "-1.00 points" in text
    assert "best tuned baseline" not in text  # no Table 1 to compare with
    # With Table 1's runs on the same seeds: compared with its best baseline.
    for e in tasks.values():
        live = e["settings"][render_docs.ANCHOR_LIVE]
        live["test_metrics"] = [live["mean"] + d for d in (-0.01, 0.0, 0.01)]
        e["seeds"] = [0, 1, 2]
    (tmp_path / "table3_ablations.json").write_text(json.dumps({"tasks": tasks}))
    best = {"mean": 0.62, "test_metrics": [0.619, 0.62, 0.621]}
    t1 = {
        t: {"best_baseline": "cosine", "seeds": [0, 1, 2], "methods": {"cosine": best}}
        for t in tasks
    }
    (tmp_path / "table1_schedule_quality.json").write_text(json.dumps({"tasks": t1}))
    text = render_docs.anchor_live_claim()
    assert "there (cosine, 62.00): a tie (-1.00 points" in text  # 0.61 +- 0.01
    assert "there (cosine, 62.00): a loss (-3.00 points" in text  # 0.59 +- 0.001


def test_reflow_wraps_paragraphs_and_bullets_but_keeps_headings():
    text = render_docs._reflow(
        "## A heading that is long enough to be wrapped if it were a paragraph, "
        "which it is not\n\n" + "word " * 30 + "\n- " + "item " * 30 + "\n"
    )
    lines = text.splitlines()
    assert lines[0].startswith("## ") and len(lines[0]) > 78
    assert all(len(line) <= 78 for line in lines[1:])
    assert text.endswith("item\n")
    bullet = lines.index(next(x for x in lines if x.startswith("- ")))
    assert lines[bullet + 1].startswith("  item")


def test_conclusion_follows_the_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "once it is run" in render_docs.conclusion()
    _table1(tmp_path, {"a": "loses", "b": "ties"})
    assert "does not beat well-tuned simple schedules" in render_docs.conclusion()
    _table1(tmp_path, {"a": "wins", "b": "ties"})
    assert "beats the best well-tuned baseline on 1 of 2 tasks" in (
        render_docs.conclusion()
    )


def test_cost_summary_lists_the_cost_results_and_replaces_only_its_block(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    (tmp_path / "overhead.md").write_text("## lode_schedule overhead\n\n| a |\n")
    (tmp_path / "overhead.json").write_text(json.dumps({"headline": "+7.3% (missed)"}))
    (tmp_path / "table1_schedule_quality.md").write_text("## Table 1\n")
    block = render_docs.render_cost(["overhead", "table1_schedule_quality"])
    assert block.startswith(render_docs.COST_START)
    assert block.endswith(render_docs.COST_END)
    assert (
        "- [lode_schedule overhead](benchmarks.md#lode_schedule-overhead): "
        "+7.3% (missed)" in block
    )
    assert "Table 1" not in block  # not a cost result
    assert "No cost benchmark" in render_docs.render_cost(["table1_schedule_quality"])
    start, end = render_docs.COST_START, render_docs.COST_END
    page = f"# Page\n\nbefore\n{start}\nold\n{end}\nafter\n"
    new = render_docs.replace_block(page, block, start, end, "page")
    assert new.startswith("# Page\n\nbefore\n") and new.endswith("\nafter\n")
    assert "old" not in new and "+7.3% (missed)" in new
    with pytest.raises(SystemExit, match="exactly one"):
        render_docs.replace_block("no markers", block, "<a>", "<b>", "page")


def test_anchors_follow_github_in_the_readme_and_mkdocs_in_the_docs():
    assert render_docs._anchor("Overhead (XLA_FLAGS=--x)") == "overhead-xla_flags--x"
    assert render_docs._anchor("Overhead (XLA_FLAGS=--x)", mkdocs=True) == (
        "overhead-xla_flags-x"
    )
    # GitHub turns each space into a hyphen, after dropping the '/' between two.
    title = "Table 3 / Figure 6: LODE ablations"
    assert render_docs._anchor(title) == "table-3--figure-6-lode-ablations"
    assert render_docs._anchor(title, mkdocs=True) == "table-3-figure-6-lode-ablations"


def _a1(path, errors, spearman):
    """errors: task -> {observe: (lr, naive lr, metric, naive metric)}."""
    tasks = {}
    for task, by_obs in errors.items():
        observed = {}
        for obs, (lr, lr0, m, m0) in by_obs.items():
            observed[obs] = {
                "lr": lr,
                "metric": m,
                "loss": 0.1,
                "persistence": {"lr": lr0, "metric": m0, "loss": 1.0},
                "spearman": spearman[task],
            }
        tasks[task] = {
            "observed": observed,
            "trial_selection_observe": 0.05,
            "ticks": 10 * len(tasks) + 20,
        }
    (path / "tableA1_reconstruction.json").write_text(json.dumps({"tasks": tasks}))


def test_reconstruction_bullets_follow_table_a1(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not been run" in render_docs.reconstruction_claims()
    early = {"0.05": (2.0, 1.0, 0.1, 1.0), "0.5": (0.1, 1.0, 0.1, 1.0)}
    good = {"0.05": (0.5, 1.0, 2.0, 1.0), "0.5": (0.1, 1.0, 0.1, 1.0)}
    _a1(tmp_path, {"a": early, "b": early, "c": good}, {"a": -0.3, "b": 0.1, "c": 0.9})
    text = " ".join(render_docs.reconstruction_claims().split())
    assert "early learning-rate predictions are weak" in text
    assert "forecast on 1 of 3 tasks (`c`), the loss on 3 of 3" in text
    assert "the metric on 2 of 3 (`a`, `b`)" in text
    assert "after 50%, the rate on 3 of 3" in text
    assert "from -0.30 (`a`, 5% of its run observed) to 0.90 (`c`, 5% observed" in text
    assert render_docs.ticks_range() == "20-40 ticks"
    _a1(tmp_path, {"a": good, "b": good, "c": early}, {"a": 0.5, "b": 0.6, "c": 0.7})
    text = " ".join(render_docs.reconstruction_claims().split())
    assert "predictions are closer than the naive forecast on average" in text


def test_variants_table_compares_each_variant_with_its_reference_and_table1(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert render_docs.variants_table() == ""

    def row(group, p, metrics):
        return {"group": group, "p_value": p, "test_metrics": metrics,
                "mean": sum(metrics) / len(metrics)}  # fmt: skip

    settings = {
        "default": row("ensemble / horizon", None, [0.60, 0.61, 0.62]),
        "n=10": row("ensemble", 0.5, [0.60, 0.61, 0.62]),  # the paper's rule
        "match_rule = closest_loss": row("match rule", 0.01, [0.70, 0.71, 0.72]),
    }
    data = {"tasks": {"t": {"seeds": [0, 1, 2], "settings": settings}}}
    (tmp_path / "table3_ablations.json").write_text(json.dumps(data))
    table = render_docs.variants_table()
    assert "n=10" not in table  # not an opt-in rule
    assert (
        "| `t` | Table 3: `match_rule = closest_loss` | 71.00 | +10.00 (Holm p = 0.02) "
        "| - | - |" in table
    )
    best = {"mean": 0.75, "test_metrics": [0.74, 0.75, 0.76]}
    t1 = {
        "t": {
            "best_baseline": "cosine",
            "seeds": [0, 1, 2],
            "methods": {"cosine": best},
            "verdict": "loses",
        }
    }
    (tmp_path / "table1_schedule_quality.json").write_text(json.dumps({"tasks": t1}))
    table = render_docs.variants_table()
    assert "| cosine, 75.00 | -4.00 [" in table and table.rstrip().endswith(": loss |")
    # Table 4's variants, every one (the reference excepted), after Table 3's.
    variants = {
        "all of it (reference)": row(None, None, [0.60, 0.61, 0.62]),
        "1 seed": row(None, 0.2, [0.74, 0.75, 0.76]),
    }
    data = {"tasks": {"t": {"seeds": [0, 1, 2], "variants": variants}}}
    (tmp_path / "table4_data_ablation.json").write_text(json.dumps(data))
    table = render_docs.variants_table()
    assert "reference)`" not in table
    last = table.rstrip().splitlines()[-1]
    assert last.startswith(
        "| `t` | Table 4: `1 seed` | 75.00 | +14.00 (Holm p = 0.2) | cosine, 75.00 "
        "| +0.00 ["
    )
    assert last.endswith("p = 1: tie |")
    (tmp_path / "table3_ablations.md").write_text("## Table 3\n")
    page = render_docs.render_page(["table3_ablations"])
    assert page.rstrip().endswith(table.rstrip())  # after the discussion


def test_sharpness_bullet_follows_table2s_rank_tests(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not been run" in render_docs.sharpness_claim()

    def task(lode, **baselines):
        methods = {"LODE": {"eigenvalues": lode}}
        methods.update({n: {"eigenvalues": v} for n, v in baselines.items()})
        return {"seeds": list(range(len(lode))), "methods": methods}

    low, high = [1.0 + i / 10 for i in range(8)], [50.0 + i for i in range(8)]
    # One far-out LODE seed: by ranks still sharper (a mean would say little).
    sharp = [*high[:-1], 1e4]
    tasks = {
        "a": task(sharp, flat=low, flatter=[x / 2 for x in low]),
        "b": task(low, sharp=high, also=[x * 2 for x in high]),
    }
    (tmp_path / "table2_sharpness.json").write_text(json.dumps({"tasks": tasks}))
    text = " ".join(render_docs.sharpness_claim().split())
    assert "Flatter minima: not reproduced." in text
    assert "on `a` (8 seeds) sharper than 2 of 2, flatter than none" in text
    assert "on `b` (8 seeds) sharper than 0 of 2, flatter than sharp, also" in text
    del tasks["a"]
    (tmp_path / "table2_sharpness.json").write_text(json.dumps({"tasks": tasks}))
    assert "Flatter minima: reproduced." in render_docs.sharpness_claim()


def test_budget_bullet_follows_the_fit_budget_result(tmp_path, monkeypatch):
    from benchmarks.fit_budget import budget_entry, model_entry

    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    assert "not been measured" in render_docs.fit_budget_claim()

    def models(means):
        summary = {"steps": 300, "best_step": 200, "held_out_mse": 0.2,
                   "stopped_early": False, "seconds": 1.0}  # fmt: skip
        return [
            model_entry(i, summary, [m - 0.01, m + 0.01]) for i, m in enumerate(means)
        ]

    def write(other_means):
        ref = budget_entry(3000, models([0.90, 0.95, 0.97]), None)
        fits = {
            "3000 steps (reference)": ref,
            "300 steps": budget_entry(300, models(other_means), ref["test_metrics"]),
        }
        data = {"tasks": {"t": {"seeds": [1, 2], "fits": fits}}}
        (tmp_path / "fit_budget.json").write_text(json.dumps(data))

    # Table 1's LODE runs are those of fit seed 0's model (0.90 - / + 0.01).
    methods = {"cosine": {"mean": 0.955}, "LODE": {"test_metrics": [0.89, 0.91]}}
    t1 = {"tasks": {"t": {"best_baseline": "cosine", "methods": methods}}}
    (tmp_path / "table1_schedule_quality.json").write_text(json.dumps(t1))
    write([0.93, 0.94, 0.96])
    text = " ".join(render_docs.fit_budget_claim().split())
    assert "no other budget differs significantly" in text
    assert "on `t` `3000 steps` 94.00, `300 steps` 94.33, ρ = " in text
    assert "on `t` 90.00 (Table 1's), 95.00, 97.00 (std 3.61 points" in text
    # Runs 0.02 apart, means 0.05 apart: the models differ beyond the runs'
    # noise (one-way ANOVA), so one model is one draw.
    assert "One fitted model is one draw" in text and "on `t`. The models" in text
    assert "its 2-run mean about 1.00; ANOVA p = " in text
    # 0.97 of the reference and 0.96 of the other budget reach 0.955.
    assert "2 of its 6 distinct models of every budget" in text
    assert "(cosine, 95.50)" in text
    write([0.50, 0.51, 0.52])
    text = " ".join(render_docs.fit_budget_claim().split())
    assert "these budgets differ significantly" in text
    assert "`300 steps` on `t`" in text
    # Fit seed 0 is marked as Table 1's model only if its runs are Table 1's.
    methods["LODE"]["test_metrics"] = [0.5, 0.6]
    (tmp_path / "table1_schedule_quality.json").write_text(json.dumps(t1))
    text = " ".join(render_docs.fit_budget_claim().split())
    assert "Table 1's)" not in text and "on `t` 90.00, 95.00, 97.00 (std" in text
    # Models within their runs' noise: no "one draw".
    ref = budget_entry(3000, models([0.90, 0.9001, 0.9002]), None)
    data = {"tasks": {"t": {"seeds": [1, 2], "fits": {"ref": ref}}}}
    (tmp_path / "fit_budget.json").write_text(json.dumps(data))
    text = " ".join(render_docs.fit_budget_claim().split())
    assert "one draw" not in text
    assert "differ by no more than their runs' noise explains" in text


def test_cost_arithmetic_is_computed_from_the_overhead_result(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)

    def row(mode, cos, lode):
        return {
            "mode": mode,
            "width": 100,
            "steps_per_tick": 10,
            "steps": 6000,
            "decisions": 19,
            "step_us_cosine": cos,
            "step_us_lode": lode,
        }

    data = {
        "headline": "h",
        "amortised": [
            row("scan", 100.0, 106.0),
            row("loop", 200.0, 250.0),
            row("loop, donated", 150.0, 200.0),
            {**row("scan", 900.0, 905.0), "width": 370},
        ],
        "decision_latency": [
            {"n": 10, "T": 600, "decision_ms": 9.0},
            {"n": 30, "T": 600, "decision_ms": 2.0},
        ],
        "fitted_decisions": {"decision_ms_mean": 1.5},
        "breakdown": [
            {"width": 370, "overhead_per_step_pct_paired": 9.0},
            {"width": 100, "overhead_per_step_pct_paired": 0.8},
        ],
    }
    (tmp_path / "overhead.json").write_text(json.dumps(data))
    (tmp_path / "overhead.md").write_text("## lode_schedule overhead\n")
    (tmp_path / "overhead_options.md").write_text("## Options\n")
    (tmp_path / "overhead_options.json").write_text(json.dumps({"headline": "o"}))
    assert render_docs.options_decisions() is None  # no options measured
    text = render_docs.cost_arithmetic()
    # 19 x 2 ms of 6000 x 100 us = 6.3%; 19 x 1.5 ms = 4.8%; donation: 25%, 20%.
    assert "6000 steps of 100 us with cosine (0.60 s)" in text
    assert "19 decisions of 2.0 ms" in text and "6.3% of the run" in text
    assert "4.8% at a fitted model's mean of 1.5 ms" in text
    assert "a step costs +0.8% (paired)" in text
    assert "25% faster with cosine and 20% with LODE" in text
    lines = render_docs.render_cost(["overhead", "overhead_options"]).splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("- Its arithmetic")]
    assert at and lines[at[0] - 1].startswith("- [lode_schedule overhead]")
    assert lines[at[0] + 1].startswith("- [Options]")
    # Without the rows it reads, no sentence (not a wrong one).
    data["breakdown"] = []
    (tmp_path / "overhead.json").write_text(json.dumps(data))
    assert render_docs.cost_arithmetic() is None


def test_options_decisions_compares_in_run_and_standalone(tmp_path, monkeypatch):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)

    def option(name, n, in_run, alone):
        return {
            "option": name,
            "n": n,
            "decision_in_run_ms": in_run,
            "decision_ms": alone,
        }

    options = [
        option("defaults", 30, 3.0, 2.0),
        option("n=1", 1, 1.6, 0.4),
        option("n=10", 10, 0.9, 1.0),
    ]
    (tmp_path / "overhead_options.json").write_text(json.dumps({"options": options}))
    (tmp_path / "overhead_options.md").write_text("## Options\n")
    text = render_docs.options_decisions()
    # In-run over standalone: 1.5, 4.0, 0.9; the smallest n named.
    assert "0.9x to 4.0x its standalone latency" in text
    assert "(`n=1`: 1.60 ms in the run, 0.40 ms alone)" in text
    (tmp_path / "overhead.md").write_text("## lode_schedule overhead\n")
    (tmp_path / "overhead.json").write_text(json.dumps({"headline": "h"}))
    lines = render_docs.render_cost(["overhead", "overhead_options"]).splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("- Its decisions")]
    assert at and lines[at[0] - 1].startswith("- [Options]")


def _site(tmp_path, monkeypatch, names=("rollout_latency", "fit_speed")):
    """A copy of some committed results, and pages with their blocks, in
    ``tmp_path``: what ``render_docs.main`` reads and writes."""
    import shutil

    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for name in names:
        for ext in ("json", "md"):
            shutil.copy(render_docs.RESULTS / f"{name}.{ext}", results)
    (tmp_path / "docs").mkdir()
    readme = tmp_path / "README.md"
    readme.write_text(f"# R\n{render_docs.START}\n{render_docs.END}\n")
    schedule = tmp_path / "docs" / "schedule.md"
    schedule.write_text(f"# S\n{render_docs.COST_START}\n{render_docs.COST_END}\n")
    monkeypatch.setattr(render_docs, "ROOT", tmp_path)
    monkeypatch.setattr(render_docs, "RESULTS", results)
    monkeypatch.setattr(render_docs, "DOCS_PAGE", tmp_path / "docs" / "benchmarks.md")
    monkeypatch.setattr(render_docs, "README", readme)
    monkeypatch.setattr(render_docs, "SCHEDULE_PAGE", schedule)
    assert render_docs.main([]) == 0  # the pages, from these results
    assert render_docs.main(["--check"]) == 0
    return results


def test_check_fails_on_a_hand_edited_result_and_names_it(
    tmp_path, monkeypatch, capsys
):
    results = _site(tmp_path, monkeypatch)
    md = results / "rollout_latency.md"
    committed = md.read_text()
    lines = committed.splitlines()
    n = next(i for i, line in enumerate(lines) if "decode_many" in line)
    lines[n] = lines[n].rsplit("|", 2)[0] + "| 1.0 |"  # a better number, by hand
    md.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert render_docs.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "benchmarks/results/rollout_latency.md is not what" in out
    assert f"line {n + 1} is " in out and "| 1.0 |" in out
    assert "fit_speed" not in out  # the other result is as its JSON renders
    # Without --check the Markdown is rendered again from the JSON.
    assert render_docs.main([]) == 0
    assert md.read_text() == committed
    assert render_docs.main(["--check"]) == 0


def test_check_fails_on_a_result_it_cannot_check(tmp_path, monkeypatch, capsys):
    results = _site(tmp_path, monkeypatch)
    (results / "by_hand.md").write_text("## By hand\n\n| a |\n")
    old = json.loads((results / "fit_speed.json").read_text())
    del old["renderer"]  # as written before results named their renderer
    (results / "fit_speed.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert render_docs.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "by_hand.md: not checkable, no by_hand.json" in out
    assert "fit_speed.json: not checkable, it names no renderer" in out
    # An allowed exception is not checked (the pages still are).
    monkeypatch.setattr(render_docs, "UNCHECKED", ("by_hand", "fit_speed"))
    assert render_docs.main([]) == 0
    assert render_docs.main(["--check"]) == 0
