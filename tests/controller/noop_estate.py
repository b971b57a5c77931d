"""Small noop-target estates and releases for controller tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from primum.core.model.estate import Estate


def estate_doc(name: str = "noop-hospital", steps: list | None = None) -> dict:
    return {
        "apiVersion": "primum/v1", "kind": "Estate", "name": name,
        "environments": [{"name": "staging", "class": "nonprod"}, {"name": "prod", "class": "prod"}],
        "services": {
            "api": {"owner": "t", "tier": "internal", "data_class": "none", "target": {"type": "noop"},
                    "strategy": {"type": "canary", "steps": steps or [
                        {"set_weight": 20}, {"pause": {"duration": 1}}, {"set_weight": 60},
                        {"pause": {"duration": 1}}]}},
            "web": {"owner": "t", "tier": "internal", "data_class": "none", "target": {"type": "noop"},
                    "depends_on": ["api"],
                    "strategy": {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {"duration": 1}}]}},
        },
    }


def write_release(tmp: Path, rid: str, services: list[str], version: str = "2.0") -> Path:
    pins = {}
    for svc in services:
        art = tmp / f"{svc}-{version}.bin"
        art.write_bytes(f"{svc} {version}".encode())
        pins[svc] = {"artifact": art.name, "digest": "sha256:" + hashlib.sha256(art.read_bytes()).hexdigest(),
                     "version": version}
    path = tmp / f"{rid}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "primum/v1", "kind": "Release", "id": rid,
                                    "ticket": "CHG-TEST-1", "services": pins}))
    return path


def estate(name: str = "noop-hospital", steps: list | None = None) -> Estate:
    return Estate.model_validate(estate_doc(name, steps))
