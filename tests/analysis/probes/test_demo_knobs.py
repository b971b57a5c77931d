"""The build knobs that make deliberately broken demo services for the probe tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from primum.demo.render import BUILD_BEGIN, BUILD_END, SERVICES, render_artifact, template_source, write_artifact


def block(source: str) -> str:
    return source[source.index(BUILD_BEGIN) : source.index(BUILD_END)]


def constants(source: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(block(source), "block", "exec"), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}


def test_knobs_live_in_their_services_blocks_only() -> None:
    for service in SERVICES:
        names = set(constants(template_source(service)))
        extra = names - {"VERSION", "EXTRA_LATENCY_MS", "ERROR_RATE", "FAULT_TENANTS"}
        assert extra == {"fhir-gateway": {"FHIR_VERSION"}, "hl7-interface": {"MLLP_MODE"}}.get(service, set())
        assert render_artifact(service, "1.0.0") == template_source(service)
    assert constants(template_source("fhir-gateway"))["FHIR_VERSION"] == "4.0.1"
    assert constants(template_source("hl7-interface"))["MLLP_MODE"] == "ack"


def test_knobs_rewrite_the_block() -> None:
    fhir = render_artifact("fhir-gateway", "3.0.0", fhir_version="3.0.2", error_rate=0.5)
    assert constants(fhir)["FHIR_VERSION"] == "3.0.2"
    assert constants(fhir)["ERROR_RATE"] == 0.5
    assert fhir.split(BUILD_END)[1] == template_source("fhir-gateway").split(BUILD_END)[1]
    for mode in ("ack", "nak", "silent"):
        assert constants(render_artifact("hl7-interface", "2.0.0", mllp_mode=mode))["MLLP_MODE"] == mode


def test_knobs_change_the_digest(tmp_path: Path) -> None:
    _, good = write_artifact(tmp_path / "a", "hl7-interface", "2.0.0")
    _, broken = write_artifact(tmp_path / "b", "hl7-interface", "2.0.0", mllp_mode="silent")
    _, same = write_artifact(tmp_path / "c", "hl7-interface", "2.0.0", mllp_mode="ack")
    assert good != broken
    assert good == same


@pytest.mark.parametrize(
    ("service", "knobs", "message"),
    [
        ("fhir-gateway", {"fhir_version": "R4"}, "fhir_version must look like 4.0.1"),
        ("fhir-gateway", {"fhir_version": '4.0.1"; import os'}, "fhir_version"),
        ("fhir-gateway", {"fhir_version": 4}, "fhir_version"),
        ("hl7-interface", {"mllp_mode": "loud"}, "mllp_mode must be one of ack, nak, silent"),
        ("patient-portal", {"fhir_version": "3.0.2"}, "fhir_version applies only to fhir-gateway"),
        ("fhir-gateway", {"mllp_mode": "nak"}, "mllp_mode applies only to hl7-interface"),
    ],
)
def test_bad_knobs_are_rejected(service: str, knobs: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        render_artifact(service, "1.0.0", **knobs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        write_artifact(tmp_path, service, "1.0.0", **knobs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_defaults_are_accepted_everywhere() -> None:
    for service in SERVICES:
        render_artifact(service, "1.0.0", fhir_version="4.0.1", mllp_mode="ack")
