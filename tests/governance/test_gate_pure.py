"""The gate as a pure function of its facts, the clock and the policy's decision: no database, no regopy.

Covers what the gate decides (allow, deny, a closed window, missing approvals, break-glass, a policy
error failing closed, promotion by digest) and what it asks to record (a policy decision only when it
changed, ignoring the clock; a freeze override once per release and environment)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from primum.core.governance.approvals import Decision
from primum.core.governance.gate import (
    BreakGlassUse,
    GateFacts,
    GateOutcome,
    decision_fingerprint,
    evaluate_gate,
    input_fingerprint,
    policy_needed,
)
from primum.core.governance.identities import Identities
from primum.core.governance.policy import PolicyDecision, decision_from
from primum.core.governance.signatures import Claim, envelope_digest, sign_claim
from primum.core.model.estate import Estate
from tests.controller.noop_estate import estate_doc
from tests.people import People

DIGEST = "sha256:" + "a" * 64
API = "sha256:" + "b" * 64


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


OPEN = at("2026-11-24T15:00:00")  # no freeze
FROZEN = at("2026-12-24T12:00:00")  # in the year-end freeze


def estate(in_flight: str = "finish") -> Estate:
    doc = estate_doc()
    doc["environments"][1]["windows"] = {
        "timezone": "UTC", "in_flight": in_flight,
        "freezes": [{"name": "year-end", "start": "2026-12-20T00:00", "end": "2026-12-31T00:00",
                     "reason": "year-end"}]}
    return Estate.model_validate(doc)


PEOPLE = People()
ROLES = {"alice": ["cab"], "carol": ["cab"], "kim": ["break-glass"], "rita": ["release-manager"]}
IDENTITIES = Identities.model_validate({"users": [{"id": user, "roles": roles, "keys": [PEOPLE.line(user)]}
                                                  for user, roles in ROLES.items()]})


def facts(env: str = "prod", **fields: Any) -> GateFacts:
    base: dict[str, Any] = {
        "rollout_id": "rel-1", "env": env, "digest": DIGEST, "services": ("api",), "author": "alice",
        "entering": (("api", API),), "passed": {("api", API): frozenset({"staging"})}, "identities": IDENTITIES}
    return GateFacts(**{**base, **fields})


def requirements(approvals: int = 0, cab: int = 0, break_glass_only: bool = False) -> dict[str, Any]:
    return {"approvals": approvals, "cab_approvals": cab, "min_analysis_seconds": 0, "gates": [],
            "break_glass_only": break_glass_only}


def policy(*, deny: tuple[str, ...] = (), approvals: int = 0, klass: str = "normal", now: float = OPEN,
           revision: str = "rev-1", decision_id: str = "d-1") -> PolicyDecision:
    result = {"class": klass, "requirements": requirements(approvals), "deny": list(deny), "warn": []}
    # the logged input digest includes the clock (the policy sees now_ns): it differs every tick
    return decision_from(result, None, decision_id=decision_id, input_digest=f"sha256:with-clock-{now}",
                         bundle_revision=revision, at=now)


def gate(f: GateFacts, decision: PolicyDecision | str | None, *, now: float = OPEN, starting: bool = True,
         e: Estate | None = None, input_digest: str = "sha256:stable") -> GateOutcome:
    return evaluate_gate(f, e or estate(), now=now, starting=starting, policy=decision, input_digest=input_digest)


def kinds(outcome: GateOutcome) -> list[str]:
    return [e.kind for e in outcome.events]


def approve(actor: str, roles: tuple[str, ...] = (), env: str = "prod", digest: str = DIGEST, *,
            signer: str | None = None, logged: bool = True, id: int = 1) -> Decision:
    """A recorded approval, signed by ``signer``'s key (default: the actor's) and logged in the evidence."""
    claim = Claim("rel-1", "approve", actor, digest, OPEN - 60, env=env)
    envelope = sign_claim(claim, PEOPLE.key(signer or actor))
    return Decision(actor=actor, decision="approve", env=env, digest=digest, at=OPEN - 60, roles=roles, id=id,
                    envelope=envelope, logged=envelope_digest(envelope) if logged else None)


def glass(actor: str, digest: str = DIGEST) -> BreakGlassUse:
    envelope = sign_claim(Claim("rel-1", "break_glass", actor, digest, OPEN - 30), PEOPLE.key(actor))
    return BreakGlassUse(actor, digest, at=OPEN - 30, id=1, envelope=envelope, logged=envelope_digest(envelope))


def test_an_allowing_policy_with_no_approvals_required_allows_and_logs_its_decision() -> None:
    g, events = gate(facts(), policy())
    assert g.allowed and g.change_class == "normal" and g.blocked_by is None
    [event] = events
    assert event.kind == "policy_decision" and event.env == "prod"
    assert event.message == "policy allows rel-1 in prod: class normal"
    assert event.data["decision"]["allowed"] is True
    assert event.data["fingerprint"] == decision_fingerprint(policy(), "sha256:stable")


def test_a_denial_blocks_by_policy_and_is_logged() -> None:
    g, events = gate(facts(), policy(deny=("the release needs a change ticket",)))
    assert not g.allowed and g.blocked_by == "policy" and g.reason == "the release needs a change ticket"
    assert kinds(GateOutcome(g, events)) == ["policy_decision"]
    assert "denied: the release needs a change ticket" in events[0].message


def test_a_closed_window_blocks_a_start() -> None:
    g, events = gate(facts(), policy(now=FROZEN), now=FROZEN)
    assert not g.allowed and g.blocked_by == "window" and "year-end" in g.reason
    assert kinds(GateOutcome(g, events)) == ["policy_decision"]  # the decision is logged, no override


def test_missing_approvals_block_and_eligible_ones_allow() -> None:
    g, _ = gate(facts(), policy(approvals=1))
    assert not g.allowed and g.blocked_by == "approvals" and "needs 1 approval(s)" in g.reason
    author, _ = gate(facts(approvals=(approve("alice", ("cab",)),)), policy(approvals=1))
    assert not author.allowed and author.blocked_by == "approvals"  # the author cannot approve
    other_digest, _ = gate(facts(approvals=(approve("carol", ("cab",), digest="sha256:" + "f" * 64),)),
                           policy(approvals=1))
    assert not other_digest.allowed  # an approval is bound to the digest it reviewed
    ok, _ = gate(facts(approvals=(approve("carol", ("cab",)),)), policy(approvals=1))
    assert ok.allowed and "carol" in ok.reason


def test_break_glass_overrides_a_freeze_and_records_it_once() -> None:
    used = facts(break_glass=(glass("kim", DIGEST),))
    g, events = gate(used, policy(approvals=2, now=FROZEN), now=FROZEN)
    assert g.allowed and g.emergency and "break-glass by kim" in g.reason
    assert [e.kind for e in events] == ["policy_decision", "freeze_override"]
    override = events[1]
    assert override.data["actor"] == "kim" and "year-end" in override.message and override.env == "prod"
    again = gate(facts(break_glass=(glass("kim", DIGEST),), freeze_overridden=True,
                       last_fingerprint=events[0].data["fingerprint"]), policy(approvals=2, now=FROZEN + 5),
                 now=FROZEN + 5)
    assert again.gate.allowed and again.events == ()


def test_break_glass_on_another_digest_counts_for_nothing() -> None:
    g, events = gate(facts(break_glass=(glass("kim", "sha256:" + "0" * 64),)), policy(now=FROZEN),
                     now=FROZEN)
    assert not g.allowed and g.blocked_by == "window" and "freeze_override" not in [e.kind for e in events]


def test_break_glass_never_overrides_a_policy_denial() -> None:
    used = facts(break_glass=(glass("kim", DIGEST),))
    g, events = gate(used, policy(deny=("no",), now=FROZEN), now=FROZEN)
    assert not g.allowed and g.blocked_by == "policy"
    assert [e.kind for e in events] == ["policy_decision"]  # no freeze override for a denied release


@pytest.mark.parametrize("error", ["the policy could not be loaded: bad.rego:3: parse error",
                                   "the policy decision failed: KeyError: 'x'"])
def test_a_policy_error_fails_closed_and_records_nothing(error: str) -> None:
    g, events = gate(facts(), error)
    assert not g.allowed and g.blocked_by == "policy" and g.reason == error and events == ()


def test_a_missing_policy_decision_fails_closed() -> None:
    g, events = gate(facts(), None)
    assert not g.allowed and g.blocked_by == "policy" and events == ()


def test_an_unpromoted_artifact_is_blocked_before_the_policy_is_asked() -> None:
    unpassed = facts(passed={("api", API): frozenset()})
    assert not policy_needed(unpassed, estate(), starting=True)
    assert policy_needed(facts(), estate(), starting=True) and not policy_needed(facts(), estate(), starting=False)
    g, events = gate(unpassed, None)
    assert not g.allowed and g.blocked_by == "policy" and "has not passed staging" in g.reason and events == ()
    first, _ = gate(facts(env="staging", passed={}), policy())
    assert first.allowed  # the first environment needs no earlier pass


def test_an_unchanged_decision_is_not_logged_again_though_the_clock_moved() -> None:
    _, [logged] = gate(facts(), policy())
    later = policy(now=OPEN + 3600, decision_id="d-2")
    assert later.log.input_digest != policy().log.input_digest  # the clock is in the logged input digest
    outcome = gate(facts(last_fingerprint=logged.data["fingerprint"]), later, now=OPEN + 3600)
    assert outcome.gate.allowed and outcome.events == ()


@pytest.mark.parametrize("change", [
    {"deny": ("a new denial",)},
    {"revision": "rev-2"},
    {"klass": "high-impact"},
])
def test_a_changed_decision_is_logged(change: dict[str, Any]) -> None:
    _, [logged] = gate(facts(), policy())
    outcome = gate(facts(last_fingerprint=logged.data["fingerprint"]), policy(**change))
    assert kinds(outcome) == ["policy_decision"]
    assert outcome.events[0].data["fingerprint"] != logged.data["fingerprint"]


def test_a_changed_input_is_logged_though_the_result_is_the_same() -> None:
    _, [logged] = gate(facts(), policy())
    outcome = gate(facts(last_fingerprint=logged.data["fingerprint"]), policy(), input_digest="sha256:new-evidence")
    assert kinds(outcome) == ["policy_decision"]


def test_the_input_fingerprint_ignores_only_the_clock() -> None:
    doc = {"release": {"id": "rel-1"}, "emergency": False, "now_ns": 1}
    assert input_fingerprint(doc) == input_fingerprint({**doc, "now_ns": 2})
    assert input_fingerprint(doc) != input_fingerprint({**doc, "emergency": True})


def test_a_running_rollout_held_by_a_window_unless_break_glass() -> None:
    hold = estate(in_flight="hold")
    held = gate(facts(started_at=FROZEN - 10), None, now=FROZEN, starting=False, e=hold)
    assert not held.gate.allowed and held.gate.blocked_by == "window" and held.events == ()
    used = facts(started_at=FROZEN - 10, break_glass=(glass("kim", DIGEST),))
    go = gate(used, None, now=FROZEN, starting=False, e=hold)
    assert go.gate.allowed and go.gate.emergency and kinds(go) == ["freeze_override"]
    assert gate(facts(started_at=FROZEN - 10, break_glass=used.break_glass, freeze_overridden=True), None,
                now=FROZEN, starting=False, e=hold).events == ()
    open_ = gate(facts(started_at=OPEN - 10), None, now=OPEN, starting=False, e=hold)
    assert open_.gate.allowed and open_.events == ()
