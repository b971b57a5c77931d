"""Governance end to end through the real controller, store and policy bundle (no-op target):
approvals with separation of duties, tampering, freezes across time zones, break-glass with its
webhook and retrospective review, and policy denials."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from primum.adapters.store.repository import Store
from primum.app.controller import Controller
from primum.app.governance import GovernanceService
from primum.app.releases import ReleaseService
from primum.core.errors import NotAllowed
from primum.core.model.rollout import RolloutStatus
from primum.core.model.validate import load_estate
from tests.controller.noop_estate import write_release
from tests.controller.test_controller import OneNoop
from tests.people import People

IDENTITIES = """
apiVersion: primum/v1
kind: Identities
groups:
  team-sched: {roles: [release-author, service-owner-approver], services: [api]}
  cab: {roles: [cab]}
  platform: {roles: [platform-admin, cab]}
  rm: {roles: [release-manager]}
  on-call: {roles: [operator, break-glass], services: [api]}
  ops-billing: {roles: [operator], services: [billing]}
  audit: {roles: [auditor]}
users:
  - {id: alice, groups: [team-sched]}
  - {id: owen, groups: [team-sched]}
  - {id: carol, groups: [cab]}
  - {id: pat, groups: [platform]}
  - {id: rita, groups: [rm]}
  - {id: kim, groups: [on-call]}
  - {id: otto, groups: [ops-billing]}
  - {id: audrey, groups: [audit]}
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def write_estate(tmp: Path, people: People, *, windows: dict | None = None, webhook: str | None = None) -> Path:
    prod = {"name": "prod", "class": "prod"}
    if windows:
        prod["windows"] = windows
    doc = {
        "apiVersion": "primum/v1", "kind": "Estate", "name": "gov-hospital",
        "environments": [{"name": "staging", "class": "nonprod"}, prod],
        "governance": {"identities": "identities.yaml", **({"webhook": webhook} if webhook else {})},
        "services": {"api": {"owner": "team-sched", "tier": "clinical-critical", "data_class": "phi",
                             "target": {"type": "noop"},
                             # a real provider (a child process) answering the same 30 samples for both
                             # versions: the analysis passes, so these tests are about governance only
                             "analysis": {"metrics": [{"name": "steady", "kind": "value", "source": {
                                 "type": "command",
                                 "argv": ["python3", "-c", "print(' '.join(['0.01'] * 30))"]}}]},
                             "strategy": {"type": "canary", "steps": [{"set_weight": 50},
                                                                      {"pause": {"duration": 1}},
                                                                      {"analysis": {"duration": "300s"}}]}}},
    }
    (tmp / "identities.yaml").write_text(people.enrol(IDENTITIES))
    path = tmp / "estate.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class World:
    def __init__(self, tmp: Path, clock: Clock, **estate_kw: object) -> None:
        self.people = People()
        self.estate = load_estate(write_estate(tmp, self.people, **estate_kw))  # type: ignore[arg-type]
        self.store = Store(f"sqlite:///{tmp / 'p.db'}")
        self.clock = clock
        self.releases = ReleaseService(self.store, clock=clock)
        self.gov = GovernanceService(self.store, clock=clock)
        self.controller = Controller(self.store, OneNoop(tmp, self.estate), clock=clock)
        self.tmp = tmp

    def submit(self, rid: str = "rel-1", author: str = "alice") -> str:
        path = write_release(self.tmp, rid, ["api"])
        return self.releases.submit(path, self.estate, caller=self.people(author)).record.id

    def status(self, rid: str) -> RolloutStatus:
        return RolloutStatus.model_validate(self.store.get_rollout(rid).status)  # type: ignore[union-attr]

    def run(self, rid: str, ticks: int = 1000, until=None) -> RolloutStatus:
        for _ in range(ticks):
            self.controller.tick()
            status = self.status(rid)
            if status.phase.value in ("promoted", "rolled_back", "failed", "denied") or (until and until(status)):
                return status
            due = self.store.next_due_at()
            self.clock.now = max(self.clock.now + 0.05, due or self.clock.now)
        return self.status(rid)


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path, Clock(at("2026-11-24T15:00:00")))  # a Tuesday
    yield w
    w.store.close()


def waiting(env: str):
    return lambda s: (s.pause_reason or "").startswith(f"{env}: waiting for approval")


