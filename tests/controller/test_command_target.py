"""The controller with the real target registry and the `command` target (apply strategy): a release is
applied and promoted, and a failing verify reverts, through the store, the leases and the events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from primum.adapters.store.repository import Store
from primum.adapters.targets.registry import Targets
from primum.app.controller import Controller
from primum.app.releases import ReleaseService
from primum.core.model.estate import Estate

from .noop_estate import write_release

pytestmark = pytest.mark.slow


def _estate(root: Path) -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "command-hospital",
        "environments": [{"name": "staging", "class": "nonprod"}],
        "services": {"legacy": {
            "owner": "t", "tier": "internal", "data_class": "none", "strategy": {"type": "apply"},
            "target": {"type": "command",
                       "deploy": {"run": f"cp {root}/current {root}/was 2>/dev/null; cp {{artifact}} {root}/current"},
                       "verify": {"run": "grep -q legacy {artifact} && ! grep -q 3.0 {artifact}"},
                       "revert": {"run": f"cp {root}/was {root}/current; echo reverted >> {root}/log"}}}},
    })


def _drive(controller: Controller, service: ReleaseService, rid: str) -> str:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        controller.tick()
        phase = service.get(rid).phase
        if phase in ("promoted", "rolled_back", "failed"):
            return phase
        time.sleep(0.05)
    raise AssertionError(f"{rid} did not finish: {service.get(rid).phase}")


def test_the_controller_applies_promotes_and_reverts_through_the_command_target(tmp_path: Path) -> None:
    root = tmp_path / "host"
    root.mkdir()
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    targets = Targets(tmp_path / "home")
    try:
        service = ReleaseService(store)
        e = _estate(root)
        controller = Controller(store, targets)
        for rid, version, want in (("rel-1", "1.0", "promoted"), ("rel-2", "2.0", "promoted"),
                                   ("rel-3", "3.0", "rolled_back")):
            service.submit(write_release(tmp_path, rid, ["legacy"], version), e)
            assert _drive(controller, service, rid) == want
        assert (root / "current").read_text() == "legacy 2.0"  # the failed 3.0 was reverted to 2.0
        assert (root / "log").read_text() == "reverted\n"
        events = store.events("rel-3")
        started = [ev for ev in events if ev.kind == "rollback_started"]
        assert started and "verify command exited 1" in started[0].message
    finally:
        targets.close()
        store.close()
