"""Secrets and PHI-like values never enter the event log (and so never the evidence built from it).

Every place that records an event passes it through :func:`safe` first: the message and the data are
redacted with ``primum.core.evidence.redact`` and each replacement is noted in the event's data under
``redactions`` (where, what kind, the marker), so a reader knows something was removed and why.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

from primum.adapters.store.records import NewEvent
from primum.core.evidence.redact import RedactingFilter, redact, redact_text


def safe(events: Iterable[NewEvent]) -> list[NewEvent]:
    out = []
    for event in events:
        message, notes = redact_text(event.message, path="/message")
        data, more = redact(event.data)
        notes += more
        if notes:
            data = {**data, "redactions": [n.as_dict() for n in notes]}
            event = NewEvent(kind=event.kind, message=message, env=event.env, service=event.service, data=data)
        out.append(event)
    return out


def configure_logging(stream: TextIO | None = None, level: int = logging.WARNING) -> logging.Handler:
    """Send primum's log records to ``stream`` (stderr) through redaction: a secret or PHI-like value in
    a log message is replaced before any handler writes it. The command line calls this at start."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())  # a handler filter sees every record, child loggers' too
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("primum")
    for old in [h for h in logger.handlers if getattr(h, "primum_redacting", False)]:
        logger.removeHandler(old)
    handler.primum_redacting = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(min(logger.level or level, level))
    logger.propagate = False
    return handler
