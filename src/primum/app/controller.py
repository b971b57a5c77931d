"""The reconcile loop: lease a due rollout, observe, decide, persist, act.

This is the only place where time, I/O and the pure engine meet. The order
matters for crash safety: the new status is persisted (fenced by the lease
token) *before* any action is applied, and actions are idempotent desired
states re-applied every tick, so a controller killed at any instant leaves
nothing that the next owner of the lease cannot finish or roll back.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from primum.adapters.store.records import Lease, NewEvent, RolloutRecord
from primum.adapters.store.repository import Store
from primum.adapters.targets.base import StaleFenceError, Target, TargetError
from primum.adapters.targets.registry import Targets
from primum.app import gather
from primum.app.gate import Gatekeeper, new_events
from primum.core.analysis.data import MeasurementData, ProbeResult
from primum.core.engine.decide import Observations, decide, wanted_observations
from primum.core.governance.gate import GateEvent
from primum.core.model.actions import RouteChange, ServiceRuntimeSpec
from primum.core.model.estate import Estate
from primum.core.model.rollout import TERMINAL, Command, Event, Gate, Probe, RolloutStatus
from primum.core.model.validate import runtime_spec

log = logging.getLogger("primum.controller")

FAR_FUTURE_S = 10 * 365 * 86400.0


def route_change_events(env: str, service: str, changes: Sequence[RouteChange]) -> list[NewEvent]:
    """Each router configuration change as an event (counts and weights only: no tenant, no request)."""
    out = []
    for c in changes:
        what = "failed over" if c.cause == "failover" else "configured"
        detail = (f"{', '.join(c.failed_over)} down, effective {c.effective}" if c.cause == "failover"
                  else f"weights {c.weights}, effective {c.effective}, instances {c.instances}")
        out.append(NewEvent(kind="router_failover" if c.cause == "failover" else "router_config",
                            message=f"router {env}/{service} {what} ({c.cause}, fence {c.fence}, seq {c.seq}): "
                                    f"{detail}",
                            env=env, service=service, data=c.model_dump(mode="json")))
    return out


def controller_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class TickStats:
    claimed: int = 0
    persisted: int = 0
    lost: int = 0
    errors: int = 0
    lags: list[float] = field(default_factory=list)  # seconds between due time and processing


class Controller:
    def __init__(
        self,
        store: Store,
        targets: Targets,
        *,
        owner: str | None = None,
        lease_ttl: float = 10.0,
        batch: int = 50,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[str, Event], None] | None = None,
    ):
        self.store = store
        self.targets = targets
        self.owner = owner or controller_id()
        self.lease_ttl = lease_ttl
        self.batch = batch
        self.clock = clock
        self.on_event = on_event
        self._estates: dict[str, Estate] = {}
        self._prepared: set[str] = set()
        self._last_action_error: dict[str, str] = {}
        self.gatekeeper = Gatekeeper(store)

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event, idle: float = 0.5) -> None:
        """Tick until ``stop`` is set; sleep until the next rollout is due (at most ``idle``)."""
        while not stop.is_set():
            self.tick()
            due = self.store.next_due_at()
            wait = idle if due is None else max(0.0, min(idle, due - self.clock()))
            if wait > 0:
                stop.wait(wait)

    def tick(self, stats: TickStats | None = None) -> TickStats:
        stats = stats or TickStats()
        now = self.clock()
        leases = self.store.claim_due(self.owner, now, self.lease_ttl, self.batch)
        stats.claimed += len(leases)
        for lease in leases:
            stats.lags.append(max(0.0, now - lease.rollout.next_due_at))
            try:
                if self.process(lease) is None:
                    stats.lost += 1
                else:
                    stats.persisted += 1
            except Exception:  # one broken rollout must not stop the others; it is retried
                stats.errors += 1
                log.exception("rollout %s: tick failed; it will be retried", lease.rollout.id)
        return stats

    def shutdown(self) -> None:
        """Give up every lease this controller holds, so another replica can take over at once."""
        for record in self.store.list_rollouts(limit=10_000, phases=("pending", "running", "paused")):
            if record.lease_owner == self.owner:
                self.store.release(Lease(record, self.owner, record.fencing_token, record.lease_expires_at or 0))
        self.targets.close()

    # ------------------------------------------------------------- one tick

    def estate_of(self, lease: Lease) -> Estate:
        record = lease.rollout
        estate = self._estates.get(record.estate_digest)
        if estate is None:
            estate = Estate.model_validate(record.estate)
            self._estates[record.estate_digest] = estate
        if record.estate_digest not in self._prepared:
            self.prepare(estate)
            self._prepared.add(record.estate_digest)
        return estate

    def prepare(self, estate: Estate) -> None:
        by_target: dict[int, tuple[Target, list[ServiceRuntimeSpec]]] = {}
        for env in estate.environment_names():
            for name in estate.services:
                target = self.targets.for_service(estate, name)
                by_target.setdefault(id(target), (target, []))[1].append(runtime_spec(estate, env, name))
        for target, specs in by_target.values():
            target.prepare(specs)

    def process(self, lease: Lease) -> Lease | None:
        record = lease.rollout
        status = RolloutStatus.model_validate(record.status)
        estate = self.estate_of(lease)
        now = self.clock()
        services, errors = {}, {}
        measurements: dict[str, MeasurementData] = {}
        early: dict[str, MeasurementData] = {}  # partial windows, for the early look (gross failures)
        gates: dict[str, Gate] = {}
        gate_events: list[GateEvent] = []  # recorded with the new status, in its transaction
        route_events: list[NewEvent] = []  # the routers' changes since the last look: evidence
        probes: dict[str, dict[str, ProbeResult]] = {}
        item = status.active_item()
        for want in wanted_observations(status, now):
            spec = runtime_spec(estate, want.env, want.service)
            key = spec.key
            target = self.targets.for_service(estate, want.service)
            try:
                services[key] = target.observe(spec)
            except TargetError as exc:
                errors[key] = str(exc)
            else:
                route_events += route_change_events(want.env, want.service, services[key].route_changes)
            if want.gate_env is not None and self.gated(estate, want.gate_env, want.starting):
                gates[want.gate_env], logged = self.gatekeeper.gate(estate, record, want.gate_env,
                                                                    starting=want.starting, now=now)
                gate_events += logged
            if item is None or item.key != key:
                continue
            if want.measure_from is not None:
                measurements[key] = gather.measure(estate, item, self._router_admin(target, spec), want.measure_from,
                                                   now, want.baseline_window)
            if want.early_from is not None:
                early[key] = gather.measure_early(estate, item, self._router_admin(target, spec), want.early_from,
                                                  now, want.baseline_window)
            if want.probes:
                step = item.current_step()
                preview = isinstance(step, Probe) and step.when == "before"
                probes[key] = gather.probe(estate, item, want.probes, self._router_url(target, spec),
                                           preview=preview)
        commands, dropped, dropped_events = self._signed_commands(record)
        blocked = []
        if status.phase.value == "pending":
            blocked = [r.id for r in self.store.earlier_active(record)]
        decision = decide(status, Observations(now=now, services=services, errors=errors, commands=commands,
                                               blocked_by=blocked, measurements=measurements, probes=probes,
                                               gates=gates, early=early))
        new_status = decision.status
        interval = FAR_FUTURE_S if decision.next_due_in is None else decision.next_due_in
        events = new_events(gate_events) + route_events + dropped_events + [
            NewEvent(kind=e.kind, message=e.message, env=e.env, service=e.service, data=e.data)
            for e in decision.events]
        held = self.store.persist(lease, status=new_status.model_dump(mode="json"), phase=new_status.phase.value,
                                  next_due_at=now + interval, now=now, ttl=self.lease_ttl, events=events,
                                  consumed_commands=[*decision.consumed, *dropped])
        if held is None:
            log.warning("rollout %s: lease lost before acting; another controller owns it", record.id)
            self.record_lease_lost(lease, now)
            return None
        if self.on_event:
            for e in decision.events:
                self.on_event(record.id, e)
        self.act(held, estate, decision.actions)
        if new_status.phase in TERMINAL:
            self.store.release(held)
        return held

    def record_lease_lost(self, lease: Lease, now: float) -> None:
        """Evidence that this controller found its lease gone when it came to persist (it stalled past the
        lease, or an operator reset the rollout): what it would have written was not, and it does not act.
        The successor records its own view of the takeover when it claims the lease (``claim_due``)."""
        current = self.store.get_rollout(lease.rollout.id)
        holder = None if current is None else current.lease_owner
        now_held = f"now held by {holder} (fence {current.fencing_token})" if current and holder else "now free"
        try:
            self.store.add_events(lease.rollout.id, [NewEvent(
                kind="lease_lost", message=f"controller {self.owner} lost its lease (fence {lease.token}) before "
                f"persisting (it was valid until {now - lease.expires_at:.1f} s before this tick, unless an operator "
                f"reset the rollout); the rollout is {now_held}; nothing of this tick was written or done",
                data={"owner": self.owner, "fence": lease.token, "expired_at": lease.expires_at,
                      "noticed_by": self.owner, "noticed_at": now, "held_by": holder})], now)
        except Exception:  # the evidence of a loss must not turn into a crash of the loop
            log.exception("rollout %s: could not record the lost lease", lease.rollout.id)

    @staticmethod
    def gated(estate: Estate, env: str, starting: bool) -> bool:
        """Starting an item is always gated; a running one only where windows hold rollouts in flight."""
        if starting:
            return True
        windows = estate.environment(env).windows
        return windows is not None and windows.in_flight.value == "hold"

    def _signed_commands(self, record: RolloutRecord) -> tuple[list[Command], list[int], list[NewEvent]]:
        """The pending promote, abort and pause commands an enrolled operator signed; the others are consumed
        unobeyed, each with a ``record_ignored`` event saying why (``app.identity.unsigned_command``)."""
        from primum.app.identity import unsigned_command

        obeyed: list[Command] = []
        dropped: list[int] = []
        events: list[NewEvent] = []
        for c in self.store.pending_commands(record.id):
            if c.kind not in ("promote", "abort", "pause"):
                continue
            why = unsigned_command(record, c)
            if why is None:
                obeyed.append(Command(id=c.id, kind=c.kind, actor=c.actor))
                continue
            dropped.append(c.id)
            events.append(NewEvent(kind="record_ignored", message=f"{c.kind} #{c.id} by {c.actor} not obeyed: {why}",
                                   data={"record": "command", "id": c.id, "actor": c.actor, "reason": why}))
        return obeyed, dropped, events

    @staticmethod
    def _router_url(target: Target, spec: ServiceRuntimeSpec) -> str | None:
        try:
            return target.router_url(spec)
        except TargetError:
            return None  # the probes then fail (never a pass)

    @staticmethod
    def _router_admin(target: Target, spec: ServiceRuntimeSpec) -> str | None:
        try:
            return target.router_admin(spec)
        except TargetError:
            return None  # the builtin provider then reports the metric as an error (never a pass)

    def act(self, lease: Lease, estate: Estate, actions: list) -> None:
        for action in actions:
            spec = runtime_spec(estate, action.env, action.service)
            target = self.targets.for_service(estate, action.service)
            key = f"{lease.rollout.id}:{action.env}/{action.service}:{action.kind}"
            try:
                target.apply(action, spec, lease.token)
                self._last_action_error.pop(key, None)
            except StaleFenceError as exc:
                # The data plane saw a newer token: either another controller owns this
                # rollout now (then release is a no-op), or another rollout's newer lease
                # touched this service since ours was granted. Giving the lease up makes
                # the next claim draw a fresh, higher token.
                log.warning("rollout %s: %s; giving the lease up to re-claim it", lease.rollout.id, exc)
                self.store.release(lease)
                return
            except TargetError as exc:
                # Not fatal here: the step that needs this effect will not complete, and its
                # deadline turns a persistent failure into a rollback. Record each new error once.
                message = str(exc)
                if self._last_action_error.get(key) != message:
                    self._last_action_error[key] = message
                    self.store.add_events(lease.rollout.id, [NewEvent(
                        kind="action_failed", message=f"{action.kind} failed: {message}", env=action.env,
                        service=action.service)], self.clock())
