"""Combine the policy decision, the approvals and the change windows into one gate (pure).

Order matters and is the order a change manager would ask: does policy allow this
release here at all (a denial ends the release)? Is the environment open (freezes
and change windows)? Have the right people approved? Break-glass bypasses the
window and the approvals, never a policy denial, the analysis or rollback.
"""

from __future__ import annotations

from primum.core.governance.approvals import ApprovalStatus
from primum.core.governance.policy import PolicyDecision
from primum.core.governance.windows import WindowStatus
from primum.core.model.rollout import Gate


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
