"""Canary and blue-green through the controller and engine, on the kubernetes target against kmock.

The real controller, store and target registry; the emulator keeps the objects, and between ticks the
test plays the Deployment controller and kubelets (every Deployment's pods become ready), since kmock
runs no controllers. Not a cluster: the Service and HTTPRoute here route no real requests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from primum.adapters.store.repository import Store
from primum.adapters.targets.kubernetes.target import KubernetesTarget
from primum.adapters.targets.registry import Targets
from primum.app.controller import Controller
from primum.app.releases import ReleaseService
from primum.core.model.actions import EnsureInstances, SetRoute, VersionRef
from primum.core.model.estate import Estate
from primum.core.model.validate import runtime_spec
from tests.k8s.emulator import Emulator

NS = "pas-staging"


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


def estate(emu: Emulator, strategy: dict[str, Any], probes: list[dict[str, Any]] | None = None,
           **target: Any) -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "k8s-hospital",
        "environments": [{"name": "staging", "class": "nonprod"}],
        "services": {"pas": {
            "owner": "integration", "tier": "internal", "data_class": "none", "strategy": strategy,
            "probes": probes or [],
            "target": {"type": "kubernetes", "kubeconfig": str(emu.kubeconfig), "namespaces": {"staging": NS},
                       "image": "registry.example/pas", "replicas": 4, **target}}},
    })


def release(tmp: Path, rid: str) -> Path:
    art = tmp / "pas-2.0.bin"
    art.write_bytes(b"pas 2.0")
    path = tmp / f"{rid}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "primum/v1", "kind": "Release", "id": rid, "ticket": "CHG-TEST-1",
                                    "services": {"pas": {"artifact": art.name, "version": "2.0", "digest":
                                                         "sha256:" + hashlib.sha256(art.read_bytes()).hexdigest()}}}))
    return path


OLD = VersionRef(digest="sha256:" + hashlib.sha256(b"pas 1.0").hexdigest(), artifact="/v1", label="1.0")


def run(tmp: Path, emu: Emulator, e: Estate) -> tuple[str, Store, list[Any]]:
    """Deploy 1.0, release 2.0, tick (playing kubelet between ticks) to the end; phase, store, route seen."""
    targets = Targets(tmp)
    spec = runtime_spec(e, "staging", "pas")
    target = targets.for_service(e, "pas")
    target.apply(EnsureInstances(env="staging", service="pas", version=OLD, count=4), spec, 0)
    emu.kubelet_all(NS)
    target.apply(SetRoute(env="staging", service="pas", weights={OLD.key: 100}), spec, 0)
    store = Store(f"sqlite:///{tmp / 'p.db'}")
    clock = Clock()
    service = ReleaseService(store, clock=clock)
    service.submit(release(tmp, "rel-1"), e)
    controller = Controller(store, targets, clock=clock)
    watcher = KubernetesTarget()  # its own instance: observing through the controller's would take its evidence
    routes: list[Any] = []
    try:
        for _ in range(400):
            controller.tick()
            emu.kubelet_all(NS)
            route = watcher.observe(spec).route
            if route is not None and (not routes or routes[-1] != (route.weights, route.preview)):
                routes.append((route.weights, route.preview))
            phase = service.get("rel-1").phase
            if phase in ("promoted", "rolled_back", "failed"):
                return phase, store, routes
            clock.now = max(clock.now + 0.05, store.next_due_at() or clock.now)
        raise AssertionError(f"rel-1 did not finish: {service.get('rel-1').phase}")
    finally:
        targets.close()
        watcher.close()


@pytest.fixture
def store_closer() -> Any:
    stores: list[Store] = []
    yield stores
    for s in stores:
        s.close()


def test_a_canary_is_promoted_by_replica_ratio(tmp_path: Path, emulator: Emulator, store_closer: list[Store]) -> None:
    e = estate(emulator, {"type": "canary", "steps": [{"set_weight": 25}, {"pause": {"duration": 1}}]})
    phase, store, routes = run(tmp_path, emulator, e)
    store_closer.append(store)
    assert phase == "promoted", [ev.message for ev in store.events("rel-1")][-5:]
    new = next(k for k in emulator.deployments(NS)).removeprefix("pas-")
    assert [w for w, _ in routes] == [{OLD.key: 100}, {OLD.key: 75, new: 25}, {new: 100}]
    assert list(emulator.deployments(NS)) == [f"pas-{new}"]  # the old Deployment is gone
    assert emulator.deployment(NS, f"pas-{new}")["spec"]["replicas"] == 4
    assert emulator.service(NS, "pas")["spec"]["selector"]["primum.dev/version"] == new  # type: ignore[index]
    split = [ev.data for ev in store.events("rel-1") if ev.kind == "router_config" and len(ev.data["weights"]) == 2
             and ev.data["weights"][new] == 25]
    assert split and split[0]["effective"] == {OLD.key: 80, new: 20}  # the evidence says what the pods give


def test_a_blue_green_release_switches_the_selector(tmp_path: Path, emulator: Emulator,
                                                   store_closer: list[Store]) -> None:
    e = estate(emulator, {"type": "blue_green", "preview_analysis": 0, "post_analysis": 0, "scale_down_delay": 0})
    phase, store, routes = run(tmp_path, emulator, e)
    store_closer.append(store)
    assert phase == "promoted", [ev.message for ev in store.events("rel-1")][-5:]
    new = next(k for k in emulator.deployments(NS)).removeprefix("pas-")
    assert routes == [({OLD.key: 100}, None), ({OLD.key: 100}, new), ({new: 100}, new), ({new: 100}, None)]
    assert emulator.service(NS, "pas-preview") is None
    assert list(emulator.deployments(NS)) == [f"pas-{new}"]


def test_a_failed_canary_rolls_back_to_the_untrimmed_stable_side(tmp_path: Path, emulator: Emulator,
                                                                 store_closer: list[Store]) -> None:
    """A probe against the service needs an address: this target has no router, so the probe fails (never a
    pass) and the canary rolls back: the stable Deployment kept its replicas, the new one is deleted."""
    smoke = {"name": "smoke", "probe": {"type": "http"}, "when": ["after"], "attempts": 1, "interval": 0.1}
    e = estate(emulator, {"type": "canary", "steps": [{"set_weight": 10}, {"probe": ["smoke"]}]}, probes=[smoke])
    phase, store, routes = run(tmp_path, emulator, e)
    store_closer.append(store)
    assert phase == "rolled_back", [ev.message for ev in store.events("rel-1")][-5:]
    new = next(k for k in routes[1][0] if k != OLD.key)
    assert [w for w, _ in routes] == [{OLD.key: 100}, {OLD.key: 90, new: 10}, {OLD.key: 100}]
    assert list(emulator.deployments(NS)) == [f"pas-{OLD.key}"]
    assert emulator.deployment(NS, f"pas-{OLD.key}")["spec"]["replicas"] == 4
    assert emulator.service(NS, "pas")["spec"]["selector"]["primum.dev/version"] == OLD.key  # type: ignore[index]


def test_a_canary_with_gateway_api_gets_exact_weights(tmp_path: Path, gateway_emulator: Emulator,
                                                      store_closer: list[Store]) -> None:
    emu = gateway_emulator
    e = estate(emu, {"type": "canary", "steps": [{"set_weight": 15}, {"pause": {"duration": 1}}]},
               traffic="gateway-api", gateway={"name": "public", "namespace": "gateways"})
    phase, store, routes = run(tmp_path, emu, e)
    store_closer.append(store)
    assert phase == "promoted", [ev.message for ev in store.events("rel-1")][-5:]
    new = next(k for k in emu.deployments(NS)).removeprefix("pas-")
    assert [w for w, _ in routes] == [{OLD.key: 100}, {OLD.key: 85, new: 15}, {new: 100}]
    split = [ev.data for ev in store.events("rel-1")
             if ev.kind == "router_config" and ev.data["weights"].get(new) == 15]
    assert split and split[0]["effective"] == {OLD.key: 85, new: 15}  # exact: no pod arithmetic
    assert [(r["name"], r["weight"]) for r in emu.route(NS, "pas")["spec"]["rules"][0]["backendRefs"]] == [
        (f"pas-{new}", 100)]
    assert emu.service(NS, f"pas-{OLD.key}") is None  # the old version's backend Service went with it
