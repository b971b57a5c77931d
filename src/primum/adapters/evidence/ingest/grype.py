"""Grype JSON (``grype ... -o json``) -> a vulns v0.2 statement, one result per match.

Grype's ``Negligible`` band counts as ``low``; the database's build time (``descriptor.db``, or
``descriptor.db.status`` from grype 0.88) is the statement's database date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from primum.adapters.evidence.ingest.base import (
    Format,
    IngestError,
    Source,
    as_list,
    as_object,
    finite_number,
    report_time,
)
from primum.adapters.evidence.ingest.vulns import package_note, scan_statement
from primum.core.evidence import statements as st


def detect(doc: dict[str, Any]) -> bool:
    """A ``matches`` list with a ``descriptor`` named grype, or a ``source``."""
    descriptor = doc.get("descriptor")
    return isinstance(doc.get("matches"), list) and (
        (isinstance(descriptor, dict) and descriptor.get("name") == "grype") or "source" in doc)


def _scan(path: Path, doc: dict[str, Any], now: float) -> dict[str, Any]:
    """The scan of a Grype report: every match, with its CVSS v3 scores and the fixed versions."""
    fix = "give Grype's JSON report (grype ... -o json)"
    results: list[dict[str, Any]] = []
    severities: list[str] = []
    for i, match in enumerate(doc["matches"]):
        at = f"matches[{i}].vulnerability"
        match = as_object(match)
        vuln = as_object(match.get("vulnerability"))
        vid = vuln.get("id")
        if not isinstance(vid, str) or not vid:
            raise IngestError(path, f"{at}.id: required", fix, field=f"{at}.id")
        severity = str(vuln.get("severity") or "Unknown")
        entries = [{"method": "grype", "score": severity}]
        for c in as_list(vuln.get("cvss")):
            c = as_object(c)
            base = as_object(c.get("metrics")).get("baseScore")
            if finite_number(base) is not None and str(c.get("version", "")).startswith("3"):
                source = c.get("source") or "cvss"
                entries.append({"method": f"CVSSv3 ({source})", "score": str(base)})
        result: dict[str, Any] = {"id": vid, "severity": entries}
        artifact = as_object(match.get("artifact"))
        fixed = as_object(vuln.get("fix")).get("versions")
        annotations = package_note(artifact.get("name"), artifact.get("version"),
                               ", ".join(str(f) for f in fixed) if isinstance(fixed, list) else None)
        if annotations:
            result["annotations"] = annotations
        results.append(result)
        band = severity.lower()
        severities.append("low" if band == "negligible" else band)
    descriptor = as_object(doc.get("descriptor"))
    version = str(descriptor.get("version") or "")
    db = as_object(descriptor.get("db"))
    status = as_object(db.get("status")) or db  # grype >= 0.88 nests it under status
    scanned = report_time(descriptor.get("timestamp")) or datetime.fromtimestamp(now, UTC)
    built = report_time(status.get("built")) or scanned
    return {"scanner": "grype", "uri": "pkg:github/anchore/grype" + (f"@{version}" if version else ""),
            "version": version, "results": results, "severities": severities, "started": scanned,
            "finished": scanned,
            "db_last_update": built, "db_uri": "",
            "db_version": str(status.get("schemaVersion") or "")}


def ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    """The vulns statement of a Grype report (``matches`` must be a list, even when given ``--format grype``)."""
    if not isinstance(src.doc.get("matches"), list):
        raise IngestError(src.path, "matches: must be a list", "give Grype's JSON report (grype ... -o json)",
                          field="matches")
    return scan_statement(src, _scan(src.path, src.doc, src.now))


FORMAT = Format(name="grype", syntax="json", slot="vulns", detect=detect, ingest=ingest, rank=50)
