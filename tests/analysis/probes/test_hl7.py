"""The pure HL7 v2 pieces of the MLLP probe: the synthetic message, framing, ACK parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from primum.adapters.probes import hl7

MOMENT = datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC)


def fields(message: str) -> dict[str, list[str]]:
    return {segment.split("|")[0]: segment.split("|") for segment in message.split("\r") if segment}


def test_message_segments_are_separated_by_carriage_returns() -> None:
    message = hl7.build_message("ADT^A01", "PRB0001", mrn="SYN00000042", moment=MOMENT)
    assert "\n" not in message
    assert message.endswith("\r")
    names = [segment.split("|")[0] for segment in message.split("\r") if segment]
    assert names == ["MSH", "EVN", "PID", "PV1"]
    msh = fields(message)["MSH"]  # msh[n - 1] is MSH-n
    assert msh[1] == "^~\\&"
    assert msh[2] == msh[3] == "PRIMUM-PROBE"
    assert msh[6] == "20240301123005+0000"
    assert msh[8] == "ADT^A01"
    assert msh[9] == "PRB0001"
    assert msh[10] == "T"  # training: not a production message
    assert msh[11] == "2.5.1"
    assert fields(message)["EVN"][1:3] == ["A01", "20240301123005+0000"]


def test_message_carries_only_a_synthetic_patient() -> None:
    message = hl7.build_message("ADT^A08", hl7.new_control_id(), mrn=hl7.synthetic_mrn(), moment=MOMENT)
    pid = fields(message)["PID"]
    mrn, _, _, authority, kind = pid[3].split("^")
    assert re.fullmatch(r"SYN[0-9]{8}", mrn)
    assert (authority, kind) == ("PRIMUM-SYNTHETIC", "MR")
    assert pid[5] == "TEST^SYNTHETIC"
    assert pid[7] == "19000101"
    assert pid[8] == "U"
    assert fields(message)["PV1"][2] == "N"
    # nothing beyond the synthetic identity: no address, phone, SSN, next of kin...
    assert len(pid) == 9
    assert set(fields(message)) == {"MSH", "EVN", "PID", "PV1"}


def test_non_adt_messages_have_no_evn() -> None:
    message = hl7.build_message("ORU^R01", "PRB1", mrn="SYN12345678", moment=MOMENT)
    assert "EVN" not in fields(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mrn": "12345678"}, "not synthetic"),
        ({"mrn": "SYN123"}, "not synthetic"),
        ({"message_type": "ADT"}, "not like ADT"),
        ({"message_type": "ADT^A01|X"}, "not like ADT"),
        ({"control_id": ""}, "control id"),
        ({"control_id": "A" * 21}, "control id"),
        ({"control_id": "A|B"}, "control id"),
        ({"processing_id": "X"}, "processing id"),
    ],
)
def test_message_builder_rejects_bad_input(kwargs: dict[str, str], message: str) -> None:
    args = {"message_type": "ADT^A01", "control_id": "PRB1", "mrn": "SYN12345678", **kwargs}
    with pytest.raises(ValueError, match=message):
        hl7.build_message(args.pop("message_type"), args.pop("control_id"), moment=MOMENT, **args)


def test_control_ids_are_fresh_and_fit_msh_10() -> None:
    ids = {hl7.new_control_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 20 and hl7.CONTROL_ID.fullmatch(i) for i in ids)
    assert all(hl7.MRN.fullmatch(hl7.synthetic_mrn()) for _ in range(100))


def test_framing() -> None:
    framed = hl7.frame("MSH|^~\\&|A\rPID|1\r")
    assert framed == b"\x0bMSH|^~\\&|A\rPID|1\r\x1c\x0d"
    assert hl7.unframe(framed) == (b"MSH|^~\\&|A\rPID|1\r", b"")
    assert hl7.unframe(framed[:-1]) is None  # no end of block yet
    assert hl7.unframe(b"") is None
    assert hl7.unframe(b"junk" + framed + b"\x0bnext") == (b"MSH|^~\\&|A\rPID|1\r", b"\x0bnext")


def test_parse_accepting_ack() -> None:
    ack = hl7.parse_ack("MSH|^~\\&|HL7|HOSP|PRIMUM-PROBE|PRIMUM-PROBE|20240301||ACK^A01^ACK|ACK1|T|2.5.1\r"
                        "MSA|AA|PRB0001\r")
    assert ack == hl7.Ack(code="AA", control_id="PRB0001", text="", errors=(), message_type="ACK^A01^ACK")
    assert hl7.ack_problems(ack, "PRB0001") == []
    assert hl7.ack_problems(ack, "PRB0002") == ["acknowledged control id 'PRB0001', expected 'PRB0002'"]


def test_parse_error_acks() -> None:
    v25 = hl7.parse_ack("MSH|^~\\&|A|B|C|D|20240301||ACK|1|P|2.5.1\r"
                        "MSA|AE|PRB9|database unavailable\r"
                        "ERR|||207^Application internal error^HL70357|E||||database unavailable\r")
    assert (v25.code, v25.control_id, v25.text) == ("AE", "PRB9", "database unavailable")
    assert v25.errors == ("207 Application internal error: database unavailable",)
    [problem] = hl7.ack_problems(v25, "PRB9")
    assert problem == "answered AE, expected AA (207 Application internal error: database unavailable)"

    v23 = hl7.parse_ack("MSH|^~\\&|A|B|C|D|20240301||ACK|1|P|2.3\nMSA|AR|PRB9\nERR|PID^1^3^101\n")
    assert v23.code == "AR"
    assert v23.errors == ("PID 1 3 101",)
    assert hl7.ack_problems(v23, "PRB8") == [
        "answered AR, expected AA (PID 1 3 101)",
        "acknowledged control id 'PRB9', expected 'PRB8'",
    ]


def test_parse_ack_with_other_separators() -> None:
    ack = hl7.parse_ack("MSH#$~\\&#A#B#C#D#20240301##ACK$A01#1#P#2.5.1\rMSA#AA#X1\r")
    assert (ack.code, ack.control_id, ack.message_type) == ("AA", "X1", "ACK$A01")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no MSH"),
        ("hello there", "no MSH"),
        ("PID|1\rMSA|AA|X\r", "no MSH"),
        ("MSH|^~\\&|A|B|C|D|x||ACK|1|P|2.5.1\r", "no MSA"),
        ("MSH|^~\\&|A|B|C|D|x||ACK|1|P|2.5.1\rMSA||X\r", "MSA-1"),
    ],
)
def test_parse_ack_rejects_what_is_not_an_ack(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        hl7.parse_ack(text)
