"""Statements: every kind parses with in-toto-attestation and carries the release and artifact digests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as InTotoStatement

from primum.adapters.evidence.keys import Keyring, SigningKey
from primum.core.evidence import statements as st
from primum.core.evidence.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, VerificationError, sign
from primum.core.model.release import Release, canonical_digest

RELEASE_DIGEST = "sha256:" + hashlib.sha256(b"release").hexdigest()
API_DIGEST = "sha256:" + hashlib.sha256(b"api").hexdigest()
ENGINE_DIGEST = "sha256:" + hashlib.sha256(b"engine").hexdigest()
AT = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


@pytest.fixture
def subjects() -> list[dict[str, Any]]:
    return st.release_subjects("rel-42", RELEASE_DIGEST, {
        "scheduling-api": {"digest": API_DIGEST, "version": "1.4.2"},
        "hl7-engine": {"digest": ENGINE_DIGEST, "version": ""},
    })


def parse_with_in_toto(payload: bytes) -> statement_pb2.Statement:
    """Parse as the in-toto-attestation library does; unknown statement fields are errors."""
    pb = json_format.Parse(payload, statement_pb2.Statement())
    InTotoStatement.copy_from_pb(pb).validate()
    return pb


def provenance() -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://example.org/h/api",
                                                "path": ".github/workflows/release.yml"}},
            "internalParameters": {"github": {"event_name": "push"}},
            "resolvedDependencies": [{"uri": "git+https://example.org/h/api@refs/heads/main",
                                      "digest": {"gitCommit": "a" * 40}}],
        },
        "runDetails": {
            "builder": {"id": "https://github.com/actions/runner/github-hosted"},
            "metadata": {"invocationId": "https://example.org/h/api/actions/runs/1/attempts/1",
                         "startedOn": "2025-03-14T09:00:00Z"},
        },
    }


def every_kind(subjects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        "event": st.event_statement(subjects, kind="break_glass", message="break-glass by dr.ada: outage",
                                    at=AT, env="prod", service="scheduling-api", actor="dr.ada",
                                    data={"ticket": "INC-7", "approvals_skipped": 2}),
        "gate-pass": st.gate_statement(subjects, gate="analysis", passed=True, outcome="Successful", at=AT,
                                       reasons=["error rate 0.2% <= 1%"], properties=["PRIMUM_SLO_ERROR_RATE"],
                                       env="staging", service="scheduling-api", data={"p95_ms": 182.5}),
        "gate-fail": st.gate_statement(subjects, gate="policy", passed=False, outcome="deny", at=AT,
                                       reasons=["clinical-critical change outside a change window"]),
        "provenance": st.provenance_statement(subjects, provenance()),
        "test-result": st.suite_result_statement(
            subjects, result="PASSED", url="https://ci.example.org/runs/9",
            configuration=[{"name": "ci.yml", "digest": {"sha256": "b" * 64}}], passed_tests=["unit", "fhir"]),
        "vulns": st.vulns_statement(
            subjects, scanner_uri="pkg:github/aquasecurity/trivy@0.50.0", scanner_version="0.50.0",
            db_last_update=AT - timedelta(hours=6), scan_started=AT - timedelta(minutes=2), scan_finished=AT,
            results=[{"id": "CVE-2024-0001", "severity": [{"method": "nvd", "score": "medium"}]}]),
    }


@pytest.mark.parametrize("kind", ["event", "gate-pass", "gate-fail", "provenance", "test-result", "vulns"])
def test_every_statement_kind_parses_with_in_toto_attestation(subjects: list[dict[str, Any]], kind: str) -> None:
    stmt = every_kind(subjects)[kind]
    pb = parse_with_in_toto(st.serialize(stmt))
    assert pb.type == st.STATEMENT_TYPE
    assert pb.predicate_type == stmt["predicateType"]
    assert [(s.name, dict(s.digest)) for s in pb.subject] == [
        ("release:rel-42", {"sha256": RELEASE_DIGEST.removeprefix("sha256:")}),
        ("hl7-engine", {"sha256": ENGINE_DIGEST.removeprefix("sha256:")}),
        ("scheduling-api@1.4.2", {"sha256": API_DIGEST.removeprefix("sha256:")}),
    ]


def test_predicates_with_a_protobuf_schema_parse_strictly(subjects: list[dict[str, Any]]) -> None:
    kinds = every_kind(subjects)
    json_format.ParseDict(kinds["provenance"]["predicate"], provenance_pb2.Provenance())
    tr = json_format.ParseDict(kinds["test-result"]["predicate"], test_result_pb2.TestResult())
    assert tr.result == "PASSED" and list(tr.passed_tests) == ["unit", "fhir"]


def test_signed_statement_opens_and_parses(subjects: list[dict[str, Any]]) -> None:
    keyring = Keyring.generate()
    for stmt in every_kind(subjects).values():
        env = st.sign_statement(stmt, keyring.current)
        assert env.payload_type == PAYLOAD_TYPE_IN_TOTO
        assert st.open_statement(env.to_json(), keyring) == stmt
        parse_with_in_toto(Envelope.from_json(env.to_json()).payload)


def test_open_statement_refuses_a_signed_non_statement() -> None:
    keyring = Keyring.generate()
    env = sign(b'{"_type":"https://in-toto.io/Statement/v0.1"}', PAYLOAD_TYPE_IN_TOTO, keyring.current)
    with pytest.raises(VerificationError, match="Statement v1"):
        st.open_statement(env, keyring)


def test_subjects_of_a_model_release_carry_its_canonical_and_artifact_digests() -> None:
    release = Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": "rel-7",
        "services": {"scheduling-api": {"artifact": "a.tgz", "digest": API_DIGEST, "version": "2.0.0"}},
    })
    assert st.subjects_for_release(release) == [
        {"name": "release:rel-7", "digest": {"sha256": canonical_digest(release).removeprefix("sha256:")}},
        {"name": "scheduling-api@2.0.0", "digest": {"sha256": API_DIGEST.removeprefix("sha256:")}},
    ]


def test_event_predicate_has_exactly_the_documented_fields(subjects: list[dict[str, Any]]) -> None:
    predicate = st.event_statement(subjects, kind="submitted", message="submitted by ana", at=1_700_000_000)[
        "predicate"]
    assert predicate == {"kind": "submitted", "message": "submitted by ana", "env": "", "service": "",
                         "actor": "", "at": "2023-11-14T22:13:20Z", "data": {}}


def test_gate_properties_list_only_what_passed(subjects: list[dict[str, Any]]) -> None:
    kinds = every_kind(subjects)
    passed, failed = kinds["gate-pass"]["predicate"], kinds["gate-fail"]["predicate"]
    assert kinds["gate-pass"]["predicateType"] == "https://in-toto.io/attestation/svr/v0.1"
    assert passed["verifier"] == {"id": "https://primum.dev/verifiers/analysis/v1"}
    assert passed["properties"] == ["PRIMUM_ANALYSIS_PASSED", "PRIMUM_SLO_ERROR_RATE"]
    assert passed["timeCreated"] == "2025-03-14T09:26:53.589793Z"
    assert failed["properties"] == []  # a consumer that ignores primumGate still sees no pass
    assert failed["primumGate"]["passed"] is False and failed["primumGate"]["outcome"] == "deny"
    assert failed["primumGate"]["reasons"] == ["clinical-critical change outside a change window"]


def test_serialization_is_canonical(subjects: list[dict[str, Any]]) -> None:
    stmt = every_kind(subjects)["event"]
    payload = st.serialize(stmt)
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()
    assert st.serialize(json.loads(payload)) == payload


@pytest.mark.parametrize(("at", "expected"), [
    (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "2025-01-02T03:04:05Z"),
    (datetime(2025, 1, 2, 4, 4, 5, 120000, tzinfo=timezone(timedelta(hours=1))), "2025-01-02T03:04:05.120000Z"),
    (0, "1970-01-01T00:00:00Z"),
    (1.5, "1970-01-01T00:00:01.500000Z"),
])
def test_rfc3339_is_utc(at: datetime | float, expected: str) -> None:
    assert st.rfc3339(at) == expected


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: st.rfc3339(datetime(2025, 1, 1)), "no time zone"),
    (lambda s: st.rfc3339(float("nan")), "not a time"),
    (lambda s: st.release_subjects("r", "sha256:abc", {}), "release_digest"),
    (lambda s: st.release_subjects("r", RELEASE_DIGEST, {"api": {"digest": "md5:00"}}), "api.digest"),
    (lambda s: st.release_subjects("", RELEASE_DIGEST, {}), "release_id"),
    (lambda s: st.statement([], st.PRIMUM_EVENT_V1, {"a": 1}), "at least one subject"),
    (lambda s: st.statement([{"name": "x", "digest": {}}], st.PRIMUM_EVENT_V1, {"a": 1}), "digest"),
    (lambda s: st.statement(s, "", {"a": 1}), "predicateType"),
    (lambda s: st.statement(s, st.PRIMUM_EVENT_V1, {}), "non-empty"),
    (lambda s: st.event_statement(s, kind="Step Started", message="", at=0), "lowercase token"),
    (lambda s: st.event_statement(s, kind="step", message="", at=0, data={"x": float("inf")}), "plain JSON"),
    (lambda s: st.event_statement(s, kind="step", message="", at=0, data={"x": b"bytes"}), "plain JSON"),
    (lambda s: st.gate_statement(s, gate="vibes", passed=True, outcome="ok", at=0), "gate"),
    (lambda s: st.gate_statement(s, gate="probe", passed=True, outcome="ok", at=0, properties=["bad name"]),
     "UPPER_SNAKE_CASE"),
    (lambda s: st.provenance_statement(s, {"buildDefinition": {"buildType": "x", "externalParameters": {}}}),
     "runDetails.builder.id"),
    (lambda s: st.provenance_statement(s, {"runDetails": {"builder": {"id": "x"}}}), "buildType"),
    (lambda s: st.suite_result_statement(s, result="OK", configuration=[]), "PASSED, WARNED or FAILED"),
    (lambda s: st.suite_result_statement(s, result="PASSED", configuration=[], failed_tests=["a"]), "FAILED"),
    (lambda s: st.vulns_statement(s, scanner_uri="", db_last_update=0, results=[], scan_started=0,
                                  scan_finished=0), "scanner.uri"),
    (lambda s: st.vulns_statement(s, scanner_uri="x", db_last_update=0, results=[{"id": ""}], scan_started=0,
                                  scan_finished=0), r"scanner.result\[0\]"),
])
def test_invalid_input_is_refused_with_the_field(subjects: list[dict[str, Any]], call: Any, message: str) -> None:
    with pytest.raises(st.StatementError, match=message):
        call(subjects)


def test_the_documented_envelope_example_is_reproducible() -> None:
    # docs/EVIDENCE.md shows this statement signed by the RFC 8032 TEST 1 key; Ed25519 is deterministic.
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")))
    subjects = st.release_subjects("rel-42", RELEASE_DIGEST, {"scheduling-api": {"digest": API_DIGEST,
                                                                                  "version": "1.4.2"}})
    stmt = st.event_statement(subjects, kind="submitted", message="release rel-42 submitted by ana",
                              at=datetime(2025, 3, 14, 9, tzinfo=UTC), actor="ana", data={"ticket": "CHG-1042"})
    env = st.sign_statement(stmt, key).to_dict()
    assert env["signatures"] == [{
        "keyid": "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9",
        "sig": "FH82agslkhi0WXMP5nSr6xcWwxQgZRW0Y/IaytpTPLp285a/v3U/VV/pH+AySobtF5WYcn9e34Ugmsf8EDeWBw==",
    }]
