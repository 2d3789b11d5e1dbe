"""The statistics a report needs: a mean with its 95% confidence interval, and a paired test.

Intervals use Student's t distribution, which is what a handful of seeds calls for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    """``n`` values: their mean, sample standard deviation and 95% confidence interval."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def summarize(values: Sequence[float]) -> Summary:
    """Mean, standard deviation (n - 1) and t-interval of the finite ``values``; the spread and
    interval are NaN below two values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + LEVEL) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """The mean difference ``b - a`` over matched pairs, its 95% interval and the two-sided
    p-value of the paired t-test."""

    n: int
    diff: Summary
    p: float


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Compare ``b`` with ``a``, matched by position (e.g. the same seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} != {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    diff = summarize([y - x for x, y in pairs])
    p = math.nan
    if diff.n >= 2:
        if diff.std == 0:
            p = 1.0 if diff.mean == 0 else 0.0
        else:
            p = float(stats.ttest_rel([y for _, y in pairs], [x for x, _ in pairs]).pvalue)
    return Paired(diff.n, diff, p)


# -- beyond the t-interval: what a reviewer asks for ------------------------------------------
RESAMPLES = 10_000
IQM_FROM = 10  # the interquartile mean is shown for groups of at least this many repeats


def bootstrap_interval(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of the finite ``values`` (resampling the
    repeats); NaNs below two values. It assumes no normal distribution, unlike the t-interval,
    and is the one to read when a few seeds fail or diverge."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def interquartile_mean(values: Sequence[float]) -> float:
    """The mean of the middle half of the finite ``values`` (25% trimmed from each end): robust
    to a few outlying seeds, yet uses more of the data than the median."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    return float(stats.trim_mean(x, 0.25)) if len(x) else math.nan


@dataclass(frozen=True)
class Improvement:
    """P(B > A): the probability that B's result beats A's, its 95% bootstrap interval."""

    p: float
    low: float
    high: float


def _improves(a: np.ndarray, b: np.ndarray, higher_is_better: bool) -> float:
    """The share of pairs in which ``b`` beats ``a``, ties counting half."""
    d = b - a if higher_is_better else a - b
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / len(d))


def probability_of_improvement(
    a: Sequence[float],
    b: Sequence[float],
    higher_is_better: bool = True,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Improvement:
    """P(B > A) over matched pairs (e.g. the same seed): the share of pairs where ``b`` is
    better, with a bootstrap interval that resamples the pairs. 0.5 is no difference; unlike a
    mean difference it does not let one large seed decide."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} != {len(b)}")
    pairs = np.asarray(
        [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)],
        dtype=float,
    ).reshape(-1, 2)
    if len(pairs) == 0:
        return Improvement(math.nan, math.nan, math.nan)
    p = _improves(pairs[:, 0], pairs[:, 1], higher_is_better)
    if len(pairs) < 2:
        return Improvement(p, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
    d = pairs[picks, 1] - pairs[picks, 0]
    if not higher_is_better:
        d = -d
    shares = ((d > 0).sum(axis=1) + 0.5 * (d == 0).sum(axis=1)) / len(pairs)
    low, high = np.quantile(shares, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Improvement(p, float(low), float(high))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` for testing them together (e.g. every removal
    of an ablation): controls the chance of any false "it matters" at 5%, without assuming the
    tests are independent. NaNs stay NaN and do not count."""
    finite = [(p, i) for i, p in enumerate(pvalues) if math.isfinite(p)]
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    m = len(finite)
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def expected_max(values: Sequence[float], n: int) -> tuple[float, float]:
    """The expected best of ``n`` trials drawn with replacement from ``values``, and its
    standard deviation (Dodge et al. 2019, "Show your work": the tuning curve's point at ``n``).

    With the ``N`` finite values sorted, ``v_(1) <= ... <= v_(N)``, the best of ``n`` draws is
    ``v_(i)`` with probability ``(i/N)^n - ((i-1)/N)^n``. Higher is better: negate the values
    of a metric to minimise first.
    """
    x = np.sort(np.asarray([v for v in values if math.isfinite(v)], dtype=float))
    count = len(x)
    if count == 0 or n < 1:
        return math.nan, math.nan
    ranks = np.arange(1, count + 1) / count
    weights = ranks**n - (ranks - 1 / count) ** n
    mean = float(np.sum(weights * x))
    return mean, float(math.sqrt(max(float(np.sum(weights * x**2)) - mean**2, 0.0)))
