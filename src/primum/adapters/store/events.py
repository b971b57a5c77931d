"""Events: the one path every event takes into the store, redacted and signed, and their readers.

``_insert_events`` is the single write path (``add_events``, ``persist`` and ``reset`` all use it).
It redacts each event first (:func:`redact_events`), so no secret or PHI-like value enters the
event table or the evidence log built from it, whoever the caller is; then it inserts the events
and, in the same transaction, their signed statements and the promotions by digest they record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from primum.adapters.store.base import RolloutNotFound, StorePart
from primum.adapters.store.base import bind as _b
from primum.adapters.store.records import EventRecord, NewEvent, RolloutRecord, pinned_artifacts
from primum.adapters.store.tables import artifact_promotions, rollout_events, rollouts

_R = rollouts.c

# Events after which an artifact digest counts as having passed an environment.
PASSING_KINDS = ("item_succeeded", "item_skipped")

_INSERT_EVENTS_RETURNING = insert(rollout_events).returning(rollout_events.c.id, sort_by_parameter_order=True)
_SUBJECT_COLUMNS = select(_R.digest, _R.release).where(_R.id == _b("id"))

_EVENTS = (
    select(rollout_events)
    .where(rollout_events.c.rollout_id == _b("id"), rollout_events.c.id > _b("after_id"))
    .order_by(rollout_events.c.id)
)

_EVENT = select(rollout_events).where(rollout_events.c.id == _b("event_id"))
_EVENTS_OF_KIND = (
    select(rollout_events)
    .where(rollout_events.c.rollout_id == _b("id"), rollout_events.c.kind == _b("kind"))
    .order_by(rollout_events.c.id)
)

def _event(row: Row[Any]) -> EventRecord:
    return EventRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        at=row.at,
        kind=row.kind,
        env=row.env,
        service=row.service,
        message=row.message,
        data=row.data or {},
    )



def redact_events(events: Iterable[NewEvent]) -> list[NewEvent]:
    """The events with secrets and PHI-like values replaced by markers in their message and data.

    Each replacement is noted in the event's data under ``redactions`` (where, what kind, the
    marker), so a reader knows something was removed and why; an event with nothing to redact is
    returned as it is. Idempotent: markers are left as they are, so a redacted event comes back equal.
    """
    from primum.core.evidence.redact import redact, redact_text  # write path only: reads start faster

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


class EventsPart(StorePart):
    """Write a rollout's events (redacted, with their evidence) and read them back."""

    def add_events(self, rollout_id: str, events: Sequence[NewEvent], now: float) -> None:
        """Record events of a rollout (redacted) in one transaction; RolloutNotFound if it does not exist."""
        with self._rollout_must_exist(rollout_id), self._write() as conn:
            self._insert_events(conn, rollout_id, events, now)

    def _insert_events(self, conn: Connection, rollout_id: str, events: Sequence[NewEvent], now: float,
                       record: RolloutRecord | None = None) -> list[int]:
        """Insert the events and, in the same transaction, their signed statements in the evidence log.

        An ``item_succeeded`` event (or ``item_skipped``: the target confirmed the environment
        already runs that exact digest) also records that the item's artifact digest passed its
        environment (promotion by digest). Every event is redacted here, before anything of it is
        written or signed: callers pass events as they are.
        """
        from primum.adapters.store.evidence import PendingEntry
        from primum.core.evidence.events import event_to_statement, plain

        if not events:
            return []
        events = redact_events(events)
        subjects = self.evidence.cached_subjects(rollout_id)
        release: dict[str, Any] = {}
        if record is not None:
            release = record.release
            subjects = subjects or self.evidence.subjects(rollout_id, record.digest, release)
        elif subjects is None or any(e.kind in PASSING_KINDS for e in events):
            row = conn.execute(_SUBJECT_COLUMNS, {"b_id": rollout_id}).first()
            if row is None:
                raise RolloutNotFound(rollout_id)
            release = row.release
            subjects = self.evidence.subjects(rollout_id, row.digest, release)
        ids = conn.execute(
            _INSERT_EVENTS_RETURNING,
            [
                {
                    "rollout_id": rollout_id,
                    "at": now,
                    "kind": event.kind,
                    "env": event.env,
                    "service": event.service,
                    "message": event.message,
                    "data": plain(event.data),  # no NaN: PostgreSQL's JSON and canonical JSON have none
                }
                for event in events
            ],
        ).scalars().all()
        pending = [
            PendingEntry(statement=event_to_statement(subjects, kind=event.kind, message=event.message, at=now,
                                                      env=event.env, service=event.service, data=event.data),
                         kind=event.kind, rollout_id=rollout_id, event_id=int(event_id))
            for event, event_id in zip(events, ids, strict=True)
        ]
        self.evidence.append(conn, pending, now)
        pins = pinned_artifacts(release)
        passed = [{"service": e.service, "digest": pins[e.service]["digest"], "env": e.env,
                   "rollout_id": rollout_id, "at": now}
                  for e in events if e.kind in PASSING_KINDS and e.env and e.service in pins]
        if passed:
            conn.execute(insert(artifact_promotions), passed)
        return [int(i) for i in ids]

    def events(self, rollout_id: str, after_id: int = 0) -> list[EventRecord]:
        """Events of a rollout with id greater than ``after_id``, in order."""
        with self._reader.connect() as conn:
            return [_event(row) for row in conn.execute(_EVENTS, {"b_id": rollout_id, "b_after_id": after_id})]

    def event(self, event_id: int) -> EventRecord | None:
        """One event by its id (analysis reports are shown by event id)."""
        with self._reader.connect() as conn:
            row = conn.execute(_EVENT, {"b_event_id": event_id}).first()
        return None if row is None else _event(row)

    def events_of_kind(self, rollout_id: str, kind: str) -> list[EventRecord]:
        with self._reader.connect() as conn:
            return [_event(row) for row in conn.execute(_EVENTS_OF_KIND, {"b_id": rollout_id, "b_kind": kind})]

    def passed_environments(self, service: str, digest: str) -> set[str]:
        """The environments in which this artifact digest of ``service`` passed (its item succeeded)."""
        return self.passed_environments_of([(service, digest)]).get((service, digest), set())

    def passed_environments_of(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
        """For each ``(service, digest)``: the environments it passed; one query for all of them."""
        if not pairs:
            return {}
        c = artifact_promotions.c
        wanted = set(pairs)
        out: dict[tuple[str, str], set[str]] = {pair: set() for pair in wanted}
        with self._reader.connect() as conn:
            rows = conn.execute(select(c.service, c.digest, c.env).where(c.digest.in_(sorted({d for _, d in wanted}))))
            for service, digest, env in rows:
                if (service, digest) in wanted:
                    out[(service, digest)].add(env)
        return out

