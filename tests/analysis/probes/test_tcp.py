"""TCP probe: an open and a closed port."""

from __future__ import annotations

import socket

from primum.adapters.probes import ProbeContext, run_probe
from primum.core.model.analysis import TcpProbe

from .conftest import free_port


def test_open_port_passes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = run_probe(TcpProbe(port=port), ProbeContext())
    assert result.ok, result.reason
    assert result.target == f"127.0.0.1:{port}"
    assert result.details["peer"] == f"127.0.0.1:{port}"
    assert result.latency_ms is not None
    assert result.reason.startswith(f"TCP 127.0.0.1:{port} accepted a connection in ")


def test_closed_port_fails() -> None:
    port = free_port()
    result = run_probe(TcpProbe(port=port, timeout=1), ProbeContext())
    assert not result.ok
    assert result.reason == f"TCP 127.0.0.1:{port} did not accept a connection (connection refused), expected it to"

