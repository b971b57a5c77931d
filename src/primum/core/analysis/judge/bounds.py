"""Primum mode: absolute bounds on the canary alone, whatever the baseline does:
the metric's ``threshold`` and the service's SLOs.

Rates are held with the exact binomial test (significantly above the bound, at
alpha), so a handful of requests cannot break an SLO by chance. So are the
latency SLOs (p95, and p99 when the service declares one): "p95 within 500 ms"
means at most 5% of requests take longer than 500 ms, so the check counts the
canary's requests above the bound and fails only when that share is
significantly above 5% (an exact test of a quantile, with no assumption about
the distribution's shape). A point estimate of p95 would fail a healthy version
whose p95 sits just under the SLO about half the time. The other statistics of
samples (a metric's own ``threshold`` on mean, median, p95, p99) are point
estimates over at least ``min_samples`` samples.
"""

from __future__ import annotations

from typing import Any

from primum.core.analysis.data import Classification, MetricResult
from primum.core.analysis.judge.clean import Cleaned
from primum.core.analysis.judge.context import Context
from primum.core.analysis.judge.explain import Subject, p_text, slo_latency_reason, slo_rate_reason, threshold_reason
from primum.core.analysis.judge.proportions import Counts, rate_above, rate_below
from primum.core.analysis.judge.rows import count_summary, row, value_summary
from primum.core.analysis.judge.stats import quantile
from primum.core.model.analysis import MetricKind, Threshold

THRESHOLD_CHECK = "threshold"
SLO_RATE_CHECK = "slo-error-rate"
SLO_P95_CHECK = "slo-p95"
SLO_P99_CHECK = "slo-p99"
_QUANTILE = {"median": 0.5, "p95": 0.95, "p99": 0.99}


def _fails(subject: Subject, classification: Classification) -> bool:
    return subject.metric.critical and classification is not Classification.passed


def threshold_row(ctx: Context, subject: Subject, canary: Cleaned | None, counts: Counts | None,
                  source: dict[str, str]) -> MetricResult | None:
    bound = subject.metric.threshold
    if bound is None:
        return None
    thresholds: dict[str, Any] = {"statistic": bound.statistic, "min": bound.min, "max": bound.max, "alpha": ctx.alpha,
                  "min_samples": ctx.settings.min_samples}
    if bound.statistic == "rate":
        return _rate_threshold(ctx, subject, bound, counts, source, thresholds)
    n = 0 if canary is None else len(canary.values)
    if canary is None or n < ctx.settings.min_samples:
        why = f"{n} canary samples, fewer than the {ctx.settings.min_samples} its {bound.statistic} threshold needs"
        return ctx.nodata(subject, THRESHOLD_CHECK, why, source=source, skipped=True, canary_n=n,
                          thresholds=thresholds)
    v = canary.values
    observed = float(v.mean()) if bound.statistic == "mean" else quantile(v, _QUANTILE[bound.statistic])
    classification = Classification.passed
    if bound.max is not None and observed > bound.max:
        classification = Classification.high
    elif bound.min is not None and observed < bound.min:
        classification = Classification.low
    return row(subject, THRESHOLD_CHECK, classification,
               threshold_reason(subject, bound.statistic, observed, bound.min, bound.max, classification),
               critical=_fails(subject, classification), canary_n=n, canary=value_summary(canary),
               statistics={bound.statistic: observed}, thresholds=thresholds, source=source)


def _rate_threshold(ctx: Context, subject: Subject, bound: Threshold, counts: Counts | None,
                    source: dict[str, str], thresholds: dict[str, Any]) -> MetricResult:
    if counts is None:
        return ctx.nodata(subject, THRESHOLD_CHECK, "its rate threshold needs event counts and there are none",
                          source=source, skipped=True, thresholds=thresholds)
    p_above = rate_above(counts, bound.max) if bound.max is not None else 1.0
    p_below = rate_below(counts, bound.min) if bound.min is not None else 1.0
    classification = Classification.passed
    p = min(p_above, p_below)
    if p_above < ctx.alpha:
        classification, p = Classification.high, p_above
    elif p_below < ctx.alpha:
        classification, p = Classification.low, p_below
    detail = f" ({counts.events} of {counts.total}, binomial {p_text(p)} at alpha {ctx.alpha:g})"
    return row(subject, THRESHOLD_CHECK, classification,
               threshold_reason(subject, "rate", counts.rate, bound.min, bound.max, classification, detail),
               critical=_fails(subject, classification), canary_n=counts.total, canary=count_summary(counts),
               statistics={"rate": counts.rate, "p_above": p_above, "p_below": p_below},
               thresholds=thresholds, source=source)


def slo_rows(ctx: Context, subject: Subject, canary: Cleaned | None, counts: Counts | None,
             source: dict[str, str]) -> list[MetricResult]:
    """The service's SLOs, when the settings ask for them and the data carries them."""
    data, kind = ctx.data, subject.metric.kind
    if not ctx.settings.slo_checks:
        return []
    if kind is MetricKind.errors and data.slo_error_rate is not None and counts is not None:
        slo = data.slo_error_rate
        p = rate_above(counts, slo)
        classification = Classification.high if p < ctx.alpha else Classification.passed
        return [row(subject, SLO_RATE_CHECK, classification, slo_rate_reason(subject, counts, slo, p, ctx.alpha),
                    critical=_fails(subject, classification), canary_n=counts.total,
                    canary=count_summary(counts), statistics={"rate": counts.rate, "p_value": p},
                    effect=counts.rate / slo if slo > 0 else None, effect_measure="sloRatio",
                    thresholds={"slo_error_rate": slo, "alpha": ctx.alpha}, source=source)]
    n = 0 if canary is None else len(canary.values)
    if kind is not MetricKind.latency or canary is None or n < ctx.settings.min_samples:
        return []
    out = []
    objectives: tuple[tuple[str, float, float | None], ...] = (
        (SLO_P95_CHECK, 0.95, data.slo_p95_s), (SLO_P99_CHECK, 0.99, data.slo_p99_s))
    for check, q, bound in objectives:
        if bound is None:
            continue
        observed = quantile(canary.values, q)
        above = Counts(events=int((canary.values > bound).sum()), total=n)
        p = rate_above(above, 1.0 - q)
        classification = Classification.high if p < ctx.alpha else Classification.passed
        name = check.removeprefix("slo-")
        out.append(row(subject, check, classification,
                       slo_latency_reason(subject, name, observed, bound, above, 1.0 - q, p, ctx.alpha),
                       critical=_fails(subject, classification), canary_n=n, canary=value_summary(canary),
                       statistics={name: observed, "share_above": above.rate, "p_value": p},
                       effect=observed / bound if bound > 0 else None, effect_measure="sloRatio",
                       thresholds={f"slo_{name}_s": bound, "alpha": ctx.alpha, "min_samples": ctx.settings.min_samples},
                       source=source))
    return out
