"""Settings and measurements for the judge's tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from primum.core.analysis.data import MeasurementData, MetricData, Samples
from primum.core.model.analysis import CommandSource, MetricKind, MetricSpec

SOURCE = CommandSource(argv=["probe"])


def value_metric(name: str = "queue-depth", **fields: Any) -> MetricSpec:
    """A kind-value metric (any numeric samples), from a command."""
    return MetricSpec(name=name, kind=MetricKind.value, source=SOURCE, **fields)


def proportion_metric(name: str = "rejections", **fields: Any) -> MetricSpec:
    return MetricSpec(name=name, kind=MetricKind.proportion, source=SOURCE, **fields)


def latency_metric(name: str = "latency", **fields: Any) -> MetricSpec:
    return MetricSpec(name=name, kind=MetricKind.latency, **fields)


def errors_metric(name: str = "error-rate", **fields: Any) -> MetricSpec:
    return MetricSpec(name=name, kind=MetricKind.errors, **fields)


def values(baseline: Sequence[float], canary: Sequence[float], name: str, **fields: Any) -> MetricData:
    return MetricData(metric=name, baseline=Samples(values=list(baseline), source=f"{name} baseline"),
                      canary=Samples(values=list(canary), source=f"{name} canary"), **fields)


def counts(baseline: tuple[int, int], canary: tuple[int, int], name: str,
           series: tuple[Sequence[float], Sequence[float]] = ((), ()), **fields: Any) -> MetricData:
    """``(events, total)`` per side, and optionally the per-step rate series Kayenta mode compares."""
    return MetricData(metric=name,
                      baseline=Samples(events=baseline[0], total=baseline[1], values=list(series[0]), source="b"),
                      canary=Samples(events=canary[0], total=canary[1], values=list(series[1]), source="c"),
                      **fields)


def measurement(*metrics: MetricData, **fields: Any) -> MeasurementData:
    return MeasurementData(start=100.0, end=160.0, baseline_version="v1", canary_version="v2",
                           metrics={m.metric: m for m in metrics}, **fields)


def lognormal(seed: int, n: int, median_s: float = 0.05, sigma: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median_s), sigma, n)
