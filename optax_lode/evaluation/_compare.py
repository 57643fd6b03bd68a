"""Table-1-style comparison of methods over seeds, with a significance verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from optax_lode.evaluation._stats import Summary, WelchResult, summarize, welch_test


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_methods`.

    Attributes:
        summaries: mean ± std per method, in the order given.
        reference: the method under test (``"LODE"``).
        best_baseline: the strongest other method (None if there is none):
            one that diverged on significantly fewer seeds than the reference,
            if any; else the best mean over at least two finite values among
            those that did not diverge significantly more often; else one of
            those that did (see :func:`compare_methods`).
        test: Welch test of ``reference - best_baseline`` (None if impossible).
        alpha: significance level used for :attr:`verdict`.
        higher_is_better: direction of the metric.
        divergence_p: two-sided Fisher exact p-value of the reference's and the
            best baseline's diverged-run counts (None without a best baseline
            or when neither diverged).
    """

    summaries: dict[str, Summary]
    reference: str
    best_baseline: str | None
    test: WelchResult | None
    alpha: float
    higher_is_better: bool
    divergence_p: float | None = None

    @property
    def verdict(self) -> str:
        """``"wins"``, ``"loses"`` or ``"ties"``: reference against best baseline.

        First divergence: if one of the two diverged on significantly more seeds
        (Fisher's exact test below ``alpha``), it loses, whatever its surviving
        runs reached. Otherwise the finite values decide: a difference whose
        Welch p-value is not below ``alpha`` is a tie, whatever its sign;
        ``"untested"`` when the test could not be run.
        """
        if self.divergence_p is not None and self.divergence_p < self.alpha:
            ref = self.summaries[self.reference]
            best = self.summaries[self.best_baseline]
            return "loses" if _divergence_rate(ref) > _divergence_rate(best) else "wins"
        if self.test is None or not np.isfinite(self.test.p_value):
            return "untested"
        if self.test.p_value >= self.alpha:
            return "ties"
        better = self.test.diff > 0 if self.higher_is_better else self.test.diff < 0
        return "wins" if better else "loses"

    def to_markdown(
        self, *, metric: str = "test metric", scale: float = 1.0, digits: int = 2
    ) -> str:
        """A Markdown table (method, mean ± std, seeds) and the significance line.

        Args:
            metric: column name, e.g. ``"test accuracy (%)"``.
            scale: multiplies every number (``100`` for percent).
            digits: decimals shown.

        Returns:
            The table, the reference's and the best baseline's cells in bold,
            then a line with the verdict and the test behind it (the Fisher
            test of diverged runs when that decided, else Welch's difference,
            interval and p-value), or why there is no test.

        Examples:
            >>> from optax_lode.evaluation import compare_methods
            >>> c = compare_methods({"LODE": [0.9, 0.92], "cos": [0.8, 0.82]})
            >>> md = c.to_markdown(metric="accuracy (%)", scale=100, digits=1)
            >>> print(md)  # doctest: +ELLIPSIS
            | method | accuracy (%) ↑ | seeds |
            |---|---|---|
            | LODE | **91.0 ± 1.4** | 2 |
            | cos | **81.0 ± 1.4** | 2 |
            <BLANKLINE>
            LODE − cos ...: +10.0, 95% CI [...], Welch p = ... **LODE wins** (α = 0.05).
            <BLANKLINE>
        """
        arrow = "↑" if self.higher_is_better else "↓"
        lines = [f"| method | {metric} {arrow} | seeds |", "|---|---|---|"]
        for name, s in self.summaries.items():
            cell = s.format(digits, scale)
            if name == self.reference or name == self.best_baseline:
                cell = f"**{cell}**"
            seeds = f"{s.n}" + (f" (+{s.dropped} diverged)" if s.dropped else "")
            lines.append(f"| {name} | {cell} | {seeds} |")
        text = "\n".join(lines) + "\n"
        if self.divergence_p is not None and self.divergence_p < self.alpha:
            text += (
                f"\nDiverged runs, {self.reference} against {self.best_baseline} "
                f"(best baseline): Fisher p = {self.divergence_p:.3g} → "
                f"**{self.reference} {self.verdict}** (α = {self.alpha}).\n"
            )
        elif self.test is not None:
            t = self.test
            pct = round(100 * t.confidence)
            text += (
                f"\n{self.reference} − {self.best_baseline} (best baseline): "
                f"{t.diff * scale:+.{digits}f}, {pct}% CI "
                f"[{t.ci_low * scale:+.{digits}f}, {t.ci_high * scale:+.{digits}f}], "
                f"Welch p = {t.p_value:.3g} → **{self.reference} {self.verdict}** "
                f"(α = {self.alpha}).\n"
            )
        elif self.best_baseline is None:
            text += f"\nNo significance test: no baseline beside {self.reference}.\n"
        else:
            text += f"\nNo significance test: {self.reference} or the best baseline "
            text += "has fewer than two finite values.\n"
        return text


