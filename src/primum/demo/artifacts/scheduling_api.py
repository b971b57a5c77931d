#!/usr/bin/env python3
"""Scheduling API: appointments and free slots of the (fictional) Primum General Hospital.

Demo service of the primum release control plane. One self-contained file,
standard library only; the schedule is synthetic, generated deterministically
per tenant (clinic) and day: 5 days, 4 practitioners, 30-minute slots.

    python scheduling_api.py --port 8080 [--host 127.0.0.1]

Endpoints (JSON): ``/healthz``, ``/appointments`` (booked slots; filters
``date``, ``specialty``, ``practitioner``, ``status``, ``patient``,
``limit``), ``/appointments/{id}`` and ``/slots`` (free slots; filters
``date``, ``specialty``, ``limit``).
"""

from __future__ import annotations

import argparse
import functools
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

SERVICE = "scheduling-api"

# --- primum:build (rewritten by primum.demo.render) ---
VERSION = "1.0.0"
EXTRA_LATENCY_MS = 0        # injected regression: added latency on every non-health request
ERROR_RATE = 0.0            # injected regression: fraction of non-health requests answered 500
FAULT_TENANTS = ()          # if non-empty, the faults above only hit these tenants
# --- end primum:build ---

# --- service ---

SPECIALTIES = (
    "general-practice",
    "cardiology",
    "dermatology",
    "pediatrics",
    "radiology",
    "physiotherapy",
)
DAYS = 5
PRACTITIONERS = 4
SLOT_MINUTES = 30
FIRST_HOUR, LAST_HOUR = 8, 16


def clinic_of(tenant: str) -> str:
    return (tenant or "primum-general").replace("-", " ").replace("_", " ").title()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(tenant: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(booked appointments, free slots) of one clinic for the next ``DAYS`` days.

    Cached per tenant and day: callers must not mutate what they get.
    """
    return _schedule(tenant, datetime.now(UTC).date().isoformat())


@functools.lru_cache(maxsize=64)
def _schedule(tenant: str, date: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    today = datetime.fromisoformat(date).replace(tzinfo=UTC)
    rng = random.Random(f"{SERVICE}:{tenant}:{date}")
    clinic = clinic_of(tenant)
    staff = [
        (f"prac-{number:02d}", f"Dr. Test Clinician {number:02d}", rng.choice(SPECIALTIES))
        for number in rng.sample(range(1, 41), PRACTITIONERS)
    ]
    booked: list[dict[str, object]] = []
    free: list[dict[str, object]] = []
    per_day = (LAST_HOUR - FIRST_HOUR) * 60 // SLOT_MINUTES
    for day in range(DAYS):
        for practitioner_id, practitioner, specialty in staff:
            for slot in range(per_day):
                start = today + timedelta(days=day, hours=FIRST_HOUR, minutes=slot * SLOT_MINUTES)
                item: dict[str, object] = {
                    "start": stamp(start),
                    "end": stamp(start + timedelta(minutes=SLOT_MINUTES)),
                    "specialty": specialty,
                    "practitioner_id": practitioner_id,
                    "practitioner": practitioner,
                    "clinic": clinic,
                }
                if rng.random() < 0.6:
                    number = rng.randint(1, 9999)
                    status = "booked" if day else rng.choice(("booked", "arrived", "fulfilled"))
                    if rng.random() < 0.05:
                        status = "cancelled"
                    item = {
                        "id": f"apt-{len(booked) + 1:05d}",
                        **item,
                        "patient_id": f"pat-{number:04d}",
                        "patient": f"Test Patient {number:04d}",
                        "status": status,
                    }
                    booked.append(item)
                else:
                    free.append({"id": f"slot-{len(free) + 1:05d}", **item, "status": "free"})
    return booked, free


def matches(item: dict[str, object], request: Request, *fields: str) -> bool:
    date = request.param("date")
    if date and not str(item["start"]).startswith(date):
        return False
    return all(not request.param(f) or item.get(f) == request.param(f) for f in fields)


def listing(request: Request, key: str, items: list[dict[str, object]]) -> Reply:
    limit = request.int_param("limit", 50, 1, 1000)
    return Reply(
        200,
        {
            "tenant": request.tenant or None,
            "clinic": clinic_of(request.tenant),
            "total": len(items),
            "count": min(limit, len(items)),
            key: items[:limit],
        },
    )


def route(request: Request) -> Reply:
    request.only("GET")
    booked, free = schedule(request.tenant)
    if request.path == "/appointments":
        fields = ("specialty", "practitioner_id", "status", "patient_id")
        for alias, field in (("practitioner", "practitioner_id"), ("patient", "patient_id")):
            if alias in request.query:
                request.query.setdefault(field, request.query[alias])
        return listing(request, "appointments", [a for a in booked if matches(a, request, *fields)])
    if request.path == "/slots":
        return listing(request, "slots", [s for s in free if matches(s, request, "specialty")])
    if request.path.startswith("/appointments/"):
        wanted = request.path.removeprefix("/appointments/")
        for appointment in booked:
            if appointment["id"] == wanted:
                return Reply(200, {"tenant": request.tenant or None, **appointment})
        raise Fail(404, f"no appointment {wanted!r}")
    raise Fail(404, f"no such resource: {request.path}")


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
