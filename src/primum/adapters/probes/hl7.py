"""HL7 v2 pieces of the MLLP probe, pure: a synthetic message, MLLP framing, ACK parsing.

The message is synthetic and says so: patient ``TEST^SYNTHETIC``, an MRN
``SYN`` + 8 digits from the assigning authority ``PRIMUM-SYNTHETIC``, birth
date 1900-01-01, sex U, patient class N, processing id T (training) by
default, sent by ``PRIMUM-PROBE``. Nothing in it looks like a real person.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

START_BLOCK = b"\x0b"  # MLLP start of block (VT)
END_BLOCK = b"\x1c\x0d"  # MLLP end of block (FS) and carriage return
SEGMENT_END = "\r"
FIELD = "|"
ENCODING = "^~\\&"  # component, repetition, escape, subcomponent
COMPONENT = "^"
PROBE_APP = "PRIMUM-PROBE"
SYNTHETIC_AUTHORITY = "PRIMUM-SYNTHETIC"
SYNTHETIC_NAME = "TEST^SYNTHETIC"  # family^given
SYNTHETIC_BIRTH = "19000101"
HL7_VERSION = "2.5.1"
# MSH-9: message code ^ trigger event [^ message structure], e.g. ADT^A01 or ADT^A01^ADT_A01
MESSAGE_TYPE = re.compile(r"[A-Z][A-Z0-9]{2}\^[A-Z0-9]{3}(?:\^[A-Z][A-Z0-9]{2}_[A-Z0-9]{3})?")
CONTROL_ID = re.compile(r"[0-9A-Za-z._-]{1,20}")  # MSH-10 is at most 20 characters
MRN = re.compile(r"SYN[0-9]{8}")


def new_control_id() -> str:
    """A fresh, unique message control id (MSH-10): ``PRB`` + 17 hex digits, 20 characters."""
    return "PRB" + uuid.uuid4().hex[:17].upper()


def synthetic_mrn() -> str:
    """A clearly fake medical record number: ``SYN`` + 8 random digits."""
    return f"SYN{secrets.randbelow(10**8):08d}"


def hl7_timestamp(moment: datetime) -> str:
    """HL7 DTM to the second, in UTC: ``YYYYMMDDHHMMSS+0000``."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "+0000"


def build_message(
    message_type: str,
    control_id: str,
    *,
    mrn: str,
    moment: datetime,
    processing_id: str = "T",
    receiving_app: str = "",
    receiving_facility: str = "",
) -> str:
    """A synthetic HL7 v2.5.1 message: MSH, EVN (ADT only), PID, PV1, each ended by ``\\r``.

    Raises ``ValueError`` for a malformed message type or control id, or an MRN
    that is not a synthetic one (``SYN`` + 8 digits).
    """
    if not MESSAGE_TYPE.fullmatch(message_type):
        raise ValueError(f"message type {message_type!r} is not like ADT^A01 (code^event[^structure])")
    if not CONTROL_ID.fullmatch(control_id):
        raise ValueError(f"message control id {control_id!r} must be 1-20 letters, digits, '.', '_' or '-'")
    if not MRN.fullmatch(mrn):
        raise ValueError(f"MRN {mrn!r} is not synthetic: use SYN + 8 digits")
    if processing_id not in ("P", "T", "D"):
        raise ValueError(f"processing id {processing_id!r} must be P, T or D")
    stamp = hl7_timestamp(moment)
    code, event = message_type.split(COMPONENT)[:2]
    msh = ["MSH", ENCODING, PROBE_APP, PROBE_APP, receiving_app, receiving_facility, stamp, "",
           message_type, control_id, processing_id, HL7_VERSION]
    segments = [FIELD.join(msh)]
    if code == "ADT":
        segments.append(FIELD.join(["EVN", event, stamp]))
    pid = ["PID", "1", "", f"{mrn}^^^{SYNTHETIC_AUTHORITY}^MR", "", SYNTHETIC_NAME, "", SYNTHETIC_BIRTH, "U"]
    segments.append(FIELD.join(pid))
    segments.append(FIELD.join(["PV1", "1", "N"]))
    return "".join(segment + SEGMENT_END for segment in segments)


