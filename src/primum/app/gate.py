"""The gate's use case: read the facts, evaluate the policy, decide (pure), hand back what to record.

``Gatekeeper.gate`` reads the gate's facts in one snapshot (``adapters/store/facts.py``), builds the
policy input from them and evaluates the compiled bundle (regopy lives in the adapters), then calls the
pure ``core.governance.gate.evaluate_gate``. It writes nothing: the controller persists the events it
returns (``policy_decision``, ``freeze_override``) in the same transaction as the status they lead to,
and whether a decision was already logged comes from the recorded events, so a restarted controller, or
a second one, does not log an unchanged decision again.

Fail closed: a policy that does not compile, or any error while deciding, is a policy denial naming the
problem; an unreadable approval record is no approval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from primum.adapters.policy import PolicyBundle, PolicyError
from primum.adapters.policy.inputs import policy_input
from primum.adapters.store.facts import load_gate_facts
from primum.adapters.store.records import NewEvent, RolloutRecord
from primum.adapters.store.repository import Store
from primum.core.governance.gate import (
    GateEvent,
    GateFacts,
    GateOutcome,
    evaluate_gate,
    input_fingerprint,
    policy_needed,
    promotion_block,
)
from primum.core.governance.policy import PolicyDecision
from primum.core.model.estate import Estate
from primum.core.model.release import Release
from primum.core.model.rollout import RolloutStatus

log = logging.getLogger("primum.core.governance")


def new_events(events: Sequence[GateEvent]) -> list[NewEvent]:
    """The gate's events as the store records them."""
    return [NewEvent(kind=e.kind, env=e.env, message=e.message, data=dict(e.data)) for e in events]


@dataclass
class Gatekeeper:
    store: Store
    _authors: dict[str, str | None] = field(default_factory=dict)

    def bundle(self, estate: Estate) -> PolicyBundle:
        return PolicyBundle.load(estate.governance.policy_dir)  # compiled once per revision (cached)

    def author(self, rollout_id: str) -> str | None:
        """Who submitted the release (for approving: the author may not approve their own release)."""
        if rollout_id not in self._authors:
            submitted = self.store.events_of_kind(rollout_id, "submitted")
            self._authors[rollout_id] = submitted[0].data.get("actor") if submitted else None
        return self._authors[rollout_id]

    def policy_decision(self, estate: Estate, record: RolloutRecord, env: str, facts: GateFacts, *, now: float
                        ) -> tuple[PolicyDecision | str, str]:
        """The policy decision, or why there is none (which denies), and the fingerprint of its input
        without the clock (``core.governance.gate.input_fingerprint``; empty when there is no input)."""
        try:
            release = Release.model_validate(record.release["release"])
            document = policy_input(estate, release, record.digest, env, emergency=facts.emergency_by is not None,
                                    now=now, checks=self.checks(record, env),
                                    secrets=record.release.get("secrets", []), evidence=facts.evidence)
            return self.bundle(estate).evaluate(document, now=now), input_fingerprint(document)
        except PolicyError as exc:
            return f"the policy could not be loaded: {exc}", ""
        except Exception as exc:  # fail closed, say why
            log.exception("policy decision for %s in %s failed", record.id, env)
            return f"the policy decision failed: {type(exc).__name__}: {exc}", ""

    def evidence(self, release: Release) -> dict[str, dict[str, Any]]:
        """Per service: the summary of the CI evidence ingested for its pinned artifact digest
        (``primum policy eval`` shows what the controller would see)."""
        from primum.adapters.store.facts import ci_evidence

        return ci_evidence(self.store, {name: pin.digest for name, pin in release.services.items()})

    def checks(self, record: RolloutRecord, env: str) -> dict[str, Any]:
        status = RolloutStatus.model_validate(record.status)
        envs = status.environments
        index = envs.index(env) if env in envs else 0
        if index == 0:
            return {"previous_environment_passed": None}
        previous = [i for i in status.items if i.env == envs[index - 1]]
        return {"previous_environment_passed": all(i.phase.value in ("succeeded", "skipped") for i in previous)}

    def gate(self, estate: Estate, record: RolloutRecord, env: str, *, starting: bool, now: float) -> GateOutcome:
        """The gate of ``record`` in ``env`` and the events to record with the status it leads to.

        Writes nothing: the controller persists the events with the new status; a read-only listing
        ignores them.
        """
        facts = load_gate_facts(self.store, record, env)
        policy: PolicyDecision | str | None = None
        digest = ""
        if policy_needed(facts, estate, starting=starting):
            policy, digest = self.policy_decision(estate, record, env, facts, now=now)
        return evaluate_gate(facts, estate, now=now, starting=starting, policy=policy, input_digest=digest)

    def promotion(self, estate: Estate, record: RolloutRecord, env: str) -> str | None:
        """Promotion by digest (``governance.promotion``): why an artifact may not enter ``env`` yet, or None."""
        return promotion_block(load_gate_facts(self.store, record, env), estate)
