"""Practical significance: a statistically clear but tiny latency shift does not hold a canary in primum
mode (min_shift), while Kayenta mode, which has no such threshold, still calls it High."""

from __future__ import annotations

import numpy as np

from primum.core.analysis.data import MeasurementData, MetricData, Samples
from primum.core.analysis.judge import judge
from primum.core.model.analysis import AnalysisSettings, EffectSize, JudgeMode, MetricKind, MetricSpec


def data(shift_s: float) -> MeasurementData:
    rng = np.random.default_rng(3)
    base = (0.007 + rng.normal(0, 0.0005, 300)).tolist()
    canary = (0.007 + shift_s + rng.normal(0, 0.0005, 300)).tolist()
    return MeasurementData(start=0, end=10, baseline_version="b", canary_version="c",
                           metrics={"latency": MetricData(metric="latency", baseline=Samples(values=base),
                                                          canary=Samples(values=canary))})


def settings(mode: JudgeMode) -> AnalysisSettings:
    effect = EffectSize(allowed_increase=1.2, min_shift=0.01)
    return AnalysisSettings(mode=mode, metrics=[MetricSpec(name="latency", kind=MetricKind.latency,
                                                           critical=True, effect=effect)])


def test_a_3ms_shift_on_7ms_is_clear_but_too_small_to_matter_in_primum_mode() -> None:
    report = judge(settings(JudgeMode.primum), data(0.003))
    [row] = [r for r in report.results if r.check == "mann-whitney"]
    assert row.classification.value == "Pass", row.reason
    assert "smaller than the 10.0 ms that matters (min_shift)" in row.reason
    assert report.outcome.value == "Successful"


def test_kayenta_mode_has_no_min_shift() -> None:
    report = judge(settings(JudgeMode.kayenta), data(0.003))
    [row] = [r for r in report.results if r.check == "mann-whitney"]
    assert row.classification.value == "High"


def test_a_shift_beyond_min_shift_still_fails() -> None:
    report = judge(settings(JudgeMode.primum), data(0.02))
    assert report.outcome.value == "Failed"
