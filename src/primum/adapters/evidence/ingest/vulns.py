"""What the scanner formats (SARIF, Trivy, Grype) share: one vulns v0.2 statement per scan and a summary
counting its findings by severity band.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from primum.adapters.evidence.ingest.base import IngestError, Source
from primum.core.evidence import statements as st

SEVERITIES = ("critical", "high", "medium", "low", "unknown")


def severity_counts(severities: Iterable[str]) -> dict[str, int]:
    """How many findings fall in each band of ``SEVERITIES`` (an unknown band counts as ``unknown``)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for s in severities:
        counts[s if s in counts else "unknown"] += 1
    return counts


def package_note(name: Any, installed: Any, fixed: Any) -> list[dict[str, str]]:
    """A result's package annotation (only the parts the report gives), or none."""
    note = {k: str(v) for k, v in (("package", name), ("installedVersion", installed), ("fixedVersion", fixed))
            if isinstance(v, str) and v}
    return [note] if note else []


def scan_statement(src: Source, scan: Mapping[str, Any]) -> tuple[st.Statement, dict[str, Any]]:
    """The vulns statement and the ``{"scanner", <severity counts>}`` summary of one scanner's ``scan``.

    ``scan`` is what a scanner module read from its report: ``scanner``, ``uri``, ``version``,
    ``results`` (vulns v0.2 results), ``severities`` (one band per result), ``started``, ``finished``,
    ``db_last_update``, ``db_uri`` and ``db_version``.
    """
    path, subject = src.path, src.subject
    try:
        stmt = st.vulns_statement(
            [dict(subject)], scanner_uri=scan["uri"], scanner_version=scan["version"],
            db_last_update=scan["db_last_update"], db_uri=scan["db_uri"], db_version=scan["db_version"],
            results=scan["results"], scan_started=scan["started"], scan_finished=scan["finished"])
    except st.StatementError as exc:
        raise IngestError(path, str(exc), "give the report exactly as the scanner wrote it") from exc
    summary: dict[str, Any] = {"scanner": scan["scanner"], **severity_counts(scan["severities"])}
    return stmt, summary
