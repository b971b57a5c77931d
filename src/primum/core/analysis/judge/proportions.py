"""Primum mode for proportions (errors, any bad events among all events).

A per-step error-rate series is mostly zeros at healthy error rates, so a rank
test on it sees ties and little else. The counts carry the evidence: Fisher's
exact test on the 2x2 table (bad/good x canary/baseline), one-sided in the
direction that matters, and a minimum absolute rate increase so a significant
but tiny difference does not fail a release. Absolute bounds (the SLO's error
rate, a ``rate`` threshold) use the exact binomial test on the canary alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scipy import stats

from primum.core.analysis.data import Classification, Samples
from primum.core.model.analysis import Direction

_ALTERNATIVE = {Direction.increase: "greater", Direction.decrease: "less", Direction.either: "two-sided"}


@dataclass(frozen=True)
class Counts:
    events: int
    total: int

    @property
    def rate(self) -> float:
        return self.events / self.total if self.total else 0.0


class CountProblem(StrEnum):
    missing = "missing"  # no events/total reported: no data
    empty = "empty"  # total 0: no data
    invalid = "invalid"  # negative, or more events than the total: an error


def read_counts(samples: Samples | None) -> Counts | CountProblem:
    if samples is None or samples.events is None or samples.total is None:
        return CountProblem.missing
    if samples.events < 0 or samples.total < 0 or samples.events > samples.total:
        return CountProblem.invalid
    if samples.total == 0:
        return CountProblem.empty
    return Counts(events=samples.events, total=samples.total)


class RateWhy(StrEnum):
    significant = "significant"
    not_significant = "not-significant"
    small = "small"  # significant, but the rate moved less than min_rate_increase


@dataclass(frozen=True)
class RateTest:
    canary: Counts
    baseline: Counts
    difference: float  # canary rate - baseline rate
    p_value: float
    odds_ratio: float
    classification: Classification
    why: RateWhy


def fisher_test(canary: Counts, baseline: Counts, *, direction: Direction, alpha: float,
                min_rate_increase: float) -> RateTest:
    """Fisher's exact test of the canary's rate against the baseline's."""
    table = [[canary.events, canary.total - canary.events], [baseline.events, baseline.total - baseline.events]]
    result = stats.fisher_exact(table, alternative=_ALTERNATIVE[direction])
    p = float(result.pvalue)
    odds = float(result.statistic)
    difference = canary.rate - baseline.rate
    classification, why = classify_rate(p, difference, direction, alpha, min_rate_increase)
    return RateTest(canary=canary, baseline=baseline, difference=difference, p_value=p, odds_ratio=odds,
                    classification=classification, why=why)


def classify_rate(p: float, difference: float, direction: Direction, alpha: float,
                  min_rate_increase: float) -> tuple[Classification, RateWhy]:
    """Significant at ``alpha``, and moved by more than ``min_rate_increase`` in a direction that matters."""
    if p >= alpha:
        return Classification.passed, RateWhy.not_significant
    if direction is not Direction.decrease and difference > min_rate_increase:
        return Classification.high, RateWhy.significant
    if direction is not Direction.increase and -difference > min_rate_increase:
        return Classification.low, RateWhy.significant
    return Classification.passed, RateWhy.small


def rate_above(counts: Counts, limit: float) -> float:
    """One-sided exact binomial p-value that the true rate exceeds ``limit``."""
    if limit <= 0.0:
        return 0.0 if counts.events else 1.0
    if limit >= 1.0:
        return 1.0
    return float(stats.binomtest(counts.events, counts.total, limit, alternative="greater").pvalue)


def rate_below(counts: Counts, limit: float) -> float:
    """One-sided exact binomial p-value that the true rate is below ``limit``."""
    if limit >= 1.0:
        return 0.0 if counts.events < counts.total else 1.0
    if limit <= 0.0:
        return 1.0
    return float(stats.binomtest(counts.events, counts.total, limit, alternative="less").pvalue)
