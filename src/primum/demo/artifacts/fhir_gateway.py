#!/usr/bin/env python3
"""FHIR gateway: a FHIR R4 (4.0.1) facade of the (fictional) Primum General Hospital.

Demo service of the primum release control plane, a template: primum.demo.render
inserts the shared server code (common.pyfrag) to make one self-contained file,
standard library only; every resource is synthetic (``Test Patient 0001``...),
tagged HTEST ("test health data") and generated deterministically from its id.

    python <rendered fhir_gateway artifact> --port 8080 [--host 127.0.0.1]

Read-only JSON FHIR API (``application/fhir+json``): ``GET /metadata``
(CapabilityStatement), ``GET /{type}/{id}`` (read) and ``GET /{type}?...``
(search-type, a searchset Bundle) for Patient, Appointment, Encounter and
Observation. Errors are OperationOutcome resources. ``/healthz`` is plain JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import socket
import socketserver
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

SERVICE = "fhir-gateway"

# --- primum:build (rewritten by primum.demo.render) ---
VERSION = "1.0.0"
EXTRA_LATENCY_MS = 0        # injected regression: added latency on every non-health request
ERROR_RATE = 0.0            # injected regression: fraction of non-health requests answered 500
FAULT_TENANTS = ()          # if non-empty, the faults above only hit these tenants
FHIR_VERSION = "4.0.1"      # fhirVersion of the CapabilityStatement (4.0.1: FHIR R4)
# --- end primum:build ---

# --- service ---

FHIR_TYPE = "application/fhir+json; charset=utf-8"
PATIENTS = 1000  # patients 1 .. 1000 exist, with ids like pat-0001, example-0001 or 1
PER_PATIENT = 5  # appointments, encounters and observations per patient
ID_PATTERN = re.compile(r"(?:[A-Za-z][A-Za-z0-9.]{0,40}-)?0*([1-9][0-9]{0,3})")
CHILD_PATTERN = re.compile(r"(apt|enc|obs)-([0-9]{4})-([1-9])")
TEST_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "HTEST",
    "display": "test health data",
}
SEARCH_PARAMS = {
    "Patient": (("_id", "token"), ("identifier", "token"), ("name", "string")),
    "Appointment": (("_id", "token"), ("patient", "reference"), ("date", "date"), ("status", "token")),
    "Encounter": (("_id", "token"), ("patient", "reference"), ("date", "date"), ("status", "token")),
    "Observation": (("_id", "token"), ("patient", "reference"), ("date", "date"), ("code", "token")),
}
VITALS = (  # LOINC code, display, UCUM unit, low, high
    ("8867-4", "Heart rate", "/min", 55, 110),
    ("8310-5", "Body temperature", "Cel", 36.0, 38.4),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 100, 160),
    ("9279-1", "Respiratory rate", "/min", 12, 22),
)
KINDS = {"apt": "Appointment", "enc": "Encounter", "obs": "Observation"}
PREFIXES = {kind: prefix for prefix, kind in KINDS.items()}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def capability_statement(base: str) -> dict[str, object]:
    resources = [
        {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": name, "type": kind_} for name, kind_ in params],
        }
        for kind, params in SEARCH_PARAMS.items()
    ]
    return {
        "resourceType": "CapabilityStatement",
        "id": "primum-fhir-gateway",
        "url": f"{base}/metadata",
        "version": VERSION,
        "name": "PrimumFhirGateway",
        "title": "Primum General Hospital FHIR gateway (fictional, synthetic data)",
        "status": "active",
        "experimental": True,
        "date": stamp(datetime.fromtimestamp(STARTED_AT, UTC)),
        "publisher": "Primum General Hospital (fictional)",
        "kind": "instance",
        "software": {"name": SERVICE, "version": VERSION},
        "implementation": {"description": "primum demo FHIR R4 facade", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}],
    }


def patient_number(raw: str) -> int | None:
    """``pat-0042``, ``example-0042``, ``0042`` or ``42`` -> 42 if that patient exists."""
    match = ID_PATTERN.fullmatch(raw)
    number = int(match.group(1)) if match else 0
    return number if 0 < number <= PATIENTS else None


def meta() -> dict[str, object]:
    return {"tag": [TEST_TAG]}


def patient(number: int, resource_id: str) -> dict[str, object]:
    rng = random.Random(f"{SERVICE}:patient:{number}")
    birth = datetime(1940, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 80 * 365))
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "meta": meta(),
        "identifier": [{"system": "urn:primum:demo:mrn", "value": f"TEST-{number:04d}"}],
        "active": True,
        "name": [
            {
                "use": "official",
                "text": f"Test Patient {number:04d}",
                "family": "Patient",
                "given": ["Test", f"{number:04d}"],
            }
        ],
        "gender": rng.choice(("female", "male", "other", "unknown")),
        "birthDate": birth.date().isoformat(),
    }


def child(prefix: str, number: int, index: int) -> dict[str, object]:
    """Appointment, Encounter or Observation ``index`` (1..PER_PATIENT) of patient ``number``."""
    rng = random.Random(f"{SERVICE}:{prefix}:{number}:{index}")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    resource_id = f"{prefix}-{number:04d}-{index}"
    subject = {"reference": f"Patient/pat-{number:04d}", "display": f"Test Patient {number:04d}"}
    when = today + timedelta(days=rng.randint(-60, 60), hours=rng.randint(8, 16))
    common = {"id": resource_id, "meta": meta()}
    if prefix == "apt":
        status = "booked" if when > today else rng.choice(("fulfilled", "fulfilled", "noshow"))
        return {
            "resourceType": "Appointment",
            **common,
            "status": status,
            "description": "Synthetic demo appointment",
            "start": stamp(when),
            "end": stamp(when + timedelta(minutes=30)),
            "participant": [
                {"actor": subject, "status": "accepted"},
                {
                    "actor": {"display": f"Dr. Test Clinician {rng.randint(1, 40):02d}"},
                    "status": "accepted",
                },
            ],
        }
    when = min(when, today - timedelta(days=1))
    if prefix == "enc":
        return {
            "resourceType": "Encounter",
            **common,
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
                "display": "ambulatory",
            },
            "subject": subject,
            "period": {"start": stamp(when), "end": stamp(when + timedelta(minutes=25))},
        }
    code, display, unit, low, high = rng.choice(VITALS)
    value = round(rng.uniform(low, high), 1) if isinstance(low, float) else rng.randint(low, high)
    return {
        "resourceType": "Observation",
        **common,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": subject,
        "effectiveDateTime": stamp(when),
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def read(kind: str, resource_id: str) -> dict[str, object]:
    if kind == "Patient":
        number = patient_number(resource_id)
        if number is not None:
            return patient(number, resource_id)
    else:
        match = CHILD_PATTERN.fullmatch(resource_id)
        if match and KINDS[match.group(1)] == kind:
            number, index = int(match.group(2)), int(match.group(3))
            if 0 < number <= PATIENTS and index <= PER_PATIENT:
                return child(match.group(1), number, index)
    raise Fail(404, f"Resource {kind}/{resource_id} is not known")


def when_of(resource: dict[str, object]) -> str:
    period = resource.get("period")
    if isinstance(period, dict):
        return str(period["start"])
    return str(resource.get("start") or resource.get("effectiveDateTime"))


def codes_of(resource: dict[str, object]) -> set[str]:
    concept = resource.get("code")
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    return {str(coding.get("code")) for coding in codings}


def date_matches(value: str, wanted: str) -> bool:
    prefix, date = (wanted[:2], wanted[2:]) if wanted[:2].isalpha() else ("eq", wanted)
    value = value[: len(date)]
    tests = {
        "eq": value == date,
        "ne": value != date,
        "ge": value >= date,
        "gt": value > date,
        "le": value <= date,
        "lt": value < date,
    }
    if prefix not in tests:
        raise Fail(400, f"unsupported date prefix {prefix!r}")
    return tests[prefix]


def search(kind: str, request: Request) -> list[dict[str, object]]:
    """All matches (at most 100); unknown parameters are ignored (lenient handling)."""
    if request.param("_id"):
        try:
            return [read(kind, request.param("_id"))]
        except Fail:
            return []
    if kind == "Patient":
        wanted = request.param("identifier").rsplit("|", 1)[-1].removeprefix("TEST-")
        wanted = wanted or request.param("name").rsplit(" ", 1)[-1]
        number = patient_number(wanted)
        numbers = ([number] if number else []) if wanted else range(1, 101)
        return [patient(n, f"pat-{n:04d}") for n in numbers]
    reference = request.param("patient").removeprefix("Patient/")
    number = patient_number(reference)
    numbers = ([number] if number else []) if reference else range(1, 21)
    prefix = PREFIXES[kind]
    found = [child(prefix, n, i) for n in numbers for i in range(1, PER_PATIENT + 1)]
    for wanted_date in request.query.get("date", []):
        found = [r for r in found if date_matches(when_of(r), wanted_date)]
    status = request.param("status")
    if status:
        found = [r for r in found if r.get("status") == status]
    code = request.param("code").rsplit("|", 1)[-1]
    if code:
        found = [r for r in found if code in codes_of(r)]
    return found


def bundle(kind: str, request: Request, base: str, found: list[dict[str, object]]) -> dict[str, object]:
    count = request.int_param("_count", 10, 0, 100)
    query = urlencode([(k, v) for k, values in sorted(request.query.items()) for v in values])
    return {
        "resourceType": "Bundle",
        "id": f"search-{random.getrandbits(48):012x}",
        "meta": {"lastUpdated": stamp(datetime.now(UTC))},
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": f"{base}/{kind}" + (f"?{query}" if query else "")}],
        "entry": [
            {
                "fullUrl": f"{base}/{kind}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in found[:count]
        ],
    }


def route(request: Request) -> Reply:
    request.only("GET")
    base = f"http://{request.host}"
    if request.path == "/metadata":
        return Reply(200, capability_statement(base), FHIR_TYPE)
    parts = request.path.strip("/").split("/")
    kind = parts[0]
    if kind not in SEARCH_PARAMS:
        raise Fail(404, f"Resource type {kind!r} is not supported")
    if len(parts) == 1:
        return Reply(200, bundle(kind, request, base, search(kind, request)), FHIR_TYPE)
    if len(parts) == 2:
        return Reply(200, read(kind, parts[1]), FHIR_TYPE)
    raise Fail(404, f"Unknown path {request.path}")


def error_reply(status: int, message: str) -> Reply:
    code = {400: "invalid", 404: "not-found", 405: "not-supported"}.get(status, "exception")
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
    }
    return Reply(status, outcome, FHIR_TYPE)


# --- primum:common: inserted here from common.pyfrag by primum.demo.render ---


if __name__ == "__main__":
    sys.exit(main())
