"""Approvals with separation of duties: pure rules over recorded decisions.

An approval is bound to the release digest and one environment: approving
``sha256:aaa…`` for prod says nothing about any other digest or environment,
so a release changed after it was approved has no approvals. Rules:

* the author (who submitted the release) cannot approve it;
* whoever administers policies or pipelines (``platform-admin``) cannot approve a
  production release;
* only approving roles count (service-owner approvers only for the services
  their groups own; ``cab``; ``release-manager``);
* each person counts once, by their latest decision; an expired approval counts
  for nothing; a rejection by an eligible person blocks the release until that
  person approves;
* a class needs ``approvals`` distinct approvers, ``cab_approvals`` of them from CAB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from primum.core.governance.identities import Role


@dataclass(frozen=True)
class Decision:
    """One recorded approve or reject, with the approver's roles when they decided."""

    actor: str
    decision: str  # "approve" | "reject"
    env: str
    digest: str
    at: float
    roles: tuple[str, ...] = ()
    owned_services: tuple[str, ...] = ()
    comment: str = ""
    expires_at: float | None = None
    id: int = 0
    envelope: Mapping[str, Any] | None = None  # the approver's signed DSSE envelope, as the record holds it
    logged: str | None = None  # the envelope digest its evidence entry logged (None: no entry)


@dataclass(frozen=True)
class Requirement:
    approvals: int = 0
    cab_approvals: int = 0
    production: bool = False


@dataclass(frozen=True)
class ApprovalStatus:
    satisfied: bool
    reason: str  # one sentence: what is met, or what waits on whom
    approvers: tuple[str, ...] = ()
    cab: tuple[str, ...] = ()
    rejected_by: str | None = None
    ignored: tuple[tuple[str, str], ...] = field(default=())  # (who, why it does not count)


def ineligible(actor: str, roles: Iterable[str], owned: Iterable[str], *, author: str | None,
               services: Sequence[str], production: bool) -> str | None:
    """Why ``actor`` may not approve this release in this environment, or None if they may."""
    roles = set(roles)
    if author is not None and actor == author:
        return "the author of a release cannot approve it"
    if production and Role.platform_admin.value in roles:
        return "a platform admin administers policies and pipelines and cannot approve production releases"
    if roles & {Role.cab.value, Role.release_manager.value}:
        return None
    if Role.service_owner_approver.value in roles:
        if set(owned) & set(services):
            return None
        return f"a service-owner approver only approves services their groups own (none of {', '.join(services)})"
    return "holds none of the approving roles (service-owner-approver, cab, release-manager)"


def evaluate(decisions: Iterable[Decision], *, digest: str, env: str, author: str | None,
             services: Sequence[str], requirement: Requirement, now: float) -> ApprovalStatus:
    """Whether the recorded decisions meet ``requirement`` for this digest and environment."""
    latest: dict[str, Decision] = {}
    ignored: list[tuple[str, str]] = []
    for d in sorted(decisions, key=lambda d: (d.at, d.id)):
        if d.env != env:
            continue
        if d.digest != digest:
            ignored.append((d.actor, f"decided on {d.digest[:19]}, not this release's {digest[:19]} (void)"))
            continue
        latest[d.actor] = d
    approvers: list[str] = []
    cab: list[str] = []
    rejected: Decision | None = None
    for actor, d in latest.items():
        why = ineligible(actor, d.roles, d.owned_services, author=author, services=services,
                         production=requirement.production)
        if why is not None:
            ignored.append((actor, why))
            continue
        if d.decision == "reject":
            rejected = rejected or d
            continue
        if d.expires_at is not None and d.expires_at <= now:
            ignored.append((actor, "the approval expired"))
            continue
        approvers.append(actor)
        if Role.cab.value in d.roles:
            cab.append(actor)
    if rejected is not None:
        why = f": {rejected.comment}" if rejected.comment else ""
        return ApprovalStatus(False, f"rejected by {rejected.actor}{why}", tuple(approvers), tuple(cab),
                              rejected.actor, tuple(ignored))
    missing = max(0, requirement.approvals - len(approvers))
    missing_cab = max(0, requirement.cab_approvals - len(cab))
    if missing == 0 and missing_cab == 0:
        have = f" ({', '.join(approvers)})" if approvers else ""
        return ApprovalStatus(True, f"{len(approvers)} of {requirement.approvals} approval(s){have}",
                              tuple(approvers), tuple(cab), None, tuple(ignored))
    wants = [f"{requirement.approvals} approval(s) from distinct people"]
    if requirement.cab_approvals:
        wants.append(f"{requirement.cab_approvals} of them from CAB")
    have = f"has {len(approvers)}" + (f" ({', '.join(approvers)})" if approvers else "")
    if requirement.cab_approvals:
        have += f", {len(cab)} from CAB"
    return ApprovalStatus(False, f"waiting for approval in {env}: needs {' and '.join(wants)}; {have}",
                          tuple(approvers), tuple(cab), None, tuple(ignored))


REVIEWING_ROLES = frozenset({Role.cab.value, Role.release_manager.value})


def may_break_glass(roles: Iterable[str]) -> str | None:
    """Why these roles may not use break-glass, or None."""
    if Role.break_glass.value in set(roles):
        return None
    return "does not hold the break-glass role; only the named emergency group may use it"


def may_review(actor: str, roles: Iterable[str], used_by: str) -> str | None:
    """Why ``actor`` may not complete the retrospective review of a break-glass use by ``used_by``, or None."""
    if actor == used_by:
        return "used break-glass and cannot review their own use"
    if not set(roles) & REVIEWING_ROLES:
        return "may not review break-glass uses: it takes the cab or release-manager role"
    return None
