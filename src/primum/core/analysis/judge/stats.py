"""Rank statistics of two samples: Mann-Whitney U, the Hodges-Lehmann shift and
its confidence interval, effect sizes, quantiles and the Holm correction.

Pure numpy. Arrays named ``canary`` and ``baseline`` are float64, sorted
ascending and free of NaN; the caller cleans and sorts them once. Differences
are always ``canary - baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

# Up to this many pairwise differences are formed and partitioned directly;
# beyond it the k-th difference is found by counting (see ``kth_difference``).
DIRECT_LIMIT = 8192


@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Wilcoxon rank-sum test, as ``scipy.stats.mannwhitneyu(canary,
    baseline, method="asymptotic", use_continuity=True)``."""

    u: float  # the canary's U: pairs with canary > baseline, ties counting one half
    p_value: float
    z: float
    sigma: float  # standard deviation of U under the null hypothesis, tie-corrected


@dataclass(frozen=True)
class Shift:
    """The Hodges-Lehmann shift (median of all differences) and its confidence interval
    ``[d_(k), d_(N+1-k)]`` among the ``N = n·m`` sorted differences."""

    estimate: float
    low: float
    high: float
    k: int
    confidence: float


def tie_term(ordered: FloatArray) -> float:
    """Sum of ``t³ - t`` over the groups of equal values of a sorted array."""
    if len(ordered) < 2:
        return 0.0
    starts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    sizes = np.diff(np.concatenate(([0], starts, [len(ordered)]))).astype(np.float64)
    return float(np.sum(sizes**3 - sizes))


def rank_sum_u(canary: FloatArray, baseline: FloatArray) -> float:
    """U of the canary: for each canary value, the baseline values below it plus half the equal ones."""
    below = np.searchsorted(baseline, canary, side="left")
    at_or_below = np.searchsorted(baseline, canary, side="right")
    return float(int(below.sum()) + int(at_or_below.sum())) / 2.0


def mann_whitney(canary: FloatArray, baseline: FloatArray) -> MannWhitney:
    """U, and the two-sided p-value from the normal approximation with tie and continuity correction."""
    n, m = len(canary), len(baseline)
    u = rank_sum_u(canary, baseline)
    total = n + m
    ties = tie_term(np.sort(np.concatenate((canary, baseline)), kind="stable"))
    variance = n * m / 12.0 * ((total + 1) - ties / (total * (total - 1))) if total > 1 else 0.0
    sigma = math.sqrt(max(variance, 0.0))
    if sigma == 0.0:  # every value tied (or one value in all): nothing to test
        return MannWhitney(u=u, p_value=1.0, z=0.0, sigma=0.0)
    z = (max(u, n * m - u) - n * m / 2.0 - 0.5) / sigma
    p = min(1.0, max(0.0, 2.0 * float(special.ndtr(-z))))
    return MannWhitney(u=u, p_value=p, z=z, sigma=sigma)


# ------------------------------------------------------------ pairwise differences


def first_at_most(canary: FloatArray, baseline: FloatArray, t: float) -> IndexArray:
    """Per canary value ``c``, the first baseline index ``j`` with ``c - baseline[j] <= t``.

    Differences fall as ``j`` rises, so the differences at or below ``t`` of one
    canary value are exactly ``baseline[j:]``. ``searchsorted`` on ``c - t`` gives the
    index in exact arithmetic; the loops then settle it against the float
    differences themselves (rounding can disagree near ``t``), stepping over whole
    groups of equal baseline values, so counts match a brute force bit for bit.
    """
    m = len(baseline)
    start = np.searchsorted(baseline, canary - t, side="left")
    while True:  # move left while the previous difference is still <= t
        rows = np.flatnonzero(start > 0)
        rows = rows[canary[rows] - baseline[start[rows] - 1] <= t]
        if not len(rows):
            break
        start[rows] = np.searchsorted(baseline, baseline[start[rows] - 1], side="left")
    while True:  # move right while the difference at start is still > t
        rows = np.flatnonzero(start < m)
        rows = rows[canary[rows] - baseline[start[rows]] > t]
        if not len(rows):
            break
        start[rows] = np.searchsorted(baseline, baseline[start[rows]], side="right")
    return start


def _window(canary: FloatArray, baseline: FloatArray, hi: IndexArray, lo: IndexArray) -> FloatArray:
    """The differences with baseline index in ``[hi[i], lo[i])`` for each canary value ``i``."""
    counts = lo - hi
    rows = np.flatnonzero(counts > 0)
    sizes = counts[rows]
    row_of = np.repeat(rows, sizes)
    offset = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return canary[row_of] - baseline[hi[row_of] + offset]


