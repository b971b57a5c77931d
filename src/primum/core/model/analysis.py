"""How a service's new version is judged: metrics, their sources, the judge and
measurement settings, and synthetic probes. Part of the estate (``analysis:``
and ``probes:`` of a service or template); validated like the rest of it.

Vocabulary (after Kayenta and Argo Rollouts):

* a *metric* names a source (a provider and its query) and how to judge it;
* a *measurement* is one judgement of one interval; an analysis step takes
  ``count`` measurements each ``interval`` long after ``initial_delay``;
* the *judge* compares the canary's samples with the baseline's per metric,
  classifies each metric, and scores the whole (see ``primum.core.analysis.judge``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from primum.core.model.plugins import PluginSpec, SpecKind
from primum.core.model.types import (
    AboveOne,
    Alpha,
    Attempts,
    Bound,
    Confidence,
    Count,
    Days,
    Duration,
    Fraction,
    Multiple,
    Name,
    NonNegative,
    OpenFraction,
    Port,
    PositiveCount,
    PositiveDuration,
    Ratio,
    Retries,
    Score,
    StatusCode,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Placeholders a query, URL or command may use; they are filled per version,
# role and tenant slice when the metric is fetched. Mustache-style so PromQL's
# own braces stay untouched.
PLACEHOLDERS = frozenset({"version", "digest", "role", "service", "env", "tenant", "start", "end", "window",
                          "step"})
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def fill(text: str, values: dict[str, str]) -> str:
    """Replace ``{{name}}`` placeholders; unknown names were rejected when the estate loaded."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _check_placeholders(*texts: str) -> None:
    for text in texts:
        unknown = placeholders(text) - PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in {text!r}; "
                             f"use {{{{name}}}} with name one of {sorted(PLACEHOLDERS)}")


# ----------------------------------------------------------------- sources


class SourceSpec(PluginSpec):
    """Base of a metric source's settings (register a new kind with ``primum.adapters.providers.registry``)."""

    def templated_texts(self) -> list[str]:
        """Every text of the source that may hold ``{{placeholders}}`` (to see which it uses)."""
        return []

    def slices_by_tenant(self) -> bool:
        """Can this source give one tenant's samples? Yes when a query names ``{{tenant}}``."""
        return any("tenant" in placeholders(text) for text in self.templated_texts())


SOURCES = SpecKind("metric source", "source", default="builtin", base=SourceSpec)


@SOURCES.register
class BuiltinSource(SourceSpec):
    """The local router's per-request records (status, latency, tenant) of each version."""

    type: Literal["builtin"] = "builtin"

    def slices_by_tenant(self) -> bool:
        return True  # the router records every request's tenant


@SOURCES.register
class PrometheusSource(SourceSpec):
    """PromQL over the Prometheus HTTP API. ``query`` gives the samples (a range
    query over the measurement window at ``step``, or one instant query at its
    end); for a ``proportion`` metric ``query`` counts the bad events and
    ``total_query`` all events over the window (instant queries)."""

    type: Literal["prometheus"] = "prometheus"
    address: str = "http://127.0.0.1:9090"
    query: str = Field(min_length=1)
    total_query: str | None = None
    range: bool = True
    step: PositiveDuration = 1.0
    timeout: PositiveDuration = 5.0
    retries: Retries = 2
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _placeholders(self) -> PrometheusSource:
        _check_placeholders(*self.templated_texts())
        return self

    def templated_texts(self) -> list[str]:
        return [self.query, self.total_query or ""]


@SOURCES.register
class WebSource(SourceSpec):
    """An HTTP endpoint answering JSON; ``jsonpath`` picks a number or a list of numbers."""

    type: Literal["web"] = "web"
    url: str = Field(min_length=1)
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    jsonpath: str = "$"
    total_jsonpath: str | None = None  # proportion metrics: the number of all events
    timeout: PositiveDuration = 5.0
    retries: Retries = 2

    @model_validator(mode="after")
    def _placeholders(self) -> WebSource:
        _check_placeholders(*self.templated_texts())
        return self

    def templated_texts(self) -> list[str]:
        return [self.url, self.body or "", *self.headers.values()]


@SOURCES.register
class CommandSource(SourceSpec):
    """A program (argv, no shell) that prints one number, or several separated by
    whitespace; for a proportion metric it prints ``EVENTS TOTAL``."""

    type: Literal["command"] = "command"
    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    timeout: PositiveDuration = 10.0
    retries: Retries = 1

    @model_validator(mode="after")
    def _placeholders(self) -> CommandSource:
        _check_placeholders(*self.templated_texts())
        return self

    def templated_texts(self) -> list[str]:
        return [*self.argv, *self.env.values()]


