"""CI evidence ingest: files CI produces, turned into in-toto Statements v1 about one artifact.

``ingest_file(path, subject=..., now=...)`` reads one file, recognises its format from its content
(``detect_format``), checks it and returns an ``Ingested``: the format (``kind``), a Statement v1
whose only subject is the artifact (built with ``primum.core.evidence.statements``) and a small
``summary`` for the policy input. ``evidence_summary`` folds the summaries of one artifact, oldest
first, into the ``input.evidence[service]`` document the baseline policy reads (docs/POLICY.md).

Formats (docs/EVIDENCE.md, "Ingest"), one module each, registered by name in ``registry.py``:

- ``slsa``: SLSA provenance v1, as a bare Statement, a DSSE envelope or a Sigstore bundle; the
  artifact digest must be one of the provenance's subjects. A DSSE signature is checked only
  when ``trusted_keys`` (Ed25519 public keys) are given; the summary says ``verified`` or
  ``unverified``, and a signature that does not verify under the given keys is an error.
- ``junit``: JUnit XML (parsed with defusedxml) -> test-result v0.1. Only test names are kept,
  never failure messages (they may carry data). A run in which no test ran is FAILED.
- ``sarif`` (2.1.0), ``trivy`` and ``grype`` JSON -> vulns v0.2, one result per finding (``vulns.py``
  holds what they share).
- ``cyclonedx``: a CycloneDX JSON BOM -> predicate type ``https://cyclonedx.org/bom``.

The rest: ``base.py`` (the size limit, reading and strict parsing, ``IngestError``, ``Ingested``, the
subject's digest, what a format module declares), ``pipeline.py`` (``detect_format``, ``ingest_file``)
and ``summary.py`` (``evidence_summary``). To add a format, write one module declaring
``FORMAT = Format(...)`` and add one line to ``registry.py``.

Fail closed: a missing, unreadable, over-large (20 MiB), non-UTF-8, invalid or unrecognised
file, a JSON document with duplicate keys or NaN, and a field of the wrong shape all raise
``IngestError`` (an ``InputError``: the CLI exits 2), naming the file, the field and the fix.
Every predicate and summary passes through ``primum.core.evidence.redact`` before it is returned.

The names below load on first use (PEP 562), so importing ``registry`` to list the format names
(the CLI's ``--help``) does not import the parsers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from primum.adapters.evidence.ingest.base import MAX_BYTES, Ingested, IngestError, TrustedKeys
    from primum.adapters.evidence.ingest.cyclonedx import CYCLONEDX_BOM
    from primum.adapters.evidence.ingest.pipeline import detect_format, ingest_file
    from primum.adapters.evidence.ingest.registry import FORMATS, INGEST_FORMATS
    from primum.adapters.evidence.ingest.sarif import SARIF_VERSION
    from primum.adapters.evidence.ingest.summary import evidence_summary
    from primum.adapters.evidence.ingest.vulns import SEVERITIES

    SCAN_FORMATS: frozenset[str]

__all__ = [
    "CYCLONEDX_BOM",
    "FORMATS",
    "INGEST_FORMATS",
    "MAX_BYTES",
    "SARIF_VERSION",
    "SCAN_FORMATS",
    "SEVERITIES",
    "IngestError",
    "Ingested",
    "TrustedKeys",
    "detect_format",
    "evidence_summary",
    "ingest_file",
]

_HOME = {
    "CYCLONEDX_BOM": "cyclonedx", "FORMATS": "registry", "INGEST_FORMATS": "registry", "MAX_BYTES": "base",
    "SARIF_VERSION": "sarif", "SEVERITIES": "vulns", "IngestError": "base", "Ingested": "base",
    "TrustedKeys": "base", "detect_format": "pipeline", "evidence_summary": "summary", "ingest_file": "pipeline",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    if name == "SCAN_FORMATS":
        return importlib.import_module(f"{__name__}.summary").scan_formats()
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
