#!/usr/bin/env python3
"""Patient portal: the patient-facing web front of the (fictional) Primum General Hospital.

Demo service of the primum release control plane. One self-contained file,
standard library only; every datum it serves is synthetic (``Test Patient
0001``...), generated deterministically per tenant (clinic).

    python patient_portal.py --port 8080 [--host 127.0.0.1]

Endpoints (JSON): ``/healthz``, ``/`` (portal home), ``/appointments``
(the signed-in patient's upcoming visits), ``/messages`` and
``/messages/{id}`` (secure inbox).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import socketserver
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SERVICE = "patient-portal"

# --- primum:build (rewritten by primum.demo.render) ---
VERSION = "1.0.0"
EXTRA_LATENCY_MS = 0        # injected regression: added latency on every non-health request
ERROR_RATE = 0.0            # injected regression: fraction of non-health requests answered 500
FAULT_TENANTS = ()          # if non-empty, the faults above only hit these tenants
# --- end primum:build ---

# --- service ---

HOSPITAL = "Primum General Hospital (fictional)"
NOTICE = "Synthetic demo data: no real patients."
VISIT_TYPES = (
    ("general-practice", "Routine check-up"),
    ("cardiology", "Cardiology follow-up"),
    ("dermatology", "Skin examination"),
    ("radiology", "Chest X-ray"),
    ("physiotherapy", "Physiotherapy session"),
    ("laboratory", "Blood test"),
)
SUBJECTS = (
    "Your appointment is confirmed",
    "New test results are available",
    "Prescription renewal reminder",
    "Please complete your pre-visit questionnaire",
    "Updated clinic opening hours",
    "Your invoice is ready",
)


def clinic_of(tenant: str) -> str:
    return (tenant or "primum-general").replace("-", " ").replace("_", " ").title()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_in_patient(request: Request) -> tuple[str, str]:
    """The synthetic patient of this session: ``?patient=pat-0042`` or one per tenant."""
    raw = request.param("patient").removeprefix("pat-")
    if raw:
        if not (raw.isdigit() and 0 < int(raw) < 10000):
            raise Fail(400, "patient must look like pat-0001")
        number = int(raw)
    else:
        number = random.Random(f"{SERVICE}:{request.tenant}").randint(1, 9999)
    return f"pat-{number:04d}", f"Test Patient {number:04d}"


def appointments(request: Request, patient_id: str) -> list[dict[str, object]]:
    rng = random.Random(f"{SERVICE}:{request.tenant}:{patient_id}:appointments")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    visits = []
    for _ in range(rng.randint(2, 6)):
        specialty, description = rng.choice(VISIT_TYPES)
        start = today + timedelta(days=rng.randint(1, 45), hours=rng.randint(8, 15))
        start += timedelta(minutes=rng.choice((0, 15, 30, 45)))
        visits.append(
            {
                "id": f"apt-{rng.randint(1, 99999):05d}",
                "start": stamp(start),
                "end": stamp(start + timedelta(minutes=rng.choice((15, 20, 30)))),
                "specialty": specialty,
                "description": description,
                "practitioner": f"Dr. Test Clinician {rng.randint(1, 40):02d}",
                "location": f"{clinic_of(request.tenant)}, room {rng.randint(1, 30)}",
                "status": rng.choice(("booked", "booked", "booked", "pending")),
            }
        )
    visits.sort(key=lambda visit: str(visit["start"]))
    return visits


def messages(request: Request, patient_id: str) -> list[dict[str, object]]:
    rng = random.Random(f"{SERVICE}:{request.tenant}:{patient_id}:messages")
    now = datetime.now(UTC).replace(microsecond=0)
    inbox = []
    for number in range(1, rng.randint(3, 9) + 1):
        inbox.append(
            {
                "id": f"msg-{number:04d}",
                "from": rng.choice((clinic_of(request.tenant), "Billing office", "Laboratory")),
                "subject": rng.choice(SUBJECTS),
                "sent": stamp(now - timedelta(hours=rng.randint(1, 24 * 30))),
                "read": rng.random() < 0.6,
            }
        )
    inbox.sort(key=lambda message: str(message["sent"]), reverse=True)
    return inbox


def route(request: Request) -> Reply:
    request.only("GET")
    patient_id, patient_name = signed_in_patient(request)
    patient = {"id": patient_id, "name": patient_name}
    common = {"tenant": request.tenant or None, "clinic": clinic_of(request.tenant)}
    if request.path == "/":
        return Reply(
            200,
            {
                "service": SERVICE,
                "version": VERSION,
                "title": "Patient Portal",
                "hospital": HOSPITAL,
                **common,
                "patient": patient,
                "links": {"appointments": "/appointments", "messages": "/messages"},
                "notice": NOTICE,
            },
        )
    if request.path == "/appointments":
        visits = appointments(request, patient_id)
        return Reply(200, {**common, "patient": patient, "count": len(visits), "appointments": visits})
    if request.path == "/messages":
        inbox = messages(request, patient_id)
        unread = sum(1 for message in inbox if not message["read"])
        return Reply(
            200,
            {**common, "patient": patient, "count": len(inbox), "unread": unread, "messages": inbox},
        )
    if request.path.startswith("/messages/"):
        wanted = request.path.removeprefix("/messages/")
        for message in messages(request, patient_id):
            if message["id"] == wanted:
                body = "This is a synthetic message generated for the primum demo."
                return Reply(200, {**common, "patient": patient, **message, "body": body})
        raise Fail(404, f"no message {wanted!r}")
    raise Fail(404, f"no such page: {request.path}")


def error_reply(status: int, message: str) -> Reply:
    return Reply(status, {"error": message, "status": status, "service": SERVICE, "version": VERSION})


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
