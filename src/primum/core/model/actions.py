"""The contracts between the pure core and every target: what to run, what to do, what was seen.

These are the contracts between the pure core and the I/O shell:

* ``VersionRef`` names one version of one service (an artifact pinned by digest).
* ``ServiceRuntimeSpec`` is what a target needs to run a service in one
  environment, resolved from the estate.
* ``Action`` values are what ``engine.decide`` asks a target to do. Every
  action is *idempotent* and *level-triggered*: it states a desired
  condition ("run 3 instances of this version", "route these weights"), so
  repeating it after a crash is harmless.
* ``ServiceObservation`` is what a target reports back about the world.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from primum.core.model.types import EnvValue


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionRef(Frozen):
    """One version of one service: an artifact file pinned by its sha256 digest."""

    digest: str  # "sha256:<64 hex>"
    artifact: str  # absolute path (or URI) of the artifact file
    label: str = ""  # human version label, e.g. "2.1.0"

    @property
    def key(self) -> str:
        """Short, stable identifier used in routes, metrics and process names."""
        return self.digest.removeprefix("sha256:")[:12]

    def describe(self) -> str:
        return f"{self.label or '?'} ({self.key})"


class TrafficSpec(Frozen):
    """Synthetic traffic for a service where no real users exist."""

    rate: float = 10.0  # requests per second
    paths: tuple[str, ...] = ("/",)
    tenants: tuple[str, ...] = ()
    preview_share: float = 0.0  # fraction of requests sent with the preview header


class ServiceRuntimeSpec(Frozen):
    """Everything a target needs to run one service in one environment."""

    estate: str
    env: str
    service: str
    command: tuple[str, ...]  # tokens; "{artifact}" and "{port}" are substituted
    health_path: str = "/healthz"
    replicas: int = 1
    env_vars: dict[str, EnvValue] = Field(default_factory=dict)  # literals, or references the target resolves
    affinity: Literal["tenant", "none"] = "tenant"
    tenant_header: str = "x-tenant-id"
    tenants: tuple[str, ...] = ()
    router_port: int | None = None  # None: the target picks a free port
    startup_timeout_s: float = 30.0
    traffic: TrafficSpec | None = None
    # A plug-in target's own settings (``target:`` of the estate, as JSON), which only that target reads.
    target_settings: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.env}/{self.service}"


# ---------------------------------------------------------------- actions


class EnsureInstances(Frozen):
    """Run exactly ``count`` healthy instances of ``version`` (0 stops it)."""

    kind: Literal["ensure_instances"] = "ensure_instances"
    env: str
    service: str
    version: VersionRef
    count: int = Field(ge=0)


class SetRoute(Frozen):
    """Route traffic by weight (percent, summing to 100 or all zero) between versions.

    ``weights`` maps ``VersionRef.key`` to a percentage. ``preview`` names a
    version that receives requests carrying the preview header (blue-green
    verification) whatever the weights.
    """

    kind: Literal["set_route"] = "set_route"
    env: str
    service: str
    weights: dict[str, int]
    preview: str | None = None


Action = Annotated[EnsureInstances | SetRoute, Field(discriminator="kind")]


# ----------------------------------------------------------- observations


class LatencyHistogram(Frozen):
    """Cumulative latency histogram (Prometheus style), seconds.

    Only finite upper bounds are kept (the ``+Inf`` bucket is ``count``), so
    the value survives JSON, which has no infinity.
    """

    buckets: tuple[tuple[float, int], ...] = ()  # (finite upper bound, cumulative count), ascending
    count: int = 0
    sum: float = 0.0

    @field_validator("buckets", mode="before")
    @classmethod
    def _finite_only(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(b for b in value if b[0] is not None and math.isfinite(float(b[0])))
        return value


class VersionMetrics(Frozen):
    """Cumulative router counters for one version (since the router started)."""

    requests: dict[str, int] = Field(default_factory=dict)  # HTTP status code -> count
    latency: LatencyHistogram = LatencyHistogram()
    by_tenant: dict[str, dict[str, int]] = Field(default_factory=dict)  # tenant -> status -> n


class MetricsSnapshot(Frozen):
    """Router counters at one instant; analysis diffs two snapshots."""

    taken_at: float
    router_started_at: float = 0.0  # changes when the router restarts (counter reset)
    versions: dict[str, VersionMetrics] = Field(default_factory=dict)


class VersionObservation(Frozen):
    version: VersionRef
    desired: int = 0
    ready: int = 0
    starting: int = 0
    failed: int = 0
    error: str | None = None  # e.g. "digest mismatch: ..." or the last crash


class RouteObservation(Frozen):
    weights: dict[str, int] = Field(default_factory=dict)
    preview: str | None = None
    fence: int = 0


class RouteChange(Frozen):
    """One change of a router's configuration, for the evidence (no tenant, no request data).

    ``cause``: ``route`` (a SetRoute), ``instances`` (the ready set changed),
    ``restore`` (a restarted router got its route back) or ``failover`` (the
    router moved a version's weight on its own: ``failed_over`` are the versions
    whose instances all stopped answering; empty again when they recover).
    """

    cause: Literal["route", "instances", "restore", "failover"]
    fence: int
    seq: int
    weights: dict[str, int] = Field(default_factory=dict)  # as configured
    effective: dict[str, int] = Field(default_factory=dict)  # as applied by the router
    preview: str | None = None
    instances: dict[str, int] = Field(default_factory=dict)  # version key -> instances routed to
    failed_over: tuple[str, ...] = ()


class ServiceObservation(Frozen):
    env: str
    service: str
    versions: dict[str, VersionObservation] = Field(default_factory=dict)  # by VersionRef.key
    route: RouteObservation | None = None  # None: the router is not reachable
    metrics: MetricsSnapshot | None = None
    metrics_error: str | None = None
    route_changes: tuple[RouteChange, ...] = ()  # router changes since the last observation, oldest first

    def stable(self) -> VersionRef | None:
        """The version currently taking (most of) the traffic, if any."""
        if self.route is None or not self.route.weights:
            return None
        key, weight = max(self.route.weights.items(), key=lambda kv: kv[1])
        if weight <= 0 or key not in self.versions:
            return None
        return self.versions[key].version
