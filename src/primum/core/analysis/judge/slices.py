"""Primum mode: each tenant's slice of a metric, judged with the metric's own
checks, so a regression confined to one clinic fails the canary even when the
aggregate, diluted by every other tenant, passes.

A slice with fewer than ``min_slice_samples`` on either side is shown but not
judged (and does not make the measurement inconclusive). Testing many tenants
invites a false alarm somewhere by chance, so the p-values of one check across
the judged slices get the Holm-Bonferroni correction: a slice's High/Low stands
only when its adjusted p-value is still below alpha.

A slice's tail check is about one tenant's share of the traffic, so a tenant
whose latency is only more spread out (a noisier client, a few heavy queries)
would fail the canary on its own while the service's tail is fine. A slice's
tail High therefore stands only when the aggregate tail moved as well (more
of all canary requests above the aggregate's limit than its quantile allows,
significant at alpha); otherwise the slice row passes and says why. A
slice's median shift is judged on its own, but its whole confidence interval
must clear ``min_shift`` (a small slice's estimate alone is too noisy).
"""

from __future__ import annotations

from typing import Any

from primum.core.analysis.data import MetricData, MetricResult, Samples
from primum.core.analysis.judge.clean import Cleaned
from primum.core.analysis.judge.context import Context
from primum.core.analysis.judge.counts import RATE_CHECK, count_problem, error_row, rate_row, rate_test
from primum.core.analysis.judge.explain import Subject, too_few
from primum.core.analysis.judge.proportions import CountProblem, Counts, read_counts
from primum.core.analysis.judge.rows import count_summary, sources, value_summary
from primum.core.analysis.judge.samples import SHIFT_CHECK, shift_row, shift_test, tail_row, wants_tail
from primum.core.analysis.judge.stats import holm
from primum.core.analysis.judge.tail import TailTest, tail_test
from primum.core.model.analysis import MetricKind, MetricSpec

COUNT_KINDS = (MetricKind.errors, MetricKind.proportion)


def slice_rows(ctx: Context, metric: MetricSpec, md: MetricData, *,
               overall_tail: TailTest | None = None) -> list[MetricResult]:
    """The tenants' rows; ``overall_tail`` is the aggregate's tail test, which a slice's tail failure needs."""
    if not metric.slices or not md.slices:
        return []
    tenants = sorted(md.slices)
    if metric.kind in COUNT_KINDS:
        return _count_slices(ctx, metric, tenants, md.slices)
    return _sample_slices(ctx, metric, tenants, md.slices, overall_tail)


def _skip(ctx: Context, subject: Subject, check: str, why: str, source: dict[str, str],
          **fields: Any) -> MetricResult:
    return ctx.nodata(subject, check, why, source=source, skipped=True,
                      thresholds={"min_slice_samples": ctx.settings.min_slice_samples}, **fields)


def _sample_slices(ctx: Context, metric: MetricSpec, tenants: list[str],
                   slices: dict[str, tuple[Samples, Samples]], overall_tail: TailTest | None) -> list[MetricResult]:
    needed = ctx.settings.min_slice_samples
    judged: list[tuple[Subject, Cleaned, Cleaned, dict[str, str]]] = []
    skipped: list[MetricResult] = []
    for tenant in tenants:
        subject = Subject(metric, tenant)
        b_samples, c_samples = slices[tenant]
        baseline, canary = ctx.clean(b_samples, metric), ctx.clean(c_samples, metric)
        source = sources(b_samples, c_samples)
        if min(len(baseline.values), len(canary.values)) < needed:
            skipped.append(_skip(ctx, subject, SHIFT_CHECK,
                                 too_few(subject, len(canary.values), len(baseline.values), needed, "a tenant slice"),
                                 source, baseline_n=len(baseline.values), canary_n=len(canary.values),
                                 baseline=value_summary(baseline), canary=value_summary(canary)))
        else:
            judged.append((subject, baseline, canary, source))
    tests = [shift_test(ctx, s, b, c) for s, b, c, _ in judged]
    adjusted = holm([t.mw.p_value for t in tests])
    rows = [shift_row(ctx, s, t, b, c, src, p_adjusted=p, family=len(tests))
            for (s, b, c, src), t, p in zip(judged, tests, adjusted, strict=True)]
    tail = metric.tail
    if tail is not None and judged and wants_tail(judged[0][0]):
        tails = [tail_test(c.values, b.values, tail, ctx.alpha) for _, b, c, _ in judged]
        family = [t.p_value for t in tails if t.judged]  # Holm over the slices whose tail could be judged
        tail_adjusted = iter(holm(family))
        for (s, b, c, src), t in zip(judged, tails, strict=True):
            p = next(tail_adjusted) if t.judged else None
            rows.append(tail_row(ctx, s, b, c, src, test=t, p_adjusted=p, family=len(family),
                                 overall=overall_tail, in_slice=True))
    return _by_tenant(rows + skipped, tenants)


def _count_slices(ctx: Context, metric: MetricSpec, tenants: list[str],
                  slices: dict[str, tuple[Samples, Samples]]) -> list[MetricResult]:
    needed = ctx.settings.min_slice_samples
    judged: list[tuple[Subject, Counts, Counts, dict[str, str]]] = []
    other: list[MetricResult] = []
    for tenant in tenants:
        subject = Subject(metric, tenant)
        b_samples, c_samples = slices[tenant]
        source = sources(b_samples, c_samples)
        baseline, canary = read_counts(b_samples), read_counts(c_samples)
        problem = next(((side, got, s) for side, got, s in (("canary", canary, c_samples),
                                                             ("baseline", baseline, b_samples))
                        if isinstance(got, CountProblem)), None)
        if problem is not None:
            side, got, s = problem
            assert isinstance(got, CountProblem)
            why = count_problem(subject, side, got, s)
            other.append(error_row(subject, RATE_CHECK, why, source) if got is CountProblem.invalid
                         else _skip(ctx, subject, RATE_CHECK, why, source))
            continue
        assert isinstance(baseline, Counts) and isinstance(canary, Counts)
        if min(baseline.total, canary.total) < needed:
            other.append(_skip(ctx, subject, RATE_CHECK,
                               too_few(subject, canary.total, baseline.total, needed, "a tenant slice"), source,
                               baseline_n=baseline.total, canary_n=canary.total,
                               baseline=count_summary(baseline), canary=count_summary(canary)))
            continue
        judged.append((subject, baseline, canary, source))
    tests = [rate_test(ctx, s, b, c) for s, b, c, _ in judged]
    adjusted = holm([t.p_value for t in tests])
    rows = [rate_row(ctx, s, t, src, p_adjusted=p, family=len(tests))
            for (s, _, _, src), t, p in zip(judged, tests, adjusted, strict=True)]
    return _by_tenant(rows + other, tenants)


def _by_tenant(rows: list[MetricResult], tenants: list[str]) -> list[MetricResult]:
    """Rows grouped by tenant (in ``tenants`` order), checks in the order they were made."""
    order = {t: i for i, t in enumerate(tenants)}
    return sorted(rows, key=lambda r: order.get(r.slice or "", -1))
