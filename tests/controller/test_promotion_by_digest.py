"""Promotion by digest: an artifact digest enters an environment only after it passed the one before it,
and a rebuilt artifact (same version label, new digest) starts again at the first environment."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from primum.adapters.store.records import NewEvent
from primum.adapters.store.repository import Store
from primum.app.gate import Gatekeeper
from primum.app.releases import ReleaseService
from primum.core.model.estate import Estate
from tests.controller.noop_estate import estate_doc, write_release

T0 = 1_700_000_000.0


def setup(tmp_path: Path) -> tuple[Store, Estate, ReleaseService]:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}", keys=tmp_path / "keys")
    estate = Estate.model_validate(estate_doc())
    return store, estate, ReleaseService(store, clock=lambda: T0)


def test_an_artifact_enters_prod_only_after_it_passed_staging(tmp_path: Path) -> None:
    store, estate, service = setup(tmp_path)
    record = service.submit(write_release(tmp_path, "rel-1", ["api"], "2.0"), estate).record
    governance = Gatekeeper(store)
    assert governance.promotion(estate, record, "staging") is None  # the first environment
    why = governance.promotion(estate, record, "prod")
    assert why is not None and "api sha256:" in why and "has not passed staging" in why
    gate, _events = governance.gate(estate, record, "prod", starting=True, now=T0)
    assert not gate.allowed and gate.blocked_by == "policy" and "promotion by digest" in gate.reason

    store.add_events("rel-1", [NewEvent(kind="item_succeeded", message="ok", env="staging", service="api")], T0)
    assert governance.promotion(estate, record, "prod") is None


def test_a_rebuilt_artifact_starts_again_at_the_first_environment(tmp_path: Path) -> None:
    store, estate, service = setup(tmp_path)
    first = service.submit(write_release(tmp_path, "rel-1", ["api"], "2.0"), estate).record
    store.add_events("rel-1", [NewEvent(kind="item_succeeded", message="ok", env="staging", service="api")], T0)
    # the same version, rebuilt: other bytes, so another digest
    rebuilt_dir = tmp_path / "rebuilt"
    rebuilt_dir.mkdir()
    path = write_release(rebuilt_dir, "rel-2", ["api"], "2.0")
    (rebuilt_dir / "api-2.0.bin").write_bytes(b"api 2.0, rebuilt with another compiler")
    doc = yaml.safe_load(path.read_text())
    rebuilt = hashlib.sha256((rebuilt_dir / "api-2.0.bin").read_bytes()).hexdigest()
    doc["services"]["api"]["digest"] = f"sha256:{rebuilt}"
    path.write_text(yaml.safe_dump(doc))
    second = service.submit(path, estate).record
    assert second.release["release"]["services"]["api"]["digest"] != first.release["release"]["services"]["api"][
        "digest"]
    governance = Gatekeeper(store)
    assert governance.promotion(estate, first, "prod") is None
    why = governance.promotion(estate, second, "prod")
    assert why is not None and "has not passed staging" in why and "starts again at staging" in why
