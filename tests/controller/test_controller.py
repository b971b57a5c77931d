"""The reconcile loop against a real store (SQLite and PostgreSQL) and the no-op target."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from primum.adapters.store.repository import Store
from primum.adapters.targets.noop import NoopTarget
from primum.adapters.targets.registry import Targets
from primum.app.controller import Controller
from primum.app.releases import ReleaseService
from primum.core.model.actions import EnsureInstances, SetRoute, VersionRef
from primum.core.model.estate import Estate
from primum.core.model.rollout import RolloutPhase
from primum.core.model.validate import runtime_spec

from .noop_estate import estate, estate_doc, write_release

HERE = Path(__file__).parent


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


class OneNoop(Targets):
    """One no-op target where every service of the estate already runs version 1.0."""

    def __init__(self, home: Path, e=None) -> None:
        super().__init__(home)
        self.target = NoopTarget()
        e = e or estate()
        for env in e.environment_names():
            for name in e.services:
                spec = runtime_spec(e, env, name)
                v1 = VersionRef(digest="sha256:" + hashlib.sha256(name.encode()).hexdigest(), artifact="/v1",
                                label="1.0")
                self.target.apply(EnsureInstances(env=env, service=name, version=v1, count=1), spec, 0)
                self.target.apply(SetRoute(env=env, service=name, weights={v1.key: 100}), spec, 0)

    def for_service(self, estate, service):  # type: ignore[override]
        return self.target


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    s.close()


def drive(controller: Controller, clock: Clock, service: ReleaseService, rid: str, limit: int = 500) -> str:
    for _ in range(limit):
        controller.tick()
        phase = service.get(rid).phase
        if phase in ("promoted", "rolled_back", "failed"):
            return phase
        due = service.store.next_due_at()
        clock.now = max(clock.now + 0.01, due or clock.now)
    raise AssertionError(f"{rid} did not finish: {service.get(rid).phase}")


def test_a_release_runs_to_promotion_in_dependency_order(store, tmp_path):
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    e = estate()
    service.submit(write_release(tmp_path, "rel-1", ["web", "api"]), e)
    targets = OneNoop(tmp_path)
    controller = Controller(store, targets, clock=clock)
    assert drive(controller, clock, service, "rel-1") == "promoted"
    started = [ev.service for ev in store.events("rel-1") if ev.kind == "item_started"]
    assert started == ["api", "web", "api", "web"]  # providers first, staging then prod
    kinds = [ev.kind for ev in store.events("rel-1")]
    assert kinds[0] == "submitted" and kinds[-1] == "promoted"


def test_abort_rolls_back_and_retry_starts_again(store, tmp_path, people):
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    identities = tmp_path / "identities.yaml"
    identities.write_text(people.enrol(
        "groups: {on-call: {roles: [operator], services: [api]}, authors: {roles: [release-author]}}\n"
        "users: [{id: nurse-informaticist, groups: [on-call, authors]}, {id: ops, groups: [on-call]}]\n"))
    doc = estate_doc(steps=[{"set_weight": 20}, {"pause": {}}])
    doc["governance"] = {"identities": str(identities)}
    e = Estate.model_validate(doc)
    service.submit(write_release(tmp_path, "rel-2", ["api"]), e, caller=people("nurse-informaticist"))
    controller = Controller(store, OneNoop(tmp_path), clock=clock)
    for _ in range(20):
        controller.tick()
        clock.now += 0.3
    record = service.get("rel-2")
    assert record.phase == "paused"
    service.abort("rel-2", people("nurse-informaticist"))
    assert drive(controller, clock, service, "rel-2") == "rolled_back"
    assert "aborted by nurse-informaticist" in service.status("rel-2")[1].reason
    assert service.status("rel-2")[1].items[0].phase.value == "rolled_back"
    service.retry("rel-2", people("ops"))
    assert service.get("rel-2").phase == "pending"
    for _ in range(20):
        controller.tick()
        clock.now += 0.3
    assert service.get("rel-2").phase == "paused"  # the canary runs again from the start
    service.promote("rel-2", people("ops"))
    for _ in range(20):
        controller.tick()
        clock.now += 0.3
    service.promote("rel-2", people("ops"))  # prod pauses too
    assert drive(controller, clock, service, "rel-2") == "promoted"
    promoted_by = [ev.message for ev in store.events("rel-2") if ev.kind == "promoted_by_person"]
    assert promoted_by == ["pause ended by ops", "pause ended by ops"]


def test_a_second_release_on_the_same_service_waits_for_the_first(store, tmp_path):
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    e = estate()
    service.submit(write_release(tmp_path, "rel-a", ["api"], "2.0"), e)
    clock.now += 1
    service.submit(write_release(tmp_path, "rel-b", ["api"], "3.0"), e)
    controller = Controller(store, OneNoop(tmp_path), clock=clock)
    controller.tick()
    status_b = service.status("rel-b")[1]
    assert status_b.phase is RolloutPhase.pending and "rel-a" in status_b.pause_reason
    assert drive(controller, clock, service, "rel-a") == "promoted"
    assert drive(controller, clock, service, "rel-b") == "promoted"


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_two_controller_processes_never_both_act_on_one_rollout(tmp_path, request, db):
    """Controllers in separate processes, short leases, deliberate stalls between persist and act."""
    url = f"sqlite:///{tmp_path / 'shared.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    service = ReleaseService(store)
    for i in range(12):
        service.submit(write_release(tmp_path, f"rel-{i}", ["api"], f"{i}.0"), estate(f"estate-{i}"))
    store.close()
    log = tmp_path / "actions.log"
    procs = [subprocess.Popen([sys.executable, str(HERE / "controller_worker.py"), url, str(log), str(n), "4"],
                              env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)})
             for n in range(2)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    accepted: dict[str, list[tuple[int, str]]] = {}
    rejected = 0
    for line in log.read_text().splitlines():
        verdict, owner, key, fence = line.split()
        if verdict == "stale":
            rejected += 1
            continue
        accepted.setdefault(key, []).append((int(fence), owner))
    assert accepted, "no action was applied"
    print(f"accepted {sum(map(len, accepted.values()))} actions, rejected {rejected} stale ones")
    owners_seen = {o for acts in accepted.values() for _, o in acts}
    assert len(owners_seen) == 2, "both controllers should have worked"
    for key, acts in accepted.items():
        fences = [f for f, _ in acts]
        assert fences == sorted(fences), f"{key}: an older lease acted after a newer one"
        by_fence: dict[int, set[str]] = {}
        for f, o in acts:
            by_fence.setdefault(f, set()).add(o)
        assert all(len(o) == 1 for o in by_fence.values()), f"{key}: two owners acted under one token"


def test_a_controller_that_lost_its_lease_neither_persists_nor_acts(store, tmp_path):
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    service.submit(write_release(tmp_path, "rel-s", ["api"]), estate())
    targets = OneNoop(tmp_path)
    a = Controller(store, targets, owner="a", clock=clock, lease_ttl=5)
    b = Controller(store, targets, owner="b", clock=clock, lease_ttl=5)
    [lease_a] = store.claim_due("a", clock(), 5)
    assert a.process(lease_a) is not None
    clock.now += 30  # a stalls past its lease; b takes over
    assert b.tick().persisted == 1
    applied = targets.target.applied
    revision = service.get("rel-s").revision
    assert a.process(lease_a) is None  # fenced at the store: nothing written ...
    assert targets.target.applied == applied  # ... and nothing done
    assert service.get("rel-s").revision == revision
    # and if it had acted anyway, the data plane's fence refuses the stale token
    from primum.adapters.targets.base import StaleFenceError
    from primum.core.model.actions import SetRoute as Route

    spec = runtime_spec(estate(), "staging", "api")
    with pytest.raises(StaleFenceError):
        targets.target.apply(Route(env="staging", service="api", weights={}), spec, lease_a.token)


def test_a_lease_older_than_the_data_planes_newest_token_is_renewed_not_stuck(store, tmp_path):
    """Another rollout's newer lease touched the same service: our token is now stale at the
    data plane although our lease is valid. Giving the lease up draws a fresh token."""
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    e = estate()
    service.submit(write_release(tmp_path, "rel-old-token", ["api"]), e)
    targets = OneNoop(tmp_path)
    controller = Controller(store, targets, clock=clock)
    controller.tick()
    # a newer lease (of another rollout) acts on the same service
    service.submit(write_release(tmp_path, "rel-other", ["api"]), estate("other-estate"))
    [newer] = [lease for lease in store.claim_due("someone-else", clock(), 5) if lease.rollout.id == "rel-other"]
    key = next(k for k in targets.target._services if k.endswith("/staging/api") and k.startswith(e.name))
    targets.target._services[key].fence = newer.token
    assert drive(controller, clock, service, "rel-old-token", limit=3000) == "promoted"
    assert service.get("rel-old-token").fencing_token > newer.token
