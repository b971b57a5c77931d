"""Checks on samples (kinds latency and value, and every kind in Kayenta mode):
the Mann-Whitney shift and, in primum mode, the tail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from primum.core.analysis.data import Classification, MetricData, MetricResult
from primum.core.analysis.judge.clean import Cleaned
from primum.core.analysis.judge.context import Context
from primum.core.analysis.judge.explain import Hold, Subject, shift_reason, tail_nodata_reason, tail_reason, too_few
from primum.core.analysis.judge.rows import finite, row, shift_statistics, shift_thresholds, sources, value_summary
from primum.core.analysis.judge.shift import ShiftTest, compare, critical, limits, shift_floor
from primum.core.analysis.judge.stats import quantile
from primum.core.analysis.judge.tail import TailTest, check_name, tail_test
from primum.core.model.analysis import Direction, JudgeMode

SHIFT_CHECK = "mann-whitney"


def shift_test(ctx: Context, subject: Subject, baseline: Cleaned, canary: Cleaned) -> ShiftTest:
    """A tenant slice's shift must clear ``min_shift`` with its whole interval (see ``shift.compare``)."""
    m = subject.metric
    return compare(canary.values, baseline.values, direction=m.direction, limit=limits(m.effect),
                   tolerance=ctx.settings.tolerance, confidence=ctx.settings.confidence,
                   min_shift=shift_floor(m.effect, quantile(baseline.values, 0.5)) if ctx.mode is JudgeMode.primum
                   else 0.0,
                   interval_clears=subject.slice is not None)


def shift_row(ctx: Context, subject: Subject, test: ShiftTest, baseline: Cleaned, canary: Cleaned,
              source: dict[str, str], *, p_adjusted: float | None = None, family: int = 0) -> MetricResult:
    """The row of one comparison; with ``p_adjusted`` (a tenant slice) a High/Low must also survive Holm."""
    m = subject.metric
    limit = limits(m.effect)
    held = p_adjusted is not None and test.classification is not Classification.passed and \
        p_adjusted >= ctx.alpha
    classification = Classification.passed if held else test.classification
    medians = (quantile(canary.values, 0.5), quantile(baseline.values, 0.5))
    sizes = (len(canary.values), len(baseline.values))
    statistics = shift_statistics(test)
    thresholds = shift_thresholds(ctx.settings, subject, limit)
    if p_adjusted is not None:
        statistics["p_adjusted"] = p_adjusted
        thresholds.update(alpha=ctx.alpha, min_slice_samples=ctx.settings.min_slice_samples)
    elif ctx.mode is JudgeMode.primum:
        thresholds["min_samples"] = ctx.settings.min_samples
    is_critical = not held and critical(test, limit, marked=m.critical, mode=ctx.mode)
    return row(subject, SHIFT_CHECK, classification,
               shift_reason(subject, test, limit, medians, sizes, p_adjusted=p_adjusted, family=family,
                            held_by_holm=held),
               critical=is_critical, baseline_n=sizes[1], canary_n=sizes[0], baseline=value_summary(baseline),
               canary=value_summary(canary), statistics=statistics,
               effect=finite(test.effect), effect_measure=limit.measure.value,
               thresholds=thresholds, source=source)


def missing_side(md: MetricData, baseline: Cleaned, canary: Cleaned) -> str | None:
    """Why a comparison cannot run at all (Kayenta's Nodata), or None."""
    if md.baseline is None:
        return "there is no baseline to compare with"
    if md.canary is None:
        return "there are no canary samples"
    for side, cleaned in (("canary", canary), ("baseline", baseline)):
        if not len(cleaned.values):
            removed = f" ({cleaned.missing} missing values removed)" if cleaned.missing else ""
            return f"there are no {side} samples{removed}"
    return None


@dataclass(frozen=True)
class Compared:
    """The aggregate comparison's rows, and its tests for the tenant slices to consult."""

    rows: list[MetricResult]
    shift: ShiftTest | None = None
    tail: TailTest | None = None


