"""Releases through the controller and the engine onto a real haproxy: first deploy, canary, rolling.

The controller runs on the wall clock (HAProxy's health checks are real), one environment of class
``nonprod`` (no approvals), strategies without analysis steps (the haproxy target has no builtin metrics).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from primum.adapters.store.repository import Store
from primum.adapters.targets.haproxy.target import HaproxyTarget
from primum.adapters.targets.local import processes
from primum.adapters.targets.registry import Targets
from primum.app.controller import Controller
from primum.app.releases import ReleaseService
from primum.core.model.estate import Estate
from primum.core.model.validate import runtime_spec
from tests.haproxy.harness import BACKEND, SLOTS, Haproxy, artifact, count_responses, start_haproxy


@pytest.fixture
def hap(tmp_path: Path) -> Iterator[Haproxy]:
    h = start_haproxy(tmp_path / "haproxy")
    try:
        yield h
    finally:
        h.stop()
        for child in processes.started_children():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)


def _estate(hap: Haproxy, strategy: dict, replicas: int = 1) -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "onprem",
        "environments": [{"name": "test", "class": "nonprod"}],
        "services": {"integration": {
            "owner": "t", "tier": "internal", "data_class": "none", "strategy": strategy,
            "target": {"type": "haproxy", "sockets": {"test": hap.socket}, "backend": BACKEND, "slots": SLOTS,
                       "frontends": {"test": hap.url}, "replicas": replicas, "startup_timeout": 15}}}})


def _release(tmp: Path, rid: str, variant: str) -> Path:
    ref = artifact(tmp, variant)
    path = tmp / f"{rid}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "primum/v1", "kind": "Release", "id": rid, "ticket": "CHG-TEST-1",
                                    "services": {"integration": {"artifact": Path(ref.artifact).name,
                                                                 "digest": ref.digest, "version": variant}}}))
    return path


def _drive(controller: Controller, service: ReleaseService, rid: str, hap: Haproxy, timeout: float = 60.0
           ) -> tuple[str, Counter[str]]:
    """Tick until the release ends; sample the traffic through HAProxy on the way."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        controller.tick()
        phase = service.get(rid).phase
        if phase in ("promoted", "rolled_back", "failed"):
            return phase, seen
        with contextlib.suppress(OSError):
            seen += count_responses(hap.url, 4)
        time.sleep(0.05)
    raise AssertionError(f"{rid} did not finish: {service.get(rid).phase}")


@pytest.mark.slow
@pytest.mark.parametrize("strategy,replicas", [
    ({"type": "canary", "steps": [{"set_weight": 25}, {"pause": {"duration": 2}}]}, 1),
    ({"type": "rolling", "max_unavailable": 1, "batch_analysis": 0}, 2),
    ({"type": "blue_green", "preview_analysis": 0, "post_analysis": 0, "scale_down_delay": 1}, 1),
])
def test_a_release_rolls_out_onto_haproxy(hap: Haproxy, tmp_path: Path, strategy: dict, replicas: int) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        service = ReleaseService(store)
        estate = _estate(hap, strategy, replicas)
        controller = Controller(store, Targets(tmp_path / "home"))
        service.submit(_release(tmp_path, "rel-1", "v1"), estate)
        phase, _ = _drive(controller, service, "rel-1", hap)
        assert phase == "promoted"
        assert count_responses(hap.url, 10) == {"v1": 10}
        service.submit(_release(tmp_path, "rel-2", "v2"), estate)
        phase, seen = _drive(controller, service, "rel-2", hap)
        assert phase == "promoted", service.status("rel-2")
        assert count_responses(hap.url, 10) == {"v2": 10}
        assert seen["v1"] > 0 and seen["v2"] > 0 and set(seen) == {"v1", "v2"}  # both served on the way
        target = controller.targets.for_service(estate, "integration")
        assert isinstance(target, HaproxyTarget)
        in_service = [s for s in target.servers(runtime_spec(estate, "test", "integration")).values() if not s.maint]
        assert len(in_service) == replicas  # the old version's slots are back in maintenance
    finally:
        store.close()

