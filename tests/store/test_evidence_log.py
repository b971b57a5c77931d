"""The durable evidence log: every event signed and appended in its own transaction, checkpoints,
tamper detection naming the first bad entry, ordering across replicas, key rotation, purge and hold."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update

from primum.adapters.evidence.keys import load_public_keyring, rotate_keyring
from primum.adapters.store.evidence import verifier_keys
from primum.adapters.store.records import NewEvent, NewRollout
from primum.adapters.store.repository import RolloutNotFound, Store
from primum.adapters.store.tables import evidence_entries
from primum.core.evidence import dsse
from primum.core.evidence.checkpoint import open_checkpoint
from primum.core.evidence.statements import PRIMUM_EVENT_V1, SVR_V0_1
from primum.core.evidence.tlog import root

T0 = 1_700_000_000.0
ART = "sha256:" + "1" * 64


def rollout(rid: str) -> NewRollout:
    return NewRollout(
        id=rid, digest="sha256:" + "a" * 64, estate_name="st-marys", estate_digest="sha256:" + "e" * 64,
        services=("ehr-api",), estate={"name": "st-marys"},
        release={"release": {"id": rid, "services": {"ehr-api": {"digest": ART, "version": "1.2.0",
                                                                  "artifact": "x"}}}},
        status={}, phase="pending")


def events(n: int, kind: str = "step") -> list[NewEvent]:
    return [NewEvent(kind=kind, message=f"{kind} {i}", env="staging", service="ehr-api", data={"i": i})
            for i in range(n)]


def raw(store: Store, sql: str, **params: Any) -> None:
    engine = create_engine(store.url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def test_every_event_is_a_signed_statement_in_the_log(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(3), T0 + 1)
    store.add_events("rel-1", [NewEvent(kind="policy_decision", message="policy denies", env="prod",
                                        data={"decision": {"allowed": False, "deny": ["no"]}})], T0 + 2)
    entries = store.evidence_entries("rel-1")
    assert [e.index for e in entries] == [0, 1, 2, 3]
    assert [e.event_id for e in entries] == [e.id for e in store.events("rel-1")]
    keyring = store.evidence.keys.keyring()
    statements = [json.loads(dsse.verify(e.envelope or b"", keyring)) for e in entries]
    assert [s["predicateType"] for s in statements] == [PRIMUM_EVENT_V1] * 3 + [SVR_V0_1]
    assert statements[0]["subject"] == [
        {"name": "release:rel-1", "digest": {"sha256": "a" * 64}},
        {"name": "ehr-api@1.2.0", "digest": {"sha256": "1" * 64}}]
    assert statements[0]["predicate"]["message"] == "step 0"
    # SVR: a denial never lists the PASSED property
    assert statements[3]["predicate"]["properties"] == []
    assert statements[3]["predicate"]["primumGate"]["outcome"] == "deny"

    origin, latest, hashes = store.evidence_snapshot()
    assert latest is not None and latest.size == 4 and latest.key_id == keyring.current.keyid
    head = open_checkpoint(latest.note, verifier_keys(origin, keyring), origin=origin)
    assert head.root_hash == root(hashes)
    assert store.verify_evidence().ok


def test_an_event_for_a_missing_rollout_writes_no_evidence(store: Store) -> None:
    with pytest.raises(RolloutNotFound):
        store.add_events("nope", events(1), T0)
    assert store.evidence_entries() == []
    assert store.verify_evidence().ok


@pytest.mark.parametrize("tamper, kind", [
    ("UPDATE evidence_entries SET envelope = :junk WHERE idx = 4", "modified"),
    ("DELETE FROM evidence_entries WHERE idx = 4", "missing"),
    ("UPDATE evidence_entries SET leaf_hash = :hash, envelope = :junk WHERE idx = 4", "signature"),
])
def test_tampering_names_the_first_bad_entry(store: Store, tamper: str, kind: str) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    for i in range(4):
        store.add_events("rel-1", events(2), T0 + i)
    assert store.verify_evidence().ok
    junk = json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                       "signatures": [{"keyid": "", "sig": "AAAA"}]}).encode()
    from primum.core.evidence.tlog import leaf_hash
    raw(store, tamper, junk=junk, hash=leaf_hash(junk))
    result = store.verify_evidence()
    assert not result.ok
    assert result.bad_index == 4, result.problem
    assert "entry 4" in (result.problem or "")
    assert kind in (result.problem or "")


def test_reordering_and_truncation_are_detected(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    for i in range(3):
        store.add_events("rel-1", events(2), T0 + i)
    raw(store, "UPDATE evidence_entries SET idx = 100 WHERE idx = 2")
    raw(store, "UPDATE evidence_entries SET idx = 2 WHERE idx = 3")
    raw(store, "UPDATE evidence_entries SET idx = 3 WHERE idx = 100")
    result = store.verify_evidence()
    assert not result.ok and result.bad_index == 2, result.problem
    raw(store, "DELETE FROM evidence_entries WHERE idx >= 2")
    result = store.verify_evidence()
    assert not result.ok and result.bad_index == 2, result.problem


def test_a_forged_checkpoint_is_detected(store: Store, tmp_path: Path) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(2), T0)
    raw(store, "UPDATE evidence_checkpoints SET note = replace(note, '\n2\n', '\n3\n')")
    result = store.verify_evidence()
    assert not result.ok and "checkpoint" in (result.problem or "")


def test_rotation_old_entries_still_verify(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    store = Store(f"sqlite:///{tmp_path / 'p.db'}", keys=keys)
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", events(2), T0)
    old = store.evidence.keys.keyring().current.keyid
    rotate_keyring(keys)  # another process rotates: the store picks it up at its next append
    store.add_events("rel-1", events(2), T0 + 1)
    entries = store.evidence_entries("rel-1")
    signers = [json.loads(e.envelope or b"")["signatures"][0]["keyid"] for e in entries]
    assert signers[:2] == [old, old] and signers[2] != old and signers[2] == signers[3]
    assert store.verify_evidence(load_public_keyring(keys)).ok
    store.close()


def test_purge_keeps_the_log_verifiable_and_respects_legal_hold(store: Store) -> None:
    for rid in ("rel-old", "rel-held"):
        store.create_rollout(rollout(rid), T0)
        store.add_events(rid, events(2), T0)
    store.add_events("rel-old", events(1, "promoted"), T0 + 10)
    store.add_legal_hold("rel-held", reason="litigation LIT-7", actor="counsel", at=T0 + 20)
    assert store.purge_evidence(before=T0 + 5, now=T0 + 30, dry_run=True) == [0, 1]
    assert store.purge_evidence(before=T0 + 5, now=T0 + 30) == [0, 1]
    entries = store.evidence_entries()
    assert [e.envelope is None for e in entries] == [True, True, False, False, False]
    # the purged events are gone from the event table too; the held release keeps its own
    assert [e.kind for e in store.events("rel-old")] == ["promoted"]
    assert len(store.events("rel-held")) == 2
    result = store.verify_evidence()
    assert result.ok and result.purged == 2
    # a changed leaf hash of a purged entry is still caught by the signed roots
    raw(store, "UPDATE evidence_entries SET leaf_hash = :h WHERE idx = 0", h=b"\x00" * 32)
    assert not store.verify_evidence().ok
    raw(store, "UPDATE evidence_entries SET leaf_hash = :h WHERE idx = 0", h=entries[0].leaf_hash)
    assert store.release_legal_hold("rel-held", actor="counsel", at=T0 + 40) == 1
    assert store.purge_evidence(before=T0 + 5, now=T0 + 50) == [2, 3]


def test_promotion_records_follow_item_succeeded(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", [NewEvent(kind="item_succeeded", message="ok", env="staging", service="ehr-api")], T0)
    assert store.passed_environments("ehr-api", ART) == {"staging"}
    assert store.passed_environments("ehr-api", "sha256:" + "2" * 64) == set()


@pytest.mark.postgres
def test_replicas_append_in_one_total_order(postgres_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    stores = [Store(postgres_url, keys=keys) for _ in range(3)]
    for i, s in enumerate(stores):
        s.create_rollout(rollout(f"rel-{i}"), T0)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(20):
                stores[i].add_events(f"rel-{i}", events(2), T0 + n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entries = stores[0].evidence_entries()
    assert [e.index for e in entries] == list(range(120))
    assert stores[0].verify_evidence().ok
    engine = create_engine(stores[0].url)
    with engine.begin() as conn:
        conn.execute(update(evidence_entries).where(evidence_entries.c.idx == 77).values(envelope=b"{}"))
    engine.dispose()
    assert stores[1].verify_evidence().bad_index == 77
    for s in stores:
        s.close()


def test_non_finite_numbers_in_a_report_become_protobuf_json_strings(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    report = {"outcome": "Successful", "reason": "ok", "ratio": float("nan"), "upper": float("inf")}
    store.add_events("rel-1", [NewEvent(kind="analysis", message="m", data={"report": report})], T0)
    [entry] = store.evidence_entries("rel-1")
    stmt = json.loads(dsse.verify(entry.envelope or b"", store.evidence.keys.keyring()))
    gate = stmt["predicate"]["primumGate"]
    assert gate["passed"] and gate["data"]["report"]["ratio"] == "NaN"
    assert gate["data"]["report"]["upper"] == "Infinity"
    assert store.events("rel-1")[0].data["report"]["ratio"] == "NaN"  # the event row agrees (PostgreSQL has no NaN)


def test_property_any_single_tampering_is_detected_at_its_entry(tmp_path: Path) -> None:
    """Hypothesis picks an entry and a way to tamper with it; verification must fail and name it."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    store = Store(f"sqlite:///{tmp_path / 'p.db'}", keys=tmp_path / "keys")
    store.create_rollout(rollout("rel-1"), T0)
    for i in range(6):
        store.add_events("rel-1", events(5), T0 + i)
    original = {e.index: e for e in store.evidence_entries()}
    assert store.verify_evidence().ok
    engine = create_engine(store.url)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(index=st.integers(0, 29), how=st.sampled_from(["flip", "delete", "swap", "truncate", "rehash"]),
           offset=st.integers(0, 10_000), other=st.integers(0, 29))
    def check(index: int, how: str, offset: int, other: int) -> None:
        entry = original[index]
        envelope = entry.envelope or b""
        with engine.begin() as conn:
            if how == "flip":
                pos = offset % len(envelope)
                changed = envelope[:pos] + bytes([envelope[pos] ^ 0x01]) + envelope[pos + 1:]
                conn.execute(update(evidence_entries).where(evidence_entries.c.idx == index).values(envelope=changed))
                expected = index
            elif how == "rehash":  # the attacker also rewrites the recorded leaf hash
                from primum.core.evidence.tlog import leaf_hash
                changed = envelope.replace(b'"sig":"', b'"sig":"A', 1)
                conn.execute(update(evidence_entries).where(evidence_entries.c.idx == index)
                             .values(envelope=changed, leaf_hash=leaf_hash(changed)))
                expected = index
            elif how == "delete":
                conn.execute(evidence_entries.delete().where(evidence_entries.c.idx == index))
                expected = index
            elif how == "truncate":
                conn.execute(evidence_entries.delete().where(evidence_entries.c.idx >= index))
                expected = index
            else:
                j = other if other != index else (index + 1) % 30
                a, b = sorted((index, j))
                conn.execute(update(evidence_entries).where(evidence_entries.c.idx == a).values(idx=-1))
                conn.execute(update(evidence_entries).where(evidence_entries.c.idx == b).values(idx=a))
                conn.execute(update(evidence_entries).where(evidence_entries.c.idx == -1).values(idx=b))
                expected = a
        try:
            result = store.verify_evidence()
            assert not result.ok, (how, index)
            # the first bad entry is named; for a swap within one checkpoint's batch the range starts there
            assert result.bad_index is not None and result.bad_index <= expected, (how, index, result.problem)
            assert result.bad_index >= expected - expected % 5, (how, index, result.problem)
        finally:
            with engine.begin() as conn:
                conn.execute(evidence_entries.delete())
                conn.execute(evidence_entries.insert(), [{
                    "idx": e.index, "rollout_id": e.rollout_id, "artifact": e.artifact, "kind": e.kind,
                    "predicate_type": e.predicate_type, "at": e.at, "event_id": e.event_id, "summary": None,
                    "envelope": e.envelope, "leaf_hash": e.leaf_hash, "purged_at": None} for e in original.values()])
            assert store.verify_evidence().ok

    check()
    engine.dispose()
    store.close()