def compare_methods(
    results: Mapping[str, Sequence[float] | np.ndarray],
    *,
    reference: str = "LODE",
    higher_is_better: bool = True,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> Comparison:
    """Summarises every method and tests ``reference`` against the best other one.

    The best baseline is the strongest rival, chosen after the fact, by the
    verdict's own order. First, a rival that diverged on significantly fewer
    seeds than the reference beats it (the strongest such). Otherwise, the
    best mean of the finite values among the rivals with at least two that
    did not diverge on significantly more seeds (those lose to the
    reference). Otherwise (every rival diverged significantly more often, or
    has fewer than two finite values), one of those. That makes ``"wins"``
    conservative but not ``"loses"``: with ``k`` baselines as good as the
    reference, ``"loses"`` comes out more often than ``alpha / 2`` (no
    correction for the number of baselines; how often is simulated by
    ``python -m benchmarks.verdict_calibration``, shown in the evaluation
    docs). Rivals whose means are equal (to rounding) are decided against the
    reference: the one whose test is least significant, then by name. Diverged
    runs (NaN)
    are dropped from the means and counted; a method that diverged on
    significantly more seeds than the other (Fisher's exact test) loses. Two
    samples without spread (every seed the same value, as accuracies on a
    small test set can be) that differ give ``p = 0``: ``"wins"`` or
    ``"loses"`` from as few as two seeds each.

    Args:
        results: method name -> final metric per seed (NaN for a diverged run).
        reference: the method under test; must be a key of ``results``.
        higher_is_better: direction of the metric (accuracy: True; loss: False).
        alpha: significance level of the verdict.
        confidence: level of the confidence interval of the difference.

    Returns:
        A :class:`Comparison`.

    Raises:
        ValueError: ``reference`` is not a key of ``results``; ``alpha`` is
            not in (0, 1); a method's values are not a 1-D sequence; or
            (when a test is run) ``confidence`` is not in (0, 1).
        ImportError: scipy (the ``bench`` extra) is not installed and a Welch
            test is to be run (:func:`welch_test`).

    Examples:
        >>> from optax_lode.evaluation import compare_methods
        >>> c = compare_methods({"LODE": [0.9, 0.91, 0.92], "cos": [0.8, 0.82, 0.81]})
        >>> c.best_baseline, c.verdict
        ('cos', 'wins')
        >>> round(c.test.diff, 2)
        0.1
    """
    if reference not in results:
        raise ValueError(
            f"reference method {reference!r} is not among the results "
            f"({sorted(results)}); pass reference= one of them."
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    summaries = {name: summarize(v) for name, v in results.items()}
    sign = 1.0 if higher_is_better else -1.0
    ref = summaries[reference]
    others = [n for n in summaries if n != reference]

    def best_mean(names: list[str]) -> str:
        # Means equal but for rounding (exact ties included) are decided
        # against the reference: the rival whose test is least significant,
        # then by name, so neither dict order nor the last bit decides.
        top = max(sign * summaries[n].mean for n in names)
        tied = sorted(
            n
            for n in names
            if math.isclose(sign * summaries[n].mean, top, rel_tol=1e-9, abs_tol=0.0)
        )
        if len(tied) > 1 and ref.n >= 2 and all(summaries[n].n >= 2 for n in tied):
            p = {n: welch_test(results[reference], results[n]).p_value for n in tied}
            return max(tied, key=lambda n: p[n])  # the first of equal ones
        return min(tied, key=lambda n: _divergence_rate(summaries[n]))

    def strongest(names: list[str]) -> str:
        # The best mean over at least two finite values; failing that, over
        # any; failing that (every run diverged), the fewest diverged.
        def rank(n: str) -> tuple:
            s = summaries[n]
            return s.n >= 2, s.n >= 1, -_divergence_rate(s) if s.n == 0 else 0.0

        first = max(rank(n) for n in names)
        group = [n for n in names if rank(n) == first]
        if first[1]:  # finite values: by mean
            return best_mean(group)
        return sorted(group)[0]

    # Divergence first, as the verdict reads it. A rival that diverged on
    # significantly fewer seeds beats the reference whatever the others did
    # (so adding a rival cannot turn a "loses" into a "wins").
    beats = [n for n in others if _diverged_more(ref, summaries[n], alpha)]
    # A rival that diverged on significantly more seeds loses to it: the
    # strongest rival is among the others, tested on their finite values.
    steady = [n for n in others if not _diverged_more(summaries[n], ref, alpha)]
    if beats:
        best = strongest(beats)
    elif tested := [n for n in steady if summaries[n].n >= 2]:
        best = best_mean(tested)
    elif others:
        # Each rival either diverged significantly more often (the reference
        # wins) or has too few finite values to test.
        lost = [n for n in others if n not in steady]
        best = strongest(lost or steady)
    else:
        best = None
    test = divergence_p = None
    if best is not None and ref.n >= 2 and summaries[best].n >= 2:
        test = welch_test(results[reference], results[best], confidence=confidence)
    if best is not None:
        rival = summaries[best]
        if ref.dropped or rival.dropped:
            divergence_p = fisher_exact(
                ref.dropped, ref.n + ref.dropped, rival.dropped, rival.n + rival.dropped
            )
    return Comparison(
        summaries, reference, best, test, alpha, higher_is_better, divergence_p
    )


def _diverged_more(a: Summary, b: Summary, alpha: float) -> bool:
    """Whether ``a`` diverged on significantly more seeds than ``b``."""
    if not a.dropped:
        return False
    p = fisher_exact(a.dropped, a.n + a.dropped, b.dropped, b.n + b.dropped)
    return p < alpha and _divergence_rate(a) > _divergence_rate(b)


def _divergence_rate(s: Summary) -> float:
    """The share of a method's seeds that diverged."""
    return s.dropped / (s.n + s.dropped)


def fisher_exact(a: int, n_a: int, b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value that ``a`` of ``n_a`` and ``b`` of ``n_b``
    come from one rate (summing the hypergeometric probabilities of every
    table as likely as the observed one or less, as ``scipy.stats`` does)."""
    k, n = a + b, n_a + n_b
    lo, hi = max(0, k - n_b), min(n_a, k)

    def prob(x: int) -> float:
        return math.comb(n_a, x) * math.comb(n_b, k - x) / math.comb(n, k)

    observed = prob(a)
    p = sum(q for x in range(lo, hi + 1) if (q := prob(x)) <= observed * (1 + 1e-7))
    return min(1.0, p)
