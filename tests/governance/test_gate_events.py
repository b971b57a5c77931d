"""The gate's events land with the status they lead to, and "logged only on change" survives a restart.

Through the real controller, store and policy bundle: a release waiting for approval logs its policy
decision once (the clock moving is not a change); a new controller (a restart, or a second replica)
reads what was logged from the store and does not log it again; when the status is not persisted (the
lease was lost, or the transaction failed) neither is the gate's event. The facts are read in one
snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from primum.adapters.store.facts import _snapshot, load_gate_facts
from primum.adapters.store.records import NewEvent
from primum.adapters.store.repository import Store
from primum.app.controller import Controller
from primum.app.gate import Gatekeeper
from primum.app.releases import ReleaseService
from primum.core.model.estate import Estate
from tests.controller.noop_estate import estate_doc, write_release
from tests.controller.test_controller import OneNoop
from tests.governance.test_flow import Clock, World, at, waiting


def decisions(world: World, rid: str) -> list[int]:
    return [e.id for e in world.store.events(rid) if e.kind == "policy_decision"]


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path, Clock(at("2026-11-24T15:00:00")))
    yield w
    w.store.close()


def test_a_waiting_release_logs_its_unchanged_decision_once(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    [first] = decisions(world, rid)
    world.run(rid, ticks=8)  # the clock moves on every tick; the decision does not change
    assert decisions(world, rid) == [first]
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    world.run(rid, until=waiting("prod"))
    assert len(decisions(world, rid)) == 2  # prod is another environment: its own decision


def test_a_restarted_controller_does_not_log_an_unchanged_decision_again(world: World, tmp_path: Path) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    logged = decisions(world, rid)
    world.controller.shutdown()
    world.controller = Controller(world.store, OneNoop(tmp_path, world.estate), clock=world.clock)  # a new Gatekeeper
    world.run(rid, ticks=5)
    assert decisions(world, rid) == logged


def test_the_decision_event_is_written_with_the_status(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    record = world.store.get_rollout(rid)
    assert record is not None
    [event] = [e for e in world.store.events(rid) if e.kind == "policy_decision"]
    blocked = [e for e in world.store.events(rid) if e.at == event.at and e.id > event.id]
    assert blocked, "the gate's event and the engine's events of that tick share one transaction"
    assert event.data["fingerprint"].startswith("sha256:")
    assert world.store.verify_evidence().ok  # recorded as signed evidence like every event


def test_a_lost_lease_records_neither_the_status_nor_the_decision(world: World) -> None:
    rid = world.submit()
    leases = world.store.claim_due(world.controller.owner, world.clock(), 10.0)
    [lease] = [le for le in leases if le.rollout.id == rid]
    with world.store._engine.begin() as conn:  # another controller took it over: a newer fencing token
        conn.execute(text("UPDATE rollouts SET fencing_token = fencing_token + 100 WHERE id = :id"), {"id": rid})
    assert world.controller.process(lease) is None
    assert decisions(world, rid) == []
    assert world.store.get_rollout(rid).revision == lease.rollout.revision  # type: ignore[union-attr]


def test_a_failed_persist_records_no_decision(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    rid = world.submit()
    revision = world.store.get_rollout(rid).revision  # type: ignore[union-attr]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(world.store.evidence, "append", broken)  # fails inside persist's transaction
    stats = world.controller.tick()
    assert stats.errors == 1
    monkeypatch.undo()
    assert decisions(world, rid) == []
    assert world.store.get_rollout(rid).revision == revision  # type: ignore[union-attr]
    world.run(rid, until=waiting("staging"))
    assert len(decisions(world, rid)) == 1  # the next tick decides and logs it, once


def test_the_listing_of_waiting_releases_writes_nothing(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    before = [e.id for e in world.store.events(rid)]
    world.clock.now += 60
    [row] = world.gov.waiting()
    assert row.blocked_by == "approvals"
    assert [e.id for e in world.store.events(rid)] == before


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'p.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url, keys=tmp_path / "keys")
    yield s
    s.close()


def test_the_facts_are_read_from_the_store(store: Store, tmp_path: Path) -> None:
    estate = Estate.model_validate(estate_doc())
    t0 = at("2026-11-24T15:00:00")
    record = ReleaseService(store, clock=lambda: t0).submit(write_release(tmp_path, "rel-1", ["api"]), estate,
                                                            actor="alice").record
    empty = load_gate_facts(store, record, "prod")
    assert empty.author == "alice" and empty.approvals == () and empty.break_glass == ()
    assert empty.last_fingerprint is None and not empty.freeze_overridden
    [(service, digest)] = empty.entering
    assert service == "api" and empty.passed == {("api", digest): frozenset()}
    assert set(empty.evidence) == {"api"}

    store.add_approval("rel-1", env="prod", digest=record.digest, actor="carol", decision="approve", comment="",
                       roles=["cab"], owned_services=[], at=t0, expires_at=None)
    store.add_break_glass("rel-1", digest=record.digest, actor="kim", justification="x" * 30, at=t0,
                          review_due_at=t0 + 1, notified="")
    store.add_events("rel-1", [
        NewEvent(kind="item_succeeded", message="ok", env="staging", service="api"),
        NewEvent(kind="policy_decision", message="old", env="prod", data={"decision": {}, "fingerprint": "fp-1"}),
        NewEvent(kind="policy_decision", message="new", env="prod", data={"decision": {}, "fingerprint": "fp-2"}),
        NewEvent(kind="policy_decision", message="other env", env="staging", data={"fingerprint": "fp-s"}),
        NewEvent(kind="freeze_override", message="kim", env="prod", data={"actor": "kim"}),
    ], t0)
    facts = load_gate_facts(store, record, "prod")
    [approval] = facts.approvals
    assert (approval.actor, approval.roles, approval.env, approval.digest) == ("carol", ("cab",), "prod",
                                                                             record.digest)
    [use] = facts.break_glass
    assert (use.actor, use.digest, use.envelope, use.logged) == ("kim", record.digest, None, None)
    assert facts.emergency_by is None  # a row with no signed envelope and no evidence entry counts for nothing
    assert "recorded no identities" in (facts.why_not_counted(use) or "")
    assert facts.passed == {("api", digest): frozenset({"staging"})}
    assert facts.last_fingerprint == "fp-2" and facts.freeze_overridden
    staging = load_gate_facts(store, record, "staging")
    assert staging.last_fingerprint == "fp-s" and not staging.freeze_overridden
    assert Gatekeeper(store).promotion(estate, record, "prod") is None


@pytest.mark.postgres
def test_the_facts_are_one_read_only_repeatable_read_snapshot_on_postgres(postgres_url: str,
                                                                         tmp_path: Path) -> None:
    store = Store(postgres_url, keys=tmp_path / "keys")
    try:
        with store._engine.connect() as raw:
            conn = _snapshot(raw)
            with conn.begin():
                assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
                assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
    finally:
        store.close()
