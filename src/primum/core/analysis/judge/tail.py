"""Primum mode: the tail check. A regression that slows a few requests a lot (one
tenant's queries, a cold cache path) widens the tail while the median, and so
the rank test, barely moves.

A sample's p99 is a noisy thing: of 1,000 requests only about 10 lie above it,
and of 60 (one tenant's slice of a short window) none needs to. Comparing two
point estimates therefore holds healthy versions whose distribution is only a
little wider, so the check accounts for sampling error on both sides, with
distribution-free (order-statistic) confidence bounds and nothing random:

1. **Enough tail.** Each side must have at least ``min_tail_samples``
   observations expected above its q-quantile (``n x (1 - q)``: 500 requests for
   5 above the p99). With fewer the check is Nodata (shown, skipped): a tail the
   data cannot see is neither a pass nor a failure.
2. **The baseline's quantile, from above.** ``baseline_high`` is the one-sided
   upper confidence bound of the baseline's q-quantile at ``1 - alpha/2``: the
   order statistic ``X_(j)`` with ``j - 1`` the ``1 - alpha/2`` quantile of
   ``Binomial(m, q)``. The limit is ``baseline_high x max_ratio + slack``.
3. **The canary's quantile, from below.** The canary's q-quantile is above the
   limit with confidence ``1 - alpha/2`` exactly when more canary samples lie
   above the limit than ``Binomial(n, 1 - q)`` explains: the exact one-sided
   binomial test on that count, at level ``alpha/2``.

The check fails (High) when 3 rejects. A false failure needs the baseline's
bound to fall short of its true quantile or the canary's test to reject
wrongly, each at most ``alpha/2``, so when the canary's true q-quantile is
within ``max_ratio x`` the baseline's ``+ slack`` the check fails with
probability at most ``alpha``, for any continuous distribution.

``moved`` (the count above the limit significant at ``alpha``, a looser bar
than the failure's ``alpha/2``) is what tenant slices ask of the aggregate: a
slice's tail may fail only when the overall tail moved too (see ``slices.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from primum.core.analysis.data import Classification
from primum.core.analysis.judge.stats import FloatArray, quantile
from primum.core.model.analysis import TailCheck


@dataclass(frozen=True)
class TailTest:
    quantile: float
    baseline_q: float  # point estimates, for the sentence
    canary_q: float
    baseline_high: float | None  # upper confidence bound of the baseline's quantile; None without enough tail
    limit: float | None  # baseline_high x max_ratio + slack
    above: int  # canary samples above the limit
    n: int  # canary samples
    m: int  # baseline samples
    expected: float  # the largest fraction above the limit a canary within it may have: 1 - q
    p_value: float  # binomial, one-sided: more canary samples above the limit than 1 - q explains
    level: float  # the significance level of each side: alpha / 2
    min_tail: int  # min_tail_samples
    classification: Classification  # Pass, High, or Nodata (too little tail on a side)

    @property
    def moved(self) -> bool:
        """More canary samples are above the limit than a quantile within it explains, at ``alpha`` (twice
        the level a failure needs): what a tenant slice's tail failure asks of the aggregate."""
        return self.limit is not None and self.p_value < 2.0 * self.level

    @property
    def judged(self) -> bool:
        return self.classification is not Classification.nodata


def check_name(tail: TailCheck) -> str:
    """``tail-p99`` for q=0.99, ``tail-p99.9`` for 0.999."""
    return f"tail-p{100 * tail.quantile:.10g}"


def tail_count(n: int, q: float) -> int:
    """How many of ``n`` observations are expected above the q-quantile (rounded down)."""
    return math.floor(n * (1.0 - q) + 1e-9)


def needed_samples(tail: TailCheck) -> int:
    """The smallest sample with ``min_tail_samples`` expected above the quantile."""
    return math.ceil(tail.min_tail_samples / (1.0 - tail.quantile) - 1e-9)


def upper_bound(ordered: FloatArray, q: float, level: float) -> float | None:
    """One-sided ``1 - level`` upper confidence bound of the q-quantile of a sorted sample: the order
    statistic ``X_(j)`` with ``P(Binomial(m, q) <= j - 1) >= 1 - level``; None when it lies beyond the sample."""
    m = len(ordered)
    j = int(stats.binom.ppf(1.0 - level, m, q)) + 1  # 1-based
    return float(ordered[j - 1]) if 1 <= j <= m else None


def tail_test(canary: FloatArray, baseline: FloatArray, tail: TailCheck, alpha: float) -> TailTest:
    """Compare the upper tails of two sorted, non-empty samples."""
    q, level = tail.quantile, alpha / 2.0
    n, m = len(canary), len(baseline)
    baseline_q, canary_q = quantile(baseline, q), quantile(canary, q)
    enough = min(tail_count(n, q), tail_count(m, q)) >= tail.min_tail_samples
    high = upper_bound(baseline, q, level) if enough else None
    if high is None:
        return TailTest(quantile=q, baseline_q=baseline_q, canary_q=canary_q, baseline_high=None, limit=None,
                        above=0, n=n, m=m, expected=1.0 - q, p_value=1.0, level=level,
                        min_tail=tail.min_tail_samples, classification=Classification.nodata)
    limit = high * tail.max_ratio + tail.slack
    above = int(n - np.searchsorted(canary, limit, side="right"))
    p = float(stats.binom.sf(above - 1, n, 1.0 - q)) if above > 0 else 1.0
    return TailTest(quantile=q, baseline_q=baseline_q, canary_q=canary_q, baseline_high=high, limit=limit,
                    above=above, n=n, m=m, expected=1.0 - q, p_value=p, level=level,
                    min_tail=tail.min_tail_samples,
                    classification=Classification.high if p < level else Classification.passed)
