"""All the rows of one metric: which checks run depends on the mode and the kind."""

from __future__ import annotations

from primum.core.analysis.data import Classification, MetricData, MetricResult
from primum.core.analysis.judge.bounds import slo_rows, threshold_row
from primum.core.analysis.judge.context import Context
from primum.core.analysis.judge.counts import RATE_CHECK, counts_rows
from primum.core.analysis.judge.explain import Subject
from primum.core.analysis.judge.rows import row, sources
from primum.core.analysis.judge.samples import SHIFT_CHECK, compare_rows
from primum.core.analysis.judge.slices import COUNT_KINDS, slice_rows
from primum.core.model.analysis import JudgeMode, MetricSpec

PROVIDER_CHECK = "provider"


def metric_rows(ctx: Context, metric: MetricSpec) -> list[MetricResult]:
    subject = Subject(metric)
    md = ctx.data.metrics.get(metric.name)
    if md is None:
        counted = ctx.mode is JudgeMode.primum and metric.kind in COUNT_KINDS
        return [ctx.nodata(subject, RATE_CHECK if counted else SHIFT_CHECK, "no data was gathered for it",
                           source={})]
    if md.error is not None:
        return [row(subject, PROVIDER_CHECK, Classification.error,
                    f"{subject.name} could not be measured: {md.error}", source=sources(md.baseline, md.canary))]
    if ctx.mode is JudgeMode.kayenta:
        return compare_rows(ctx, subject, md).rows  # every kind through the rank test, on its values
    if metric.kind in COUNT_KINDS:
        return _count_metric(ctx, subject, md)
    return _sample_metric(ctx, subject, md)


def _sample_metric(ctx: Context, subject: Subject, md: MetricData) -> list[MetricResult]:
    compared = compare_rows(ctx, subject, md)
    rows = list(compared.rows)
    canary = ctx.clean(md.canary, subject.metric) if md.canary is not None else None
    source = sources(md.baseline, md.canary)
    bound = threshold_row(ctx, subject, canary, None, source)
    rows += [bound] if bound is not None else []
    rows += slo_rows(ctx, subject, canary, None, source)
    return rows + slice_rows(ctx, subject.metric, md, overall_tail=compared.tail)


def _count_metric(ctx: Context, subject: Subject, md: MetricData) -> list[MetricResult]:
    rows, counts = counts_rows(ctx, subject, md)
    canary = ctx.clean(md.canary, subject.metric) if md.canary is not None and md.canary.values else None
    source = sources(md.baseline, md.canary)
    bound = threshold_row(ctx, subject, canary, counts, source)
    rows += [bound] if bound is not None else []
    rows += slo_rows(ctx, subject, None, counts, source)
    return rows + slice_rows(ctx, subject.metric, md)
