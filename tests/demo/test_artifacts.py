"""The demo service artifacts: rendering, and each service run as a real process."""

from __future__ import annotations

import ast
import hashlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from primum.demo.render import (
    BUILD_BEGIN,
    BUILD_END,
    SERVICES,
    digest_of,
    render_artifact,
    template_source,
    write_artifact,
)

ENDPOINTS = {
    "patient-portal": ("/", "/appointments", "/messages"),
    "scheduling-api": ("/appointments", "/slots", "/appointments/apt-00001"),
    "fhir-gateway": (
        "/metadata",
        "/Patient/pat-0001",
        "/Patient/example-0001",
        "/Appointment?patient=pat-0001",
    ),
    "hl7-interface": ("/stats", "/messages"),
    "billing-sync": ("/invoices", "/sync/status", "/invoices/inv-00001"),
}
COMMON_BEGIN = "# --- primum:common"
COMMON_END = "# --- end primum:common ---\n"
HL7_ADT = (
    "MSH|^~\\&|ADT1|clinic-north|PRIMUM|HOSP|20240101120000||ADT^A01^ADT_A01|MSG00042|P|2.5.1\r"
    "EVN|A01|20240101120000\r"
    "PID|1||TEST-0001^^^PRIMUM||Patient^Test^0001\r"
)


