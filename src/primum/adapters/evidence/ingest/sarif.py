"""SARIF 2.1.0 (e.g. CodeQL) -> a vulns v0.2 statement, one result per finding.

A result's severity is its rule's ``security-severity`` (a CVSS score) when given, else its SARIF level.
Results of kind pass, notApplicable or informational are not findings. One scanner per file, so each
scanner's newest scan counts on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    required_field,
)
from primum.adapters.evidence.ingest.vulns import scan_statement
from primum.core.evidence import statements as st

SARIF_VERSION = "2.1.0"


def detect(doc: dict[str, Any]) -> bool:
    """A ``runs`` list with a ``version`` or a SARIF ``$schema``."""
    schema = doc.get("$schema")
    return isinstance(doc.get("runs"), list) and (
        "version" in doc or (isinstance(schema, str) and "sarif" in schema.lower()))


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
    tool = as_object(run.get("tool"))
    driver = as_object(tool.get("driver"))
    listed = as_list(driver.get("rules"))
    by_id: dict[str, Mapping[str, Any]] = {}
    extensions = as_list(tool.get("extensions"))
    for component in [driver, *extensions]:
        rules = component.get("rules") if isinstance(component, Mapping) else None
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, Mapping) and isinstance(rule.get("id"), str):
                by_id.setdefault(rule["id"], rule)
    return listed, by_id


def _scan(path: Path, doc: dict[str, Any], now: float) -> dict[str, Any]:
    """The scan of a SARIF file: one scanner's runs, each result with its rule's severity."""
    fix = "give the SARIF 2.1.0 file exactly as the scanner wrote it"
    if doc.get("version") != SARIF_VERSION:
        raise IngestError(path, f"SARIF version {doc.get('version')!r} is not {SARIF_VERSION}",
                          "have the scanner write SARIF 2.1.0", field="version")
    runs = required_field(path, doc, "runs", list, "must be a non-empty list of runs", fix)
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
        driver = as_object(as_object(run.get("tool")).get("driver"))
        if not isinstance(driver.get("name"), str) or not driver["name"]:
            raise IngestError(path, f"{where}.tool.driver.name: required", fix, field=f"{where}.tool.driver.name")
        if driver["name"] not in names:
            names.append(driver["name"])
        uri = uri or str(driver.get("informationUri") or driver["name"])
        version = version or str(driver.get("semanticVersion") or driver.get("version") or "")
        for inv in as_list(run.get("invocations")):
            if isinstance(inv, dict):
                started += [t for t in [report_time(inv.get("startTimeUtc"))] if t]
                finished += [t for t in [report_time(inv.get("endTimeUtc"))] if t]
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
            rule_ref = as_object(res.get("rule"))
            rule_id = res.get("ruleId") or rule_ref.get("id") or rule.get("id")
            if not isinstance(rule_id, str) or not rule_id:
                raise IngestError(path, f"{at}.ruleId: required (a result names its rule)", fix, field=f"{at}.ruleId")
            rule = rule or by_id.get(rule_id) or by_id.get(rule_id.split("/", 1)[0]) or {}
            props = as_object(rule.get("properties"))
            score = finite_number(props.get("security-severity"))
            if score is not None:
                band = _cvss_band(score)
                entry = {"method": "CVSSv3", "score": str(props["security-severity"])}
            else:
                default = as_object(rule.get("defaultConfiguration"))
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


def ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    """The vulns statement of one scanner's SARIF file."""
    return scan_statement(src, _scan(src.path, src.doc, src.now))


FORMAT = Format(name="sarif", syntax="json", slot="vulns", detect=detect, ingest=ingest, rank=30)
