#!/usr/bin/env python3
"""HL7 interface: the HL7 v2 interface engine of the (fictional) Primum General Hospital.

Demo service of the primum release control plane, a template: primum.demo.render
inserts the shared server code (common.pyfrag) to make one self-contained file,
standard library only. A synthetic ADT feed (about two messages a second,
``Test Patient 0001``...) keeps the counters moving; real HL7 v2 messages can
be sent over MLLP (``--mllp-port``) or HTTP and are acknowledged.

    python hl7_interface.py --port 8080 [--host 127.0.0.1] [--mllp-port 2575]

HTTP endpoints (JSON): ``/healthz``, ``/stats`` (engine counters),
``GET /messages`` (recent ADT message counts and the last messages; ``limit``)
and ``POST /messages`` (body: one HL7 v2 message; answers its ACK).

MLLP: frames ``0x0B <message> 0x1C 0x0D``; every message is answered with an
ACK whose MSA-1 is AA (AE on an injected fault, AR if it has no usable MSH)
and MSA-2 echoes MSH-10; an AE or AR carries MSA-3 and an ERR segment (HL7
table 0357 code, severity E, user message). For fault injection the tenant of
an MLLP message is its sending facility (MSH-4). The build knob ``MLLP_MODE``
makes a deliberately broken version: ``nak`` rejects every MLLP message (AR),
``silent`` reads them and never answers.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SERVICE = "hl7-interface"

# --- primum:build (rewritten by primum.demo.render) ---
VERSION = "1.0.0"
EXTRA_LATENCY_MS = 0        # injected regression: added latency on every non-health request
ERROR_RATE = 0.0            # injected regression: fraction of non-health requests answered 500
FAULT_TENANTS = ()          # if non-empty, the faults above only hit these tenants
MLLP_MODE = "ack"           # MLLP answers: ack (normal), nak (reject all: AR), silent (never answer)
# --- end primum:build ---

# --- service ---

FEED_RATE = 2.0  # synthetic ADT messages per second
ADT_EVENTS = (  # message type, weight
    ("ADT^A01", 3),  # admit
    ("ADT^A03", 2),  # discharge
    ("ADT^A04", 3),  # register outpatient
    ("ADT^A08", 4),  # update patient information
)
KEEP = 100  # recent messages kept
START, END = b"\x0b", b"\x1c\x0d"  # MLLP framing
MAX_FRAME = 1 << 20


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Engine:
    """Counters of the interface engine: the synthetic feed plus real messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(f"{SERVICE}:feed")
        self.fed_until = time.time()  # the feed starts with the process
        self.sequence = 0
        self.recent: deque[dict[str, object]] = deque(maxlen=KEEP)
        self.by_type: dict[str, int] = {}
        self.by_source: dict[str, int] = {"synthetic": 0, "mllp": 0, "http": 0}
        self.acks: dict[str, int] = {"AA": 0, "AE": 0, "AR": 0}
        self.mllp_port: int | None = None
        self.mllp_connections = 0

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self.sequence += 1
            return f"{prefix}{self.sequence:08d}"

    def record(self, kind: str, control_id: str, facility: str, source: str, ack: str) -> None:
        with self.lock:
            self._record(time.time(), kind, control_id, facility, source, ack)

    def _record(
        self, at: float, kind: str, control_id: str, facility: str, source: str, ack: str
    ) -> None:
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self.acks[ack] = self.acks.get(ack, 0) + 1
        self.recent.append(
            {
                "at": stamp(at),
                "type": kind,
                "control_id": control_id,
                "sending_facility": facility,
                "source": source,
                "ack": ack,
            }
        )

    def catch_up(self) -> None:
        """Generate the synthetic messages due since the last call (lock held)."""
        due = int((time.time() - self.fed_until) * FEED_RATE)
        kinds = [kind for kind, _ in ADT_EVENTS]
        weights = [weight for _, weight in ADT_EVENTS]
        for _ in range(due):
            self.fed_until += 1.0 / FEED_RATE
            self.sequence += 1
            kind = self.rng.choices(kinds, weights)[0]
            ack = "AA" if self.rng.random() > 0.002 else "AE"
            control_id = f"SYN{self.sequence:08d}"
            self._record(self.fed_until, kind, control_id, "PRIMUM-ADT", "synthetic", ack)

    def stats(self) -> dict[str, object]:
        with self.lock:
            self.catch_up()
            uptime = time.time() - STARTED_AT
            received = sum(self.by_source.values())
            return {
                "uptime_s": round(uptime, 3),
                "received": received,
                "rate_per_s": round(received / uptime, 3) if uptime > 0 else 0.0,
                "by_source": dict(self.by_source),
                "acks": dict(self.acks),
                "mllp": {
                    "enabled": self.mllp_port is not None,
                    "port": self.mllp_port,
                    "connections": self.mllp_connections,
                },
            }

    def messages(self, limit: int) -> dict[str, object]:
        with self.lock:
            self.catch_up()
            recent = list(self.recent)[-limit:] if limit > 0 else []
            return {
                "since": stamp(STARTED_AT),
                "total": sum(self.by_type.values()),
                "counts": dict(sorted(self.by_type.items())),
                "recent": recent[::-1],
            }


ENGINE = Engine()


