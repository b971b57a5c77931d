"""Stage 3's statistics against scipy and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from primum.core.analysis.judge.stats import (
    PairwiseDifferences,
    ci_rank,
    cles,
    first_at_most,
    hodges_lehmann,
    holm,
    kth_difference,
    mann_whitney,
    mean_ratio,
    quantile,
    tie_term,
    within_ties,
)


def sorted_array(values: list[float]) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=np.float64))


def brute_differences(canary: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    return np.sort(np.subtract.outer(canary, baseline).ravel())


# Small integers make ties within and across samples; wide floats make rounding near thresholds.
tied = st.lists(st.integers(0, 6).map(float), min_size=1, max_size=60)
spread = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=60)
samples = st.one_of(tied, spread)


# ------------------------------------------------------------------ Mann-Whitney


@given(samples, samples)
@settings(max_examples=300, deadline=None)
def test_mann_whitney_matches_scipy_asymptotic(c: list[float], b: list[float]) -> None:
    canary, baseline = sorted_array(c), sorted_array(b)
    mw = mann_whitney(canary, baseline)
    ref = sps.mannwhitneyu(canary, baseline, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert mw.u == pytest.approx(float(ref.statistic), abs=1e-9)
    assert mw.p_value == pytest.approx(float(ref.pvalue), abs=1e-9)


@pytest.mark.parametrize("n", [30, 1000])
def test_mann_whitney_matches_scipy_on_large_samples(n: int) -> None:
    rng = np.random.default_rng(n)
    canary, baseline = np.sort(rng.lognormal(0, 1, n)), np.sort(rng.lognormal(0.1, 1, n + 7))
    ref = sps.mannwhitneyu(canary, baseline, method="asymptotic")
    mw = mann_whitney(canary, baseline)
    assert abs(mw.u - ref.statistic) < 1e-9
    assert abs(mw.p_value - ref.pvalue) < 1e-9


def test_mann_whitney_all_tied_is_p_one() -> None:
    mw = mann_whitney(np.ones(5), np.ones(3))
    assert (mw.u, mw.p_value, mw.sigma) == (7.5, 1.0, 0.0)


def test_tie_term_counts_groups_of_equal_values() -> None:
    assert tie_term(np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0])) == (8 - 2) + (27 - 3)
    assert tie_term(np.array([1.0, 2.0])) == 0.0
    assert tie_term(np.array([])) == 0.0


# ------------------------------------------------------------------ pairwise differences


@given(samples, samples, st.data())
@settings(max_examples=300, deadline=None)
def test_kth_difference_equals_brute_force(c: list[float], b: list[float], data: st.DataObject) -> None:
    canary, baseline = sorted_array(c), sorted_array(b)
    d = brute_differences(canary, baseline)
    k = data.draw(st.integers(1, len(d)))
    # direct_limit=4 forces the counting search even on these small inputs
    assert kth_difference(canary, baseline, k, direct_limit=4) == d[k - 1]
    assert kth_difference(canary, baseline, k) == d[k - 1]


@pytest.mark.parametrize("seed", range(6))
def test_kth_difference_on_medium_inputs_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 150 + 17 * seed, 190 - 11 * seed
    if seed % 3 == 0:
        canary, baseline = rng.integers(0, 12, n).astype(float), rng.integers(0, 12, m).astype(float)
    elif seed % 3 == 1:
        canary, baseline = np.round(rng.lognormal(-3, 1, n), 3), np.round(rng.lognormal(-3, 1, m), 3)
    else:
        canary, baseline = rng.normal(0.1, 1e-3, n), rng.normal(0.1, 1e-3, m)
    canary, baseline = np.sort(canary), np.sort(baseline)
    d = brute_differences(canary, baseline)
    diffs = PairwiseDifferences(canary, baseline, direct_limit=64)
    for k in sorted({1, 2, len(d) // 3, len(d) // 2, len(d) // 2 + 1, len(d) - 1, len(d),
                     *rng.integers(1, len(d) + 1, 20)}):
        assert diffs.kth(int(k)) == d[k - 1], k


def test_kth_difference_when_most_differences_are_one_value() -> None:
    canary = np.sort(np.concatenate((np.zeros(400), [1.0, 2.0])))
    baseline = np.sort(np.concatenate((np.zeros(500), [-1.0])))
    d = brute_differences(canary, baseline)
    for k in (1, 401, 450, len(d) // 2, len(d) - 3, len(d)):
        assert kth_difference(canary, baseline, k, direct_limit=16) == d[k - 1]


def test_kth_difference_rejects_ranks_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.6"):
        kth_difference(np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]), 7)


def test_first_at_most_counts_like_brute_force_near_rounding() -> None:
    canary = np.sort(np.array([0.1, 0.2, 0.3, 0.7, 1e-9, 3.3]))
    baseline = np.sort(np.array([0.1, 0.1, 0.2, 0.6, 0.3, 1e-9]))
    d = np.subtract.outer(canary, baseline)
    for t in np.unique(d):
        start = first_at_most(canary, baseline, float(t))
        assert int(len(baseline) * len(canary) - start.sum()) == int((d <= t).sum())


# ------------------------------------------------------------------ Hodges-Lehmann and its CI


@given(samples, samples)
@settings(max_examples=200, deadline=None)
def test_hodges_lehmann_estimate_is_the_median_of_differences(c: list[float], b: list[float]) -> None:
    canary, baseline = sorted_array(c), sorted_array(b)
    d = brute_differences(canary, baseline)
    shift = hodges_lehmann(canary, baseline, 0.98, direct_limit=4)
    assert shift.estimate == pytest.approx(float(np.median(d)), rel=1e-12, abs=1e-12)
    assert shift.low == d[shift.k - 1]
    assert shift.high == d[len(d) - shift.k]
    assert shift.low <= shift.estimate <= shift.high


def kayenta_wilcoxon_diff(mu: float, quantile_z: float, x: np.ndarray, y: np.ndarray) -> float:
    """Kayenta's ``MannWhitney.wilcoxonDiff`` (R's wdiff with correct=TRUE), written out with scipy."""
    n, m = len(x), len(y)
    ranks = sps.rankdata(np.concatenate((x - mu, y)))
    _, ties = np.unique(ranks, return_counts=True)
    dz = ranks[:n].sum() - n * (n + 1) / 2 - n * m / 2
    sigma = math.sqrt(n * m / 12 * ((n + m + 1) - float((ties**3 - ties).sum()) / ((n + m) * (n + m - 1))))
    return (dz - 0.5 * np.sign(dz)) / sigma - quantile_z


def kayenta_root(x: np.ndarray, y: np.ndarray, quantile_z: float) -> float:
    """Where Kayenta's root finder lands: the sign change of the step function over the differences."""
    d = np.unique(np.subtract.outer(x, y).ravel())
    if kayenta_wilcoxon_diff(d[0], quantile_z, x, y) <= 0:
        return float(d[0])
    if kayenta_wilcoxon_diff(d[-1], quantile_z, x, y) >= 0:
        return float(d[-1])
    for i in range(len(d)):
        left = (d[i - 1] + d[i]) / 2 if i else d[i] - 1
        right = (d[i] + d[i + 1]) / 2 if i + 1 < len(d) else d[i] + 1
        if kayenta_wilcoxon_diff(left, quantile_z, x, y) > 0 >= kayenta_wilcoxon_diff(right, quantile_z, x, y):
            return float(d[i])
    raise AssertionError("no sign change")


