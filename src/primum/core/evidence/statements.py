"""in-toto Statement v1 builders for every decision and event of a release. Pure: dicts in, dicts out.

Every statement's subjects are the release digest (``release:<id>``) and each artifact
digest (``<service>@<version>``). Predicate types, standard where one fits:

- SLSA provenance v1, passed through from CI;
- test-result v0.1 and vulns v0.2 for test runs and vulnerability scans;
- Simple Verification Result (SVR) v0.1 for gate decisions: policy, analysis, probes, approvals;
- ``https://primum.dev/predicates/event/v1`` for release events (see docs/EVIDENCE.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from primum.core.evidence.dsse import (
    PAYLOAD_TYPE_IN_TOTO,
    Envelope,
    PublicKeys,
    Signer,
    VerificationError,
    sign,
    verify,
)
from primum.core.model import jsonfile
from primum.core.model.release import Release, canonical_digest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
TEST_RESULT_V0_1 = "https://in-toto.io/attestation/test-result/v0.1"
VULNS_V0_2 = "https://in-toto.io/attestation/vulns/v0.2"
SVR_V0_1 = "https://in-toto.io/attestation/svr/v0.1"
PRIMUM_EVENT_V1 = "https://primum.dev/predicates/event/v1"

VERIFIER_ID = "https://primum.dev/verifiers/{gate}/v1"
GATES = ("policy", "analysis", "probe", "approval")

# The kinds primum records today (docs/EVIDENCE.md); any lowercase token is accepted so a new
# event kind never needs a schema change, only a line in the docs.
EVENT_KINDS = (
    "submitted", "approval", "rejection", "policy_decision", "started", "blocked", "denied", "held",
    "item_started", "step", "step_finished", "analysis", "probe", "paused", "promoted_by_person", "item_succeeded",
    "item_skipped", "rollback_started", "item_rolled_back", "rollback_failed", "promoted", "rolled_back",
    "aborted", "retried", "action_failed", "command_ignored", "freeze_override", "break_glass", "review",
    "legal_hold", "legal_hold_released", "purge", "lease_lost", "lease_taken_over",
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PROPERTY = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")

Subject = dict[str, Any]
Statement = dict[str, Any]


class StatementError(ValueError):
    """A statement that would not be valid evidence; the message names the field."""


# --- subjects -------------------------------------------------------------------------------


def sha256_hex(digest: str, where: str = "digest") -> str:
    """The 64 hex digits of ``sha256:<hex>`` (or of bare hex)."""
    hexdigest = digest.removeprefix("sha256:")
    if not _HEX64.match(hexdigest):
        raise StatementError(f"{where}: expected sha256:<64 lowercase hex digits>, got {digest!r}")
    return hexdigest


def release_subjects(release_id: str, release_digest: str, artifacts: Mapping[str, Mapping[str, str]]) -> list[Subject]:
    """The release first, then each artifact by service name.

    ``artifacts`` maps a service name to ``{"digest": "sha256:<hex>", "version": "1.4.2"}``
    (``version`` optional); the subject is named ``<service>@<version>``, or ``<service>``.
    """
    if not release_id:
        raise StatementError("release_id: must not be empty")
    subjects: list[Subject] = [
        {"name": f"release:{release_id}", "digest": {"sha256": sha256_hex(release_digest, "release_digest")}}]
    for service in sorted(artifacts):
        pin = artifacts[service]
        version = pin.get("version") or ""
        name = f"{service}@{version}" if version else service
        subjects.append({"name": name, "digest": {"sha256": sha256_hex(pin.get("digest", ""), f"{service}.digest")}})
    return subjects


def subjects_for_release(release: Release) -> list[Subject]:
    """``release_subjects`` for a model ``Release``: its canonical digest and its pinned artifacts."""
    artifacts = {name: {"digest": pin.digest, "version": pin.version} for name, pin in release.services.items()}
    return release_subjects(release.id, canonical_digest(release), artifacts)


# --- statement --------------------------------------------------------------------------------


def statement(subjects: Sequence[Subject], predicate_type: str, predicate: Mapping[str, Any]) -> Statement:
    """An in-toto Statement v1; checks what the in-toto parser would reject."""
    if not subjects:
        raise StatementError("subject: at least one subject is required")
    for i, s in enumerate(subjects):
        digest = s.get("digest")
        if not isinstance(digest, Mapping) or not digest:
            raise StatementError(f"subject[{i}].digest: at least one digest is required")
    if not predicate_type:
        raise StatementError("predicateType: must not be empty")
    if not isinstance(predicate, Mapping) or not predicate:
        raise StatementError("predicate: must be a non-empty object")
    _check_json(predicate, "predicate")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [dict(s) for s in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def serialize(stmt: Statement) -> bytes:
    """The DSSE payload: canonical JSON (sorted keys, no whitespace, UTF-8, no NaN)."""
    return json.dumps(stmt, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sign_statement(stmt: Statement, signer: Signer) -> Envelope:
    """A DSSE envelope of payload type ``application/vnd.in-toto+json``."""
    return sign(serialize(stmt), PAYLOAD_TYPE_IN_TOTO, signer)


def open_statement(envelope: Envelope | Mapping[str, Any] | bytes | str,
                   keyring: PublicKeys | Mapping[str, Any]) -> Statement:
    """Verify the envelope, then parse its payload as a Statement v1 (fails closed)."""
    payload = verify(envelope, keyring, PAYLOAD_TYPE_IN_TOTO)
    try:
        stmt = jsonfile.loads(payload)  # strict and depth-limited: a signed payload can still be hostile
    except ValueError as exc:
        raise VerificationError(f"payload: not JSON ({exc})") from exc
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"payload: not an in-toto Statement v1 (_type must be {STATEMENT_TYPE})")
    return stmt


# --- predicates -------------------------------------------------------------------------------


def rfc3339(at: datetime | float | int) -> str:
    """RFC 3339 UTC with a ``Z``: an aware datetime or epoch seconds; naive datetimes are refused."""
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise StatementError(f"at: {at.isoformat()} has no time zone; pass an aware datetime")
        moment = at.astimezone(UTC)
    else:
        if isinstance(at, bool) or not math.isfinite(at):
            raise StatementError(f"at: {at!r} is not a time")
        moment = datetime.fromtimestamp(at, UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def event_predicate(*, kind: str, message: str, at: datetime | float | int, env: str | None = None,
                    service: str | None = None, actor: str | None = None,
                    data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The primum event predicate: always exactly kind, message, env, service, actor, at, data."""
    if not _KIND.match(kind):
        raise StatementError(f"kind: {kind!r} must be a lowercase token such as 'submitted' or 'break_glass'")
    predicate = {
        "kind": kind,
        "message": message,
        "env": env or "",
        "service": service or "",
        "actor": actor or "",
        "at": rfc3339(at),
        "data": dict(data or {}),
    }
    _check_json(predicate["data"], "data")
    return predicate


