"""Secrets and PHI-like values never reach the event log: what people type (approval comments,
break-glass justifications) and what the system records pass through
primum.adapters.store.events.redact_events, which the store applies to every event it writes
(tests/store/test_store_redaction.py checks that through the store itself)."""

from __future__ import annotations

from primum.adapters.store.events import redact_events
from primum.adapters.store.records import NewEvent

FAKE_AWS = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key, not a real one


def test_an_event_with_a_secret_and_phi_is_redacted_and_the_replacement_noted() -> None:
    [event] = redact_events([NewEvent(kind="approval", message=f"ok, deploy with key {FAKE_AWS}",
                                      data={"comment": "patient MRN: SYN00012345 saw the error",
                                            "actor": "cab-chair"})])
    assert FAKE_AWS not in event.message and "[REDACTED:" in event.message
    assert "SYN00012345" not in event.data["comment"]
    assert event.data["actor"] == "cab-chair"
    kinds = {(r["path"], r["kind"]) for r in event.data["redactions"]}
    assert ("/message", "aws-access-key") in kinds or any(p == "/message" for p, _ in kinds)
    assert any(p == "/comment" for p, _ in kinds)


def test_a_clean_event_is_unchanged() -> None:
    clean = NewEvent(kind="step", message="scheduling-api in staging: step 2/6 route 25% to the new version",
                     data={"digest": "sha256:" + "ab" * 32, "version": "2.0.1"})
    assert redact_events([clean]) == [clean]


def test_redacting_a_redacted_event_changes_nothing() -> None:
    # The store redacts every event it writes: an event a caller already redacted (or one read back and
    # written again) must come out the same, markers and the list of replacements included.
    dirty = NewEvent(kind="break_glass", env="production", service="ehr-api",
                     message=f"break-glass: key {FAKE_AWS}, password=hunter2, Authorization: Bearer abc123def456ghi",
                     data={"notes": "patient MRN: SYN00012345, DOB: 1970-01-01", "api_key": {"nested": "x"},
                           "ssn": "123-45-6789", "actor": "cab-chair"})
    once = redact_events([dirty])
    assert once != [dirty] and once[0].data["redactions"]
    assert redact_events(once) == once
    assert redact_events(redact_events(once)) == once


def test_log_lines_are_redacted_before_any_handler_writes_them() -> None:
    import io
    import logging

    from primum.adapters.logs import configure_logging

    stream = io.StringIO()
    handler = configure_logging(stream)
    try:
        logging.getLogger("primum.controller").warning("probe failed: Authorization: Bearer abc123def456ghi "
                                                        "for patient MRN: 00123456")
        text = stream.getvalue()
        assert "abc123def456ghi" not in text and "00123456" not in text
        assert "[REDACTED:" in text and "probe failed" in text
    finally:
        logging.getLogger("primum").removeHandler(handler)
        logging.getLogger("primum").propagate = True
