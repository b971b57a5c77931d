"""Separation of duties: every role against every approval action, tamper and expiry."""

from __future__ import annotations

import pytest

from primum.core.governance.approvals import (
    Decision,
    Requirement,
    evaluate,
    ineligible,
    may_break_glass,
    may_review,
)
from primum.core.governance.identities import Role

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
SERVICES = ["scheduling-api"]

# role -> (approve or reject a non-production release, a production release, use break-glass,
#          review someone else's break-glass use)
MATRIX = {
    Role.release_author: (False, False, False, False),
    Role.service_owner_approver: (True, True, False, False),  # for a service their group owns
    Role.cab: (True, True, False, True),
    Role.release_manager: (True, True, False, True),
    Role.platform_admin: (False, False, False, False),
    Role.operator: (False, False, False, False),
    Role.auditor: (False, False, False, False),
    Role.break_glass: (False, False, True, False),
}


@pytest.mark.parametrize("role", list(Role))
def test_separation_of_duties_matrix_for_break_glass_and_reviews(role: Role) -> None:
    _, _, glass, review = MATRIX[role]
    assert (may_break_glass([role.value]) is None) is glass
    assert (may_review("pat", [role.value], used_by="kim") is None) is review
    assert may_review("kim", [role.value], used_by="kim") == "used break-glass and cannot review their own use"


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("production", [False, True])
def test_separation_of_duties_matrix(role: Role, production: bool) -> None:
    allowed = MATRIX[role][int(production)]
    why = ineligible("pat", [role.value], SERVICES, author="alice", services=SERVICES, production=production)
    assert (why is None) is allowed, why
    status = evaluate([Decision("pat", "approve", "prod", D1, at=1.0, roles=(role.value,),
                                owned_services=tuple(SERVICES))],
                      digest=D1, env="prod", author="alice", services=SERVICES,
                      requirement=Requirement(approvals=1, production=production), now=2.0)
    assert status.satisfied is allowed, status.reason
    # a rejection by someone who may approve blocks; by anyone else it is ignored
    blocked = evaluate([Decision("pat", "reject", "prod", D1, at=1.0, roles=(role.value,),
                                 owned_services=tuple(SERVICES), comment="no")],
                       digest=D1, env="prod", author="alice", services=SERVICES,
                       requirement=Requirement(approvals=0, production=production), now=2.0)
    assert (blocked.rejected_by == "pat") is allowed


@pytest.mark.parametrize("role", list(Role))
def test_the_author_never_approves_their_own_release(role: Role) -> None:
    why = ineligible("alice", [role.value], SERVICES, author="alice", services=SERVICES, production=False)
    assert why == "the author of a release cannot approve it"


def test_a_platform_admin_who_is_also_cab_cannot_approve_production_but_can_approve_staging() -> None:
    roles = [Role.platform_admin.value, Role.cab.value]
    assert "platform admin" in (ineligible("pat", roles, [], author=None, services=SERVICES, production=True) or "")
    assert ineligible("pat", roles, [], author=None, services=SERVICES, production=False) is None


def test_a_service_owner_approver_of_another_service_does_not_count() -> None:
    why = ineligible("pat", [Role.service_owner_approver.value], ["billing-sync"], author=None, services=SERVICES,
                     production=True)
    assert why is not None and "own" in why


def approve(actor: str, roles: tuple[str, ...], at: float = 1.0, digest: str = D1, env: str = "prod",
            expires_at: float | None = None, decision: str = "approve", comment: str = "") -> Decision:
    return Decision(actor, decision, env, digest, at, roles, tuple(SERVICES), comment, expires_at)


HIGH = Requirement(approvals=2, cab_approvals=1, production=True)


def test_high_impact_needs_two_distinct_people_one_from_cab() -> None:
    owner = (Role.service_owner_approver.value,)
    cab = (Role.cab.value,)
    both = (Role.cab.value, Role.service_owner_approver.value)
    ev = dict(digest=D1, env="prod", author="alice", services=SERVICES, requirement=HIGH, now=10.0)
    assert not evaluate([approve("bob", owner)], **ev).satisfied
    # the same person in several groups counts once, however often they approve
    once = evaluate([approve("carol", both), approve("carol", both, at=2.0)], **ev)
    assert not once.satisfied and once.approvers == ("carol",) and "needs 2 approval(s)" in once.reason
    # two owners but no CAB member
    no_cab = evaluate([approve("bob", owner), approve("dan", owner)], **ev)
    assert not no_cab.satisfied and "1 of them from CAB" in no_cab.reason
    ok = evaluate([approve("bob", owner), approve("erin", cab)], **ev)
    assert ok.satisfied and set(ok.approvers) == {"bob", "erin"} and ok.cab == ("erin",)


def test_changing_the_release_voids_its_approvals() -> None:
    cab = (Role.cab.value,)
    status = evaluate([approve("bob", cab), approve("erin", cab)], digest=D2, env="prod", author="alice",
                      services=SERVICES, requirement=HIGH, now=10.0)
    assert not status.satisfied and status.approvers == ()
    assert all("void" in why for _, why in status.ignored)


def test_an_approval_for_another_environment_does_not_count() -> None:
    status = evaluate([approve("erin", (Role.cab.value,), env="staging")], digest=D1, env="prod", author="alice",
                      services=SERVICES, requirement=Requirement(approvals=1, production=True), now=10.0)
    assert not status.satisfied


def test_expired_approvals_count_for_nothing() -> None:
    cab = (Role.cab.value,)
    ev = dict(digest=D1, env="prod", author="alice", services=SERVICES,
              requirement=Requirement(approvals=1, production=True))
    assert evaluate([approve("erin", cab, expires_at=100.0)], now=99.0, **ev).satisfied
    expired = evaluate([approve("erin", cab, expires_at=100.0)], now=100.0, **ev)
    assert not expired.satisfied and ("erin", "the approval expired") in expired.ignored


def test_a_rejection_blocks_until_that_person_approves_and_carries_its_reason() -> None:
    cab = (Role.cab.value,)
    ev = dict(digest=D1, env="prod", author="alice", services=SERVICES,
              requirement=Requirement(approvals=1, production=True), now=10.0)
    rejected = evaluate([approve("bob", cab), approve("erin", cab, at=2.0, decision="reject",
                                                      comment="no rollback plan for the schema change")], **ev)
    assert not rejected.satisfied and rejected.rejected_by == "erin"
    assert rejected.reason == "rejected by erin: no rollback plan for the schema change"
    later = evaluate([approve("erin", cab, at=2.0, decision="reject"), approve("erin", cab, at=3.0)], **ev)
    assert later.satisfied


def test_a_rejection_by_someone_who_may_not_approve_does_not_block() -> None:
    status = evaluate([approve("op", (Role.operator.value,), decision="reject"), approve("erin", (Role.cab.value,))],
                      digest=D1, env="prod", author="alice", services=SERVICES,
                      requirement=Requirement(approvals=1, production=True), now=10.0)
    assert status.satisfied


def test_no_approvals_needed_is_satisfied() -> None:
    status = evaluate([], digest=D1, env="staging", author="alice", services=SERVICES, requirement=Requirement(),
                      now=1.0)
    assert status.satisfied and status.reason.startswith("0 of 0")
