"""The judge: every metric's rows, the scores, and the measurement's outcome with one sentence of reason."""

from __future__ import annotations

from primum.core.analysis.data import Classification, JudgeReport, MeasurementData, MetricResult, Outcome
from primum.core.analysis.judge.context import Context
from primum.core.analysis.judge.metric import metric_rows
from primum.core.analysis.judge.score import FAILING, JUDGED, group_scores, metric_classes, overall_score
from primum.core.model.analysis import AnalysisSettings, JudgeMode

KAYENTA_NODATA_LIMIT = 50.0  # Kayenta fails a canary when this percentage of its metrics or more had no data


def judge(settings: AnalysisSettings, data: MeasurementData) -> JudgeReport:
    """Judge one measurement. Pure: the same settings and data give the same report."""
    ctx = Context(settings, data)
    results = [r for metric in settings.metrics for r in metric_rows(ctx, metric)]
    classes = metric_classes(results)
    groups = group_scores(settings.metrics, classes, settings.groups)
    score = overall_score(groups)
    outcome, reason = overall_outcome(settings, results, classes, score)
    return JudgeReport(mode=settings.mode.value, outcome=outcome, score=score, pass_score=settings.pass_score,
                       marginal_score=settings.marginal_score, reason=reason, results=results, groups=groups,
                       metrics=classes, start=data.start, end=data.end, baseline_version=data.baseline_version,
                       canary_version=data.canary_version)


def overall_outcome(settings: AnalysisSettings, results: list[MetricResult],
                    classes: dict[str, Classification], score: float | None) -> tuple[Outcome, str]:
    """Error, then nothing judged at all, then critical failures, then the score and missing data.
    No data is never a pass."""
    live = [r for r in results if not r.muted and not r.skipped]
    scored = [m.name for m in settings.metrics if not m.muted]
    errors = [r for r in live if r.classification is Classification.error]
    if errors:
        more = f"; {_count(len(errors) - 1, 'more check')} could not run either" if len(errors) > 1 else ""
        return Outcome.error, errors[0].reason + more
    nodata = [n for n in scored if classes.get(n) is Classification.nodata]
    nodata_rows = [r for r in live if r.metric in nodata and r.classification is Classification.nodata]
    if not any(classes.get(n) in JUDGED for n in scored):
        return Outcome.inconclusive, _nothing_reason(scored, nodata_rows)
    critical = [r for r in live if r.critical]
    if critical:
        return Outcome.failed, _critical_reason(settings, critical)
    if score is None:
        return Outcome.inconclusive, "nothing that carries weight in the score could be judged"
    if settings.mode is JudgeMode.kayenta and 100.0 * len(nodata) / len(scored) >= KAYENTA_NODATA_LIMIT:
        return Outcome.failed, (f"{len(nodata)} of {len(scored)} metrics had no data ({_join(nodata)}), and Kayenta "
                                f"fails a canary from {KAYENTA_NODATA_LIMIT:g}% on: {nodata_rows[0].reason}")
    failing = [r for r in live if r.classification in FAILING]
    if score < settings.marginal_score:
        return Outcome.failed, (f"score {score:.1f} is below the marginal score {settings.marginal_score:g}"
                                f"{_failures(failing)}")
    if settings.mode is JudgeMode.primum and nodata:
        return Outcome.inconclusive, (f"score {score:.1f}, but {_join(nodata)} could not be judged and no data is "
                                      f"never a pass: {nodata_rows[0].reason}")
    if score < settings.pass_score:
        return Outcome.inconclusive, (f"score {score:.1f} is between the marginal score "
                                      f"{settings.marginal_score:g} and the pass score {settings.pass_score:g}"
                                      f"{_failures(failing)}")
    judged = [n for n in scored if classes.get(n) in JUDGED]
    passed = [n for n in judged if classes[n] is Classification.passed]
    tail = f"; {_join(_labels(failing))} failed" if failing else ""
    return Outcome.successful, (f"score {score:.1f} reaches the pass score {settings.pass_score:g}: "
                                f"{len(passed)} of {len(judged)} metrics passed{tail}")


def worst_row(rows: list[MetricResult]) -> MetricResult:
    """The most convincing failure: the smallest p-value; bounds without one count as certain, missing data last."""
    def key(r: MetricResult) -> float:
        if r.classification is Classification.nodata_fail:
            return 2.0
        p = r.statistics.get("p_adjusted", r.statistics.get("p_value"))
        return 0.0 if p is None else p

    return min(rows, key=key)


def _critical_reason(settings: AnalysisSettings, rows: list[MetricResult]) -> str:
    w = worst_row(rows)
    marked = {m.name for m in settings.metrics if m.critical}
    why = f"{w.metric} is critical" if w.metric in marked else "the effect is beyond its critical threshold"
    more = f" ({_count(len(rows) - 1, 'more critical failure')})" if len(rows) > 1 else ""
    return f"{w.reason}; {why}, so the canary fails{more}"


def _nothing_reason(scored: list[str], nodata_rows: list[MetricResult]) -> str:
    if not scored:
        return "every metric is muted, so nothing was judged"
    if not nodata_rows:
        return "nothing could be judged"
    more = f" (and {_count(len(nodata_rows) - 1, 'more check')} without data)" if len(nodata_rows) > 1 else ""
    return f"nothing could be judged: {nodata_rows[0].reason}{more}"


def _failures(failing: list[MetricResult]) -> str:
    if not failing:
        return ""
    return f": {_join(_labels(failing))} failed; worst: {worst_row(failing).reason}"


def _labels(rows: list[MetricResult]) -> list[str]:
    return list(dict.fromkeys(r.metric + (f" [{r.slice}]" if r.slice is not None else "") for r in rows))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