def event_statement(subjects: Sequence[Subject], **event: Any) -> Statement:
    """A release event (submitted, approval, step, rollback, break_glass, review, ...)."""
    return statement(subjects, PRIMUM_EVENT_V1, event_predicate(**event))


def gate_predicate(*, gate: str, passed: bool, outcome: str, at: datetime | float | int,
                   reasons: Sequence[str] = (), properties: Sequence[str] = (), env: str | None = None,
                   service: str | None = None, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Simple Verification Result for one gate decision.

    ``properties`` lists only what passed (SVR semantics): ``PRIMUM_<GATE>_PASSED`` is added when
    the gate passed, so a consumer that ignores the extension can never read a failure as a pass.
    The ``primumGate`` extension carries the outcome and its reasons for people and auditors.
    """
    if gate not in GATES:
        raise StatementError(f"gate: {gate!r} is not one of {', '.join(GATES)}")
    for p in properties:
        if not _PROPERTY.match(p):
            raise StatementError(f"properties: {p!r} must be UPPER_SNAKE_CASE, e.g. PRIMUM_SLO_ERROR_RATE")
    passed_property = f"PRIMUM_{gate.upper()}_PASSED"
    verified = [p for p in properties if p != passed_property]
    if passed:
        verified.insert(0, passed_property)
    predicate = {
        "verifier": {"id": VERIFIER_ID.format(gate=gate)},
        "timeCreated": rfc3339(at),
        "properties": verified,
        "primumGate": {
            "gate": gate,
            "passed": passed,
            "outcome": outcome,
            "reasons": list(reasons),
            "env": env or "",
            "service": service or "",
            "data": dict(data or {}),
        },
    }
    _check_json(predicate, "predicate")
    return predicate


def gate_statement(subjects: Sequence[Subject], **decision: Any) -> Statement:
    """A gate decision: policy decision, analysis verdict, probe gate or approval status."""
    return statement(subjects, SVR_V0_1, gate_predicate(**decision))


def provenance_statement(subjects: Sequence[Subject], provenance: Mapping[str, Any]) -> Statement:
    """CI-provided SLSA provenance v1, passed through unchanged after a check of its required fields."""
    build = provenance.get("buildDefinition")
    run = provenance.get("runDetails")
    if not isinstance(build, Mapping) or not isinstance(build.get("buildType"), str):
        raise StatementError("provenance.buildDefinition.buildType: required (SLSA provenance v1)")
    if not isinstance(build.get("externalParameters"), Mapping):
        raise StatementError("provenance.buildDefinition.externalParameters: required object (SLSA provenance v1)")
    builder = run.get("builder") if isinstance(run, Mapping) else None
    if not isinstance(builder, Mapping) or not isinstance(builder.get("id"), str) or not builder["id"]:
        raise StatementError("provenance.runDetails.builder.id: required (SLSA provenance v1)")
    return statement(subjects, SLSA_PROVENANCE_V1, provenance)


def suite_result_predicate(*, result: Literal["PASSED", "WARNED", "FAILED"],
                          configuration: Sequence[Mapping[str, Any]], url: str = "",
                          passed_tests: Sequence[str] = (), warned_tests: Sequence[str] = (),
                          failed_tests: Sequence[str] = ()) -> dict[str, Any]:
    """in-toto test-result v0.1 for one test-suite run; ``configuration`` lists resource descriptors.

    Named ``suite_*`` because pytest collects any imported function whose name starts with ``test``.
    """
    if result not in ("PASSED", "WARNED", "FAILED"):
        raise StatementError(f"result: {result!r} must be PASSED, WARNED or FAILED")
    if result == "PASSED" and failed_tests:
        raise StatementError("result: PASSED with failed tests; report FAILED")
    predicate: dict[str, Any] = {"result": result, "configuration": [dict(c) for c in configuration]}
    if url:
        predicate["url"] = url
    predicate.update(passedTests=list(passed_tests), warnedTests=list(warned_tests), failedTests=list(failed_tests))
    return predicate


def suite_result_statement(subjects: Sequence[Subject], **run: Any) -> Statement:
    return statement(subjects, TEST_RESULT_V0_1, suite_result_predicate(**run))


def vulns_predicate(*, scanner_uri: str, db_last_update: datetime | float | int,
                    results: Sequence[Mapping[str, Any]], scan_started: datetime | float | int,
                    scan_finished: datetime | float | int, scanner_version: str = "", db_uri: str = "",
                    db_version: str = "") -> dict[str, Any]:
    """in-toto vulns v0.2; each result is ``{"id": ..., "severity": [{"method": ..., "score": ...}]}``."""
    if not scanner_uri:
        raise StatementError("scanner.uri: required")
    for i, r in enumerate(results):
        if not r.get("id") or not isinstance(r.get("severity"), Sequence):
            raise StatementError(f"scanner.result[{i}]: needs an id and a severity list")
    db: dict[str, Any] = {"lastUpdate": rfc3339(db_last_update)}
    if db_uri:
        db["uri"] = db_uri
    if db_version:
        db["version"] = db_version
    scanner: dict[str, Any] = {"uri": scanner_uri, "db": db, "result": [dict(r) for r in results]}
    if scanner_version:
        scanner["version"] = scanner_version
    return {
        "scanner": scanner,
        "metadata": {"scanStartedOn": rfc3339(scan_started), "scanFinishedOn": rfc3339(scan_finished)},
    }


def vulns_statement(subjects: Sequence[Subject], **scan: Any) -> Statement:
    return statement(subjects, VULNS_V0_2, vulns_predicate(**scan))


def _check_json(value: Any, where: str) -> None:
    """Only what JSON (and the in-toto protobuf Struct) can carry: no NaN, bytes or custom objects."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StatementError(f"{where}: not plain JSON data ({exc})") from exc
