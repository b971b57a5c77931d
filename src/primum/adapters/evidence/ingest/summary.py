"""The policy input: one artifact's ingested summaries folded into ``input.evidence[service]`` (docs/POLICY.md).

Each format lands in its ``slot`` (``Format.slot``): a new SBOM format counts as an SBOM without a change
here. Kept out of ``base`` because it reads the registry, which imports the format modules, which import
``base``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from primum.adapters.evidence.ingest.registry import INGEST_FORMATS


def scan_formats() -> frozenset[str]:
    """The names of the registered scanner formats (slot ``vulns``)."""
    return frozenset(f.name for f in INGEST_FORMATS.formats() if f.slot == "vulns")


def evidence_summary(items: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Fold the ``(kind, summary)`` pairs of ONE artifact, oldest first, into ``input.evidence[service]``.

    Each kind lands in its format's ``slot``:

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
        slot = INGEST_FORMATS.get(kind).slot if kind in INGEST_FORMATS else None
        if slot == "provenance":
            provenance = True
            builders.add(str(summary["builder"]))
        elif slot == "tests":
            tests = summary
        elif slot == "vulns":
            scans[str(summary["scanner"]).lower()] = summary
        elif slot == "sbom":
            sbom = summary
        else:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(INGEST_FORMATS.names())}")
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
