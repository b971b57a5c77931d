"""What every ingest format shares: the size limit, reading and strict parsing, the error, the result,
the subject's digest (the binding every statement is about) and what a format module provides.

A format module (``slsa.py``, ``junit.py``, ...) gets a :class:`Source` (the file read and parsed, and
what the caller asked) and returns the statement and the summary; it declares itself as a
:class:`Format`, named by one line in ``registry.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from defusedxml import DefusedXmlException

from primum.core.evidence import statements as st
from primum.core.evidence.dsse import PublicKeys
from primum.core.evidence.redact import Redaction
from primum.core.model import jsonfile
from primum.core.model.errors import InputError, Problem
from primum.core.model.yamlfile import MAX_DEPTH

MAX_BYTES = 20 * 1024 * 1024
# The fix of an unrecognised file: one sentence naming every format (extend it with a new format).
FIX_FORMAT = ("give a SLSA provenance v1 statement or envelope, a JUnit XML report, a SARIF 2.1.0, Trivy "
              "or Grype JSON report, or a CycloneDX JSON SBOM")

TrustedKeys = Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey] | PublicKeys
# Where a format's summary lands in the policy input (``evidence_summary``).
Slot = Literal["provenance", "tests", "vulns", "sbom"]


class IngestError(InputError):
    """A CI file that cannot be ingested; names the file, the field and the fix."""

    def __init__(self, path: Path | str, message: str, fix: str, field: str = "", line: int | None = None):
        self.file = str(path)
        self.field = field
        super().__init__([Problem(file=str(path), line=line, path=field, message=message, fix=fix)])


@dataclass(frozen=True)
class Ingested:
    """One ingested file: its format, the statement about the artifact and the policy summary."""

    kind: str  # the format's registered name
    statement: dict[str, Any]  # an in-toto Statement v1 whose only subject is the artifact
    summary: dict[str, Any]  # the shape for the format (docs/EVIDENCE.md); evidence_summary folds them
    file_sha256: str  # of the file as read
    redactions: tuple[Redaction, ...] = ()  # what redaction removed from the statement and summary


@dataclass(frozen=True)
class Source:
    """One CI file, read and parsed, with what the caller asked about it: a format's ``ingest`` input."""

    path: Path
    doc: Any  # the parsed document: a JSON object, or the root element for an XML format
    subject: Mapping[str, Any]  # the artifact, {"name", "digest": {"sha256"}}
    artifact_sha256: str  # the subject's sha256, checked (lowercase hex)
    file_sha256: str  # of the file as read
    now: float  # epoch seconds, for a scan time the report does not give
    trusted_keys: TrustedKeys | None = None  # to verify a signed file with (provenance)


Ingest = Callable[[Source], tuple[st.Statement, dict[str, Any]]]


@dataclass(frozen=True)
class Format:
    """A format module's declaration (its module-level ``FORMAT``), registered by name in ``registry.py``.

    ``detect`` sees the parsed document (a JSON object, or the root element when ``syntax`` is
    ``"xml"``) and says whether it is this format; formats of one syntax are asked in ``rank`` order
    (lowest first), so a broad test (any in-toto statement) can go before a narrow one. ``ingest``
    raises ``IngestError`` naming the field and the fix, never returns a made-up statement.
    """

    name: str
    syntax: Literal["json", "xml"]
    slot: Slot
    detect: Callable[[Any], bool]
    ingest: Ingest
    rank: int = 100


# --- reading and parsing -----------------------------------------------------------------------


def read_text(path: Path) -> tuple[bytes, str]:
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


def parse_json(path: Path, text: str) -> Any:
    """Strict JSON (``core.model.jsonfile``): duplicate keys (read differently by different parsers), NaN,
    overflowing numbers and deep nesting are refused."""
    fix = "give the file exactly as the CI tool wrote it (valid JSON)"
    try:
        return jsonfile.loads(text)
    except jsonfile.JsonRefused as exc:
        raise IngestError(path, f"not valid JSON: {exc.message}", fix, field=exc.key, line=exc.line) from exc


def parse_xml(path: Path, text: str) -> Element:
    """XML through defusedxml: entity expansion and external references are refused; nesting is limited
    like YAML's and JSON's (``MAX_DEPTH``)."""
    try:
        root: Element = SafeET.fromstring(text)
    except DefusedXmlException as exc:
        raise IngestError(path, f"XML refused: {exc}",
                          "JUnit reports need no DTD entities or external references; give the plain report") from exc
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise IngestError(path, f"not valid XML: {exc}", "give the file exactly as the test runner wrote it",
                          line=line) from exc
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise IngestError(path, f"XML nested more than {MAX_DEPTH} levels deep (limit {MAX_DEPTH})",
                              "give the report as the test runner wrote it; no report nests that deep")
        stack.extend((child, depth + 1) for child in element)
    return root


def local_name(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""



# --- helpers for format modules ------------------------------------------------------------------


def required_field(path: Path, doc: Any, field: str, kind: type | tuple[type, ...], what: str, fix: str) -> Any:
    """``doc[field]`` of the given type, or an IngestError naming the field."""
    value = doc.get(field.rsplit(".", 1)[-1]) if isinstance(doc, Mapping) else None
    if not isinstance(value, kind):
        raise IngestError(path, f"{field}: {what}", fix, field=field)
    return value


def report_time(value: Any) -> datetime | None:
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


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for optional parts of a report)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one (for optional parts of a report)."""
    return value if isinstance(value, list) else []


def finite_number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string (a score); None otherwise."""
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


def artifact_sha256(subject: Mapping[str, Any]) -> str:
    """The artifact's sha256 (the digest every statement binds to); ``StatementError`` for a bad subject."""
    name = subject.get("name") if isinstance(subject, Mapping) else None
    digest = subject.get("digest") if isinstance(subject, Mapping) else None
    if not isinstance(name, str) or not name:
        raise st.StatementError("subject.name: required (e.g. scheduling-api@1.4.2)")
    if not isinstance(digest, Mapping) or not isinstance(digest.get("sha256"), str):
        raise st.StatementError("subject.digest.sha256: required")
    return st.sha256_hex(digest["sha256"], "subject.digest.sha256")
