"""policy_input: the input document contract, effective strategy and analysis seconds."""

from __future__ import annotations

from typing import Any

import pytest

from primum.adapters.policy import analysis_seconds, policy_input
from primum.core.model.estate import BlueGreenStrategy, CanaryStrategy, Estate, RollingStrategy
from primum.core.model.release import Release, canonical_digest

NOW = 1_798_761_600.25


def make_estate(**service: Any) -> Estate:
    svc = {"owner": "team-a", "tier": "business", "data_class": "none", **service}
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "test-estate",
        "environments": [{"name": "preview", "class": "ephemeral"}, {"name": "staging", "class": "nonprod"},
                         {"name": "prod", "class": "prod"}],
        "services": {"svc": svc, "other": {"owner": "team-b", "tier": "internal", "data_class": "none"}},
    })


def make_release(**pin: Any) -> Release:
    return Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": "rel-1", "description": "a test release",
        "ticket": "CHG-7", "source_commit": "abcdef1",
        "services": {"svc": {"artifact": "svc.py", "digest": "sha256:" + "1" * 64, "version": "1.2.3", **pin}},
    })


def test_document_shape() -> None:
    estate = make_estate(tier="clinical-critical", data_class="phi", touches=["integration-engine"],
                         depends_on=["other"], probes=[{"name": "ping", "probe": {"type": "http"}}])
    release = make_release()
    digest = canonical_digest(release)
    doc = policy_input(estate, release, digest, "staging", now=NOW,
                       checks={"previous_environment_passed": True, "required": ["unit", "scan"], "green": ["unit"]})
    assert doc["release"] == {
        "id": "rel-1", "digest": digest, "description": "a test release", "ticket": "CHG-7",
        "source_commit": "abcdef1",
        "services": {"svc": {"digest": "sha256:" + "1" * 64, "version": "1.2.3", "strategy": None}},
    }
    assert doc["environment"] == {"name": "staging", "class": "nonprod", "index": 1, "first": False, "last": False}
    assert doc["estate"] == {"name": "test-estate"}
    assert list(doc["services"]) == ["svc"]  # only the services the release changes
    svc = doc["services"]["svc"]
    assert svc["tier"] == "clinical-critical" and svc["data_class"] == "phi"
    assert svc["touches"] == ["integration-engine"] and svc["depends_on"] == ["other"]
    assert svc["owner"] == "team-a" and svc["template"] is None
    assert svc["strategy"]["type"] == "canary"
    assert svc["analysis_seconds"] == 60 and isinstance(svc["analysis_seconds"], int)
    assert svc["has_probe_gates"] is True
    assert doc["checks"] == {"previous_environment_passed": True, "required": ["scan", "unit"], "green": ["unit"]}
    assert doc["emergency"] is False
    assert doc["now_ns"] == 1_798_761_600_250_000_000


def test_first_and_last_environment() -> None:
    estate, release = make_estate(), make_release()
    first = policy_input(estate, release, "d", "preview", now=NOW)["environment"]
    last = policy_input(estate, release, "d", "prod", now=NOW)["environment"]
    assert (first["index"], first["first"], first["last"]) == (0, True, False)
    assert (last["index"], last["first"], last["last"]) == (2, False, True)


def test_no_checks_means_unknown() -> None:
    doc = policy_input(make_estate(), make_release(), "d", "prod", now=NOW, emergency=True)
    assert doc["checks"] == {"previous_environment_passed": None, "required": [], "green": []}
    assert doc["emergency"] is True


def test_release_strategy_overrides_the_service_strategy() -> None:
    override = {"type": "blue_green", "preview_analysis": 5, "post_analysis": 7}
    doc = policy_input(make_estate(), make_release(strategy=override), "d", "prod", now=NOW)
    assert doc["release"]["services"]["svc"]["strategy"]["type"] == "blue_green"
    assert doc["services"]["svc"]["strategy"]["type"] == "blue_green"
    assert doc["services"]["svc"]["analysis_seconds"] == 12


def test_pure_and_deterministic() -> None:
    estate, release = make_estate(), make_release()
    assert policy_input(estate, release, "d", "prod", now=NOW) == policy_input(estate, release, "d", "prod", now=NOW)


def test_unknown_environment() -> None:
    with pytest.raises(KeyError):
        policy_input(make_estate(), make_release(), "d", "nowhere", now=NOW)


@pytest.mark.parametrize(("strategy", "replicas", "seconds"), [
    (CanaryStrategy(), 1, 60.0),
    (CanaryStrategy.model_validate({"steps": [{"set_weight": 50}, {"pause": {"duration": 30}}]}), 1, 0.0),
    (CanaryStrategy.model_validate({"steps": [{"analysis": {"duration": "2m"}}, {"probe": ["x"]}]}), 1, 120.0),
    (BlueGreenStrategy(preview_analysis=10, post_analysis=0), 1, 10.0),
    (RollingStrategy(batch_analysis=30), 1, 0.0),  # one batch: nothing left to analyse between batches
    (RollingStrategy(batch_analysis=30), 2, 30.0),
    (RollingStrategy(batch_analysis=30, max_unavailable=2), 5, 60.0),
])
def test_analysis_seconds_follows_the_engine(strategy: Any, replicas: int, seconds: float) -> None:
    assert analysis_seconds(strategy, replicas) == seconds


def test_evidence_defaults_to_all_absent_for_every_changed_service() -> None:
    from primum.adapters.evidence.ingest import evidence_summary

    doc = policy_input(make_estate(), make_release(), "d", "prod", now=NOW)
    assert doc["evidence"] == {"svc": evidence_summary([])}
    assert doc["evidence"]["svc"]["tests"] == {"present": False, "passed": False, "failed": 0, "total": 0}


def test_evidence_is_passed_per_service_and_completed() -> None:
    from primum.adapters.evidence.ingest import evidence_summary

    tests = {"present": True, "passed": False, "failed": 3, "total": 40}
    doc = policy_input(make_estate(), make_release(), "d", "prod", now=NOW,
                       evidence={"svc": {"tests": tests, "vulns": {"present": True, "critical": 1}},
                                 "other": {"tests": tests}})  # not changed by the release: left out
    assert list(doc["evidence"]) == ["svc"]
    expected = evidence_summary([])
    expected["tests"] = tests
    expected["vulns"] = {"present": True, "critical": 1, "high": 0}  # missing fields filled in
    assert doc["evidence"]["svc"] == expected
