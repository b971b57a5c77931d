"""SQLAlchemy tables of the store. Times are float epoch seconds given by callers.

The schema itself is created by the Alembic migrations in ``migrations/``; keep
both in step when a table changes (``tests/store/test_tables_match_migrations.py`` fails when they drift).
Core tables, not ORM classes: the store issues Core statements only, and the ORM would add a tenth of a
second to every command's start-up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class JSONDoc(TypeDecorator[Any]):
    """JSON documents: JSONB on PostgreSQL, JSON elsewhere. A decorator rather than
    ``JSON().with_variant(JSONB(), ...)`` so that a SQLite store never imports the PostgreSQL dialect
    (a twentieth of a second of every command's start-up)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

class RedactedText(TypeDecorator[str]):
    """Free text (comments, justifications, notes, reasons): secrets and patient identifiers are replaced by
    ``[REDACTED:kind]`` markers in every value bound to the column, by any INSERT or UPDATE, so no caller
    can forget it (issue 13.5: nothing of them at rest). The schema type is plain TEXT."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if not value:
            return value
        from primum.core.evidence.redact import redact_text  # on the first write: reads start faster

        return redact_text(value)[0]


class RedactedDoc(JSONDoc):
    """A JSON document holding user-supplied text (a release, an estate, a command's payload), redacted like
    :class:`RedactedText` on every write: strings, keys, and values under keys naming a secret or PHI
    (a reference to a secret, ``{from_env: NAME}``, stays)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return value
        from primum.core.evidence.redact import redact

        return redact(value)[0]


# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one.
AutoId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")


metadata = MetaData(naming_convention=NAMING_CONVENTION)


# One release being rolled out; the row a controller leases.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String, primary_key=True),  # the release id
    Column("digest", String, nullable=False),
    Column("estate_name", String, index=True, nullable=False),
    Column("estate_digest", String, nullable=False),
    Column("services", JSONDoc, nullable=False),
    Column("estate", RedactedDoc, nullable=False),
    Column("release", RedactedDoc, nullable=False),
    Column("status", JSONDoc, nullable=False),
    Column("phase", String, index=True, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("next_due_at", Float, index=True, nullable=False),
    Column("lease_owner", String),
    Column("lease_expires_at", Float),
    Column("lease_renewed_at", Float),  # the holder's last claim, renewal or persist: a takeover's start
    Column("fencing_token", BigInteger, default=0, server_default="0", nullable=False),
    Column("revision", Integer, default=0, server_default="0", nullable=False),
)


# Append-only log of what happened to a rollout.
rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("rollout_id", ForeignKey("rollouts.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String, nullable=False),
    Column("env", String),
    Column("service", String),
    Column("message", Text, nullable=False),
    Column("data", JSONDoc, nullable=False),
)


# An operator's request (promote, abort, retry) waiting for a controller.
rollout_commands = Table(
    "rollout_commands",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("rollout_id", ForeignKey("rollouts.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("kind", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("payload", RedactedDoc, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("consumed_at", Float),
)


# An approve or reject decision on one release digest for one environment.
approvals = Table(
    "approvals",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("rollout_id", ForeignKey("rollouts.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("env", String, nullable=False),
    Column("digest", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("decision", String, nullable=False),
    Column("comment", RedactedText, nullable=False),
    Column("roles", JSONDoc, nullable=False),  # the approver's roles when they decided
    Column("owned_services", JSONDoc, nullable=False),
    Column("at", Float, nullable=False),
    Column("expires_at", Float),
    Column("envelope", JSONDoc),  # the approver's signed DSSE envelope (core/governance/signatures.py)
    Column("event_id", AutoId),  # the event (and so the evidence entry) that logged it
    CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
)


# An emergency use of the break-glass path, and its retrospective review.
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("rollout_id", ForeignKey("rollouts.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("digest", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("justification", RedactedText, nullable=False),
    Column("at", Float, nullable=False),
    Column("review_due_at", Float, nullable=False),
    Column("notified", RedactedText, nullable=False),  # what the webhook answered, or why it was not sent
    Column("reviewed_at", Float),
    Column("reviewed_by", String),
    Column("review_notes", RedactedText),
    Column("envelope", JSONDoc),  # the user's signed DSSE envelope
    Column("event_id", AutoId),  # the event (and so the evidence entry) that logged it
)


# Single-row counter issuing fencing tokens, increasing across all rollouts.
fence_sequence = Table(
    "fence_sequence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)


# Single row: the transparency log's origin, size and compact Merkle range (hex node hashes).
evidence_head = Table(
    "evidence_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("origin", String, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("nodes", Text, nullable=False),  # space-separated hex hashes, largest subtree first
    Column("updated_at", Float, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)


# One signed DSSE envelope at position ``idx`` of the transparency log.
evidence_entries = Table(
    "evidence_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("rollout_id", String, index=True),  # no FK: evidence outlives rows
    Column("artifact", String, index=True),  # "sha256:..." for CI evidence
    Column("kind", String, nullable=False),
    Column("predicate_type", String, nullable=False),
    Column("at", Float, nullable=False),
    Column("event_id", BigInteger),
    Column("summary", Text),  # JSON summary of CI evidence for the policy input
    Column("envelope", LargeBinary),  # None once purged under retention
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("purged_at", Float),
)


# A signed C2SP checkpoint of the log at ``size`` entries.
evidence_checkpoints = Table(
    "evidence_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("key_id", String, nullable=False),  # DSSE key id (sha256 of the public key) of the signer
    Column("at", Float, nullable=False),
)


# A legal hold on a release's evidence: nothing of it is purged while the hold is open.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("rollout_id", String, index=True, nullable=False),
    Column("reason", RedactedText, nullable=False),
    Column("actor", String, nullable=False),
    Column("at", Float, nullable=False),
    Column("released_at", Float),
    Column("released_by", String),
)


# An artifact digest of a service passed an environment (its item succeeded there).
artifact_promotions = Table(
    "artifact_promotions",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("service", String, nullable=False),
    Column("digest", String, index=True, nullable=False),
    Column("env", String, nullable=False),
    Column("rollout_id", String, nullable=False),
    Column("at", Float, nullable=False),
)