# ------------------------------------------------------------------ helpers


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    elapsed: float

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    startup_s: float

    def get(
        self, path: str, *, tenant: str | None = None, method: str = "GET", body: bytes = b""
    ) -> Response:
        headers = {"x-tenant-id": tenant} if tenant else {}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            began = time.monotonic()
            conn.request(method, path, body=body or None, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            return Response(reply.status, reply.headers, data, time.monotonic() - began)
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(service: Service, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            log = service.log.read_text(errors="replace")
            pytest.fail(f"{service.name} exited with {service.process.returncode}:\n{log}")
        try:
            if service.get("/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail(f"{service.name} not healthy after {timeout}s:\n{service.log.read_text()}")


Starter = Callable[..., Service]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    """Start rendered services as real processes; all are killed at teardown, even on failure."""
    running: list[Service] = []

    def _start(
        name: str, version: str = "1.0.0", *, args: tuple[str, ...] = (), **faults: Any
    ) -> Service:
        path, _ = write_artifact(tmp_path / "artifacts", name, version, **faults)
        port = free_port()
        log = tmp_path / f"{name}-{version}-{port}.log"
        with log.open("wb") as out:
            began = time.monotonic()
            # -I -S: no site-packages at all, which proves the artifact is stdlib only.
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(path), "--port", str(port), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        service = Service(name, process, port, log, 0.0)
        running.append(service)
        wait_healthy(service)
        service.startup_s = time.monotonic() - began
        return service

    yield _start
    for service in running:
        if service.process.poll() is None:
            service.process.kill()
        service.process.wait(timeout=10)


def common_section(source: str) -> str:
    begin = source.index(COMMON_BEGIN)
    return source[begin : source.index(COMMON_END, begin)]


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_default_render_is_the_template(service: str) -> None:
    source = template_source(service)
    assert render_artifact(service, "1.0.0") == source
    assert source.count(BUILD_BEGIN) == 1
    assert source.count(BUILD_END) == 1
    compile(source, SERVICES[service], "exec")


def test_render_rewrites_only_the_build_block() -> None:
    base = template_source("billing-sync")
    rendered = render_artifact(
        "billing-sync",
        "2.4.1",
        extra_latency_ms=250,
        error_rate=0.3,
        fault_tenants=("clinic-b", "clinic-a"),
    )
    block = rendered[rendered.index(BUILD_BEGIN) : rendered.index(BUILD_END)]
    assert 'VERSION = "2.4.1"\n' in block
    assert "EXTRA_LATENCY_MS = 250 " in block
    assert "ERROR_RATE = 0.3 " in block
    assert 'FAULT_TENANTS = ("clinic-a", "clinic-b")' in block
    assert rendered.split(BUILD_END)[1] == base.split(BUILD_END)[1]
    assert rendered.split(BUILD_BEGIN)[0] == base.split(BUILD_BEGIN)[0]
    namespace: dict[str, object] = {}
    exec(compile(block, "block", "exec"), namespace)
    assert namespace["FAULT_TENANTS"] == ("clinic-a", "clinic-b")
    assert namespace["ERROR_RATE"] == 0.3
    single = render_artifact("billing-sync", "2.4.1", fault_tenants=("clinic-a",))
    assert 'FAULT_TENANTS = ("clinic-a",)' in single


def test_render_is_deterministic(tmp_path: Path) -> None:
    faults: dict[str, Any] = {"extra_latency_ms": 120, "error_rate": 0.05, "fault_tenants": ("clinic-north",)}
    path_a, digest_a = write_artifact(tmp_path / "a", "fhir-gateway", "2.0.0", **faults)
    path_b, digest_b = write_artifact(tmp_path / "b", "fhir-gateway", "2.0.0", **faults)
    assert path_a.name == "fhir-gateway-2.0.0.py"
    assert path_a.read_bytes() == path_b.read_bytes()
    assert digest_a == digest_b == "sha256:" + hashlib.sha256(path_a.read_bytes()).hexdigest()
    assert digest_of(path_a.read_bytes()) == digest_a
    # rewriting in place gives the same file and digest; no temporary files are left
    assert write_artifact(tmp_path / "a", "fhir-gateway", "2.0.0", **faults)[1] == digest_a
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["fhir-gateway-2.0.0.py"]
    digests = {
        write_artifact(tmp_path / "c", "fhir-gateway", "2.0.0")[1],
        write_artifact(tmp_path / "c", "fhir-gateway", "2.0.1")[1],
        write_artifact(tmp_path / "d", "fhir-gateway", "2.0.0", error_rate=0.5)[1],
        write_artifact(tmp_path / "e", "scheduling-api", "2.0.0")[1],
        digest_a,
    }
    assert len(digests) == 5
    # the order tenants are given in does not matter
    assert render_artifact("hl7-interface", "1", fault_tenants=("b", "a")) == render_artifact(
        "hl7-interface", "1", fault_tenants=("a", "b", "a")
    )


@pytest.mark.parametrize(
    ("service", "version", "faults", "message"),
    [
        ("radiology-pacs", "1.0.0", {}, "unknown demo service"),
        ("fhir-gateway", "", {}, "bad version"),
        ("fhir-gateway", "1.0 beta", {}, "bad version"),
        ("fhir-gateway", "../1.0.0", {}, "bad version"),
        ("fhir-gateway", "1.0.0", {"extra_latency_ms": -1}, "extra_latency_ms"),
        ("fhir-gateway", "1.0.0", {"extra_latency_ms": 1.5}, "extra_latency_ms"),
        ("fhir-gateway", "1.0.0", {"extra_latency_ms": True}, "extra_latency_ms"),
        ("fhir-gateway", "1.0.0", {"error_rate": 1.01}, "error_rate"),
        ("fhir-gateway", "1.0.0", {"error_rate": float("nan")}, "error_rate"),
        ("fhir-gateway", "1.0.0", {"error_rate": "0.5"}, "error_rate"),
        ("fhir-gateway", "1.0.0", {"fault_tenants": "clinic-a"}, "fault_tenants"),
        ("fhir-gateway", "1.0.0", {"fault_tenants": ('clinic"a',)}, "bad tenant"),
        ("fhir-gateway", "1.0.0", {"fault_tenants": ("",)}, "bad tenant"),
    ],
)
def test_render_rejects_bad_input(
    service: str, version: str, faults: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        render_artifact(service, version, **faults)
    with pytest.raises(ValueError, match=message):
        write_artifact(tmp_path, service, version, **faults)
    assert list(tmp_path.iterdir()) == []


def test_templates_share_the_common_section() -> None:
    sections = {common_section(template_source(service)) for service in SERVICES}
    assert len(sections) == 1, "the primum:common sections of the templates have drifted"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_templates_import_only_the_standard_library(service: str) -> None:
    tree = ast.parse(template_source(service))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    modules.discard("__future__")
    assert modules <= set(sys.stdlib_module_names)


# ------------------------------------------------------------ real processes


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_serves_its_endpoints(name: str, start: Starter) -> None:
    service = start(name, "3.1.4")
    assert service.startup_s < 3.0  # ~0.1 s locally; generous for loaded CI machines

    health = service.get("/healthz")
    assert health.status == 200
    assert health.json() == {"status": "ok", "service": name, "version": "3.1.4"}
    assert health.headers["x-service-version"] == "3.1.4"
    assert health.headers["content-type"] == "application/json"

    for path in ENDPOINTS[name]:
        reply = service.get(path, tenant="clinic-north")
        assert reply.status == 200, (path, reply.body)
        assert reply.headers["x-service-version"] == "3.1.4"
        assert reply.headers["x-tenant-id"] == "clinic-north"
        assert isinstance(reply.json(), dict | list)
        assert reply.elapsed < 2.0

    missing = service.get("/no/such/thing")
    assert missing.status == 404
    assert missing.headers["x-service-version"] == "3.1.4"
    assert missing.json()

    # quiet: nothing but the start-up line, whatever was served
    log_lines = service.log.read_text().splitlines()
    assert len(log_lines) == 1
    assert log_lines[0].startswith(f"listening on http://127.0.0.1:{service.port}")


@pytest.mark.slow
def test_service_data_is_synthetic_and_tenant_scoped(start: Starter) -> None:
    portal = start("patient-portal")
    home = portal.get("/", tenant="clinic-north").json()
    assert isinstance(home, dict)
    assert home["patient"]["name"].startswith("Test Patient ")
    north = portal.get("/appointments", tenant="clinic-north").json()
    assert north == portal.get("/appointments", tenant="clinic-north").json()
    assert north != portal.get("/appointments", tenant="clinic-south").json()

    scheduling = start("scheduling-api")
    listing = scheduling.get("/appointments?limit=3", tenant="clinic-north").json()
    assert isinstance(listing, dict)
    assert listing["count"] == 3
    first = listing["appointments"][0]
    assert first["patient"].startswith("Test Patient ")
    one = scheduling.get(f"/appointments/{first['id']}", tenant="clinic-north")
    assert one.status == 200
    assert one.json() == {"tenant": "clinic-north", **first}
    assert scheduling.get("/appointments/apt-99999").status == 404
    assert scheduling.get("/appointments?limit=many").status == 400
    assert scheduling.get("/appointments", method="POST", body=b"{}").status == 405

    billing = start("billing-sync")
    pending = billing.get("/invoices?status=pending").json()
    assert isinstance(pending, dict)
    assert pending["invoices"]
    assert {invoice["status"] for invoice in pending["invoices"]} == {"pending"}
    status = billing.get("/sync/status").json()
    assert isinstance(status, dict)
    assert status["state"] in {"idle", "running"}


@pytest.mark.slow
def test_fhir_gateway(start: Starter) -> None:
    fhir = start("fhir-gateway", "4.0.0")

    metadata = fhir.get("/metadata")
    assert metadata.status == 200
    assert metadata.headers["content-type"].startswith("application/fhir+json")
    statement = metadata.json()
    assert isinstance(statement, dict)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["status"] == "active"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["format"] == ["json"]
    assert statement["date"]
    assert statement["implementation"]["description"]  # required when kind = instance
    assert statement["software"]["version"] == "4.0.0"
    [rest] = statement["rest"]
    assert rest["mode"] == "server"
    resources = {resource["type"]: resource for resource in rest["resource"]}
    assert set(resources) == {"Patient", "Appointment", "Encounter", "Observation"}
    for resource in resources.values():
        assert {i["code"] for i in resource["interaction"]} == {"read", "search-type"}

    patient = fhir.get("/Patient/pat-0001")
    assert patient.status == 200
    assert patient.headers["content-type"].startswith("application/fhir+json")
    body = patient.json()
    assert isinstance(body, dict)
    assert body["resourceType"] == "Patient"
    assert body["id"] == "pat-0001"
    assert body["name"][0]["text"] == "Test Patient 0001"
    assert body["meta"]["tag"][0]["code"] == "HTEST"

    search = fhir.get("/Appointment?patient=Patient/pat-0001&_count=2").json()
    assert isinstance(search, dict)
    assert search["resourceType"] == "Bundle"
    assert search["type"] == "searchset"
    assert search["total"] == 5
    assert len(search["entry"]) == 2
    for entry in search["entry"]:
        assert entry["resource"]["resourceType"] == "Appointment"
        assert entry["search"] == {"mode": "match"}
        assert entry["fullUrl"].endswith(f"/Appointment/{entry['resource']['id']}")
        read = fhir.get(f"/Appointment/{entry['resource']['id']}").json()
        assert read == entry["resource"]

    observations = fhir.get("/Observation?patient=pat-0002").json()
    assert isinstance(observations, dict)
    assert observations["total"] == 5

    missing = fhir.get("/Patient/pat-9999")
    assert missing.status == 404
    assert missing.headers["content-type"].startswith("application/fhir+json")
    outcome = missing.json()
    assert isinstance(outcome, dict)
    assert outcome["resourceType"] == "OperationOutcome"
    assert fhir.get("/Medication/1").status == 404


@pytest.mark.slow
def test_injected_regression_spares_health(start: Starter) -> None:
    service = start("scheduling-api", "2.0.0", error_rate=1.0, extra_latency_ms=200)
    health_times = []
    for _ in range(3):
        reply = service.get("/appointments", tenant="clinic-north")
        assert reply.status == 500
        assert reply.elapsed >= 0.2
        assert reply.headers["x-service-version"] == "2.0.0"
        assert isinstance(reply.json(), dict)
        health = service.get("/healthz", tenant="clinic-north")
        assert health.status == 200
        health_times.append(health.elapsed)
    assert sorted(health_times)[1] < 0.1  # the median: no injected (nor baseline) latency


@pytest.mark.slow
def test_fault_tenants_limit_the_regression(start: Starter) -> None:
    fhir = start("fhir-gateway", "2.0.0", error_rate=1.0, fault_tenants=("clinic-north",))
    for _ in range(3):
        hit = fhir.get("/Patient/pat-0001", tenant="clinic-north")
        assert hit.status == 500
        outcome = hit.json()
        assert isinstance(outcome, dict)
        assert outcome["resourceType"] == "OperationOutcome"
        assert fhir.get("/Patient/pat-0001", tenant="clinic-south").status == 200
        assert fhir.get("/Patient/pat-0001").status == 200


@pytest.mark.slow
def test_partial_error_rate(start: Starter) -> None:
    service = start("billing-sync", "2.0.0", error_rate=0.5)
    statuses = [service.get("/sync/status").status for _ in range(40)]
    assert set(statuses) == {200, 500}


@pytest.mark.slow
def test_sigterm_exits_zero_quickly(start: Starter) -> None:
    service = start("hl7-interface", args=("--mllp-port", str(free_port())))
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    conn.request("GET", "/stats")  # an idle keep-alive connection must not delay the exit
    conn.getresponse().read()
    began = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=5) == 0
    assert time.monotonic() - began < 1.0
    conn.close()


def raw_exchange(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes, read until the server closes: (head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.slow
def test_protocol_errors_answer_json(start: Starter) -> None:
    service = start("patient-portal")
    for request, status in [
        (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n", 400),
    ]:
        head, body = raw_exchange(service.port, request)
        assert head.startswith(f"HTTP/1.1 {status}".encode()), head
        assert b"x-service-version: 1.0.0" in head
        assert json.loads(body)["status"] == status
    head, body = raw_exchange(service.port, b"HEAD /messages HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert body == b""


@pytest.mark.slow
def test_hl7_mllp_and_http_acks(start: Starter) -> None:
    mllp_port = free_port()
    engine = start("hl7-interface", args=("--mllp-port", str(mllp_port)))
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=5) as sock:
        frames = b"\x0b" + HL7_ADT.encode() + b"\x1c\x0d" + b"\x0bnot hl7\x1c\x0d"
        sock.sendall(frames[:20])  # a frame may arrive in pieces
        sock.sendall(frames[20:])
        raw = b""
        while raw.count(b"\x1c\x0d") < 2:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before both ACKs arrived"
            raw += chunk
    acks = [frame.lstrip(b"\x0b").decode() for frame in raw.split(b"\x1c\x0d")[:2]]
    msh, msa = acks[0].strip("\r").split("\r")
    assert msh.split("|")[8] == "ACK^A01^ACK"  # MSH-9
    assert msh.split("|")[4:6] == ["ADT1", "clinic-north"]  # sent back to the sender
    assert msa.split("|")[:3] == ["MSA", "AA", "MSG00042"]
    assert acks[1].split("\r")[1].split("|")[1] == "AR"

    posted = engine.get("/messages", method="POST", body=HL7_ADT.encode())
    assert posted.status == 200
    answer = posted.json()
    assert isinstance(answer, dict)
    assert (answer["code"], answer["control_id"]) == ("AA", "MSG00042")
    assert answer["ack"].split("\r")[1] == "MSA|AA|MSG00042"
    stats = engine.get("/stats").json()
    assert isinstance(stats, dict)
    assert stats["by_source"]["mllp"] == 2
    assert stats["by_source"]["http"] == 1
    assert stats["mllp"] == {"enabled": True, "port": mllp_port, "connections": 1}
    messages = engine.get("/messages?limit=5").json()
    assert isinstance(messages, dict)
    assert messages["counts"]["ADT^A01"] >= 2
    assert len(messages["recent"]) <= 5


@pytest.mark.slow
def test_mllp_faults_answer_ae(start: Starter) -> None:
    mllp_port = free_port()
    start("hl7-interface", "9.9.9", args=("--mllp-port", str(mllp_port)), error_rate=1.0)
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=5) as sock:
        sock.sendall(b"\x0b" + HL7_ADT.encode() + b"\x1c\x0d")
        raw = b""
        while b"\x1c\x0d" not in raw:
            chunk = sock.recv(65536)
            assert chunk
            raw += chunk
    msa = raw.strip(b"\x0b\x1c\r").decode().split("\r")[1].split("|")
    assert msa[:3] == ["MSA", "AE", "MSG00042"]
