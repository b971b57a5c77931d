"""A real HAProxy for the tests: started as a child (``-D -p PIDFILE``) with an admin socket in a tmp dir.

The backend declares fixed server "slots" (``disabled``, with HTTP health checks every 100 ms), as an
on-prem HAProxy would; the target points them at the service processes it starts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from primum.adapters.targets.haproxy.settings import HaproxyTargetSettings
from primum.adapters.targets.local import processes
from primum.core.model.actions import ServiceRuntimeSpec, VersionRef

BACKEND = "be_app"
SLOTS = ["s1", "s2", "s3", "s4"]

SERVICE = """\
# primum haproxy test service {variant}
import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{variant}"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # HAProxy's health checks close early

Server(("127.0.0.1", args.port), Handler).serve_forever()
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        reason = "the haproxy binary is not installed (apt-get install haproxy)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return found


@dataclass
class Haproxy:
    dir: Path
    socket: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and processes.proc_stat(self.pid) is not None:
            time.sleep(0.05)


def start_haproxy(directory: Path, slots: list[str] = SLOTS, port: int | None = None) -> Haproxy:
    binary = haproxy_binary()
    directory.mkdir(parents=True, exist_ok=True)
    sock = str(directory / "admin.sock")
    pidfile = directory / "haproxy.pid"
    port = port or processes.free_port()
    for stale in (pidfile, Path(sock)):
        stale.unlink(missing_ok=True)
    servers = "\n".join(f"    server {s} 127.0.0.1:1 disabled check" for s in slots)
    (directory / "haproxy.cfg").write_text(f"""\
global
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_app
    bind 127.0.0.1:{port}
    default_backend {BACKEND}
backend {BACKEND}
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 100ms fastinter 100ms downinter 100ms rise 1 fall 1 weight 0
{servers}
""")
    subprocess.run([binary, "-f", str(directory / "haproxy.cfg"), "-D", "-p", str(pidfile)], check=True,
                   capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip() and os.path.exists(sock)):
        if time.monotonic() > deadline:
            raise RuntimeError("haproxy did not write its pid file and socket")
        time.sleep(0.05)
    return Haproxy(directory, sock, port, int(pidfile.read_text().split()[0]))


def artifact(directory: Path, variant: str) -> VersionRef:
    path = directory / f"service-{variant}.py"
    path.write_text(SERVICE.format(variant=variant))
    return VersionRef(digest="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), artifact=str(path),
                      label=variant)


def spec_for(hap: Haproxy, replicas: int = 1, slots: list[str] = SLOTS, backend: str = BACKEND,
             socket: str | None = None) -> ServiceRuntimeSpec:
    settings = HaproxyTargetSettings(sockets={"prod": socket or hap.socket}, backend=backend, slots=slots,
                                     frontends={"prod": hap.url}, replicas=replicas, startup_timeout=10)
    return ServiceRuntimeSpec(estate="test-estate", env="prod", service="integration", command=(),
                              replicas=replicas, target_settings=settings.model_dump(mode="json"))


def count_responses(url: str, n: int) -> Counter[str]:
    """Send ``n`` requests through HAProxy, one connection each; count the bodies (the versions)."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        with urllib.request.urlopen(url + "/", timeout=5) as r:
            seen[r.read().decode()] += 1
    return seen
