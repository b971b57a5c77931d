"""Stages 1 and 2: missing values, then outliers, each side on its own (as Kayenta).

Outliers are Tukey fences on quartiles computed like Kayenta's
``DescriptiveStatistics.percentile`` (linear interpolation between order
statistics, R-7, numpy's default). Primum mode uses the classic fences,
``[Q1 - 1.5·IQR, Q3 + 1.5·IQR]``. Kayenta mode uses Kayenta's defaults for
``outliers.strategy: remove``: ``outlierFactor`` 3.0 and its reduced
sensitivity, which widens the fences to at least the 1st and 99th percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from primum.core.analysis.judge.stats import FloatArray
from primum.core.model.analysis import JudgeMode, MetricSpec, NanStrategy

TUKEY_FACTOR = 1.5
KAYENTA_OUTLIER_FACTOR = 3.0


@dataclass(frozen=True)
class Cleaned:
    values: FloatArray  # sorted ascending, no NaN
    missing: int  # NaN (or infinite) values removed or replaced
    outliers: int  # values outside the fences, removed


def handle_missing(values: FloatArray, strategy: NanStrategy) -> tuple[FloatArray, int]:
    """Remove NaN, or replace it with 0.0 (Kayenta's ``replace``). Infinities count as missing too."""
    missing = ~np.isfinite(values)
    count = int(missing.sum())
    if not count:
        return values, 0
    if strategy is NanStrategy.replace:
        return np.where(missing, 0.0, values), count
    return values[~missing], count


def tukey_fences(values: FloatArray, factor: float, *, widen: bool = False) -> tuple[float, float]:
    """``Q1 - factor·IQR`` and ``Q3 + factor·IQR``; ``widen``: at least the 1st and 99th percentiles."""
    q1, q3 = (float(q) for q in np.quantile(values, [0.25, 0.75]))
    low, high = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
    if widen:
        p01, p99 = (float(q) for q in np.quantile(values, [0.01, 0.99]))
        low, high = min(low, p01), max(high, p99)
    return low, high


def remove_outliers(values: FloatArray, factor: float, *, widen: bool = False) -> tuple[FloatArray, int]:
    """The values inside the fences, and how many were outside."""
    if not len(values):
        return values, 0
    low, high = tukey_fences(values, factor, widen=widen)
    keep = (values >= low) & (values <= high)
    return values[keep], int(len(values) - keep.sum())


def clean(values: list[float], metric: MetricSpec, mode: JudgeMode) -> Cleaned:
    """Both stages for one side of one metric; the result is sorted."""
    data, missing = handle_missing(np.asarray(values, dtype=np.float64), metric.nan_strategy)
    outliers = 0
    if metric.outliers == "remove":
        kayenta = mode is JudgeMode.kayenta
        data, outliers = remove_outliers(data, KAYENTA_OUTLIER_FACTOR if kayenta else TUKEY_FACTOR,
                                         widen=kayenta)
    return Cleaned(values=np.sort(data), missing=missing, outliers=outliers)
