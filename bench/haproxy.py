"""A weight change through primum's haproxy target against the raw Runtime API command, in one run.

    .venv/bin/python bench/haproxy.py [--runs 200]

Starts a real ``haproxy`` (``-D -p PIDFILE``, admin socket in a tmp dir) with a four-slot backend and two
versions of a tiny service behind it, then times ``HaproxyTarget.apply(SetRoute(...))`` (load and save the
target's state file, check the fence, push every slot's weight: four ``set weight`` commands, one connection
each) against the raw commands that change the same split by hand: one ``set weight`` (the smallest raw
change) and two (both sides of the split). Medians; the ratios are primum / raw. Everything it starts is
stopped on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from primum.adapters.targets.haproxy.runtime_api import RuntimeApi
from primum.adapters.targets.haproxy.settings import HaproxyTargetSettings
from primum.adapters.targets.haproxy.target import HaproxyTarget
from primum.adapters.targets.local import processes
from primum.core.model.actions import EnsureInstances, ServiceRuntimeSpec, SetRoute, VersionRef

SLOTS = ["s1", "s2", "s3", "s4"]
SERVICE = """\
# bench service {variant}
import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
p = argparse.ArgumentParser(); p.add_argument("--port", type=int); a = p.parse_args()
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *x): pass
class S(ThreadingHTTPServer):
    def handle_error(self, *x): pass
S(("127.0.0.1", a.port), H).serve_forever()
"""


def start(tmp: Path) -> tuple[str, int]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(binary):
        raise SystemExit("haproxy is not installed (apt-get install haproxy)")
    sock, pidfile = tmp / "admin.sock", tmp / "haproxy.pid"
    servers = "\n".join(f"    server {s} 127.0.0.1:1 disabled check" for s in SLOTS)
    (tmp / "haproxy.cfg").write_text(
        f"global\n    stats socket {sock} level admin\ndefaults\n    mode http\n    timeout connect 1s\n"
        f"    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:{processes.free_port()}\n"
        f"    default_backend be\nbackend be\n    option httpchk GET /healthz\n"
        f"    default-server inter 500ms rise 1 fall 1 weight 0\n{servers}\n")
    subprocess.run([binary, "-f", str(tmp / "haproxy.cfg"), "-D", "-p", str(pidfile)], check=True, timeout=30)
    deadline = time.monotonic() + 10
    while not (sock.exists() and pidfile.exists() and pidfile.read_text().strip()):
        if time.monotonic() > deadline:
            raise SystemExit("haproxy did not start")
        time.sleep(0.05)
    return str(sock), int(pidfile.read_text().split()[0])


def version(tmp: Path, variant: str) -> VersionRef:
    path = tmp / f"svc-{variant}.py"
    path.write_text(SERVICE.format(variant=variant))
    return VersionRef(digest="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), artifact=str(path),
                      label=variant)


def median_ms(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="primum-bench-haproxy-"))
    sock, pid = start(tmp)
    try:
        settings = HaproxyTargetSettings(sockets={"bench": sock}, backend="be", slots=SLOTS)
        spec = ServiceRuntimeSpec(estate="bench", env="bench", service="svc", command=(),
                                  target_settings=settings.model_dump(mode="json"))
        target = HaproxyTarget(tmp / "home", "bench")
        a, b = version(tmp, "a"), version(tmp, "b")
        for v in (a, b):
            target.apply(EnsureInstances(env="bench", service="svc", version=v, count=1), spec, 1)
        splits = [{a.key: 90, b.key: 10}, {a.key: 50, b.key: 50}]
        i = 0

        def through_primum() -> None:
            nonlocal i
            i += 1
            target.apply(SetRoute(env="bench", service="svc", weights=splits[i % 2]), spec, 1)

        api = RuntimeApi(sock, "bench")
        slot_a = SLOTS[0]

        def raw_one() -> None:
            nonlocal i
            i += 1
            api.set(f"set weight be/{slot_a} {128 if i % 2 else 230}")

        def raw_two() -> None:
            nonlocal i
            i += 1
            api.set(f"set weight be/s1 {128 if i % 2 else 230}")
            api.set(f"set weight be/s2 {128 if i % 2 else 26}")

        for fn in (through_primum, raw_one, raw_two):  # warm up
            median_ms(fn, 10)
        primum_ms = median_ms(through_primum, args.runs)
        one_ms = median_ms(raw_one, args.runs)
        two_ms = median_ms(raw_two, args.runs)
        banner = subprocess.run([shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"], capture_output=True,
                                text=True, check=False).stdout.split()
        print(f"haproxy {banner[2] if len(banner) > 2 else '?'}, {args.runs} runs, medians:")
        print(f"  primum SetRoute (4 slots):     {primum_ms:7.3f} ms")
        print(f"  raw `set weight` x1:           {one_ms:7.3f} ms   ratio primum/raw = {primum_ms / one_ms:5.1f}")
        print(f"  raw `set weight` x2 (a split): {two_ms:7.3f} ms   ratio primum/raw = {primum_ms / two_ms:5.1f}")
    finally:
        os.kill(pid, signal.SIGTERM)
        for child in processes.started_children():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