class PairwiseDifferences:
    """Order statistics of the ``n·m`` differences ``canary[i] - baseline[j]`` of two sorted arrays.

    Small inputs form the differences and partition them. Large ones never do:
    the k-th is bracketed by two thresholds ``lo < answer <= hi`` with
    ``count(lo) < k <= count(hi)``, where ``count(t)`` is the number of
    differences ``<= t`` (``first_at_most``, O(n log m)). Each round narrows the
    bracket by interpolating on the counts (or halving, when interpolation stalls)
    between the smallest and the largest actual difference inside it, so it
    shrinks by at least one difference a round and ends on actual values; once
    few enough differences remain inside, they are formed and partitioned. Every
    count is remembered, so the next order statistic starts from the tightest
    bracket the earlier ones left (the median and the CI bounds are close).
    """

    def __init__(self, canary: FloatArray, baseline: FloatArray, *, direct_limit: int = DIRECT_LIMIT) -> None:
        self.canary, self.baseline = canary, baseline
        self.n, self.m = len(canary), len(baseline)
        self.total = self.n * self.m
        self.direct_limit = direct_limit
        self._all: FloatArray | None = None
        # count -> first_at_most() of a threshold with that count: below everything, above everything
        self._probes: dict[int, IndexArray] = {0: np.full(self.n, self.m, dtype=np.intp),
                                               self.total: np.zeros(self.n, dtype=np.intp)}

    def kth(self, k: int) -> float:
        """The k-th smallest difference (1-based)."""
        if not 1 <= k <= self.total:
            raise ValueError(f"k={k} is outside 1..{self.total}")
        if self.total <= self.direct_limit:
            if self._all is None:
                self._all = np.sort(np.subtract.outer(self.canary, self.baseline).ravel())
            return float(self._all[k - 1])
        lo_count = max(c for c in self._probes if c < k)
        hi_count = min(c for c in self._probes if c >= k)
        aim_low, interpolate = True, True
        while True:
            lo_start, hi_start = self._probes[lo_count], self._probes[hi_count]
            inside = hi_count - lo_count
            if inside <= self.direct_limit:
                d = _window(self.canary, self.baseline, hi_start, lo_start)
                return float(np.partition(d, k - lo_count - 1)[k - lo_count - 1])
            rows = np.flatnonzero(lo_start > hi_start)
            smallest = float(np.min(self.canary[rows] - self.baseline[lo_start[rows] - 1]))
            largest = float(np.max(self.canary[rows] - self.baseline[hi_start[rows]]))
            if smallest == largest:  # every difference left inside is the same value
                return smallest
            if interpolate:
                # Aim a little below and a little above k in turn, so both ends close in.
                target = k - lo_count + (-0.25 if aim_low else 0.25) * self.direct_limit
                aim_low = not aim_low
                t = smallest + (largest - smallest) * min(max(target / inside, 0.0), 1.0)
            else:
                t = smallest + (largest - smallest) / 2.0
            if not smallest <= t < largest:
                t = smallest + (largest - smallest) / 2.0
                if t >= largest:  # adjacent floats: only the smaller can split the bracket
                    t = smallest
            start = first_at_most(self.canary, self.baseline, t)
            count = self.total - int(start.sum())
            self._probes[count] = start
            if count >= k:
                hi_count = count
            else:
                lo_count = count
            interpolate = (hi_count - lo_count) <= inside / 2  # halve next round when interpolation stalled


def kth_difference(canary: FloatArray, baseline: FloatArray, k: int, *, direct_limit: int = DIRECT_LIMIT) -> float:
    """The k-th smallest (1-based) of the differences ``canary[i] - baseline[j]``; see ``PairwiseDifferences``."""
    return PairwiseDifferences(canary, baseline, direct_limit=direct_limit).kth(k)


def within_ties(canary: FloatArray, baseline: FloatArray) -> float:
    """Tie term of each sample on its own: the ties the CI's variance sees away from the pairwise differences."""
    return tie_term(canary) + tie_term(baseline)


def ci_rank(n: int, m: int, confidence: float, ties: float) -> int:
    """Rank k of the lower bound ``d_(k)`` of the confidence interval.

    Kayenta (and R's ``wilcox.test(conf.int=TRUE)`` in its asymptotic branch)
    find the bounds as the roots of ``(U(mu) - N/2 - ½·sign)/sigma = ±z``, where
    ``U(mu)`` counts the differences above ``mu``; that step function changes sign
    at the order statistic ``d_(k)`` with ``k = ceil(N/2 - ½ - z·sigma)``, and at
    ``d_(N+1-k)`` for the upper bound (clamped to ``1..N``, where the root finder
    falls back to the extreme difference).
    """
    total_n = n * m
    z = float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))
    size = n + m
    variance = n * m / 12.0 * ((size + 1) - ties / (size * (size - 1))) if size > 1 else 0.0
    k = math.ceil(total_n / 2.0 - 0.5 - z * math.sqrt(max(variance, 0.0)))
    return min(max(k, 1), total_n)


def hodges_lehmann(canary: FloatArray, baseline: FloatArray, confidence: float, *,
                   direct_limit: int = DIRECT_LIMIT) -> Shift:
    """Median of the differences and its confidence interval at ``confidence``."""
    n, m = len(canary), len(baseline)
    total = n * m
    differences = PairwiseDifferences(canary, baseline, direct_limit=direct_limit)
    middle = differences.kth((total + 1) // 2)
    estimate = middle if total % 2 else (middle + differences.kth(total // 2 + 1)) / 2.0
    k = ci_rank(n, m, confidence, within_ties(canary, baseline))
    return Shift(estimate=estimate, low=differences.kth(k), high=differences.kth(total + 1 - k), k=k,
                 confidence=confidence)


# ------------------------------------------------------------ effects and summaries


def mean_ratio(canary: FloatArray, baseline: FloatArray) -> float:
    """Canary mean / baseline mean; NaN when either mean is zero (as Kayenta: the effect check is then skipped)."""
    c, b = float(np.mean(canary)), float(np.mean(baseline))
    return math.nan if c == 0.0 or b == 0.0 else c / b


def cles(u: float, n: int, m: int) -> float:
    """Common-language effect size: P(canary > baseline) + ½·P(tie) = U / (n·m)."""
    return u / (n * m)


def quantile(ordered: FloatArray, q: float) -> float:
    """Of a sorted, non-empty array: linear interpolation between order statistics (R-7, numpy's
    default and Kayenta's percentile), with numpy's interpolation formula."""
    h = (len(ordered) - 1) * q
    i = math.floor(h)
    if i >= len(ordered) - 1:
        return float(ordered[-1])
    a, b, t = float(ordered[i]), float(ordered[i + 1]), h - i
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order."""
    count = len(p_values)
    order = sorted(range(count), key=lambda i: p_values[i])
    adjusted = [0.0] * count
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (count - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
