"""Store behaviour: rollouts, leases with fencing, commands, events, reset."""

from __future__ import annotations

from typing import Any

import pytest

from primum.adapters.store.records import Lease, NewEvent, NewRollout
from primum.adapters.store.repository import (
    ReleaseConflict,
    RolloutLeased,
    RolloutNotFound,
    Store,
)

T0 = 1_700_000_000.0
TTL = 30.0


def new_rollout(
    rollout_id: str,
    *,
    digest: str = "sha256:" + "a" * 64,
    estate: str = "st-marys",
    services: tuple[str, ...] = ("ehr-api",),
    phase: str = "pending",
    status: dict[str, Any] | None = None,
) -> NewRollout:
    return NewRollout(
        id=rollout_id,
        digest=digest,
        estate_name=estate,
        estate_digest="sha256:" + "e" * 64,
        services=services,
        estate={"name": estate, "environments": ["staging", "production"]},
        release={"id": rollout_id, "changes": [{"service": s} for s in services]},
        status=status if status is not None else {"step": 0, "history": []},
        phase=phase,
    )


# rollouts


def test_create_and_get_round_trip(store: Store) -> None:
    record, created = store.create_rollout(new_rollout("rel-1", services=("a", "b")), now=T0)
    assert created
    assert record == store.get_rollout("rel-1")
    assert record.services == ("a", "b")
    assert record.estate["environments"] == ["staging", "production"]
    assert record.status == {"step": 0, "history": []}
    assert (record.created_at, record.updated_at, record.next_due_at) == (T0, T0, T0)
    assert (record.lease_owner, record.lease_expires_at) == (None, None)
    assert (record.fencing_token, record.revision, record.phase) == (0, 0, "pending")
    assert store.get_rollout("missing") is None


def test_create_same_release_again_is_idempotent(store: Store) -> None:
    first, _ = store.create_rollout(new_rollout("rel-1"), now=T0)
    again, created = store.create_rollout(new_rollout("rel-1"), now=T0 + 5)
    assert not created
    assert again == first
    assert len(store.list_rollouts()) == 1


