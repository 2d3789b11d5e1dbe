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
