"""Early decisions: a sequential test on an analysis window's cumulative data, looked at on every scrape.

Why: a measurement is judged when its window ends (45 s or more), so a canary that fails every request
would keep its share of a clinical service's traffic that long. The controller therefore measures the
partial window ``[window start, now]`` at every tick, and this module says whether it already shows a
**gross** failure. It can only ever say "roll back now": a version passes by its full window alone, so an
early look never promotes, and anything short of gross waits for the window's judge.

Why peeking is safe: each check is built from *confidence sequences*, intervals that cover the true value
at every sample size at once (time-uniform), not at one fixed size. For a stream of Bernoulli trials with
``k`` events in ``n``, Robbins' mixture likelihood ratio against a rate ``q`` (a mixture SPRT, "mSPRT",
with a uniform Beta(1, 1) mixture over the alternatives)::

    L_n(q) = B(1 + k, 1 + n - k) / (q^k (1 - q)^(n - k))

is a nonnegative martingale with mean 1 when ``q`` is the true rate, so by Ville's inequality
``P(L_n(q) >= 1/alpha for some n) <= alpha``. The rates ``q`` not rejected, ``{q : L_n(q) < 1/alpha}``, form
an interval that holds the true rate for every ``n`` simultaneously with probability at least ``1 - alpha``:
looking after every request, every scrape, or only at the end changes nothing (the always-valid p-value of
Johari et al. is ``min_n 1 / L_n(q)``). A median ``m`` of a continuous distribution is the same on the
indicator ``1{X <= m}``, a Bernoulli(1/2) stream, so the medians not rejected lie between two order
statistics (and for any distribution a coupling argument keeps the bound valid).

The checks (primum mode; each metric that is not muted, can regress upwards, and is one of):

* ``errors`` / ``proportion``: the canary's rate is proven (its lower confidence bound) above the larger
  of ``early.error_rate`` and ``early.slo_multiple`` times the service's SLO error rate (``errors`` only).
  A healthy canary's true rate is within its SLO, so a false rollback needs the lower bound to be wrong:
  at most its share of ``alpha``. The baseline only vetoes: when the stable version's own rate is as high
  (a failure of everything, not of the canary), there is no early rollback.
* ``latency``: the canary's median is proven above ``early.latency_ratio`` times the baseline's median:
  the canary's lower bound above the ratio times the baseline's upper bound, each at half the check's
  share of ``alpha``; a false rollback needs one of the two bounds to be wrong.

``early.alpha`` is the type-I error of one analysis step, whatever the number of looks: it is divided
among the step's ``count`` measurement intervals (each interval's looks are one sequential test) and, by
Bonferroni, among the checks. Missing data never decides: a metric whose provider failed, or with fewer
than ``early.min_samples`` samples, is not looked at (the window's judge and its error limits handle
outages), and no data is never a pass, because an early look never passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln

from primum.core.analysis.data import (
    Classification,
    JudgeReport,
    MeasurementData,
    MetricData,
    MetricResult,
    Outcome,
    Samples,
)
from primum.core.model.analysis import AnalysisSettings, Direction, JudgeMode, MetricKind, MetricSpec

RATE_CHECK = "early-rate"
MEDIAN_CHECK = "early-median"
METHOD = "mSPRT"
_TINY = 1e-300  # the open ends of a rate's search interval
_RATE_KINDS = (MetricKind.errors, MetricKind.proportion)


# ------------------------------------------------------------------ confidence sequences


def _log_ratio(k: int, n: int, q: float) -> float:
    """ln L_n(q): the uniform-mixture likelihood ratio of ``k`` events in ``n`` against the rate ``q``."""
    log_q = k * math.log(q) if k else 0.0
    log_not_q = (n - k) * math.log1p(-q) if n - k else 0.0
    return float(betaln(1 + k, 1 + n - k)) - log_q - log_not_q


def rate_sequence(events: int, total: int, alpha: float) -> tuple[float, float]:
    """The rate's always-valid ``1 - alpha`` confidence interval after ``events`` in ``total`` trials."""
    if total <= 0:
        return 0.0, 1.0
    threshold = math.log(1.0 / alpha)
    mle = events / total

    def excess(q: float) -> float:
        return _log_ratio(events, total, q) - threshold

    low, high = 0.0, 1.0
    if events > 0 and excess(_TINY) > 0:
        low = float(brentq(excess, _TINY, mle, xtol=1e-12))
    if events < total and excess(1.0 - 1e-15) > 0:
        high = float(brentq(excess, mle, 1.0 - 1e-15, xtol=1e-12))
    return low, high


