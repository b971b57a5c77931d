"""The store's evidence face: log entries and proofs, verification, legal holds and purges.

The log itself (signing, appending in an event's transaction, checkpoints) is ``evidence.py``'s
``EvidenceLog``; this part is what an auditor, an export or a retention run asks of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from primum.adapters.store import db
from primum.adapters.store.base import StorePart
from primum.adapters.store.records import pinned_artifacts
from primum.adapters.store.tables import evidence_entries, legal_holds, rollout_events, rollouts

if TYPE_CHECKING:  # the evidence code is imported when a method needs it: reads of rollouts start faster
    from pathlib import Path

    from primum.adapters.evidence.keys import Keyring
    from primum.adapters.store.evidence import PendingEntry, StoredCheckpoint, StoredEntry
    from primum.adapters.store.logcheck import LogReport

_R = rollouts.c


class AuditPart(StorePart):
    """Read and prove the evidence log, append non-event evidence, hold and purge."""

    def append_evidence(self, entries: Sequence[PendingEntry], now: float) -> list[int]:
        """Append statements that are not events (CI evidence, purges) to the log; returns their indices."""
        with self._write() as conn:
            return self.evidence.append(conn, entries, now)

    def evidence_entries(self, rollout_id: str | None = None, artifacts: Sequence[str] = ()) -> list[StoredEntry]:
        """Log entries in order: all, or a release's and those about its artifact digests."""
        with self._reader.connect() as conn:
            return list(self.evidence.entries(conn, rollout_id=rollout_id, artifacts=artifacts))

    def evidence_snapshot(self) -> tuple[str, StoredCheckpoint | None, list[bytes]]:
        """The log's origin, newest checkpoint and the leaf hashes it covers, read consistently."""
        with self._engine.begin() as conn:
            origin = self.evidence.origin(conn)
            latest = self.evidence.latest_checkpoint(conn)
            hashes = self.evidence.leaf_hashes(conn, latest.size if latest else 0)
        return origin, latest, hashes

    def evidence_checkpoint(self) -> tuple[str, StoredCheckpoint | None]:
        """The log's origin and its newest signed checkpoint (None while the log is empty)."""
        with self._reader.connect() as conn:
            return self.evidence.origin(conn), self.evidence.latest_checkpoint(conn)

    def consistency(self, old_size: int) -> tuple[StoredCheckpoint, list[bytes]]:
        """The newest checkpoint and the RFC 9162 consistency proof from ``old_size`` to its size.

        The checkpoint and the leaf hashes the proof is computed from are read in one transaction, like
        :meth:`evidence_snapshot`. Verify the proof against the *signed* roots
        (``tlog.verify_consistency``): the store only computes it. Raises :class:`ConsistencyError` when
        the log cannot extend a tree of ``old_size`` entries: it is smaller, or entries below its newest
        checkpoint are missing.
        """
        from primum.adapters.store.evidence import ConsistencyError
        from primum.core.evidence.tlog import consistency_proof

        if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
            raise ValueError(f"old_size must be a tree size (an int >= 0), not {old_size!r}")
        with self._engine.begin() as conn:
            latest = self.evidence.latest_checkpoint(conn)
            if latest is None:
                raise ConsistencyError(f"the evidence log is empty: it has no checkpoint to extend a tree of "
                                       f"size {old_size}")
            if old_size > latest.size:
                raise ConsistencyError(f"the log's newest checkpoint covers {latest.size} entries, fewer than the "
                                       f"{old_size} of the tree asked about")
            hashes = self.evidence.leaf_hashes(conn, latest.size)
        if len(hashes) != latest.size:
            raise ConsistencyError(f"the store holds {len(hashes)} leaf hashes below the newest checkpoint's size "
                                   f"{latest.size}: entries were deleted (`primum evidence verify` names the first)")
        return latest, consistency_proof(hashes, old_size, latest.size)

    def verify_evidence(self, keyring: Keyring | None = None, witness_dirs: Sequence[Path] | None = None) -> LogReport:
        """Verify the whole evidence log (signatures, checkpoints, Merkle tree) and that every event, approval
        and break-glass row has its entry; names the first bad entry. ``witness_dirs`` (default: the store's
        own witness directory) hold checkpoints kept outside the database: a wipe or a rollback fails."""
        from primum.adapters.store.logcheck import verify_stored_log

        if witness_dirs is None:
            witness_dirs = [] if self._witness is None else [self._witness.directory]
        keyring = keyring or self.evidence.keys.keyring()
        # One snapshot for the log and the rows it is compared with, taking no write lock: a deferred
        # transaction on SQLite (WAL), REPEATABLE READ on PostgreSQL. Under READ COMMITTED an event
        # committed between reading the log and reading the events would look like a row without entry.
        options: dict[str, Any] = {db.SQLITE_BEGIN_OPTION: "DEFERRED"}
        if self._postgres:
            options["isolation_level"] = "REPEATABLE READ"
        with self._engine.connect() as raw:
            conn = raw.execution_options(**options)
            with conn.begin():
                return verify_stored_log(conn, keyring, witness_dirs=witness_dirs)

    def add_legal_hold(self, rollout_id: str, *, reason: str, actor: str, at: float) -> int:
        with self._engine.begin() as conn:
            return int(conn.execute(insert(legal_holds).returning(legal_holds.c.id), {
                "rollout_id": rollout_id, "reason": reason, "actor": actor, "at": at}).scalar_one())

    def release_legal_hold(self, rollout_id: str, *, actor: str, at: float) -> int:
        """Release every open hold on a release; returns how many were open."""
        c = legal_holds.c
        with self._engine.begin() as conn:
            result = conn.execute(update(legal_holds).where(c.rollout_id == rollout_id, c.released_at.is_(None))
                                  .values(released_at=at, released_by=actor))
            return int(result.rowcount)

    def legal_holds(self, rollout_id: str | None = None, *, open_only: bool = True) -> list[dict[str, Any]]:
        c = legal_holds.c
        query = select(legal_holds).order_by(c.id)
        if rollout_id is not None:
            query = query.where(c.rollout_id == rollout_id)
        if open_only:
            query = query.where(c.released_at.is_(None))
        with self._reader.connect() as conn:
            return [dict(row._asdict()) for row in conn.execute(query)]

    def purge_evidence(self, *, before: float, now: float, dry_run: bool = False) -> list[int]:
        """Drop the envelopes of entries recorded before ``before`` whose release has no open legal hold.

        Only the envelope bytes go: the leaf hash stays, so every checkpoint still verifies and the
        entries around a purged one keep their inclusion proofs. The event rows those envelopes
        recorded go too (the same content must not outlive its retention elsewhere), and so does
        the summary of purged CI evidence. CI evidence about an artifact is kept while any release
        that pins that artifact is held. Returns the purged indices.
        """
        c = evidence_entries.c
        with self._engine.begin() as conn:
            held = {r for (r,) in conn.execute(select(legal_holds.c.rollout_id)
                                               .where(legal_holds.c.released_at.is_(None)))}
            held_artifacts: set[str] = set()
            for (release,) in conn.execute(select(_R.release).where(_R.id.in_(list(held)))):
                held_artifacts.update(pin["digest"] for pin in pinned_artifacts(release).values())
            rows = conn.execute(select(c.idx, c.rollout_id, c.artifact, c.event_id).where(
                c.at < before, c.envelope.is_not(None)).order_by(c.idx)).all()
            chosen = [r for r in rows if r.rollout_id not in held and r.artifact not in held_artifacts]
            purge = [int(r.idx) for r in chosen]
            events = [int(r.event_id) for r in chosen if r.event_id is not None]
            if purge and not dry_run:
                for i in range(0, len(purge), 500):
                    conn.execute(update(evidence_entries).where(c.idx.in_(purge[i:i + 500]))
                                 .values(envelope=None, summary=None, purged_at=now))
                for i in range(0, len(events), 500):
                    conn.execute(rollout_events.delete().where(rollout_events.c.id.in_(events[i:i + 500])))
        return purge