def parse_msh(message: str) -> dict[str, str] | None:
    """The MSH fields an ACK needs, or None if there is no usable MSH segment."""
    segment = message.strip().replace("\r\n", "\r").replace("\n", "\r").split("\r")[0]
    if not segment.startswith("MSH") or len(segment) < 8:
        return None
    fields = segment.split(segment[3])  # fields[n - 1] is MSH-n (n >= 2)

    def msh(n: int) -> str:
        return fields[n - 1] if len(fields) >= n else ""

    return {
        "separator": segment[3],
        "encoding": msh(2) or "^~\\&",
        "sending_app": msh(3),
        "sending_facility": msh(4),
        "receiving_app": msh(5),
        "receiving_facility": msh(6),
        "type": msh(9),
        "control_id": msh(10),
        "processing_id": msh(11) or "P",
        "version": msh(12) or "2.5.1",
    }


EMPTY_MSH = {  # stands in for the header of a message that has none
    "separator": "|",
    "encoding": "^~\\&",
    "sending_app": "",
    "sending_facility": "",
    "receiving_app": "",
    "receiving_facility": "",
    "type": "",
    "control_id": "",
    "processing_id": "P",
    "version": "2.5.1",
}


ERROR_CODES = {  # HL7 table 0357 (message error condition codes) used in ERR-3
    "100": "Segment sequence error",
    "101": "Required field missing",
    "207": "Application internal error",
}


def acknowledge(message: str, source: str) -> tuple[str, str, str]:
    """Process one HL7 v2 message: (ACK message, MSA-1 code, echoed control id)."""
    header = parse_msh(message)
    if header is None:
        header, code, error, text = EMPTY_MSH, "AR", "100", "no MSH segment"
    elif not header["control_id"]:
        code, error, text = "AR", "101", "MSH-10 (message control id) is empty"
    elif source == "mllp" and MLLP_MODE == "nak":
        code, error, text = "AR", "207", "every message is rejected (MLLP_MODE nak)"
    elif source == "mllp" and injected_failure(header["sending_facility"]):  # HTTP: done
        code, error, text = "AE", "207", "internal error"
    else:
        code, error, text = "AA", "", ""
    separator, component = header["separator"], header["encoding"][:1] or "^"
    parts = header["type"].split(component)
    kind = component.join(parts[:2])  # message code^trigger event, e.g. ADT^A01
    trigger = parts[1] if len(parts) > 1 else ""
    ack_header = [
        "MSH",
        header["encoding"],
        header["receiving_app"] or "PRIMUM-HL7",
        header["receiving_facility"] or "PRIMUM-GENERAL",
        header["sending_app"],
        header["sending_facility"],
        datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        "",
        component.join(["ACK", trigger, "ACK"]) if trigger else "ACK",
        ENGINE.next_id("ACK"),
        header["processing_id"],
        header["version"],
    ]
    segments = [ack_header, ["MSA", code, header["control_id"]] + ([text] if text else [])]
    if error:  # ERR-3 HL7 error code (table 0357), ERR-4 severity, ERR-8 user message
        label = ERROR_CODES[error]
        segments.append(["ERR", "", "", component.join([error, label, "HL70357"]), "E", "", "", "", text])
    reply = "".join(separator.join(segment) + "\r" for segment in segments)
    ENGINE.record(kind or "?", header["control_id"], header["sending_facility"], source, code)
    return reply, code, header["control_id"]


class MllpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(300)
        with ENGINE.lock:
            ENGINE.mllp_connections += 1
        buffer = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                start = buffer.find(START)
                end = buffer.find(END, start + 1) if start >= 0 else -1
                if start < 0 or end < 0:
                    buffer = buffer[start:] if start >= 0 else b""
                    break
                message = buffer[start + 1 : end].decode("utf-8", errors="replace")
                buffer = buffer[end + len(END) :]
                if MLLP_MODE == "silent":
                    continue  # a deliberately broken build: read everything, answer nothing
                reply, _, _ = acknowledge(message, "mllp")
                connection.sendall(START + reply.encode("utf-8") + END)
            if len(buffer) > MAX_FRAME:
                return  # no end of frame in sight: drop the connection


class MllpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Every instance of an environment listens on the same MLLP port (its replicas and, during a
    # rollout, both versions); the kernel spreads connections across them.
    allow_reuse_port = True
    request_queue_size = 64

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mllp-port", type=int, default=None, help="also accept HL7 v2 over MLLP on this port"
    )


def start_mllp(args: argparse.Namespace) -> list[str]:
    if args.mllp_port is None:
        return []
    MllpServer.address_family = Server.address_family
    server = MllpServer((args.host, args.mllp_port), MllpHandler)
    threading.Thread(target=server.serve_forever, name="mllp", daemon=True).start()
    host, port = server.server_address[:2]
    ENGINE.mllp_port = int(port)
    return [f"mllp://{host}:{port}"]


def route(request: Request) -> Reply:
    if request.path == "/stats":
        request.only("GET")
        about = {"service": SERVICE, "version": VERSION, "tenant": request.tenant or None}
        return Reply(200, {**about, **ENGINE.stats()})
    if request.path == "/messages" and request.method == "POST":
        reply, code, control_id = acknowledge(request.body.decode("utf-8", "replace"), "http")
        status = {"AA": 200, "AE": 500}.get(code, 400)
        return Reply(status, {"ack": reply, "code": code, "control_id": control_id})
    if request.path == "/messages":
        request.only("GET")
        limit = request.int_param("limit", 20, 0, KEEP)
        return Reply(200, {"tenant": request.tenant or None, **ENGINE.messages(limit)})
    raise Fail(404, f"no such resource: {request.path}")


def error_reply(status: int, message: str) -> Reply:
    return Reply(status, {"error": message, "status": status, "service": SERVICE, "version": VERSION})


# --- primum:common: inserted here from common.pyfrag by primum.demo.render ---


if __name__ == "__main__":
    sys.exit(main(add_arguments=add_arguments, start=start_mllp))
