"""MLLP probe: against the rendered hl7-interface as a real process, and fake servers locally."""

from __future__ import annotations

import time

import pytest

from primum.adapters.probes import ProbeContext, hl7, run_probe
from primum.core.model.analysis import MllpProbe

from .conftest import DemoStarter, RawStarter, free_port


def control_id_of(received: bytes) -> str:
    content, _ = hl7.unframe(received) or (b"", b"")
    return content.decode().split("\r")[0].split("|")[9]


def ack_frame(code: str, control_id: str, extra: str = "") -> bytes:
    return hl7.frame(f"MSH|^~\\&|FAKE|FAKE|PRIMUM-PROBE|PRIMUM-PROBE|20240101||ACK^A01^ACK|A1|T|2.5.1\r"
                     f"MSA|{code}|{control_id}\r{extra}")


@pytest.mark.slow
def test_ack_passes(demo: DemoStarter) -> None:
    engine = demo("hl7-interface", mllp=True)
    assert engine.mllp_port is not None
    result = run_probe(MllpProbe(port=engine.mllp_port), ProbeContext())
    assert result.ok, result.reason
    assert result.probe == "mllp"
    assert result.target == f"127.0.0.1:{engine.mllp_port}"
    details = result.details
    assert details["ack_code"] == "AA"
    assert details["ack_control_id"] == details["control_id"]
    assert details["control_id"].startswith("PRB")
    assert details["ack_type"] == "ACK^A01^ACK"
    assert result.reason.startswith(f"MLLP 127.0.0.1:{engine.mllp_port} acknowledged ADT^A01 {details['control_id']}")
    # a second probe uses a fresh control id; the port can also come from the environment
    again = run_probe(MllpProbe(message_type="ADT^A08"), ProbeContext(mllp_port=engine.mllp_port))
    assert again.ok, again.reason
    assert again.details["control_id"] != details["control_id"]
    assert again.details["ack_type"] == "ACK^A08^ACK"


@pytest.mark.slow
def test_nak_fails(demo: DemoStarter) -> None:
    engine = demo("hl7-interface", "2.0.0", mllp=True, mllp_mode="nak")
    assert engine.mllp_port is not None
    result = run_probe(MllpProbe(port=engine.mllp_port), ProbeContext())
    assert not result.ok
    assert "answered AR, expected AA" in result.reason
    assert "207 Application internal error" in result.reason
    assert result.details["ack_code"] == "AR"
    assert result.details["ack_control_id"] == result.details["control_id"]


@pytest.mark.slow
def test_application_error_fails(demo: DemoStarter) -> None:
    engine = demo("hl7-interface", "2.0.1", mllp=True, error_rate=1.0)
    assert engine.mllp_port is not None
    result = run_probe(MllpProbe(port=engine.mllp_port), ProbeContext())
    assert not result.ok
    assert "answered AE, expected AA (207 Application internal error: internal error)" in result.reason
    assert result.details["ack_text"] == "internal error"


@pytest.mark.slow
def test_silent_interface_times_out(demo: DemoStarter) -> None:
    engine = demo("hl7-interface", "2.0.2", mllp=True, mllp_mode="silent")
    assert engine.mllp_port is not None
    began = time.monotonic()
    result = run_probe(MllpProbe(port=engine.mllp_port, timeout=0.5), ProbeContext())
    assert time.monotonic() - began < 2.0
    assert not result.ok
    assert result.reason == (
        f"MLLP 127.0.0.1:{engine.mllp_port} sent no ACK to {result.details['control_id']} within 500 ms"
    )


def test_connection_refused_fails() -> None:
    port = free_port()
    result = run_probe(MllpProbe(port=port, timeout=1), ProbeContext())
    assert not result.ok
    assert result.reason == f"MLLP 127.0.0.1:{port} could not connect: connection refused"


def test_no_port_fails() -> None:
    result = run_probe(MllpProbe(), ProbeContext())
    assert not result.ok
    assert "has no port" in result.reason


def test_wrong_control_id_fails(raw_server: RawStarter) -> None:
    server = raw_server(lambda _: ack_frame("AA", "SOMEONE-ELSE"), hl7.END_BLOCK)
    result = run_probe(MllpProbe(port=server.port, timeout=2), ProbeContext())
    assert not result.ok
    assert f"acknowledged control id 'SOMEONE-ELSE', expected '{result.details['control_id']}'" in result.reason


def test_ack_in_pieces_with_noise_passes(raw_server: RawStarter) -> None:
    server = raw_server(lambda data: b"\r\n" + ack_frame("AA", control_id_of(data)), hl7.END_BLOCK)
    result = run_probe(MllpProbe(port=server.port, timeout=2), ProbeContext())
    assert result.ok, result.reason
    message = server.received[0]
    assert message.startswith(b"\x0bMSH|") and message.endswith(b"\r\x1c\x0d")
    assert b"TEST^SYNTHETIC" in message


def test_commit_ack_is_not_enough(raw_server: RawStarter) -> None:
    server = raw_server(lambda data: ack_frame("CA", control_id_of(data)), hl7.END_BLOCK)
    result = run_probe(MllpProbe(port=server.port, timeout=2), ProbeContext())
    assert not result.ok
    assert "answered CA, expected AA" in result.reason


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"\x0bHTTP/1.1 400 Bad Request\x1c\x0d", "answered a frame that is not an HL7 ACK (no MSH segment first)"),
        (b"\x0bMSH|^~\\&|A|B|C|D|x||ACK|1|P|2.5.1\r\x1c\x0d", "not an HL7 ACK (no MSA segment)"),
        (b"", "closed the connection without answering"),
        (b"\x0bMSH|^~\\&|A|B", "closed the connection after 13 byte(s) without an end of frame"),
    ],
)
def test_garbage_fails(raw_server: RawStarter, reply: bytes, expected: str) -> None:
    server = raw_server(lambda _: reply, hl7.END_BLOCK)
    result = run_probe(MllpProbe(port=server.port, timeout=2), ProbeContext())
    assert not result.ok
    assert expected in result.reason


def test_bad_message_type_fails_without_sending(raw_server: RawStarter) -> None:
    server = raw_server(lambda _: None, hl7.END_BLOCK)
    result = run_probe(MllpProbe(port=server.port, message_type="ADT-A01"), ProbeContext())
    assert not result.ok
    assert "cannot build its message" in result.reason
    assert server.received == []
