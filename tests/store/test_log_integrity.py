"""Issue 13 point 3: `evidence verify` compares the store's rows with the log, names a deleted entry
exactly, and catches a wipe or a rollback of the whole log against a witness kept outside the database.

Each attack here passed `verify_evidence()` (or was reported only as a root mismatch over a range)
before the row check and the witness existed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from primum.adapters.evidence.witness import CHECKPOINT_FILE, read_note, unsigned_head
from primum.adapters.store.records import NewEvent, NewRollout
from primum.adapters.store.repository import Store
from primum.core.evidence.tlog import CompactRange
from primum.core.governance.identities import identities_digest
from primum.core.governance.signatures import Claim, sign_claim, signed_data
from tests.people import People
from tests.store.test_evidence_log import T0, events
from tests.store.test_evidence_log import rollout as plain_rollout

PEOPLE = People()


def rollout(rid: str) -> NewRollout:
    """A release that recorded its identities at submit (carol, a CAB member with an enrolled key)."""
    plain = plain_rollout(rid)
    document = {"apiVersion": "primum/v1", "kind": "Identities", "groups": {},
                "users": [{"id": "carol", "roles": ["cab"], "keys": [PEOPLE.line("carol")]}]}
    recorded = {"file": "identities.yaml", "digest": identities_digest(document), "document": document}
    return NewRollout(**{**plain.__dict__, "release": {**plain.release, "identities": recorded}})


def raw(store: Store, sql: str, **params: Any) -> None:
    engine = create_engine(store.url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


@pytest.fixture
def witnessed(db_url: str, tmp_path: Path) -> Iterator[Store]:
    """A store that keeps each checkpoint in a witness directory too, as `primum` does by default."""
    store = Store(db_url, keys=tmp_path / "keys", witness_dir=tmp_path / "witness")
    yield store
    store.close()


def approve(store: Store, rid: str, actor: str, at: float, env: str = "staging") -> int:
    """An approval as `GovernanceService.record_decision` records it: the row, then its event."""
    digest = "sha256:" + "a" * 64
    envelope = sign_claim(Claim(rid, "approve", actor, digest, at, env=env), PEOPLE.key(actor))
    event = NewEvent(kind="approval", message=f"{actor} (cab) approved {rid}", env=env,
                     data={"actor": actor, "roles": ["cab"], "digest": digest, "comment": "ok",
                           "expires_at": at + 3600, **signed_data(envelope)})
    return store.add_approval(rid, env=env, digest=digest, actor=actor, decision="approve", comment="ok",
                              roles=["cab"], owned_services=[], at=at, expires_at=at + 3600, envelope=envelope,
                              event=event)


# ------------------------------------------------------------------------- rows without entries


def test_an_approvals_row_inserted_by_hand_fails_verify_naming_it(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    approve(store, "rel-1", "carol", T0 + 1)
    assert store.verify_evidence().ok, store.verify_evidence().problem
    # the forged row of the issue: roles cab and release-manager, no statement in the log
    raw(store, "INSERT INTO approvals (rollout_id, env, digest, actor, decision, comment, roles, owned_services, at,"
               " expires_at) VALUES ('rel-1', 'prod', :d, 'mallory', 'approve', '', :r, '[]', :at, :exp)",
        d="sha256:" + "a" * 64, r='["cab", "release-manager"]', at=T0 + 2, exp=T0 + 9999)
    result = store.verify_evidence()
    assert not result.ok
    assert "approvals row 2 (mallory approve of release rel-1 for prod" in (result.problem or ""), result.problem
    assert "no signed statement in the log" in (result.problem or "")


def test_an_approvals_row_changed_by_hand_fails_verify(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    approve(store, "rel-1", "carol", T0 + 1)
    raw(store, "UPDATE approvals SET env = 'prod'")
    result = store.verify_evidence()
    assert not result.ok and "approvals row 1 (carol approve of release rel-1 for prod" in (result.problem or "")


def test_a_copied_approval_counts_once(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    approve(store, "rel-1", "carol", T0 + 1)
    raw(store, "INSERT INTO approvals (rollout_id, env, digest, actor, decision, comment, roles, owned_services, at,"
               " expires_at) SELECT rollout_id, env, digest, actor, decision, comment, roles, owned_services, at,"
               " expires_at FROM approvals")
    result = store.verify_evidence()
    assert not result.ok and "approvals row 2" in (result.problem or "")


def test_an_approvals_row_whose_envelope_was_swapped_fails_verify_naming_it(store: Store) -> None:
    """Issue 13 point 3: verify checked that rows have log entries, not the rows' own signatures. Carol's
    staging approval's envelope copied onto her (also validly logged) prod approval: both rows keep their
    statements in the log, but the prod row's envelope is not a signature over it."""
    store.create_rollout(rollout("rel-1"), T0)
    approve(store, "rel-1", "carol", T0 + 1, env="staging")
    approve(store, "rel-1", "carol", T0 + 2, env="prod")
    assert store.verify_evidence().ok, store.verify_evidence().problem
    raw(store, "UPDATE approvals SET envelope = (SELECT envelope FROM approvals WHERE id = 1) WHERE id = 2")
    result = store.verify_evidence()
    assert not result.ok
    assert result.problem == ("approvals row 2 (carol approve of release rel-1 for prod at 2023-11-14T22:13:22Z): "
                              "its signature does not verify: the record differs from what carol signed (at, env); "
                              "it counts for nothing"), result.problem


