"""Verdict calibration: how often ``compare_methods`` says "loses" (or "wins")
when LODE and every baseline are equally good.

Each trial draws LODE's and ``k`` baselines' final metrics over ``seeds`` seeds
from one distribution (standard normal: Welch's test is invariant to a shared
location and scale, and exact up to its degrees-of-freedom approximation for
normal values) and asks the library's own verdict,
``optax_lode.evaluation.compare_methods(...).verdict`` at ``alpha = 0.05``. With
one baseline, "loses" and "wins" should each come out about ``alpha / 2`` of
the time; with more, the best baseline is picked after the fact, and no
correction is made for it, so "loses" comes out more often and "wins" less.
Each rate has a 95% Wilson score interval. Deterministic (``--seed``); nothing
is timed.

Run: ``python -m benchmarks.verdict_calibration [--trials 50000]``
(``--quick``: 2000 trials, for tests; written as ``verdict_calibration_quick``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np

from benchmarks._common import markdown_table, write_result

NAME = "verdict_calibration"
ALPHA = 0.05
#: Baselines beside LODE: one (the nominal case), and about as many as Table
#: 1's eleven.
BASELINES = (1, 4, 10)
#: Seeds per method: 5 (the README's quick start) and Table 1's 10.
SEEDS = (5, 10)
VERDICTS = ("loses", "ties", "wins")


def wilson_interval(hits: int, n: int, z: float = 1.959963984540054) -> list[float]:
    """The Wilson score interval of a binomial rate ``hits / n`` (95% by
    default): unlike the normal approximation it stays inside [0, 1] and keeps
    its coverage for rates near 0, such as 2.5%."""
    if n <= 0 or not 0 <= hits <= n:
        raise ValueError(f"need 0 <= hits <= n and n > 0, got {hits} of {n}")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # Exactly 0 (1) with no hits (misses), where rounding leaves 1e-18.
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return [low, high]


def simulate(
    baselines: int, seeds: int, trials: int, rng: np.random.Generator
) -> dict[str, int]:
    """Verdict counts of ``trials`` comparisons of LODE with ``baselines``
    baselines, all drawn from one standard normal, ``seeds`` values each."""
    from optax_lode.evaluation import compare_methods

    counts = dict.fromkeys(VERDICTS, 0)
    for _ in range(trials):
        values = rng.standard_normal((baselines + 1, seeds))
        results = {"LODE": values[0]}
        results.update({f"baseline{j}": values[j + 1] for j in range(baselines)})
        verdict = compare_methods(results, alpha=ALPHA).verdict
        counts[verdict] += 1  # a KeyError on "untested": cannot happen here
    return counts


def cell(baselines: int, seeds: int, counts: dict[str, int]) -> dict:
    """One (baselines, seeds) cell of the result: counts, rates, intervals."""
    trials = sum(counts.values())
    return {
        "baselines": baselines,
        "seeds": seeds,
        "trials": trials,
        "counts": counts,
        "rates": {v: counts[v] / trials for v in VERDICTS},
        "intervals": {v: wilson_interval(counts[v], trials) for v in VERDICTS},
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _rate(c: dict, verdict: str) -> str:
    lo, hi = c["intervals"][verdict]
    return f"{_pct(c['rates'][verdict])} [{_pct(lo)}, {_pct(hi)}]"


def headline(cells: Sequence[dict], alpha: float) -> str:
    """One line: the "loses" rates at 5 seeds (or the first seed count)."""
    seeds = 5 if any(c["seeds"] == 5 for c in cells) else cells[0]["seeds"]
    parts = [
        f"{c['baselines']} baseline{'s' if c['baselines'] > 1 else ''} "
        f"{_pct(c['rates']['loses'])}"
        for c in cells
        if c["seeds"] == seeds
    ]
    return (
        f'verdict calibration: "loses" when LODE is as good as every baseline, '
        f"{seeds} seeds: " + ", ".join(parts) + f" (nominal {_pct(alpha / 2)})"
    )


def markdown(payload: dict) -> tuple[str, str, str]:
    """``(title, table, notes)`` of a saved result, from its JSON alone."""
    alpha = payload["alpha"]
    rows = [
        [
            c["baselines"],
            c["seeds"],
            c["trials"],
            _rate(c, "loses"),
            _rate(c, "wins"),
            _rate(c, "ties"),
        ]
        for c in payload["cells"]
    ]
    table = markdown_table(
        [
            "baselines",
            "seeds per method",
            "trials",
            '"loses" [95% CI]',
            '"wins" [95% CI]',
            '"ties" [95% CI]',
        ],
        rows,
    )
    # What the one-baseline rows say of Welch's test itself, from the data.
    nominal = alpha / 2
    below = [
        c["seeds"]
        for c in payload["cells"]
        if c["baselines"] == 1 and c["intervals"]["loses"][1] < nominal
    ]
    conservative = (
        f' With one baseline, "loses" came out significantly below '
        f"{_pct(nominal)} at {' and '.join(map(str, below))} seeds: Welch's "
        "test is slightly conservative for equal variances and so few seeds."
        if below
        else ""
    )
    notes = (
        "Each trial draws LODE's and every baseline's final metric on each seed "
        "from one standard normal distribution (every method equally good) "
        "and takes the verdict of the library's own rule, "
        f"`compare_methods(...).verdict` at alpha = {alpha:g}: the best "
        "baseline is the one with the best mean, picked after the fact, and "
        "LODE is tested against it by Welch's t-test. A correct test of one "
        f'pair says "loses" and "wins" each {_pct(alpha / 2)} of the time; '
        "no correction is made for the number of baselines, so with more of "
        'them "loses" comes out more often and "wins" less. Intervals: 95% '
        "Wilson score intervals of the binomial rates. Random generator: numpy "
        f"`default_rng({payload['seed']})`, one stream for every cell in the "
        f"table's order; {payload['seconds']:.0f} s in all." + conservative
    )
    if payload.get("quick"):
        notes += " QUICK RUN: few trials; not the reference numbers."
    title = 'Verdict calibration: "loses" when LODE is as good as its baselines'
    return title, table, notes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2000 trials (tests)")
    parser.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    trials = 2000 if args.quick else args.trials

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    cells = [cell(k, s, simulate(k, s, trials, rng)) for s in SEEDS for k in BASELINES]
    data = {
        "headline": headline(cells, ALPHA),
        "alpha": ALPHA,
        "seed": args.seed,
        "quick": args.quick,
        "cells": cells,
        "seconds": time.perf_counter() - t0,
    }
    write_result(
        NAME + ("_quick" if args.quick else ""),
        data,
        render=markdown,
        results_dir=args.results_dir,
    )


if __name__ == "__main__":
    main()