# A metric's source: any registered kind (see ``primum.core.model.plugins``).
if TYPE_CHECKING:
    Source = SourceSpec
else:
    Source = SOURCES.field_type()


# ----------------------------------------------------------------- metrics


class MetricKind(StrEnum):
    latency = "latency"  # builtin: seconds per request (all requests)
    errors = "errors"  # builtin: 5xx responses among all requests (a proportion)
    value = "value"  # any numeric samples, compared with Mann-Whitney
    proportion = "proportion"  # bad events among all events, from any provider


class Direction(StrEnum):
    increase = "increase"  # only an increase is a regression (latency, errors)
    decrease = "decrease"  # only a decrease is (throughput, success rate)
    either = "either"


class NanStrategy(StrEnum):
    remove = "remove"
    replace = "replace"  # type: ignore[assignment]  # with 0.0, as Kayenta (shadows str.replace on purpose)


class EffectMeasure(StrEnum):
    mean_ratio = "meanRatio"  # canary mean / baseline mean
    cles = "cles"  # common-language effect size: P(canary > baseline)


class EffectSize(Strict):
    """When a statistically significant difference matters (Kayenta's effect size).
    ``allowed_*``: a difference within this is a Pass; ``critical_*``: beyond it the
    metric fails the whole measurement even if it is not marked critical."""

    measure: EffectMeasure = EffectMeasure.mean_ratio
    allowed_increase: Ratio = 1.0
    critical_increase: Ratio | None = None
    allowed_decrease: Ratio = 1.0
    critical_decrease: Ratio | None = None
    # primum mode: the smallest absolute shift (Hodges-Lehmann estimate, in the metric's unit) that
    # matters. A significant shift smaller than this is practically harmless (e.g. +3 ms on 7 ms).
    min_shift: NonNegative = 0.0
    # primum mode: the same floor relative to the baseline's median (0.1: a shift under 10% of it is harmless);
    # the larger of the two applies, so noise that grows with the latency does not read as a regression.
    min_shift_ratio: NonNegative = 0.0


class TailCheck(Strict):
    """primum mode: the canary's upper quantile against the baseline's, so a
    regression that widens the tail without moving the median is caught. Both
    quantiles are taken with their sampling error (order-statistic confidence
    bounds), see ``primum.core.analysis.judge.tail``."""

    quantile: Confidence = 0.99
    max_ratio: Multiple = 1.5
    slack: NonNegative = 0.05  # absolute allowance, in the metric's unit (s for latency)
    # observations expected above the quantile on each side (n x (1 - q)); fewer: the check is Nodata
    # (shown, not judged), since a p99 from a few dozen samples is the maximum, not a p99
    min_tail_samples: PositiveCount = 5


class Threshold(Strict):
    """An absolute bound on the canary (an SLO): the canary's statistic must stay within it."""

    statistic: Literal["mean", "median", "p95", "p99", "rate"] = "mean"
    max: Bound | None = None
    min: Bound | None = None


class MetricSpec(Strict):
    name: Name
    source: Source = Field(default_factory=BuiltinSource)
    kind: MetricKind = MetricKind.value
    direction: Direction = Direction.increase
    group: str = "default"
    critical: bool = False  # a failure fails the measurement whatever the score
    muted: bool = False  # judged and shown, but not scored
    fail_on_nodata: bool = False  # no data is a failure (NodataFail), not just not scored
    nan_strategy: NanStrategy = NanStrategy.remove
    outliers: Literal["keep", "remove"] = "keep"  # remove: Tukey fences (1.5 IQR)
    effect: EffectSize = Field(default_factory=EffectSize)
    tail: TailCheck | None = None  # primum mode only
    threshold: Threshold | None = None
    slices: bool = True  # judge each tenant's traffic on its own too (primum mode)
    # Proportion metrics (errors, proportion): the smallest absolute increase of the
    # canary's rate over the baseline's that matters, even when significant.
    min_rate_increase: Fraction = 0.01

    @model_validator(mode="after")
    def _kind_fits_source(self) -> MetricSpec:
        builtin = isinstance(self.source, BuiltinSource)
        if self.kind in (MetricKind.latency, MetricKind.errors) and not builtin:
            raise ValueError(f"kind {self.kind.value!r} is computed from the local router's records; "
                             "with another source use kind 'value' or 'proportion'")
        if builtin and self.kind not in (MetricKind.latency, MetricKind.errors):
            raise ValueError("the builtin source provides kind 'latency' or 'errors'")
        if self.kind is MetricKind.proportion:
            if isinstance(self.source, PrometheusSource) and not self.source.total_query:
                raise ValueError("a proportion metric from prometheus needs total_query (all events)")
            if isinstance(self.source, WebSource) and not self.source.total_jsonpath:
                raise ValueError("a proportion metric from a web source needs total_jsonpath (all events)")
        return self


