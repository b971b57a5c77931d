"""Stages 4 and 5 on samples: direction, effect size, Kayenta's tolerance, classification, criticality."""

from __future__ import annotations

import numpy as np
import pytest

from primum.core.analysis.data import Classification
from primum.core.analysis.judge.shift import Limits, Why, compare, critical, limits
from primum.core.model.analysis import Direction, EffectMeasure, EffectSize, JudgeMode

RNG = np.random.default_rng(42)
BASE = np.sort(RNG.normal(100.0, 10.0, 200))
SAME = np.sort(RNG.normal(100.0, 10.0, 200))
UP = np.sort(RNG.normal(130.0, 10.0, 200))  # +3 sd
DOWN = np.sort(RNG.normal(70.0, 10.0, 200))
SLIGHTLY_UP = np.sort(RNG.normal(104.0, 10.0, 200))  # significant at n=200, but a small effect


def run(canary: np.ndarray, baseline: np.ndarray = BASE, *, direction: Direction = Direction.either,
        effect: EffectSize | None = None, tolerance: float = 0.25, confidence: float = 0.98):
    return compare(canary, baseline, direction=direction, limit=limits(effect or EffectSize()),
                   tolerance=tolerance, confidence=confidence)


@pytest.mark.parametrize(("canary", "direction", "expected", "why"), [
    (SAME, Direction.either, Classification.passed, Why.within),
    (UP, Direction.either, Classification.high, Why.high),
    (UP, Direction.increase, Classification.high, Why.high),
    (UP, Direction.decrease, Classification.passed, Why.harmless),
    (DOWN, Direction.either, Classification.low, Why.low),
    (DOWN, Direction.decrease, Classification.low, Why.low),
    (DOWN, Direction.increase, Classification.passed, Why.harmless),
])
def test_direction_decides_which_shifts_count(canary: np.ndarray, direction: Direction,
                                              expected: Classification, why: Why) -> None:
    test = run(canary, direction=direction)
    assert (test.classification, test.why) == (expected, why)


def test_high_means_the_interval_clears_the_tolerance_band() -> None:
    test = run(UP)
    assert test.shift.low > test.bound == pytest.approx(0.25 * abs(test.shift.estimate))
    assert test.mw.p_value < 1e-10


def test_a_larger_tolerance_keeps_a_marginal_shift() -> None:
    test = run(SLIGHTLY_UP, tolerance=0.0)
    assert test.classification is Classification.high
    # Kayenta's tolerance is a fraction of the shift itself: the interval must clear tolerance·|HL|
    wide = run(SLIGHTLY_UP, tolerance=(test.shift.low / test.shift.estimate) + 0.01)
    assert (wide.classification, wide.why) == (Classification.passed, Why.within)


def test_mean_ratio_below_allowed_increase_passes() -> None:
    test = run(SLIGHTLY_UP, tolerance=0.0, effect=EffectSize(allowed_increase=1.2))
    assert (test.classification, test.why) == (Classification.passed, Why.effect)
    assert 1.0 < test.mean_ratio < 1.2 and test.effect == test.mean_ratio


def test_mean_ratio_above_allowed_decrease_passes() -> None:
    canary = np.sort(RNG.normal(96.0, 10.0, 200))
    strict = run(canary, tolerance=0.0)
    lenient = run(canary, tolerance=0.0, effect=EffectSize(allowed_decrease=0.9))
    assert strict.classification is Classification.low
    assert (lenient.classification, lenient.why) == (Classification.passed, Why.effect)


def test_an_undefined_mean_ratio_skips_the_effect_check() -> None:
    baseline = np.sort(np.concatenate((np.zeros(40), -np.ones(10), np.ones(10))))  # mean 0
    canary = np.sort(np.full(60, 3.0))
    test = run(canary, baseline, effect=EffectSize(allowed_increase=5.0))
    assert np.isnan(test.mean_ratio)
    assert test.classification is Classification.high


def test_cles_thresholds_are_probabilities() -> None:
    cles_only = EffectSize(measure=EffectMeasure.cles)
    assert limits(cles_only) == Limits(EffectMeasure.cles, 0.5, 0.5, None, None)  # unset: no change
    up = run(UP, effect=cles_only)
    assert up.effect == up.cles > 0.9 and up.classification is Classification.high
    slight = run(SLIGHTLY_UP, tolerance=0.0, effect=cles_only)
    assert slight.classification is Classification.high and 0.5 < slight.cles < 0.7
    held = run(SLIGHTLY_UP, tolerance=0.0, effect=EffectSize(measure=EffectMeasure.cles, allowed_increase=0.7))
    assert (held.classification, held.why) == (Classification.passed, Why.effect)


def test_explicit_thresholds_are_kept_for_mean_ratio() -> None:
    assert limits(EffectSize(allowed_increase=1.2, critical_increase=2.0)) == \
        Limits(EffectMeasure.mean_ratio, 1.2, 1.0, 2.0, None)


def test_identical_samples_pass_early_as_kayenta() -> None:
    test = run(BASE.copy(), BASE)
    assert (test.classification, test.why) == (Classification.passed, Why.identical)


def test_one_value_everywhere_passes_early_as_kayenta() -> None:
    test = run(np.full(30, 2.0), np.full(10, 2.0))
    assert (test.classification, test.why) == (Classification.passed, Why.constant)


def test_two_constant_samples_compare_without_noise() -> None:
    """Kayenta adds tiny Gaussian noise to two one-valued samples; the pairwise differences are then
    all (about) the same value, which is what the exact computation gives directly."""
    test = run(np.full(30, 3.0), np.full(30, 2.0))
    assert (test.shift.estimate, test.shift.low, test.shift.high) == (1.0, 1.0, 1.0)
    assert test.classification is Classification.high


@pytest.mark.parametrize(("marked", "effect", "mode", "expected"), [
    (True, EffectSize(), JudgeMode.kayenta, True),  # critical, no critical threshold: any High
    (True, EffectSize(critical_increase=2.0), JudgeMode.kayenta, False),  # +30% does not reach x2
    (False, EffectSize(critical_increase=1.1), JudgeMode.kayenta, False),  # Kayenta: only critical metrics
    (True, EffectSize(critical_increase=2.0), JudgeMode.primum, True),  # primum: marked critical is enough
    (False, EffectSize(critical_increase=1.1), JudgeMode.primum, True),  # or the effect crosses the bound
    (False, EffectSize(critical_increase=2.0), JudgeMode.primum, False),
])
def test_critical_failures_per_mode(marked: bool, effect: EffectSize, mode: JudgeMode, expected: bool) -> None:
    test = run(UP, effect=effect)
    assert test.classification is Classification.high
    assert critical(test, limits(effect), marked=marked, mode=mode) is expected


def test_a_pass_is_never_critical() -> None:
    test = run(SAME)
    assert critical(test, limits(EffectSize()), marked=True, mode=JudgeMode.kayenta) is False
