"""The gate (pure): may a release start, or go on, in one environment, and what to record about it.

``evaluate_gate`` is a pure function of the gate's facts (read by ``adapters/store/facts.py`` in one
snapshot), the estate, the clock and the policy's decision (evaluated by the app, which owns regopy).
It returns the :class:`~primum.core.model.rollout.Gate` and the events to record, which the controller
writes in the same transaction as the new status: a decision that was never persisted was never logged.

Order matters and is the order a change manager would ask: does policy allow this
release here at all (a denial ends the release)? Is the environment open (freezes
and change windows)? Have the right people approved? Break-glass bypasses the
window and the approvals, never a policy denial, the analysis or rollback.

What is recorded, and when (from the facts, so a restarted or second controller agrees):

* ``policy_decision``: when the decision's fingerprint differs from the one last recorded for this
  release and environment. The fingerprint covers the policy input *without the clock*, the bundle
  revision and the result, so a release waiting for approvals logs its decision once, not every tick;
* ``freeze_override``: once per release and environment, when break-glass carries it through a
  closed change window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from primum.core.governance import approvals as approvals_mod
from primum.core.governance.approvals import ApprovalStatus, Decision
from primum.core.governance.identities import Identities
from primum.core.governance.policy import PolicyDecision
from primum.core.governance.promotion import unpromoted
from primum.core.governance.signatures import Claim, recorded_and_logged, verify_signed
from primum.core.governance.windows import WindowStatus, may_continue, may_start
from primum.core.model.estate import EnvironmentClass, Estate
from primum.core.model.release import canonical_json
from primum.core.model.rollout import Gate

CLOCK_FIELD = "now_ns"  # the one part of the policy input that changes every tick on its own


@dataclass(frozen=True)
class BreakGlassUse:
    """Who used break-glass on which release digest, with the envelope they signed and the one logged."""

    actor: str
    digest: str
    at: float = 0.0
    id: int = 0
    envelope: Mapping[str, Any] | None = None
    logged: str | None = None  # the envelope digest its evidence entry logged (None: no entry)


@dataclass(frozen=True)
class GateFacts:
    """Everything the gate of one release in one environment depends on, read in one snapshot.

    ``entering``: the ``(service, artifact digest)`` pairs the release brings into ``env``; ``passed``:
    the environments each of them passed (promotion by digest). ``evidence``: per service, the summary
    of the CI evidence ingested for its pinned artifact (``input.evidence`` of the policy). ``started_at``:
    when the rollout started (a running gate's change window is judged against it).
    ``last_fingerprint``: of the last ``policy_decision`` recorded for this release in ``env`` (None:
    none, or one recorded before fingerprints were). ``freeze_overridden``: a ``freeze_override`` is
    already recorded for this release in ``env``.
    """

    rollout_id: str
    env: str
    digest: str
    services: tuple[str, ...]
    started_at: float | None = None
    author: str | None = None
    approvals: tuple[Decision, ...] = ()
    break_glass: tuple[BreakGlassUse, ...] = ()
    entering: tuple[tuple[str, str], ...] = ()
    passed: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    last_fingerprint: str | None = None
    freeze_overridden: bool = False
    identities: Identities | str = "no identities were read"  # in force at submission, or why none
    reported: frozenset[tuple[str, int]] = frozenset()  # records already reported as not counting

    @property
    def emergency_by(self) -> str | None:
        """Who used break-glass on this exact release digest, if anyone (the first use whose signature
        verifies and whose evidence entry is in the log)."""
        uses = [u for u in self.break_glass if u.digest == self.digest and self.why_not_counted(u) is None]
        return uses[0].actor if uses else None

    def why_not_counted(self, record: Decision | BreakGlassUse) -> str | None:
        """Why a governance record does not count (its signature, or its evidence entry), or None."""
        if isinstance(record, BreakGlassUse):
            claim = Claim(self.rollout_id, "break_glass", record.actor, record.digest, record.at)
        else:
            claim = Claim(self.rollout_id, record.decision, record.actor, record.digest, record.at, env=record.env)
        check = verify_signed(claim, record.envelope, self.identities)
        if not check.valid:
            return check.reason
        return recorded_and_logged(record.envelope, record.logged)

    def counted_approvals(self) -> tuple[tuple[Decision, ...], tuple[tuple[Decision, str], ...]]:
        """The approvals that count, with the roles their approvers had at submission, and those that do
        not, with why."""
        counted: list[Decision] = []
        ignored: list[tuple[Decision, str]] = []
        for d in self.approvals:
            why = self.why_not_counted(d)
            if why is not None:
                ignored.append((d, why))
                continue
            identities = self.identities
            assert not isinstance(identities, str)  # a signature verified against them
            counted.append(replace(d, roles=tuple(sorted(r.value for r in identities.roles_of(d.actor))),
                                   owned_services=tuple(sorted(identities.owned_services(d.actor)))))
        return tuple(counted), tuple(ignored)


@dataclass(frozen=True)
class GateEvent:
    """An event the gate asks to record (the controller persists it with the new status)."""

    kind: str
    env: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


class GateOutcome(NamedTuple):
    """The gate and the events to record with the status it leads to (``gate, events = outcome``)."""

    gate: Gate
    events: tuple[GateEvent, ...] = ()


def input_fingerprint(document: Mapping[str, Any]) -> str:
    """sha256 of a policy input document without its clock: equal for two ticks that saw the same facts."""
    stable = {k: v for k, v in document.items() if k != CLOCK_FIELD}
    return "sha256:" + hashlib.sha256(canonical_json(stable)).hexdigest()


def decision_fingerprint(decision: PolicyDecision, input_digest: str) -> str:
    """What makes two policy decisions the same decision: the input without the clock
    (``input_fingerprint``), the bundle revision and the result; never the time or the decision id."""
    entry = decision.log
    return "sha256:" + hashlib.sha256(canonical_json(
        [input_digest, entry.bundle_revision, entry.result, entry.error])).hexdigest()


def promotion_block(facts: GateFacts, estate: Estate) -> str | None:
    """Promotion by digest: why the release's artifacts may not enter ``facts.env`` yet, or None."""
    passed = {pair: set(envs) for pair, envs in facts.passed.items()}
    return unpromoted(estate.environment_names(), facts.env, list(facts.entering), passed)


def policy_needed(facts: GateFacts, estate: Estate, *, starting: bool) -> bool:
    """Does this gate consult the policy? Only to start, and only once promotion by digest allows it."""
    return starting and promotion_block(facts, estate) is None


def evaluate_gate(facts: GateFacts, estate: Estate, *, now: float, starting: bool,
                  policy: PolicyDecision | str | None, input_digest: str = "") -> GateOutcome:
    """The gate of ``facts.env`` and the events to record.

    ``policy``: the policy's decision, or why there is none (which denies); None when the gate does
    not consult it (``policy_needed`` is false). ``input_digest``: ``input_fingerprint`` of the
    policy input the decision was made on.
    """
    environment = estate.environment(facts.env)
    env_class = environment.class_
    by = facts.emergency_by
    events: list[GateEvent] = []
    if not starting:
        running = may_continue(environment.windows, env_class, now, facts.started_at or now)
        if by is not None and not running.open:
            events += _freeze_override(facts, by, running.reason)
        return GateOutcome(running_gate(window=running, emergency=by is not None), tuple(events))
    blocked = promotion_block(facts, estate)
    if blocked:
        return GateOutcome(Gate(allowed=False, reason=blocked, blocked_by="policy"))
    if policy is None:  # the caller skipped a policy this gate needs: fail closed
        return GateOutcome(Gate(allowed=False, reason="the policy was not evaluated", blocked_by="policy"))
    if isinstance(policy, str):
        return GateOutcome(Gate(allowed=False, reason=policy, blocked_by="policy"))
    fingerprint = decision_fingerprint(policy, input_digest)
    if fingerprint != facts.last_fingerprint:
        events.append(_decision_event(facts, policy, fingerprint))
    window = may_start(environment.windows, env_class, now)
    if by is not None and not window.open and policy.allowed:
        events += _freeze_override(facts, by, window.reason)
    counted, not_counted = facts.counted_approvals()
    events += _ignored_events(facts, not_counted)
    approval = None
    if policy.allowed and policy.requirements is not None:
        req = policy.requirements
        requirement = approvals_mod.Requirement(approvals=req.approvals, cab_approvals=req.cab_approvals,
                                                production=env_class is EnvironmentClass.prod)
        approval = approvals_mod.evaluate(counted, digest=facts.digest, env=facts.env, author=facts.author,
                                          services=list(facts.services), requirement=requirement, now=now)
        unsigned = [(d, why) for d, why in not_counted if d.env == facts.env and d.digest == facts.digest]
        if unsigned and not approval.satisfied:
            said = "; ".join(f"#{d.id} by {d.actor}: {why}" for d, why in unsigned)
            approval = replace(approval, reason=f"{approval.reason}; not counted: {said}")
    gate = starting_gate(decision=policy, window=window, approvals=approval, emergency=by is not None,
                         emergency_by=by)
    return GateOutcome(gate, tuple(events))


def _ignored_events(facts: GateFacts, not_counted: Sequence[tuple[Decision, str]]) -> list[GateEvent]:
    """Once per record: an approval or break-glass use in the database that does not count, and why."""
    events = []
    for d, why in not_counted:
        if ("approval", d.id) not in facts.reported:
            events.append(GateEvent(kind="record_ignored", env=d.env,
                                    message=f"{d.decision} #{d.id} by {d.actor} does not count: {why}",
                                    data={"record": "approval", "id": d.id, "actor": d.actor, "reason": why}))
    for use in facts.break_glass:
        refused = facts.why_not_counted(use)
        if refused is not None and ("break_glass", use.id) not in facts.reported:
            events.append(GateEvent(kind="record_ignored", env=facts.env,
                                    message=f"break-glass #{use.id} by {use.actor} does not count: {refused}",
                                    data={"record": "break_glass", "id": use.id, "actor": use.actor,
                                          "reason": refused}))
    return events


def _freeze_override(facts: GateFacts, by: str, reason: str) -> Sequence[GateEvent]:
    """Once per release and environment: break-glass carried it through a closed change window."""
    if facts.freeze_overridden:
        return ()
    return (GateEvent(kind="freeze_override", env=facts.env,
                      message=f"break-glass by {by} overrides a closed change window in {facts.env}: {reason}",
                      data={"actor": by, "window": reason}),)


def _decision_event(facts: GateFacts, decision: PolicyDecision, fingerprint: str) -> GateEvent:
    """An OPA-style decision log entry, with the fingerprint the next gate compares against."""
    verdict = "allows" if decision.allowed else "denies"
    return GateEvent(
        kind="policy_decision", env=facts.env,
        message=f"policy {verdict} {facts.rollout_id} in {facts.env}: class {decision.change_class}"
                + (f"; denied: {'; '.join(decision.deny)}" if decision.deny else "")
                + (f"; warnings: {'; '.join(decision.warn)}" if decision.warn else ""),
        data={"decision": decision.model_dump(mode="json"), "fingerprint": fingerprint})


def starting_gate(*, decision: PolicyDecision, window: WindowStatus, approvals: ApprovalStatus | None,
                  emergency: bool, emergency_by: str | None = None) -> Gate:
    """May a rollout start an item in this environment?"""
    klass = decision.change_class
    if not decision.allowed:
        reasons = list(decision.deny) or [decision.error or "the policy did not allow it"]
        return Gate(allowed=False, reason="; ".join(reasons), blocked_by="policy", change_class=klass)
    requirements = decision.requirements
    if requirements is None:  # allowed without requirements cannot happen; fail closed if it does
        return Gate(allowed=False, reason="the policy decision has no requirements", blocked_by="policy",
                    change_class=klass)
    if requirements.break_glass_only and not emergency:
        return Gate(allowed=False, reason=f"a {klass} change goes only through break-glass "
                    "(`primum break-glass ID --justification ...`)", blocked_by="approvals", change_class=klass)
    if emergency:
        who = f" by {emergency_by}" if emergency_by else ""
        return Gate(allowed=True, change_class=klass, emergency=True,
                    reason=f"{klass}: break-glass{who}: approvals and change windows bypassed "
                    "(analysis and automatic rollback still apply)")
    if not window.open:
        return Gate(allowed=False, reason=window.reason, blocked_by="window", change_class=klass)
    if approvals is None or not approvals.satisfied:
        return Gate(allowed=False, reason=approvals.reason if approvals else "approvals could not be read",
                    blocked_by="approvals", change_class=klass)
    return Gate(allowed=True, change_class=klass, reason=f"{klass}: {approvals.reason}; {window.reason}")


def running_gate(*, window: WindowStatus, emergency: bool) -> Gate:
    """May a rollout already running in this environment go on (``in_flight: hold``)?"""
    if window.open or emergency:
        return Gate(allowed=True, reason=window.reason, emergency=emergency)
    return Gate(allowed=False, reason=window.reason, blocked_by="window")
