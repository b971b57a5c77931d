"""Tests of the metric providers, each against the real thing: a real
Prometheus, real HTTP servers, real subprocesses and a real router.

Shared helpers live here; each module states the fixtures it uses.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from primum.adapters.providers.base import Role, Scope

START = 1_700_000_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scope(version: str = "v1", *, role: Role = "canary", start: float = START, end: float = START + 4,
          tenant: str | None = None, router_url: str | None = None) -> Scope:
    return Scope(env="staging", service="scheduling-api", role=role, version=version,
                 digest="sha256:" + "ab" * 32, start=start, end=end, tenant=tenant, router_url=router_url)


Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, str, bytes]]


class Server:
    """A threaded HTTP server on 127.0.0.1 calling ``handle(method, path, headers, body)``
    -> ``(status, content_type, body)``; it records every request it got."""

    def __init__(self, handle: Handler) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.seen.append((self.command, self.path, headers, body))
                status, ctype, payload = handle(self.command, self.path, headers, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def hits(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(1 for _, path, _, _ in self.seen if path.startswith(path_prefix))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_answer(payload: Any, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
