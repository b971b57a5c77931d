"""The gate's facts, read in one snapshot: what ``core.governance.gate.evaluate_gate`` decides from.

One connection, one read transaction (REPEATABLE READ on PostgreSQL, a deferred transaction on SQLite,
which reads one WAL snapshot), so the approvals, break-glass uses, promotions, CI evidence and the
decision last logged are all as of the same instant: an approval recorded between two of these reads
cannot be half seen. Nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from primum.adapters.store import db
from primum.adapters.store.records import RolloutRecord, pinned_artifacts
from primum.adapters.store.tables import (
    approvals,
    artifact_promotions,
    break_glass,
    evidence_entries,
    rollout_events,
)
from primum.core.governance.approvals import Decision
from primum.core.governance.gate import BreakGlassUse, GateFacts
from primum.core.governance.identities import identities_from_record
from primum.core.governance.signatures import logged_digest
from primum.core.model.rollout import RolloutStatus

if TYPE_CHECKING:
    from primum.adapters.store.repository import Store

_E = rollout_events.c


def _snapshot(conn: Connection) -> Connection:
    """The connection's next transaction reads one consistent snapshot and takes no write lock."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return conn.execution_options(**{db.SQLITE_BEGIN_OPTION: "DEFERRED"})


def load_gate_facts(store: Store, record: RolloutRecord, env: str) -> GateFacts:
    """Every fact the gate of ``record`` in ``env`` depends on, read in one transaction."""
    status = RolloutStatus.model_validate(record.status)
    entering = tuple((item.service, item.new.digest) for item in status.items if item.env == env)
    pins = {name: pin["digest"] for name, pin in pinned_artifacts(record.release).items()}
    with store._engine.connect() as raw:
        conn = _snapshot(raw)
        with conn.begin():
            author = _author(conn, record.id)
            decisions = tuple(_approvals(conn, record.id))
            uses = tuple(_break_glass(conn, record.id))
            passed = _passed(conn, entering)
            evidence = _evidence(conn, pins)
            last = conn.execute(
                select(_E.data).where(_E.rollout_id == record.id, _E.kind == "policy_decision", _E.env == env)
                .order_by(_E.id.desc()).limit(1)).scalar()
            reported = frozenset(_reported(conn, record.id))
            overridden = conn.execute(
                select(_E.id).where(_E.rollout_id == record.id, _E.kind == "freeze_override", _E.env == env)
                .limit(1)).first() is not None
    fingerprint = last.get("fingerprint") if isinstance(last, dict) else None
    return GateFacts(rollout_id=record.id, env=env, digest=record.digest, services=tuple(record.services),
                     started_at=status.started_at, author=author, approvals=decisions, break_glass=uses,
                     entering=entering, passed=passed, evidence=evidence,
                     last_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
                     freeze_overridden=overridden, identities=identities_from_record(record.release.get("identities")),
                     reported=reported)


def _author(conn: Connection, rollout_id: str) -> str | None:
    """Who submitted the release (the actor of its first ``submitted`` event)."""
    data = conn.execute(select(_E.data).where(_E.rollout_id == rollout_id, _E.kind == "submitted")
                        .order_by(_E.id).limit(1)).scalar()
    actor = data.get("actor") if isinstance(data, dict) else None
    return actor if isinstance(actor, str) else None


def _approvals(conn: Connection, rollout_id: str) -> list[Decision]:
    """The approval rows, each with its envelope and the envelope digest its evidence entry logged (or None)."""
    c = approvals.c
    rows = conn.execute(select(approvals).where(c.rollout_id == rollout_id).order_by(c.id)).all()
    logged = _logged(conn, [r.event_id for r in rows if r.event_id is not None])
    return [Decision(actor=r.actor, decision=r.decision, env=r.env, digest=r.digest, at=r.at,
                     roles=tuple(r.roles or ()), owned_services=tuple(r.owned_services or ()), comment=r.comment,
                     expires_at=r.expires_at, id=r.id, envelope=r.envelope, logged=logged.get(r.event_id))
            for r in rows]


def _break_glass(conn: Connection, rollout_id: str) -> list[BreakGlassUse]:
    c = break_glass.c
    rows = conn.execute(select(c.id, c.actor, c.digest, c.at, c.envelope, c.event_id)
                        .where(c.rollout_id == rollout_id).order_by(c.id)).all()
    logged = _logged(conn, [r.event_id for r in rows if r.event_id is not None])
    return [BreakGlassUse(actor=r.actor, digest=r.digest, at=r.at, id=r.id, envelope=r.envelope,
                          logged=logged.get(r.event_id)) for r in rows]


def _logged(conn: Connection, event_ids: Sequence[int]) -> dict[int, str]:
    """For each event id: the digest of the signed envelope its evidence entry records (absent: no entry)."""
    if not event_ids:
        return {}
    c = evidence_entries.c
    out: dict[int, str] = {}
    for event_id, envelope in conn.execute(select(c.event_id, c.envelope).where(c.event_id.in_(sorted(event_ids)))):
        found = logged_digest(envelope)
        if found is not None:
            out[int(event_id)] = found
    return out


def _reported(conn: Connection, rollout_id: str) -> list[tuple[str, int]]:
    """The records already reported as not counting (``record_ignored`` events): (table, id)."""
    out = []
    for data in conn.execute(select(_E.data).where(_E.rollout_id == rollout_id, _E.kind == "record_ignored")).scalars():
        if isinstance(data, dict) and isinstance(data.get("id"), int):
            out.append((str(data.get("record")), data["id"]))
    return out


def _passed(conn: Connection, entering: Sequence[tuple[str, str]]) -> dict[tuple[str, str], frozenset[str]]:
    """For each entering ``(service, digest)``: the environments it passed, in any release."""
    if not entering:
        return {}
    c = artifact_promotions.c
    wanted = set(entering)
    out: dict[tuple[str, str], set[str]] = {pair: set() for pair in wanted}
    for service, digest, env in conn.execute(select(c.service, c.digest, c.env)
                                             .where(c.digest.in_(sorted({d for _, d in wanted})))):
        if (service, digest) in wanted:
            out[(service, digest)].add(env)
    return {pair: frozenset(envs) for pair, envs in out.items()}


def ci_evidence(store: Store, pins: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per service (``pins``: service -> artifact digest): the summary of its CI evidence, as a gate sees it
    (``primum policy eval`` shows a release file what the controller would see)."""
    with store._reader.connect() as conn:
        return _evidence(conn, pins)


def _evidence(conn: Connection, pins: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per service: the summary of the CI evidence ingested for its pinned artifact digest."""
    from primum.adapters.evidence.ingest import evidence_summary  # loaded only when a gate runs

    found: dict[str, list[tuple[str, Any]]] = {digest: [] for digest in pins.values()}
    if found:
        c = evidence_entries.c
        for artifact, kind, summary in conn.execute(
                select(c.artifact, c.kind, c.summary)
                .where(c.artifact.in_(sorted(found)), c.summary.is_not(None)).order_by(c.idx)):
            found[artifact].append((kind, json.loads(summary)))
    return {name: evidence_summary(found[digest]) for name, digest in pins.items()}
