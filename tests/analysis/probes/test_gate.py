"""run_probe fails closed; run_gate retries as a ProbeGate says."""

from __future__ import annotations

import socket
from typing import Literal

import pytest

from primum.adapters.probes import ProbeContext, run_gate, run_probe, target_of
from primum.adapters.probes.context import Probe, host_port
from primum.adapters.probes.registry import PROBES
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import FhirProbe, HttpProbe, MllpProbe, ProbeGate, TcpProbe, TlsProbe
from primum.core.model.plugins import PluginSpec

from .conftest import free_port


class BrokenProbe(PluginSpec):
    """A probe whose check has a bug (registered by this test only)."""

    type: Literal["broken"] = "broken"
    port: int = 5432


def _broken(spec: BrokenProbe, ctx: ProbeContext) -> ProbeResult:
    raise RuntimeError("bug in a probe")


def test_unexpected_errors_are_failures() -> None:
    PROBES.add(BrokenProbe, Probe(_broken, lambda spec, ctx: host_port("127.0.0.1", spec.port)))
    try:
        result = run_probe(BrokenProbe(), ProbeContext())
    finally:
        PROBES.remove("broken")
    assert not result.ok
    assert result.reason == "broken probe of 127.0.0.1:5432 could not run: RuntimeError: bug in a probe"


def test_targets() -> None:
    ctx = ProbeContext(base_url="http://127.0.0.1:9000/", mllp_port=2575)
    assert target_of(HttpProbe(), ctx) == "http://127.0.0.1:9000/healthz"
    assert target_of(HttpProbe(url="http://x/y"), ctx) == "http://x/y"
    assert target_of(FhirProbe(), ctx) == "http://127.0.0.1:9000/metadata"
    assert target_of(MllpProbe(), ctx) == "127.0.0.1:2575"
    assert target_of(TlsProbe(host="::1", port=8443), ctx) == "[::1]:8443"


def test_gate_retries_then_fails() -> None:
    port = free_port()
    gate = ProbeGate(name="db-port", probe=TcpProbe(port=port, timeout=1), attempts=3, interval=0.5)
    waits: list[float] = []
    result = run_gate(gate, ProbeContext(), sleep=waits.append)
    assert not result.ok
    assert waits == [0.5, 0.5]
    assert result.details == {"gate": "db-port", "attempt": 3, "attempts": 3}
    assert result.reason.endswith("(gate db-port: all 3 attempts failed)")


def test_gate_passes_on_first_passing_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        gate = ProbeGate.model_validate({"name": "port-open", "probe": {"type": "tcp", "port": port}})
        waits: list[float] = []
        result = run_gate(gate, sleep=waits.append)
    assert result.ok, result.reason
    assert waits == []
    assert (result.details["attempt"], result.details["attempts"]) == (1, 3)
