"""Issue 13 point 6: a lost lease, its takeover and the takeover's duration are evidence events of the
rollout, signed into the log like every event; they did not exist before (the evidence of a crash showed
only a longer step)."""

from __future__ import annotations

from primum.app.controller import Controller
from primum.app.releases import ReleaseService

from .noop_estate import estate, write_release
from .test_controller import Clock, OneNoop
from .test_controller import store as store  # the fixture, on SQLite and PostgreSQL


def lease_events(store, rid: str) -> list:
    return [e for e in store.events(rid) if e.kind.startswith("lease_")]


def test_a_takeover_records_the_lost_lease_and_how_long_the_rollout_went_unattended(store, tmp_path) -> None:
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    service.submit(write_release(tmp_path, "rel-t", ["api"]), estate())
    targets = OneNoop(tmp_path)
    a = Controller(store, targets, owner="ctl-a", clock=clock, lease_ttl=5)
    b = Controller(store, targets, owner="ctl-b", clock=clock, lease_ttl=5)
    [lease_a] = store.claim_due("ctl-a", clock(), 5)
    assert a.process(lease_a) is not None  # the persist renews the lease
    renewed = clock.now
    assert lease_events(store, "rel-t") == []  # a first claim is no takeover
    clock.now += 12.5  # a is killed (or stalls); its lease runs out
    assert b.tick().persisted == 1
    lost, taken = lease_events(store, "rel-t")
    assert lost.kind == "lease_lost" and lost.data["owner"] == "ctl-a" and lost.data["noticed_by"] == "ctl-b"
    assert lost.data["fence"] == lease_a.token and lost.data["last_renewed_at"] == renewed
    assert lost.data["expired_at"] == renewed + 5
    assert taken.kind == "lease_taken_over" and taken.data["owner"] == "ctl-b"
    assert taken.data["previous_owner"] == "ctl-a" and taken.data["fence"] > lease_a.token
    assert taken.data["takeover_s"] == 12.5 and taken.data["taken_at"] == renewed + 12.5
    assert "12.5 s without a holder since its last renewal" in taken.message
    # a comes back and tries to persist with its old lease: refused, and it says so
    assert a.process(lease_a) is None
    mine = lease_events(store, "rel-t")[2]
    assert mine.kind == "lease_lost" and mine.data["noticed_by"] == "ctl-a" and mine.data["held_by"] == "ctl-b"
    # they are signed statements in the log, matched with their rows by `evidence verify`
    kinds = [e.kind for e in store.evidence_entries("rel-t")]
    assert kinds.count("lease_lost") == 2 and kinds.count("lease_taken_over") == 1
    assert store.verify_evidence().ok


def test_a_released_lease_is_handed_over_without_loss_events(store, tmp_path) -> None:
    clock = Clock()
    ReleaseService(store, clock=clock).submit(write_release(tmp_path, "rel-h", ["api"]), estate())
    targets = OneNoop(tmp_path)
    a = Controller(store, targets, owner="ctl-a", clock=clock, lease_ttl=5)
    a.tick()
    a.shutdown()  # a clean stop gives the lease up
    clock.now += 1
    Controller(store, targets, owner="ctl-b", clock=clock, lease_ttl=5).tick()
    assert lease_events(store, "rel-h") == []


def test_a_controller_reclaiming_its_own_expired_lease_is_no_takeover(store, tmp_path) -> None:
    clock = Clock()
    ReleaseService(store, clock=clock).submit(write_release(tmp_path, "rel-s", ["api"]), estate())
    a = Controller(store, OneNoop(tmp_path), owner="ctl-a", clock=clock, lease_ttl=0.5)
    a.tick()
    clock.now += 2  # its next tick comes after the short lease ran out, and nobody else claimed it
    assert a.tick().persisted == 1
    assert lease_events(store, "rel-s") == []
