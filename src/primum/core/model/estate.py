"""The estate: services, environments, tenants and the golden-path templates.

An estate is described once (``estate.yaml``) and every release is checked
against it. Services may name a template (a golden path such as ``web-api``
or ``hl7-interface``); the template's settings are defaults that the service
overrides field by field (see ``primum.core.model.templates``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from primum.core.model.analysis import AnalysisSettings, ProbeGate, with_tier_defaults
from primum.core.model.capabilities import TRAFFIC, Capability
from primum.core.model.plugins import PluginSpec, SpecKind
from primum.core.model.types import (
    Duration,
    EnvName,
    EnvValue,
    Fraction,
    Name,
    Port,
    PositiveCount,
    PositiveDuration,
    Ratio,
    Replicas,
    RequestRate,
    Weight,
)
from primum.core.model.windows import ChangeWindows


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(StrEnum):
    clinical_critical = "clinical-critical"
    patient_facing = "patient-facing"
    business = "business"
    internal = "internal"


class DataClass(StrEnum):
    phi = "phi"
    pii = "pii"
    none = "none"


class EnvironmentClass(StrEnum):
    ephemeral = "ephemeral"
    nonprod = "nonprod"
    prod = "prod"


# ------------------------------------------------------------ strategies


class SetWeightStep(Strict):
    set_weight: Weight


class PauseSpec(Strict):
    duration: Duration | None = None  # None: until a person runs `primum promote`


class PauseStep(Strict):
    pause: PauseSpec


class AnalysisSpec(Strict):
    duration: PositiveDuration = 30.0
    count: PositiveCount | None = None  # measurements in the step (default: the service's count)


class AnalysisStep(Strict):
    analysis: AnalysisSpec


class ProbeStep(Strict):
    probe: list[Name] = Field(min_length=1)  # names of the service's probe gates to run here


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, SetWeightStep):
        return "set_weight"
    if isinstance(value, PauseStep):
        return "pause"
    if isinstance(value, AnalysisStep):
        return "analysis"
    if isinstance(value, ProbeStep):
        return "probe"
    return None


CanaryStep = Annotated[
    Annotated[SetWeightStep, Tag("set_weight")]
    | Annotated[PauseStep, Tag("pause")]
    | Annotated[AnalysisStep, Tag("analysis")]
    | Annotated[ProbeStep, Tag("probe")],
    Discriminator(
        _step_kind,
        custom_error_type="canary_step",
        custom_error_message="a canary step is one of `set_weight: N`, `pause: {duration: 30s}`, "
        "`analysis: {duration: 30s}` or `probe: [gate-name]`",
    ),
]


class CanaryStrategy(Strict):
    type: Literal["canary"] = "canary"
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [  # type: ignore[arg-type]
            SetWeightStep(set_weight=20),
            AnalysisStep(analysis=AnalysisSpec(duration=30)),
            SetWeightStep(set_weight=50),
            AnalysisStep(analysis=AnalysisSpec(duration=30)),
        ],
        min_length=1,
    )


class BlueGreenStrategy(Strict):
    type: Literal["blue_green"] = "blue_green"
    preview_analysis: Duration = 20.0  # analysis of preview traffic before the switch
    post_analysis: Duration = 20.0  # analysis after the switch, old version still warm
    scale_down_delay: Duration = 10.0  # the old version is kept this long after the switch


class RollingStrategy(Strict):
    type: Literal["rolling"] = "rolling"
    max_unavailable: PositiveCount = 1
    batch_analysis: Duration = 10.0  # analysis after each batch (0 disables)


class ApplyStrategy(Strict):
    """For targets with no traffic control (an SSH host, a vendor's API): apply the new version, verify it
    (the target's own verify, the service's probe gates, and an optional post-apply analysis window of
    absolute checks), and on failure revert to the stable version (docs/ENGINE.md "The apply strategy")."""

    type: Literal["apply"] = "apply"
    post_analysis: Duration = 0.0  # analysis after the apply (0: none); absolute checks / SLOs only


Strategy = Annotated[
    CanaryStrategy | BlueGreenStrategy | RollingStrategy | ApplyStrategy, Field(discriminator="type")
]

# ----------------------------------------------------------- service parts


class Slo(Strict):
    """Service level objectives the analysis gate holds every version to."""

    error_rate: Fraction = 0.01  # max fraction of 5xx responses
    p95_ms: Ratio = 500.0  # max 95th percentile latency
    p99_ms: Ratio | None = None  # max 99th percentile latency (none: not held)

    @property
    def p95_s(self) -> float:
        return self.p95_ms / 1000.0

    @property
    def p99_s(self) -> float | None:
        return None if self.p99_ms is None else self.p99_ms / 1000.0


class TrafficSettings(Strict):
    rate: RequestRate = 5.0
    paths: list[str] = Field(default_factory=lambda: ["/"], min_length=1)
    preview_share: Fraction = 0.2
    environments: list[Name] | None = None  # None: every environment


class TargetSpec(PluginSpec):
    """Base of a target's settings: how many instances of a version it runs, and (a class attribute) what the
    target can do, which decides the strategies a service on it may use (``core/model/capabilities.py``)."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    replicas: PositiveCount = 1

    @property
    def forward_only(self) -> bool:
        """Whether the target cannot revert an applied version (no revert command): a failure after the
        apply then holds the release for a person instead of rolling back."""
        return False


TARGETS = SpecKind("target", "target", default="local", base=TargetSpec)


@TARGETS.register
class LocalTargetSettings(TargetSpec):
    """Settings of the embedded local runtime (the default target)."""

    type: Literal["local"] = "local"
    capabilities: ClassVar[frozenset[Capability]] = TRAFFIC
    command: list[str] = Field(default_factory=lambda: ["{python}", "{artifact}", "--port", "{port}"])
    health_path: str = "/healthz"
    replicas: Replicas = 1
    # literal settings, or references to secrets (never a secret's value: ``validate`` refuses one)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    ports: dict[Name, Port] = Field(default_factory=dict)  # router port per environment
    mllp_ports: dict[Name, Port] = Field(default_factory=dict)  # HL7 MLLP listener per environment ({mllp_port})
    startup_timeout: PositiveDuration = 30.0


@TARGETS.register
class NoopTargetSettings(TargetSpec):
    """A target that acts on nothing: for tests and benchmarks only."""

    type: Literal["noop"] = "noop"
    capabilities: ClassVar[frozenset[Capability]] = TRAFFIC
    replicas: PositiveCount = 1


# A service's target: any registered kind (see ``primum.core.model.plugins``).
if TYPE_CHECKING:
    TargetSettings = TargetSpec
else:
    TargetSettings = TARGETS.field_type()


class Service(Strict):
    """One deployable service of the estate, after its template was applied."""

    owner: str = Field(min_length=1)
    tier: Tier
    data_class: DataClass
    template: str | None = None
    description: str = ""
    depends_on: list[Name] = Field(default_factory=list)
    target: TargetSettings = Field(default_factory=LocalTargetSettings)
    strategy: Strategy = Field(default_factory=CanaryStrategy)
    slo: Slo = Field(default_factory=Slo)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    probes: list[ProbeGate] = Field(default_factory=list)
    traffic: TrafficSettings | None = None
    affinity: Literal["tenant", "none"] = "tenant"
    touches: list[Literal["identity", "integration-engine", "data-schema"]] = Field(
        default_factory=list
    )

    @model_validator(mode="before")
    @classmethod
    def _tier_defaults(cls, data: Any) -> Any:
        """The analysis defaults follow the tier (``analysis.with_tier_defaults``): a clinical-critical or
        patient-facing service's latency is critical unless its own ``analysis.metrics`` say otherwise.
        An ``AnalysisSettings`` value (not a mapping) is taken as it is."""
        if not isinstance(data, dict) or not isinstance(data.get("tier"), str):
            return data
        given = data.get("analysis")
        if given is None:
            given = {}
        if not isinstance(given, dict):
            return data
        return {**data, "analysis": with_tier_defaults(str(data["tier"]), given)}


class Environment(Strict):
    name: Name
    class_: EnvironmentClass = Field(alias="class")
    description: str = ""
    windows: ChangeWindows | None = None  # change windows and freezes (docs/WINDOWS.md)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GovernanceSettings(Strict):
    """Where the estate's policy and people are, and how governance behaves (docs/GOVERNANCE.md).
    Paths are relative to the estate file and stored resolved."""

    policy_dir: str | None = None  # the organisation's Rego, added to (or replacing files of) the baseline
    identities: str | None = None  # users, groups and roles (default: identities.yaml next to the estate)
    approval_ttl: PositiveDuration = 7 * 86400.0  # an approval expires after this long
    review_deadline: PositiveDuration = 24 * 3600.0  # a break-glass use must be reviewed within this
    webhook: str | None = None  # POSTed a JSON notice on every break-glass use


class Tenant(Strict):
    id: Name
    name: str = ""


class Estate(Strict):
    """The whole estate, validated. Build it with ``primum.core.model.validate.load_estate``."""

    api_version: Literal["primum/v1"] = Field(alias="apiVersion")
    kind: Literal["Estate"]
    name: Name
    environments: list[Environment] = Field(min_length=1)
    tenants: list[Tenant] = Field(default_factory=list)
    tenant_header: str = "x-tenant-id"
    services: dict[Name, Service] = Field(min_length=1)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def environment_names(self) -> list[str]:
        return [e.name for e in self.environments]

    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)
