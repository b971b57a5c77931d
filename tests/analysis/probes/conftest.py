"""Fixtures of the probe tests: the rendered demo services as real processes, small
local servers in threads (HTTP, raw TCP, TLS), and a throwaway PKI made with cryptography."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from primum.demo.render import write_artifact


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------ demo services


@dataclass
class DemoService:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    mllp_port: int | None
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


DemoStarter = Callable[..., DemoService]


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoStarter]:
    """Start a rendered demo service (``write_artifact`` knobs as keywords); killed at teardown."""
    running: list[DemoService] = []

    def start(name: str, version: str = "1.0.0", *, mllp: bool = False, **knobs: Any) -> DemoService:
        path, _ = write_artifact(tmp_path / "artifacts", name, version, **knobs)
        port = free_port()
        mllp_port = free_port() if mllp else None
        args = ["--mllp-port", str(mllp_port)] if mllp_port else []
        log = tmp_path / f"{name}-{version}-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(path), "--port", str(port), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        service = DemoService(name, process, port, mllp_port, log)
        running.append(service)
        deadline = time.monotonic() + 10
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not become healthy:\n{log.read_text(errors='replace')}")
            time.sleep(0.02)
        return service

    yield start
    for service in running:
        if service.process.poll() is None:
            service.process.kill()
        service.process.wait(timeout=10)


# ------------------------------------------------------------ raw TCP server


@dataclass
class RawServer:
    """Accepts connections; reads until ``until`` is seen, then sends ``answer(received)``
    (None: send nothing and hold the connection until the client goes) and closes."""

    answer: Callable[[bytes], bytes | None]
    until: bytes
    sock: socket.socket = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while self.until not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.received.append(data)
                reply = self.answer(data)
                if reply is None:
                    while not self.stop.is_set() and conn.recv(65536):
                        pass
                    return
                conn.sendall(reply)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


RawStarter = Callable[[Callable[[bytes], bytes | None], bytes], RawServer]


@pytest.fixture
def raw_server() -> Iterator[RawStarter]:
    servers: list[RawServer] = []

    def start(answer: Callable[[bytes], bytes | None], until: bytes) -> RawServer:
        server = RawServer(answer, until)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# ---------------------------------------------------------------------- PKI


@dataclass
class Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "primum test (synthetic)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Pki:
    """Throwaway CAs and server certificates, written as PEM files under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def ca(self, name: str) -> Issuer:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        file = self.folder / f"{name}.pem"
        file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issuer(key, cert, file)

    def server(self, issuer: Issuer, name: str, *, valid_from: timedelta, valid_until: timedelta) -> tuple[Path, Path]:
        """A server certificate for localhost and 127.0.0.1, valid from now + ``valid_from``
        to now + ``valid_until``; (certificate file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + valid_from)
            .not_valid_after(now + valid_until)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                           critical=False)
            .sign(issuer.key, hashes.SHA256())
        )
        cert_file = self.folder / f"{name}.crt"
        key_file = self.folder / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                              + issuer.cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file


class TlsServer:
    """Completes TLS handshakes with one certificate, one connection at a time, in a thread."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes
            except OSError:
                pass  # the client gave up on the handshake (verification failed): expected
            finally:
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def tls_server() -> Iterator[Callable[[Path, Path], TlsServer]]:
    servers: list[TlsServer] = []

    def start(cert_file: Path, key_file: Path) -> TlsServer:
        server = TlsServer(cert_file, key_file)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# ------------------------------------------------------------- HTTP server


CAPABILITY = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "date": "2024-01-01",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": ["json"],
    "rest": [
        {"mode": "client", "resource": [{"type": "Medication", "interaction": [{"code": "read"}]}]},
        {"mode": "server", "resource": [{"type": "Patient", "interaction": [{"code": "read"}]}]},
    ],
}


class LocalHandler(BaseHTTPRequestHandler):
    """Test endpoints: ``/ok``, ``/echo`` (request headers as JSON), ``/slow?s=``,
    ``/status/<code>``, ``/redirect``, ``/<name>/metadata`` (FHIR variants)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        self.server.seen.append((self.command, path, dict(self.headers.items())))  # type: ignore[attr-defined]
        if path == "/ok":
            self.reply(200, b"hello from a synthetic test server", "text/plain")
        elif path == "/echo":
            self.reply(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode(), "application/json")
        elif path == "/slow":
            time.sleep(float(query.get("s", ["0.5"])[0]))
            self.reply(200, b"slow but fine", "text/plain")
        elif path.startswith("/status/"):
            self.reply(int(path.rsplit("/", 1)[1]), b"as asked", "text/plain")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path.endswith("/metadata"):
            variant = path.strip("/").split("/")[0]
            body: object = {
                "good": CAPABILITY,
                "draft": {**CAPABILITY, "status": "draft"},
                "patient": {"resourceType": "Patient", "id": "x"},
                "list": [CAPABILITY],
            }.get(variant)
            if variant == "garbage":
                self.reply(200, b"<html>not FHIR</html>", "text/html")
            elif body is None:
                self.reply(404, b'{"resourceType": "OperationOutcome"}', "application/fhir+json")
            else:
                self.reply(200, json.dumps(body).encode(), "application/fhir+json")
        else:
            self.reply(404, b"no such path", "text/plain")

    do_HEAD = do_POST = do_GET

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@dataclass
class LocalHttp:
    server: ThreadingHTTPServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str]]]:
        return self.server.seen  # type: ignore[attr-defined]


@pytest.fixture
def local_http() -> Iterator[LocalHttp]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LocalHandler)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield LocalHttp(server)
    server.shutdown()
    server.server_close()
