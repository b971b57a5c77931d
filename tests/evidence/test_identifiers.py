"""Patient identifier detection (issue 13.5): NHS numbers, MBIs, MRNs with and without labels, dates of birth,
phones, e-mails; and what must never be flagged (digests, commits, UUIDs, timestamps, versions, ports, durations).

Every value is synthetic: 943 476 5919 is the NHS's published test number, 1EG4-TE5-MK73 is CMS's
example MBI, phones are in the 555 and Ofcom drama ranges, people are "Jane Synthetic".
"""

from __future__ import annotations

import random

import pytest

from primum.core.evidence.redact import redact, redact_text
from primum.core.sensitive.identifiers import nhs_check_digit_ok

POSITIVE = [
    ("patient 943 476 5919 admitted", "943 476 5919", "nhs_number"),
    ("nhs=9434765919;", "9434765919", "nhs_number"),
    ("NHS no 943-476-5919.", "943-476-5919", "nhs_number"),
    ("test_discharge_9434765919_ok", "9434765919", "nhs_number"),
    ("mbi 1EG4-TE5-MK73 eligible", "1EG4-TE5-MK73", "mbi"),
    ("claim for 1EG4TE5MK73", "1EG4TE5MK73", "mbi"),
    ("lookup SYN00123456 failed", "SYN00123456", "mrn"),
    ("record HSP-0012345 merged", "HSP-0012345", "mrn"),
    ("test_admit_mrn_12345_returns_200", "12345", "mrn"),
    ("tests.Admit.test_lookup_MRN77001", "77001", "mrn"),
    ("Hospital number: 7700123 seen", "7700123", "mrn"),
    ("patient_id=SYN42 missing", "SYN42", "mrn"),
    ("Jane Synthetic, born 7 March 1961, ward 4", "7 March 1961", "dob"),
    ("Jane Synthetic (DOB 07/03/1961)", "Jane Synthetic", "person_name"),
    ("call (555) 867-5309 now", "(555) 867-5309", "phone"),
    ("call +1 555 867 5309 now", "+1 555 867 5309", "phone"),
    ("ring 020 7946 0018 today", "020 7946 0018", "phone"),
    ("mobile +44 7700 900123.", "+44 7700 900123", "phone"),
    ("mobile 07700 900123", "07700 900123", "phone"),
    ("mail jane.synthetic@example.org please", "jane.synthetic@example.org", "email"),
    ("ssn 078-05-1120", "078-05-1120", "ssn"),
]


@pytest.mark.parametrize(("text", "value", "kind"), POSITIVE)
def test_each_identifier_is_replaced_by_a_typed_marker(text: str, value: str, kind: str) -> None:
    out, notes = redact_text(text)
    assert value not in out
    assert f"[REDACTED:{kind}]" in out, out
    assert kind in {n.kind for n in notes}


NEVER = [
    "image sha256:4f0d1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f pinned",
    "commit 9434765919aa3b1c2d3e4f5a6b7c8d9e0f1a2b3c at HEAD",
    "commit 4F0D1A2B3C4D5E6F7A8B9C0D1E2F3A4B5C6D7E8F",
    "uuid 123e4567-e89b-12d3-a456-426614174000 and 9434765919-0000-4000-8000-000000000000",
    "at 2024-06-01T10:15:00Z and 2024-06-01T10:15:00.943476+00:00",
    "version 1.2.3, 10.0.1-rc.2, v2024.06.01, python 3.11.9",
    "listening on 127.0.0.1:8080 and port 65535, took 1500ms, 2.5s, 30m, 943.4765919s",
    "epoch 1733280000 and 1733280000.943 and 1700000007",
    "ticket CHG0030001, INC0010001, CVE-2024-35195, PR-1234567",
    "weights 25/75 step 3 of 4, p95 943 ms, 476 requests, 5919 bytes",
    "error rate 0.9434765919 over 12 samples",
    "build 1EG4TE5MK7 (ten characters), hex 1eg4te5mk73 lower case",
    "git@github.com:org/repo.git fetched, https://app:${DB_PASSWORD}@db.example.org/x",
]


@pytest.mark.parametrize("text", NEVER)
def test_machine_values_are_not_flagged(text: str) -> None:
    out, notes = redact_text(text)
    assert [n.kind for n in notes if n.kind != "email"] == [], out
    assert "[REDACTED:nhs_number]" not in out and "[REDACTED:mrn]" not in out


def test_nhs_check_digit() -> None:
    assert nhs_check_digit_ok("9434765919")
    assert not nhs_check_digit_ok("9434765918")
    assert "nhs_number" not in {n.kind for n in redact_text("patient 943 476 5918")[1]}  # (a phone's shape)
    assert redact_text("patient 9434765918") == ("patient 9434765918", [])
    assert redact_text("all same 4444444444 and 0000000000")[1] == []


def test_random_ten_digit_numbers_mostly_do_not_match() -> None:
    rng = random.Random(13)
    numbers = [f"{rng.randrange(10**9, 10**10)}" for _ in range(5000)]
    flagged = sum(1 for n in numbers if redact_text(f"value {n} seen")[1])
    # 1 in 11 pass the check digit; unlabelled, only those starting 3, 4, 6, 7 or 9 and outside epoch seconds
    assert flagged / len(numbers) < 0.06


def test_epoch_range_numbers_count_after_an_nhs_label() -> None:
    number = next(str(n) for n in range(1_700_000_000, 1_700_001_000) if nhs_check_digit_ok(str(n)))
    assert redact_text(f"at {number}")[1] == []
    assert redact_text(f"NHS number {number}")[1][0].kind == "nhs_number"


def test_a_document_with_identifiers_in_keys_and_values() -> None:
    doc = {"nhs_number": "9434765919", "note": "Jane Synthetic DOB 1961-03-07, tel 020 7946 0018",
           "test_mrn_12345": "passed"}
    out, notes = redact(doc)
    text = repr(out)
    for value in ("9434765919", "1961-03-07", "020 7946 0018", "12345", "Jane Synthetic"):
        assert value not in text
    assert {"nhs_number", "dob", "phone", "mrn", "person_name"} <= {n.kind for n in notes}
