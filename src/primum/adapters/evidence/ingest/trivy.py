"""Trivy JSON (``trivy ... --format json``) -> a vulns v0.2 statement, one result per vulnerability."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from primum.adapters.evidence.ingest.base import Format, IngestError, Source, as_object, finite_number, report_time
from primum.adapters.evidence.ingest.vulns import package_note, scan_statement
from primum.core.evidence import statements as st


def detect(doc: dict[str, Any]) -> bool:
    """A ``SchemaVersion`` with ``Results`` or an ``ArtifactName``."""
    return "SchemaVersion" in doc and ("Results" in doc or "ArtifactName" in doc)


def _scan(path: Path, doc: dict[str, Any], now: float) -> dict[str, Any]:
    """The scan of a Trivy report: every target's vulnerabilities, with their CVSS v3 scores."""
    fix = "give Trivy's JSON report (trivy ... --format json)"
    raw = doc.get("Results") or []
    if not isinstance(raw, list):
        raise IngestError(path, "Results: must be a list", fix, field="Results")
    results: list[dict[str, Any]] = []
    severities: list[str] = []
    for r, target in enumerate(raw):
        vulns = as_object(target).get("Vulnerabilities")
        if vulns is None:
            continue
        if not isinstance(vulns, list):
            raise IngestError(path, f"Results[{r}].Vulnerabilities: must be a list", fix,
                              field=f"Results[{r}].Vulnerabilities")
        for i, v in enumerate(vulns):
            at = f"Results[{r}].Vulnerabilities[{i}]"
            v = as_object(v)
            vid = v.get("VulnerabilityID")
            if not isinstance(vid, str) or not vid:
                raise IngestError(path, f"{at}.VulnerabilityID: required", fix, field=f"{at}.VulnerabilityID")
            severity = str(v.get("Severity") or "UNKNOWN").upper()
            entries = [{"method": "trivy", "score": severity}]
            cvss = as_object(v.get("CVSS"))
            for source in sorted(cvss):
                v3 = as_object(cvss[source]).get("V3Score")
                if finite_number(v3) is not None:
                    entries.append({"method": f"CVSSv3 ({source})", "score": str(v3)})
            result: dict[str, Any] = {"id": vid, "severity": entries}
            annotations = package_note(v.get("PkgName"), v.get("InstalledVersion"), v.get("FixedVersion"))
            if annotations:
                result["annotations"] = annotations
            results.append(result)
            severities.append(severity.lower())
    trivy = as_object(doc.get("Trivy"))
    version = str(trivy.get("Version") or "")
    scanned = report_time(doc.get("CreatedAt")) or datetime.fromtimestamp(now, UTC)
    return {"scanner": "trivy", "uri": "pkg:github/aquasecurity/trivy" + (f"@{version}" if version else ""),
            "version": version, "results": results, "severities": severities, "started": scanned,
            "finished": scanned, "db_last_update": scanned, "db_uri": "", "db_version": ""}


def ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    """The vulns statement of a Trivy report."""
    return scan_statement(src, _scan(src.path, src.doc, src.now))


FORMAT = Format(name="trivy", syntax="json", slot="vulns", detect=detect, ingest=ingest, rank=40)
