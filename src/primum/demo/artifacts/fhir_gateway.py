#!/usr/bin/env python3
"""FHIR gateway: a FHIR R4 (4.0.1) facade of the (fictional) Primum General Hospital.

Demo service of the primum release control plane. One self-contained file,
standard library only; every resource is synthetic (``Test Patient 0001``...),
tagged HTEST ("test health data") and generated deterministically from its id.

    python fhir_gateway.py --port 8080 [--host 127.0.0.1]

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
# --- end primum:build ---

# --- service ---

FHIR_TYPE = "application/fhir+json; charset=utf-8"
FHIR_VERSION = "4.0.1"
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


# --- primum:common (identical in every demo service; tests keep the copies in sync) ---

TENANT_HEADER = "x-tenant-id"
JSON_TYPE = "application/json"
MAX_BODY_BYTES = 1 << 20
STARTED_AT = time.time()


class Request:
    """One parsed HTTP request as handed to ``route`` (HEAD arrives as GET)."""

    __slots__ = ("body", "host", "method", "path", "query", "tenant")

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        tenant: str,
        body: bytes,
        host: str,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.tenant = tenant
        self.body = body
        self.host = host  # the Host header (or our address): base of absolute URLs

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.param(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise Fail(400, f"query parameter {name!r} must be an integer") from None
        return max(low, min(high, value))

    def only(self, *methods: str) -> None:
        if self.method not in methods:
            raise Fail(405, f"method {self.method} not allowed on {self.path}")


class Reply:
    """A JSON answer: status, body (any JSON value) and content type."""

    __slots__ = ("body", "content_type", "status")

    def __init__(self, status: int, body: object, content_type: str = JSON_TYPE) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type


class Fail(Exception):
    """Raised by ``route`` to answer an error through ``error_reply``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def injected_failure(tenant: str) -> bool:
    """Baseline latency plus the injected regression; True means "answer 500".

    Never called for ``/healthz``: a regression that passes health checks is
    exactly what canary analysis has to catch.
    """
    time.sleep(random.uniform(0.002, 0.012))
    if FAULT_TENANTS and tenant not in FAULT_TENANTS:
        return False
    if EXTRA_LATENCY_MS > 0:
        time.sleep(EXTRA_LATENCY_MS / 1000.0)
    return ERROR_RATE > 0 and random.random() < ERROR_RATE


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds an idle keep-alive connection may hold its thread

    def version_string(self) -> str:
        return f"primum-demo {SERVICE}/{VERSION}"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: no per-request log lines."""

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unknown method...) answer JSON too."""
        self.close_connection = True
        reason = message or self.responses.get(code, ("error",))[0]
        self._send(error_reply(code, reason), "", self.command == "HEAD")

    def _dispatch(self) -> None:
        head = self.command == "HEAD"
        method = "GET" if head else self.command
        tenant = (self.headers.get(TENANT_HEADER) or "").strip()[:128]
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(error_reply(400, "bad or too large content-length"), tenant, head)
            return
        body = self.rfile.read(length) if length else b""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            self.close_connection = True  # chunked bodies are not read: do not reuse the stream
        parts = urlsplit(self.path)
        path = "/" + parts.path.strip("/")
        if path == "/healthz" and method == "GET":
            status = {"status": "ok", "service": SERVICE, "version": VERSION}
            self._send(Reply(200, status), tenant, head)
            return
        host = self.headers.get("host") or "{}:{}".format(*self.server.server_address[:2])
        request = Request(method, path, parse_qs(parts.query), tenant, body, host)
        self._send(self._answer(request), tenant, head)

    def _answer(self, request: Request) -> Reply:
        if injected_failure(request.tenant):
            return error_reply(500, "internal server error")
        try:
            return route(request)
        except Fail as fail:
            return error_reply(fail.status, fail.message)
        except Exception as exc:  # a bug: log it, answer 500 and keep serving
            print(f"{SERVICE}: {request.method} {request.path}: {exc!r}", file=sys.stderr)
            return error_reply(500, "internal server error")

    def _send(self, reply: Reply, tenant: str, head: bool) -> None:
        data = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("x-service-name", SERVICE)
        self.send_header("x-service-version", VERSION)
        if tenant and tenant.isprintable():
            self.send_header(TENANT_HEADER, tenant)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's reverse DNS lookup: start-up must be fast.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away: nothing worth logging
        super().handle_error(request, client_address)


def main(
    argv: list[str] | None = None,
    *,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    start: Callable[[argparse.Namespace], list[str]] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, then exit 0.

    ``add_arguments`` adds service options; ``start`` starts extra listeners
    (returning their addresses for the start-up line) before serving.
    """
    parser = argparse.ArgumentParser(
        prog=f"{SERVICE}.py", description=f"primum demo service {SERVICE} (synthetic data only)"
    )
    parser.add_argument("--port", type=int, required=True, help="HTTP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as exc:
        print(f"{SERVICE}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        extra = start(args) if start is not None else []
        host, port = server.server_address[:2]
        where = ", ".join([f"http://{host}:{port}", *extra])
        print(f"listening on {where} ({SERVICE} {VERSION})", file=sys.stderr, flush=True)
        server.serve_forever(poll_interval=0.5)
    except OSError as exc:
        print(f"{SERVICE}: {exc}", file=sys.stderr)
        return 1
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


# --- end primum:common ---


if __name__ == "__main__":
    sys.exit(main())
