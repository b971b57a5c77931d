"""Ingesting one CI file: read it, recognise its format from its content, hand it to that format's module,
redact what comes back.

Fail closed: a missing, unreadable, over-large, non-UTF-8, invalid or unrecognised file, and a file
whose content shows another format than the one asked for, raise ``IngestError`` naming the fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from primum.adapters.evidence.ingest.base import (
    FIX_FORMAT,
    Ingested,
    IngestError,
    Source,
    TrustedKeys,
    artifact_sha256,
    parse_json,
    parse_xml,
    read_text,
)
from primum.adapters.evidence.ingest.registry import INGEST_FORMATS
from primum.core.evidence.redact import redact


def _sniff(path: Path, text: str) -> tuple[str | None, Any]:
    """The format the content shows (None when unknown) and the parsed document."""
    head = text.lstrip()
    if not head:
        raise IngestError(path, "empty file", FIX_FORMAT)
    if head.startswith("<"):
        root = parse_xml(path, text)
        return INGEST_FORMATS.detect("xml", root), root
    if head[0] in "{[":
        doc = parse_json(path, text)
        return (INGEST_FORMATS.detect("json", doc) if isinstance(doc, dict) else None), doc
    return None, None


def detect_format(path: Path | str) -> str:
    """The format of a CI file, from its content: one of the registered names; ``IngestError`` otherwise."""
    path = Path(path)
    _, text = read_text(path)
    fmt, _ = _sniff(path, text)
    if fmt is None:
        raise IngestError(path, "not a format primum ingests", FIX_FORMAT)
    return fmt


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

    ``fmt`` (a registered format's name; another value is an ``IngestError``) skips detection; a file whose
    content shows another format is refused. ``now`` (epoch seconds) stands in for a scan time the report does not give.
    ``trusted_keys``: Ed25519 public keys to check a DSSE signature on provenance with (a list, a
    key id map or a ``Keyring``). ``redaction_key``: the installation's
    redaction key, for keyed markers. Raises ``IngestError`` for a bad file and ``StatementError``
    (a ``ValueError``) for a bad subject.
    """
    path = Path(path)
    sha256 = artifact_sha256(subject)
    if fmt is not None and fmt not in INGEST_FORMATS:
        raise IngestError(path, f"unknown format {fmt!r}",
                          f"give one of {', '.join(INGEST_FORMATS.names())}, or none to detect it", field="format")
    data, text = read_text(path)
    detected, doc = _sniff(path, text)
    if fmt is not None and detected is not None and detected != fmt:
        raise IngestError(path, f"this is a {detected} file, not {fmt}",
                          f"pass --format {detected}, or give the {fmt} file")
    kind = fmt or detected
    if kind is None:
        raise IngestError(path, "not a format primum ingests", FIX_FORMAT)
    spec = INGEST_FORMATS.get(kind)
    if (spec.syntax == "xml") != isinstance(doc, Element):
        raise IngestError(path, f"not a {kind} file ({'XML' if isinstance(doc, Element) else 'not XML'})",
                          FIX_FORMAT)
    if spec.syntax != "xml" and not isinstance(doc, dict):
        raise IngestError(path, f"not a {kind} file: expected a JSON object", FIX_FORMAT)
    file_sha256 = hashlib.sha256(data).hexdigest()
    stmt, summary = spec.ingest(Source(path=path, doc=doc, subject=subject, artifact_sha256=sha256,
                                       file_sha256=file_sha256, now=now, trusted_keys=trusted_keys))
    predicate, notes = redact(stmt["predicate"], key=redaction_key)
    clean_summary, summary_notes = redact(summary, key=redaction_key)
    stmt["predicate"] = predicate
    return Ingested(kind=kind, statement=stmt, summary=clean_summary, file_sha256=file_sha256,
                    redactions=tuple(notes) + tuple(summary_notes))
