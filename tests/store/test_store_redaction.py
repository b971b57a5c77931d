"""The store redacts every event it writes, whoever the caller is: ``add_events``, ``persist`` and ``reset``
are given raw events (no caller-side redaction) and neither the event rows nor the signed statements in the
evidence log hold the secret or the PHI-like value. All values are obviously fake."""

from __future__ import annotations

import json
from typing import Any

from primum.adapters.store.events import redact_events
from primum.adapters.store.records import EventRecord, NewEvent, NewRollout
from primum.adapters.store.repository import Store
from primum.core.evidence import dsse

T0 = 1_700_000_000.0
TTL = 30.0
FAKE_AWS = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key, not a real one
FAKE_MRN = "SYN00012345"
FAKE_BEARER = "abc123def456ghi"
LEAKS = (FAKE_AWS, FAKE_MRN, FAKE_BEARER, "hunter2")


def rollout(rid: str) -> NewRollout:
    return NewRollout(
        id=rid, digest="sha256:" + "a" * 64, estate_name="st-marys", estate_digest="sha256:" + "e" * 64,
        services=("ehr-api",), estate={"name": "st-marys"},
        release={"release": {"id": rid, "services": {"ehr-api": {"digest": "sha256:" + "1" * 64,
                                                                  "version": "1.2.0", "artifact": "x"}}}},
        status={}, phase="pending")


def dirty(kind: str) -> NewEvent:
    return NewEvent(kind=kind, env="staging", service="ehr-api",
                    message=f"deploy with key {FAKE_AWS}; Authorization: Bearer {FAKE_BEARER}",
                    data={"comment": f"patient MRN: {FAKE_MRN} saw the error", "password": "hunter2",
                          "actor": "cab-chair"})


def signed_statements(store: Store, rid: str) -> list[dict[str, Any]]:
    keyring = store.evidence.keys.keyring()
    return [json.loads(dsse.verify(e.envelope or b"", keyring)) for e in store.evidence_entries(rid)]


def assert_redacted(event: EventRecord) -> None:
    text = event.message + json.dumps(event.data)
    assert not any(leak in text for leak in LEAKS), text
    assert "[REDACTED:" in event.message and "[REDACTED:" in event.data["comment"]
    assert event.data["actor"] == "cab-chair"  # what is not a secret stays
    paths = {r["path"] for r in event.data["redactions"]}
    assert {"/message", "/comment", "/password"} <= paths


def test_add_events_stores_and_signs_only_redacted_events(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    store.add_events("rel-1", [dirty("approval")], T0 + 1)
    [event] = store.events("rel-1")
    assert_redacted(event)
    [statement] = signed_statements(store, "rel-1")
    assert not any(leak in json.dumps(statement) for leak in LEAKS)
    assert statement["predicate"]["message"] == event.message


def test_persist_and_reset_store_and_sign_only_redacted_events(store: Store) -> None:
    store.create_rollout(rollout("rel-1"), T0)
    (lease,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    kept = store.persist(lease, status={"step": 1}, phase="failed", next_due_at=T0 + 5, now=T0 + 1, ttl=TTL,
                         events=[dirty("step"), NewEvent("note", "watching")])
    assert kept is not None
    store.release(kept)
    store.reset("rel-1", status={}, phase="pending", now=T0 + 2, event=dirty("retried"))
    step, note, retried = store.events("rel-1")
    assert_redacted(step)
    assert_redacted(retried)
    assert (note.message, note.data) == ("watching", {})  # a clean event is written as it is
    statements = signed_statements(store, "rel-1")
    assert len(statements) == 3
    assert not any(leak in json.dumps(s) for s in statements for leak in LEAKS)


def test_an_event_redacted_before_the_store_is_written_unchanged(store: Store) -> None:
    # Redaction is idempotent, so a caller that still redacts (or a copied event) is not redacted twice.
    store.create_rollout(rollout("rel-1"), T0)
    [once] = redact_events([dirty("approval")])
    store.add_events("rel-1", [once], T0 + 1)
    store.add_events("rel-1", [dirty("approval")], T0 + 2)
    first, second = store.events("rel-1")
    assert (first.message, first.data) == (once.message, once.data)
    assert (second.message, second.data) == (once.message, once.data)
