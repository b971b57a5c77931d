"""Redaction of secrets and PHI-like values.

Every value here is synthetic. Tokens are made-up strings in the vendors' formats (the AWS key
is AWS's own documentation example). MRNs start with SYN. SSNs are numbers that belong to no
one: 078-05-1120 (the Woolworth wallet specimen, voided by the SSA), 219-09-9999 (an SSA
advertising number, voided) and 123-45-6789 (the conventional placeholder). People are
"Jane Synthetic" and HL7 "SYNTHETIC^JANE".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from primum.core.evidence.redact import MARKER, RedactingFilter, Redaction, redact, redact_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTWU4ifQ.c2lnbmF0dXJlU1lOdGhldGlj"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "Syn0" * 9
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34SYNTHETICnotarealkey0\n-----END RSA PRIVATE KEY-----"

# (text, the secret that must go, kind)
POSITIVE = [
    (f"Authorization: Bearer {JWT}", JWT, "authorization"),
    (f"sent header bearer {GITHUB[:20]}1 upstream", GITHUB[:20] + "1", "bearer_token"),
    (f"token {JWT} end", JWT, "jwt"),
    (f"aws {AWS_KEY} used", AWS_KEY, "aws_key"),
    ('aws_secret_access_key = "SynTheticSecretKey0SynTheticSecretKey0ab"', "SynTheticSecretKey0SynTheticSecretKey0ab",
     "aws_key"),
    (f"cloned with {GITHUB}", GITHUB, "github_token"),
    ("glpat-SYNTHETICsynthetic0123 set", "glpat-SYNTHETICsynthetic0123", "gitlab_token"),
    ("slack xoxb-1234567890-synthetic0token", "xoxb-1234567890-synthetic0token", "slack_token"),
    ("stripe sk_live_SYNTHETIC" + "0" * 15 + " x", "sk_live_SYNTHETIC" + "0" * 15, "stripe_key"),
    ("twilio AC" + "0a1b2c3d4e5f6a7b" * 2 + " x", "AC" + "0a1b2c3d4e5f6a7b" * 2, "api_token"),
    ("sg SG." + "S" * 22 + "." + "y" * 43, "SG." + "S" * 22 + "." + "y" * 43, "api_token"),
    ("oa sk-" + "Syn0" * 5 + "T3BlbkFJ" + "Syn1" * 5, "sk-" + "Syn0" * 5 + "T3BlbkFJ" + "Syn1" * 5, "api_token"),
    ("tg 123456789:" + "S" * 35, "123456789:" + "S" * 35, "api_token"),
    ("mc " + "0a1b2c3d" * 4 + "-us12", "0a1b2c3d" * 4 + "-us12", "api_token"),
    ("sq sq0csp-" + "S" * 43, "sq0csp-" + "S" * 43, "api_token"),
    ("az AccountKey=" + "S" * 88, "S" * 88, "api_token"),
    ("pypi pypi-AgEIcHlwaS5vcmc" + "S" * 70, "pypi-AgEIcHlwaS5vcmc" + "S" * 70, "api_token"),
    ("login with password=hunter2Syn ok", "hunter2Syn", "password"),
    ('cfg {"db_password": "my pass phrase", "x": 1}', "my pass phrase", "password"),
    ("client_secret: SynSecretValue1", "SynSecretValue1", "secret"),
    ("https://x.example/cb?access_token=SynTok123&x=1", "SynTok123", "secret"),
    ("dsn postgresql://app:Syn7hPass@db.example.org:5432/app", "Syn7hPass", "connection_password"),
    (f"key {PEM} after", "MIIBOgIBAAJBAKj34SYNTHETICnotarealkey0", "private_key"),
    ("truncated -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAASYN", "b3BlbnNzaC1rZXktdjEAAAASYN",
     "private_key"),
    ("patient ssn 078-05-1120 seen", "078-05-1120", "ssn"),
    ("ids 219-09-9999;123-45-6789", "219-09-9999", "ssn"),
    ("SSN: 078051120", "078051120", "ssn"),
    ("MRN: SYN0042 admitted", "SYN0042", "mrn"),
    ("mrn#SYN-77 seen", "SYN-77", "mrn"),
    ("Medical record number: SYN123", "SYN123", "mrn"),
    ("Jane Synthetic, DOB 1961-03-07", "1961-03-07", "dob"),
    ("born 03/07/1961", "03/07/1961", "dob"),
    ("date of birth: March 7, 1961", "March 7, 1961", "dob"),
]

NEGATIVE = [
    "released 2024-01-02 version 1.2.3",
    "image sha256:4f0d1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",
    "at 2024-06-01T10:15:00Z weight 25 step 3",
    "secret: ${DB_SECRET} and {{ .Values.token }}",
    "password: <set-in-vault>",
    "Bearer authentication is required",
    "tokens: 512 and max_tokens=1024",
    "secretName: db-credentials-ref",
    "never issued 000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000",
    "serial 1123-45-67890 and 12-3456-789",
    "MRNs are looked up by the engine",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "https://fhir.example.org/r4/metadata",
]


@pytest.mark.parametrize(("text", "secret", "kind"), POSITIVE)
def test_each_detector_redacts_and_notes_kind(text: str, secret: str, kind: str) -> None:
    out, notes = redact_text(text, path="/msg")
    assert secret not in out
    assert kind in {n.kind for n in notes}, notes
    assert all(n.path == "/msg" and n.marker in out for n in notes)


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert redact_text(text) == (text, [])


def test_name_next_to_dob_is_redacted_too() -> None:
    out, notes = redact_text("Jane Synthetic, DOB 1961-03-07")
    assert out == "[REDACTED:person_name], DOB [REDACTED:dob]"
    assert [n.kind for n in notes] == ["person_name", "dob"]


def test_hl7_pid_fields_are_cut_field_by_field() -> None:
    message = (
        "MSH|^~\\&|SYN|HOSP|||20240101||ADT^A01|1|P|2.5\r"
        "PID|1||SYN123^^^HOSP^MR||SYNTHETIC^JANE||19610307|F|||1 Synthetic St^^Town||555-0100\r"
        "PV1|1|I"
    )
    out, notes = redact_text(message)
    for value in ("SYN123", "SYNTHETIC^JANE", "19610307", "1 Synthetic St", "555-0100"):
        assert value not in out
    assert "PID|1||[REDACTED:mrn]||[REDACTED:person_name]||[REDACTED:dob]|F|||" in out
    assert out.startswith("MSH|^~\\&|SYN|HOSP|||20240101") and out.endswith("\rPV1|1|I")
    assert [n.kind for n in notes] == ["mrn", "person_name", "dob", "address", "phone"]


def test_contacts_are_redacted_unless_turned_off() -> None:
    text = "call 555-867-5309 or ops@hospital.example"
    out, notes = redact_text(text)
    assert out == "call [REDACTED:phone] or [REDACTED:email]"
    assert {n.kind for n in notes} == {"phone", "email"}
    assert redact_text(text, contacts=False) == (text, [])


def test_markers_are_stable_and_fingerprints_follow_the_entropy_rule() -> None:
    first, _ = redact_text(f"a {AWS_KEY} b password=SynPw1")
    second, _ = redact_text(f"x {AWS_KEY} y password=SynPw1")
    fingerprint = hashlib.sha256(AWS_KEY.encode()).hexdigest()[:8]
    assert f"[REDACTED:aws_key:{fingerprint}]" in first and f"[REDACTED:aws_key:{fingerprint}]" in second
    assert "[REDACTED:password]" in first  # low entropy: no unkeyed hash
    keyed, _ = redact_text("ssn 078-05-1120", key=b"installation-key")
    mac = hmac.new(b"installation-key", b"078-05-1120", hashlib.sha256).hexdigest()[:8]
    assert keyed == f"ssn [REDACTED:ssn:{mac}]"
    assert redact_text("ssn 078-05-1120", key=b"other-key")[0] != keyed


def test_nested_document_keys_and_values_with_paths() -> None:
    doc = {
        "release": "rel-1",
        "digest": "sha256:" + "ab" * 32,
        "config": {"db": {"password": {"nested": "anything"}, "client_secret": 42, "secret_name": "db-ref"}},
        "headers": [{"Authorization": "Basic U1lOOnN5bg=="}, {"x-api-key": "SynKey"}],
        "events": ["ok", "MRN SYN0042 admitted"],
        "patient": {"mrn": "SYN0042", "DOB": "1961-03-07", "ssn": None},
        "max_tokens": 5,
        "use_token": True,
        "a/b": "token=SynTok123",
    }
    out, notes = redact(doc)
    assert out["release"] == "rel-1" and out["digest"] == doc["digest"]
    assert out["config"]["db"] == {
        "password": "[REDACTED:password]", "client_secret": "[REDACTED:secret]", "secret_name": "db-ref",
    }
    assert out["headers"] == [{"Authorization": "[REDACTED:authorization]"}, {"x-api-key": "[REDACTED:secret]"}]
    assert out["events"] == ["ok", "MRN [REDACTED:mrn] admitted"]
    assert out["patient"] == {"mrn": "[REDACTED:mrn]", "DOB": "[REDACTED:dob]", "ssn": None}
    assert out["max_tokens"] == 5 and out["use_token"] is True
    assert {n.path for n in notes} == {
        "/config/db/password", "/config/db/client_secret", "/headers/0/Authorization", "/headers/1/x-api-key",
        "/events/1", "/patient/mrn", "/patient/DOB", "/a~1b",
    }
    assert doc["config"]["db"]["password"] == {"nested": "anything"}  # the input is not changed


def test_keys_are_scanned_and_never_collide() -> None:
    out, notes = redact({"a@x.example": 1, "b@x.example": 2}, contacts=True)
    assert out == {"[REDACTED:email]": 1, "[REDACTED:email]#2": 2}
    assert [n.path for n in notes] == ["/[REDACTED:email]", "/[REDACTED:email]#2"]


def test_clean_document_is_copied_not_shared() -> None:
    doc = {"a": [1, {"b": "c"}], "t": ("x", 2.5, None)}
    out, notes = redact(doc)
    assert out == doc and notes == []
    assert out is not doc and out["a"] is not doc["a"]


def test_unknown_types_fail_closed_naming_the_path() -> None:
    with pytest.raises(TypeError, match=r"object at /a/0"):
        redact({"a": [object()]})


def test_redaction_record_as_dict() -> None:
    note = Redaction("/a", "ssn", "[REDACTED:ssn]")
    assert note.as_dict() == {"path": "/a", "kind": "ssn", "marker": "[REDACTED:ssn]"}


def test_logging_filter_redacts_messages(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("primum.test.redact")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="primum.test.redact"):
            logger.info("connecting with password=%s for %s", "SynPw123", "MRN SYN0042")
    finally:
        logger.filters.clear()
    assert "SynPw123" not in caplog.text and "SYN0042" not in caplog.text
    assert "[REDACTED:password]" in caplog.text


def test_redacting_a_2kb_event_is_fast() -> None:
    import time

    event = {"kind": "analysis", "service": "scheduling-api", "digest": "sha256:" + "ab" * 32,
             "reasons": [{"metric": f"m{i}", "query": "sum(rate(http_requests_total[5m]))", "value": i * 0.1}
                         for i in range(20)], "log": "canary ready; weights stable=75 canary=25 " * 8}
    assert 1500 < len(json.dumps(event)) < 3000
    redact(event)
    start = time.perf_counter()
    for _ in range(50):
        redact(event)
    assert (time.perf_counter() - start) / 50 < 0.005  # generous for CI; ~0.1 ms on a laptop


# --- properties ----------------------------------------------------------------------------------

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_secrets = st.one_of(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16).map(lambda s: ("", "AKIA" + s)),
    st.text(_ALNUM, min_size=36, max_size=36).map(lambda s: ("", "ghp_" + s)),
    st.text(_ALNUM, min_size=6, max_size=20).map(lambda s: ("password=", "Zx9" + s)),
    st.text(_ALNUM, min_size=4, max_size=12).map(lambda s: ("MRN: ", "SYN" + s + "0")),
    st.tuples(st.integers(1, 665), st.integers(1, 99), st.integers(1, 9999)).map(
        lambda t: ("", f"{t[0]:03d}-{t[1]:02d}-{t[2]:04d}")
    ),
)
_filler = st.text("abcdefghijklmnopqrstuvwxyz .,", max_size=40)


@settings(max_examples=300, deadline=None)
@given(before=_filler, secret=_secrets, after=_filler, key=st.sampled_from([None, b"k" * 32]))
def test_redaction_removes_secret_and_is_idempotent(
    before: str, secret: tuple[str, str], after: str, key: bytes | None
) -> None:
    label, value = secret
    text = f"{before} {label}{value} {after}"
    out, notes = redact_text(text, key=key)
    assert value not in out
    assert notes and all(MARKER.fullmatch(n.marker) for n in notes)
    assert redact_text(out, key=key) == (out, [])


@settings(max_examples=100, deadline=None)
@given(secret=_secrets, path=st.lists(st.sampled_from(["a", "b", "0"]), min_size=1, max_size=4))
def test_nested_redaction_removes_secret_and_is_idempotent(secret: tuple[str, str], path: list[str]) -> None:
    label, value = secret
    doc: object = f"note {label}{value}"
    for part in reversed(path):
        doc = [doc] if part == "0" else {part: doc}
    out, notes = redact(doc)
    assert value not in json.dumps(out)
    assert len(notes) >= 1
    assert redact(out) == (out, [])