def median_sequence(ordered: Sequence[float] | np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    """The median's always-valid ``1 - alpha`` confidence interval from the sorted samples (``None``: no
    bound yet on that side)."""
    n = len(ordered)
    if n == 0:
        return None, None
    counts = np.arange(0, n // 2 + 1)
    # ln L_n(1/2) when ``count`` samples lie at or below x: the test of "x is the median"
    log_ratio = betaln(1 + counts, 1 + n - counts) + n * math.log(2.0)
    rejected = counts[log_ratio >= math.log(1.0 / alpha)]
    if not len(rejected):
        return None, None
    j = int(rejected.max())  # below the (j+1)-th smallest sample (and above the (n-j)-th) is rejected
    return float(ordered[j]), float(ordered[n - 1 - j])


# ------------------------------------------------------------------ the checks


@dataclass(frozen=True)
class EarlyCheck:
    """One metric at one look: the observed values, the always-valid bounds, and whether it is gross."""

    metric: str
    check: str  # RATE_CHECK or MEDIAN_CHECK
    group: str
    failed: bool
    headline: str  # e.g. "error-rate 62% vs 0.40%"
    evidence: str  # the bounds against the limit, in words
    alpha: float  # this check's share of the step's alpha
    canary_n: int
    baseline_n: int
    canary: float  # the observed rate, or median (in the metric's unit)
    baseline: float | None
    canary_low: float | None  # the canary's lower confidence bound
    baseline_high: float | None  # latency: the baseline's upper confidence bound
    limit: float | None  # what the canary's lower bound has to exceed for a gross failure
    p_value: float | None = None  # rates: the always-valid p-value of "the canary's rate is within the limit"
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return f"{self.headline} ({self.evidence})"


@dataclass(frozen=True)
class EarlyLook:
    checks: tuple[EarlyCheck, ...] = ()
    alpha: float = 0.0  # the step's alpha (settings.early.alpha)

    @property
    def failure(self) -> EarlyCheck | None:
        """The first gross failure, if any: the only thing an early look can decide."""
        return next((c for c in self.checks if c.failed), None)


def early_metrics(settings: AnalysisSettings) -> list[MetricSpec]:
    """The metrics an early look reads (none when early decisions are off, and in Kayenta mode)."""
    if not settings.early.enabled or settings.mode is not JudgeMode.primum:
        return []
    return [m for m in settings.metrics if not m.muted and m.direction is not Direction.decrease
            and m.kind in (*_RATE_KINDS, MetricKind.latency)]


def early_look(settings: AnalysisSettings, data: MeasurementData, *, count: int = 1) -> EarlyLook:
    """Check the cumulative data of a measurement interval not yet due. ``count``: the step's number of
    measurement intervals (each one's looks are one sequential test at ``alpha / count``)."""
    metrics = early_metrics(settings)
    if not metrics:
        return EarlyLook()
    share = settings.early.alpha / max(1, count) / len(metrics)
    checks: list[EarlyCheck] = []
    for metric in metrics:
        md = data.metrics.get(metric.name)
        if md is None or md.error is not None or md.canary is None:
            continue  # missing data never decides: the window and its error limits do
        check = (_median_check(settings, metric, md, share) if metric.kind is MetricKind.latency
                 else _rate_check(settings, metric, md, data.slo_error_rate, share))
        if check is not None:
            checks.append(check)
    return EarlyLook(tuple(checks), settings.early.alpha)


def _counts(samples: Samples | None) -> tuple[int, int] | None:
    if samples is None or samples.events is None or samples.total is None:
        return None
    if samples.events < 0 or samples.events > samples.total:
        return None  # invalid counts are the window judge's Error, never an early decision
    return samples.events, samples.total


def _sources(md: MetricData) -> dict[str, str]:
    found = {"baseline": md.baseline.source if md.baseline else "", "canary": md.canary.source if md.canary else ""}
    return {role: text for role, text in found.items() if text}


def _rate_check(settings: AnalysisSettings, metric: MetricSpec, md: MetricData, slo: float | None,
                alpha: float) -> EarlyCheck | None:
    early = settings.early
    canary = _counts(md.canary)
    if canary is None or canary[1] < early.min_samples:
        return None
    events, total = canary
    rate = events / total
    limit = early.error_rate
    if metric.kind is MetricKind.errors and slo is not None:
        limit = max(limit, early.slo_multiple * slo)
    low, _ = rate_sequence(events, total, alpha)
    # 1 / L_n(limit): valid at every look for the null "rate <= limit" (L_n is smallest there when rate > limit)
    p_value = min(1.0, math.exp(-_log_ratio(events, total, limit))) if limit < 1 and rate > limit else 1.0
    base = _counts(md.baseline)
    base_rate = base[0] / base[1] if base is not None and base[1] > 0 else None
    proven = low > limit
    vetoed = base_rate is not None and base_rate >= low  # the stable version fails as much: not the canary
    versus = f" vs {_pct(base_rate)}" if base_rate is not None else ""
    evidence = f"{events} of {total}, at least {_pct(low)}"
    if proven and not vetoed:
        evidence += f": above the gross limit {_pct(limit)}"
    elif proven:
        evidence += ": the baseline fails as much, so it is not the canary's failure"
    else:
        evidence += f": not proven above the gross limit {_pct(limit)}"
    return EarlyCheck(metric=metric.name, check=RATE_CHECK, group=metric.group, failed=proven and not vetoed,
                      headline=f"{metric.name} {_pct(rate)}{versus}", evidence=evidence, alpha=alpha,
                      canary_n=total, baseline_n=base[1] if base else 0, canary=rate,
                      baseline=base_rate, canary_low=low, baseline_high=None, limit=limit, p_value=p_value,
                      sources=_sources(md))


def _finite_sorted(samples: Samples | None) -> np.ndarray:
    values = np.asarray(samples.values if samples else [], dtype=float)
    return np.sort(values[np.isfinite(values)])


def _median_check(settings: AnalysisSettings, metric: MetricSpec, md: MetricData, alpha: float) -> EarlyCheck | None:
    early = settings.early
    canary, baseline = _finite_sorted(md.canary), _finite_sorted(md.baseline)
    if len(canary) < early.min_samples or len(baseline) < early.min_samples:
        return None  # a ratio needs both versions' data (a first deployment has no baseline)
    low, _ = median_sequence(canary, alpha / 2)
    _, high = median_sequence(baseline, alpha / 2)
    median, base_median = float(np.median(canary)), float(np.median(baseline))
    limit = early.latency_ratio * high if high is not None else None
    failed = low is not None and limit is not None and low > limit
    ratio = f" ({median / base_median:.1f}x)" if base_median > 0 else ""
    low_text = f"at least {_ms(low)}" if low is not None else "no lower bound yet"
    high_text = f"at most {_ms(high)}" if high is not None else "no upper bound yet"
    verdict = "above" if failed else "not proven above"
    evidence = f"{low_text}: {verdict} {early.latency_ratio:g}x the baseline's {high_text}"
    return EarlyCheck(metric=metric.name, check=MEDIAN_CHECK, group=metric.group, failed=failed,
                      headline=f"{metric.name} median {_ms(median)} vs {_ms(base_median)}{ratio}",
                      evidence=evidence, alpha=alpha, canary_n=len(canary), baseline_n=len(baseline), canary=median,
                      baseline=base_median, canary_low=low, baseline_high=high, limit=limit, sources=_sources(md))


def _pct(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate >= 0.1 or rate == 0:
        return f"{rate:.0%}"
    return f"{rate:.1%}" if rate >= 0.01 else f"{rate:.2%}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


# ------------------------------------------------------------------ the record


def describe_failure(look: EarlyLook) -> str | None:
    """One sentence for the event and the rollback reason, or None when nothing is gross."""
    failure = look.failure
    if failure is None:
        return None
    return f"early rollback: {failure.headline} ({failure.evidence}; {METHOD}, always-valid p < {look.alpha:g})"


def early_report(settings: AnalysisSettings, data: MeasurementData, look: EarlyLook, reason: str) -> JudgeReport:
    """The early look as a judge report, so ``primum analysis show`` and the evidence explain it like any
    measurement: one row per check, with the bounds, the limit and the alpha it used."""
    rows: list[MetricResult] = []
    for c in look.checks:
        kind = "rate" if c.check == RATE_CHECK else "median"
        rows.append(MetricResult(
            metric=c.metric, check=c.check, classification=Classification.high if c.failed else Classification.passed,
            critical=c.failed, group=c.group, baseline_n=c.baseline_n, canary_n=c.canary_n,
            baseline={kind: c.baseline}, canary={kind: c.canary},
            statistics={"canary_low": c.canary_low, "baseline_high": c.baseline_high, "p_value": c.p_value},
            effect=(c.canary / c.baseline) if c.baseline else None, effect_measure=f"{kind}Ratio",
            thresholds={"limit": c.limit, "alpha": c.alpha, "method": METHOD,
                        "min_samples": settings.early.min_samples},
            source=c.sources, reason=c.reason))
    metrics = {c.metric: Classification.high if c.failed else Classification.passed for c in look.checks}
    return JudgeReport(mode="primum", outcome=Outcome.failed, score=None, pass_score=settings.pass_score,
                       marginal_score=settings.marginal_score, reason=reason, results=rows, metrics=metrics,
                       start=data.start, end=data.end, baseline_version=data.baseline_version,
                       canary_version=data.canary_version)
