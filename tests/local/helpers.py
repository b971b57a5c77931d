"""Shared helpers for the local-target tests: artifacts, specs, waiting, cleanup.

The tests start real processes, so every fixture here guarantees that they
are gone afterwards, even when a test fails half-way: ``stop_all`` first, and
then a hard sweep of every child this test process started.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from primum.adapters.targets.local import processes
from primum.adapters.targets.local.runtime import LocalRuntime
from primum.adapters.targets.local.target import LocalTarget
from primum.core.model.actions import ServiceRuntimeSpec, TrafficSpec, VersionRef

T = TypeVar("T")

ESTATE = "test-estate"

# A tiny stdlib HTTP service. ``{variant}`` makes each version's bytes (and so
# its digest) distinct; ``{prelude}`` lets a test make it slow, gated or crashy.
SERVICE_TEMPLATE = """\
# primum test service, variant {variant}
import argparse, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
VERSION = os.environ.get("PRIMUM_VERSION", "?")
SICK = None  # a path; while it exists, /healthz answers 503
{prelude}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz" and SICK and os.path.exists(SICK):
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = json.dumps({{"version": VERSION, "pid": os.getpid()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print("service", VERSION, "listening on", args.port, flush=True)
server.serve_forever()
"""


def write_artifact(directory: Path, variant: str, prelude: str = "", label: str | None = None) -> VersionRef:
    """Write a service script and return the VersionRef pinning its digest."""
    path = directory / f"service-{variant}.py"
    path.write_text(SERVICE_TEMPLATE.format(variant=variant, prelude=prelude))
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return VersionRef(digest=digest, artifact=str(path), label=label or variant)


def crashing_artifact(directory: Path, variant: str = "crashy") -> VersionRef:
    prelude = 'sys.stderr.write("fatal: cannot open /etc/clinic.conf (synthetic crash)\\n")\nsys.exit(3)'
    return write_artifact(directory, variant, prelude)


def gated_artifact(directory: Path, gate: Path, variant: str = "gated") -> VersionRef:
    """A service that does not listen until ``gate`` exists (controllable readiness)."""
    prelude = f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)"
    return write_artifact(directory, variant, prelude)


def sickly_artifact(directory: Path, variant: str = "sickly") -> VersionRef:
    """A service whose /healthz fails while ``<directory>/sick-<port>`` exists."""
    return write_artifact(directory, variant, f"SICK = os.path.join({str(directory)!r}, f'sick-{{args.port}}')")


def make_spec(
    service: str = "scheduling-api",
    env: str = "staging",
    traffic: TrafficSpec | None = None,
    **kw: object,
) -> ServiceRuntimeSpec:
    return ServiceRuntimeSpec(
        estate=ESTATE,
        env=env,
        service=service,
        command=(sys.executable, "{artifact}", "--port", "{port}"),
        traffic=traffic,
        **kw,  # type: ignore[arg-type]
    )


def wait_for(fn: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.2, what: str = "") -> T:
    """Poll ``fn`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or fn}; last value: {last!r}")


def pid_gone(pid: int) -> bool:
    """The pid no longer exists at all (not even as a zombie)."""
    return not os.path.exists(f"/proc/{pid}")


def pid_running(pid: int) -> bool:
    st = processes.proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def sweep_children() -> None:
    """Last line of defence: SIGKILL every process group this test process started."""
    for proc in processes.started_children():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)


@contextlib.contextmanager
def cleanup(home: Path) -> Iterator[None]:
    """Stop the estate's data plane on the way out, whatever happened."""
    try:
        yield
    finally:
        try:
            LocalRuntime(home, ESTATE).stop_all()
        finally:
            sweep_children()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A primum home whose processes are all stopped at teardown."""
    h = tmp_path / "home"
    h.mkdir()
    with cleanup(h):
        yield h


@pytest.fixture
def runtime(home: Path) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(home, ESTATE)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def target(home: Path) -> Iterator[LocalTarget]:
    t = LocalTarget(home, ESTATE)
    try:
        yield t
    finally:
        t.close()
