"""Summary statistics and the significance test of the schedule comparison.

Table 1 of the paper reports mean +- standard deviation over seeds. Here every
comparison also carries Welch's unequal-variance t-test of LODE against the
best baseline: the p-value and the confidence interval of the difference of
means, since two methods' seed spreads are rarely equal. Where the values are
skewed over seeds (a sharpness that spans orders of magnitude), the rank test
says more than the means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class Summary(NamedTuple):
    """Mean, sample standard deviation (``ddof=1``) and count of finite values.

    Made by :func:`summarize`.

    Attributes:
        mean: mean of the finite values (NaN if there is none).
        std: their sample standard deviation (NaN with fewer than two).
        n: how many values were finite.
        dropped: how many non-finite values (diverged runs) were left out.
    """

    mean: float
    std: float
    n: int
    dropped: int

    def format(self, digits: int = 2, scale: float = 1.0) -> str:
        """The summary as a table cell.

        Args:
            digits: decimals shown.
            scale: multiplies the mean and std first (``100`` for percent).

        Returns:
            ``"mean ± std"``; ``"mean (one run)"`` for one finite value,
            ``"n/a"`` for none.

        Examples:
            >>> from optax_lode.evaluation import summarize
            >>> summarize([0.91, 0.93]).format(1, scale=100)
            '92.0 ± 1.4'
            >>> summarize([float("nan")]).format()
            'n/a'
        """
        if self.n == 0:
            return "n/a"
        if self.n == 1:  # no spread to show
            return f"{self.mean * scale:.{digits}f} (one run)"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


class WelchResult(NamedTuple):
    """Welch's t-test of ``mean(a) - mean(b)``.

    Attributes:
        diff: ``mean(a) - mean(b)``.
        ci_low: lower end of the two-sided confidence interval of ``diff``.
        ci_high: upper end.
        p_value: two-sided p-value of the null hypothesis ``diff == 0``.
        t: the t statistic.
        dof: Welch-Satterthwaite degrees of freedom.
        confidence: the confidence level of the interval (e.g. 0.95).
    """

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    t: float
    dof: float
    confidence: float


#: Largest sample for which :func:`rank_test` computes the exact p-value.
EXACT_MAX = 100


class RankResult(NamedTuple):
    """Mann-Whitney U test of whether one sample's values tend to exceed the other's.

    Attributes:
        prob_greater: the share of pairs ``(x in a, y in b)`` with ``x > y``,
            ties counting half (``u / (n_a n_b)``, the common-language effect
            size): 0.5 when neither sample tends to be larger.
        p_value: two-sided p-value of the null hypothesis that ``a`` and ``b``
            come from one distribution.
        u: the U statistic of ``a`` (pairs with ``x > y`` plus half the ties).
        exact: whether ``p_value`` is from the exact distribution of ``U``
            (no ties, small samples) rather than the normal approximation.
    """

    prob_greater: float
    p_value: float
    u: float
    exact: bool


def _finite(values: Sequence[float] | np.ndarray, name: str) -> tuple[np.ndarray, int]:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D sequence of numbers, got shape {x.shape}."
        )
    ok = np.isfinite(x)
    return x[ok], int((~ok).sum())


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean and sample standard deviation of the finite entries of ``values``.

    Args:
        values: one number per seed; NaN/inf (diverged runs) are dropped and
            counted in ``Summary.dropped``.

    Returns:
        A :class:`Summary`; ``std`` is NaN with fewer than two finite values and
        ``mean`` is NaN with none.

    Raises:
        ValueError: ``values`` is not a 1-D sequence of numbers.

    Examples:
        >>> from optax_lode.evaluation import summarize
        >>> summarize([1.0, 2.0, 3.0]).format(1)
        '2.0 ± 1.0'
        >>> s = summarize([1.0, float("nan"), 3.0])
        >>> s.mean, s.n, s.dropped
        (2.0, 2, 1)
    """
    x, dropped = _finite(values, "values")
    if x.size == 0:
        return Summary(float("nan"), float("nan"), 0, dropped)
    scale = _power_of_two_near(x)
    mean, var = _mean_var(x / scale)  # a constant's mean exact, as welch_test's
    std = math.sqrt(var) * scale if x.size > 1 else float("nan")
    return Summary(mean * scale, std, int(x.size), dropped)


def _power_of_two_near(*samples: np.ndarray) -> float:
    """A power of 2 near the samples' largest magnitude (1.0 for zeros):
    dividing by it is exact, and keeps squares of values near 1e-170 or 1e160
    from underflowing or overflowing."""
    top = max(float(np.max(np.abs(x))) for x in samples)
    # 2**(e - 1) <= top < 2**e; 2**e itself overflows for top >= 2**1023.
    return math.ldexp(0.5, math.frexp(top)[1]) if top > 0 else 1.0


