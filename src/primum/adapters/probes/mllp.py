"""MLLP probe: send one synthetic HL7 v2 message, expect an AA that echoes its control id.

The message (see :mod:`primum.adapters.probes.hl7`) has a fresh control id
(MSH-10) and a synthetic patient only. The probe reads until the end of the
ACK frame or the timeout, whichever comes first; AE/AR (with MSA-3 and ERR
text), a wrong control id, a garbled or missing frame, a timeout and a
refused connection all fail it.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import Any

from primum.adapters.probes import hl7
from primum.adapters.probes.context import ProbeContext, elapsed_text, host_port, os_error_text, result, seconds
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import MllpProbe

MAX_ACK = 1 << 20  # bytes read before giving up on an end of frame


def probe_mllp(spec: MllpProbe, ctx: ProbeContext) -> ProbeResult:
    port = spec.port if spec.port is not None else ctx.mllp_port
    target = host_port(spec.host, port)
    if port is None:
        return result("mllp", target, False,
                      f"MLLP probe of {spec.host} has no port: set port, or run it for a service with an MLLP port")
    control_id = hl7.new_control_id()
    try:
        message = hl7.build_message(
            spec.message_type, control_id, mrn=hl7.synthetic_mrn(), moment=datetime.now(UTC)
        )
    except ValueError as exc:
        return result("mllp", target, False, f"MLLP probe of {target} cannot build its message: {exc}")
    details: dict[str, Any] = {"message_type": spec.message_type, "control_id": control_id}
    what = f"MLLP {target}"
    began = time.monotonic()
    deadline = began + spec.timeout
    stage = "connect"
    buffer = b""
    try:
        with socket.create_connection((spec.host, port), timeout=spec.timeout) as sock:
            stage = "send"
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(hl7.frame(message))
            stage = "ack"
            while (framed := hl7.unframe(buffer)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    seen = f" after {len(buffer)} byte(s) without an end of frame" if buffer else " without answering"
                    return result("mllp", target, False,
                                  f"{what} closed the connection{seen}, expected an ACK to {control_id}",
                                  time.monotonic() - began, **details)
                buffer += chunk
                if len(buffer) > MAX_ACK:
                    return result("mllp", target, False,
                                  f"{what} sent over 1 MiB without an end of frame, expected an ACK to {control_id}",
                                  time.monotonic() - began, **details)
    except TimeoutError:
        elapsed = time.monotonic() - began
        if stage == "connect":
            reason = f"{what} did not accept a connection within {seconds(spec.timeout)}"
        elif stage == "send":
            reason = f"{what} did not take the message {control_id} within {seconds(spec.timeout)}"
        else:
            got = f" (got {len(buffer)} byte(s) without an end of frame)" if buffer else ""
            reason = f"{what} sent no ACK to {control_id} within {seconds(spec.timeout)}{got}"
        return result("mllp", target, False, reason, elapsed, **details)
    except OSError as exc:
        verb = "could not connect" if stage == "connect" else "failed"
        return result("mllp", target, False, f"{what} {verb}: {os_error_text(exc)}", time.monotonic() - began,
                      **details)
    elapsed = time.monotonic() - began
    assert framed is not None
    content = framed[0].decode("utf-8", errors="replace")
    try:
        ack = hl7.parse_ack(content)
    except ValueError as exc:
        preview = content[:80]
        return result("mllp", target, False,
                      f"{what} answered a frame that is not an HL7 ACK ({exc}): {preview!r}", elapsed, **details)
    details.update(
        ack_code=ack.code,
        ack_control_id=ack.control_id,
        ack_text=ack.text or None,
        ack_errors=list(ack.errors),
        ack_type=ack.message_type,
    )
    problems = hl7.ack_problems(ack, control_id)
    if problems:
        return result("mllp", target, False, f"{what} " + "; ".join(problems), elapsed, **details)
    return result("mllp", target, True,
                  f"{what} acknowledged {spec.message_type} {control_id} with AA in {elapsed_text(elapsed)}",
                  elapsed, **details)


def target_mllp(spec: MllpProbe, ctx: ProbeContext) -> str:
    return host_port(spec.host, spec.port if spec.port is not None else ctx.mllp_port)