def test_create_changed_release_with_same_id_conflicts(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1", digest="sha256:old"), now=T0)
    with pytest.raises(ReleaseConflict) as info:
        store.create_rollout(new_rollout("rel-1", digest="sha256:new"), now=T0 + 1)
    message = str(info.value)
    assert "rel-1" in message and "sha256:old" in message and "sha256:new" in message
    assert "give the changed release a new id" in message
    assert store.get_rollout("rel-1").digest == "sha256:old"  # type: ignore[union-attr]


def test_list_rollouts_newest_first_with_limit_and_phases(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    store.create_rollout(new_rollout("rel-2", phase="promoted"), now=T0 + 1)
    store.create_rollout(new_rollout("rel-3", phase="running"), now=T0 + 2)
    assert [r.id for r in store.list_rollouts()] == ["rel-3", "rel-2", "rel-1"]
    assert [r.id for r in store.list_rollouts(limit=2)] == ["rel-3", "rel-2"]
    active = store.list_rollouts(phases=["pending", "running"])
    assert [r.id for r in active] == ["rel-3", "rel-1"]
    assert store.list_rollouts(phases=[]) == []


def test_earlier_active_finds_older_overlapping_rollouts_of_the_same_estate(store: Store) -> None:
    store.create_rollout(new_rollout("old-overlap", services=("ehr-api", "fhir")), now=T0)
    store.create_rollout(new_rollout("old-disjoint", services=("billing",)), now=T0 + 1)
    store.create_rollout(new_rollout("old-done", services=("fhir",), phase="promoted"), now=T0 + 2)
    store.create_rollout(new_rollout("other-estate", estate="county", services=("fhir",)), now=T0)
    store.create_rollout(new_rollout("tie-a", services=("fhir",), phase="running"), now=T0 + 5)
    mine, _ = store.create_rollout(new_rollout("tie-b", services=("fhir", "hl7")), now=T0 + 5)
    store.create_rollout(new_rollout("newer", services=("fhir",)), now=T0 + 9)

    assert [r.id for r in store.earlier_active(mine)] == ["old-overlap", "tie-a"]
    tie_a = store.get_rollout("tie-a")
    assert tie_a is not None
    assert [r.id for r in store.earlier_active(tie_a)] == ["old-overlap"]
    first = store.get_rollout("old-overlap")
    assert first is not None and store.earlier_active(first) == []


# claiming leases


def test_claim_due_takes_due_active_rollouts_in_due_order(store: Store) -> None:
    store.create_rollout(new_rollout("later"), now=T0 + 2)
    store.create_rollout(new_rollout("sooner"), now=T0 + 1)
    store.create_rollout(new_rollout("not-due"), now=T0 + 100)
    store.create_rollout(new_rollout("finished", phase="failed"), now=T0)
    leases = store.claim_due("ctl-a", now=T0 + 10, ttl=TTL)
    assert [lease.rollout.id for lease in leases] == ["sooner", "later"]
    for lease in leases:
        assert lease.owner == "ctl-a"
        assert lease.expires_at == T0 + 10 + TTL
        assert lease.rollout.lease_owner == "ctl-a"
        assert lease.rollout.fencing_token == lease.token
    assert leases[0].token < leases[1].token
    assert store.claim_due("ctl-a", now=T0 + 10, ttl=TTL, limit=0) == []


def test_claim_due_respects_limit(store: Store) -> None:
    for i in range(5):
        store.create_rollout(new_rollout(f"rel-{i}"), now=T0 + i)
    assert [lease.rollout.id for lease in store.claim_due("a", T0 + 10, TTL, limit=2)] == [
        "rel-0",
        "rel-1",
    ]
    assert len(store.claim_due("b", T0 + 10, TTL, limit=10)) == 3


def test_lease_held_by_another_is_not_claimed_until_it_expires(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (held,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    assert store.claim_due("ctl-b", now=T0 + TTL, ttl=TTL) == []  # expires_at == now: still held

    (taken,) = store.claim_due("ctl-b", now=T0 + TTL + 0.001, ttl=TTL)
    assert taken.owner == "ctl-b"
    assert taken.token > held.token
    assert store.get_rollout("rel-1").lease_owner == "ctl-b"  # type: ignore[union-attr]


def test_reclaiming_own_lease_keeps_token_and_extends_expiry(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (first,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    (again,) = store.claim_due("ctl-a", now=T0 + 10, ttl=TTL)
    assert again.token == first.token
    assert again.expires_at == T0 + 10 + TTL
    assert store.get_rollout("rel-1").lease_expires_at == T0 + 10 + TTL  # type: ignore[union-attr]

    # Once expired, even the same owner gets a new token: someone may have held it since.
    (renewed,) = store.claim_due("ctl-a", now=T0 + 10 + TTL + 1, ttl=TTL)
    assert renewed.token > first.token


def test_tokens_increase_across_all_rollouts_and_claims(store: Store) -> None:
    for i in range(3):
        store.create_rollout(new_rollout(f"rel-{i}"), now=T0)
    tokens: list[int] = []
    now = T0
    for owner in ("a", "b", "c", "a"):
        tokens += [lease.token for lease in store.claim_due(owner, now, ttl=1.0)]
        now += 2.0  # every lease has expired by the next round
    assert len(tokens) == 12
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


# persisting under a lease


def test_persist_writes_state_events_and_extends_lease(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (lease,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    events = [
        NewEvent("step", "canary at 10%", env="production", service="ehr-api", data={"w": 10}),
        NewEvent("note", "watching"),
    ]
    kept = store.persist(
        lease,
        status={"step": 1},
        phase="running",
        next_due_at=T0 + 60,
        now=T0 + 1,
        ttl=TTL,
        events=events,
    )
    assert kept is not None
    assert kept.token == lease.token and kept.owner == "ctl-a"
    assert kept.expires_at == T0 + 1 + TTL
    record = store.get_rollout("rel-1")
    assert record == kept.rollout
    assert record is not None
    assert (record.status, record.phase, record.next_due_at) == ({"step": 1}, "running", T0 + 60)
    assert (record.updated_at, record.revision, record.lease_expires_at) == (T0 + 1, 1, T0 + 1 + TTL)
    stored = store.events("rel-1")
    assert [(e.kind, e.message, e.env, e.service, e.data, e.at) for e in stored] == [
        ("step", "canary at 10%", "production", "ehr-api", {"w": 10}, T0 + 1),
        ("note", "watching", None, None, {}, T0 + 1),
    ]


def test_persist_with_stale_token_writes_nothing(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (stale,) = store.claim_due("ctl-a", now=T0, ttl=1.0)
    (current,) = store.claim_due("ctl-b", now=T0 + 2, ttl=TTL)
    command = store.add_command("rel-1", "abort", "alice", now=T0 + 2.5)
    before = store.get_rollout("rel-1")

    lost = store.persist(
        stale,
        status={"step": 99},
        phase="failed",
        next_due_at=T0 + 3,
        now=T0 + 3,
        ttl=TTL,
        events=[NewEvent("step", "stale write")],
        consumed_commands=[command.id],
    )
    assert lost is None
    assert store.get_rollout("rel-1") == before
    # nothing of the stale write; only ctl-b's claim recorded the takeover (issue 13 point 6)
    assert [e.kind for e in store.events("rel-1")] == ["lease_lost", "lease_taken_over"]
    assert [c.id for c in store.pending_commands("rel-1")] == [command.id]

    # The same owner reusing an old token it once held is fenced off as well.
    stale_same_owner = Lease(current.rollout, "ctl-b", current.token - 1, current.expires_at)
    assert store.persist(stale_same_owner, status={}, phase="running", next_due_at=T0, now=T0 + 3, ttl=TTL) is None
    assert (
        store.persist(current, status={"step": 1}, phase="running", next_due_at=T0 + 9, now=T0 + 3, ttl=TTL) is not None
    )


def test_persist_after_lease_expired_is_refused(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (lease,) = store.claim_due("ctl-a", now=T0, ttl=1.0)
    assert (
        store.persist(
            lease,
            status={"late": True},
            phase="running",
            next_due_at=T0,
            now=T0 + 1.5,
            ttl=1.0,
            events=[NewEvent("x", "late")],
        )
        is None
    )
    assert store.get_rollout("rel-1").revision == 0  # type: ignore[union-attr]
    assert store.events("rel-1") == []


def test_persist_consumes_commands_in_the_same_transaction(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    store.create_rollout(new_rollout("rel-2"), now=T0)
    promote = store.add_command("rel-1", "promote", "alice", now=T0 + 1, payload={"env": "prod"})
    abort = store.add_command("rel-1", "abort", "bob", now=T0 + 2)
    other = store.add_command("rel-2", "abort", "bob", now=T0 + 2)
    assert store.pending_commands("rel-1") == [promote, abort]
    assert promote.payload == {"env": "prod"} and promote.actor == "alice"

    (lease,) = store.claim_due("ctl-a", now=T0 + 3, ttl=TTL, limit=1)
    assert lease.rollout.id == "rel-1"
    kept = store.persist(
        lease,
        status={"promoted": True},
        phase="running",
        next_due_at=T0 + 3,
        now=T0 + 3,
        ttl=TTL,
        consumed_commands=[promote.id, other.id],
    )
    assert kept is not None
    assert store.pending_commands("rel-1") == [abort]
    assert store.pending_commands("rel-2") == [other]  # not this rollout's to consume


def test_add_command_makes_the_rollout_due_now(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (lease,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    kept = store.persist(lease, status={}, phase="paused", next_due_at=T0 + 3600, now=T0, ttl=TTL)
    assert kept is not None
    store.add_command("rel-1", "promote", "alice", now=T0 + 5)
    assert store.get_rollout("rel-1").next_due_at == T0 + 5  # type: ignore[union-attr]
    store.add_command("rel-1", "abort", "alice", now=T0 + 9)  # never pushes it later
    assert store.get_rollout("rel-1").next_due_at == T0 + 5  # type: ignore[union-attr]
    with pytest.raises(RolloutNotFound):
        store.add_command("missing", "abort", "alice", now=T0)


def test_command_arriving_during_a_lease_is_not_postponed_by_persist(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (lease,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    # The controller read no commands, then an operator aborts before it persists.
    store.add_command("rel-1", "abort", "alice", now=T0 + 1)
    kept = store.persist(lease, status={}, phase="running", next_due_at=T0 + 600, now=T0 + 2, ttl=TTL)
    assert kept is not None and kept.rollout.next_due_at == T0 + 2
    # Having seen it, the controller may leave it pending without being woken again.
    kept = store.persist(kept, status={}, phase="running", next_due_at=T0 + 600, now=T0 + 3, ttl=TTL)
    assert kept is not None and kept.rollout.next_due_at == T0 + 600


# release and reset


def test_release_frees_the_lease_only_for_its_holder(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (old,) = store.claim_due("ctl-a", now=T0, ttl=1.0)
    (current,) = store.claim_due("ctl-b", now=T0 + 2, ttl=TTL)
    store.release(old)  # stale: no effect
    assert store.get_rollout("rel-1").lease_owner == "ctl-b"  # type: ignore[union-attr]

    store.release(current)
    record = store.get_rollout("rel-1")
    assert record is not None and (record.lease_owner, record.lease_expires_at) == (None, None)
    assert store.persist(current, status={}, phase="running", next_due_at=T0, now=T0 + 3, ttl=TTL) is None
    (next_lease,) = store.claim_due("ctl-c", now=T0 + 3, ttl=TTL)
    assert next_lease.token > current.token


def test_reset_refused_while_an_active_rollout_is_leased(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    store.claim_due("ctl-a", now=T0, ttl=TTL)
    with pytest.raises(RolloutLeased, match="ctl-a"):
        store.reset(
            "rel-1", status={"step": 0}, phase="pending", now=T0 + 1, event=NewEvent("retry", "retried by alice")
        )
    assert store.events("rel-1") == []
    with pytest.raises(RolloutNotFound):
        store.reset("missing", status={}, phase="pending", now=T0, event=NewEvent("retry", "x"))


def test_reset_after_lease_expired(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    store.claim_due("ctl-a", now=T0, ttl=1.0)
    record = store.reset(
        "rel-1",
        status={"step": 0, "retry": 1},
        phase="pending",
        now=T0 + 5,
        event=NewEvent("retry", "retried by alice"),
    )
    assert (record.phase, record.status, record.next_due_at) == ("pending", {"step": 0, "retry": 1}, T0 + 5)
    assert (record.updated_at, record.revision, record.lease_owner) == (T0 + 5, 1, None)
    assert [(e.kind, e.at) for e in store.events("rel-1")] == [("retry", T0 + 5)]


def test_reset_of_a_terminal_rollout_fences_off_its_last_holder(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    (lease,) = store.claim_due("ctl-a", now=T0, ttl=TTL)
    failed = store.persist(lease, status={"why": "error rate"}, phase="failed", next_due_at=T0 + 1, now=T0 + 1, ttl=TTL)
    assert failed is not None
    assert store.claim_due("ctl-b", now=T0 + 2, ttl=TTL) == []  # terminal: nothing to do

    record = store.reset(
        "rel-1", status={"step": 0}, phase="pending", now=T0 + 2, event=NewEvent("retry", "retried by alice")
    )
    assert record.phase == "pending" and record.lease_owner is None
    assert store.persist(failed, status={"stale": True}, phase="failed", next_due_at=T0, now=T0 + 3, ttl=TTL) is None
    (fresh,) = store.claim_due("ctl-b", now=T0 + 3, ttl=TTL)
    assert fresh.token > failed.token and fresh.rollout.status == {"step": 0}


# events and scheduling


def test_events_are_appended_in_order_and_paged_by_id(store: Store) -> None:
    store.create_rollout(new_rollout("rel-1"), now=T0)
    store.create_rollout(new_rollout("rel-2"), now=T0)
    store.add_events("rel-1", [NewEvent("a", "first"), NewEvent("b", "second")], now=T0 + 1)
    store.add_events("rel-2", [NewEvent("z", "elsewhere")], now=T0 + 1)
    store.add_events("rel-1", [NewEvent("c", "third", data={"n": 3})], now=T0 + 2)
    store.add_events("rel-1", [], now=T0 + 3)
    events = store.events("rel-1")
    assert [e.message for e in events] == ["first", "second", "third"]
    assert all(e.rollout_id == "rel-1" for e in events)
    assert [e.message for e in store.events("rel-1", after_id=events[1].id)] == ["third"]
    assert store.events("rel-1", after_id=events[-1].id) == []
    with pytest.raises(RolloutNotFound):
        store.add_events("missing", [NewEvent("a", "x")], now=T0)


def test_next_due_at_is_the_earliest_active_rollout(store: Store) -> None:
    assert store.next_due_at() is None
    store.create_rollout(new_rollout("done", phase="promoted"), now=T0)
    assert store.next_due_at() is None
    store.create_rollout(new_rollout("rel-1"), now=T0 + 20)
    store.create_rollout(new_rollout("rel-2", phase="paused"), now=T0 + 10)
    assert store.next_due_at() == T0 + 10


def test_opening_the_store_twice_keeps_the_data(db_url: str) -> None:
    first = Store(db_url)
    first.create_rollout(new_rollout("rel-1"), now=T0)
    first.close()
    second = Store(db_url)
    try:
        assert second.get_rollout("rel-1") is not None
    finally:
        second.close()
