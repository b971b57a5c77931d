"""FHIR probe: ``GET [base]/metadata`` must answer the expected CapabilityStatement.

Checked: HTTP 200, a JSON body whose ``resourceType`` is CapabilityStatement,
``fhirVersion`` equal to the spec's (4.0.1, FHIR R4, by default), ``status``
active, and for each required resource type of the spec an entry in
``rest[mode=server].resource`` listing every required interaction code
(``read``, ``search-type``, ``create``...).
"""

from __future__ import annotations

import json
from typing import Any

from primum.adapters.probes.context import ProbeContext, elapsed_text, result
from primum.adapters.probes.http import FetchError, fetch, join_url
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import FhirProbe

FHIR_JSON = "application/fhir+json"


def server_resources(statement: dict[str, Any]) -> dict[str, set[str]]:
    """Resource type -> interaction codes over every ``rest`` entry of mode server."""
    found: dict[str, set[str]] = {}
    rests = statement.get("rest")
    for rest in rests if isinstance(rests, list) else []:
        if not isinstance(rest, dict) or rest.get("mode") != "server":
            continue
        resources = rest.get("resource")
        for resource in resources if isinstance(resources, list) else []:
            if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                continue
            codes = found.setdefault(resource["type"], set())
            interactions = resource.get("interaction")
            for interaction in interactions if isinstance(interactions, list) else []:
                if isinstance(interaction, dict) and isinstance(interaction.get("code"), str):
                    codes.add(interaction["code"])
    return found


def check_statement(statement: dict[str, Any], spec: FhirProbe) -> tuple[list[str], dict[str, list[str]]]:
    """Problems of a CapabilityStatement against the spec (phrases), and what is missing:
    resource type -> missing interaction codes (all required codes when the type is absent)."""
    problems: list[str] = []
    version = statement.get("fhirVersion")
    if version != spec.fhir_version:
        problems.append(f"declares fhirVersion {version!r}, expected {spec.fhir_version!r}"
                        if version is not None else f"declares no fhirVersion, expected {spec.fhir_version!r}")
    status = statement.get("status")
    if status != "active":
        problems.append(f"has status {status!r}, expected 'active'")
    offered = server_resources(statement)
    missing: dict[str, list[str]] = {}
    absent: list[str] = []
    lacking: list[str] = []
    for kind, wanted in spec.resources.items():
        if kind not in offered:
            missing[kind] = list(wanted)
            absent.append(kind + (f" ({', '.join(wanted)})" if wanted else ""))
            continue
        gaps = [code for code in wanted if code not in offered[kind]]
        if gaps:
            missing[kind] = gaps
            lacking.append(f"{kind} {', '.join(gaps)}")
    if absent:
        problems.append("lists no server resource " + "; ".join(absent))
    if lacking:
        problems.append("lacks interaction(s) " + "; ".join(lacking))
    return problems, missing


def probe_fhir(spec: FhirProbe, ctx: ProbeContext) -> ProbeResult:
    base = spec.base or ctx.base_url
    if not base:
        return result("fhir", "/metadata", False,
                      "FHIR probe has no base URL: set base, or run it where the service has a router")
    url = join_url(base, "metadata")
    headers = {**ctx.headers, "accept": FHIR_JSON}
    what = f"GET {url}"
    try:
        answer = fetch("GET", url, headers, spec.timeout)
    except FetchError as failure:
        return result("fhir", url, False, f"{what} {failure.message}", failure.elapsed)
    details: dict[str, Any] = {"status_code": answer.status, "content_type": answer.headers.get("content-type")}
    if answer.status != 200:
        return result("fhir", url, False, f"{what} answered {answer.status}, expected 200 with a CapabilityStatement",
                      answer.elapsed, **details)
    try:
        statement = json.loads(answer.body)
    except ValueError:
        cut = " (over 1 MiB)" if answer.truncated else ""
        return result("fhir", url, False, f"{what} answered 200 but not JSON{cut}, expected a CapabilityStatement",
                      answer.elapsed, **details)
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        kind = statement.get("resourceType") if isinstance(statement, dict) else type(statement).__name__
        return result("fhir", url, False, f"{what} answered {kind!r}, expected a CapabilityStatement",
                      answer.elapsed, **details)
    software = statement.get("software")
    offered = server_resources(statement)
    details.update(
        fhirVersion=statement.get("fhirVersion"),
        status=statement.get("status"),
        kind=statement.get("kind"),
        format=statement.get("format"),
        software=software if isinstance(software, dict) else None,
        resources={kind: sorted(codes) for kind, codes in sorted(offered.items())},
    )
    problems, missing = check_statement(statement, spec)
    if problems:
        details["missing"] = missing
        return result("fhir", url, False, f"the CapabilityStatement at {url} " + "; ".join(problems),
                      answer.elapsed, **details)
    required = f", with {len(spec.resources)} required resource type(s)" if spec.resources else ""
    return result("fhir", url, True,
                  f"{what} answered an active FHIR {spec.fhir_version} CapabilityStatement{required} "
                  f"in {elapsed_text(answer.elapsed)}", answer.elapsed, **details)


def target_fhir(spec: FhirProbe, ctx: ProbeContext) -> str:
    return (spec.base or ctx.base_url or "").rstrip("/") + "/metadata"
