"""One plain sentence per result, with the numbers a person needs to check it.

Latency is in seconds in the data and in milliseconds in sentences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from primum.core.analysis.data import Classification
from primum.core.analysis.judge.proportions import Counts, RateTest, RateWhy
from primum.core.analysis.judge.shift import Limits, ShiftTest, Why, shift_floor
from primum.core.analysis.judge.tail import TailTest
from primum.core.model.analysis import EffectMeasure, MetricKind, MetricSpec


@dataclass(frozen=True)
class Subject:
    """What a sentence is about: a metric, maybe one tenant's slice of it."""

    metric: MetricSpec
    slice: str | None = None

    @property
    def name(self) -> str:
        return self.metric.name + (f" for tenant {self.slice}" if self.slice is not None else "")

    @property
    def latency(self) -> bool:
        return self.metric.kind is MetricKind.latency

    @property
    def unit(self) -> str:
        """What one sample or event is, for counts in sentences."""
        if self.metric.kind is MetricKind.errors:
            return "requests"
        return "events" if self.metric.kind is MetricKind.proportion else "samples"

    def value(self, v: float | None) -> str:
        if v is None or math.isnan(v):
            return "n/a"
        return f"{v * 1000:.1f} ms" if self.latency else f"{v:.4g}"

    def signed(self, v: float) -> str:
        return f"{v * 1000:+.1f} ms" if self.latency else f"{v:+.4g}"


def p_text(p: float) -> str:
    return "p<0.0001" if p < 0.0001 else f"p={p:.2g}"


