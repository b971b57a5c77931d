#!/usr/bin/env python3
"""Scheduling API: appointments and free slots of the (fictional) Primum General Hospital.

Demo service of the primum release control plane, a template: primum.demo.render
inserts the shared server code (common.pyfrag) to make one self-contained file,
standard library only; the schedule is synthetic, generated deterministically
per tenant (clinic) and day: 5 days, 4 practitioners, 30-minute slots.

    python <rendered scheduling_api artifact> --port 8080 [--host 127.0.0.1]

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


# --- primum:common: inserted here from common.pyfrag by primum.demo.render ---


if __name__ == "__main__":
    sys.exit(main())