def default_metrics() -> list[MetricSpec]:
    """The metrics of a service of tier ``business`` or ``internal``, and of ``AnalysisSettings()``:
    errors are critical; a latency rise costs the latency group its score (a marginal result pauses
    for a person) and only a doubled mean fails on its own."""
    return [
        MetricSpec(name="error-rate", kind=MetricKind.errors, group="errors", critical=True),
        MetricSpec(name="latency", kind=MetricKind.latency, group="latency",
                   effect=EffectSize(allowed_increase=1.2, critical_increase=2.0, min_shift=0.01), tail=TailCheck()),
    ]


def critical_metrics() -> list[MetricSpec]:
    """The metrics of a ``clinical-critical`` or ``patient-facing`` service: latency is critical too, so a
    clear regression rolls back at night instead of holding 25% of a clinic's traffic on it until someone
    looks. Any significant rise of 10% (mean ratio, and a shift of 10% of the baseline median) and 2 ms or
    more fails (so a true 20% rise fails reliably, sampling noise in the mean ratio included), as do a
    significant p99 rise beyond 1.5 x the baseline's
    + 50 ms and a canary p95 beyond the service's SLO."""
    return [
        # half a point of errors matters here: a true +1 point must fail reliably, not half the time
        MetricSpec(name="error-rate", kind=MetricKind.errors, group="errors", critical=True, min_rate_increase=0.005),
        MetricSpec(name="latency", kind=MetricKind.latency, group="latency", critical=True,
                   effect=EffectSize(allowed_increase=1.1, critical_increase=1.1, min_shift=0.002,
                                     min_shift_ratio=0.1), tail=TailCheck()),
    ]


# The tiers whose latency is critical by default (``primum.core.model.estate.Tier`` values).
CRITICAL_LATENCY_TIERS = frozenset({"clinical-critical", "patient-facing"})


def tier_metrics(tier: str) -> list[MetricSpec]:
    """The default metrics of a service of this tier (docs/JUDGE.md, "Defaults by tier")."""
    return critical_metrics() if tier in CRITICAL_LATENCY_TIERS else default_metrics()


def with_tier_defaults(tier: str, given: dict[str, Any]) -> dict[str, Any]:
    """A service's ``analysis:`` block over its tier's defaults. Every key given wins; what the tier picks
    is ``metrics``, so a block without ``metrics`` keeps the tier's metrics and one with ``metrics`` has
    exactly those (a list replaces, as in templates). ``mode: kayenta`` keeps ``default_metrics()`` on every
    tier: that mode is there to compare with Kayenta as published, on the settings it always had."""
    if "metrics" in given or str(given.get("mode", JudgeMode.primum.value)) == JudgeMode.kayenta.value:
        return given
    return {**given, "metrics": tier_metrics(tier)}


# ------------------------------------------------------------ judge settings


class JudgeMode(StrEnum):
    primum = "primum"  # the default: proportions, tail, sample guard, tenant slices
    kayenta = "kayenta"  # Kayenta's published behaviour, for comparison


class EarlySettings(Strict):
    """Early decisions (primum mode): a sequential test on the partial window at every look, so a gross
    failure rolls back within seconds instead of at the end of its window. It can only ever roll back:
    the window alone passes a version. Type-I error: ``alpha`` per analysis step, however often it looks
    (always-valid confidence sequences; see docs/ANALYSIS.md, "Early decisions")."""

    enabled: bool = True
    alpha: Alpha = 0.001  # per analysis step, split among its looks' checks
    min_samples: PositiveCount = 20  # canary (and, for latency, baseline) samples before a look
    # errors: the canary's rate is proven above the larger of these two (and above the baseline's rate)
    error_rate: OpenFraction = 0.05
    slo_multiple: Multiple = 5.0  # times the service's SLO error rate
    # latency: the canary's median is proven above this many times the baseline's median (2: where the
    # window's default critical_increase fails a version anyway, so an early look only decides sooner)
    latency_ratio: AboveOne = 2.0


