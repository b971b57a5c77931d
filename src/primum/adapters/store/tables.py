"""SQLAlchemy tables of the store. Times are float epoch seconds given by callers.

The schema itself is created by the Alembic migrations in ``migrations/``; keep
both in step when a table changes.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDoc: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one.
AutoId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Rollout(Base):
    """One release being rolled out; the row a controller leases."""

    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String, primary_key=True)  # the release id
    digest: Mapped[str] = mapped_column(String)
    estate_name: Mapped[str] = mapped_column(String, index=True)
    estate_digest: Mapped[str] = mapped_column(String)
    services: Mapped[list[str]] = mapped_column(JSONDoc)
    estate: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    release: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    status: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    phase: Mapped[str] = mapped_column(String, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    next_due_at: Mapped[float] = mapped_column(Float, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String)
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RolloutEvent(Base):
    """Append-only log of what happened to a rollout."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String)
    env: Mapped[str | None] = mapped_column(String)
    service: Mapped[str | None] = mapped_column(String)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc)


class RolloutCommand(Base):
    """An operator's request (promote, abort, retry) waiting for a controller."""

    __tablename__ = "rollout_commands"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[float] = mapped_column(Float)
    consumed_at: Mapped[float | None] = mapped_column(Float)


class Approval(Base):
    """An approve or reject decision on one release digest for one environment."""

    __tablename__ = "approvals"
    __table_args__ = (CheckConstraint("decision IN ('approve', 'reject')", name="decision"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    env: Mapped[str] = mapped_column(String)
    digest: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String)
    decision: Mapped[str] = mapped_column(String)
    comment: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(JSONDoc)  # the approver's roles when they decided
    owned_services: Mapped[list[str]] = mapped_column(JSONDoc)
    at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)


class BreakGlass(Base):
    """An emergency use of the break-glass path, and its retrospective review."""

    __tablename__ = "break_glass"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String)
    justification: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)
    review_due_at: Mapped[float] = mapped_column(Float)
    notified: Mapped[str] = mapped_column(Text)  # what the webhook answered, or why it was not sent
    reviewed_at: Mapped[float | None] = mapped_column(Float)
    reviewed_by: Mapped[str | None] = mapped_column(String)
    review_notes: Mapped[str | None] = mapped_column(Text)


class FenceSequence(Base):
    """Single-row counter issuing fencing tokens, increasing across all rollouts."""

    __tablename__ = "fence_sequence"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)


class EvidenceHead(Base):
    """Single row: the transparency log's origin, size and compact Merkle range (hex node hashes)."""

    __tablename__ = "evidence_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String)
    size: Mapped[int] = mapped_column(BigInteger)
    nodes: Mapped[str] = mapped_column(Text)  # space-separated hex hashes, largest subtree first
    updated_at: Mapped[float] = mapped_column(Float)


class EvidenceEntry(Base):
    """One signed DSSE envelope at position ``idx`` of the transparency log."""

    __tablename__ = "evidence_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    rollout_id: Mapped[str | None] = mapped_column(String, index=True)  # no FK: evidence outlives rows
    artifact: Mapped[str | None] = mapped_column(String, index=True)  # "sha256:..." for CI evidence
    kind: Mapped[str] = mapped_column(String)
    predicate_type: Mapped[str] = mapped_column(String)
    at: Mapped[float] = mapped_column(Float)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[str | None] = mapped_column(Text)  # JSON summary of CI evidence for the policy input
    envelope: Mapped[bytes | None] = mapped_column(LargeBinary)  # None once purged under retention
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    purged_at: Mapped[float | None] = mapped_column(Float)


class EvidenceCheckpoint(Base):
    """A signed C2SP checkpoint of the log at ``size`` entries."""

    __tablename__ = "evidence_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String)  # DSSE key id (sha256 of the public key) of the signer
    at: Mapped[float] = mapped_column(Float)


class LegalHold(Base):
    """A legal hold on a release's evidence: nothing of it is purged while the hold is open."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(String, index=True)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String)
    at: Mapped[float] = mapped_column(Float)
    released_at: Mapped[float | None] = mapped_column(Float)
    released_by: Mapped[str | None] = mapped_column(String)


class ArtifactPromotion(Base):
    """An artifact digest of a service passed an environment (its item succeeded there)."""

    __tablename__ = "artifact_promotions"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String)
    digest: Mapped[str] = mapped_column(String, index=True)
    env: Mapped[str] = mapped_column(String)
    rollout_id: Mapped[str] = mapped_column(String)
    at: Mapped[float] = mapped_column(Float)


rollouts = cast(Table, Rollout.__table__)
rollout_events = cast(Table, RolloutEvent.__table__)
rollout_commands = cast(Table, RolloutCommand.__table__)
fence_sequence = cast(Table, FenceSequence.__table__)
approvals = cast(Table, Approval.__table__)
break_glass = cast(Table, BreakGlass.__table__)
evidence_head = cast(Table, EvidenceHead.__table__)
evidence_entries = cast(Table, EvidenceEntry.__table__)
evidence_checkpoints = cast(Table, EvidenceCheckpoint.__table__)
legal_holds = cast(Table, LegalHold.__table__)
artifact_promotions = cast(Table, ArtifactPromotion.__table__)
