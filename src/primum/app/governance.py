"""Governance use cases shared by every front end: approve, reject, what waits on whom,
break-glass and its retrospective reviews. Thin over the pure rules in ``governance/``
and the store; the controller enforces the same rules when it decides (controller/governance.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from primum.adapters.store.facts import load_gate_facts
from primum.adapters.store.records import BreakGlassRecord, NewEvent, RolloutRecord
from primum.adapters.store.repository import Store
from primum.app.gate import Gatekeeper
from primum.app.identity import Caller, identify, sign
from primum.core.errors import NotAllowed, NotFound
from primum.core.governance.approvals import ineligible, may_break_glass, may_review
from primum.core.governance.identities import APPROVING_ROLES, Identities, Role, load_identities
from primum.core.governance.signatures import Claim, signed_data
from primum.core.model.estate import EnvironmentClass, Estate
from primum.core.model.rollout import ItemPhase, RolloutStatus

MIN_JUSTIFICATION = 20  # characters: a break-glass reason a reviewer can act on


def estate_of(record: RolloutRecord) -> Estate:
    return Estate.model_validate(record.estate)


def identities_of(estate: Estate) -> Identities:
    path = estate.governance.identities
    if path is None:
        raise NotAllowed(f"estate {estate.name} has no identities file: approvals need to know who is who; write "
                         "identities.yaml next to the estate (or set governance.identities) and submit again")
    return load_identities(path)


def waiting_env(status: RolloutStatus) -> str | None:
    """The environment the release enters next (or is in), or None when it has ended."""
    item = status.active_item()
    return item.env if item is not None else None


@dataclass(frozen=True)
class Waiting:
    """One release waiting on governance, for `primum approvals`."""

    release: str
    digest: str
    env: str
    change_class: str | None
    reason: str
    blocked_by: str | None
    approvals: list[dict[str, Any]]


class GovernanceService:
    def __init__(self, store: Store, clock: Any = time.time):
        self.store = store
        self.clock = clock
        self.gatekeeper = Gatekeeper(store)

    def _record(self, rollout_id: str) -> RolloutRecord:
        record = self.store.get_rollout(rollout_id)
        if record is None:
            raise NotFound(f"no release with id {rollout_id!r}; `primum history` lists them")
        return record

    # ------------------------------------------------------------- approvals

    def record_decision(self, rollout_id: str, decision: str, *, caller: Caller | None = None,
                        env: str | None = None, comment: str = "", digest: str | None = None) -> str:
        """Record a signed approve or reject decision; returns a sentence saying what was recorded.

        The actor is the enrolled holder of ``caller``'s key in the identities in force when the release
        was submitted; their roles are the ones they had then."""
        record = self._record(rollout_id)
        if record.phase in ("promoted", "rolled_back", "failed", "denied"):
            raise NotAllowed(f"release {rollout_id} already {record.phase}; nothing to {decision}")
        if digest is not None and digest != record.digest:
            raise NotAllowed(f"you reviewed {digest} but release {rollout_id} is {record.digest}: it changed; "
                             "review it again")
        if decision == "reject" and not comment.strip():
            raise NotAllowed("a rejection needs a reason: pass --comment 'why'")
        estate = estate_of(record)
        status = RolloutStatus.model_validate(record.status)
        env = env or waiting_env(status)
        if env is None or env not in status.environments:
            raise NotAllowed(f"release {rollout_id} does not go to {env!r}; its environments: "
                             f"{', '.join(status.environments)}")
        actor, identities = identify(record.release, caller, record.id)
        assert caller is not None  # identify refused a missing caller
        roles = sorted(r.value for r in identities.roles_of(actor))
        owned = sorted(identities.owned_services(actor))
        production = estate.environment(env).class_ is EnvironmentClass.prod
        why = ineligible(actor, roles, owned, author=self.gatekeeper.author(record.id),
                         services=list(record.services), production=production)
        if why is not None:
            raise NotAllowed(f"{actor} may not {decision} {rollout_id} in {env}: {why}")
        now = self.clock()
        expires = now + estate.governance.approval_ttl if decision == "approve" else None
        envelope = sign(caller, Claim(record.id, decision, actor, record.digest, now, env=env))
        verb = "approved" if decision == "approve" else "rejected"
        message = f"{actor} ({', '.join(r for r in roles if Role(r) in APPROVING_ROLES)}) {verb} " \
                  f"{rollout_id} {record.digest[:19]} for {env}" + (f": {comment}" if comment else "")
        event = NewEvent(kind="approval" if decision == "approve" else "rejection", message=message, env=env,
                         data={"actor": actor, "roles": roles, "digest": record.digest, "comment": comment,
                               "expires_at": expires, **signed_data(envelope)})
        self.store.add_approval(record.id, env=env, digest=record.digest, actor=actor, decision=decision,
                                comment=comment, roles=roles, owned_services=owned, at=now, expires_at=expires,
                                envelope=envelope, event=event)
        return message

    def waiting(self) -> list[Waiting]:
        """Every active release held by governance, with what it waits on and who approved so far."""
        rows = []
        now = self.clock()
        for record in self.store.list_rollouts(limit=1000, phases=("pending", "running", "paused")):
            status = RolloutStatus.model_validate(record.status)
            item = status.active_item()
            if item is None or status.rollback_queue or item.phase is not ItemPhase.pending:
                continue
            estate = estate_of(record)
            gate, _unrecorded = self.gatekeeper.gate(estate, record, item.env, starting=True, now=now)  # read-only
            facts = load_gate_facts(self.store, record, item.env)
            decided = [{"actor": a.actor, "decision": a.decision, "at": a.at, "comment": a.comment,
                        "expires_at": a.expires_at, "current": a.digest == record.digest,
                        "not_counted": facts.why_not_counted(a)}
                       for a in facts.approvals if a.env == item.env]
            rows.append(Waiting(record.id, record.digest, item.env, gate.change_class,
                                gate.reason, None if gate.allowed else gate.blocked_by, decided))
        return rows

    # ----------------------------------------------------------- break-glass

    def break_glass(self, rollout_id: str, *, caller: Caller | None = None, justification: str) -> BreakGlassRecord:
        record = self._record(rollout_id)
        if record.phase in ("promoted", "rolled_back", "failed", "denied"):
            raise NotAllowed(f"release {rollout_id} already {record.phase}; break-glass cannot change that")
        if len(justification.strip()) < MIN_JUSTIFICATION:
            raise NotAllowed(f"break-glass needs a justification of at least {MIN_JUSTIFICATION} characters that "
                             "a reviewer can act on (what is broken, why it cannot wait)")
        estate = estate_of(record)
        actor, identities = identify(record.release, caller, record.id)
        assert caller is not None  # identify refused a missing caller
        refused = may_break_glass(r.value for r in identities.roles_of(actor))
        if refused is not None:
            raise NotAllowed(f"{actor} {refused}")
        now = self.clock()
        due = now + estate.governance.review_deadline
        envelope = sign(caller, Claim(record.id, "break_glass", actor, record.digest, now))
        notice = {"event": "break_glass", "estate": estate.name, "release": record.id, "digest": record.digest,
                  "actor": actor, "justification": justification, "at": now, "review_due_at": due}
        notified = notify(estate.governance.webhook, notice)
        use_id = self.store.add_break_glass(record.id, digest=record.digest, actor=actor,
                                            justification=justification, at=now, review_due_at=due,
                                            notified=notified, envelope=envelope, event=NewEvent(
            kind="break_glass", message=f"break-glass by {actor}: {justification} (approvals and change windows "
            f"bypassed; analysis and rollback still apply; review #{{review}} due "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(due))}; webhook: {notified})",
            data={**notice, "notified": notified, **signed_data(envelope)}))
        return next(u for u in self.store.break_glass_uses(record.id) if u.id == use_id)

    def reviews(self) -> list[tuple[BreakGlassRecord, str]]:
        """Every break-glass use with its review state: open, overdue or done."""
        now = self.clock()
        out = []
        for use in self.store.break_glass_uses():
            state = "done" if use.reviewed_at is not None else ("overdue" if now > use.review_due_at else "open")
            out.append((use, state))
        return out

    def complete_review(self, use_id: int, *, caller: Caller | None = None, notes: str) -> str:
        use = next((u for u in self.store.break_glass_uses() if u.id == use_id), None)
        if use is None:
            raise NotFound(f"no break-glass use #{use_id}; `primum reviews` lists them")
        if not notes.strip():
            raise NotAllowed("a review needs notes: what happened, and what follows from it")
        record = self._record(use.rollout_id)
        actor, identities = identify(record.release, caller, record.id)
        assert caller is not None  # identify refused a missing caller
        refused = may_review(actor, (r.value for r in identities.roles_of(actor)), use.actor)
        if refused is not None:
            raise NotAllowed(f"{actor} {refused} (#{use_id})")
        now = self.clock()
        envelope = sign(caller, Claim(record.id, "review", actor, use.digest, now, subject=str(use_id)))
        if not self.store.complete_review(use_id, by=actor, notes=notes, at=now):
            raise NotAllowed(f"break-glass use #{use_id} was already reviewed")
        late = " (after its deadline)" if now > use.review_due_at else ""
        message = f"break-glass #{use_id} on {use.rollout_id} reviewed by {actor}{late}: {notes}"
        self.store.add_events(use.rollout_id, [NewEvent(kind="review", message=message,
                                                        data={"review": use_id, "actor": actor, "notes": notes,
                                                              "late": bool(late), **signed_data(envelope)})], now)
        return message


def notify(url: str | None, notice: dict[str, Any]) -> str:
    """POST the notice to the webhook; the answer (or the failure) is recorded with the use, never raised:
    an emergency must not wait on a notification service."""
    if not url:
        return "no webhook configured (governance.webhook)"
    try:
        response = httpx.post(url, content=json.dumps(notice), timeout=5.0, follow_redirects=False,
                              headers={"content-type": "application/json", "user-agent": "primum"})
    except httpx.HTTPError as exc:
        return f"webhook {url} failed: {type(exc).__name__}: {exc}"
    return f"webhook {url} answered {response.status_code}"