def test_an_approvals_row_signed_by_another_key_or_unsigned_fails_verify(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    row = approve(store, "rel-1", "carol", T0 + 1)
    forged = sign_claim(Claim("rel-1", "approve", "carol", "sha256:" + "a" * 64, T0 + 1, env="staging"),
                        PEOPLE.key("mallory"))  # the same fields, signed by a key carol never enrolled
    import json

    raw(store, "UPDATE approvals SET envelope = :e WHERE id = :id", e=json.dumps(forged), id=row)
    result = store.verify_evidence()
    assert not result.ok and "approvals row 1 (carol approve" in (result.problem or "")
    assert "does not verify under carol's enrolled key(s)" in (result.problem or ""), result.problem
    raw(store, "UPDATE approvals SET envelope = NULL")
    result = store.verify_evidence()
    assert not result.ok and "approvals row 1" in (result.problem or "") and "no signature" in (result.problem or "")


def test_an_approvals_row_whose_envelope_is_valid_but_not_the_logged_one_fails_verify(store: Store) -> None:
    """The same claim signed again by carol (a valid signature over the row's fields) is still not the
    envelope its evidence entry logged: the row was changed after it was recorded."""
    store.create_rollout(rollout("rel-1"), T0)
    row = approve(store, "rel-1", "carol", T0 + 1)
    import json

    from primum.core.evidence.dsse import sign

    claim = Claim("rel-1", "approve", "carol", "sha256:" + "a" * 64, T0 + 1, env="staging")
    resigned = sign(json.dumps(claim.statement(), indent=1).encode(),  # the same fields, other bytes
                    "application/vnd.primum.decision+json", PEOPLE.key("carol"))
    raw(store, "UPDATE approvals SET envelope = :e WHERE id = :id", e=json.dumps(resigned.to_dict()), id=row)
    result = store.verify_evidence()
    assert not result.ok
    assert result.problem == ("approvals row 1 (carol approve of release rel-1 for staging at "
                              "2023-11-14T22:13:21Z): its envelope is not the one its evidence entry logged"), \
        result.problem


def test_event_and_break_glass_rows_without_entries_fail_verify(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(3), T0)
    raw(store, "INSERT INTO rollout_events (rollout_id, at, kind, env, service, message, data) "
               "VALUES ('rel-1', :at, 'item_succeeded', 'prod', 'ehr-api', 'forged', '{}')", at=T0 + 5)
    result = store.verify_evidence()
    assert not result.ok
    assert result.problem == ("event row 4 (item_succeeded of release rel-1 at 2023-11-14T22:13:25Z) has no entry "
                              "in the log: it was not recorded by primum, or its entry was deleted")
    raw(store, "DELETE FROM rollout_events WHERE id = 4")
    assert store.verify_evidence().ok
    raw(store, "INSERT INTO break_glass (rollout_id, digest, actor, justification, at, review_due_at, notified) "
               "VALUES ('rel-1', :d, 'kim', 'a forged emergency, for the test', :at, :due, 'none')",
        d="sha256:" + "a" * 64, at=T0 + 6, due=T0 + 9999)
    result = store.verify_evidence()
    assert not result.ok and "break_glass row 1 (kim on release rel-1" in (result.problem or "")


def test_an_event_row_changed_after_it_was_recorded_fails_verify(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(3), T0)
    raw(store, "UPDATE rollout_events SET message = 'all fine' WHERE id = 2")
    result = store.verify_evidence()
    assert not result.ok
    assert "event row 2 (step of release rel-1 at 2023-11-14T22:13:20Z) differs from its log entry 1" in (
        result.problem or "")


def test_purged_statements_still_vouch_for_their_rows(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    approve(store, "rel-1", "carol", T0 + 1)
    store.add_events("rel-1", events(2), T0 + 100)
    assert store.purge_evidence(before=T0 + 50, now=T0 + 200) == [0]
    result = store.verify_evidence()
    assert result.ok, result.problem
    assert result.purged == 1 and result.rows_checked == 3  # two events and the approval


# ------------------------------------------------------------------------- a missing entry, named exactly


def test_a_deleted_entry_inside_one_batch_is_named_not_a_root_mismatch(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(20), T0)  # one batch: one checkpoint at size 20
    raw(store, "DELETE FROM evidence_entries WHERE idx = 17")
    result = store.verify_evidence()
    assert not result.ok and result.bad_index == 17
    assert result.problem == "entry 17 is missing (entries 16 and 18 are present)"
    raw(store, "DELETE FROM evidence_entries WHERE idx IN (3, 4, 19)")
    result = store.verify_evidence()
    assert result.bad_index == 3
    assert result.problem == ("entries 3 to 4 are missing (entries 2 and 5 are present); entry 17 is missing "
                              "(entries 16 and 18 are present); entry 19 is missing (entry 18 is present; the log "
                              "head says 20 entries)")
    # the event rows of the deleted entries are named too
    assert any("event row 18 (step of release rel-1" in p for p in result.problems)


# ------------------------------------------------------------------------- wipe and rollback, against a witness


def _rollback_to(store: Store, size: int) -> None:
    """What restoring an older backup does: entries, checkpoints, head and events as they were at ``size``."""
    from primum.adapters.store.evidence import EvidenceLog

    with store._reader.connect() as conn:
        hashes = EvidenceLog.leaf_hashes(conn, size)
    tree = CompactRange()
    tree.extend(hashes)
    raw(store, "DELETE FROM rollout_events WHERE id IN (SELECT event_id FROM evidence_entries WHERE idx >= :n)",
        n=size)
    raw(store, "DELETE FROM evidence_entries WHERE idx >= :n", n=size)
    raw(store, "DELETE FROM evidence_checkpoints WHERE size > :n", n=size)
    raw(store, "UPDATE evidence_head SET size = :n, nodes = :nodes", n=size,
        nodes=" ".join(h.hex() for h in tree.nodes))


def test_every_append_batch_keeps_its_checkpoint_in_the_witness(witnessed: Store, tmp_path: Path) -> None:
    witnessed.create_rollout(rollout("rel-1"), T0)
    for i in range(3):
        witnessed.add_events("rel-1", events(2), T0 + i)
        note = read_note(tmp_path / "witness")
        assert note is not None and unsigned_head(note).size == 2 * (i + 1)
        assert note == witnessed.evidence_checkpoint()[1].note  # type: ignore[union-attr]
    assert not [p for p in (tmp_path / "witness").iterdir() if p.name.endswith(".tmp")]
    result = witnessed.verify_evidence()
    assert result.ok and result.witnesses == (f"{tmp_path / 'witness'}: size 6",)


def test_a_wiped_log_fails_verify(witnessed: Store) -> None:
    witnessed.create_rollout(rollout("rel-1"), T0)
    for i in range(3):
        witnessed.add_events("rel-1", events(2), T0 + i)
    raw(witnessed, "DELETE FROM evidence_entries")
    raw(witnessed, "DELETE FROM evidence_checkpoints")
    raw(witnessed, "UPDATE evidence_head SET size = 0, nodes = ''")
    result = witnessed.verify_evidence()
    assert not result.ok
    assert result.problem is not None and result.problem.startswith(
        "the log was wiped: it is empty but the witness ") and "holds a signed checkpoint at size 6" in result.problem
    # the releases' event rows still name what the log lost
    assert any(p.startswith("event row 1 (step of release rel-1") for p in result.problems)
    # a wipe of the event rows too leaves the witness to tell
    raw(witnessed, "DELETE FROM rollout_events")
    assert witnessed.verify_evidence().problems[0].startswith("the log was wiped")


def test_a_wipe_without_a_witness_is_still_caught_by_the_rows(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(2), T0)
    raw(store, "DELETE FROM evidence_entries")
    raw(store, "DELETE FROM evidence_checkpoints")
    raw(store, "UPDATE evidence_head SET size = 0, nodes = ''")
    result = store.verify_evidence()
    assert not result.ok and "event row 1 (step of release rel-1" in (result.problem or "")


def test_a_rolled_back_log_fails_verify_and_the_witness_is_not_moved_onto_a_fork(
        witnessed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    witnessed.create_rollout(rollout("rel-1"), T0)
    for i in range(4):
        witnessed.add_events("rel-1", events(2), T0 + i)
    _rollback_to(witnessed, 4)  # restore "an earlier checkpoint"
    result = witnessed.verify_evidence()
    assert not result.ok
    assert result.problem is not None and result.problem.startswith("the log was rolled back: it has 4 entries but "
                                                                     "the witness ")
    assert result.problem.endswith("holds a signed checkpoint at size 8; entries 4 to 7 are gone")
    # the log goes on from the restored copy, past the witnessed size: a fork, which the witness refuses
    with caplog.at_level(logging.ERROR, logger="primum.evidence.witness"):
        for i in range(3):
            witnessed.add_events("rel-1", [NewEvent(kind="step", message=f"other {i}")] * 2, T0 + 10 + i)
    held = unsigned_head(read_note(tmp_path / "witness") or "")
    assert held.size == 8  # never moved backwards nor onto the other tree
    assert any("not updated" in r.getMessage() for r in caplog.records)
    result = witnessed.verify_evidence()
    assert not result.ok and result.problem is not None
    assert result.problem.startswith("the log was rewritten (forked): its tree at size 8 is not the root the "
                                     "witness")


def test_a_witness_set_up_late_is_reported_with_the_fix(store: Store, tmp_path: Path) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(2), T0)
    result = store.verify_evidence(witness_dirs=[tmp_path / "elsewhere"])
    assert not result.ok and "holds no checkpoint while the log has 2 entries" in (result.problem or "")
    assert f"primum evidence witness --dir {tmp_path / 'elsewhere'}" in (result.problem or "")


def test_an_unreadable_witness_copy_fails_closed(witnessed: Store, tmp_path: Path) -> None:
    witnessed.create_rollout(rollout("rel-1"), T0)
    witnessed.add_events("rel-1", events(2), T0)
    (tmp_path / "witness" / CHECKPOINT_FILE).write_text("origin\n2\nnot base64\n\n— x AAAA\n")
    result = witnessed.verify_evidence()
    assert not result.ok and "does not verify with the log's keys" in (result.problem or "")


def test_a_lagging_witness_catches_up_after_another_replica_s_appends(witnessed: Store, db_url: str,
                                                                    tmp_path: Path) -> None:
    """A replica without this witness directory appends; the next append here checks the gap and moves on."""
    witnessed.create_rollout(rollout("rel-1"), T0)
    witnessed.add_events("rel-1", events(2), T0)
    other = Store(db_url, keys=tmp_path / "keys")  # e.g. a controller on another host
    try:
        other.add_events("rel-1", events(3), T0 + 1)
    finally:
        other.close()
    assert unsigned_head(read_note(tmp_path / "witness") or "").size == 2
    witnessed.add_events("rel-1", events(1), T0 + 2)
    assert unsigned_head(read_note(tmp_path / "witness") or "").size == 6
    assert witnessed.verify_evidence().ok


def test_verify_while_a_controller_appends_sees_one_snapshot(db_url: str, tmp_path: Path) -> None:
    """Rows and log are read in one snapshot: an event committed meanwhile is never a row without entry."""
    import threading

    writer = Store(db_url, keys=tmp_path / "keys")
    reader = Store(db_url, keys=tmp_path / "keys")
    writer.create_rollout(rollout("rel-1"), T0)
    writer.add_events("rel-1", events(2), T0)
    stop = threading.Event()

    def append() -> None:
        i = 0
        while not stop.is_set():
            writer.add_events("rel-1", events(1), T0 + i)
            i += 1

    thread = threading.Thread(target=append)
    thread.start()
    try:
        results = [reader.verify_evidence() for _ in range(8)]
    finally:
        stop.set()
        thread.join()
        writer.close()
        reader.close()
    assert all(r.ok for r in results), [r.problem for r in results if not r.ok]


def test_an_unwritable_witness_never_fails_an_append_but_fails_verify(db_url: str, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    store = Store(db_url, keys=tmp_path / "keys", witness_dir=blocked)
    try:
        with caplog.at_level(logging.ERROR, logger="primum.evidence.witness"):
            store.create_rollout(rollout("rel-1"), T0)
            for i in range(3):
                store.add_events("rel-1", events(1), T0 + i)  # committed whatever the witness says
        assert len(store.events("rel-1")) == 3
        assert len([r for r in caplog.records if "cannot keep the checkpoint" in r.getMessage()]) == 1  # once
        result = store.verify_evidence()
        assert not result.ok and str(blocked) in (result.problem or "")
    finally:
        store.close()
