"""Helpers shared by the local-target tests: real backends, real processes, real HTTP.

They live here rather than in a conftest so that each test module states the
fixtures it uses; every process started through ``Processes`` is terminated
(then killed) by the owning fixture even when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from primum.adapters.targets.local.fencing import seal
from primum.adapters.targets.local.router_client import RouterClient

PYTHON = sys.executable
START_TIMEOUT_S = 15.0  # generous: this box imports aiohttp in ~0.4 s, CI may be slower


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ backends


class Backend:
    """A tiny threaded HTTP server that answers with its own name.

    ``status`` and ``delay`` can be changed while it runs; every request is
    recorded (method, path, headers, body) so tests can see what the router
    forwarded.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.delay = 0.0
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real services do
            disable_nagle_algorithm = True  # headers and body are separate writes

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with backend._lock:
                    backend.seen.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body.decode("utf-8", "replace"),
                        }
                    )
                if backend.delay:
                    time.sleep(backend.delay)
                payload = json.dumps({"name": backend.name, "path": self.path}).encode()
                self.send_response(backend.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Backend", backend.name)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def do_HEAD(self) -> None:
                self.send_response(backend.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1234")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------- processes


@dataclass
class Proc:
    """A started data-plane process and where its stderr went."""

    popen: subprocess.Popen[str]
    stderr_path: Path
    first_line: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@dataclass
class RouterProc(Proc):
    """A router process: its data port, its admin socket and the fence key it trusts."""

    port: int = 0
    admin_socket: str = ""
    key: bytes = b""
    name: str = ""
    seq: int = 0
    _admin: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_address(self) -> str:
        return f"unix:{self.admin_socket}"

    def admin(self) -> httpx.Client:
        """An HTTP client of the admin socket (paths like ``/_primum/config``)."""
        if self._admin is None:
            self._admin = httpx.Client(base_url="http://router", transport=httpx.HTTPTransport(uds=self.admin_socket),
                                       trust_env=False, timeout=10)
        return self._admin

    def seal(self, body: Any, seq: int | None = None, key: bytes | None = None) -> dict[str, str]:
        """``body`` in a signed envelope with the next seq (or ``seq``), as the controller sends it."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        return seal(self.key if key is None else key, self.name, seq, body)

    def client(self) -> RouterClient:
        """The admin client the controller uses, holding the key."""
        return RouterClient(self.admin_socket, key=self.key, name=self.name)

    def close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def key_file(path: Path, key: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return path


@dataclass
class Processes:
    """Starts processes and guarantees they are gone at the end of the test."""

    tmp: Path
    started: list[Proc] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    def spawn(self, args: Sequence[str], *, wait_for: str | None, label: str) -> Proc:
        stderr_path = self.tmp / f"{label}-{len(self.started)}.stderr"
        with stderr_path.open("w") as err:
            popen = subprocess.Popen(
                [PYTHON, *args],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        proc = Proc(popen, stderr_path)
        self.started.append(proc)
        if wait_for is not None:
            proc.first_line = _read_line(proc, START_TIMEOUT_S)
            assert wait_for in proc.first_line, (proc.first_line, proc.stderr())
        return proc

    def router(self, name: str = "staging/scheduling-api", *extra: str) -> RouterProc:
        port = free_port()
        n = len(self.started)
        admin_dir = private_dir(Path(tempfile.mkdtemp(prefix="primum-test-")))  # short: a socket path
        self.dirs.append(admin_dir)
        key = secrets.token_bytes(32)
        keyf = key_file(admin_dir / "fence-key", key)
        sock = admin_dir / f"router-{n}.sock"
        proc = self.spawn(
            ["-m", "primum.adapters.targets.local.router", "--port", str(port), "--name", name,
             "--admin-socket", str(sock), "--fence-key", str(keyf), *extra],
            wait_for=f"primum-router listening on 127.0.0.1:{port}",
            label="router",
        )
        router = RouterProc(proc.popen, proc.stderr_path, proc.first_line, port=port, admin_socket=str(sock),
                            key=key, name=name)
        self.started[-1] = router
        return router

    def stop_all(self) -> None:
        for proc in self.started:
            if isinstance(proc, RouterProc):
                proc.close_admin()
        for proc in self.started:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.started:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)
            if proc.popen.stdout is not None:
                with suppress(OSError):
                    proc.popen.stdout.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def _read_line(proc: Proc, timeout: float) -> str:
    """The process's first stdout line, or fail with its stderr (never hang)."""
    stdout = proc.popen.stdout
    assert stdout is not None
    ready, _, _ = select.select([stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output within {timeout} s; stderr:\n{proc.stderr()}")
    line = stdout.readline()
    if not line:
        proc.popen.wait(timeout=5)
        raise AssertionError(
            f"exited with {proc.popen.returncode} before starting; stderr:\n{proc.stderr()}"
        )
    return line.strip()


def processes_fixture(tmp_path: Path) -> Iterator[Processes]:
    """Body of the ``procs`` fixture each test module declares."""
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


# ------------------------------------------------------------------- metrics


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> {sorted label items -> value}, via prometheus_client's own parser."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[labels] = sample.value
    return out


def request_counts(text: str) -> dict[tuple[str, str, str], int]:
    """(version, status, tenant) -> count from ``primum_router_requests_total``."""
    samples = parse_metrics(text).get("primum_router_requests_total", {})
    counts: dict[tuple[str, str, str], int] = {}
    for labels, value in samples.items():
        d = dict(labels)
        counts[(d["version"], d["status"], d["tenant"])] = int(value)
    return counts

