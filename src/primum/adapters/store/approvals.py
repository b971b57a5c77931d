"""Approvals, break-glass uses and their retrospective reviews: the governance records of a rollout.

The decisions about them (separation of duties, what a break-glass allows) are pure, in
``core/governance``; this part only stores and reads the records.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select, update

from primum.adapters.store.base import StorePart
from primum.adapters.store.records import ApprovalRecord, BreakGlassRecord
from primum.adapters.store.tables import approvals, break_glass


class ApprovalsPart(StorePart):
    """Record and read approvals and rejections, break-glass uses and their reviews."""

    def add_approval(self, rollout_id: str, *, env: str, digest: str, actor: str, decision: str, comment: str,
                     roles: Sequence[str], owned_services: Sequence[str], at: float,
                     expires_at: float | None) -> int:
        """Record an approve or reject decision; returns its id."""
        with self._rollout_must_exist(rollout_id), self._engine.begin() as conn:
            result = conn.execute(insert(approvals).returning(approvals.c.id), {
                "rollout_id": rollout_id, "env": env, "digest": digest, "actor": actor, "decision": decision,
                "comment": comment, "roles": list(roles), "owned_services": list(owned_services), "at": at,
                "expires_at": expires_at})
            return int(result.scalar_one())

    def approvals(self, rollout_id: str) -> list[ApprovalRecord]:
        """Every approve or reject decision on a rollout, oldest first."""
        with self._reader.connect() as conn:
            rows = conn.execute(select(approvals).where(approvals.c.rollout_id == rollout_id)
                                .order_by(approvals.c.id))
            return [ApprovalRecord(id=r.id, rollout_id=r.rollout_id, env=r.env, digest=r.digest, actor=r.actor,
                                   decision=r.decision, comment=r.comment, roles=tuple(r.roles or ()),
                                   owned_services=tuple(r.owned_services or ()), at=r.at, expires_at=r.expires_at)
                    for r in rows]

    def add_break_glass(self, rollout_id: str, *, digest: str, actor: str, justification: str, at: float,
                        review_due_at: float, notified: str) -> int:
        """Record a break-glass use; returns its id."""
        with self._rollout_must_exist(rollout_id), self._engine.begin() as conn:
            result = conn.execute(insert(break_glass).returning(break_glass.c.id), {
                "rollout_id": rollout_id, "digest": digest, "actor": actor, "justification": justification,
                "at": at, "review_due_at": review_due_at, "notified": notified})
            return int(result.scalar_one())

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