def test_consistency_proves_the_log_extends_a_kept_checkpoint_until_it_is_rewritten(store: Store) -> None:
    from primum.adapters.store.evidence import ConsistencyError
    from primum.core.evidence.tlog import leaf_hash, verify_consistency

    store.create_rollout(rollout("rel-1"), T0)
    seen = []  # every checkpoint, as an auditor looking after each batch would have kept it
    for i in range(3):
        store.add_events("rel-1", events(3), T0 + i)  # batches of 3: checkpoints at 3, 6, 9
        seen.append(store.evidence_checkpoint()[1])
    origin, kept_row = store.evidence_checkpoint()
    assert kept_row is not None and kept_row.size == 9
    vkeys = verifier_keys(origin, store.evidence.keys.keyring())
    kept = open_checkpoint(kept_row.note, vkeys, origin=origin)  # what the auditor keeps: the signed note
    for i in range(4):
        store.add_events("rel-1", events(2), T0 + 10 + i)  # the log grows to 17
        seen.append(store.evidence_checkpoint()[1])

    current, proof = store.consistency(kept.size)
    new = open_checkpoint(current.note, vkeys, origin=origin)
    assert new.size == 17 and proof
    assert verify_consistency(kept.size, new.size, kept.root_hash, new.root_hash, proof)
    assert store.consistency(new.size)[1] == []  # the same tree: nothing to prove
    assert [c.size for c in seen if c] == [3, 6, 9, 11, 13, 15, 17]
    for c in seen:  # every earlier checkpoint is extended too
        assert c is not None
        old = open_checkpoint(c.note, vkeys, origin=origin)
        assert verify_consistency(old.size, new.size, old.root_hash, new.root_hash, store.consistency(old.size)[1])
    with pytest.raises(ConsistencyError, match="fewer than the 18"):
        store.consistency(18)
    with pytest.raises(ValueError, match="old_size"):
        store.consistency(-1)

    # rewrite entry 4 (below the kept size) and its recorded leaf hash, as an attacker without the key would
    junk = json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                       "signatures": [{"keyid": "", "sig": "AAAA"}]}).encode()
    raw(store, "UPDATE evidence_entries SET leaf_hash = :hash, envelope = :junk WHERE idx = 4",
        junk=junk, hash=leaf_hash(junk))
    current, proof = store.consistency(kept.size)
    assert current.size == new.size
    assert not verify_consistency(kept.size, new.size, kept.root_hash, new.root_hash, proof)

    # an entry deleted below the newest checkpoint: no proof can be given at all
    raw(store, "DELETE FROM evidence_entries WHERE idx = 12")
    with pytest.raises(ConsistencyError, match="entries were deleted"):
        store.consistency(kept.size)


def test_consistency_of_an_empty_log_is_an_error(store: Store) -> None:
    from primum.adapters.store.evidence import ConsistencyError

    assert store.evidence_checkpoint()[1] is None
    with pytest.raises(ConsistencyError, match="empty"):
        store.consistency(0)
