"""Primum mode's tests on counts and tails, one by one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from primum.core.analysis.data import Classification, Samples
from primum.core.analysis.judge.proportions import (
    CountProblem,
    Counts,
    RateWhy,
    fisher_test,
    rate_above,
    rate_below,
    read_counts,
)
from primum.core.analysis.judge.tail import check_name, tail_test
from primum.core.model.analysis import Direction, TailCheck


def fisher(canary: tuple[int, int], baseline: tuple[int, int], direction: Direction = Direction.increase,
           alpha: float = 0.02, min_rate_increase: float = 0.01):
    return fisher_test(Counts(*canary), Counts(*baseline), direction=direction, alpha=alpha,
                       min_rate_increase=min_rate_increase)


@pytest.mark.parametrize(("samples", "expected"), [
    (None, CountProblem.missing),
    (Samples(values=[0.1]), CountProblem.missing),
    (Samples(events=3), CountProblem.missing),
    (Samples(events=0, total=0), CountProblem.empty),
    (Samples(events=5, total=3), CountProblem.invalid),
    (Samples(events=-1, total=3), CountProblem.invalid),
    (Samples(events=2, total=9), Counts(2, 9)),
])
def test_read_counts(samples: Samples | None, expected: object) -> None:
    assert read_counts(samples) == expected


def test_fisher_is_one_sided_in_the_direction_that_matters() -> None:
    table = [[12, 28], [1, 159]]
    test = fisher((12, 40), (1, 160))
    assert test.p_value == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert (test.classification, test.why) == (Classification.high, RateWhy.significant)
    assert test.difference == pytest.approx(0.3 - 1 / 160)
    down = fisher((12, 40), (1, 160), Direction.decrease)
    assert down.p_value == pytest.approx(stats.fisher_exact(table, alternative="less").pvalue)
    assert down.classification is Classification.passed


def test_either_direction_is_two_sided() -> None:
    test = fisher((1, 200), (30, 200), Direction.either)
    assert test.p_value == pytest.approx(stats.fisher_exact([[1, 199], [30, 170]]).pvalue)
    assert test.classification is Classification.low


def test_zero_inflated_counts_are_judged_on_counts() -> None:
    """No errors at all on the baseline and a few on the canary: a rank test on a per-step series
    sees mostly zeros; the exact test on the counts sees the regression."""
    test = fisher((8, 400), (0, 2000))
    assert test.p_value < 1e-6 and test.classification is Classification.high


def test_a_significant_but_tiny_increase_does_not_count() -> None:
    test = fisher((700, 100_000), (500, 100_000), min_rate_increase=0.01)
    assert test.p_value < 0.02
    assert (test.classification, test.why) == (Classification.passed, RateWhy.small)
    assert fisher((700, 100_000), (500, 100_000), min_rate_increase=0.001).classification is Classification.high


def test_not_significant_passes() -> None:
    test = fisher((2, 100), (1, 100))
    assert (test.classification, test.why) == (Classification.passed, RateWhy.not_significant)


def test_binomial_bounds_match_scipy() -> None:
    c = Counts(30, 1000)
    assert rate_above(c, 0.01) == pytest.approx(stats.binomtest(30, 1000, 0.01, alternative="greater").pvalue)
    assert rate_below(c, 0.05) == pytest.approx(stats.binomtest(30, 1000, 0.05, alternative="less").pvalue)
    assert rate_above(Counts(0, 10), 0.0) == 1.0 and rate_above(Counts(1, 10), 0.0) == 0.0
    assert rate_above(Counts(10, 10), 1.0) == 1.0
    assert rate_below(Counts(9, 10), 1.0) == 0.0 and rate_below(Counts(0, 10), 0.0) == 1.0


# ------------------------------------------------------------------ tail


def test_tail_check_catches_a_wider_tail_with_the_same_median() -> None:
    rng = np.random.default_rng(3)
    baseline = np.sort(rng.lognormal(np.log(0.05), 0.3, 2000))
    canary = rng.lognormal(np.log(0.05), 0.3, 2000)
    canary[:100] += 0.5  # 5% of requests 500 ms slower
    canary = np.sort(canary)
    t = tail_test(canary, baseline, TailCheck(), alpha=0.02)
    # the limit starts from the baseline p99's 99% upper bound, an order statistic above the point estimate
    assert t.baseline_high is not None and t.baseline_high >= t.baseline_q
    assert t.baseline_high in baseline
    assert t.limit == pytest.approx(t.baseline_high * 1.5 + 0.05) and t.canary_q > t.limit
    assert t.above >= 100 and t.p_value < 1e-10 and t.level == 0.01
    assert t.classification is Classification.high
    assert t.p_value == pytest.approx(stats.binom.sf(t.above - 1, 2000, 0.01))


def test_tail_check_needs_enough_tail_and_the_significance() -> None:
    rng = np.random.default_rng(4)
    small_b = np.sort(rng.lognormal(np.log(0.05), 0.3, 400))
    small_c = np.sort(rng.lognormal(np.log(0.05), 0.3, 400))
    # 400 samples put 4 above their p99: too few to see a p99, so not judged (neither pass nor fail)
    assert tail_test(small_c, small_b, TailCheck(), alpha=0.02).classification is Classification.nodata
    assert tail_test(small_c, small_b, TailCheck(min_tail_samples=4), alpha=0.02).classification \
        is Classification.nodata  # the baseline p99's upper bound lies beyond its largest sample
    baseline = np.sort(rng.lognormal(np.log(0.05), 0.3, 2000))
    same = np.sort(rng.lognormal(np.log(0.05), 0.3, 2000))
    assert tail_test(same, baseline, TailCheck(), alpha=0.02).classification is Classification.passed
    # 30 of 2000 (1.5%) slow samples push the canary p99 over the limit, but 1.5% above it is not
    # significantly more than the 1% a p99 within the limit allows
    slow = same.copy()
    slow[-30:] = 0.3
    t = tail_test(np.sort(slow), baseline, TailCheck(), alpha=0.02)
    assert t.canary_q > t.limit and t.p_value >= t.level and not t.moved
    assert t.classification is Classification.passed
    slow[-35:] = 0.3
    assert tail_test(np.sort(slow), baseline, TailCheck(), alpha=0.02).classification is Classification.high


def test_tail_check_name_follows_the_quantile() -> None:
    assert check_name(TailCheck()) == "tail-p99"
    assert check_name(TailCheck(quantile=0.999)) == "tail-p99.9"
    assert check_name(TailCheck(quantile=0.95)) == "tail-p95"
