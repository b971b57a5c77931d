"""Secrets and PHI-like values never enter the event log (and so never the evidence built from it).

Every place that records an event passes it through :func:`safe` first: the message and the data are
redacted with ``primum.evidence.redact`` and each replacement is noted in the event's data under
``redactions`` (where, what kind, the marker), so a reader knows something was removed and why.
"""

from __future__ import annotations

from collections.abc import Iterable

from primum.evidence.redact import redact, redact_text
from primum.store.records import NewEvent


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
