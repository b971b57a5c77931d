"""primum's log output is redacted, message and traceback alike (issue 13.5). Values are synthetic."""

from __future__ import annotations

import io
import logging

from primum.adapters.logs import configure_logging


def test_messages_and_tracebacks_are_redacted_before_any_handler_writes_them() -> None:
    stream = io.StringIO()
    handler = configure_logging(stream, logging.INFO)
    log = logging.getLogger("primum.test.logs")
    try:
        log.warning("admitted %s (%s)", "943 476 5919", "jane.synthetic@example.org")
        try:
            raise ValueError("INSERT failed for MRN: SYN00123456, tel 020 7946 0018")
        except ValueError:
            log.exception("store write failed")
    finally:
        logging.getLogger("primum").removeHandler(handler)
    text = stream.getvalue()
    for value in ("943 476 5919", "jane.synthetic", "SYN00123456", "020 7946 0018"):
        assert value not in text
    assert "admitted [REDACTED:nhs_number] ([REDACTED:email])" in text
    assert "ValueError: INSERT failed for MRN: [REDACTED:mrn]" in text
