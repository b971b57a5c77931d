"""Stages 3 to 5 for samples: Mann-Whitney, the Hodges-Lehmann shift, the effect
size and Kayenta's classification of the shift (``MannWhitneyClassifier``).

A metric is High when the lower bound of the shift's confidence interval lies
above ``tolerance x |shift|`` and the effect reaches ``allowed_increase``; Low
when the upper bound lies below ``-tolerance x |shift|`` and the effect is at
most ``allowed_decrease``; only in the directions the metric cares about. The
effect is the mean ratio (canary mean / baseline mean) or the CLES
(P(canary > baseline) + ½·P(tie)); when it cannot be computed (a mean is zero)
the effect condition is skipped, as in Kayenta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from primum.core.analysis.data import Classification
from primum.core.analysis.judge.stats import (
    FloatArray,
    MannWhitney,
    Shift,
    cles,
    hodges_lehmann,
    mann_whitney,
    mean_ratio,
)
from primum.core.model.analysis import Direction, EffectMeasure, EffectSize, JudgeMode

# Kayenta's default effect threshold when none is configured: no change.
_NO_CHANGE = {EffectMeasure.mean_ratio: 1.0, EffectMeasure.cles: 0.5}


class Why(StrEnum):
    """Why a comparison ended as it did (drives the explanation)."""

    identical = "identical"  # the sorted samples are equal (Kayenta's early Pass)
    constant = "constant"  # one value on both sides (Kayenta's early Pass)
    within = "within"  # the interval reaches into the tolerance band
    effect = "effect"  # a clear shift, but the effect is within the allowed one
    small = "small"  # a clear shift, but smaller than the metric's min_shift (primum mode)
    harmless = "harmless"  # a clear shift in a direction the metric does not mind
    high = "high"
    low = "low"


@dataclass(frozen=True)
class Limits:
    """Effect thresholds, resolved: for CLES they are probabilities, and unset ones mean no change (0.5)."""

    measure: EffectMeasure
    allowed_increase: float
    allowed_decrease: float
    critical_increase: float | None
    critical_decrease: float | None


def limits(effect: EffectSize) -> Limits:
    """Thresholds with Kayenta's defaults: an unset allowed threshold is "no change" for the measure."""
    unset = _NO_CHANGE[effect.measure]
    given = effect.model_fields_set
    return Limits(
        measure=effect.measure,
        allowed_increase=effect.allowed_increase if "allowed_increase" in given else unset,
        allowed_decrease=effect.allowed_decrease if "allowed_decrease" in given else unset,
        critical_increase=effect.critical_increase,
        critical_decrease=effect.critical_decrease,
    )


@dataclass(frozen=True)
class ShiftTest:
    mw: MannWhitney
    shift: Shift
    mean_ratio: float  # NaN when a mean is zero
    cles: float
    effect: float  # the configured measure's value
    bound: float  # tolerance x |shift|: the interval must clear ±bound
    classification: Classification  # Pass, High or Low
    why: Why


def shift_floor(effect: EffectSize, baseline_median: float) -> float:
    """The smallest shift that matters (primum mode): ``min_shift``, or ``min_shift_ratio`` of the baseline's
    median if that is larger."""
    return max(effect.min_shift, effect.min_shift_ratio * abs(baseline_median))


def compare(canary: FloatArray, baseline: FloatArray, *, direction: Direction, limit: Limits,
            tolerance: float, confidence: float, min_shift: float = 0.0, interval_clears: bool = False) -> ShiftTest:
    """Compare two sorted, non-empty samples. ``min_shift`` (primum mode): a High or Low whose
    shift estimate is smaller in size than this is a Pass (statistically clear, practically harmless).
    ``interval_clears`` (a tenant slice): the interval's near end, not just the estimate, must reach
    ``min_shift``, since a small slice's estimate is noisy and many slices are tested at once."""
    mw = mann_whitney(canary, baseline)
    shift = hodges_lehmann(canary, baseline, confidence)
    ratio = mean_ratio(canary, baseline)
    size = cles(mw.u, len(canary), len(baseline))
    effect = size if limit.measure is EffectMeasure.cles else ratio
    bound = tolerance * abs(shift.estimate)

    def result(classification: Classification, why: Why) -> ShiftTest:
        return ShiftTest(mw=mw, shift=shift, mean_ratio=ratio, cles=size, effect=effect, bound=bound,
                         classification=classification, why=why)

    if np.array_equal(canary, baseline):
        return result(Classification.passed, Why.identical)
    if canary[0] == canary[-1] == baseline[0] == baseline[-1]:
        return result(Classification.passed, Why.constant)
    unknown = math.isnan(effect)
    up = direction in (Direction.increase, Direction.either)
    down = direction in (Direction.decrease, Direction.either)
    if shift.low > bound:
        if not up:
            return result(Classification.passed, Why.harmless)
        if unknown or effect >= limit.allowed_increase:
            if abs(shift.low if interval_clears else shift.estimate) < min_shift:
                return result(Classification.passed, Why.small)
            return result(Classification.high, Why.high)
        return result(Classification.passed, Why.effect)
    if shift.high < -bound:
        if not down:
            return result(Classification.passed, Why.harmless)
        if unknown or effect <= limit.allowed_decrease:
            if abs(shift.high if interval_clears else shift.estimate) < min_shift:
                return result(Classification.passed, Why.small)
            return result(Classification.low, Why.low)
        return result(Classification.passed, Why.effect)
    return result(Classification.passed, Why.within)


def beyond_critical(test: ShiftTest, limit: Limits) -> bool | None:
    """Whether the effect crosses the critical threshold of its direction; None when none is set."""
    if test.classification is Classification.high and limit.critical_increase is not None:
        return math.isnan(test.effect) or test.effect >= limit.critical_increase
    if test.classification is Classification.low and limit.critical_decrease is not None:
        return math.isnan(test.effect) or test.effect <= limit.critical_decrease
    return None


def critical(test: ShiftTest, limit: Limits, *, marked: bool, mode: JudgeMode) -> bool:
    """Whether a High/Low fails the whole measurement.

    Kayenta: only a metric marked critical, and then only when the effect reaches
    its critical threshold (none set: any High/Low; effect unknown: yes).
    Primum: a metric marked critical, or any metric whose known effect crosses
    a critical threshold.
    """
    if test.classification is Classification.passed:
        return False
    crossed = beyond_critical(test, limit)
    if mode is JudgeMode.kayenta:
        return marked and crossed is not False
    return marked or (bool(crossed) and not math.isnan(test.effect))
