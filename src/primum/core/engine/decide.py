"""``decide(status, observations) -> Decision``: the pure heart of the controller.

Given the persisted status of a rollout and what the controller just
observed (targets, metrics, commands, conflicting releases), return the next
status, the idempotent actions that make the world match it, the events to
record, and when to look again. No I/O, no clock: ``observations.now`` is
the time. The controller persists the new status *before* applying the
actions, and re-applies the desired state on every tick (level-triggered),
so a crash at any point is recovered by simply running the next tick.

Why this module stays whole at ~820 lines: it is one state machine (rollout, environment, item, step),
and its transitions read each other's helpers; split across files, a reader would have to follow one
transition through several modules. What could stand alone already does: the step programs and their
descriptions (``strategies.py``), the rules of a metrics outage (``outage.py``), the sequential test of
early looks (``core/analysis/sequential.py``), the plan (``planner.py``), the judge
(``core/analysis/judge``) and the gate (``core/governance/gate.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from primum.core.analysis.data import JudgeReport, MeasurementData, Outcome, ProbeResult
from primum.core.analysis.judge import judge
from primum.core.analysis.sequential import describe_failure, early_look, early_metrics, early_report
from primum.core.engine import outage
from primum.core.engine.strategies import compile_steps, describe, rollback_steps
from primum.core.model.actions import (
    Action,
    EnsureInstances,
    ServiceObservation,
    SetRoute,
    VersionRef,
)
from primum.core.model.rollout import (
    TERMINAL,
    Analyze,
    Command,
    Event,
    Gate,
    ItemPhase,
    Measurement,
    Preview,
    Probe,
    RolloutPhase,
    RolloutStatus,
    Route,
    Scale,
    ServiceRollout,
    Step,
    Verdict,
    VerdictResult,
    Wait,
)

ROUTE_DEADLINE_S = 30.0  # a route change not seen by then fails the step
WAITING_FOR_EFFECT_S = 0.25
WATCHING_S = 1.0
PAUSED_S = 2.0
BLOCKED_S = 1.0


@dataclass(frozen=True)
class Observations:
    now: float
    services: Mapping[str, ServiceObservation] = field(default_factory=dict)  # by "env/service"
    errors: Mapping[str, str] = field(default_factory=dict)  # why a service could not be observed
    commands: Sequence[Command] = ()
    blocked_by: Sequence[str] = ()  # earlier releases touching the same services
    # by "env/service": the data of a measurement that was due (see Wanted.measure_from)
    measurements: Mapping[str, MeasurementData] = field(default_factory=dict)
    # by "env/service": probe gate name -> result, for a probe step that was due
    probes: Mapping[str, Mapping[str, ProbeResult]] = field(default_factory=dict)
    # by "env/service": the partial window of a measurement not yet due, for an early look (Wanted.early_from)
    early: Mapping[str, MeasurementData] = field(default_factory=dict)
    # by environment: may the rollout start (or continue) there (policy, approvals, windows)
    gates: Mapping[str, Gate] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: list[Action]
    events: list[Event]
    consumed: list[int]  # command ids handled by this decision
    next_due_in: float | None  # None: nothing more to do (terminal)


@dataclass(frozen=True)
class Wanted:
    env: str
    service: str
    measure_from: float | None = None  # collect a measurement of [measure_from, now] for the active item
    baseline_window: tuple[float, float] | None = None  # the baseline's own window, if not the same
    probes: tuple[str, ...] = ()  # run these probe gates of the active item
    gate_env: str | None = None  # evaluate governance for this environment (starting: always; running: holds)
    starting: bool = False  # the active item has not begun: the gate decides whether it may
    early_from: float | None = None  # measure [early_from, now], not yet due, for an early look (gross failures)


def wanted_observations(status: RolloutStatus, now: float) -> list[Wanted]:
    """What the controller should observe, measure and probe before calling ``decide``."""
    if status.phase in TERMINAL:
        return []
    item = status.active_item()
    if item is None:
        return []
    step = item.current_step()
    # a rollback is never gated: undoing harm needs no approval and ignores change windows
    gate_env = None if status.rollback_queue else item.env
    starting = gate_env is not None and item.phase is ItemPhase.pending
    if item.phase is ItemPhase.progressing:
        if isinstance(step, Analyze) and item.outage is not None:
            if now >= item.outage.next_attempt_at:  # retry the providers over the time since the last attempt
                return [Wanted(item.env, item.service, measure_from=item.outage.last_attempt_at, gate_env=gate_env,
                               starting=starting)]
        elif isinstance(step, Analyze) and item.interval_start is not None:
            baseline_window = None
            if step.baseline == "before" and item.step_started_at is not None:
                length = now - item.interval_start
                baseline_window = (item.step_started_at - length, item.step_started_at)
            if now >= item.interval_start + step.interval:
                return [Wanted(item.env, item.service, measure_from=item.interval_start,
                               baseline_window=baseline_window, gate_env=gate_env, starting=starting)]
            if early_metrics(item.analysis):  # look at the partial window: a gross failure need not wait
                return [Wanted(item.env, item.service, early_from=item.interval_start,
                               baseline_window=baseline_window, gate_env=gate_env, starting=starting)]
        if isinstance(step, Probe) and (item.next_probe_at is None or now >= item.next_probe_at):
            return [Wanted(item.env, item.service, probes=tuple(step.gates), gate_env=gate_env,
                           starting=starting)]
    return [Wanted(item.env, item.service, gate_env=gate_env, starting=starting)]


def decide(status: RolloutStatus, obs: Observations) -> Decision:
    """The next status and actions of a rollout. Pure."""
    return _Tick(status, obs).run()


class _Tick:
    """One decision. Mutates a private deep copy of the status, never the input."""

    def __init__(self, status: RolloutStatus, obs: Observations):
        # A private copy: dump + validate runs in pydantic-core, ~4x faster than deepcopy.
        self.s = RolloutStatus.model_validate(status.model_dump())
        self.obs = obs
        self.now = obs.now
        self.events: list[Event] = []
        self.consumed: list[int] = []

    # ------------------------------------------------------------ driver

    def run(self) -> Decision:
        s = self.s
        s.ticks += 1
        if s.phase in TERMINAL:
            for cmd in self.obs.commands:
                self.consumed.append(cmd.id)
                self.event("command_ignored", f"{cmd.kind} by {cmd.actor} ignored: the release already {s.phase}")
            return self.finish(None)
        for cmd in self.obs.commands:
            self.consumed.append(cmd.id)
            self.command(cmd)
        if s.phase is RolloutPhase.pending:
            if self.obs.blocked_by:
                reason = f"waiting for release(s) {', '.join(self.obs.blocked_by)} touching the same services"
                if s.pause_reason != reason:
                    s.pause_reason = reason
                    self.event("blocked", reason)
                return self.finish(BLOCKED_S)
            if s.phase is RolloutPhase.pending:  # not aborted by a command above
                s.phase = RolloutPhase.running
                s.pause_reason = None
                s.started_at = self.now
                self.event("started", f"release {s.release_id} started through {' -> '.join(s.environments)}")
        for _ in range(len(s.items) * 2 + 4):  # item transitions chain within one tick
            if not self.step_once():
                break
        return self.finish(self.next_interval())

    def finish(self, interval: float | None) -> Decision:
        actions = self.desired_actions() if self.s.phase not in TERMINAL else []
        return Decision(self.s, actions, self.events, self.consumed, interval)

    def event(self, kind: str, message: str, item: ServiceRollout | None = None, **data: object) -> None:
        self.events.append(Event(kind=kind, message=message, env=item.env if item else None,
                                 service=item.service if item else None, data=dict(data)))

    # ---------------------------------------------------------- commands

    def command(self, cmd: Command) -> None:
        s = self.s
        item = s.active_item()
        if cmd.kind == "abort":
            if s.rollback_queue:
                self.event("command_ignored", f"abort by {cmd.actor}: already rolling back")
                return
            reason = f"aborted by {cmd.actor}"
            self.event("aborted", reason, item)
            if item is None or item.phase is ItemPhase.pending:
                self.start_env_rollback(s.cursor, reason, include_failing=False)
            else:
                self.start_rollback(item, reason)
            return
        if cmd.kind == "pause":
            self.pause_by_person(item, cmd.actor)
            return
        if item is not None and item.paused_by is not None:
            self.resume_from_person(item, cmd.actor)
            return
        # promote: finish the current pause or analysis early, as a person decided
        if item is None or item.phase not in (ItemPhase.progressing, ItemPhase.paused):
            self.event("command_ignored", f"promote by {cmd.actor}: nothing is waiting to be promoted")
            return
        step = item.current_step()
        if not isinstance(step, Wait | Analyze):
            self.event("command_ignored", f"promote by {cmd.actor}: the current step cannot be skipped", item)
            return
        what = "pause" if isinstance(step, Wait) else "analysis"
        self.event("promoted_by_person", f"{what} ended by {cmd.actor}", item, actor=cmd.actor,
                   pause_reason=item.pause_reason)
        self.resume(item)
        self.next_step(item)

    def pause_by_person(self, item: ServiceRollout | None, actor: str) -> None:
        """`primum pause`: hold the release where it is. A progressing item keeps its traffic split and
        instances and its step stops advancing; an item not yet started does not start (nor is its gate
        asked). A rollback is never held, and a release that has not started or is already paused is left."""
        s = self.s
        if s.rollback_queue:
            self.event("command_ignored", f"pause by {actor}: the release is rolling back (a rollback is never "
                       "held)", item)
            return
        if s.phase is not RolloutPhase.running or item is None \
                or item.phase not in (ItemPhase.progressing, ItemPhase.pending):
            state = "already paused" if s.phase is RolloutPhase.paused else f"{s.phase.value}, not running"
            self.event("command_ignored", f"pause by {actor}: the release is {state}; nothing to pause", item)
            return
        step = item.current_step() if item.phase is ItemPhase.progressing else None
        where = "before it starts" if step is None else \
            f"at step {item.step_index + 1}/{len(item.steps)} {describe(step)}"
        reason = f"paused by {actor} {where}; `primum promote` resumes it (the step starts again), " \
                 "`primum abort` rolls it back"
        if item.phase is ItemPhase.progressing:
            item.phase = ItemPhase.paused
        item.paused_by = actor
        item.pause_reason = reason
        s.phase = RolloutPhase.paused
        s.pause_reason = f"{item.service} in {item.env}: {reason}"
        self.event("paused", s.pause_reason, item, actor=actor, by_person=True, step=item.step_index)

    def resume_from_person(self, item: ServiceRollout, actor: str) -> None:
        """`primum promote` on a release a person paused: it goes on from the step it was paused at, which
        starts again (a wait waits its full time, an analysis measures afresh): nothing is skipped."""
        paused_by = item.paused_by
        item.paused_by = None
        started = item.phase is ItemPhase.paused
        self.resume(item)
        self.event("resumed", f"{item.service} in {item.env}: resumed by {actor} (paused by {paused_by})", item,
                   actor=actor, paused_by=paused_by)
        if started:
            self.begin_step(item)

    def resume(self, item: ServiceRollout) -> None:
        if item.phase is ItemPhase.paused:
            item.phase = ItemPhase.progressing
        item.pause_reason = None
        if self.s.phase is RolloutPhase.paused:
            self.s.phase = RolloutPhase.running
            self.s.pause_reason = None

    # -------------------------------------------------------- item flow

    def step_once(self) -> bool:
        """Advance the active item by one transition; True if the next item may move too."""
        s = self.s
        if s.phase in TERMINAL:
            return False
        if s.rollback_queue:
            item = s.items[s.rollback_queue[0]]
            if item.phase is ItemPhase.succeeded:
                self.begin_rollback(item, f"rolled back because {s.reason}")
                return False
            if item.phase in (ItemPhase.rolled_back, ItemPhase.failed):
                s.rollback_queue.pop(0)
                if not s.rollback_queue:
                    self.end_release()
                return True
            self.advance(item)
            return item.phase in (ItemPhase.rolled_back, ItemPhase.failed)
        if s.cursor >= len(s.items):
            self.end_release()
            return False
        item = s.items[s.cursor]
        if item.phase is ItemPhase.pending:
            return self.begin_item(item)
        if item.phase in (ItemPhase.succeeded, ItemPhase.skipped):
            s.cursor += 1
            return True
        self.advance(item)
        return item.phase in (ItemPhase.succeeded, ItemPhase.skipped)

    def gate_allows(self, item: ServiceRollout) -> bool:
        """Governance for the item's environment: no gate (not evaluated) or a closed one never
        starts an item. A policy denial ends the release; approvals and windows wait."""
        s = self.s
        gate = self.obs.gates.get(item.env)
        if gate is None:
            return False  # evaluate it first (next tick)
        if gate.allowed:
            if s.pause_reason and s.pause_reason.startswith(f"{item.env}: ") and s.phase is not RolloutPhase.paused:
                s.pause_reason = None
            return True
        reason = f"{item.env}: {gate.reason}"
        if gate.blocked_by == "policy":
            s.reason = f"policy denies {item.env}: {gate.reason}"
            s.phase = RolloutPhase.denied
            s.finished_at = self.now
            self.mark_not_started()
            self.event("denied", s.reason, item, change_class=gate.change_class)
            return False
        if s.pause_reason != reason:
            s.pause_reason = reason
            self.event("blocked", reason, item, blocked_by=gate.blocked_by, change_class=gate.change_class)
        return False

    def begin_item(self, item: ServiceRollout) -> bool:
        if item.paused_by is not None:
            return False  # a person paused the release before this item: it waits for `primum promote`
        o = self.obs.services.get(item.key)
        if o is None:
            return False  # observe it first (next tick)
        if not self.gate_allows(item):
            return False
        stable = o.stable()
        if stable is not None and stable.digest == item.new.digest:
            item.phase = ItemPhase.skipped
            item.message = f"already running {item.new.describe()}"
            item.started_at = item.finished_at = self.now
            self.event("item_skipped", f"{item.service} in {item.env}: {item.message}", item)
            return True
        item.stable = stable
        item.steps = compile_steps(item.strategy_spec, item.replicas, stable is not None, item.analysis.count,
                                   item.probes)
        item.phase = ItemPhase.progressing
        item.started_at = self.now
        item.stable_count = item.replicas if stable else 0
        item.new_count = 0
        item.weight = 0
        item.preview = False
        before = stable.describe() if stable else "nothing"
        strategy = item.strategy if stable else "initial deployment"
        self.event("item_started", f"{item.service} in {item.env}: {strategy}, {before} -> {item.new.describe()}",
                   item, strategy=strategy, stable=stable.digest if stable else None, new=item.new.digest)
        self.begin_step(item)
        return False

    def advance(self, item: ServiceRollout) -> None:
        if item.phase is ItemPhase.paused:
            failed = self.new_version_failed(item) if item.paused_by is not None else None
            if failed is not None:  # a person's pause never keeps a crashed version in service
                self.start_rollback(item, failed)
            return  # waits for a person (promote or abort)
        gate = self.obs.gates.get(item.env)
        if item.phase is ItemPhase.progressing and gate is not None and not gate.allowed \
                and gate.blocked_by == "window":
            reason = f"{item.env}: held in flight: {gate.reason}"  # desired state is kept, steps wait
            if self.s.pause_reason != reason:
                self.s.pause_reason = reason
                self.event("held", reason, item)
            return
        step = item.current_step()
        if step is None:
            self.end_item(item)
            return
        done, failure = self.step_done(item, step)
        if failure is not None:
            if item.phase is ItemPhase.rolling_back:
                item.phase = ItemPhase.failed
                item.finished_at = self.now
                item.message = f"rollback could not complete: {failure}"
                self.s.reason = f"{item.key}: {item.message} (needs a person)"
                self.event("rollback_failed", item.message, item)
                self.s.phase = RolloutPhase.failed
                self.s.finished_at = self.now
                self.mark_not_started()
            else:
                self.start_rollback(item, failure)
            return
        if done:
            self.next_step(item)

    def next_step(self, item: ServiceRollout) -> None:
        step = item.current_step()
        if step is not None:
            took = self.now - item.step_started_at if item.step_started_at is not None else 0.0
            self.event("step_finished", f"{item.service} in {item.env}: step {item.step_index + 1}/"
                       f"{len(item.steps)} {describe(step)} done after {took:.1f}s", item,
                       step=step.model_dump(), seconds=round(took, 3))
        item.step_index += 1
        if item.current_step() is None:
            self.end_item(item)
        else:
            self.begin_step(item)

    def end_item(self, item: ServiceRollout) -> None:
        item.finished_at = self.now
        if item.phase is ItemPhase.rolling_back:
            item.phase = ItemPhase.rolled_back
            restored = item.stable.describe() if item.stable else "no version"
            item.message = f"rolled back to {restored}"
            self.event("item_rolled_back", f"{item.service} in {item.env}: {item.message}", item)
        else:
            item.phase = ItemPhase.succeeded
            item.message = f"now running {item.new.describe()}"
            self.event("item_succeeded", f"{item.service} in {item.env}: {item.message}", item)

    def end_release(self) -> None:
        s = self.s
        s.finished_at = self.now
        if s.reason is None and all(i.phase in (ItemPhase.succeeded, ItemPhase.skipped) for i in s.items):
            s.phase = RolloutPhase.promoted
            self.event("promoted", f"release {s.release_id} promoted through {' -> '.join(s.environments)}")
        else:
            s.phase = RolloutPhase.rolled_back if s.phase is not RolloutPhase.failed else s.phase
            self.mark_not_started()
            self.event("rolled_back", f"release {s.release_id} rolled back: {s.reason}")

    def mark_not_started(self) -> None:
        for other in self.s.items:
            if other.phase is ItemPhase.pending:
                other.phase = ItemPhase.not_started

    # ------------------------------------------------------------ rollback

    def start_rollback(self, item: ServiceRollout, reason: str) -> None:
        if item.forward_only and item.phase is ItemPhase.progressing and item.new_count > 0:
            # the target cannot revert what it applied (no revert command): hold for a person, never guess
            self.pause(item, f"{reason}; the target is forward-only (no revert command), so the release "
                             "holds for a person: check the host, then `primum abort` (or fix forward)")
            return
        self.s.reason = f"{item.service} in {item.env}: {reason}"
        index = self.s.items.index(item)
        self.start_env_rollback(index, reason, include_failing=True)

    def start_env_rollback(self, index: int, reason: str, include_failing: bool) -> None:
        """Roll back the failing item, then the items of its environment changed before it, in reverse."""
        s = self.s
        s.reason = s.reason or reason
        env = s.items[index].env if index < len(s.items) else None
        queue = [index] if include_failing else []
        queue += [j for j in reversed(range(index)) if s.items[j].env == env
                  and s.items[j].phase is ItemPhase.succeeded]
        s.rollback_queue = queue
        for other in s.items:
            other.paused_by = None  # a rollback is never held
        if s.phase is RolloutPhase.paused or s.phase is RolloutPhase.pending:
            s.phase = RolloutPhase.running
            s.pause_reason = None
        if include_failing:
            self.begin_rollback(s.items[index], reason)
        if not queue:
            self.end_release()

    def begin_rollback(self, item: ServiceRollout, reason: str) -> None:
        item.failure = reason
        item.phase = ItemPhase.rolling_back
        item.pause_reason = None
        # an apply-only target holds one version at a time: its rollback is one revert (Scale stable=N new=0)
        took_traffic = self.took_traffic(item) and item.strategy != "apply"
        item.steps = rollback_steps(item.replicas, item.stable is not None, took_traffic=took_traffic)
        item.step_index = 0
        self.event("rollback_started", f"rolling back {item.service} in {item.env}: {reason}", item,
                   took_traffic=took_traffic)
        self.begin_step(item)

    # -------------------------------------------------------------- steps

    def begin_step(self, item: ServiceRollout) -> None:
        step = item.current_step()
        assert step is not None
        item.step_started_at = self.now
        item.interval_start = None
        item.measurements = []
        item.consecutive_errors = 0
        self.end_outage(item)
        item.window_from = None
        item.probe_attempts = 0
        item.next_probe_at = None
        if isinstance(step, Scale):
            if step.new is not None:
                item.new_count = step.new
            if step.stable is not None and item.stable is not None:
                item.stable_count = step.stable
        elif isinstance(step, Route):
            item.weight = step.weight
        elif isinstance(step, Preview):
            item.preview = step.on
        elif isinstance(step, Wait) and step.duration is None:
            self.pause(item, "waiting for `primum promote` (manual pause step)")
        self.event("step", f"{item.service} in {item.env}: step {item.step_index + 1}/{len(item.steps)} "
                   f"{describe(step)}", item, step=step.model_dump())

    def pause(self, item: ServiceRollout, reason: str) -> None:
        item.phase = ItemPhase.paused
        item.pause_reason = reason
        self.s.phase = RolloutPhase.paused
        self.s.pause_reason = f"{item.service} in {item.env}: {reason}"
        self.event("paused", self.s.pause_reason, item)

    def new_version_failed(self, item: ServiceRollout) -> str | None:
        """Why the item's new version, once up, has failed (crash loop, health), or None."""
        o = self.obs.services.get(item.key)
        if item.new_count <= 0 or o is None:
            return None
        v = o.versions.get(item.new.key)
        if v is not None and v.failed:
            return f"{item.new.describe()} failed: {v.error or 'instances failed'}"
        return None

    def step_done(self, item: ServiceRollout, step: Step) -> tuple[bool, str | None]:
        """(done, failure) for the current step, from what was observed."""
        o = self.obs.services.get(item.key)
        elapsed = self.now - (item.step_started_at or self.now)
        if isinstance(step, Scale):
            return self.scale_done(item, step, o, elapsed)
        if item.phase is ItemPhase.progressing:
            # The new version crash-looped (or failed health) after it was up, in any later step: the
            # runtime no longer restarts it and the router has moved its share, so waiting would only
            # analyse nothing. Roll back now; the rollback never waits for this version.
            failed = self.new_version_failed(item)
            if failed is not None:
                return False, failed
        if isinstance(step, Route | Preview):
            if o is not None and o.route is not None and _route_matches(o, self.weights(item),
                                                                        self.preview_key(item)):
                return True, None
            if elapsed > ROUTE_DEADLINE_S:
                why = self.obs.errors.get(item.key, "the router did not take the new route")
                return False, f"route change not confirmed after {elapsed:.0f}s: {why}"
            return False, None
        if isinstance(step, Wait):
            return step.duration is not None and elapsed >= step.duration, None
        if isinstance(step, Probe):
            return self.probe_done(item, step)
        return self.analysis_done(item, step, elapsed)

    def scale_done(self, item: ServiceRollout, step: Scale, o: ServiceObservation | None, elapsed: float
                   ) -> tuple[bool, str | None]:
        """Done when every version this step waits for runs exactly its count of ready instances.

        Going forward both versions are checked. A rollback waits only for what its step names: the
        stable version coming back, or the new one stopping; it never waits for (or fails on) the
        version being rolled back, whose instances may never have become healthy."""
        wants: list[tuple[VersionRef, int]] = []
        rolling_back = item.phase is ItemPhase.rolling_back
        if not rolling_back or step.new is not None:
            wants.append((item.new, item.new_count))
        if item.stable is not None and (not rolling_back or step.stable is not None):
            wants.append((item.stable, item.stable_count))
        if o is None:
            if elapsed > item.progress_deadline_s:
                return False, f"could not observe the service: {self.obs.errors.get(item.key, 'no answer')}"
            return False, None
        late: list[str] = []
        for version, count in wants:
            v = o.versions.get(version.key)
            ready = v.ready if v else 0
            running = (v.ready + v.starting) if v else 0
            if v is not None and v.failed and count > 0:
                if self.dead_on_arrival(item, version, ready):
                    return False, f"{version.describe()} never became healthy: {v.error or 'instances failed'}"
                return False, f"{version.describe()} failed: {v.error or 'instances failed'}"
            if ready < count or running > count:
                late.append(f"{count} instance(s) of {version.describe()} (ready: {ready}, running: {running})")
        if late and elapsed > item.progress_deadline_s:
            new = o.versions.get(item.new.key)
            waited = f"timed out after {elapsed:.0f}s waiting for {'; '.join(late)}"
            if self.dead_on_arrival(item, item.new, new.ready if new else 0) and item.new_count > 0:
                return False, f"{item.new.describe()} never became healthy: {waited}"
            return False, waited
        return not late, None

    def dead_on_arrival(self, item: ServiceRollout, version: VersionRef, ready: int) -> bool:
        """The new version failed before any instance was healthy and before it took any traffic."""
        return (version.key == item.new.key and ready == 0 and item.phase is ItemPhase.progressing
                and not self.took_traffic(item))

    @staticmethod
    def took_traffic(item: ServiceRollout) -> bool:
        """Whether the new version has been routed any traffic (a weight, or the preview)."""
        return item.weight > 0 or item.preview

    def analysis_done(self, item: ServiceRollout, step: Analyze, elapsed: float) -> tuple[bool, str | None]:
        """Argo Rollouts' measurement semantics over the judge's reports: ``count``
        measurements of ``interval`` after ``initial_delay``; more than
        ``failure_limit`` failed ones roll back, more than ``inconclusive_limit``
        inconclusive ones pause for a person, more than ``consecutive_error_limit``
        errors in a row roll back, and while they are retried the new version takes no traffic
        (``outage.py``). No data is never a pass."""
        settings = item.analysis
        if item.outage is not None:
            return self.outage_retry(item, step)
        if item.interval_start is None:
            since = item.window_from if item.window_from is not None else item.step_started_at
            if since is not None and self.now - since < settings.initial_delay:
                return False, None  # let cold starts after the traffic shift pass first
            item.interval_start = self.now
            return False, None
        data = self.obs.measurements.get(item.key)
        if data is None:
            return False, self.early_look(item, step)  # not due yet: only a gross failure ends it early
        report = judge(settings, data)
        measurement = self.measurement(item, report, data)
        item.measurements.append(measurement)
        item.interval_start = self.now
        if report.outcome is Outcome.error:
            return self.metrics_unavailable(item, step, measurement, report)
        self.record_measurement(item, step, measurement, report)
        item.consecutive_errors = 0
        done = [m for m in item.measurements if m.outcome != Outcome.error.value]
        failed = [m for m in done if m.outcome == Outcome.failed.value]
        if len(failed) > settings.failure_limit:
            return False, self.verdict(item, VerdictResult.failed, report.reason if len(failed) == 1 else
                                       f"{len(failed)} measurements failed (limit {settings.failure_limit}); "
                                       f"last: {report.reason}")
        inconclusive = [m for m in done if m.outcome == Outcome.inconclusive.value]
        if len(inconclusive) > settings.inconclusive_limit:
            reason = self.verdict(item, VerdictResult.inconclusive, report.reason)
            self.pause(item, f"analysis inconclusive: {reason}; `primum promote` to continue or "
                             "`primum abort` to roll back")
            return False, None
        if len(done) >= step.count:
            passed = sum(1 for m in done if m.outcome == Outcome.successful.value)
            self.verdict(item, VerdictResult.passed,
                         f"{passed} of {len(done)} measurement(s) passed; last: {report.reason}")
            return True, None
        return False, None

    def measurement(self, item: ServiceRollout, report: JudgeReport, data: MeasurementData) -> Measurement:
        """The next measurement of the step; an errored one's retries keep its index, numbered by attempt."""
        index = 1 + sum(1 for m in item.measurements if m.outcome != Outcome.error.value)
        return Measurement(index=index, attempt=item.consecutive_errors + 1, outcome=report.outcome.value,
                           score=report.score, reason=report.reason, start=data.start, end=data.end)

    # ------------------------------------------------------ metrics outage (rules: outage.py)

    def metrics_unavailable(self, item: ServiceRollout, step: Analyze, m: Measurement, report: JudgeReport
                            ) -> tuple[bool, str | None]:
        """An attempt errored: hold the new version at 0% and retry soon, or roll back beyond the limit."""
        item.consecutive_errors += 1
        if item.consecutive_errors > item.analysis.consecutive_error_limit:
            self.record_measurement(item, step, m, report, note="; no attempt left: rolling back")
            return False, self.verdict(item, VerdictResult.failed, outage.give_up(item, self.now, report.reason))
        if item.consecutive_errors == 1 and outage.outages_in_step(item) > item.analysis.outage_limit:
            self.record_measurement(item, step, m, report, note="; the metrics keep failing: rolling back")
            return False, self.verdict(item, VerdictResult.failed, outage.flapping(item, report.reason))
        delay = outage.retry_delay(item.consecutive_errors, step.interval)
        self.record_measurement(item, step, m, report, note=f"; attempt {m.attempt + 1} in {delay:g}s")
        note = outage.hold(item, self.now, m, delay)
        if note is not None:
            self.s.pause_reason = f"{item.service} in {item.env}: {item.pause_reason}"
            self.event(note.kind, note.message, item, **note.data)
        return False, None

    def outage_retry(self, item: ServiceRollout, step: Analyze) -> tuple[bool, str | None]:
        """A retry during an outage: still errored, or the providers answer and the window restarts.

        The new version took no traffic while held, so the judge's view of the retry's data is set
        aside: a pass (or a failure) must rest on a window watched at the step's weight."""
        data = self.obs.measurements.get(item.key)
        if data is None:
            return False, None  # the next attempt is not due yet
        report = judge(item.analysis, data)
        m = self.measurement(item, report, data)
        if report.outcome is Outcome.error:
            item.measurements.append(m)
            return self.metrics_unavailable(item, step, m, report)
        self.clear_hold_reason(item)
        note = outage.restore(item, self.now, m.index, step.count, set_aside=report.outcome.value)
        self.event(note.kind, note.message, item, **note.data)
        return False, None

    def end_outage(self, item: ServiceRollout) -> None:
        if item.outage is not None:
            self.clear_hold_reason(item)
            outage.drop(item)

    def clear_hold_reason(self, item: ServiceRollout) -> None:
        if (self.s.pause_reason or "").startswith(f"{item.service} in {item.env}: {outage.HOLD_REASON}"):
            self.s.pause_reason = None

    def early_look(self, item: ServiceRollout, step: Analyze) -> str | None:
        """The rollback reason when the partial window shows a gross failure (a sequential test whose
        type-I error holds however often it looks: core/analysis/sequential.py); else None, and the
        window decides. It never passes a version."""
        data = self.obs.early.get(item.key)
        if data is None:
            return None
        look = early_look(item.analysis, data, count=step.count)
        found = describe_failure(look)
        if found is None:
            return None
        reason = f"{found} after {self.now - (item.step_started_at or self.now):.0f}s"
        index = 1 + sum(1 for m in item.measurements if m.outcome != Outcome.error.value)
        m = Measurement(index=index, outcome=Outcome.failed.value, score=None, reason=reason,
                        start=data.start, end=data.end)
        item.measurements.append(m)
        self.event("analysis", f"{item.service} in {item.env}: measurement {m.index}/{step.count} ended early: "
                   f"{reason}", item, measurement=m.index, count=step.count, step=item.step_index + 1, early=True,
                   report=early_report(item.analysis, data, look, reason).model_dump(mode="json"))
        return self.verdict(item, VerdictResult.failed, reason)  # "analysis failed: early rollback: ..."

    def verdict(self, item: ServiceRollout, result: VerdictResult, reason: str) -> str:
        """Record the step's verdict; return its reason (for a rollback or a pause)."""
        window_start = item.measurements[0].start if item.measurements else self.now
        window_end = item.measurements[-1].end if item.measurements else self.now
        item.verdicts.append(Verdict(result=result, reason=reason, measurements=list(item.measurements),
                                     window_start=window_start, window_end=window_end))
        return f"analysis failed: {reason}" if result is VerdictResult.failed else reason

    def record_measurement(self, item: ServiceRollout, step: Analyze, m: Measurement, report: JudgeReport,
                           note: str = "") -> None:
        what = f"measurement {m.index}/{step.count}"
        if m.outcome == Outcome.error.value:
            attempts = outage.attempts_allowed(item.analysis.consecutive_error_limit)
            text = f"{what}, attempt {m.attempt} of {attempts} errored (provider error: {m.reason}){note}"
        else:
            text = f"{what} {m.outcome.lower()}: {m.reason}{note}"
        self.event("analysis", f"{item.service} in {item.env}: {text}", item, measurement=m.index,
                   attempt=m.attempt, count=step.count, step=item.step_index + 1, report=report.model_dump(mode="json"))

    def probe_done(self, item: ServiceRollout, step: Probe) -> tuple[bool, str | None]:
        results = self.obs.probes.get(item.key)
        if results is None:
            return False, None  # not due yet (or not run)
        item.probe_attempts += 1
        gates = {g.name: g for g in item.probes}
        failed: list[str] = []
        for name in step.gates:
            result = results.get(name)
            if result is None:
                failed.append(f"probe gate {name} did not run")
            elif not result.ok:
                failed.append(f"probe gate {name} failed: {result.reason}")
        self.event("probe", f"{item.service} in {item.env}: probe gates {', '.join(step.gates)} ({step.when}) "
                   + ("passed" if not failed else "; ".join(failed)), item, attempt=item.probe_attempts,
                   results={k: v.model_dump(mode="json") for k, v in results.items()})
        if not failed:
            item.verdicts.append(Verdict(result=VerdictResult.passed, kind="probe", window_start=self.now,
                                         window_end=self.now,
                                         reason=f"probe gates {', '.join(step.gates)} passed"))
            return True, None
        attempts = max((gates[n].attempts for n in step.gates if n in gates), default=1)
        if item.probe_attempts >= attempts:
            reason = "; ".join(failed) + f" (after {item.probe_attempts} attempt(s))"
            item.verdicts.append(Verdict(result=VerdictResult.failed, kind="probe", reason=reason,
                                         window_start=self.now, window_end=self.now))
            return False, reason
        item.next_probe_at = self.now + max((gates[n].interval for n in step.gates if n in gates), default=1.0)
        return False, None

    # ----------------------------------------------------- desired state

    def weights(self, item: ServiceRollout) -> dict[str, int]:
        weight = 0 if item.outage is not None else item.weight  # metrics unreadable: hold on the stable side
        if item.stable is None:
            return {item.new.key: weight}
        return {item.stable.key: 100 - weight, item.new.key: weight}

    @staticmethod
    def stable_count(item: ServiceRollout) -> int:
        """The stable version's instances: all of them while it carries all traffic for an outage."""
        return item.replicas if item.outage is not None else item.stable_count

    def preview_key(self, item: ServiceRollout) -> str | None:
        return item.new.key if item.preview else None

    def desired_actions(self) -> list[Action]:
        item = self.s.active_item()
        if item is None or item.phase in (ItemPhase.pending, ItemPhase.skipped, ItemPhase.not_started):
            return []
        actions: list[Action] = [EnsureInstances(env=item.env, service=item.service, version=item.new,
                                                 count=item.new_count)]
        if item.stable is not None:
            actions.append(EnsureInstances(env=item.env, service=item.service, version=item.stable,
                                           count=self.stable_count(item)))
        actions.append(SetRoute(env=item.env, service=item.service, weights=self.weights(item),
                                preview=self.preview_key(item)))
        return actions

    def next_interval(self) -> float | None:
        s = self.s
        if s.phase in TERMINAL:
            return None
        if s.phase is RolloutPhase.paused:
            return PAUSED_S
        item = s.active_item()
        step = item.current_step() if item else None
        if item is None or step is None or item.phase is ItemPhase.pending:
            return WAITING_FOR_EFFECT_S
        elapsed = self.now - (item.step_started_at or self.now)
        if isinstance(step, Analyze):
            if item.outage is not None:
                remaining = item.outage.next_attempt_at - self.now
            elif item.interval_start is None:
                since = item.window_from if item.window_from is not None else item.step_started_at
                remaining = item.analysis.initial_delay - (self.now - (since or self.now))
            else:
                remaining = item.interval_start + step.interval - self.now
            return max(0.05, min(WATCHING_S, remaining))
        if isinstance(step, Wait) and step.duration is not None:
            return max(0.05, min(WATCHING_S, step.duration - elapsed))
        if isinstance(step, Probe) and item.next_probe_at is not None:
            return max(0.05, min(WATCHING_S, item.next_probe_at - self.now))
        return WAITING_FOR_EFFECT_S


def _route_matches(o: ServiceObservation, weights: dict[str, int], preview: str | None) -> bool:
    assert o.route is not None
    seen = {k: w for k, w in o.route.weights.items() if w}
    wanted = {k: w for k, w in weights.items() if w}
    return seen == wanted and o.route.preview == preview
