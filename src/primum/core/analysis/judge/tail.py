"""Primum mode: the tail check. A regression that slows a few requests a lot (one
tenant's queries, a cold cache path) widens the tail while the median, and so
the rank test, barely moves.

The canary's q-quantile fails against the baseline's when it is above
``baseline_q x max_ratio + slack`` AND the excess is significant: under no
change a fraction ``1 - q`` of canary samples falls above the baseline's
q-quantile, so an exact one-sided binomial test on how many do guards the
point estimate (which is noisy at small n) against false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from primum.core.analysis.data import Classification
from primum.core.analysis.judge.stats import FloatArray, quantile
from primum.core.model.analysis import TailCheck


@dataclass(frozen=True)
class TailTest:
    quantile: float
    baseline_q: float
    canary_q: float
    limit: float  # baseline_q x max_ratio + slack
    above: int  # canary samples above baseline_q
    n: int
    expected: float  # the fraction above expected under no change: 1 - q
    p_value: float
    classification: Classification


def check_name(tail: TailCheck) -> str:
    """``tail-p99`` for q=0.99, ``tail-p99.9`` for 0.999."""
    return f"tail-p{100 * tail.quantile:.10g}"


def tail_test(canary: FloatArray, baseline: FloatArray, tail: TailCheck, alpha: float) -> TailTest:
    """Compare the upper tails of two sorted, non-empty samples."""
    q = tail.quantile
    baseline_q, canary_q = quantile(baseline, q), quantile(canary, q)
    limit = baseline_q * tail.max_ratio + tail.slack
    above = int(len(canary) - np.searchsorted(canary, baseline_q, side="right"))
    p = float(stats.binomtest(above, len(canary), 1.0 - q, alternative="greater").pvalue)
    failed = canary_q > limit and p < alpha
    return TailTest(quantile=q, baseline_q=baseline_q, canary_q=canary_q, limit=limit, above=above,
                    n=len(canary), expected=1.0 - q, p_value=p,
                    classification=Classification.high if failed else Classification.passed)
