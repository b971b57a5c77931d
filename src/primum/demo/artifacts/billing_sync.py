#!/usr/bin/env python3
"""Billing sync: pushes invoices of the (fictional) Primum General Hospital to its ERP.

Demo service of the primum release control plane. One self-contained file,
standard library only; invoices are synthetic (``Test Patient 0001``...),
generated deterministically per tenant (clinic), and the ERP ("LedgerOne",
fictional) is simulated: a sync run starts every minute.

    python billing_sync.py --port 8080 [--host 127.0.0.1]

Endpoints (JSON): ``/healthz``, ``/invoices`` (filters ``status``,
``patient``, ``limit``), ``/invoices/{id}`` and ``/sync/status``.
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

SERVICE = "billing-sync"

# --- primum:build (rewritten by primum.demo.render) ---
VERSION = "1.0.0"
EXTRA_LATENCY_MS = 0        # injected regression: added latency on every non-health request
ERROR_RATE = 0.0            # injected regression: fraction of non-health requests answered 500
FAULT_TENANTS = ()          # if non-empty, the faults above only hit these tenants
# --- end primum:build ---

# --- service ---

ERP = {"name": "LedgerOne (fictional ERP)", "endpoint": "https://erp.primum-general.invalid/api"}
CURRENCY = "EUR"
INVOICES = 60
SYNC_EVERY_S = 60  # a sync run starts at every full minute...
SYNC_RUNS_S = 4  # ...and takes a few seconds
SERVICES_BILLED = (  # code, description, unit price
    ("CONS-GP", "General practice consultation", 45.00),
    ("CONS-SPEC", "Specialist consultation", 95.00),
    ("LAB-CBC", "Complete blood count", 18.50),
    ("IMG-XR", "X-ray, one view", 62.00),
    ("PHYS-30", "Physiotherapy, 30 minutes", 38.00),
    ("ECG-12", "12-lead ECG", 29.00),
)
STATUSES = ("synced", "synced", "synced", "synced", "pending", "draft", "failed")


def clinic_of(tenant: str) -> str:
    return (tenant or "primum-general").replace("-", " ").replace("_", " ").title()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def invoices(tenant: str) -> list[dict[str, object]]:
    """The clinic's recent invoices, newest first; cached per tenant and day (do not mutate)."""
    return _invoices(tenant, datetime.now(UTC).date().isoformat())


@functools.lru_cache(maxsize=64)
def _invoices(tenant: str, day: str) -> list[dict[str, object]]:
    today = datetime.fromisoformat(day).replace(tzinfo=UTC)
    rng = random.Random(f"{SERVICE}:{tenant}:{day}")
    found = []
    for number in range(INVOICES, 0, -1):
        issued = today - timedelta(days=number // 2, hours=rng.randint(0, 10))
        lines = []
        for code, description, price in rng.sample(SERVICES_BILLED, rng.randint(1, 3)):
            quantity = rng.choice((1, 1, 1, 2))
            lines.append(
                {
                    "code": code,
                    "description": description,
                    "quantity": quantity,
                    "amount": round(price * quantity, 2),
                }
            )
        status = STATUSES[rng.randrange(len(STATUSES))] if number > 3 else "pending"
        patient = rng.randint(1, 9999)
        found.append(
            {
                "id": f"inv-{number:05d}",
                "issued": stamp(issued),
                "clinic": clinic_of(tenant),
                "patient_id": f"pat-{patient:04d}",
                "patient": f"Test Patient {patient:04d}",
                "lines": lines,
                "total": {"value": round(sum(float(line["amount"]) for line in lines), 2), "currency": CURRENCY},
                "status": status,
                "erp_reference": f"LO-{rng.randint(100000, 999999)}" if status == "synced" else None,
            }
        )
    return found


def sync_status(tenant: str) -> dict[str, object]:
    now = time.time()
    run_started = now - now % SYNC_EVERY_S
    running = now - run_started < SYNC_RUNS_S
    last_started = run_started - SYNC_EVERY_S if running else run_started
    rng = random.Random(f"{SERVICE}:{tenant}:run:{int(last_started)}")
    items = invoices(tenant)
    backlog = sum(1 for invoice in items if invoice["status"] in ("pending", "failed"))
    pushed = rng.randint(0, 12)
    failed = 1 if rng.random() < 0.1 else 0

    def at(moment: float) -> str:
        return stamp(datetime.fromtimestamp(moment, UTC))

    return {
        "erp": ERP,
        "tenant": tenant or None,
        "clinic": clinic_of(tenant),
        "state": "running" if running else "idle",
        "last_run": {
            "started_at": at(last_started),
            "finished_at": at(last_started + SYNC_RUNS_S - 1 + rng.random()),
            "invoices_pushed": pushed,
            "invoices_failed": failed,
            "result": "partial" if failed else "ok",
        },
        "next_run_at": at(run_started + SYNC_EVERY_S),
        "backlog": backlog,
        "lag_s": round(now - last_started, 1),
    }


def route(request: Request) -> Reply:
    request.only("GET")
    if request.path == "/invoices":
        status, patient = request.param("status"), request.param("patient")
        found = [
            invoice
            for invoice in invoices(request.tenant)
            if (not status or invoice["status"] == status)
            and (not patient or invoice["patient_id"] == patient)
        ]
        limit = request.int_param("limit", 25, 1, INVOICES)
        return Reply(
            200,
            {
                "tenant": request.tenant or None,
                "currency": CURRENCY,
                "total": len(found),
                "count": min(limit, len(found)),
                "invoices": found[:limit],
            },
        )
    if request.path.startswith("/invoices/"):
        wanted = request.path.removeprefix("/invoices/")
        for invoice in invoices(request.tenant):
            if invoice["id"] == wanted:
                return Reply(200, {"tenant": request.tenant or None, **invoice})
        raise Fail(404, f"no invoice {wanted!r}")
    if request.path == "/sync/status":
        return Reply(200, sync_status(request.tenant))
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