def pct(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def confidence_text(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def holm_text(p_adjusted: float | None, family: int) -> str:
    return "" if p_adjusted is None else f", Holm-adjusted over {tenants(family)} {p_text(p_adjusted)}"


def tenants(count: int) -> str:
    return f"{count} tenant" + ("" if count == 1 else "s")


# ------------------------------------------------------------------ samples


def effect_text(test: ShiftTest, limit: Limits) -> str:
    if limit.measure is EffectMeasure.cles:
        return f"P(canary > baseline) {test.cles:.2f}"
    return "mean ratio undefined (a mean is zero)" if math.isnan(test.mean_ratio) else \
        f"mean ratio {test.mean_ratio:.2f}"


def shift_reason(s: Subject, test: ShiftTest, limit: Limits, medians: tuple[float, float],
                 sizes: tuple[int, int], *, p_adjusted: float | None = None, family: int = 0,
                 held_by_holm: bool = False) -> str:
    """Stage 3-5's sentence for one Mann-Whitney comparison."""
    if test.why is Why.identical:
        return f"{s.name} holds: the canary and baseline samples are identical (n={sizes[0]})"
    if test.why is Why.constant:
        return f"{s.name} holds: every sample on both sides is {s.value(medians[0])}"
    where = f"canary median {s.value(medians[0])} vs {s.value(medians[1])} on the baseline"
    sh = test.shift
    ci = f"{confidence_text(sh.confidence)} CI {s.signed(sh.low)} to {s.signed(sh.high)}"
    mw = f"Mann-Whitney {p_text(test.mw.p_value)}{holm_text(p_adjusted, family)}, n={sizes[0]} vs {sizes[1]}"
    tolerance = f"the ±{s.value(test.bound)} tolerance"
    effect = effect_text(test, limit)
    if held_by_holm:
        return (f"{s.name} holds: {where}, a shift of {s.signed(sh.estimate)} ({ci}) that is not significant "
                f"once corrected for testing {tenants(family)}; {mw}")
    if test.why in (Why.high, Why.low):
        high = test.why is Why.high
        allowed = limit.allowed_increase if high else limit.allowed_decrease
        known = not math.isnan(test.effect)
        compare = f" {'>=' if high else '<='} allowed {allowed:g}" if known else ""
        return (f"{s.name} {'rose' if high else 'fell'}: {where}, a shift of {s.signed(sh.estimate)} ({ci}) "
                f"clear of {tolerance}, {effect}{compare}; {mw}")
    if test.why is Why.effect:
        allowed = limit.allowed_increase if sh.low > 0 else limit.allowed_decrease
        return (f"{s.name} holds: {where}, a clear shift of {s.signed(sh.estimate)} ({ci}) but {effect} is within "
                f"the allowed {allowed:g}; {mw}")
    if test.why is Why.small and s.slice is not None:
        return (f"{s.name} holds: {where}, a clear shift of {s.signed(sh.estimate)} ({ci}), {effect}, but its "
                f"interval reaches below the {s.value(shift_floor(s.metric.effect, medians[1]))} that matters "
                f"(min_shift, which "
                f"a tenant slice's whole interval must clear); {mw}")
    if test.why is Why.small:
        return (f"{s.name} holds: {where}, a clear shift of {s.signed(sh.estimate)} ({ci}), {effect}, but smaller "
                f"than the {s.value(shift_floor(s.metric.effect, medians[1]))} that matters (min_shift); {mw}")
    if test.why is Why.harmless:
        return (f"{s.name} holds: {where}, a shift of {s.signed(sh.estimate)} ({ci}) in the direction that does "
                f"not matter (only an {s.metric.direction.value} does); {mw}")
    return f"{s.name} holds: {where}, a shift of {s.signed(sh.estimate)} ({ci}) within {tolerance}; {mw}"


class Hold(StrEnum):
    """Why a failing tail test on a tenant slice does not fail it."""

    none = "none"
    holm = "holm"  # not significant once corrected for the number of tenants
    overall = "overall"  # the aggregate tail did not move: one tenant's spread alone


def tail_reason(s: Subject, t: TailTest, *, p_adjusted: float | None = None, family: int = 0,
                held: Hold = Hold.none, overall: TailTest | None = None) -> str:
    label = f"p{100 * t.quantile:g}"
    tail = s.metric.tail
    assert tail is not None and t.limit is not None
    head = f"{s.name} {label}: canary {s.value(t.canary_q)} vs {s.value(t.baseline_q)} on the baseline"
    limit = (f"{tail.max_ratio:g} x {s.value(t.baseline_high)} (the baseline {label}'s "
             f"{confidence_text(1 - t.level)} upper bound) + {s.value(tail.slack)} = {s.value(t.limit)}")
    count = (f"{t.above} of {t.n} canary samples ({pct(t.above / t.n)}) are above {limit}, where a {label} within "
             f"it allows {pct(t.expected)} (binomial {p_text(t.p_value)}{holm_text(p_adjusted, family)}")
    if held is Hold.holm:
        return f"{head}; {count}), not significant once corrected for testing {tenants(family)}"
    if held is Hold.overall:
        if overall is None or overall.limit is None:
            why = "the overall tail could not be judged"
        else:
            why = (f"the overall {label} did not move ({overall.above} of {overall.n} canary samples above its limit "
                   f"{s.value(overall.limit)}, binomial {p_text(overall.p_value)} >= {2 * overall.level:g})")
        return f"{head}; {count} < {t.level:g}), but {why}, so one tenant's wider tail alone does not fail it"
    if t.classification is Classification.high:
        return (f"{head}; {count} < {t.level:g}): the canary's {label} is above the limit with "
                f"{confidence_text(1 - t.level)} confidence")
    if t.above / t.n <= t.expected:
        return f"{head}; within the limit: {count})"
    return f"{head}; {count} >= {t.level:g}), not enough to show the canary's {label} above the limit"


def tail_nodata_reason(s: Subject, t: TailTest) -> str:
    """Why a tail could not be judged: too few samples expected above the quantile on a side."""
    label = f"p{100 * t.quantile:g}"
    needed = math.ceil(t.min_tail / (1.0 - t.quantile) - 1e-9)
    if min(t.n, t.m) >= needed:
        return (f"the baseline {label}'s {confidence_text(1 - t.level)} upper bound lies beyond its largest "
                f"of {t.m} samples")
    return (f"its {label} tail needs {t.min_tail} samples expected above the {label} on each side "
            f"({needed} samples), and there are {t.n} canary and {t.m} baseline samples")


# ------------------------------------------------------------------ counts


def counts_text(s: Subject, c: Counts, b: Counts) -> str:
    verb = "failed" if s.unit == "requests" else "were bad"
    return (f"{c.events} of {c.total} {s.unit} {verb} ({pct(c.rate)}) vs {b.events} of {b.total} on the baseline "
            f"({pct(b.rate)})")


def rate_reason(s: Subject, t: RateTest, alpha: float, min_rate_increase: float, *,
                p_adjusted: float | None = None, family: int = 0) -> str:
    head = f"{s.name}: {counts_text(s, t.canary, t.baseline)}; Fisher exact {p_text(t.p_value)}"
    holm = holm_text(p_adjusted, family)
    if t.why is RateWhy.not_significant:
        return f"{head} >= {alpha:g}{holm}, no significant {_change(s)}"
    if t.why is RateWhy.small:
        return (f"{head} < {alpha:g}{holm} but the rate moved by {100 * abs(t.difference):.2f} percentage points, "
                f"not more than the {100 * min_rate_increase:.2f} that matter")
    if p_adjusted is not None and p_adjusted >= alpha:
        return f"{head} < {alpha:g} alone{holm}, not significant once corrected for testing {tenants(family)}"
    return f"{head} < {alpha:g}{holm}"


def _change(s: Subject) -> str:
    return {"increase": "increase", "decrease": "decrease", "either": "change"}[s.metric.direction.value]


def slo_rate_reason(s: Subject, c: Counts, slo: float, p: float, alpha: float) -> str:
    what = f"{c.events} of {c.total} canary {s.unit} failed ({pct(c.rate)})"
    if p < alpha:
        return (f"{s.name} breaks the error-rate SLO: {what}, above the SLO of {pct(slo)} "
                f"(binomial {p_text(p)} < {alpha:g})")
    if c.rate <= slo:
        return f"{s.name} meets the error-rate SLO of {pct(slo)}: {what}"
    return (f"{s.name} meets the error-rate SLO of {pct(slo)}: {what}, above it but not significantly "
            f"(binomial {p_text(p)} >= {alpha:g})")


def slo_latency_reason(s: Subject, name: str, observed: float, slo: float, above: Counts, allowed: float,
                       p: float, alpha: float) -> str:
    share = f"{above.events} of {above.total} canary requests ({pct(above.rate)}) took longer than {s.value(slo)}"
    if p < alpha:
        return (f"{s.name} breaks the latency SLO: canary {name} {s.value(observed)}; {share}, significantly more "
                f"than the {pct(allowed)} a {name} of {s.value(slo)} allows (binomial {p_text(p)} < {alpha:g})")
    return (f"{s.name} meets the latency SLO: canary {name} {s.value(observed)}; {share}, not significantly more "
            f"than the {pct(allowed)} a {name} of {s.value(slo)} allows (binomial {p_text(p)})")


def threshold_reason(s: Subject, statistic: str, observed: float, bound_min: float | None,
                     bound_max: float | None, classification: Classification, detail: str = "") -> str:
    shown = pct(observed) if statistic == "rate" else s.value(observed)

    def bound(v: float | None) -> str:
        return "-" if v is None else (pct(v) if statistic == "rate" else s.value(v))

    head = f"{s.name} threshold: canary {statistic} {shown}{detail}"
    if classification is Classification.high:
        return f"{head} is above the maximum {bound(bound_max)}"
    if classification is Classification.low:
        return f"{head} is below the minimum {bound(bound_min)}"
    return f"{head} is within [{bound(bound_min)}, {bound(bound_max)}]"


# ------------------------------------------------------------------ no data


def nodata_reason(s: Subject, why: str, classification: Classification) -> str:
    if classification is Classification.nodata_fail:
        return f"{s.name} fails for lack of data: {why}, and the metric must have data"
    return f"{s.name} not judged: {why}"


def too_few(s: Subject, canary: int, baseline: int, needed: int, what: str) -> str:
    return (f"{canary} canary and {baseline} baseline {s.unit}, fewer than the {needed} {what} needs on each side")