@pytest.mark.parametrize("seed", range(40))
def test_confidence_interval_is_where_kayentas_root_finder_lands(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 35)), int(rng.integers(2, 35))
    if seed % 2:
        canary, baseline = np.sort(rng.normal(0.4, 1, n)), np.sort(rng.normal(0, 1, m))
    else:
        canary, baseline = np.sort(rng.integers(0, 5, n).astype(float)), np.sort(rng.integers(0, 5, m).astype(float))
    if len(np.unique(np.concatenate((canary, baseline)))) == 1:
        pytest.skip("all tied: Kayenta's early Pass, no interval")
    confidence = (0.9, 0.95, 0.98)[seed % 3]
    z = float(sps.norm.ppf(1 - (1 - confidence) / 2))
    shift = hodges_lehmann(canary, baseline, confidence)
    assert shift.low == kayenta_root(canary, baseline, z)
    assert shift.high == kayenta_root(canary, baseline, -z)


def test_ci_rank_follows_the_normal_approximation() -> None:
    # n = m = 1000, no ties: k = ceil(N/2 - 1/2 - z·sqrt(nm(n+m+1)/12))
    z = float(sps.norm.ppf(0.99))
    expected = math.ceil(500_000 - 0.5 - z * math.sqrt(1e6 * 2001 / 12))
    assert ci_rank(1000, 1000, 0.98, 0.0) == expected
    assert ci_rank(1, 1, 0.98, 0.0) == 1  # clamped to the extreme difference
    assert ci_rank(50, 50, 0.9, 0.0) > ci_rank(50, 50, 0.99, 0.0)  # wider at higher confidence


def test_within_ties_ignores_ties_across_samples() -> None:
    assert within_ties(np.array([1.0, 1.0]), np.array([1.0, 2.0])) == 6.0


def test_hodges_lehmann_is_fast_and_exact_for_a_thousand_by_a_thousand() -> None:
    rng = np.random.default_rng(11)
    canary, baseline = np.sort(rng.lognormal(-3, 0.5, 1000)), np.sort(rng.lognormal(-2.9, 0.5, 1000))
    d = brute_differences(canary, baseline)
    shift = hodges_lehmann(canary, baseline, 0.98)
    assert shift.estimate == float(np.median(d))
    assert (shift.low, shift.high) == (d[shift.k - 1], d[len(d) - shift.k])


# ------------------------------------------------------------------ effects, quantiles, Holm


def test_mean_ratio_and_its_undefined_case() -> None:
    assert mean_ratio(np.array([2.0, 4.0]), np.array([1.0, 2.0])) == 2.0
    assert math.isnan(mean_ratio(np.array([1.0]), np.array([0.0, 0.0])))
    assert math.isnan(mean_ratio(np.array([0.0]), np.array([1.0])))


def test_cles_is_u_over_pairs() -> None:
    canary, baseline = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0])
    # pairs with canary > baseline: 3 > 2 twice; ties: 2 = 2 twice -> (2 + 1) / 6
    assert cles(mann_whitney(canary, baseline).u, 3, 2) == pytest.approx(0.5)
    assert cles(mann_whitney(np.array([5.0]), np.array([1.0])).u, 1, 1) == 1.0


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.floats(0, 1))
def test_quantile_is_numpys_linear_quantile(values: list[float], q: float) -> None:
    ordered = sorted_array(values)
    assert quantile(ordered, q) == pytest.approx(float(np.quantile(ordered, q)), rel=1e-12, abs=1e-9)


def test_quantile_matches_kayentas_percentile_tests() -> None:
    # Kayenta's percentile: linear interpolation; e.g. p5 of 0, 0.5, ..., 3.5 is 0.175
    assert quantile(np.arange(8) / 2, 0.05) == pytest.approx(0.175)
    assert quantile(np.arange(10.0), 0.5) == 4.5


def test_holm_adjusts_in_input_order() -> None:
    # sorted: 0.01 (x3) -> 0.03, 0.02 (x2) -> 0.04, 0.04 (x1) -> 0.04 (monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    assert holm([0.003]) == [0.003]
