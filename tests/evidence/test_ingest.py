"""CI evidence ingest: each format becomes a Statement v1 about one artifact, and bad files fail closed."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as InTotoStatement

from primum.adapters.evidence import ingest
from primum.adapters.evidence.ingest import IngestError, detect_format, evidence_summary, ingest_file
from primum.adapters.evidence.ingest.base import Format, Source
from primum.adapters.evidence.ingest.registry import INGEST_FORMATS
from primum.adapters.evidence.keys import Keyring, key_id
from primum.core.evidence import statements as st
from primum.core.model.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
ARTIFACT = "3429d4b1abfc8acf19079d51ac091f911f03d5d7aed9178cb99e30cd465d7eae"
SUBJECT = {"name": "scheduling-api@1.4.2", "digest": {"sha256": ARTIFACT}}
NOW = 1_798_761_600.0
# The key that signed slsa-dsse.json and slsa-sigstore-bundle.json: Ed25519 seed 00 01 02 ... 1f
# (a test key: never use it for real evidence).
CI_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BUILDER = "https://ci.st-elsewhere.example/builders/hosted@v1"
BUILD_TYPE = "https://ci.st-elsewhere.example/buildtypes/pipeline/v1"

FORMATS = {
    "slsa-statement.json": "slsa",
    "slsa-dsse.json": "slsa",
    "slsa-sigstore-bundle.json": "slsa",
    "junit-pass.xml": "junit",
    "junit-fail.xml": "junit",
    "junit-empty.xml": "junit",
    "codeql.sarif": "sarif",
    "trivy.json": "trivy",
    "grype.json": "grype",
    "cyclonedx.json": "cyclonedx",
}


def run(name: str | Path, **kwargs: Any) -> ingest.Ingested:
    path = name if isinstance(name, Path) else FIXTURES / name
    return ingest_file(path, subject=SUBJECT, now=NOW, **kwargs)


def parse_with_in_toto(stmt: dict[str, Any]) -> statement_pb2.Statement:
    pb = json_format.Parse(st.serialize(stmt), statement_pb2.Statement())
    InTotoStatement.copy_from_pb(pb).validate()
    return pb


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def sarif(results: list[dict[str, Any]], rules: list[dict[str, Any]] | None = None,
          name: str = "scanner-x") -> str:
    driver: dict[str, Any] = {"name": name, "rules": rules or []}
    return json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": results}]})


# --- detection ----------------------------------------------------------------------------------


def test_every_fixture_is_covered() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(FORMATS)


@pytest.mark.parametrize(("name", "fmt"), sorted(FORMATS.items()))
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(FIXTURES / name) == fmt


def test_detection_reads_the_content_not_the_extension(tmp_path: Path) -> None:
    assert detect_format(shutil.copy(FIXTURES / "trivy.json", tmp_path / "report.xml")) == "trivy"
    assert detect_format(shutil.copy(FIXTURES / "junit-pass.xml", tmp_path / "tests.json")) == "junit"
    assert detect_format(shutil.copy(FIXTURES / "codeql.sarif", tmp_path / "scan.txt")) == "sarif"


@pytest.mark.parametrize("content", [
    '{"hello": "world"}', "[1, 2, 3]", "<html><body>not a report</body></html>", "plain text\n",
    '{"_type": "https://in-toto.io/Statement/v0.1"}' "\n" '{"x": 1}',
])
def test_unknown_content_is_refused_naming_the_file_and_the_fix(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, "mystery.out", content)
    with pytest.raises(IngestError) as exc:
        detect_format(path)
    assert isinstance(exc.value, InputError)
    assert str(path) in str(exc.value) and "fix:" in str(exc.value)


# --- slsa ---------------------------------------------------------------------------------------


def test_slsa_statement() -> None:
    result = run("slsa-statement.json")
    source = json.loads((FIXTURES / "slsa-statement.json").read_text())
    assert result.kind == "slsa"
    assert result.statement == st.provenance_statement([SUBJECT], source["predicate"])
    assert result.statement["subject"] == [SUBJECT]  # only the artifact, whatever else the build made
    assert result.summary == {"builder": BUILDER, "build_type": BUILD_TYPE, "signature": "unverified"}
    parse_with_in_toto(result.statement)
    json_format.ParseDict(result.statement["predicate"], provenance_pb2.Provenance())


@pytest.mark.parametrize("name", ["slsa-dsse.json", "slsa-sigstore-bundle.json"])
def test_signed_provenance_is_verified_with_a_trusted_key(name: str) -> None:
    assert run(name).summary["signature"] == "unverified"  # no key given: nothing checked
    verified = run(name, trusted_keys=[CI_KEY.public_key()])
    assert verified.summary == {"builder": BUILDER, "build_type": BUILD_TYPE, "signature": "verified"}
    assert verified.statement == run("slsa-statement.json").statement
    assert run(name, trusted_keys={key_id(CI_KEY.public_key()): CI_KEY.public_key()}).summary["signature"] == \
        "verified"
    assert run(name, trusted_keys=Keyring(None, [CI_KEY.public_key()])).summary["signature"] == "verified"


@pytest.mark.parametrize("name", ["slsa-dsse.json", "slsa-sigstore-bundle.json"])
def test_a_signature_that_does_not_verify_under_the_trusted_keys_is_refused(name: str) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(IngestError, match="does not verify under the trusted keys") as exc:
        run(name, trusted_keys=[other])
    assert exc.value.field == "signatures"
    with pytest.raises(IngestError, match="no trusted key"):
        run(name, trusted_keys=[])


def test_a_tampered_envelope_is_refused(tmp_path: Path) -> None:
    env = json.loads((FIXTURES / "slsa-dsse.json").read_text())
    stmt = json.loads((FIXTURES / "slsa-statement.json").read_text())
    stmt["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    env["payload"] = base64.b64encode(st.serialize(stmt)).decode()
    path = write(tmp_path, "tampered.json", json.dumps(env))
    assert run(path).summary["builder"] == "https://evil.example/builder"  # unverified: as given
    with pytest.raises(IngestError, match="does not verify"):
        run(path, trusted_keys=[CI_KEY.public_key()])


def test_provenance_must_cover_the_artifact() -> None:
    other = "0" * 64
    with pytest.raises(IngestError) as exc:
        ingest_file(FIXTURES / "slsa-statement.json", subject={"name": "x", "digest": {"sha256": other}}, now=NOW)
    assert f"provenance in {FIXTURES / 'slsa-statement.json'} does not cover sha256:{other}" in str(exc.value)
    assert exc.value.field == "subject"


@pytest.mark.parametrize(("patch", "field", "text"), [
    ({"predicateType": "https://slsa.dev/provenance/v0.2"}, "predicateType", "older v0.2"),
    ({"_type": "https://in-toto.io/Statement/v0.1"}, "_type", "Statement v1"),
    ({"subject": "everything"}, "subject", "list of subjects"),
    ({"predicate": {"buildDefinition": {"buildType": "x", "externalParameters": {}}, "runDetails": {}}},
     "predicate.runDetails.builder.id", "builder.id"),
])
def test_bad_provenance_names_the_field(tmp_path: Path, patch: dict[str, Any], field: str, text: str) -> None:
    doc = {**json.loads((FIXTURES / "slsa-statement.json").read_text()), **patch}
    with pytest.raises(IngestError, match=text) as exc:
        run(write(tmp_path, "prov.json", json.dumps(doc)))
    assert exc.value.field == field and "fix:" in str(exc.value)


def test_an_envelope_of_another_payload_type_is_refused(tmp_path: Path) -> None:
    env = {**json.loads((FIXTURES / "slsa-dsse.json").read_text()), "payloadType": "text/plain"}
    with pytest.raises(IngestError, match="payload type"):
        run(write(tmp_path, "env.json", json.dumps(env)))


# --- junit --------------------------------------------------------------------------------------


def test_junit_pass() -> None:
    result = run("junit-pass.xml")
    assert result.summary == {"result": "PASSED", "total": 5, "passed": 4, "failed": 0, "skipped": 1}
    predicate = result.statement["predicate"]
    assert result.statement["predicateType"] == st.TEST_RESULT_V0_1
    assert predicate["passedTests"][:2] == ["tests.test_slots.test_search_returns_free_slots",
                                            "tests.test_slots.test_search_respects_clinic_hours"]
    assert len(predicate["passedTests"]) == 4 and predicate["failedTests"] == []
    digest = hashlib.sha256((FIXTURES / "junit-pass.xml").read_bytes()).hexdigest()
    assert predicate["configuration"] == [{"name": "junit-pass.xml", "digest": {"sha256": digest}}]
    assert result.file_sha256 == digest
    assert "example-0001" not in json.dumps(result.statement)  # system-out is not copied
    parse_with_in_toto(result.statement)
    json_format.ParseDict(predicate, test_result_pb2.TestResult())


def test_junit_fail_keeps_names_never_messages() -> None:
    result = run("junit-fail.xml")
    assert result.summary == {"result": "FAILED", "total": 4, "passed": 2, "failed": 2, "skipped": 0}
    predicate = result.statement["predicate"]
    assert predicate["result"] == "FAILED"
    assert predicate["failedTests"] == ["tests.test_slots.test_search_is_fast",
                                        "tests.test_booking.test_reminder_is_sent"]
    text = json.dumps(result.statement)
    for leaked in ("hunter2", "s3cret", "Jane Roe", "1970-01-01", "0042", "ConnectionRefused"):
        assert leaked not in text


def test_junit_with_no_tests_is_not_a_pass() -> None:
    result = run("junit-empty.xml")
    assert result.summary == {"result": "FAILED", "total": 0, "passed": 0, "failed": 0, "skipped": 0,
                              "note": "no tests ran"}
    assert result.statement["predicate"]["result"] == "FAILED"


def test_junit_with_only_skipped_tests_is_not_a_pass(tmp_path: Path) -> None:
    path = write(tmp_path, "skipped.xml", '<testsuite name="s"><testcase name="a"><skipped/></testcase></testsuite>')
    assert run(path).summary == {"result": "FAILED", "total": 1, "passed": 0, "failed": 0, "skipped": 1,
                                 "note": "no tests ran"}


def test_junit_suite_level_error_and_nested_suites(tmp_path: Path) -> None:
    path = write(tmp_path, "nested.xml", (
        '<testsuites><testsuite name="outer"><testsuite name="inner">'
        '<testcase classname="c" name="ok"/></testsuite></testsuite>'
        '<testsuite name="broken"><error message="import failed"/></testsuite></testsuites>'))
    result = run(path)
    assert result.summary["result"] == "FAILED"
    assert result.statement["predicate"]["failedTests"] == ["broken"]
    assert result.statement["predicate"]["passedTests"] == ["c.ok"]


def test_secrets_in_test_names_are_redacted(tmp_path: Path) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    path = write(tmp_path, "leaky.xml", f'<testsuite name="s"><testcase classname="t" name="login[{token}]"/>'
                                        '</testsuite>')
    result = run(path)
    assert token not in json.dumps(result.statement)
    assert result.redactions and result.redactions[0].path.startswith("/passedTests/0")


def test_xml_entity_expansion_is_refused(tmp_path: Path) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            '<testsuite name="s"><testcase name="&lol2;"/></testsuite>')
    with pytest.raises(IngestError, match="XML refused"):
        run(write(tmp_path, "bomb.xml", bomb))


# --- scans --------------------------------------------------------------------------------------


def test_sarif() -> None:
    result = run("codeql.sarif")
    assert result.summary == {"scanner": "CodeQL", "critical": 1, "high": 1, "medium": 1, "low": 1, "unknown": 0}
    assert result.statement["predicateType"] == st.VULNS_V0_2
    scanner = result.statement["predicate"]["scanner"]
    assert scanner["uri"] == "https://codeql.github.com" and scanner["version"] == "2.19.3"
    assert scanner["result"] == [
        {"id": "py/sql-injection", "severity": [{"method": "CVSSv3", "score": "9.8"}]},
        {"id": "py/clear-text-logging-sensitive-data", "severity": [{"method": "CVSSv3", "score": "7.5"}]},
        {"id": "py/weak-sensitive-data-hashing", "severity": [{"method": "CVSSv3", "score": "5.3"}]},
        {"id": "py/unused-import", "severity": [{"method": "SARIF level", "score": "note"}]},
    ]  # the `pass` result is not a finding
    assert result.statement["predicate"]["metadata"] == {"scanStartedOn": "2026-11-03T09:13:10.123000Z",
                                                         "scanFinishedOn": "2026-11-03T09:16:44.987000Z"}
    assert "SQL query" not in json.dumps(result.statement)  # messages are not copied
    parse_with_in_toto(result.statement)


def test_sarif_levels_without_a_security_severity(tmp_path: Path) -> None:
    rules = [{"id": "r-default-error", "defaultConfiguration": {"level": "error"}},
             {"id": "r-bad-score", "properties": {"security-severity": "high"}}]
    results = [{"ruleId": "a", "level": "error"}, {"ruleId": "b", "level": "warning"},
               {"ruleId": "c", "level": "note"}, {"ruleId": "d", "level": "none"},
               {"ruleId": "e"},  # SARIF's default level is warning
               {"ruleId": "r-default-error"}, {"ruleId": "r-bad-score", "level": "note"},
               {"rule": {"id": "via-reference"}, "level": "error"}]
    result = run(write(tmp_path, "x.sarif", sarif(results, rules)))
    assert result.summary == {"scanner": "scanner-x", "critical": 0, "high": 3, "medium": 2, "low": 2,
                              "unknown": 1}
    found = result.statement["predicate"]["scanner"]["result"]
    assert found[0] == {"id": "a", "severity": [{"method": "SARIF level", "score": "error"}]}
    assert found[4]["severity"] == [{"method": "SARIF level", "score": "warning"}]
    assert found[-1]["id"] == "via-reference"
    assert result.statement["predicate"]["scanner"]["uri"] == "scanner-x"  # no informationUri: the name
    assert result.statement["predicate"]["metadata"]["scanFinishedOn"] == st.rfc3339(NOW)  # no times given


@pytest.mark.parametrize(("score", "band"), [("9.0", "critical"), (10, "critical"), ("8.9", "high"), (7, "high"),
                                              ("6.9", "medium"), ("4.0", "medium"), ("3.9", "low"), ("0.1", "low"),
                                              ("0", "unknown")])
def test_sarif_security_severity_bands(tmp_path: Path, score: Any, band: str) -> None:
    rules = [{"id": "r", "properties": {"security-severity": score}}]
    summary = run(write(tmp_path, "x.sarif", sarif([{"ruleId": "r", "level": "note"}], rules))).summary
    assert summary[band] == 1 and sum(summary[k] for k in ingest.SEVERITIES) == 1


@pytest.mark.parametrize(("doc", "field"), [
    ({"version": "2.0.0", "runs": []}, "version"),
    ({"version": "2.1.0", "runs": []}, "runs"),
    ({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}, "runs[0].tool.driver.name"),
    ({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "error"}]}]},
     "runs[0].results[0].ruleId"),
    ({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "a"}}}, {"tool": {"driver": {"name": "b"}}}]},
     "runs"),
])
def test_bad_sarif_names_the_field(tmp_path: Path, doc: dict[str, Any], field: str) -> None:
    with pytest.raises(IngestError) as exc:
        run(write(tmp_path, "bad.sarif", json.dumps(doc)), fmt="sarif")
    assert exc.value.field == field


def test_trivy() -> None:
    result = run("trivy.json")
    assert result.summary == {"scanner": "trivy", "critical": 1, "high": 1, "medium": 1, "low": 1, "unknown": 0}
    scanner = result.statement["predicate"]["scanner"]
    assert scanner["uri"] == "pkg:github/aquasecurity/trivy"
    assert scanner["result"][0] == {
        "id": "CVE-2024-45491",
        "severity": [{"method": "trivy", "score": "CRITICAL"}, {"method": "CVSSv3 (nvd)", "score": "9.8"}],
        "annotations": [{"package": "libexpat1", "installedVersion": "2.5.0-1", "fixedVersion": "2.5.0-1+deb12u1"}],
    }
    assert [r["id"] for r in scanner["result"]] == ["CVE-2024-45491", "CVE-2024-2511", "CVE-2024-35195",
                                                    "GHSA-xxxx-synthetic-0001"]
    assert result.statement["predicate"]["metadata"]["scanFinishedOn"] == "2026-11-03T09:17:05.512345Z"
    parse_with_in_toto(result.statement)


def test_trivy_without_findings_is_a_clean_scan(tmp_path: Path) -> None:
    path = write(tmp_path, "clean.json", json.dumps({"SchemaVersion": 2, "ArtifactName": "x",
                                                    "Trivy": {"Version": "0.57.0"}}))
    result = run(path)
    assert result.summary == {"scanner": "trivy", "critical": 0, "high": 0, "medium": 0, "low": 0, "unknown": 0}
    assert result.statement["predicate"]["scanner"]["uri"] == "pkg:github/aquasecurity/trivy@0.57.0"


def test_grype() -> None:
    result = run("grype.json")
    assert result.summary == {"scanner": "grype", "critical": 0, "high": 1, "medium": 1, "low": 1, "unknown": 0}
    scanner = result.statement["predicate"]["scanner"]
    assert scanner["uri"] == "pkg:github/anchore/grype@0.84.0" and scanner["version"] == "0.84.0"
    assert scanner["db"] == {"lastUpdate": "2026-11-03T01:30:12Z", "version": "5"}
    assert scanner["result"][0] == {
        "id": "CVE-2024-35195",
        "severity": [{"method": "grype", "score": "Medium"}, {"method": "CVSSv3 (nvd@nist.gov)", "score": "5.6"}],
        "annotations": [{"package": "requests", "installedVersion": "2.31.0", "fixedVersion": "2.32.0"}],
    }
    parse_with_in_toto(result.statement)


def test_a_finding_without_an_id_is_refused(tmp_path: Path) -> None:
    trivy = {"SchemaVersion": 2, "Results": [{"Target": "t", "Vulnerabilities": [{"Severity": "HIGH"}]}]}
    with pytest.raises(IngestError) as exc:
        run(write(tmp_path, "t.json", json.dumps(trivy)))
    assert exc.value.field == "Results[0].Vulnerabilities[0].VulnerabilityID"
    grype = {"matches": [{"vulnerability": {"severity": "High"}}], "descriptor": {"name": "grype"}}
    with pytest.raises(IngestError) as exc:
        run(write(tmp_path, "g.json", json.dumps(grype)))
    assert exc.value.field == "matches[0].vulnerability.id"


# --- cyclonedx ----------------------------------------------------------------------------------


def test_cyclonedx() -> None:
    result = run("cyclonedx.json")
    assert result.summary == {"components": 4, "spec_version": "1.5"}  # nested components count
    assert result.statement["predicateType"] == "https://cyclonedx.org/bom"
    assert result.statement["predicate"] == json.loads((FIXTURES / "cyclonedx.json").read_text())
    parse_with_in_toto(result.statement)


def test_cyclonedx_needs_a_spec_version(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as exc:
        run(write(tmp_path, "bom.json", json.dumps({"bomFormat": "CycloneDX", "components": []})))
    assert exc.value.field == "specVersion"


# --- fail closed --------------------------------------------------------------------------------


def test_a_file_over_20_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(ingest.MAX_BYTES + 1)
    with pytest.raises(IngestError, match="larger than 20 MiB"):
        run(path)


@pytest.mark.parametrize(("content", "text"), [
    (b'{"SchemaVersion": 2, "ArtifactName": "caf\xe9"}', "not UTF-8"),
    (b'{"SchemaVersion": 2,\n "Results": [}', "not valid JSON"),
    (b'{"bomFormat": "CycloneDX", "bomFormat": "CycloneDX", "specVersion": "1.5"}', "appears twice"),
    (b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "x": NaN}', "not valid JSON"),
    (b'<testsuite><testcase name="a"></testsuite>', "not valid XML"),
    (b"", "empty file"),
    (b"   \n", "empty file"),
])
def test_unreadable_content_is_refused(tmp_path: Path, content: bytes, text: str) -> None:
    path = write(tmp_path, "report.json", content)
    with pytest.raises(IngestError, match=text) as exc:
        run(path)
    assert str(path) in str(exc.value) and "fix:" in str(exc.value)


def test_json_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as exc:
        run(write(tmp_path, "r.json", '{\n"a": 1,\n}'))
    assert exc.value.problems[0].line == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        run(tmp_path / "nowhere.json")
    with pytest.raises(IngestError, match="no such file"):
        detect_format(tmp_path)


def test_a_forced_format_must_match_the_content() -> None:
    with pytest.raises(IngestError, match="this is a trivy file, not grype"):
        run("trivy.json", fmt="grype")
    assert run("trivy.json", fmt="trivy").kind == "trivy"
    with pytest.raises(IngestError, match="unknown format 'spdx'") as exc:
        run("trivy.json", fmt="spdx")
    assert exc.value.field == "format"


def test_a_forced_format_parses_content_that_detection_does_not_know(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.json", json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}}]}))
    assert detect_format(path) == "sarif"
    weird = write(tmp_path, "weird.json", json.dumps({"matches": []}))
    with pytest.raises(IngestError):
        detect_format(weird)
    assert run(weird, fmt="grype").summary["scanner"] == "grype"
    with pytest.raises(IngestError, match="not a junit file"):
        run(weird, fmt="junit")


def test_a_bad_subject_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"subject\.digest\.sha256"):
        ingest_file(FIXTURES / "trivy.json", subject={"name": "x", "digest": {"sha256": "abc"}}, now=NOW)
    with pytest.raises(ValueError, match=r"subject\.name"):
        ingest_file(FIXTURES / "trivy.json", subject={"digest": {"sha256": ARTIFACT}}, now=NOW)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_statement_is_about_the_artifact_only_and_signs(name: str) -> None:
    result = run(name)
    assert result.statement["subject"] == [SUBJECT]
    pb = parse_with_in_toto(result.statement)
    assert pb.predicate_type == result.statement["predicateType"]
    keyring = Keyring.generate()
    assert st.open_statement(st.sign_statement(result.statement, keyring.current).to_json(), keyring) == \
        result.statement


# --- the policy summary -------------------------------------------------------------------------

ABSENT = {
    "provenance": {"present": False, "builders": []},
    "tests": {"present": False, "passed": False, "failed": 0, "total": 0},
    "vulns": {"present": False, "critical": 0, "high": 0},
    "sbom": {"present": False, "components": 0},
}


def test_no_evidence_is_all_absent() -> None:
    assert evidence_summary([]) == ABSENT


def test_evidence_summary_of_the_fixtures() -> None:
    items = [(r.kind, r.summary) for r in map(run, ["slsa-statement.json", "junit-fail.xml", "trivy.json",
                                                     "codeql.sarif", "cyclonedx.json"])]
    assert evidence_summary(items) == {
        "provenance": {"present": True, "builders": [BUILDER]},
        "tests": {"present": True, "passed": False, "failed": 2, "total": 4},
        "vulns": {"present": True, "critical": 2, "high": 2},
        "sbom": {"present": True, "components": 4},
    }


def test_the_newest_test_run_counts() -> None:
    red = run("junit-fail.xml").summary
    green = run("junit-pass.xml").summary
    assert evidence_summary([("junit", red), ("junit", green)])["tests"] == {
        "present": True, "passed": True, "failed": 0, "total": 5}
    assert evidence_summary([("junit", green), ("junit", red)])["tests"]["passed"] is False
    empty = run("junit-empty.xml").summary
    assert evidence_summary([("junit", green), ("junit", empty)])["tests"] == {
        "present": True, "passed": False, "failed": 0, "total": 0}


def test_the_newest_scan_of_each_scanner_counts() -> None:
    def scan(scanner: str, critical: int, high: int = 0) -> tuple[str, dict[str, Any]]:
        return "trivy", {"scanner": scanner, "critical": critical, "high": high, "medium": 0, "low": 0, "unknown": 0}

    items = [scan("trivy", 3, 1), scan("CodeQL", 1), scan("Trivy", 0, 2)]
    assert evidence_summary(items)["vulns"] == {"present": True, "critical": 1, "high": 2}


def test_every_builder_is_listed() -> None:
    items = [("slsa", {"builder": "b2", "build_type": "t", "signature": "unverified"}),
             ("slsa", {"builder": "b1", "build_type": "t", "signature": "verified"}),
             ("slsa", {"builder": "b2", "build_type": "t", "signature": "verified"})]
    assert evidence_summary(items)["provenance"] == {"present": True, "builders": ["b1", "b2"]}


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="spdx"):
        evidence_summary([("spdx", {})])


# --- the registry: a format is one module plus one line ------------------------------------------


def _toy_detect(doc: dict[str, Any]) -> bool:
    return doc.get("toyBom") is True


def _toy_ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    return st.statement([dict(src.subject)], "https://example.invalid/toy-bom", {"n": 1}), {"components": 1}


# The toy format's declaration: this test module is its module.
FORMAT = Format(name="toybom", syntax="json", slot="sbom", detect=_toy_detect, ingest=_toy_ingest)


@pytest.fixture
def toy_format() -> Any:
    INGEST_FORMATS.add("toybom", __name__)
    yield
    INGEST_FORMATS.remove("toybom")


def test_a_toy_format_is_one_module_and_one_registry_line(toy_format: None, tmp_path: Path) -> None:
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({"toyBom": True}))
    assert detect_format(path) == "toybom"
    got = ingest_file(path, subject=SUBJECT, now=NOW)
    assert got.kind == "toybom" and got.statement["subject"] == [SUBJECT] and got.summary == {"components": 1}
    assert evidence_summary([(got.kind, got.summary)])["sbom"] == {"present": True, "components": 1}
    assert "toybom" in INGEST_FORMATS.names()
    with pytest.raises(IngestError) as caught:
        ingest_file(path, subject=SUBJECT, now=NOW, fmt="nope")
    assert "toybom" in caught.value.problems[0].fix


def test_a_module_registered_under_another_name_is_refused() -> None:
    INGEST_FORMATS.add("notthis", __name__)
    try:
        with pytest.raises(LookupError, match="FORMAT is named 'toybom', but it is registered as 'notthis'"):
            INGEST_FORMATS.get("notthis")
    finally:
        INGEST_FORMATS.remove("notthis")


def test_the_builtin_formats_and_their_order() -> None:
    assert ingest.FORMATS == INGEST_FORMATS.names() == ("slsa", "junit", "sarif", "trivy", "grype", "cyclonedx")
    scanners = ingest.SCAN_FORMATS
    assert scanners == frozenset({"sarif", "trivy", "grype"})


def test_the_docs_table_lists_the_registered_formats() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "EVIDENCE.md").read_text()
    table = doc.split("| format (`kind`) |", 1)[1].split("\n\n", 1)[0]
    listed = tuple(line.split("`")[1] for line in table.splitlines() if line.startswith("| `"))
    assert listed == INGEST_FORMATS.names(), "docs/EVIDENCE.md's ingest table drifted from the registry"


def test_listing_the_format_names_imports_no_parser() -> None:
    code = ("import sys; from primum.adapters.evidence.ingest.registry import INGEST_FORMATS; INGEST_FORMATS.names(); "
            "assert not any(m in sys.modules for m in ('defusedxml', 'primum.adapters.evidence.ingest.base'))")
    subprocess.run([sys.executable, "-c", code], check=True)
