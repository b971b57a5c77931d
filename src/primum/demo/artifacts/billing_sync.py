#!/usr/bin/env python3
"""Billing sync: pushes invoices of the (fictional) Primum General Hospital to its ERP.

Demo service of the primum release control plane, a template: primum.demo.render
inserts the shared server code (common.pyfrag) to make one self-contained file,
standard library only; invoices are synthetic (``Test Patient 0001``...),
generated deterministically per tenant (clinic), and the ERP ("LedgerOne",
fictional) is simulated: a sync run starts every minute.

    python <rendered billing_sync artifact> --port 8080 [--host 127.0.0.1]

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


# --- primum:common: inserted here from common.pyfrag by primum.demo.render ---


if __name__ == "__main__":
    sys.exit(main())
