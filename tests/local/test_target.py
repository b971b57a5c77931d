"""LocalTarget end to end: real router, real instances, real traffic."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from primum.adapters.targets.base import StaleFenceError, Target, TargetError
from primum.adapters.targets.local.records import InstanceRecord
from primum.adapters.targets.local.router_client import RouterClient
from primum.adapters.targets.local.runtime import LocalRuntime
from primum.adapters.targets.local.target import LocalTarget
from primum.core.model.actions import (
    EnsureInstances,
    ServiceObservation,
    ServiceRuntimeSpec,
    SetRoute,
    TrafficSpec,
    VersionRef,
)

from . import helpers as H

home = H.home
target = H.target

pytestmark = pytest.mark.slow


def ensure(spec: ServiceRuntimeSpec, version: VersionRef, count: int) -> EnsureInstances:
    return EnsureInstances(env=spec.env, service=spec.service, version=version, count=count)


def route(spec: ServiceRuntimeSpec, weights: dict[str, int], preview: str | None = None) -> SetRoute:
    return SetRoute(env=spec.env, service=spec.service, weights=weights, preview=preview)


def wait_ready(t: LocalTarget, spec: ServiceRuntimeSpec, want: dict[str, int]) -> ServiceObservation:
    def check() -> ServiceObservation | None:
        obs = t.observe(spec)
        for key, n in want.items():
            v = obs.versions.get(key)
            if v is None or v.ready != n or v.starting != 0:
                return None
        return obs

    return H.wait_for(check, what=f"ready {want}")


def router_of(t: LocalTarget, spec: ServiceRuntimeSpec) -> RouterClient:
    rec = t.runtime.router(spec)
    assert rec is not None
    return RouterClient(rec.admin_socket)


def router_instances(t: LocalTarget, spec: ServiceRuntimeSpec) -> dict[str, list[str]]:
    with router_of(t, spec) as client:
        cfg = client.get_config()
    return {k: v["instances"] for k, v in cfg["versions"].items()}


def urls(t: LocalTarget, spec: ServiceRuntimeSpec, key: str) -> list[str]:
    return [i.url for i in t.runtime.instances(spec)[key] if i.status != "stopping"]


def test_protocol_and_name(target: LocalTarget) -> None:
    assert isinstance(target, LocalTarget) and target.name == "local"
    _: Target = target  # structurally a Target


def test_router_only_ever_has_ready_instances(
    target: LocalTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = H.make_spec()
    gate = tmp_path / "gate"
    gate.touch()
    v1 = H.gated_artifact(tmp_path, gate)
    target.prepare([spec])
    assert router_instances(target, spec) == {}

    target.apply(ensure(spec, v1, 1), spec, fence=1)
    wait_ready(target, spec, {v1.key: 1})
    first = urls(target, spec, v1.key)
    assert router_instances(target, spec) == {v1.key: first}

    gate.unlink()  # the next instance will not become healthy until the gate exists
    target.apply(ensure(spec, v1, 2), spec, fence=1)
    obs = target.observe(spec)
    assert (obs.versions[v1.key].ready, obs.versions[v1.key].starting) == (1, 1)
    assert router_instances(target, spec) == {v1.key: first}

    gate.touch()
    wait_ready(target, spec, {v1.key: 2})
    both = urls(target, spec, v1.key)
    assert len(both) == 2
    assert router_instances(target, spec) == {v1.key: both}

    # Scale down: the doomed instance leaves the router *before* it is signalled.
    seen_at_stop: list[dict[str, list[str]]] = []
    original_stop = target.runtime._stop

    def spying_stop(doomed: list[InstanceRecord]) -> None:
        seen_at_stop.append(router_instances(target, spec))
        assert all(H.pid_running(i.pid) for i in doomed)
        original_stop(doomed)

    monkeypatch.setattr(target.runtime, "_stop", spying_stop)
    target.apply(ensure(spec, v1, 1), spec, fence=1)
    assert seen_at_stop == [{v1.key: both[:1]}]
    assert router_instances(target, spec) == {v1.key: both[:1]}


def test_set_route_splits_traffic_and_metrics_count_it(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec(affinity="none", tenants=("clinic-north", "clinic-south"))
    v1 = H.write_artifact(tmp_path, "v1", label="1.0.0")
    v2 = H.write_artifact(tmp_path, "v2", label="2.0.0")
    target.prepare([spec])
    target.apply(ensure(spec, v1, 2), spec, fence=3)
    target.apply(ensure(spec, v2, 1), spec, fence=3)
    wait_ready(target, spec, {v1.key: 2, v2.key: 1})

    target.apply(route(spec, {v1.key: 70, v2.key: 30}), spec, fence=3)
    obs = target.observe(spec)
    assert obs.route is not None
    assert obs.route.weights == {v1.key: 70, v2.key: 30}
    assert (obs.route.fence, obs.route.preview) == (3, None)
    assert obs.stable() == v1

    rec = target.runtime.router(spec)
    assert rec is not None
    seen: Counter[str] = Counter()
    bodies: dict[str, str] = {}
    with httpx.Client(base_url=rec.url, trust_env=False, timeout=5) as client:
        for n in range(400):
            tenant = "clinic-north" if n % 4 == 0 else None
            headers = {"x-tenant-id": tenant} if tenant else {}
            resp = client.get("/appointments", headers=headers)
            assert resp.status_code == 200
            key = resp.headers["x-primum-version"]
            seen[key] += 1
            bodies[key] = resp.json()["version"]
    assert set(seen) == {v1.key, v2.key}
    assert 0.20 < seen[v2.key] / 400 < 0.40, seen
    assert bodies == {v1.key: "1.0.0", v2.key: "2.0.0"}  # PRIMUM_VERSION reached the service

    obs = target.observe(spec, metrics=True)
    assert obs.metrics_error is None and obs.metrics is not None
    m = obs.metrics
    assert m.router_started_at > 0 and m.taken_at >= m.router_started_at
    assert m.versions[v1.key].requests == {"200": seen[v1.key]}
    assert m.versions[v2.key].requests == {"200": seen[v2.key]}
    total_tenant = sum(m.versions[k].by_tenant.get("clinic-north", {}).get("200", 0) for k in (v1.key, v2.key))
    assert total_tenant == 100
    assert "-" not in m.versions[v1.key].by_tenant  # untenanted is not a tenant slice
    hist = m.versions[v1.key].latency
    assert hist.count == seen[v1.key] and hist.sum > 0
    bounds = [b for b, _ in hist.buckets]
    assert bounds == sorted(bounds) and all(b != float("inf") for b in bounds)  # +Inf is `count`
    counts = [n for _, n in hist.buckets]
    assert counts == sorted(counts) and counts[-1] <= hist.count

    # Unmentioned versions get weight 0; the preview header reaches the preview version.
    target.apply(route(spec, {v1.key: 100}, preview=v2.key), spec, fence=3)
    with httpx.Client(base_url=rec.url, trust_env=False, timeout=5) as client:
        for _ in range(20):
            assert client.get("/").headers["x-primum-version"] == v1.key
            resp = client.get("/", headers={"x-primum-preview": "1"})
            assert resp.headers["x-primum-version"] == v2.key
    obs = target.observe(spec)
    assert obs.route is not None
    assert obs.route.weights == {v1.key: 100, v2.key: 0} and obs.route.preview == v2.key


def test_route_to_nothing_is_refused(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    v2 = H.write_artifact(tmp_path, "v2")
    gate = tmp_path / "gate"
    v3 = H.gated_artifact(tmp_path, gate)
    target.prepare([spec])
    target.apply(ensure(spec, v1, 1), spec, fence=1)
    target.apply(ensure(spec, v3, 1), spec, fence=1)  # never ready
    wait_ready(target, spec, {v1.key: 1})

    with pytest.raises(TargetError, match="unknown version"):
        target.apply(route(spec, {v2.key: 100}), spec, fence=1)
    with pytest.raises(TargetError, match="no ready instance"):
        target.apply(route(spec, {v1.key: 50, v3.key: 50}), spec, fence=1)
    with pytest.raises(TargetError, match="no ready instance"):
        target.apply(route(spec, {v1.key: 100}, preview=v3.key), spec, fence=1)
    with pytest.raises(TargetError, match="sum to 100"):
        target.apply(route(spec, {v1.key: 90}), spec, fence=1)
    obs = target.observe(spec)
    assert obs.route is not None and obs.route.weights == {v1.key: 0}  # nothing was pushed

    # Stopping the last ready instances of a version that still takes traffic is refused.
    target.apply(route(spec, {v1.key: 100}), spec, fence=1)
    (inst,) = target.runtime.instances(spec)[v1.key]
    with pytest.raises(TargetError, match="refusing to stop the last ready instances"):
        target.apply(ensure(spec, v1, 0), spec, fence=1)
    assert H.pid_running(inst.pid)
    assert router_instances(target, spec)[v1.key] == [inst.url]
    # ... and observe reports the instance that runs although nobody desires it.
    obs = target.observe(spec)
    assert (obs.versions[v1.key].desired, obs.versions[v1.key].ready) == (0, 1)
    assert H.pid_running(inst.pid)
    # Once the route no longer needs it, the recorded count 0 takes effect on the next tick.
    target.apply(route(spec, {v1.key: 0}), spec, fence=1)
    target.observe(spec)
    H.wait_for(lambda: H.pid_gone(inst.pid), timeout=10, what="v1 stopped after route change")
    assert v1.key not in router_instances(target, spec)
    assert v1.key not in target.observe(spec).versions


def test_stale_fence_is_rejected(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    target.prepare([spec])
    target.apply(ensure(spec, v1, 1), spec, fence=7)
    wait_ready(target, spec, {v1.key: 1})
    target.apply(route(spec, {v1.key: 100}), spec, fence=7)

    with pytest.raises(StaleFenceError):
        target.apply(route(spec, {v1.key: 0}), spec, fence=6)
    with pytest.raises(StaleFenceError):
        target.apply(ensure(spec, v1, 0), spec, fence=6)
    assert len(target.runtime.instances(spec)[v1.key]) == 1
    # The router itself also enforces the fence (409), e.g. after the state is lost.
    rec = target.runtime.router(spec)
    assert rec is not None
    with target.runtime.admin_client(rec) as client:
        cfg = client.get_config()
        seq = cfg["seq"] + 1
        for field in ("started_at", "seq", "effective", "failed_over", "down_instances"):
            cfg.pop(field)
        cfg["fence"] = 5
        with pytest.raises(StaleFenceError, match="stale fence"):
            client.put_config(cfg, seq)
    obs = target.observe(spec)
    assert obs.route is not None and (obs.route.fence, obs.route.weights) == (7, {v1.key: 100})
    # A newer fence takes over.
    target.apply(route(spec, {v1.key: 100}), spec, fence=8)
    assert target.observe(spec).route.fence == 8  # type: ignore[union-attr]


def test_new_target_readopts_router_instances_and_route(home: Path, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    first = LocalTarget(home, H.ESTATE)
    first.prepare([spec])
    first.apply(ensure(spec, v1, 2), spec, fence=2)
    wait_ready(first, spec, {v1.key: 2})
    first.apply(route(spec, {v1.key: 100}), spec, fence=2)
    router = first.runtime.router(spec)
    pids = sorted(i.pid for i in first.runtime.instances(spec)[v1.key])
    first.close()

    second = LocalTarget(home, H.ESTATE)  # a restarted controller
    try:
        second.prepare([spec])
        second.apply(ensure(spec, v1, 2), spec, fence=2)
        obs = second.observe(spec)
        assert second.runtime.router(spec) == router
        assert sorted(i.pid for i in second.runtime.instances(spec)[v1.key]) == pids
        assert obs.versions[v1.key].ready == 2
        assert obs.route is not None and (obs.route.weights, obs.route.fence) == ({v1.key: 100}, 2)
    finally:
        second.close()


def test_router_crash_is_observed_and_prepare_restores_route(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    target.prepare([spec])
    target.apply(ensure(spec, v1, 1), spec, fence=4)
    wait_ready(target, spec, {v1.key: 1})
    target.apply(route(spec, {v1.key: 100}), spec, fence=4)
    old = target.runtime.router(spec)
    assert old is not None

    os.kill(old.pid, signal.SIGKILL)
    H.wait_for(lambda: not H.pid_running(old.pid), timeout=5, what="router dead")
    obs = target.observe(spec, metrics=True)
    assert obs.route is None and obs.metrics is None
    assert obs.metrics_error is not None and "not running" in obs.metrics_error
    assert obs.versions[v1.key].ready == 1  # instances are unaffected

    target.prepare([spec])
    new = target.runtime.router(spec)
    assert new is not None and new.pid != old.pid
    obs = target.observe(spec, metrics=True)
    assert obs.route is not None and (obs.route.weights, obs.route.fence) == ({v1.key: 100}, 4)
    assert router_instances(target, spec) == {v1.key: urls(target, spec, v1.key)}
    assert obs.metrics is not None and obs.metrics.router_started_at > 0


def test_dead_instance_leaves_router_and_comes_back(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    target.prepare([spec])
    target.apply(ensure(spec, v1, 2), spec, fence=1)
    wait_ready(target, spec, {v1.key: 2})
    target.apply(route(spec, {v1.key: 100}), spec, fence=1)
    victim = target.runtime.instances(spec)[v1.key][1]
    os.kill(victim.pid, signal.SIGKILL)
    H.wait_for(lambda: not H.pid_running(victim.pid), timeout=5, what="victim dead")
    obs = target.observe(spec)  # restarts slot 1 (it may or may not be ready already)
    assert victim.url not in router_instances(target, spec)[v1.key]
    assert obs.versions[v1.key].ready + obs.versions[v1.key].starting == 2
    assert victim.pid not in {i.pid for i in target.runtime.instances(spec)[v1.key]}
    wait_ready(target, spec, {v1.key: 2})
    assert router_instances(target, spec) == {v1.key: urls(target, spec, v1.key)}


def test_synthetic_traffic_flows_through_router(home: Path, tmp_path: Path) -> None:
    spec = H.make_spec(traffic=TrafficSpec(rate=40.0, paths=("/a", "/b")))
    v1 = H.write_artifact(tmp_path, "v1")
    t = LocalTarget(home, H.ESTATE)
    try:
        t.prepare([spec])
        t.apply(ensure(spec, v1, 1), spec, fence=1)
        wait_ready(t, spec, {v1.key: 1})
        t.apply(route(spec, {v1.key: 100}), spec, fence=1)

        def served() -> int:
            obs = t.observe(spec, metrics=True)
            assert obs.metrics is not None, obs.metrics_error
            vm = obs.metrics.versions.get(v1.key)
            return vm.requests.get("200", 0) if vm else 0

        H.wait_for(lambda: served() >= 10, timeout=20, what="synthetic requests served")
        # prepare again is idempotent: same generator process
        before = LocalRuntime(home, H.ESTATE)._load().traffic
        t.prepare([spec])
        assert LocalRuntime(home, H.ESTATE)._load().traffic == before
    finally:
        t.close()


def test_apply_rejects_mismatched_spec(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec()
    other = H.make_spec(service="records-api")
    v1 = H.write_artifact(tmp_path, "v1")
    with pytest.raises(TargetError, match="applied with the spec"):
        target.apply(ensure(other, v1, 1), spec, fence=1)


def test_unhealthy_instance_leaves_router_then_is_replaced(target: LocalTarget, tmp_path: Path) -> None:
    spec = H.make_spec(startup_timeout_s=2.0)
    v1 = H.sickly_artifact(tmp_path)
    target.prepare([spec])
    target.apply(ensure(spec, v1, 2), spec, fence=1)
    wait_ready(target, spec, {v1.key: 2})
    target.apply(route(spec, {v1.key: 100}), spec, fence=1)
    healthy, sick = target.runtime.instances(spec)[v1.key]
    (tmp_path / f"sick-{sick.port}").touch()

    # One failed probe is not enough to drop an instance (a loaded machine may be slow) ...
    obs = target.observe(spec)
    assert obs.versions[v1.key].ready == 2
    assert router_instances(target, spec) == {v1.key: [healthy.url, sick.url]}
    # ... three in a row are: it leaves the router and counts as not ready.
    target.observe(spec)
    obs = target.observe(spec)
    assert (obs.versions[v1.key].ready, obs.versions[v1.key].starting) == (1, 1)
    assert router_instances(target, spec) == {v1.key: [healthy.url]}
    assert H.pid_running(sick.pid)

    # Unhealthy for longer than startup_timeout_s: killed, counted as a crash, replaced.
    obs = wait_ready(target, spec, {v1.key: 2})
    assert (obs.versions[v1.key].failed, obs.versions[v1.key].error) == (0, None)
    H.wait_for(lambda: H.pid_gone(sick.pid), timeout=10, what="sick instance stopped")
    now = target.runtime.instances(spec)[v1.key]
    assert now[0].pid == healthy.pid and now[1].pid != sick.pid
    rec = target.runtime.version_records(spec)[v1.key]
    assert rec.restarts == 1 and rec.last_crash is not None and "unhealthy" in rec.last_crash
    assert router_instances(target, spec) == {v1.key: [i.url for i in now]}


def test_prepare_many_services_is_concurrent_and_idempotent(target: LocalTarget) -> None:
    specs = [H.make_spec(service=svc, env=env) for env in ("staging", "prod") for svc in ("a-api", "b-api", "c-api")]
    target.prepare(specs)
    routers = {r.key: r for r in target.runtime.routers()}
    assert set(routers) == {s.key for s in specs}
    assert len({r.port for r in routers.values()}) == len(specs)
    for spec in specs:
        with RouterClient(routers[spec.key].admin_socket) as client:
            assert client.health()["name"] == spec.key
    target.prepare(specs)
    assert {r.key: r for r in target.runtime.routers()} == routers


def test_every_router_change_is_reported_once_and_a_failover_on_the_routers_own_too(
    target: LocalTarget, tmp_path: Path
) -> None:
    """The pushes (route, instances) and the router's own failover reach the observation once each, for the
    controller to record as the rollout's evidence; a frozen canary loses its share to the stable version."""
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1", label="1.0.0")
    v2 = H.write_artifact(tmp_path, "v2", label="2.0.0")
    target.prepare([spec])
    target.apply(ensure(spec, v1, 1), spec, fence=4)
    target.apply(ensure(spec, v2, 1), spec, fence=4)
    wait_ready(target, spec, {v1.key: 1, v2.key: 1})
    target.observe(spec)  # drain what setting up pushed
    target.apply(route(spec, {v1.key: 75, v2.key: 25}), spec, fence=4)
    [change] = target.observe(spec).route_changes
    assert (change.cause, change.fence, change.weights) == ("route", 4, {v1.key: 75, v2.key: 25})
    assert change.effective == change.weights and change.instances == {v1.key: 1, v2.key: 1}
    assert change.seq > 0 and change.failed_over == ()
    assert target.observe(spec).route_changes == ()  # reported once

    [canary] = target.runtime.instances(spec)[v2.key]
    os.kill(canary.pid, signal.SIGSTOP)  # alive, but answers nothing: only probes can tell
    try:
        rec = target.runtime.router(spec)
        assert rec is not None
        with target.runtime.admin_client(rec) as client:
            H.wait_for(lambda: client.get_config()["failed_over"] == [v2.key], timeout=15, what="the failover")
        changes = target.observe(spec).route_changes
        assert [c.cause for c in changes][:1] == ["failover"], changes
        assert changes[0].failed_over == (v2.key,) and changes[0].effective == {v1.key: 100, v2.key: 0}
        assert changes[0].weights == {v1.key: 75, v2.key: 25}  # the controller's route is unchanged
        with httpx.Client(base_url=rec.url, trust_env=False, timeout=5) as http:
            assert {http.get("/appointments").headers["x-primum-version"] for _ in range(20)} == {v1.key}
    finally:
        os.kill(canary.pid, signal.SIGCONT)
