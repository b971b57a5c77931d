"""What flows into the judge and what comes out of it.

Providers (I/O) produce :class:`Samples`; the controller gathers them into a
:class:`MeasurementData` per measurement; the judge (pure) turns that into a
:class:`JudgeReport` that carries every input a person needs to check it: the
source of each sample, the sample sizes, the statistics, the effect, the
thresholds and one sentence of reason. Reports are stored with the verdict and
shown by ``primum analysis show``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Samples(Model):
    """One version's data for one metric over one interval (one tenant slice or all).

    ``values``: the samples the rank test compares: per request (the builtin
    latency), or a time series (one value per step), NaN where a point is
    missing. ``events``/``total``: for proportion metrics (errors, or any bad
    events among all events). ``source``: the query, URL or command exactly as
    sent, for the explanation.
    """

    values: list[float] = Field(default_factory=list)
    events: int | None = None
    total: int | None = None
    source: str = ""


class MetricData(Model):
    """Baseline and canary samples of one metric, overall and per tenant slice."""

    metric: str
    baseline: Samples | None = None  # None: there is no baseline (first deployment)
    canary: Samples | None = None
    slices: dict[str, tuple[Samples, Samples]] = Field(default_factory=dict)  # tenant -> (baseline, canary)
    error: str | None = None  # the provider failed: the metric is Error, never a pass


class MeasurementData(Model):
    """Everything one measurement judges."""

    start: float
    end: float
    baseline_version: str | None  # VersionRef.key
    canary_version: str
    metrics: dict[str, MetricData] = Field(default_factory=dict)
    # the service's SLOs, held as absolute bounds in primum mode
    slo_error_rate: float | None = None
    slo_p95_s: float | None = None
    slo_p99_s: float | None = None
    # the baseline's own window when it differs (a historical baseline: just before a blue-green switch)
    baseline_start: float | None = None
    baseline_end: float | None = None


class Classification(StrEnum):
    passed = "Pass"
    high = "High"
    low = "Low"
    nodata = "Nodata"
    nodata_fail = "NodataFail"
    error = "Error"


class MetricResult(Model):
    """The judgement of one metric (or one check of it) on one slice."""

    metric: str
    check: str  # e.g. "mann-whitney", "fisher-exact", "tail-p99", "slo-error-rate", "threshold"
    slice: str | None = None  # tenant id; None for all traffic
    classification: Classification
    critical: bool = False
    muted: bool = False
    group: str = "default"
    baseline_n: int = 0
    canary_n: int = 0
    baseline: dict[str, float | None] = Field(default_factory=dict)  # summary: mean, median, p99, rate...
    canary: dict[str, float | None] = Field(default_factory=dict)
    statistics: dict[str, float | None] = Field(default_factory=dict)  # U, p_value, hl_estimate, ci_low...
    effect: float | None = None
    effect_measure: str | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, str] = Field(default_factory=dict)  # role -> query as sent
    reason: str  # one sentence
    # Shown for the record but not part of the metric's classification: a tenant
    # slice too small to judge, a bound that needs data this metric does not have.
    skipped: bool = False


class GroupScore(Model):
    group: str
    weight: float  # percent of the total score
    passed: int
    judged: int
    score: float  # 0..100


class Outcome(StrEnum):
    """What one measurement says (Argo Rollouts' measurement phases)."""

    successful = "Successful"
    failed = "Failed"
    inconclusive = "Inconclusive"
    error = "Error"


class JudgeReport(Model):
    mode: Literal["primum", "kayenta"]
    outcome: Outcome
    score: float | None  # 0..100; None when nothing could be judged
    pass_score: float
    marginal_score: float
    reason: str  # one sentence a person can act on
    results: list[MetricResult] = Field(default_factory=list)
    groups: list[GroupScore] = Field(default_factory=list)
    # Each metric's classification: the worst of its rows that are not skipped.
    metrics: dict[str, Classification] = Field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0
    baseline_version: str | None = None
    canary_version: str = ""


class ProbeResult(Model):
    """One synthetic probe's answer: passed or not, why, and what was seen."""

    probe: str  # type: http, fhir, mllp, tcp, tls
    target: str  # URL or host:port probed
    ok: bool
    reason: str  # one sentence
    latency_ms: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)
