#!/usr/bin/env python3
"""Patient portal: the patient-facing web front of the (fictional) Primum General Hospital.

Demo service of the primum release control plane, a template: primum.demo.render
inserts the shared server code (common.pyfrag) to make one self-contained file,
standard library only; every datum it serves is synthetic (``Test Patient
0001``...), generated deterministically per tenant (clinic).

    python <rendered patient_portal artifact> --port 8080 [--host 127.0.0.1]

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


# --- primum:common: inserted here from common.pyfrag by primum.demo.render ---


if __name__ == "__main__":
    sys.exit(main())
