"""Primum mode's check on counts (kinds errors and proportion): Fisher's exact test."""

from __future__ import annotations

from primum.core.analysis.data import Classification, MetricData, MetricResult, Samples
from primum.core.analysis.judge.context import Context
from primum.core.analysis.judge.explain import Subject, rate_reason, too_few
from primum.core.analysis.judge.proportions import CountProblem, Counts, RateTest, fisher_test, read_counts
from primum.core.analysis.judge.rows import count_summary, row, sources

RATE_CHECK = "fisher-exact"


def rate_test(ctx: Context, subject: Subject, baseline: Counts, canary: Counts) -> RateTest:
    m = subject.metric
    return fisher_test(canary, baseline, direction=m.direction, alpha=ctx.alpha,
                       min_rate_increase=m.min_rate_increase)


def rate_row(ctx: Context, subject: Subject, test: RateTest, source: dict[str, str], *,
             p_adjusted: float | None = None, family: int = 0) -> MetricResult:
    m = subject.metric
    held = p_adjusted is not None and test.classification is not Classification.passed and \
        p_adjusted >= ctx.alpha
    classification = Classification.passed if held else test.classification
    statistics: dict[str, float | None] = {"p_value": test.p_value, "odds_ratio": test.odds_ratio,
                                           "rate_difference": test.difference}
    thresholds: dict[str, object] = {"direction": m.direction.value, "alpha": ctx.alpha,
                                     "min_rate_increase": m.min_rate_increase, "critical": m.critical}
    if p_adjusted is not None:
        statistics["p_adjusted"] = p_adjusted
        thresholds["min_slice_samples"] = ctx.settings.min_slice_samples
    else:
        thresholds["min_samples"] = ctx.settings.min_samples
    return row(subject, RATE_CHECK, classification,
               rate_reason(subject, test, ctx.alpha, m.min_rate_increase, p_adjusted=p_adjusted, family=family),
               critical=m.critical and classification is not Classification.passed,
               baseline_n=test.baseline.total, canary_n=test.canary.total,
               baseline=count_summary(test.baseline), canary=count_summary(test.canary), statistics=statistics,
               effect=test.difference, effect_measure="rateDifference", thresholds=thresholds, source=source)


def count_problem(subject: Subject, side: str, problem: CountProblem, samples: Samples | None) -> str:
    if problem is CountProblem.invalid and samples is not None:
        return f"the {side} reported {samples.events} bad {subject.unit} out of {samples.total}"
    if problem is CountProblem.empty:
        return f"there were no {subject.unit} on the {side}"
    return f"there are no event counts for the {side}"


def error_row(subject: Subject, check: str, why: str, source: dict[str, str]) -> MetricResult:
    return row(subject, check, Classification.error, f"{subject.name} could not be judged: {why}", source=source)


def counts_rows(ctx: Context, subject: Subject, md: MetricData) -> tuple[list[MetricResult], Counts | None]:
    """The aggregate rate comparison, and the canary's counts for the bounds."""
    source = sources(md.baseline, md.canary)
    baseline, canary = read_counts(md.baseline), read_counts(md.canary)
    canary_counts = canary if isinstance(canary, Counts) else None
    for side, got, samples in (("canary", canary, md.canary), ("baseline", baseline, md.baseline)):
        if got is CountProblem.invalid:
            return [error_row(subject, RATE_CHECK, count_problem(subject, side, got, samples), source)], None
    if md.baseline is None:
        return [ctx.nodata(subject, RATE_CHECK, "there is no baseline to compare with", source=source,
                           canary=count_summary(canary_counts))], canary_counts
    for side, got, samples in (("canary", canary, md.canary), ("baseline", baseline, md.baseline)):
        if isinstance(got, CountProblem):
            return [ctx.nodata(subject, RATE_CHECK, count_problem(subject, side, got, samples),
                               source=source)], canary_counts
    assert isinstance(baseline, Counts) and isinstance(canary, Counts)
    test = rate_test(ctx, subject, baseline, canary)
    needed = ctx.settings.min_samples
    if test.classification is Classification.passed and min(baseline.total, canary.total) < needed:
        # No evidence of a regression from too few events is not evidence of none.
        return [ctx.nodata(subject, RATE_CHECK, too_few(subject, canary.total, baseline.total, needed,
                                                        "a pass"),
                           source=source, baseline_n=baseline.total,
                           canary_n=canary.total, baseline=count_summary(baseline),
                           canary=count_summary(canary), statistics={"p_value": test.p_value},
                           thresholds={"min_samples": needed})], canary
    return [rate_row(ctx, subject, test, source)], canary
