"""CI evidence ingest: files CI produces, turned into in-toto Statements v1 about one artifact.

``ingest_file(path, subject=..., now=...)`` reads one file, recognises its format from its content
(``detect_format``), checks it and returns an ``Ingested``: the format (``kind``), a Statement v1
whose only subject is the artifact (built with ``primum.core.evidence.statements``) and a small
``summary`` for the policy input. ``evidence_summary`` folds the summaries of one artifact, oldest
first, into the ``input.evidence[service]`` document the baseline policy reads (docs/POLICY.md).

Formats (docs/EVIDENCE.md, "Ingest"):

- ``slsa``: SLSA provenance v1, as a bare Statement, a DSSE envelope or a Sigstore bundle; the
  artifact digest must be one of the provenance's subjects. A DSSE signature is checked only
  when ``trusted_keys`` (Ed25519 public keys) are given; the summary says ``verified`` or
  ``unverified``, and a signature that does not verify under the given keys is an error.
- ``junit``: JUnit XML (parsed with defusedxml) -> test-result v0.1. Only test names are kept,
  never failure messages (they may carry data). A run in which no test ran is FAILED.
- ``sarif`` (2.1.0), ``trivy`` and ``grype`` JSON -> vulns v0.2, one result per finding.
- ``cyclonedx``: a CycloneDX JSON BOM -> predicate type ``https://cyclonedx.org/bom``.

Fail closed: a missing, unreadable, over-large (20 MiB), non-UTF-8, invalid or unrecognised
file, a JSON document with duplicate keys or NaN, and a field of the wrong shape all raise
``IngestError`` (an ``InputError``: the CLI exits 2), naming the file, the field and the fix.
Every predicate and summary passes through ``primum.core.evidence.redact`` before it is returned.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from defusedxml import DefusedXmlException

from primum.adapters.evidence.keys import key_id
from primum.core.evidence import statements as st
from primum.core.evidence.dsse import (
    PAYLOAD_TYPE_IN_TOTO,
    Envelope,
    EnvelopeFormatError,
    PublicKeys,
    Signature,
    VerificationError,
)
from primum.core.evidence.dsse import verify as dsse_verify
from primum.core.evidence.redact import Redaction, redact
from primum.core.model.errors import InputError, Problem

__all__ = [
    "CYCLONEDX_BOM",
    "FORMATS",
    "MAX_BYTES",
    "SCAN_FORMATS",
    "IngestError",
    "Ingested",
    "detect_format",
    "evidence_summary",
    "ingest_file",
]

MAX_BYTES = 20 * 1024 * 1024
FORMATS = ("slsa", "junit", "sarif", "trivy", "grype", "cyclonedx")
SCAN_FORMATS = frozenset({"sarif", "trivy", "grype"})
CYCLONEDX_BOM = "https://cyclonedx.org/bom"  # the in-toto predicate type for a CycloneDX BOM
SARIF_VERSION = "2.1.0"
SEVERITIES = ("critical", "high", "medium", "low", "unknown")

_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle"
_FIX_FORMAT = ("give a SLSA provenance v1 statement or envelope, a JUnit XML report, a SARIF 2.1.0, Trivy "
               "or Grype JSON report, or a CycloneDX JSON SBOM")


class IngestError(InputError):
    """A CI file that cannot be ingested; names the file, the field and the fix."""

    def __init__(self, path: Path | str, message: str, fix: str, field: str = "", line: int | None = None):
        self.file = str(path)
        self.field = field
        super().__init__([Problem(file=str(path), line=line, path=field, message=message, fix=fix)])


@dataclass(frozen=True)
class Ingested:
    """One ingested file: its format, the statement about the artifact and the policy summary."""

    kind: str  # one of FORMATS
    statement: dict[str, Any]  # an in-toto Statement v1 whose only subject is the artifact
    summary: dict[str, Any]  # the shape for the format (docs/EVIDENCE.md); evidence_summary folds them
    file_sha256: str  # of the file as read
    redactions: tuple[Redaction, ...] = ()  # what redaction removed from the statement and summary


# --- reading and parsing -----------------------------------------------------------------------


def _read(path: Path) -> tuple[bytes, str]:
    try:
        if not path.is_file():
            raise IngestError(path, "no such file (or not a regular file)", "check the path of the CI file")
        if path.stat().st_size > MAX_BYTES:
            raise IngestError(path, f"larger than {MAX_BYTES // (1024 * 1024)} MiB",
                              "ingest the report of one artifact, not a whole pipeline's output")
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise IngestError(path, f"cannot be read ({exc.strerror or exc})", "check the file's permissions") from exc
    if len(data) > MAX_BYTES:
        raise IngestError(path, f"larger than {MAX_BYTES // (1024 * 1024)} MiB",
                          "ingest the report of one artifact, not a whole pipeline's output")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(path, f"not UTF-8 text (invalid byte at offset {exc.start})",
                          "give the report as CI wrote it, in UTF-8 (JSON or XML)") from exc
    return data, text.removeprefix("\ufeff")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(path: Path, text: str) -> Any:
    """Strict JSON: duplicate keys (read differently by different parsers) and NaN are refused."""
    fix = "give the file exactly as the CI tool wrote it (valid JSON)"
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise IngestError(path, f"not valid JSON: the key {exc.args[0]!r} appears twice in one object", fix,
                          field=str(exc.args[0])) from exc
    except json.JSONDecodeError as exc:
        raise IngestError(path, f"not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})", fix,
                          line=exc.lineno) from exc
    except RecursionError as exc:
        raise IngestError(path, "not valid JSON: nested too deeply", fix) from exc
    except ValueError as exc:
        raise IngestError(path, f"not valid JSON: {exc}", fix) from exc


def _parse_xml(path: Path, text: str) -> Element:
    """XML through defusedxml: entity expansion and external references are refused."""
    try:
        root: Element = SafeET.fromstring(text)
    except DefusedXmlException as exc:
        raise IngestError(path, f"XML refused: {exc}",
                          "JUnit reports need no DTD entities or external references; give the plain report") from exc
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise IngestError(path, f"not valid XML: {exc}", "give the file exactly as the test runner wrote it",
                          line=line) from exc
    return root


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _json_format(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    statement_type = doc.get("_type")
    if isinstance(statement_type, str) and statement_type.startswith("https://in-toto.io/Statement/"):
        return "slsa"  # the only statements ingested; another predicate type is refused with its name
    if "dsseEnvelope" in doc:
        return "slsa"
    if isinstance(doc.get("mediaType"), str) and doc["mediaType"].startswith(_SIGSTORE_BUNDLE):
        return "slsa"
    if {"payload", "payloadType", "signatures"} <= set(doc):
        return "slsa"
    if doc.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    schema = doc.get("$schema")
    if isinstance(doc.get("runs"), list) and (
            "version" in doc or (isinstance(schema, str) and "sarif" in schema.lower())):
        return "sarif"
    if "SchemaVersion" in doc and ("Results" in doc or "ArtifactName" in doc):
        return "trivy"
    descriptor = doc.get("descriptor")
    if isinstance(doc.get("matches"), list) and (
            (isinstance(descriptor, dict) and descriptor.get("name") == "grype") or "source" in doc):
        return "grype"
    return None


def _sniff(path: Path, text: str) -> tuple[str | None, Any]:
    """The format the content shows (None when unknown) and the parsed document."""
    head = text.lstrip()
    if not head:
        raise IngestError(path, "empty file", _FIX_FORMAT)
    if head.startswith("<"):
        root = _parse_xml(path, text)
        return ("junit" if _local(root.tag) in ("testsuites", "testsuite") else None), root
    if head[0] in "{[":
        doc = _parse_json(path, text)
        return _json_format(doc), doc
    return None, None


def detect_format(path: Path | str) -> str:
    """The format of a CI file, from its content: one of ``FORMATS``; ``IngestError`` otherwise."""
    path = Path(path)
    _, text = _read(path)
    fmt, _ = _sniff(path, text)
    if fmt is None:
        raise IngestError(path, "not a format primum ingests", _FIX_FORMAT)
    return fmt


# --- helpers -----------------------------------------------------------------------------------


def _get(path: Path, doc: Any, field: str, kind: type | tuple[type, ...], what: str, fix: str) -> Any:
    """``doc[field]`` of the given type, or an IngestError naming the field."""
    value = doc.get(field.rsplit(".", 1)[-1]) if isinstance(doc, Mapping) else None
    if not isinstance(value, kind):
        raise IngestError(path, f"{field}: {what}", fix, field=field)
    return value


def _time(value: Any) -> datetime | None:
    """An RFC 3339 time from a report (nanoseconds are cut to microseconds); None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    date, sep, rest = text.partition(".")
    if sep:  # fractional seconds: keep 6 digits
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{date}.{(digits + '000000')[:6]}{rest}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for optional parts of a report)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one (for optional parts of a report)."""
    return value if isinstance(value, list) else []


def _counts(severities: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for s in severities:
        counts[s if s in counts else "unknown"] += 1
    return counts


def _subject_sha256(subject: Mapping[str, Any]) -> str:
    name = subject.get("name") if isinstance(subject, Mapping) else None
    digest = subject.get("digest") if isinstance(subject, Mapping) else None
    if not isinstance(name, str) or not name:
        raise st.StatementError("subject.name: required (e.g. scheduling-api@1.4.2)")
    if not isinstance(digest, Mapping) or not isinstance(digest.get("sha256"), str):
        raise st.StatementError("subject.digest.sha256: required")
    return st.sha256_hex(digest["sha256"], "subject.digest.sha256")


# --- slsa ---------------------------------------------------------------------------------------


TrustedKeys = Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey] | PublicKeys


def _trusted_key_map(keys: TrustedKeys) -> dict[str, Ed25519PublicKey]:
    """The trusted keys by primum key id: a key id map, a list of keys or a ``Keyring``."""
    if isinstance(keys, Mapping):
        values: Iterable[Ed25519PublicKey] = keys.values()
    elif hasattr(keys, "public_keys"):
        values = keys.public_keys().values()
    else:
        values = keys
    return {key_id(k): k for k in values}


def _slsa(path: Path, doc: Any, subject: Mapping[str, Any], sha256: str,
          trusted_keys: TrustedKeys | None) -> tuple[st.Statement, dict[str, Any]]:
    fix_stmt = "give CI's SLSA provenance v1 (a Statement, a DSSE envelope or a Sigstore bundle)"
    signature = "unverified"
    envelope_doc: Any = None
    if isinstance(doc, dict) and "dsseEnvelope" in doc:
        envelope_doc = doc["dsseEnvelope"]
    elif isinstance(doc, dict) and "payloadType" in doc:
        envelope_doc = doc
    if envelope_doc is not None:
        try:
            envelope = Envelope.from_dict(envelope_doc)
        except EnvelopeFormatError as exc:
            raise IngestError(path, f"not a valid DSSE envelope: {exc}", fix_stmt, field="dsseEnvelope") from exc
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise IngestError(path, f"payload type {envelope.payload_type!r} is not {PAYLOAD_TYPE_IN_TOTO!r}",
                              fix_stmt, field="payloadType")
        if trusted_keys is not None:
            # Foreign key ids follow the signer's own scheme (or are empty): they are hints only, so
            # every trusted key is tried; what counts is the key the signature verifies under.
            unhinted = Envelope(envelope.payload_type, envelope.payload,
                                tuple(Signature("", s.sig) for s in envelope.signatures))
            keys = _trusted_key_map(trusted_keys)
            if not keys:
                raise IngestError(path, "no trusted key was given to verify the signature",
                                  "pass CI's Ed25519 public key, or none to ingest the provenance unverified")
            try:
                dsse_verify(unhinted, keys, PAYLOAD_TYPE_IN_TOTO)
            except VerificationError as exc:
                raise IngestError(path, f"the DSSE signature does not verify under the trusted keys ({exc})",
                                  "check that the file is CI's own output and that the trusted key is CI's "
                                  "signing key", field="signatures") from exc
            signature = "verified"
        try:
            payload = envelope.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(path, "the DSSE payload is not UTF-8 JSON", fix_stmt, field="payload") from exc
        doc = _parse_json(path, payload)
    if not isinstance(doc, dict) or doc.get("_type") != st.STATEMENT_TYPE:
        raise IngestError(path, f"not an in-toto Statement v1 (_type must be {st.STATEMENT_TYPE})", fix_stmt,
                          field="_type")
    if doc.get("predicateType") != st.SLSA_PROVENANCE_V1:
        raise IngestError(path, f"predicateType is {doc.get('predicateType')!r}, not {st.SLSA_PROVENANCE_V1}",
                          "give SLSA provenance v1 (older v0.2 provenance is not ingested; upgrade the generator)",
                          field="predicateType")
    subjects = _get(path, doc, "subject", list, "must be a list of subjects", fix_stmt)
    covered = {s["digest"]["sha256"].lower() for s in subjects
               if isinstance(s, dict) and isinstance(s.get("digest"), dict)
               and isinstance(s["digest"].get("sha256"), str)}
    if sha256 not in covered:
        raise IngestError(path, f"provenance in {path} does not cover sha256:{sha256}",
                          "give the provenance of this artifact's build, or check the artifact's digest",
                          field="subject")
    predicate = _get(path, doc, "predicate", dict, "must be an object", fix_stmt)
    try:
        stmt = st.provenance_statement([dict(subject)], predicate)
    except st.StatementError as exc:
        field = str(exc).split(":", 1)[0]
        raise IngestError(path, str(exc), "give complete SLSA provenance v1 (see https://slsa.dev/provenance/v1)",
                          field="predicate." + field.removeprefix("provenance.")) from exc
    summary = {
        "builder": predicate["runDetails"]["builder"]["id"],
        "build_type": predicate["buildDefinition"]["buildType"],
        "signature": signature,
    }
    return stmt, summary


# --- junit --------------------------------------------------------------------------------------


def _junit(path: Path, root: Element, subject: Mapping[str, Any], file_sha256: str,
           ) -> tuple[st.Statement, dict[str, Any]]:
    passed: list[str] = []
    failed: list[str] = []
    skipped = 0
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "testcase":
            name = element.get("name") or "(unnamed)"
            classname = element.get("classname") or ""
            full = f"{classname}.{name}" if classname else name
            children = {_local(c.tag) for c in element}
            if children & {"failure", "error"}:
                failed.append(full)
            elif "skipped" in children:
                skipped += 1
            else:
                passed.append(full)
        elif tag == "testsuite" and any(_local(c.tag) in ("failure", "error") for c in element):
            # an error outside any test case (a suite that did not load): the suite failed
            failed.append(element.get("name") or "(unnamed suite)")
    ran = len(passed) + len(failed)
    result = "FAILED" if failed or ran == 0 else "PASSED"
    stmt = st.suite_result_statement(
        [dict(subject)], result=result,
        configuration=[{"name": path.name, "digest": {"sha256": file_sha256}}],
        passed_tests=passed, failed_tests=failed)
    summary: dict[str, Any] = {"result": result, "total": ran + skipped, "passed": len(passed),
                               "failed": len(failed), "skipped": skipped}
    if ran == 0:
        summary["note"] = "no tests ran"
    return stmt, summary


# --- scans --------------------------------------------------------------------------------------


def _cvss_band(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "unknown"


_SARIF_LEVELS = {"error": "high", "warning": "medium", "note": "low", "none": "unknown"}
_SARIF_NOT_FINDINGS = frozenset({"pass", "notApplicable", "informational"})


def _sarif_rules(run: Mapping[str, Any]) -> tuple[list[Any], dict[str, Mapping[str, Any]]]:
    tool = _obj(run.get("tool"))
    driver = _obj(tool.get("driver"))
    listed = _list(driver.get("rules"))
    by_id: dict[str, Mapping[str, Any]] = {}
    extensions = _list(tool.get("extensions"))
    for component in [driver, *extensions]:
        rules = component.get("rules") if isinstance(component, Mapping) else None
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, Mapping) and isinstance(rule.get("id"), str):
                by_id.setdefault(rule["id"], rule)
    return listed, by_id


def _sarif(path: Path, doc: dict[str, Any], now: float) -> dict[str, Any]:
    fix = "give the SARIF 2.1.0 file exactly as the scanner wrote it"
    if doc.get("version") != SARIF_VERSION:
        raise IngestError(path, f"SARIF version {doc.get('version')!r} is not {SARIF_VERSION}",
                          "have the scanner write SARIF 2.1.0", field="version")
    runs = _get(path, doc, "runs", list, "must be a non-empty list of runs", fix)
    if not runs:
        raise IngestError(path, "runs: empty, so no scanner is named", fix, field="runs")
    names: list[str] = []
    results: list[dict[str, Any]] = []
    severities: list[str] = []
    uri = version = ""
    started: list[datetime] = []
    finished: list[datetime] = []
    for r, run in enumerate(runs):
        where = f"runs[{r}]"
        if not isinstance(run, dict):
            raise IngestError(path, f"{where}: must be an object", fix, field=where)
        driver = _obj(_obj(run.get("tool")).get("driver"))
        if not isinstance(driver.get("name"), str) or not driver["name"]:
            raise IngestError(path, f"{where}.tool.driver.name: required", fix, field=f"{where}.tool.driver.name")
        if driver["name"] not in names:
            names.append(driver["name"])
        uri = uri or str(driver.get("informationUri") or driver["name"])
        version = version or str(driver.get("semanticVersion") or driver.get("version") or "")
        for inv in _list(run.get("invocations")):
            if isinstance(inv, dict):
                started += [t for t in [_time(inv.get("startTimeUtc"))] if t]
                finished += [t for t in [_time(inv.get("endTimeUtc"))] if t]
        listed, by_id = _sarif_rules(run)
        raw_results = run.get("results")
        if raw_results is None:
            raw_results = []
        if not isinstance(raw_results, list):
            raise IngestError(path, f"{where}.results: must be a list", fix, field=f"{where}.results")
        for i, res in enumerate(raw_results):
            at = f"{where}.results[{i}]"
            if not isinstance(res, dict):
                raise IngestError(path, f"{at}: must be an object", fix, field=at)
            if res.get("kind") in _SARIF_NOT_FINDINGS:
                continue
            rule: Mapping[str, Any] = {}
            index = res.get("ruleIndex")
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(listed) \
                    and isinstance(listed[index], Mapping):
                rule = listed[index]
            rule_ref = _obj(res.get("rule"))
            rule_id = res.get("ruleId") or rule_ref.get("id") or rule.get("id")
            if not isinstance(rule_id, str) or not rule_id:
                raise IngestError(path, f"{at}.ruleId: required (a result names its rule)", fix, field=f"{at}.ruleId")
            rule = rule or by_id.get(rule_id) or by_id.get(rule_id.split("/", 1)[0]) or {}
            props = _obj(rule.get("properties"))
            score = _number(props.get("security-severity"))
            if score is not None:
                band = _cvss_band(score)
                entry = {"method": "CVSSv3", "score": str(props["security-severity"])}
            else:
                default = _obj(rule.get("defaultConfiguration"))
                level = res.get("level") or default.get("level") or "warning"  # SARIF's default level
                band = _SARIF_LEVELS.get(str(level), "unknown")
                entry = {"method": "SARIF level", "score": str(level)}
            severities.append(band)
            results.append({"id": rule_id, "severity": [entry]})
    if len(names) > 1:
        raise IngestError(path, f"runs of several scanners in one file ({', '.join(names)})",
                          "give one SARIF file per scanner, so each scanner's newest scan counts on its own",
                          field="runs")
    end = max(finished, default=None) or max(started, default=None) or datetime.fromtimestamp(now, UTC)
    start = min(started, default=None) or end
    return {"scanner": names[0], "uri": uri, "version": version, "results": results, "severities": severities,
            "started": start, "finished": end, "db_last_update": end, "db_uri": "", "db_version": ""}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _package(name: Any, installed: Any, fixed: Any) -> list[dict[str, str]]:
    note = {k: str(v) for k, v in (("package", name), ("installedVersion", installed), ("fixedVersion", fixed))
            if isinstance(v, str) and v}
    return [note] if note else []


def _trivy(path: Path, doc: dict[str, Any], now: float) -> dict[str, Any]:
    fix = "give Trivy's JSON report (trivy ... --format json)"
    raw = doc.get("Results") or []
    if not isinstance(raw, list):
        raise IngestError(path, "Results: must be a list", fix, field="Results")
    results: list[dict[str, Any]] = []
    severities: list[str] = []
    for r, target in enumerate(raw):
        vulns = _obj(target).get("Vulnerabilities")
        if vulns is None:
            continue
        if not isinstance(vulns, list):
            raise IngestError(path, f"Results[{r}].Vulnerabilities: must be a list", fix,
                              field=f"Results[{r}].Vulnerabilities")
        for i, v in enumerate(vulns):
            at = f"Results[{r}].Vulnerabilities[{i}]"
            v = _obj(v)
            vid = v.get("VulnerabilityID")
            if not isinstance(vid, str) or not vid:
                raise IngestError(path, f"{at}.VulnerabilityID: required", fix, field=f"{at}.VulnerabilityID")
            severity = str(v.get("Severity") or "UNKNOWN").upper()
            entries = [{"method": "trivy", "score": severity}]
            cvss = _obj(v.get("CVSS"))
            for source in sorted(cvss):
                v3 = _obj(cvss[source]).get("V3Score")
                if _number(v3) is not None:
                    entries.append({"method": f"CVSSv3 ({source})", "score": str(v3)})
            result: dict[str, Any] = {"id": vid, "severity": entries}
            annotations = _package(v.get("PkgName"), v.get("InstalledVersion"), v.get("FixedVersion"))
            if annotations:
                result["annotations"] = annotations
            results.append(result)
            severities.append(severity.lower())
    trivy = _obj(doc.get("Trivy"))
    version = str(trivy.get("Version") or "")
    scanned = _time(doc.get("CreatedAt")) or datetime.fromtimestamp(now, UTC)
    return {"scanner": "trivy", "uri": "pkg:github/aquasecurity/trivy" + (f"@{version}" if version else ""),
            "version": version, "results": results, "severities": severities, "started": scanned,
            "finished": scanned, "db_last_update": scanned, "db_uri": "", "db_version": ""}


def _grype(path: Path, doc: dict[str, Any], now: float) -> dict[str, Any]:
    fix = "give Grype's JSON report (grype ... -o json)"
    results: list[dict[str, Any]] = []
    severities: list[str] = []
    for i, match in enumerate(doc["matches"]):
        at = f"matches[{i}].vulnerability"
        match = _obj(match)
        vuln = _obj(match.get("vulnerability"))
        vid = vuln.get("id")
        if not isinstance(vid, str) or not vid:
            raise IngestError(path, f"{at}.id: required", fix, field=f"{at}.id")
        severity = str(vuln.get("severity") or "Unknown")
        entries = [{"method": "grype", "score": severity}]
        for c in _list(vuln.get("cvss")):
            c = _obj(c)
            base = _obj(c.get("metrics")).get("baseScore")
            if _number(base) is not None and str(c.get("version", "")).startswith("3"):
                source = c.get("source") or "cvss"
                entries.append({"method": f"CVSSv3 ({source})", "score": str(base)})
        result: dict[str, Any] = {"id": vid, "severity": entries}
        artifact = _obj(match.get("artifact"))
        fixed = _obj(vuln.get("fix")).get("versions")
        annotations = _package(artifact.get("name"), artifact.get("version"),
                               ", ".join(str(f) for f in fixed) if isinstance(fixed, list) else None)
        if annotations:
            result["annotations"] = annotations
        results.append(result)
        band = severity.lower()
        severities.append("low" if band == "negligible" else band)
    descriptor = _obj(doc.get("descriptor"))
    version = str(descriptor.get("version") or "")
    db = _obj(descriptor.get("db"))
    status = _obj(db.get("status")) or db  # grype >= 0.88 nests it under status
    scanned = _time(descriptor.get("timestamp")) or datetime.fromtimestamp(now, UTC)
    built = _time(status.get("built")) or scanned
    return {"scanner": "grype", "uri": "pkg:github/anchore/grype" + (f"@{version}" if version else ""),
            "version": version, "results": results, "severities": severities, "started": scanned,
            "finished": scanned,
            "db_last_update": built, "db_uri": "",
            "db_version": str(status.get("schemaVersion") or "")}


def _vulns(path: Path, kind: str, doc: dict[str, Any], subject: Mapping[str, Any], now: float,
           ) -> tuple[st.Statement, dict[str, Any]]:
    scan = {"sarif": _sarif, "trivy": _trivy, "grype": _grype}[kind](path, doc, now)
    try:
        stmt = st.vulns_statement(
            [dict(subject)], scanner_uri=scan["uri"], scanner_version=scan["version"],
            db_last_update=scan["db_last_update"], db_uri=scan["db_uri"], db_version=scan["db_version"],
            results=scan["results"], scan_started=scan["started"], scan_finished=scan["finished"])
    except st.StatementError as exc:
        raise IngestError(path, str(exc), "give the report exactly as the scanner wrote it") from exc
    summary: dict[str, Any] = {"scanner": scan["scanner"], **_counts(scan["severities"])}
    return stmt, summary


# --- cyclonedx ----------------------------------------------------------------------------------


def _count_components(components: Any) -> int:
    total = 0
    stack = [components]
    while stack:
        items = stack.pop()
        if not isinstance(items, list):
            continue
        for c in items:
            if isinstance(c, dict):
                total += 1
                stack.append(c.get("components"))
    return total


def _cyclonedx(path: Path, doc: dict[str, Any], subject: Mapping[str, Any]) -> tuple[st.Statement, dict[str, Any]]:
    fix = "give the CycloneDX JSON SBOM exactly as the generator wrote it"
    spec = _get(path, doc, "specVersion", str, "required (e.g. \"1.5\")", fix)
    components = doc.get("components", [])
    if not isinstance(components, list):
        raise IngestError(path, "components: must be a list", fix, field="components")
    stmt = st.statement([dict(subject)], CYCLONEDX_BOM, doc)
    return stmt, {"components": _count_components(components), "spec_version": spec}


# --- ingest -------------------------------------------------------------------------------------


def ingest_file(
    path: Path | str,
    *,
    subject: Mapping[str, Any],
    fmt: str | None = None,
    now: float,
    trusted_keys: TrustedKeys | None = None,
    redaction_key: bytes | None = None,
) -> Ingested:
    """Turn one CI file into a Statement v1 about ``subject`` (``{"name", "digest": {"sha256"}}``).

    ``fmt`` (one of ``FORMATS``; another value is an ``IngestError``) skips detection; a file whose
    content shows another format is refused. ``now`` (epoch seconds) stands in for a scan time the report does not give.
    ``trusted_keys``: Ed25519 public keys to check a DSSE signature on provenance with (a list, a
    key id map or a ``Keyring``). ``redaction_key``: the installation's
    redaction key, for keyed markers. Raises ``IngestError`` for a bad file and ``StatementError``
    (a ``ValueError``) for a bad subject.
    """
    path = Path(path)
    sha256 = _subject_sha256(subject)
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(path, f"unknown format {fmt!r}", f"give one of {', '.join(FORMATS)}, or none to detect it",
                          field="format")
    data, text = _read(path)
    detected, doc = _sniff(path, text)
    if fmt is not None and detected is not None and detected != fmt:
        raise IngestError(path, f"this is a {detected} file, not {fmt}",
                          f"pass --format {detected}, or give the {fmt} file")
    kind = fmt or detected
    if kind is None:
        raise IngestError(path, "not a format primum ingests", _FIX_FORMAT)
    if (kind == "junit") != isinstance(doc, Element):
        raise IngestError(path, f"not a {kind} file ({'XML' if isinstance(doc, Element) else 'not XML'})",
                          _FIX_FORMAT)
    if kind != "junit" and not isinstance(doc, dict):
        raise IngestError(path, f"not a {kind} file: expected a JSON object", _FIX_FORMAT)
    file_sha256 = hashlib.sha256(data).hexdigest()
    if kind == "slsa":
        stmt, summary = _slsa(path, doc, subject, sha256, trusted_keys)
    elif kind == "junit":
        stmt, summary = _junit(path, doc, subject, file_sha256)
    elif kind in SCAN_FORMATS:
        if kind == "grype" and not isinstance(doc.get("matches"), list):
            raise IngestError(path, "matches: must be a list", "give Grype's JSON report (grype ... -o json)",
                              field="matches")
        stmt, summary = _vulns(path, kind, doc, subject, now)
    else:
        if doc.get("bomFormat") != "CycloneDX":
            raise IngestError(path, "bomFormat: must be \"CycloneDX\"", "give a CycloneDX JSON SBOM",
                              field="bomFormat")
        stmt, summary = _cyclonedx(path, doc, subject)
    predicate, notes = redact(stmt["predicate"], key=redaction_key)
    clean_summary, summary_notes = redact(summary, key=redaction_key)
    stmt["predicate"] = predicate
    return Ingested(kind=kind, statement=stmt, summary=clean_summary, file_sha256=file_sha256,
                    redactions=tuple(notes) + tuple(summary_notes))


# --- policy input -------------------------------------------------------------------------------


def evidence_summary(items: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Fold the ``(kind, summary)`` pairs of ONE artifact, oldest first, into ``input.evidence[service]``.

    - provenance: present if any was ingested; ``builders``: every builder id seen, sorted (all
      of them must be allowed, so one provenance from a foreign builder is enough to deny);
    - tests: the NEWEST test run counts: a later green run supersedes an earlier red one (and a
      later red run an earlier green one). Ingest one report per CI run (merge a run's files);
    - vulns: the newest scan of each scanner counts (scanner names compared case-insensitively),
      and the counts of those scans add up; a rescan that fixed a finding clears it;
    - sbom: the newest BOM counts.

    ``evidence_summary([])`` is the all-absent summary a service without evidence gets.
    """
    builders: set[str] = set()
    tests: Mapping[str, Any] | None = None
    scans: dict[str, Mapping[str, Any]] = {}
    sbom: Mapping[str, Any] | None = None
    provenance = False
    for kind, summary in items:
        if kind == "slsa":
            provenance = True
            builders.add(str(summary["builder"]))
        elif kind == "junit":
            tests = summary
        elif kind in SCAN_FORMATS:
            scans[str(summary["scanner"]).lower()] = summary
        elif kind == "cyclonedx":
            sbom = summary
        else:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(FORMATS)}")
    return {
        "provenance": {"present": provenance, "builders": sorted(builders)},
        "tests": {
            "present": tests is not None,
            "passed": tests is not None and tests.get("result") == "PASSED",
            "failed": int(tests.get("failed", 0)) if tests is not None else 0,
            "total": int(tests.get("total", 0)) if tests is not None else 0,
        },
        "vulns": {
            "present": bool(scans),
            "critical": sum(int(s.get("critical", 0)) for s in scans.values()),
            "high": sum(int(s.get("high", 0)) for s in scans.values()),
        },
        "sbom": {"present": sbom is not None, "components": int(sbom.get("components", 0)) if sbom else 0},
    }
