"""Approvals, break-glass uses and their retrospective reviews: the governance records of a rollout.

The decisions about them (separation of duties, what a break-glass allows) are pure, in
``core/governance``; this part only stores and reads the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from primum.adapters.store.events import EventsPart
from primum.adapters.store.records import ApprovalRecord, BreakGlassRecord, NewEvent
from primum.adapters.store.tables import approvals, break_glass


class ApprovalsPart(EventsPart):
    """Record and read approvals and rejections, break-glass uses and their reviews.

    A signed record and the event that logs it (with its envelope, into the evidence log) are written
    in one transaction, and the record keeps the event's id: the gate counts a record only when its
    envelope verifies and its evidence entry is in the log.
    """

    def add_approval(self, rollout_id: str, *, env: str, digest: str, actor: str, decision: str, comment: str,
                     roles: Sequence[str], owned_services: Sequence[str], at: float,
                     expires_at: float | None, envelope: dict[str, Any] | None = None,
                     event: NewEvent | None = None) -> int:
        """Record an approve or reject decision (and, in the same transaction, ``event``); returns its id."""
        with self._rollout_must_exist(rollout_id), self._engine.begin() as conn:
            result = conn.execute(insert(approvals).returning(approvals.c.id), {
                "rollout_id": rollout_id, "env": env, "digest": digest, "actor": actor, "decision": decision,
                "comment": comment, "roles": list(roles), "owned_services": list(owned_services), "at": at,
                "expires_at": expires_at, "envelope": envelope})
            approval_id = int(result.scalar_one())
            if event is not None:
                event = NewEvent(kind=event.kind, message=event.message, env=event.env, service=event.service,
                                 data={**event.data, "approval": approval_id})
                [event_id] = self._insert_events(conn, rollout_id, [event], at)
                conn.execute(update(approvals).where(approvals.c.id == approval_id).values(event_id=event_id))
            return approval_id

    def approvals(self, rollout_id: str) -> list[ApprovalRecord]:
        """Every approve or reject decision on a rollout, oldest first."""
        with self._reader.connect() as conn:
            rows = conn.execute(select(approvals).where(approvals.c.rollout_id == rollout_id)
                                .order_by(approvals.c.id))
            return [ApprovalRecord(id=r.id, rollout_id=r.rollout_id, env=r.env, digest=r.digest, actor=r.actor,
                                   decision=r.decision, comment=r.comment, roles=tuple(r.roles or ()),
                                   owned_services=tuple(r.owned_services or ()), at=r.at, expires_at=r.expires_at,
                                   envelope=r.envelope, event_id=r.event_id)
                    for r in rows]

    def add_break_glass(self, rollout_id: str, *, digest: str, actor: str, justification: str, at: float,
                        review_due_at: float, notified: str, envelope: dict[str, Any] | None = None,
                        event: NewEvent | None = None) -> int:
        """Record a break-glass use (and, in the same transaction, ``event``); returns its id."""
        with self._rollout_must_exist(rollout_id), self._engine.begin() as conn:
            result = conn.execute(insert(break_glass).returning(break_glass.c.id), {
                "rollout_id": rollout_id, "digest": digest, "actor": actor, "justification": justification,
                "at": at, "review_due_at": review_due_at, "notified": notified, "envelope": envelope})
            use_id = int(result.scalar_one())
            if event is not None:
                event = NewEvent(kind=event.kind, message=event.message.replace("{review}", str(use_id)),
                                 env=event.env, service=event.service, data={**event.data, "review": use_id})
                [event_id] = self._insert_events(conn, rollout_id, [event], at)
                conn.execute(update(break_glass).where(break_glass.c.id == use_id).values(event_id=event_id))
            return use_id

    def break_glass_uses(self, rollout_id: str | None = None, *, open_only: bool = False) -> list[BreakGlassRecord]:
        """Break-glass uses (of one rollout, or all), oldest first; ``open_only``: not yet reviewed."""
        query = select(break_glass).order_by(break_glass.c.id)
        if rollout_id is not None:
            query = query.where(break_glass.c.rollout_id == rollout_id)
        if open_only:
            query = query.where(break_glass.c.reviewed_at.is_(None))
        with self._reader.connect() as conn:
            return [BreakGlassRecord(**row._asdict()) for row in conn.execute(query)]

    def complete_review(self, use_id: int, *, by: str, notes: str, at: float) -> bool:
        """Record the retrospective review of a break-glass use; False if it was already reviewed."""
        with self._engine.begin() as conn:
            result = conn.execute(update(break_glass)
                                  .where(break_glass.c.id == use_id, break_glass.c.reviewed_at.is_(None))
                                  .values(reviewed_at=at, reviewed_by=by, review_notes=notes))
            return result.rowcount == 1
