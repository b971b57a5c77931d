"""Stages 1 and 2: missing values and outliers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from primum.core.analysis.judge import judge
from primum.core.analysis.judge.clean import clean, handle_missing, remove_outliers, tukey_fences
from primum.core.model.analysis import AnalysisSettings, JudgeMode, NanStrategy

from .factories import measurement, value_metric, values

NAN = math.nan


def test_remove_drops_nan_and_infinities() -> None:
    kept, missing = handle_missing(np.array([1.0, NAN, 2.0, math.inf, -math.inf]), NanStrategy.remove)
    assert kept.tolist() == [1.0, 2.0]
    assert missing == 3


def test_replace_puts_zero_in_their_place() -> None:
    kept, missing = handle_missing(np.array([1.0, NAN, 2.0]), NanStrategy.replace)
    assert kept.tolist() == [1.0, 0.0, 2.0]
    assert missing == 1


def test_nothing_missing_is_left_alone() -> None:
    data = np.array([3.0, 1.0])
    kept, missing = handle_missing(data, NanStrategy.remove)
    assert kept is data and missing == 0


def test_tukey_fences_use_linearly_interpolated_quartiles() -> None:
    data = np.array([21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0])
    # sorted 21 21 23 23 24 25 29 50: Q1 = 22.5, Q3 = 26, IQR 3.5
    assert tukey_fences(data, 1.5) == (pytest.approx(17.25), pytest.approx(31.25))
    kept, outliers = remove_outliers(data, 1.5)
    assert sorted(kept.tolist()) == [21.0, 21.0, 23.0, 23.0, 24.0, 25.0, 29.0]
    assert outliers == 1


def test_tukey_fences_are_two_sided() -> None:
    data = np.array([1.0, 1.0, 1.0, 5.0, -1.0, -1.0, -1.0, -5.0])
    kept, outliers = remove_outliers(data, 1.5)
    assert outliers == 2 and set(kept.tolist()) == {1.0, -1.0}


def test_widened_fences_reach_the_first_and_99th_percentiles() -> None:
    data = np.concatenate((np.zeros(50), np.ones(50)))
    data[-1] = 10.0  # Q1 = 0, Q3 = 1: 3·IQR fences are -3 and 4, the p99 is 1.09
    assert tukey_fences(data, 3.0, widen=True)[1] == pytest.approx(4.0)
    spiky = np.concatenate((np.zeros(95), [9.0] * 5))  # IQR 0, p99 = 9: the widening keeps the 9s
    assert tukey_fences(spiky, 3.0) == (0.0, 0.0)
    assert tukey_fences(spiky, 3.0, widen=True) == (0.0, pytest.approx(9.0))


def test_empty_data_has_no_outliers() -> None:
    kept, outliers = remove_outliers(np.array([]), 1.5)
    assert len(kept) == 0 and outliers == 0


def test_clean_orders_stages_and_sorts() -> None:
    metric = value_metric(outliers="remove", nan_strategy=NanStrategy.remove)
    data = [5.0, NAN, 4.0, 6.0, 5.0, 100.0, 4.5, 5.5]
    cleaned = clean(data, metric, JudgeMode.primum)
    assert cleaned.values.tolist() == [4.0, 4.5, 5.0, 5.0, 5.5, 6.0]
    assert (cleaned.missing, cleaned.outliers) == (1, 1)


def test_kayenta_mode_uses_kayentas_wider_default_fences() -> None:
    metric = value_metric(outliers="remove")
    data = [10.0] * 20 + [11.0] * 20 + [14.0]  # IQR 1: 14 is outside 1.5·IQR (12.5) but inside 3·IQR (14)
    assert clean(data, metric, JudgeMode.primum).outliers == 1
    assert clean(data, metric, JudgeMode.kayenta).outliers == 0


def test_outliers_kept_unless_asked() -> None:
    assert clean([1.0, 1.0, 1.0, 1000.0], value_metric(), JudgeMode.primum).outliers == 0


def test_replaced_nan_changes_the_verdict_and_is_reported() -> None:
    """A series whose gaps mean zero (e.g. no errors in a step) is compared with the zeros in."""
    base = [1.0] * 40
    canary = [1.0] * 10 + [NAN] * 30
    removed = judge(AnalysisSettings(metrics=[value_metric(direction="either")]),
                    measurement(values(base, canary, "queue-depth")))
    replaced = judge(AnalysisSettings(metrics=[value_metric(direction="either", nan_strategy="replace")]),
                     measurement(values(base, canary, "queue-depth")))
    assert replaced.metrics["queue-depth"].value == "Low"
    assert replaced.results[0].canary["missing"] == 30.0
    assert replaced.results[0].canary_n == 40
    assert removed.results[0].canary_n == 10  # below min_samples (20): removed leaves too few to judge
    assert removed.results[0].classification.value == "Nodata"


def test_a_removed_outlier_is_counted_in_the_summary() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(10, 1, 60).tolist()
    canary = [*rng.normal(10, 1, 59).tolist(), 400.0]
    report = judge(AnalysisSettings(metrics=[value_metric(outliers="remove")]),
                   measurement(values(base, canary, "queue-depth")))
    row = report.results[0]
    assert row.canary["outliers"] == 1.0 and row.canary_n == 59
    assert row.canary["max"] is not None and row.canary["max"] < 100
