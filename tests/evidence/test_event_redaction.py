"""Secrets and PHI-like values never reach the event log: what people type (approval comments,
break-glass justifications) and what the system records pass through primum.adapters.redaction.safe."""

from __future__ import annotations

from primum.adapters.redaction import safe
from primum.adapters.store.records import NewEvent

FAKE_AWS = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key, not a real one


def test_an_event_with_a_secret_and_phi_is_redacted_and_the_replacement_noted() -> None:
    [event] = safe([NewEvent(kind="approval", message=f"ok, deploy with key {FAKE_AWS}",
                             data={"comment": "patient MRN: SYN00012345 saw the error", "actor": "cab-chair"})])
    assert FAKE_AWS not in event.message and "[REDACTED:" in event.message
    assert "SYN00012345" not in event.data["comment"]
    assert event.data["actor"] == "cab-chair"
    kinds = {(r["path"], r["kind"]) for r in event.data["redactions"]}
    assert ("/message", "aws-access-key") in kinds or any(p == "/message" for p, _ in kinds)
    assert any(p == "/comment" for p, _ in kinds)


def test_a_clean_event_is_unchanged() -> None:
    clean = NewEvent(kind="step", message="scheduling-api in staging: step 2/6 route 25% to the new version",
                     data={"digest": "sha256:" + "ab" * 32, "version": "2.0.1"})
    assert safe([clean]) == [clean]


def test_log_lines_are_redacted_before_any_handler_writes_them() -> None:
    import io
    import logging

    from primum.adapters.redaction import configure_logging

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
