"""FHIR probe: against the rendered fhir-gateway as a real process, and edge cases locally."""

from __future__ import annotations

import pytest

from primum.adapters.probes import ProbeContext, run_probe
from primum.core.model.analysis import FhirProbe

from .conftest import DemoStarter, LocalHttp, free_port

GATEWAY_RESOURCES = {
    "Patient": ["read", "search-type"],
    "Appointment": ["read", "search-type"],
    "Encounter": ["read"],
    "Observation": ["search-type"],
}


@pytest.mark.slow
def test_gateway_passes(demo: DemoStarter) -> None:
    gateway = demo("fhir-gateway", "1.0.0")
    result = run_probe(FhirProbe(resources=GATEWAY_RESOURCES), ProbeContext(base_url=gateway.base_url))
    assert result.ok, result.reason
    assert result.probe == "fhir"
    assert result.target == gateway.base_url + "/metadata"
    assert result.details["fhirVersion"] == "4.0.1"
    assert result.details["status"] == "active"
    assert result.details["kind"] == "instance"
    assert result.details["format"] == ["json"]
    assert result.details["software"] == {"name": "fhir-gateway", "version": "1.0.0"}
    assert result.details["resources"]["Patient"] == ["read", "search-type"]
    assert result.details["content_type"].startswith("application/fhir+json")
    assert result.latency_ms is not None


@pytest.mark.slow
def test_wrong_fhir_version_fails(demo: DemoStarter) -> None:
    gateway = demo("fhir-gateway", "3.0.0", fhir_version="3.0.2")
    result = run_probe(FhirProbe(base=gateway.base_url), ProbeContext())
    assert not result.ok
    assert result.reason == (
        f"the CapabilityStatement at {gateway.base_url}/metadata declares fhirVersion '3.0.2', expected '4.0.1'"
    )
    assert result.details["fhirVersion"] == "3.0.2"
    # the same server passes a probe that expects STU3
    assert run_probe(FhirProbe(base=gateway.base_url, fhir_version="3.0.2"), ProbeContext()).ok


@pytest.mark.slow
def test_missing_resource_or_interaction_fails(demo: DemoStarter) -> None:
    gateway = demo("fhir-gateway")
    spec = FhirProbe(resources={"Patient": ["read", "create"], "Medication": ["read"], "Observation": ["read"]})
    result = run_probe(spec, ProbeContext(base_url=gateway.base_url))
    assert not result.ok
    assert "lists no server resource Medication (read)" in result.reason
    assert "lacks interaction(s) Patient create" in result.reason
    assert "Observation" not in result.reason
    assert result.details["missing"] == {"Patient": ["create"], "Medication": ["read"]}


@pytest.mark.slow
def test_headers_and_accept_reach_the_gateway_through_base(demo: DemoStarter) -> None:
    gateway = demo("fhir-gateway")
    ctx = ProbeContext(base_url=gateway.base_url + "/", headers={"x-tenant-id": "clinic-north"})
    assert run_probe(FhirProbe(), ctx).ok


def test_accept_header_and_client_mode_resources(local_http: LocalHttp) -> None:
    base = local_http.base_url + "/good"
    ctx = ProbeContext(headers={"x-primum-preview": "1", "accept": "text/html"})
    assert run_probe(FhirProbe(base=base, resources={"Patient": ["read"]}), ctx).ok
    _, path, headers = local_http.seen[-1]
    sent = {k.lower(): v for k, v in headers.items()}
    assert path == "/good/metadata"
    assert sent["accept"] == "application/fhir+json"
    assert sent["x-primum-preview"] == "1"
    # Medication is only listed for mode "client": it does not count
    result = run_probe(FhirProbe(base=base, resources={"Medication": ["read"]}), ctx)
    assert not result.ok
    assert "lists no server resource Medication (read)" in result.reason


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("draft", "has status 'draft', expected 'active'"),
        ("patient", "answered 'Patient', expected a CapabilityStatement"),
        ("list", "answered 'list', expected a CapabilityStatement"),
        ("garbage", "answered 200 but not JSON, expected a CapabilityStatement"),
        ("missing", "answered 404, expected 200 with a CapabilityStatement"),
    ],
)
def test_bad_metadata_fails(local_http: LocalHttp, variant: str, expected: str) -> None:
    result = run_probe(FhirProbe(base=f"{local_http.base_url}/{variant}"), ProbeContext())
    assert not result.ok
    assert expected in result.reason
    assert f"{local_http.base_url}/{variant}/metadata" in result.reason


def test_refused_and_missing_base_fail() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    refused = run_probe(FhirProbe(base=base, timeout=1), ProbeContext())
    assert not refused.ok
    assert refused.reason == f"GET {base}/metadata could not connect: connection refused"
    nowhere = run_probe(FhirProbe(), ProbeContext())
    assert not nowhere.ok
    assert "no base URL" in nowhere.reason
