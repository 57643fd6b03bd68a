"""Statistics over seeds, the Welch and rank tests, against published values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode.evaluation import (
    compare_methods,
    holm,
    rank_test,
    signed_rank_test,
    summarize,
    welch_test,
)

# Welch's t-test, Example 1 of the Wikipedia article "Welch's t-test" (values
# reproduced by R's t.test(a1, a2): t = -2.4554, df = 24.989, p = 0.02138,
# 95% CI of the difference (-3.98410, -0.34924)).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0,
      21.7, 21.4]  # fmt: skip
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9,
      20.5, 24.4]  # fmt: skip


def test_welch_matches_known_values():
    r = welch_test(A1, A2)
    assert r.t == pytest.approx(-2.4554, abs=1e-4)
    assert r.dof == pytest.approx(24.989, abs=1e-3)
    assert r.p_value == pytest.approx(0.02138, abs=1e-5)
    assert r.ci_low == pytest.approx(-3.98410, abs=1e-4)
    assert r.ci_high == pytest.approx(-0.34924, abs=1e-4)
    assert r.diff == pytest.approx(np.mean(A1) - np.mean(A2))


def test_welch_ci_level_and_symmetry():
    r90 = welch_test(A1, A2, confidence=0.90)
    r95 = welch_test(A1, A2)
    assert r95.ci_low < r90.ci_low < r90.ci_high < r95.ci_high
    flipped = welch_test(A2, A1)
    assert flipped.p_value == pytest.approx(r95.p_value)
    assert flipped.ci_low == pytest.approx(-r95.ci_high)


@given(
    a=st.lists(st.floats(-10, 10), min_size=2, max_size=12),
    b=st.lists(st.floats(-10, 10), min_size=2, max_size=12),
)
def test_welch_properties(a, b):
    r = welch_test(a, b)
    assert 0.0 <= r.p_value <= 1.0
    assert r.ci_low <= r.diff <= r.ci_high
    # The CI excludes 0 exactly when the test rejects at 5%.
    if r.ci_low > 1e-9 or r.ci_high < -1e-9:
        assert r.p_value <= 0.05 + 1e-9
    elif r.ci_low < -1e-9 and r.ci_high > 1e-9:
        assert r.p_value >= 0.05 - 1e-9


def test_degenerate_zero_variance():
    assert welch_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    r = welch_test([2.0, 2.0], [1.0, 1.0])
    assert r.p_value == 0.0 and r.ci_low == r.ci_high == 1.0
    # Equal constants that float64 means round apart (ten 0.91s vs six): the
    # rounding noise over its own spread gave t = -3.0, p = 0.015.
    r = welch_test([0.91] * 10, [0.91] * 6)
    assert (r.diff, r.p_value) == (0.0, 1.0)
    assert compare_methods({"LODE": [0.91] * 10, "cos": [0.91] * 6}).verdict == "ties"


def test_welch_bad_input():
    with pytest.raises(ValueError, match="at least 2 finite values in a"):
        welch_test([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        welch_test([1.0, 2.0], [1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="1-D"):
        welch_test([[1.0, 2.0]], [1.0, 2.0])


def test_summarize_drops_diverged_runs():
    s = summarize([1.0, 2.0, 3.0, float("nan"), float("inf")])
    assert (s.mean, s.std, s.n, s.dropped) == (2.0, 1.0, 3, 2)
    assert s.format(1) == "2.0 ± 1.0"
    assert s.format(1, scale=100) == "200.0 ± 100.0"
    one = summarize([0.5])
    assert one.n == 1 and math.isnan(one.std)
    assert one.format(2) == "0.50 (one run)"  # was "0.50 ± nan"
    assert summarize([]).format() == "n/a"


def test_compare_methods_verdicts_and_table():
    rng = np.random.default_rng(0)
    base = {
        "cosine": rng.normal(0.90, 0.01, 10),
        "constant": rng.normal(0.85, 0.01, 10),
    }
    win = compare_methods({"LODE": rng.normal(0.95, 0.01, 10), **base})
    assert win.best_baseline == "cosine" and win.verdict == "wins"
    lose = compare_methods({"LODE": rng.normal(0.80, 0.01, 10), **base})
    assert lose.verdict == "loses"
    tie = compare_methods({"LODE": base["cosine"] + rng.normal(0, 1e-4, 10), **base})
    assert tie.verdict == "ties"
    md = lose.to_markdown(metric="test accuracy (%)", scale=100, digits=1)
    assert "| LODE |" in md and "| cosine |" in md and "LODE loses" in md
    assert "95% CI" in md and "Welch p" in md
    # Lower-is-better metrics pick the smallest mean as the best baseline.
    loss = compare_methods(
        {"LODE": [1.0, 1.1], "a": [2.0, 2.1], "b": [0.5, 0.6]}, higher_is_better=False
    )
    assert loss.best_baseline == "b" and loss.verdict == "loses"


def test_compare_methods_bad_input():
    with pytest.raises(ValueError, match="reference method 'LODE'"):
        compare_methods({"cosine": [1.0, 2.0]})
    c = compare_methods({"LODE": [1.0], "cosine": [1.0, 2.0]})
    assert c.test is None and c.verdict == "untested"
    assert "No significance test" in c.to_markdown()


@given(
    st.integers(0, 12).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(0, 12).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_fisher_exact_matches_scipy(a, b):
    stats = pytest.importorskip("scipy.stats")
    from optax_lode.evaluation._compare import fisher_exact

    (x, n), (y, m) = a, b
    if n + m == 0:
        return
    ref = stats.fisher_exact([[x, n - x], [y, m - y]]).pvalue
    assert fisher_exact(x, n, y, m) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_divergence_decides_the_verdict_and_lucky_survivors_are_not_rivals():
    nan = float("nan")
    # LODE diverged on 8 of 10 seeds; its 2 survivors are the best values.
    c = compare_methods({"LODE": [0.95, 0.96] + [nan] * 8, "cos": [0.9, 0.91] * 5})
    assert c.best_baseline == "cos" and c.divergence_p < 0.05
    assert c.verdict == "loses"
    assert "Fisher p" in c.to_markdown()
    # Every LODE run diverged: it loses, not "untested".
    c = compare_methods({"LODE": [nan] * 5, "cos": [0.9, 0.91, 0.92, 0.9, 0.91]})
    assert c.verdict == "loses"
    # The best baseline diverging far more often loses to LODE.
    c = compare_methods({"LODE": [0.8, 0.81] * 5, "cos": [0.99, 0.98] + [nan] * 8})
    assert c.verdict == "wins"
    # One lucky survivor is not the best baseline: nothing to test it with.
    c = compare_methods(
        {"LODE": [0.80, 0.81, 0.80], "hd": [0.99, nan, nan], "cos": [0.9, 0.91, 0.9]}
    )
    assert c.best_baseline == "cos" and c.verdict == "loses"
    # A rival that diverged far more often does not hide a steadier one that
    # beats LODE (LODE "won" against the diverging one).
    c = compare_methods(
        {
            "LODE": [0.80, 0.81] * 5,
            "lucky": [0.95, 0.96] * 2 + [nan] * 6,
            "steady": [0.90, 0.91] * 5,
        }
    )
    assert c.best_baseline == "steady" and c.verdict == "loses"
    # One diverged run of ten is not significant: the finite values decide.
    c = compare_methods({"LODE": [0.9, 0.91] * 4 + [0.9, nan], "cos": [0.8, 0.81] * 5})
    assert c.divergence_p > 0.05 and c.verdict == "wins"


def test_adding_a_rival_cannot_turn_a_loss_by_divergence_into_a_win():
    nan = float("nan")
    lode = [0.9, 0.91, 0.92, 0.9] + [nan] * 6  # diverged on 6 of 10
    steady = [0.8, 0.81] * 5  # none (Fisher p = 0.011 against LODE)
    alone = compare_methods({"LODE": lode, "steady": steady})
    assert alone.best_baseline == "steady" and alone.verdict == "loses"
    # A rival with a better mean that diverged as often as LODE: LODE still
    # loses to the steady one (it was the best baseline by mean, and "won").
    shaky = [0.99, 0.98, 0.99, 0.98] + [nan] * 6
    both = compare_methods({"LODE": lode, "steady": steady, "shaky": shaky})
    assert both.best_baseline == "steady" and both.verdict == "loses"


def test_a_rival_that_diverged_on_every_seed_loses_and_none_is_no_test():
    nan = float("nan")
    c = compare_methods({"LODE": [0.9, 0.91] * 5, "cos": [nan] * 10})
    assert c.best_baseline == "cos" and c.test is None
    assert c.divergence_p < 1e-4 and c.verdict == "wins"
    assert "Fisher p" in c.to_markdown()
    # No rival at all: nothing to compare, and the table says so.
    c = compare_methods({"LODE": [0.9, 0.91]})
    assert c.best_baseline is None and c.verdict == "untested"
    assert "no baseline beside LODE" in c.to_markdown()


def test_holm_matches_r():
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm")
    np.testing.assert_allclose(
        holm([0.04, 0.01, 0.05, 0.03, 0.02]), [0.09, 0.05, 0.09, 0.09, 0.08]
    )
    assert holm([0.3]).tolist() == [0.3]  # a family of one is a single test
    assert holm([]).shape == (0,)


@pytest.mark.parametrize("bad", [[0.1, float("nan")], [-0.01], [1.5], [[0.1, 0.2]]])
def test_holm_refuses_what_is_not_a_family_of_p_values(bad):
    with pytest.raises(ValueError, match="p-values in \\[0, 1\\]"):
        holm(bad)


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20), st.floats(0.001, 0.2))
def test_holm_is_the_step_down_procedure(p, alpha):
    """Rejecting where the adjusted p-value is below alpha is Holm's procedure:
    walk the p-values up from the smallest, rejecting while p_(i) < alpha /
    (m - i). The adjustment also lies between the raw and Bonferroni's values
    and keeps the raw order."""
    adj = holm(p)
    m = len(p)
    rejected = set()
    for i, j in enumerate(sorted(range(m), key=lambda k: p[k])):
        if not p[j] * (m - i) < alpha:
            break
        rejected.add(j)
    assert {j for j in range(m) if adj[j] < alpha} == rejected
    assert np.all(adj >= np.asarray(p)) and np.all(
        adj <= np.minimum(1.0, m * np.asarray(p))
    )
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)


def _permutation_p(a, b):
    """The exact two-sided p-value of U by enumerating every split of the
    pooled values (no ties): the share of splits whose U is at least as far
    from its mean as the observed one."""
    pooled = list(a) + list(b)
    na, nb = len(a), len(b)

    def u(xs, ys):
        return sum(x > y for x in xs for y in ys)

    mid = na * nb / 2
    obs = abs(u(a, b) - mid)
    splits = list(itertools.combinations(range(na + nb), na))
    far = 0
    for idx in splits:
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(na + nb) if i not in idx]
        far += abs(u(xs, ys) - mid) >= obs - 1e-9
    return far / len(splits)


def test_rank_test_matches_the_permutation_distribution():
    # R: wilcox.test(c(5, 6, 7, 8), c(1, 2, 3, 9)): W = 12, p-value = 0.3429.
    r = rank_test([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 9.0])
    assert (r.u, r.prob_greater, r.exact) == (12.0, 0.75, True)
    assert r.p_value == pytest.approx(24 / 70)
    rng = np.random.default_rng(0)
    for na, nb in ((3, 4), (5, 5), (2, 7)):
        a, b = rng.normal(size=na), rng.normal(0.8, size=nb)
        assert rank_test(a, b).p_value == pytest.approx(_permutation_p(a, b))
    # Large samples: the normal approximation, close to the exact value.
    a, b = rng.normal(size=101), rng.normal(0.3, size=101)
    large = rank_test(a, b)
    assert not large.exact
    assert large.p_value == pytest.approx(rank_test(a[:100], b[:100]).p_value, rel=0.2)
    # Complete separation of 10 and 10: the smallest p-value there is.
    r = rank_test(np.arange(10.0) + 100, np.arange(10.0))
    assert r.prob_greater == 1.0
    assert r.p_value == pytest.approx(2 / math.comb(20, 10))


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=12),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=12),
)
def test_rank_test_properties(a, b):
    """Swapping the samples mirrors the effect and keeps the p-value; a
    monotone transform of both (what makes it fit skewed values) changes
    nothing."""
    r, flipped = rank_test(a, b), rank_test(b, a)
    assert 0.0 <= r.prob_greater <= 1.0 and 0.0 < r.p_value <= 1.0
    assert r.prob_greater + flipped.prob_greater == pytest.approx(1.0)
    assert r.p_value == pytest.approx(flipped.p_value)
    squashed = rank_test(np.arctan(a), np.arctan(b))
    if len(set(np.arctan(a + b))) == len(set(a + b)):  # no ties made by rounding
        assert squashed.prob_greater == pytest.approx(r.prob_greater)
        assert squashed.p_value == pytest.approx(r.p_value)


def test_rank_test_drops_diverged_runs_and_refuses_empty_samples():
    nan = float("nan")
    assert rank_test([1.0, nan, 2.0], [0.0, float("inf")]) == rank_test(
        [1.0, 2.0], [0.0]
    )
    with pytest.raises(ValueError, match="finite value in b"):
        rank_test([1.0], [nan])


def test_rank_test_can_count_a_diverged_run_as_the_worst():
    """A loss of inf (a diverged run) dropped would leave a method that
    diverged on half its seeds looking better than one that never did."""
    inf = float("inf")
    diverging, steady = [1.0, 1.1, inf, inf], [2.0, 2.1, 2.2, 2.3]
    assert rank_test(diverging, steady).prob_greater == 0.0
    kept = rank_test(diverging, steady, keep_inf=True)
    assert kept.prob_greater == 0.5 and not kept.exact  # the two infs tie
    assert rank_test([inf, inf], [1.0], keep_inf=True).prob_greater == 1.0
    with pytest.raises(ValueError, match="non-NaN value in a"):
        rank_test([float("nan")], [1.0], keep_inf=True)


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=10)
)
def test_signed_rank_test_is_exact_with_ties_and_zeros(pairs):
    """Against a brute-force enumeration of every sign pattern (average ranks
    of |a - b|, zero differences left out), ties and zeros included."""
    a, b = (np.array(x, float) for x in zip(*pairs, strict=True))
    d = a - b
    d = d[d != 0]
    r = signed_rank_test(a, b)
    if d.size == 0:
        assert r.p_value == 1.0 and r.w == 0.0
        return
    order = np.argsort(np.abs(d))
    ranks = np.empty(d.size)
    ranks[order] = np.arange(1, d.size + 1)
    for v in np.unique(np.abs(d)):  # average the ties
        ranks[np.abs(d) == v] = ranks[np.abs(d) == v].mean()
    w, centre = ranks[d > 0].sum(), ranks.sum() / 2
    null = [np.dot(ranks, signs) for signs in itertools.product([0, 1], repeat=d.size)]
    p = np.mean([abs(t - centre) >= abs(w - centre) - 1e-9 for t in null])
    assert r.w == w and math.isclose(r.p_value, p, rel_tol=1e-9)
    assert r.prob_greater == np.mean((a > b) + 0.5 * (a == b))


def test_signed_rank_test_matches_scipy_and_sees_what_pairing_sees():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (3, 8, 15, 25):
        a, b = rng.normal(size=n), rng.normal(size=n)
        want = stats.wilcoxon(a, b, method="exact").pvalue
        assert math.isclose(signed_rank_test(a, b).p_value, want, rel_tol=1e-9)
    # Seeds far apart, one setting better on every seed by a little: the
    # unpaired rank test sees the spread, the paired test the shift.
    base = np.array([1.0, 10.0, 100.0, 1000.0, 1e4, 1e5, 1e6, 1e7])
    better = base * 0.99
    assert signed_rank_test(better, base).p_value == 2 / 2**8
    assert signed_rank_test(better, base).prob_greater == 0.0
    assert rank_test(better, base).p_value > 0.5
    # Beyond SIGNED_EXACT_MAX differences: the normal approximation, scipy's.
    a, b = rng.normal(size=800), rng.normal(size=800) + 0.05
    r = signed_rank_test(a, b)
    want = stats.wilcoxon(a, b, method="approx", correction=True).pvalue
    assert not r.exact and math.isclose(r.p_value, want, rel_tol=1e-9)
    assert signed_rank_test(a[:10], b[:10]).exact


def test_signed_rank_test_diverged_runs_and_bad_input():
    inf, nan = float("inf"), float("nan")
    # A diverged run (inf) is the largest difference; two diverged runs tie.
    r = signed_rank_test([inf, 2.0, 3.0, inf], [1.0, 1.0, 1.0, inf], keep_inf=True)
    assert r.n == 4 and r.prob_greater == 0.875 and r.w == 6.0
    assert r.p_value == 0.25  # 3 positive differences of 3: 2 / 2**3
    # Beyond every finite difference, however large: -inf ranks as -1e300.
    finite = signed_rank_test([-1e300, 1e17, 1, 2, 3], [0, 0, 2, 1, 4])
    diverged = signed_rank_test([-inf, 1e17, 1, 2, 3], [0, 0, 2, 1, 4], keep_inf=True)
    assert diverged == finite
    # Without keep_inf a pair with a non-finite value is dropped; NaN always.
    assert signed_rank_test([inf, 2.0, 3.0], [1.0, 1.0, 1.0]).n == 2
    assert signed_rank_test([nan, 2.0], [1.0, 1.0], keep_inf=True).n == 1
    with pytest.raises(ValueError, match="same order"):
        signed_rank_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no pair"):
        signed_rank_test([nan], [1.0])


@pytest.mark.parametrize("units", [1e-170, 1e-30, 3.0, 1e160])
def test_welch_test_is_the_same_in_any_units(units):
    """The variances of values near 1e-170 underflowed to 0 (p = 0) and near
    1e160 overflowed (p = NaN); the test is scale-free, and in ordinary units
    it is what it was, bit for bit (the scaling is by a power of 2)."""
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.5, 3.5])
    ref, r = welch_test(a, b), welch_test(a * units, b * units)
    assert r.p_value == pytest.approx(ref.p_value, rel=1e-12)
    assert r.t == pytest.approx(ref.t, rel=1e-12)
    assert r.dof == pytest.approx(ref.dof, rel=1e-12)
    assert r.diff == pytest.approx(ref.diff * units, rel=1e-12)
    assert r.ci_low == pytest.approx(ref.ci_low * units, rel=1e-12)
    assert welch_test(a * 4.0, b * 4.0).p_value == ref.p_value  # exactly


def test_equal_means_are_decided_against_the_reference_whatever_the_order():
    """Two rivals of mean 0.5: dict order chose, and the verdict flipped
    between "wins" (against the constant one) and "ties"."""
    lode, flat, spread = [0.625] * 3, [0.5] * 3, [0.25, 0.5, 0.75]
    for results in (
        {"LODE": lode, "A": flat, "B": spread},
        {"LODE": lode, "B": spread, "A": flat},
    ):
        c = compare_methods(results)
        assert (c.best_baseline, c.verdict) == ("B", "ties")
    # Means equal but for the last bit (np.mean of three 290/300 is a hair
    # above that of 289, 290, 291 over 300) count as equal.
    near = {
        "LODE": [0.99] * 3,
        "c": [290 / 300] * 3,
        "s": [289 / 300, 290 / 300, 291 / 300],
    }
    assert compare_methods(near).best_baseline == "s"
    # Exactly tied and equally significant: by name.
    assert (
        compare_methods({"LODE": lode, "z": flat, "a": list(flat)}).best_baseline == "a"
    )


def test_a_rival_with_no_finite_value_is_not_named_best():
    """Lower is better: the all-diverged rival's key (False == 0) beat a
    finite rival's negated mean."""
    nan = float("nan")
    for higher in (True, False):
        c = compare_methods(
            {"LODE": [0.30, 0.31], "one_run": [0.10, nan], "all_diverged": [nan, nan]},
            higher_is_better=higher,
        )
        assert c.best_baseline == "one_run"


def test_extreme_magnitudes_neither_overflow_nor_lose_constants():
    r = welch_test([1e308] * 3, [1e308] * 3)  # ldexp(1, 1024) overflowed
    assert (r.diff, r.p_value) == (0.0, 1.0)
    s = summarize([1e160, 2e160, 3e160])  # its variance overflowed: std inf
    assert s.mean == pytest.approx(2e160) and s.std == pytest.approx(1e160)
    assert summarize([290 / 300] * 3).mean == 290 / 300  # exact, as welch_test's