def frame(message: str) -> bytes:
    """MLLP framing: ``0x0B`` message ``0x1C 0x0D``."""
    return START_BLOCK + message.encode("utf-8") + END_BLOCK


def unframe(buffer: bytes) -> tuple[bytes, bytes] | None:
    """The first complete MLLP frame of ``buffer``: (its content, the bytes after it), or
    None while the end of the frame has not arrived. Bytes before the start block are skipped."""
    start = buffer.find(START_BLOCK)
    if start < 0:
        return None
    end = buffer.find(END_BLOCK, start + 1)
    if end < 0:
        return None
    return buffer[start + 1 : end], buffer[end + len(END_BLOCK) :]


@dataclass(frozen=True)
class Ack:
    """The parts of an HL7 v2 acknowledgement the probe judges."""

    code: str  # MSA-1: AA, AE, AR (or CA, CE, CR in enhanced mode)
    control_id: str  # MSA-2: the control id of the acknowledged message
    text: str  # MSA-3 text message (deprecated in 2.5 but still common)
    errors: tuple[str, ...]  # one readable line per ERR segment
    message_type: str  # MSH-9 of the ACK, e.g. ACK^A01^ACK


def segments_of(message: str) -> list[str]:
    """Segments of an HL7 v2 message; ``\\r`` is the separator, stray ``\\n`` are tolerated."""
    text = message.replace("\r\n", "\r").replace("\n", "\r")
    return [segment for segment in text.split("\r") if segment.strip()]


def parse_ack(message: str) -> Ack:
    """Parse an ACK; raises ``ValueError`` (saying what is wrong) if it is not one."""
    segments = segments_of(message)
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise ValueError("no MSH segment first")
    separator = segments[0][3]
    header = segments[0].split(separator)  # header[n - 1] is MSH-n
    component = header[1][:1] if len(header) > 1 and header[1] else COMPONENT
    fields = [segment.split(separator) for segment in segments[1:]]
    msa = next((f for f in fields if f[0] == "MSA"), None)
    if msa is None:
        raise ValueError("no MSA segment")

    def get(values: list[str], n: int) -> str:
        return values[n] if len(values) > n else ""

    code = get(msa, 1)
    if not code:
        raise ValueError("MSA-1 (acknowledgment code) is empty")
    errors = tuple(line for line in (_error_line(f, component) for f in fields if f[0] == "ERR") if line)
    return Ack(
        code=code,
        control_id=get(msa, 2),
        text=get(msa, 3),
        errors=errors,
        message_type=get(header, 8),
    )


def _error_line(err: list[str], component: str) -> str:
    """One ERR segment as text: ERR-3 code and its text, then ERR-8 or ERR-7; ERR-1 (v2.3 style) else."""

    def get(n: int) -> str:
        return err[n] if len(err) > n else ""

    code = " ".join(part for part in get(3).split(component)[:2] if part)
    message = get(8) or get(7)
    if code and message:
        return f"{code}: {message}"
    if code or message:
        return code or message
    return " ".join(part for part in get(1).split(component) if part)


def ack_problems(ack: Ack, control_id: str) -> list[str]:
    """What is wrong with ``ack`` as the answer to the message ``control_id`` (empty: it is an AA for it)."""
    problems = []
    if ack.code != "AA":
        text = "" if any(ack.text in line for line in ack.errors) else ack.text  # ERR often repeats MSA-3
        why = "; ".join(part for part in (text, *ack.errors) if part)
        problems.append(f"answered {ack.code}, expected AA" + (f" ({why})" if why else ""))
    if ack.control_id != control_id:
        problems.append(f"acknowledged control id {ack.control_id!r}, expected {control_id!r}")
    return problems
