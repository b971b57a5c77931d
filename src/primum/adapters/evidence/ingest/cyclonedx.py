"""A CycloneDX JSON SBOM -> a statement of predicate type ``https://cyclonedx.org/bom``, the BOM as predicate."""

from __future__ import annotations

from typing import Any

from primum.adapters.evidence.ingest.base import Format, IngestError, Source, required_field
from primum.core.evidence import statements as st

CYCLONEDX_BOM = "https://cyclonedx.org/bom"  # the in-toto predicate type for a CycloneDX BOM


def detect(doc: dict[str, Any]) -> bool:
    """``"bomFormat": "CycloneDX"``."""
    return doc.get("bomFormat") == "CycloneDX"


def _count_components(components: Any) -> int:
    """Every component, nested ones included (iteratively: a deep BOM cannot exhaust the stack)."""
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


def ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    """The BOM as the predicate of a statement about the artifact; the summary counts its components."""
    path, doc, subject = src.path, src.doc, src.subject
    if doc.get("bomFormat") != "CycloneDX":
        raise IngestError(path, "bomFormat: must be \"CycloneDX\"", "give a CycloneDX JSON SBOM",
                          field="bomFormat")
    fix = "give the CycloneDX JSON SBOM exactly as the generator wrote it"
    spec = required_field(path, doc, "specVersion", str, "required (e.g. \"1.5\")", fix)
    components = doc.get("components", [])
    if not isinstance(components, list):
        raise IngestError(path, "components: must be a list", fix, field="components")
    stmt = st.statement([dict(subject)], CYCLONEDX_BOM, doc)
    return stmt, {"components": _count_components(components), "spec_version": spec}


FORMAT = Format(name="cyclonedx", syntax="json", slot="sbom", detect=detect, ingest=ingest, rank=20)
