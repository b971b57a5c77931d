"""The persisted state of a rollout: explicit, named fields, so every decision can
be read back from storage (after Argo Rollouts' status), and the steps a
strategy compiles to."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from primum.core.model.actions import VersionRef
from primum.core.model.analysis import AnalysisSettings, ProbeGate
from primum.core.model.estate import Slo


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ steps
# Every strategy compiles to a list of these. Each step changes the desired
# state (instance counts, weight, preview) when it begins, and completes only
# when an observation shows the world matches (or its time is up).


class Scale(Model):
    kind: Literal["scale"] = "scale"
    new: int | None = None
    stable: int | None = None


class Route(Model):
    kind: Literal["route"] = "route"
    weight: int  # percent of traffic for the new version; the stable version gets the rest


class Preview(Model):
    kind: Literal["preview"] = "preview"
    on: bool


class Wait(Model):
    kind: Literal["wait"] = "wait"
    duration: float | None  # None: until a person promotes
    reason: str = ""


class Analyze(Model):
    """``count`` measurements, each ``duration / count`` seconds, after the initial delay."""

    kind: Literal["analyze"] = "analyze"
    duration: float
    count: int = 1
    # "concurrent": the stable version's traffic in the same interval; "before": the stable version took no
    # traffic (after a blue-green switch), so its traffic in the equally long interval just before the step
    baseline: Literal["concurrent", "before"] = "concurrent"

    @property
    def interval(self) -> float:
        return self.duration / self.count


class Probe(Model):
    """Run the named probe gates; the step passes when every gate passes."""

    kind: Literal["probe"] = "probe"
    gates: list[str]
    when: Literal["before", "step", "after"] = "step"


Step = Annotated[Scale | Route | Preview | Wait | Analyze | Probe, Field(discriminator="kind")]


# ------------------------------------------------------------ verdicts


class VerdictResult(StrEnum):
    passed = "pass"
    failed = "fail"
    inconclusive = "inconclusive"
    running = "running"  # interim: not enough evidence yet, keep watching


class Measurement(Model):
    """One judged interval of an analysis step; the full report is in the `analysis` event."""

    index: int  # 1-based within its step; the retries of an errored measurement keep its index
    attempt: int = 1  # 1 + the errored attempts of this measurement before it (consecutive_error_limit)
    outcome: str  # Successful, Failed, Inconclusive, Error (primum.core.analysis.data.Outcome)
    score: float | None
    reason: str
    start: float
    end: float


class Verdict(Model):
    """The analysis step's judgement over its measurements, with the reason in one sentence."""

    result: VerdictResult
    reason: str
    measurements: list[Measurement] = Field(default_factory=list)
    window_start: float = 0.0
    window_end: float = 0.0
    kind: Literal["analysis", "probe"] = "analysis"


# ------------------------------------------------------------ rollout state


class Outage(Model):
    """The metrics of an analysis step could not be read (a provider failed: no data, an error, a
    timeout). While this is set the new version takes no traffic and the stable version runs its full
    replica count; the providers are retried on a short backoff until they answer (the analysis then
    restarts its window) or ``consecutive_error_limit`` is exceeded (roll back)."""

    since: float  # when the first errored attempt of this run was judged
    last_attempt_at: float  # the next retry asks the providers for [last_attempt_at, its own time]
    next_attempt_at: float
    reason: str  # the last provider error, in one sentence


class ItemPhase(StrEnum):
    pending = "pending"
    progressing = "progressing"
    paused = "paused"
    succeeded = "succeeded"
    skipped = "skipped"  # already running this version
    rolling_back = "rolling_back"
    rolled_back = "rolled_back"
    failed = "failed"  # could not roll back: needs a person
    not_started = "not_started"  # the release stopped before reaching it


class RolloutPhase(StrEnum):
    pending = "pending"
    running = "running"
    paused = "paused"
    promoted = "promoted"
    rolled_back = "rolled_back"
    failed = "failed"
    denied = "denied"  # policy refused the next environment; earlier environments keep what passed


TERMINAL = {RolloutPhase.promoted, RolloutPhase.rolled_back, RolloutPhase.failed, RolloutPhase.denied}


class Gate(Model):
    """Whether governance lets a rollout start (or, for in-flight holds, continue) in one environment:
    the policy decision, the approvals and the change windows, combined by the controller."""

    allowed: bool
    reason: str  # one sentence: what allows it, or which check blocks it and why
    blocked_by: Literal["policy", "approvals", "window"] | None = None
    change_class: str | None = None
    emergency: bool = False  # break-glass: approvals and freezes bypassed, analysis and rollback kept


class ServiceRollout(Model):
    """One service in one environment: a small state machine over compiled steps."""

    env: str
    service: str
    strategy: str
    strategy_spec: dict[str, Any]
    replicas: int
    slo: Slo
    analysis: AnalysisSettings
    probes: list[ProbeGate] = Field(default_factory=list)
    progress_deadline_s: float = 120.0
    forward_only: bool = False  # the target cannot revert: a failure after the apply holds for a person
    new: VersionRef
    stable: VersionRef | None = None  # captured from the target when the item begins
    phase: ItemPhase = ItemPhase.pending
    steps: list[Step] = Field(default_factory=list)
    step_index: int = 0
    step_started_at: float | None = None
    # desired state, level-triggered: re-applied on every tick
    new_count: int = 0
    stable_count: int = 0
    weight: int = 0
    preview: bool = False
    # analysis bookkeeping for the step in progress
    interval_start: float | None = None  # None: still in the initial delay
    measurements: list[Measurement] = Field(default_factory=list)
    consecutive_errors: int = 0
    outage: Outage | None = None  # metrics unreadable: traffic held on the stable version (see Outage)
    window_from: float | None = None  # the analysis restarted after an outage: initial delay counts from here
    probe_attempts: int = 0
    next_probe_at: float | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    pause_reason: str | None = None
    paused_by: str | None = None  # a person paused it (`primum pause`); `primum promote` resumes, never skips
    failure: str | None = None  # why it was rolled back
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.env}/{self.service}"

    def current_step(self) -> Step | None:
        return self.steps[self.step_index] if self.step_index < len(self.steps) else None


class RolloutStatus(Model):
    """The whole release's progress through its environments."""

    release_id: str
    digest: str
    phase: RolloutPhase = RolloutPhase.pending
    environments: list[str]
    items: list[ServiceRollout]  # plan order: environment by environment, providers first
    cursor: int = 0  # the item being progressed
    rollback_queue: list[int] = Field(default_factory=list)  # items still to roll back, in order
    reason: str | None = None
    pause_reason: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    ticks: int = 0

    def active_item(self) -> ServiceRollout | None:
        if self.rollback_queue:
            return self.items[self.rollback_queue[0]]
        if self.cursor < len(self.items):
            return self.items[self.cursor]
        return None


class Event(Model):
    """Something that happened, for history, live progress and (later) evidence."""

    kind: str
    message: str
    env: str | None = None
    service: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Command(Model):
    id: int
    kind: Literal["promote", "abort", "pause"]
    actor: str = "unknown"