def compare_rows(ctx: Context, subject: Subject, md: MetricData) -> Compared:
    """The aggregate comparison, guarded by ``min_samples`` in primum mode."""
    m = subject.metric
    baseline, canary = ctx.clean(md.baseline, m), ctx.clean(md.canary, m)
    source = sources(md.baseline, md.canary)
    sizes: dict[str, Any] = {"baseline_n": len(baseline.values), "canary_n": len(canary.values),
                             "baseline": value_summary(baseline), "canary": value_summary(canary)}
    why = missing_side(md, baseline, canary)
    needed = ctx.settings.min_samples
    if why is None and ctx.mode is JudgeMode.primum and min(len(baseline.values), len(canary.values)) < needed:
        why = too_few(subject, len(canary.values), len(baseline.values), needed, "a comparison")
    if why is not None:
        return Compared([ctx.nodata(subject, SHIFT_CHECK, why, source=source,
                                    thresholds={"min_samples": needed} if ctx.mode is JudgeMode.primum else {},
                                    **sizes)])
    test = shift_test(ctx, subject, baseline, canary)
    rows = [shift_row(ctx, subject, test, baseline, canary, source)]
    tail: TailTest | None = None
    if ctx.mode is JudgeMode.primum and m.tail is not None and wants_tail(subject):
        tail = tail_test(canary.values, baseline.values, m.tail, ctx.alpha)
        rows.append(tail_row(ctx, subject, baseline, canary, source, test=tail))
    return Compared(rows, test, tail)


def wants_tail(subject: Subject) -> bool:
    """The tail check looks at the upper tail: for metrics where a decrease is the regression it does not apply."""
    return subject.metric.tail is not None and subject.metric.direction is not Direction.decrease


def tail_row(ctx: Context, subject: Subject, baseline: Cleaned, canary: Cleaned, source: dict[str, str], *,
             test: TailTest, p_adjusted: float | None = None, family: int = 0,
             overall: TailTest | None = None, in_slice: bool = False) -> MetricResult:
    """The row of one tail test. On a tenant slice (``in_slice``) a High must also survive Holm
    (``p_adjusted``), and stands only when the ``overall`` (aggregate) tail moved too: one tenant's wider
    tail while the service's tail stays within its limit is spread, not a regression the canary fails for."""
    tail = subject.metric.tail
    assert tail is not None
    t = test
    thresholds: dict[str, Any] = {"quantile": tail.quantile, "max_ratio": tail.max_ratio, "slack": tail.slack,
                                  "min_tail_samples": tail.min_tail_samples, "alpha": ctx.alpha}
    sizes: dict[str, Any] = {"baseline_n": len(baseline.values), "canary_n": t.n,
                             "baseline": value_summary(baseline), "canary": value_summary(canary)}
    if not t.judged:
        return ctx.nodata(subject, check_name(tail), tail_nodata_reason(subject, t), source=source, skipped=True,
                          thresholds=thresholds, **sizes)
    held = Hold.none
    if t.classification is not Classification.passed and in_slice:
        if p_adjusted is not None and p_adjusted >= t.level:
            held = Hold.holm
        elif overall is None or not overall.moved:
            held = Hold.overall
    classification = Classification.passed if held is not Hold.none else t.classification
    statistics: dict[str, float | None] = {
        "baseline_q": t.baseline_q, "canary_q": t.canary_q, "baseline_high": t.baseline_high, "limit": t.limit,
        "above": float(t.above), "expected_fraction": t.expected, "p_value": t.p_value}
    if p_adjusted is not None:
        statistics["p_adjusted"] = p_adjusted
    if in_slice and overall is not None:
        statistics["overall_canary_q"] = overall.canary_q
        statistics["overall_limit"] = overall.limit
    return row(subject, check_name(tail), classification,
               tail_reason(subject, t, p_adjusted=p_adjusted, family=family, held=held, overall=overall),
               critical=subject.metric.critical and classification is not Classification.passed,
               statistics=statistics, effect=t.canary_q / t.baseline_q if t.baseline_q > 0 else None,
               effect_measure="quantileRatio", thresholds=thresholds, source=source, **sizes)
