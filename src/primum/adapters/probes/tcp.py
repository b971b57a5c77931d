"""TCP probe: a connection is accepted within the timeout."""

from __future__ import annotations

import socket
import time

from primum.adapters.probes.context import ProbeContext, elapsed_text, host_port, os_error_text, result, seconds
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import TcpProbe


def probe_tcp(spec: TcpProbe, ctx: ProbeContext) -> ProbeResult:
    target = host_port(spec.host, spec.port)
    began = time.monotonic()
    try:
        with socket.create_connection((spec.host, spec.port), timeout=spec.timeout) as sock:
            elapsed = time.monotonic() - began
            peer = sock.getpeername()
    except TimeoutError:
        return result("tcp", target, False,
                      f"TCP {target} did not accept a connection within {seconds(spec.timeout)}",
                      time.monotonic() - began)
    except OSError as exc:
        return result("tcp", target, False,
                      f"TCP {target} did not accept a connection ({os_error_text(exc)}), expected it to",
                      time.monotonic() - began)
    return result("tcp", target, True, f"TCP {target} accepted a connection in {elapsed_text(elapsed)}", elapsed,
                  peer=host_port(str(peer[0]), int(peer[1])))


def target_tcp(spec: TcpProbe, ctx: ProbeContext) -> str:
    return host_port(spec.host, spec.port)
