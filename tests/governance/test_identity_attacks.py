"""Identities are proven, not typed: each attack of issue 13 (point 2, and the gate part of point 3) through
the real store, controller and policy bundle. Each fails on a build where ``--as``/``PRIMUM_USER`` were
believed and database rows were trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from primum.adapters.store.tables import approvals, break_glass, evidence_entries
from primum.core.errors import NotAllowed
from primum.core.governance.signatures import Claim, sign_claim, verify_signed
from primum.core.model.rollout import RolloutStatus
from tests.governance.test_flow import IDENTITIES, World, waiting
from tests.governance.test_flow import world as world  # the fixture


def test_the_author_cannot_submit_under_another_name_nor_approve_as_someone_else(world: World) -> None:
    with pytest.raises(NotAllowed, match="--as owen does not match your key, which is enrolled for alice"):
        world.releases.submit(_release(world, "rel-x"), world.estate, caller=world.people("alice", asserted="owen"))
    rid = world.submit(author="alice")
    world.run(rid, until=waiting("staging"))
    with pytest.raises(NotAllowed, match="does not match your key"):
        world.gov.record_decision(rid, "approve", caller=world.people("alice", asserted="owen"))
    with pytest.raises(NotAllowed, match="the author of a release cannot approve it"):
        world.gov.record_decision(rid, "approve", caller=world.people("alice"))
    [submitted] = world.store.events_of_kind(rid, "submitted")
    assert submitted.data["actor"] == "alice" and submitted.data["identities_digest"].startswith("sha256:")
    claim = Claim(rid, "submit", "alice", submitted.data["digest"], submitted.at)
    recorded = world.store.get_rollout(rid).release["identities"]  # type: ignore[union-attr]
    from primum.core.governance.identities import identities_from_record

    assert verify_signed(claim, submitted.data["envelope"], identities_from_record(recorded)).valid


def test_only_a_release_author_may_submit(world: World) -> None:
    """Issue 13 point 2: any enrolled key could submit; now it takes the release-author role."""
    for person in ("kim", "rita", "carol", "audrey"):  # operator, release manager, CAB, auditor: no authors
        with pytest.raises(NotAllowed, match=f"{person} may not submit rel-{person}: {person} does not hold the "
                           "release-author role"):
            world.releases.submit(_release(world, f"rel-{person}"), world.estate, caller=world.people(person))
        assert world.store.get_rollout(f"rel-{person}") is None  # nothing half-written
    with pytest.raises(NotAllowed, match="is not enrolled"):
        world.releases.submit(_release(world, "rel-m"), world.estate, caller=world.people("mallory"))
    rid = world.submit(author="owen")  # a release author of the team
    assert world.store.get_rollout(rid) is not None


def test_an_unknown_key_or_name_is_refused_for_every_state_changing_command(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    mallory = world.people("mallory")  # a key nobody enrolled
    for act in (lambda: world.releases.abort(rid, mallory), lambda: world.releases.promote(rid, mallory),
                lambda: world.gov.record_decision(rid, "approve", caller=mallory),
                lambda: world.gov.break_glass(rid, caller=mallory, justification="x" * 40),
                lambda: world.releases.abort(rid, world.people("mallory", asserted="kim"))):
        with pytest.raises(NotAllowed, match="is not enrolled in the identities in force when rel-1 was submitted"):
            act()
    with pytest.raises(NotAllowed, match="must be signed"):
        world.releases.abort(rid, None)
    assert world.store.pending_commands(rid) == []


def test_abort_promote_and_retry_take_an_operator_of_the_service_or_a_release_manager(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    with pytest.raises(NotAllowed, match="otto may not abort rel-1: otto is an operator, but not of api"):
        world.releases.abort(rid, world.people("otto"))
    with pytest.raises(NotAllowed, match="audrey may not promote rel-1: audrey holds neither role"):
        world.releases.promote(rid, world.people("audrey"))
    with pytest.raises(NotAllowed, match="alice may not abort"):
        world.releases.abort(rid, world.people("alice"))  # the author, a release-author only
    world.releases.abort(rid, world.people("kim"))  # the on-call operator of api
    assert world.run(rid).phase.value == "rolled_back"
    with pytest.raises(NotAllowed, match="otto may not retry"):
        world.releases.retry(rid, world.people("otto"))
    world.releases.retry(rid, world.people("rita"))  # a release manager
    [command] = world.store.events_of_kind(rid, "command")
    assert command.data["actor"] == "kim" and command.data["command"] == "abort"
    [retried] = world.store.events_of_kind(rid, "retried")
    assert retried.data["actor"] == "rita" and retried.data["envelope"]["payloadType"]


def test_a_person_added_to_the_identities_file_after_submission_cannot_approve(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    later = IDENTITIES.replace("users:", "users:\n  - {id: dave, groups: [cab]}")
    (world.tmp / "identities.yaml").write_text(world.people.enrol(later))
    with pytest.raises(NotAllowed, match="not enrolled in the identities in force when rel-1 was submitted"):
        world.gov.record_decision(rid, "approve", caller=world.people("dave"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    world.run(rid, until=waiting("prod"))
    # owen, made CAB after submission, still has only his roles of then
    promoted = IDENTITIES.replace("{id: owen, groups: [team-sched]}", "{id: owen, groups: [team-sched, cab]}")
    (world.tmp / "identities.yaml").write_text(world.people.enrol(promoted))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    world.gov.record_decision(rid, "approve", caller=world.people("rita"))
    status = world.run(rid, ticks=5)
    assert "has 2 (owen, rita), 0 from CAB" in (status.pause_reason or ""), status.pause_reason


def test_an_approval_row_inserted_by_hand_is_ignored_and_reported(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    status = world.run(rid, until=waiting("prod"))
    record = world.store.get_rollout(rid)
    assert record is not None
    with world.store._engine.begin() as conn:  # the attacker with database access
        for actor, roles in (("carol", ["cab"]), ("rita", ["release-manager"])):
            conn.execute(insert(approvals).values(
                rollout_id=rid, env="prod", digest=record.digest, actor=actor, decision="approve", comment="",
                roles=roles, owned_services=[], at=world.clock.now, expires_at=None))
    status = world.run(rid, ticks=20)
    assert status.items[1].phase.value == "pending", status
    assert "has 0, 0 from CAB" in (status.pause_reason or "") and "not counted" in (status.pause_reason or "")
    assert "no signature" in (status.pause_reason or "")
    ignored = world.store.events_of_kind(rid, "record_ignored")
    assert sorted(e.data["actor"] for e in ignored) == ["carol", "rita"]  # reported once each, not per tick
    assert all("no signature" in e.data["reason"] for e in ignored)
    [row] = world.gov.waiting()  # `primum approvals` shows them as not counted
    assert [(a["actor"], "no signature" in (a["not_counted"] or "")) for a in row.approvals] == [
        ("carol", True), ("rita", True)]


def test_a_signed_approval_altered_or_unlogged_does_not_count(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    world.run(rid, until=waiting("prod"))
    world.gov.record_decision(rid, "approve", caller=world.people("carol"))
    world.gov.record_decision(rid, "approve", caller=world.people("rita"))
    carol, rita = [a for a in world.store.approvals(rid) if a.env == "prod"]
    with world.store._engine.begin() as conn:
        # carol's row now claims to be owen's (her envelope is kept): the signature is not owen's
        conn.execute(update(approvals).where(approvals.c.id == carol.id).values(actor="alice"))
        # rita's evidence entry is deleted from the log: the row alone proves nothing
        conn.execute(delete(evidence_entries).where(evidence_entries.c.event_id == rita.event_id))
    status = world.run(rid, ticks=20)
    assert status.items[1].phase.value == "pending", status
    reasons = {e.data["actor"]: e.data["reason"] for e in world.store.events_of_kind(rid, "record_ignored")}
    assert "does not verify under alice's enrolled key" in reasons["alice"], reasons
    assert "evidence entry is not in the log" in reasons["rita"], reasons


def test_a_forged_break_glass_row_opens_nothing(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    record = world.store.get_rollout(rid)
    assert record is not None
    envelope = sign_claim(Claim(rid, "break_glass", "kim", record.digest, world.clock.now),
                          world.people.key("mallory"))  # signed, but not by kim's key
    with world.store._engine.begin() as conn:
        conn.execute(insert(break_glass).values(rollout_id=rid, digest=record.digest, actor="kim",
                                                justification="x" * 30, at=world.clock.now,
                                                review_due_at=world.clock.now + 60, notified="", envelope=envelope))
    status = world.run(rid, ticks=20)
    assert status.items[0].phase.value == "pending" and "waiting for approval" in (status.pause_reason or "")
    [ignored] = world.store.events_of_kind(rid, "record_ignored")
    assert ignored.data["record"] == "break_glass" and "does not verify under kim's" in ignored.data["reason"]


def _release(world: World, rid: str) -> Path:
    from tests.controller.noop_estate import write_release

    return write_release(world.tmp, rid, ["api"])


def test_a_command_row_inserted_by_hand_is_not_obeyed(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    world.store.add_command(rid, "abort", "kim", now=world.clock.now)  # no envelope: nobody signed it
    status = world.run(rid, until=waiting("prod"))
    assert status.items[0].phase.value == "succeeded", status  # not rolled back
    [ignored] = world.store.events_of_kind(rid, "record_ignored")
    assert ignored.data["record"] == "command" and "no signature" in ignored.data["reason"]
    assert world.store.pending_commands(rid) == []  # consumed, not left to be obeyed later


def test_pause_is_signed_by_an_operator_of_the_service_and_promote_resumes_it(world: World) -> None:
    """Issue 13 point 2: `primum pause` did not exist; it is signed and role-checked like abort and promote."""
    rid = world.submit()
    with pytest.raises(NotAllowed, match="has not started; nothing to pause"):
        world.releases.pause(rid, world.people("kim"))
    world.run(rid, until=waiting("staging"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    def analysing(s: RolloutStatus) -> bool:
        step = s.items[0].current_step()
        return s.items[0].phase.value == "progressing" and step is not None and step.kind == "analyze"

    at = world.run(rid, until=analysing).items[0].step_index
    for who, why in (("otto", "otto may not pause rel-1: otto is an operator, but not of api"),
                     ("audrey", "audrey may not pause rel-1: audrey holds neither role"),
                     ("alice", "alice may not pause rel-1"),  # the author: a release-author only
                     ("mallory", "is not enrolled in the identities in force when rel-1 was submitted")):
        with pytest.raises(NotAllowed, match=why):
            world.releases.pause(rid, world.people(who))
    with pytest.raises(NotAllowed, match="must be signed"):
        world.releases.pause(rid, None)
    assert world.store.pending_commands(rid) == []
    world.store.add_command(rid, "pause", "kim", now=world.clock.now)  # by hand: nobody signed it
    status = world.run(rid, ticks=5)
    assert status.phase.value == "running", status.pause_reason
    [ignored] = world.store.events_of_kind(rid, "record_ignored")
    assert ignored.data["id"] and "no signature" in ignored.data["reason"]

    world.releases.pause(rid, world.people("kim"))  # the on-call operator of api
    status = world.run(rid, ticks=200)
    assert status.phase.value == "paused" and status.items[0].step_index == at, status.pause_reason
    assert (status.pause_reason or "").startswith(f"api in staging: paused by kim at step {at + 1}/")
    [command] = [c for c in world.store.events_of_kind(rid, "command") if c.data["command"] == "pause"]
    assert command.data["actor"] == "kim" and command.data["envelope"]["payloadType"]
    [paused] = [e for e in world.store.events_of_kind(rid, "paused") if e.data.get("by_person")]
    assert paused.data["actor"] == "kim"
    world.releases.promote(rid, world.people("rita"))  # a release manager resumes it, at the same step
    status = world.run(rid, until=waiting("prod"))
    assert status.items[0].phase.value == "succeeded"
    [resumed] = world.store.events_of_kind(rid, "resumed")
    assert resumed.message == "api in staging: resumed by rita (paused by kim)"
    assert world.store.verify_evidence().ok, world.store.verify_evidence().problem


def test_legal_holds_and_purges_are_signed_by_the_roles_that_may(world: World) -> None:
    """Issue 13 point 2: hold, unhold and purge took the actor from PRIMUM_USER. Now: a hold takes a release
    manager or platform admin, unhold and purge a platform admin, each proven by their key against the
    identities file in force now, with their signed statement in the evidence."""
    import base64
    import json

    from primum.app.evidence import EvidenceService
    from primum.core.governance.identities import load_identities

    rid = world.submit()
    evidence = EvidenceService(world.store, clock=world.clock)
    ids = world.estate.governance.identities
    for who, why in (("audrey", "audrey may not evidence hold: it takes platform-admin or release-manager"),
                     ("kim", "kim may not evidence hold"), ("mallory", "is not enrolled in the identities file")):
        with pytest.raises(NotAllowed, match=why):
            evidence.hold(rid, "matter LIT-2026-014", caller=world.people(who), identities=ids)
    with pytest.raises(NotAllowed, match="must be signed"):
        evidence.hold(rid, "matter LIT-2026-014", caller=None, identities=ids)
    with pytest.raises(NotAllowed, match="no identities file"):
        evidence.hold(rid, "matter LIT-2026-014", caller=world.people("rita"), identities=None)
    with pytest.raises(NotAllowed, match="does not match your key"):
        evidence.hold(rid, "matter LIT-2026-014", caller=world.people("rita", asserted="pat"), identities=ids)
    assert world.store.events_of_kind(rid, "legal_hold") == []
    evidence.hold(rid, "matter LIT-2026-014", caller=world.people("rita"), identities=ids)
    [held] = world.store.events_of_kind(rid, "legal_hold")
    record = world.store.get_rollout(rid)
    assert record is not None and held.data["actor"] == "rita"
    current = load_identities(str(ids))
    assert verify_signed(Claim(rid, "hold", "rita", record.digest, held.at), held.data["envelope"], current).valid

    with pytest.raises(NotAllowed, match="rita may not evidence unhold: it takes platform-admin"):
        evidence.unhold(rid, caller=world.people("rita"), identities=ids)
    assert evidence.unhold(rid, caller=world.people("pat"), identities=ids) == 1
    [released] = world.store.events_of_kind(rid, "legal_hold_released")
    assert verify_signed(Claim(rid, "unhold", "pat", record.digest, released.at), released.data["envelope"],
                         current).valid

    with pytest.raises(NotAllowed, match="rita may not evidence purge: it takes platform-admin"):
        evidence.purge("0d", allow_short=True, caller=world.people("rita"), identities=ids)
    with pytest.raises(NotAllowed, match="must be signed"):
        evidence.purge("0d", allow_short=True, identities=ids)
    world.clock.now += 60
    assert evidence.purge("0d", allow_short=True, dry_run=True)  # a dry run changes nothing: no key
    purged = evidence.purge("0d", allow_short=True, caller=world.people("pat"), identities=ids)
    assert purged
    [entry] = [e for e in world.store.evidence_entries() if e.kind == "purge"]
    assert entry.envelope is not None
    statement = json.loads(base64.b64decode(json.loads(entry.envelope)["payload"]))
    data = statement["predicate"]["data"]
    root = statement["subject"][0]["digest"]["sha256"]
    claim = Claim("", "purge", "pat", f"sha256:{root}", world.clock.now, subject=statement["subject"][0]["name"])
    assert data["actor"] == "pat" and verify_signed(claim, data["envelope"], current).valid
    assert world.store.verify_evidence().ok, world.store.verify_evidence().problem



def test_evidence_verify_names_a_break_glass_row_whose_envelope_was_swapped(world: World) -> None:
    """Issue 13 point 3: each break-glass row's own signature is checked by `evidence verify`, not only that
    the row has a statement: kim's break-glass envelope replaced by her (validly logged) abort command's."""
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    use = world.gov.break_glass(rid, caller=world.people("kim"), justification="booking is down; this is the fix")
    world.releases.abort(rid, world.people("kim"))
    assert world.store.verify_evidence().ok, world.store.verify_evidence().problem
    [command] = world.store.events_of_kind(rid, "command")
    with world.store._engine.begin() as conn:
        conn.execute(update(break_glass).where(break_glass.c.id == use.id).values(envelope=command.data["envelope"]))
    result = world.store.verify_evidence()
    assert not result.ok
    assert (result.problem or "").startswith(f"break_glass row {use.id} (kim on release {rid} at "), result.problem
    assert "its signature does not verify: the record differs from what kim signed (decision)" in (
        result.problem or ""), result.problem