def welch_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> WelchResult:
    """Welch's unequal-variance t-test and confidence interval of ``mean(a) - mean(b)``.

    ``t = (mean(a) - mean(b)) / se`` with ``se = sqrt(var(a)/n_a + var(b)/n_b)``
    (sample variances, ``ddof=1``) and the Welch-Satterthwaite degrees of
    freedom ``dof = se^4 / ((var(a)/n_a)^2/(n_a-1) + (var(b)/n_b)^2/(n_b-1))``.
    The interval is ``diff ± t_{(1+confidence)/2, dof} * se``. Non-finite values
    (diverged runs) are dropped first.

    If both samples have zero variance the test is degenerate: the p-value is
    1 when the means are equal and 0 otherwise, and the interval is the point
    ``diff``.

    Args:
        a: first sample (e.g. LODE's test metric per seed).
        b: second sample (e.g. the best baseline's).
        confidence: level of the two-sided interval, in (0, 1).

    Returns:
        A :class:`WelchResult`.

    Raises:
        ValueError: if a sample is not 1-D or has fewer than two finite
            values, or ``confidence`` is outside (0, 1).
        ImportError: if scipy (the ``bench`` extra) is not installed.

    Examples:
        >>> from optax_lode.evaluation import welch_test
        >>> r = welch_test([1.0, 2.0, 3.0, 4.0], [-1.0, -0.5, 0.0, 0.5])
        >>> round(r.diff, 2), round(r.p_value, 4)
        (2.75, 0.0158)

    References:
        B. L. Welch, "The generalization of Student's problem when several
        different population variances are involved", Biometrika 34 (1947).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    xa, _ = _finite(a, "a")
    xb, _ = _finite(b, "b")
    for name, x in (("a", xa), ("b", xb)):
        if x.size < 2:
            raise ValueError(
                f"welch_test needs at least 2 finite values in {name}, got {x.size}: "
                "run more seeds."
            )
    try:
        from scipy import stats
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "welch_test needs scipy: install the bench extra (in a clone of "
            "optax-lode: pip install -e '.[bench]')."
        ) from e
    na, nb = xa.size, xb.size
    # Scaled by a power of 2 near the largest magnitude (exact: the same bits
    # in ordinary units), so variances of values near 1e-170 or 1e160 neither
    # underflow to 0 (p = 0) nor overflow (p = NaN); undone on the difference.
    scale = _power_of_two_near(xa, xb)
    xa, xb = xa / scale, xb / scale
    (ma, va), (mb, vb) = _mean_var(xa), _mean_var(xb)
    va, vb = va / na, vb / nb
    diff = float(ma - mb)
    se2 = va + vb
    if se2 == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
        return WelchResult(
            diff * scale,
            diff * scale,
            diff * scale,
            p,
            math.copysign(math.inf, diff) if diff else 0.0,
            float(na + nb - 2),
            confidence,
        )
    se = math.sqrt(se2)
    # The dof is scale-free: normalise first so tiny variances cannot underflow.
    m = max(va, vb)
    ra, rb = va / m, vb / m
    dof = (ra + rb) ** 2 / (ra**2 / (na - 1) + rb**2 / (nb - 1))
    t = diff / se
    p = float(2.0 * stats.t.sf(abs(t), dof))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
    return WelchResult(
        diff * scale,
        (diff - half) * scale,
        (diff + half) * scale,
        p,
        float(t),
        float(dof),
        confidence,
    )


def _mean_var(x: np.ndarray) -> tuple[float, float]:
    """Mean and unbiased variance; a constant sample's exactly (its value, 0).
    np.mean of ten 0.91s is not 0.91 and their np.var not 0: the rounding
    noise of two such samples, divided by their rounding-noise spread, made
    t ~ 3 between identical constants."""
    if np.ptp(x) == 0:
        return float(x[0]), 0.0
    return float(np.mean(x)), float(np.var(x, ddof=1))


def rank_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    keep_inf: bool = False,
) -> RankResult:
    """Mann-Whitney U (Wilcoxon rank-sum) test of ``a`` against ``b``.

    It compares ranks, not means, so one seed far out (a sharpness of 10^4
    among values near 10) weighs as one seed, where it dominates Welch's
    test. The p-value is exact when no value is tied and neither sample has
    more than ``EXACT_MAX`` (100) values (the distribution of ``U`` under
    the null, whose cost grows fast with the sizes), from the normal
    approximation with a tie correction and a continuity correction
    otherwise. Non-finite values (diverged runs) are dropped first, unless
    ``keep_inf``.

    Args:
        a: first sample (e.g. LODE's sharpness per seed).
        b: second sample (e.g. a baseline's).
        keep_inf: keep infinite values, which rank beyond every finite one
            (NaN is still dropped): where a diverged run's loss is recorded as
            ``inf``, it then counts as the worst run instead of being left out,
            which would favour the method that diverged.

    Returns:
        A :class:`RankResult`.

    Raises:
        ValueError: if a sample is not 1-D or has no finite value (with
            ``keep_inf``, none that is not NaN).
        ImportError: if scipy (the ``bench`` extra) is not installed.

    Examples:
        >>> from optax_lode.evaluation import rank_test
        >>> r = rank_test([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 9.0])
        >>> r.prob_greater, round(r.p_value, 3)
        (0.75, 0.343)

    References:
        H. B. Mann and D. R. Whitney, "On a test of whether one of two random
        variables is stochastically larger than the other", Annals of
        Mathematical Statistics 18 (1947).
    """
    xa, xb = (_ranked(x, name, keep_inf) for x, name in ((a, "a"), (b, "b")))
    for name, x in (("a", xa), ("b", xb)):
        if x.size == 0:
            what = "non-NaN" if keep_inf else "finite"
            raise ValueError(f"rank_test needs a {what} value in {name}, got none.")
    try:
        from scipy import stats
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "rank_test needs scipy: install the bench extra (in a clone of "
            "optax-lode: pip install -e '.[bench]')."
        ) from e
    exact = max(xa.size, xb.size) <= EXACT_MAX and (
        np.unique(np.concatenate([xa, xb])).size == xa.size + xb.size
    )
    r = stats.mannwhitneyu(
        xa, xb, alternative="two-sided", method="exact" if exact else "asymptotic"
    )
    u = float(r.statistic)
    return RankResult(u / (xa.size * xb.size), float(r.pvalue), u, exact)


class SignedRankResult(NamedTuple):
    """Wilcoxon's signed-rank test of paired samples (:func:`signed_rank_test`).

    Attributes:
        prob_greater: the share of pairs with ``a > b``, ties counting half:
            0.5 when neither tends to be larger.
        p_value: two-sided exact p-value of the null hypothesis that the
            differences ``a - b`` are symmetric about 0.
        w: the signed-rank statistic of ``a``: the sum of the ranks of
            ``|a - b|`` over the pairs with ``a > b`` (ties averaged; pairs
            with ``a == b`` are left out, Wilcoxon's convention).
        n: the pairs compared (neither value NaN, nor infinite unless
            ``keep_inf``).
        exact: whether ``p_value`` is exact (at most
            ``SIGNED_EXACT_MAX`` pairs with a nonzero difference) or from the
            normal approximation.
    """

    prob_greater: float
    p_value: float
    w: float
    n: int
    exact: bool


#: Most nonzero differences for which :func:`signed_rank_test` is exact (its
#: cost grows with the cube of their number: 0.1 s at 500).
SIGNED_EXACT_MAX = 500


def signed_rank_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    keep_inf: bool = False,
) -> SignedRankResult:
    """Wilcoxon's signed-rank test of ``a`` against ``b``, paired by position.

    For rows measured on the same seeds (an ablation's settings, run with
    the reference's seeds): a seed that is hard for every setting then
    cancels out, where :func:`rank_test` sees it as spread. The p-value is
    exact, ties and zero differences included, for up to
    ``SIGNED_EXACT_MAX`` (500) nonzero differences: the statistic's
    distribution under random signs, computed by dynamic programming over
    the (doubled, hence whole) ranks. Beyond, it is the normal approximation
    with the tie and continuity corrections.

    Args:
        a: first sample, one value per seed.
        b: second sample, the same seeds in the same order.
        keep_inf: keep infinite values (a diverged run recorded as ``inf``):
            a pair with one infinite value then counts as the largest
            difference, two equal infinities as a tie. Otherwise a pair with a
            non-finite value is dropped. A pair with a NaN is always dropped.

    Returns:
        A :class:`SignedRankResult`.

    Raises:
        ValueError: if ``a`` and ``b`` differ in length, are not 1-D, or leave
            no pair to compare.

    Examples:
        >>> from optax_lode.evaluation import signed_rank_test
        >>> r = signed_rank_test([1.1, 2.2, 3.3, 4.4, 5.5], [1.0, 2.0, 3.0, 4.0, 5.0])
        >>> r.prob_greater, r.p_value
        (1.0, 0.0625)

    References:
        F. Wilcoxon, "Individual comparisons by ranking methods", Biometrics
        Bulletin 1 (1945).
    """
    xa, xb = (np.asarray(x, dtype=np.float64) for x in (a, b))
    if xa.ndim != 1 or xa.shape != xb.shape:
        raise ValueError(
            "signed_rank_test needs two 1-D samples of one value per seed, in "
            f"the same order; got shapes {xa.shape} and {xb.shape}."
        )
    keep = ~(np.isnan(xa) | np.isnan(xb))
    if not keep_inf:
        keep &= np.isfinite(xa) & np.isfinite(xb)
    xa, xb = xa[keep], xb[keep]
    if xa.size == 0:
        raise ValueError("signed_rank_test has no pair to compare (all NaN?).")
    same = xa == xb  # also inf == inf: both diverged is a tie
    prob_greater = float(np.mean((xa > xb) + 0.5 * same))
    with np.errstate(invalid="ignore"):
        d = np.where(same, 0.0, xa - xb)
    d = d[d != 0]
    if d.size == 0:
        return SignedRankResult(prob_greater, 1.0, 0.0, int(xa.size), True)
    mag = np.abs(d)  # an infinite difference sorts beyond every finite one
    # Average ranks of |d|, doubled so that ties (half ranks) stay whole.
    order = np.argsort(mag, kind="stable")
    ranks2 = np.empty(d.size, dtype=np.int64)
    sorted_mag = mag[order]
    i = 0
    while i < d.size:
        j = i
        while j + 1 < d.size and sorted_mag[j + 1] == sorted_mag[i]:
            j += 1
        ranks2[order[i : j + 1]] = i + j + 2  # 2 x the mean of ranks i+1..j+1
        i = j + 1
    w2 = int(ranks2[d > 0].sum())
    centre2 = ranks2.sum()  # 2 x E[W2], the distribution's symmetry axis
    if d.size > SIGNED_EXACT_MAX:
        # Var(W) = sum(r_i^2) / 4 with the average ranks r_i = ranks2 / 2.
        sd = math.sqrt(float((ranks2.astype(np.float64) ** 2).sum()) / 16.0)
        z = max(0.0, abs(w2 - centre2 / 2.0) / 2.0 - 0.5) / sd
        p_value = min(1.0, math.erfc(z / math.sqrt(2.0)))
        return SignedRankResult(prob_greater, p_value, w2 / 2.0, int(xa.size), False)
    # P(W2 = t) under independent fair signs.
    dist = np.zeros(int(ranks2.sum()) + 1)
    dist[0] = 1.0
    for r in ranks2:  # each pair adds its rank with probability 1/2
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:-r]
        dist = 0.5 * (dist + shifted)
    t = np.arange(dist.size)
    extreme = np.abs(2 * t - centre2) >= abs(2 * w2 - centre2)
    p_value = float(min(1.0, dist[extreme].sum()))
    return SignedRankResult(prob_greater, p_value, w2 / 2.0, int(xa.size), True)


def _ranked(values: Sequence[float] | np.ndarray, name: str, keep_inf: bool):
    if not keep_inf:
        return _finite(values, name)[0]
    x = np.asarray(values, dtype=np.float64)
    _finite(x, name)  # the shape check
    return x[~np.isnan(x)]


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values.

    An ablation table tests each of its rows against one reference: with 11
    rows at ``alpha = 0.05``, one false "different" is more likely than not
    (``1 - 0.95**11 = 43%``). Holm's adjusted p-values bound the chance of
    any false rejection in the family by ``alpha`` (under any dependence
    between the tests) and are never larger than Bonferroni's: sorted
    ascending, the ``i``-th (from 0) of ``m`` is ``(m - i) p_(i)``, made
    non-decreasing and capped at 1.

    Args:
        p_values: the family's p-values, each in [0, 1].

    Returns:
        The adjusted p-values, in the order given (float64).

    Raises:
        ValueError: if ``p_values`` is not 1-D or holds a value outside [0, 1]
            (NaN included).

    Examples:
        >>> from optax_lode.evaluation import holm
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]

    References:
        S. Holm, "A simple sequentially rejective multiple test procedure",
        Scandinavian Journal of Statistics 6 (1979).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError(f"holm needs a 1-D sequence of p-values in [0, 1], got {p}.")
    order = np.argsort(p, kind="stable")
    m = p.size
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(steps, 1.0)
    return out