class AnalysisSettings(Strict):
    """How a new version is compared with the stable one, and when."""

    # judge
    mode: JudgeMode = JudgeMode.primum
    metrics: list[MetricSpec] = Field(default_factory=default_metrics, min_length=1)
    confidence: Confidence = 0.98
    tolerance: NonNegative = 0.25  # Kayenta: fraction of the baseline treated as no change
    pass_score: Score = 75.0
    marginal_score: Score = 50.0
    groups: dict[str, Score] = Field(default_factory=dict)  # group weights; unnamed groups share the rest
    min_samples: PositiveCount = 20  # per version and metric (primum mode); fewer: no data
    min_slice_samples: PositiveCount = 15  # per tenant slice; fewer: the slice is not judged
    slo_checks: bool = True  # primum mode: hold the canary to the service's SLOs too
    # measurement (Argo Rollouts' semantics)
    count: PositiveCount = 1  # measurements per analysis step
    initial_delay: Duration = 1.0  # after a traffic shift, before the first interval (cold starts)
    failure_limit: Count = 0  # more failed measurements than this: roll back
    inconclusive_limit: Count = 0  # more inconclusive ones: pause for a person
    consecutive_error_limit: Count = 4  # more provider errors in a row: roll back
    outage_limit: Count = 3  # more metrics outages within one analysis step: roll back
    # early decisions by a sequential test at every look (gross failures only; never an early pass)
    early: EarlySettings = Field(default_factory=EarlySettings)

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisSettings:
        if self.marginal_score > self.pass_score:
            raise ValueError(f"marginal_score ({self.marginal_score:g}) must not exceed pass_score "
                             f"({self.pass_score:g})")
        names = [m.name for m in self.metrics]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"metric names must be unique; repeated: {duplicated}")
        return self

    @field_validator("groups")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or sum(value.values()) > 100 + 1e-9:
            raise ValueError("group weights are percentages: each >= 0 and together at most 100")
        return value


# ------------------------------------------------------------------ probes

PROBES = SpecKind("probe", "probe")


@PROBES.register
class HttpProbe(PluginSpec):
    """An HTTP request that must answer an expected status, within a latency, optionally with a text."""

    type: Literal["http"] = "http"
    path: str = "/healthz"
    url: str | None = None  # default: the service's router in the environment, plus ``path``
    method: Literal["GET", "HEAD", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: list[StatusCode] = Field(default_factory=lambda: [200], min_length=1)
    max_latency: PositiveDuration = 2.0
    body_contains: str | None = None
    timeout: PositiveDuration = 5.0


@PROBES.register
class FhirProbe(PluginSpec):
    """``GET [base]/metadata`` with ``Accept: application/fhir+json``."""

    type: Literal["fhir"] = "fhir"
    base: str | None = None  # default: the service's router in the environment
    fhir_version: str = "4.0.1"
    resources: dict[str, list[str]] = Field(default_factory=dict)  # type -> required interactions
    timeout: PositiveDuration = 5.0


@PROBES.register
class MllpProbe(PluginSpec):
    """Send a synthetic ADT message over MLLP; expect an ACK with MSA-1 AA echoing the control id."""

    type: Literal["mllp"] = "mllp"
    host: str = "127.0.0.1"
    port: Port | None = None  # default: the service's MLLP port
    message_type: str = "ADT^A01"
    timeout: PositiveDuration = 5.0


@PROBES.register
class TcpProbe(PluginSpec):
    """A TCP connection that must be accepted within the timeout."""

    type: Literal["tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: Port
    timeout: PositiveDuration = 3.0


@PROBES.register
class TlsProbe(PluginSpec):
    """A TLS handshake whose verified certificate must be valid for at least `min_days` more days."""

    type: Literal["tls"] = "tls"
    host: str
    port: Port = 443
    server_name: str | None = None
    min_days: Days = 14.0
    ca_file: str | None = None  # trust this CA bundle instead of the system's
    timeout: PositiveDuration = 5.0


# A probe gate's probe: any registered kind.
if TYPE_CHECKING:
    ProbeSpec = PluginSpec
else:
    ProbeSpec = PROBES.field_type()


GateTime = Literal["before", "after"]


def _after() -> list[GateTime]:
    return ["after"]


class ProbeGate(Strict):
    """A named probe run as a gate: ``before`` a rollout step begins changing traffic
    (against the new version's preview) and ``after`` the item finished, or both."""

    name: Name
    probe: ProbeSpec
    when: list[GateTime] = Field(default_factory=_after, min_length=1)
    attempts: Attempts = 3  # a gate passes on the first passing attempt
    interval: PositiveDuration = 1.0

