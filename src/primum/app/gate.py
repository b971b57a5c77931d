"""The I/O edge of governance (lives with the controller, which may do I/O): the compiled policy bundle, the
recorded approvals and break-glass uses, and the environment's change windows,
turned into a :class:`~primum.core.model.rollout.Gate` per environment.

Fail closed: a policy that does not compile, or any error while deciding, is a
policy denial naming the problem; an unreadable approval record is no approval.
Every policy decision is recorded (an OPA-style decision log entry in a
``policy_decision`` event) when it differs from the last one recorded for that
release and environment, so a waiting release does not log every second.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from primum.adapters.policy import PolicyBundle, PolicyError
from primum.adapters.policy.inputs import policy_input
from primum.adapters.store.records import NewEvent, RolloutRecord
from primum.adapters.store.repository import Store
from primum.core.governance import approvals as approvals_mod
from primum.core.governance.gate import running_gate, starting_gate
from primum.core.governance.policy import PolicyDecision
from primum.core.governance.promotion import unpromoted
from primum.core.governance.windows import may_continue, may_start
from primum.core.model.estate import EnvironmentClass, Estate
from primum.core.model.release import Release
from primum.core.model.rollout import Gate, RolloutStatus

log = logging.getLogger("primum.core.governance")


@dataclass
class Governance:
    store: Store
    _logged: dict[tuple[str, str], str] = field(default_factory=dict)  # (rollout, env) -> last decision hash
    _authors: dict[str, str | None] = field(default_factory=dict)

    def bundle(self, estate: Estate) -> PolicyBundle:
        return PolicyBundle.load(estate.governance.policy_dir)  # compiled once per revision (cached)

    def author(self, rollout_id: str) -> str | None:
        if rollout_id not in self._authors:
            submitted = self.store.events_of_kind(rollout_id, "submitted")
            self._authors[rollout_id] = submitted[0].data.get("actor") if submitted else None
        return self._authors[rollout_id]

    def emergency(self, record: RolloutRecord) -> str | None:
        """Who used break-glass on this exact release digest, if anyone."""
        uses = [u for u in self.store.break_glass_uses(record.id) if u.digest == record.digest]
        return uses[0].actor if uses else None

    def decide(self, estate: Estate, record: RolloutRecord, env: str, *, emergency: bool, now: float
               ) -> PolicyDecision | str:
        """The policy decision, or why there is none (which denies)."""
        try:
            release = Release.model_validate(record.release["release"])
            document = policy_input(estate, release, record.digest, env, emergency=emergency, now=now,
                                    checks=self.checks(record, env), secrets=record.release.get("secrets", []),
                                    evidence=self.evidence(release))
            return self.bundle(estate).evaluate(document, now=now)
        except PolicyError as exc:
            return f"the policy could not be loaded: {exc}"
        except Exception as exc:  # fail closed, say why
            log.exception("policy decision for %s in %s failed", record.id, env)
            return f"the policy decision failed: {type(exc).__name__}: {exc}"

    def evidence(self, release: Release) -> dict[str, dict[str, Any]]:
        """Per service: the summary of the CI evidence ingested for its pinned artifact digest."""
        from primum.adapters.evidence.ingest import evidence_summary

        entries = self.store.artifact_evidence([pin.digest for pin in release.services.values()])
        return {name: evidence_summary([(e.kind, e.summary) for e in entries
                                        if e.artifact == pin.digest and e.summary is not None])
                for name, pin in release.services.items()}

    def checks(self, record: RolloutRecord, env: str) -> dict[str, Any]:
        status = RolloutStatus.model_validate(record.status)
        envs = status.environments
        index = envs.index(env) if env in envs else 0
        if index == 0:
            return {"previous_environment_passed": None}
        previous = [i for i in status.items if i.env == envs[index - 1]]
        return {"previous_environment_passed": all(i.phase.value in ("succeeded", "skipped") for i in previous)}

    def gate(self, estate: Estate, record: RolloutRecord, env: str, *, starting: bool, now: float,
             log: bool = True) -> Gate:
        """``log``: record the policy decision (the controller does; a read-only listing does not)."""
        environment = estate.environment(env)
        env_class = environment.class_
        by = self.emergency(record)
        if not starting:
            status = RolloutStatus.model_validate(record.status)
            started = status.started_at or now
            running = may_continue(environment.windows, env_class, now, started)
            if by is not None and not running.open and log:
                self.log_freeze_override(record, env, by, running.reason, now)
            return running_gate(window=running, emergency=by is not None)
        unpromoted = self.promotion(estate, record, env)
        if unpromoted:
            return Gate(allowed=False, reason=unpromoted, blocked_by="policy")
        decision = self.decide(estate, record, env, emergency=by is not None, now=now)
        if isinstance(decision, str):
            return Gate(allowed=False, reason=decision, blocked_by="policy")
        if log:
            self.log_decision(record, env, decision, now)
        window = may_start(environment.windows, env_class, now)
        if by is not None and not window.open and log and not isinstance(decision, str) and decision.allowed:
            self.log_freeze_override(record, env, by, window.reason, now)
        approval = None
        if decision.allowed and decision.requirements is not None:
            req = decision.requirements
            requirement = approvals_mod.Requirement(approvals=req.approvals, cab_approvals=req.cab_approvals,
                                                    production=env_class is EnvironmentClass.prod)
            decisions = [approvals_mod.Decision(a.actor, a.decision, a.env, a.digest, a.at, a.roles,
                                                a.owned_services, a.comment, a.expires_at, a.id)
                         for a in self.store.approvals(record.id)]
            approval = approvals_mod.evaluate(decisions, digest=record.digest, env=env,
                                              author=self.author(record.id), services=list(record.services),
                                              requirement=requirement, now=now)
        return starting_gate(decision=decision, window=window, approvals=approval, emergency=by is not None,
                             emergency_by=by)

    def promotion(self, estate: Estate, record: RolloutRecord, env: str) -> str | None:
        """Promotion by digest (``governance.promotion``): why an artifact may not enter ``env`` yet, or None."""
        status = RolloutStatus.model_validate(record.status)
        entering = [(item.service, item.new.digest) for item in status.items if item.env == env]
        return unpromoted(estate.environment_names(), env, entering, self.store.passed_environments_of(entering))

    def log_freeze_override(self, record: RolloutRecord, env: str, by: str, reason: str, now: float) -> None:
        """Record, once per release and environment, that break-glass carried it through a closed window."""
        key = (record.id, f"{env}#freeze-override")
        if key in self._logged:
            return
        self._logged[key] = reason
        self.store.add_events(record.id, [NewEvent(
            kind="freeze_override", env=env,
            message=f"break-glass by {by} overrides a closed change window in {env}: {reason}",
            data={"actor": by, "window": reason})], now)

    def log_decision(self, record: RolloutRecord, env: str, decision: PolicyDecision, now: float) -> None:
        entry = decision.log
        fingerprint = hashlib.sha256(json.dumps(
            [entry.input_digest, entry.bundle_revision, entry.result], sort_keys=True, default=str).encode()
        ).hexdigest()
        if self._logged.get((record.id, env)) == fingerprint:
            return
        self._logged[(record.id, env)] = fingerprint
        verdict = "allows" if decision.allowed else "denies"
        self.store.add_events(record.id, [NewEvent(
            kind="policy_decision", env=env,
            message=f"policy {verdict} {record.id} in {env}: class {decision.change_class}"
                    + (f"; denied: {'; '.join(decision.deny)}" if decision.deny else "")
                    + (f"; warnings: {'; '.join(decision.warn)}" if decision.warn else ""),
            data={"decision": decision.model_dump(mode="json")})], now)