def test_high_impact_waits_for_distinct_eligible_approvers_in_each_environment(world: World) -> None:
    rid = world.submit()
    status = world.run(rid, until=waiting("staging"))
    assert status.pause_reason == ("staging: waiting for approval in staging: needs 1 approval(s) from distinct "
                                   "people; has 0")
    with pytest.raises(NotAllowed, match="the author of a release cannot approve it"):
        world.gov.record_decision(rid, "approve", caller=world.people("alice"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"), comment="looks fine")
    status = world.run(rid, until=waiting("prod"))
    assert status.items[0].phase.value == "succeeded"
    assert "needs 2 approval(s) from distinct people and 1 of them from CAB" in status.pause_reason
    with pytest.raises(NotAllowed, match="platform admin"):
        # a platform admin who is also CAB: not in prod
        world.gov.record_decision(rid, "approve", caller=world.people("pat"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))  # a person counts once
    assert "has 1 (owen), 0 from CAB" in world.run(rid, ticks=5).pause_reason
    world.gov.record_decision(rid, "approve", caller=world.people("carol"))
    final = world.run(rid)
    assert final.phase.value == "promoted", final.pause_reason
    kinds = [e.kind for e in world.store.events(rid)]
    assert kinds.count("approval") == 4 and "policy_decision" in kinds
    [listing] = [r for r in GovernanceService(world.store, clock=world.clock).waiting()] or [None]
    assert listing is None  # nothing waits any more


def test_a_rejection_blocks_with_its_reason_until_that_person_approves(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    with pytest.raises(NotAllowed, match="needs a reason"):
        world.gov.record_decision(rid, "reject", caller=world.people("carol"))
    world.gov.record_decision(rid, "reject", caller=world.people("carol"), comment="no rollback plan in the ticket")
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    status = world.run(rid, ticks=10)
    assert status.pause_reason == "staging: rejected by carol: no rollback plan in the ticket"
    [row] = world.gov.waiting()
    assert row.env == "staging" and row.blocked_by == "approvals" and {a["actor"] for a in row.approvals} == {
        "carol", "owen"}
    world.gov.record_decision(rid, "approve", caller=world.people("carol"))
    assert world.run(rid, until=waiting("prod")).items[0].phase.value == "succeeded"


def test_an_approval_is_bound_to_the_digest_it_reviewed(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    record = world.store.get_rollout(rid)
    assert record is not None
    with pytest.raises(NotAllowed, match="it changed; review it again"):
        world.gov.record_decision(rid, "approve", caller=world.people("owen"), digest="sha256:" + "0" * 64)
    world.gov.record_decision(rid, "approve", caller=world.people("owen"), digest=record.digest)
    # tamper: the stored release now carries another digest; the approval no longer counts
    with world.store._engine.begin() as conn:
        conn.exec_driver_sql("UPDATE rollouts SET digest = ? WHERE id = ?", ("sha256:" + "f" * 64, rid))
    status = world.run(rid, ticks=10)
    assert status.items[0].phase.value == "pending"
    assert "needs 1 approval(s)" in (status.pause_reason or "")


def test_a_production_freeze_blocks_promotion_across_dst_and_break_glass_opens_it(tmp_path: Path) -> None:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    windows = {"timezone": "America/Chicago",
               "freezes": [{"name": "year-end", "start": "2026-11-01T01:30", "end": "2026-11-30T00:00",
                            "reason": "year-end"}]}
    # 2026-11-01 is the US fall-back day: 01:30 happens twice in Chicago; the freeze starts at the first.
    clock = Clock(at("2026-11-01T06:30:00"))  # 01:30 CDT, the first 01:30
    w = World(tmp_path, clock, windows=windows, webhook=f"http://127.0.0.1:{server.server_port}/hook")
    try:
        rid = w.submit()
        w.run(rid, until=waiting("staging"))
        w.gov.record_decision(rid, "approve", caller=w.people("owen"))
        status = w.run(rid, until=lambda s: (s.pause_reason or "").startswith("prod: no new promotion"))
        assert "year-end" in status.pause_reason and "only break-glass bypasses it" in status.pause_reason
        for person in ("owen", "carol"):
            w.gov.record_decision(rid, "approve", caller=w.people(person), env="prod")
        assert w.run(rid, ticks=10).items[1].phase.value == "pending"  # approvals do not open a freeze
        with pytest.raises(NotAllowed, match="break-glass role"):
            w.gov.break_glass(rid, caller=w.people("rita"),
                              justification="the appointment booking outage needs this fix")
        with pytest.raises(NotAllowed, match="justification"):
            w.gov.break_glass(rid, caller=w.people("kim"), justification="urgent")
        use = w.gov.break_glass(rid, caller=w.people("kim"),
                                justification="the appointment booking outage needs this fix")
        assert use.review_due_at == clock.now + 24 * 3600 and "answered 204" in use.notified
        assert received and received[0]["actor"] == "kim" and received[0]["release"] == rid
        final = w.run(rid)
        assert final.phase.value == "promoted"
        [(review, state)] = w.gov.reviews()
        assert state == "open"
        clock.now += 25 * 3600
        assert w.gov.reviews()[0][1] == "overdue"
        with pytest.raises(NotAllowed, match="cannot review their own use"):
            w.gov.complete_review(review.id, caller=w.people("kim"), notes="done")
        w.gov.complete_review(review.id, caller=w.people("carol"),
                              notes="fix confirmed; freeze exception recorded in CHG")
        assert w.gov.reviews()[0][1] == "done"
        kinds = [e.kind for e in w.store.events(rid)]
        assert "break_glass" in kinds and "review" in kinds
        assert kinds.count("freeze_override") == 1  # recorded once, as signed evidence like every event
        entries = {e.kind: e for e in w.store.evidence_entries(rid)}
        assert {"break_glass", "freeze_override", "review"} <= set(entries)
        override = next(e for e in w.store.events(rid) if e.kind == "freeze_override")
        assert override.data["actor"] == "kim" and "year-end" in override.message
        assert w.store.verify_evidence().ok
    finally:
        server.shutdown()
        w.store.close()


def test_a_policy_denial_ends_the_release_before_prod(world: World, tmp_path: Path) -> None:
    path = write_release(tmp_path, "rel-noticket", ["api"])
    doc = yaml.safe_load(path.read_text())
    doc.pop("ticket")
    path.write_text(yaml.safe_dump(doc))
    rid = world.releases.submit(path, world.estate, caller=world.people("alice")).record.id
    world.run(rid, until=waiting("staging"))
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))
    final = world.run(rid)
    assert final.phase.value == "denied"
    assert final.reason == ("policy denies prod: prod is a production environment: the release needs a change "
                            "ticket (release.ticket)")
    assert [i.phase.value for i in final.items] == ["succeeded", "not_started"]
