"""Building :class:`MetricResult` rows: summaries, statistics and thresholds as plain dicts."""

from __future__ import annotations

import math
from typing import Any

from primum.core.analysis.data import Classification, MetricResult, Samples
from primum.core.analysis.judge.clean import Cleaned
from primum.core.analysis.judge.explain import Subject
from primum.core.analysis.judge.proportions import Counts
from primum.core.analysis.judge.shift import Limits, ShiftTest
from primum.core.analysis.judge.stats import quantile
from primum.core.model.analysis import AnalysisSettings


def finite(v: float | None) -> float | None:
    """NaN and infinities are shown as missing."""
    return None if v is None or not math.isfinite(v) else float(v)


def value_summary(cleaned: Cleaned) -> dict[str, float | None]:
    v = cleaned.values
    if not len(v):
        return {"mean": None, "median": None, "p95": None, "p99": None, "min": None, "max": None,
                "missing": float(cleaned.missing), "outliers": float(cleaned.outliers)}
    return {"mean": finite(float(v.mean())), "median": quantile(v, 0.5), "p95": quantile(v, 0.95),
            "p99": quantile(v, 0.99), "min": float(v[0]), "max": float(v[-1]),
            "missing": float(cleaned.missing), "outliers": float(cleaned.outliers)}


def count_summary(counts: Counts | None) -> dict[str, float | None]:
    if counts is None:
        return {}
    return {"events": float(counts.events), "total": float(counts.total), "rate": counts.rate}


def shift_statistics(test: ShiftTest) -> dict[str, float | None]:
    return {"U": test.mw.u, "p_value": test.mw.p_value, "z": test.mw.z, "hl_estimate": test.shift.estimate,
            "ci_low": test.shift.low, "ci_high": test.shift.high, "ci_rank": float(test.shift.k),
            "tolerance_bound": test.bound, "mean_ratio": finite(test.mean_ratio), "cles": test.cles}


def shift_thresholds(settings: AnalysisSettings, subject: Subject, limit: Limits) -> dict[str, Any]:
    return {"direction": subject.metric.direction.value, "tolerance": settings.tolerance,
            "confidence": settings.confidence, "effect_measure": limit.measure.value,
            "allowed_increase": limit.allowed_increase, "allowed_decrease": limit.allowed_decrease,
            "critical_increase": limit.critical_increase, "critical_decrease": limit.critical_decrease,
            "critical": subject.metric.critical}


def sources(baseline: Samples | None, canary: Samples | None) -> dict[str, str]:
    found = {"baseline": baseline.source if baseline else "", "canary": canary.source if canary else ""}
    return {role: text for role, text in found.items() if text}


def row(subject: Subject, check: str, classification: Classification, reason: str, **fields: Any) -> MetricResult:
    """A result row of ``subject``; ``fields`` are MetricResult's other fields."""
    m = subject.metric
    return MetricResult(metric=m.name, check=check, slice=subject.slice, classification=classification,
                        muted=m.muted, group=m.group, reason=reason, **fields)
