"""The evidence transparency log: signed envelopes in log order, the log head (compact Merkle range),
signed checkpoints, legal holds, and which artifact digests passed which environment.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import os
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    head = op.create_table(
        "evidence_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("nodes", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_evidence_head_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_head"),
    )
    # The log's origin names it in every checkpoint; unique per installation unless set.
    origin = os.environ.get("PRIMUM_LOG_ORIGIN") or f"primum.local/evidence/{uuid.uuid4().hex[:12]}"
    op.bulk_insert(head, [{"id": 1, "origin": origin, "size": 0, "nodes": "", "updated_at": 0.0}])

    op.create_table(
        "evidence_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=True),
        sa.Column("artifact", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("predicate_type", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("purged_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("idx", name="pk_evidence_entries"),
    )
    op.create_index("ix_evidence_entries_rollout_id", "evidence_entries", ["rollout_id"])
    op.create_index("ix_evidence_entries_artifact", "evidence_entries", ["artifact"])

    op.create_table(
        "evidence_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_evidence_checkpoints"),
    )

    op.create_table(
        "legal_holds",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.Column("released_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_legal_holds"),
    )
    op.create_index("ix_legal_holds_rollout_id", "legal_holds", ["rollout_id"])

    op.create_table(
        "artifact_promotions",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("env", sa.String(), nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_promotions"),
    )
    op.create_index("ix_artifact_promotions_digest", "artifact_promotions", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_artifact_promotions_digest", table_name="artifact_promotions")
    op.drop_table("artifact_promotions")
    op.drop_index("ix_legal_holds_rollout_id", table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_table("evidence_checkpoints")
    op.drop_index("ix_evidence_entries_artifact", table_name="evidence_entries")
    op.drop_index("ix_evidence_entries_rollout_id", table_name="evidence_entries")
    op.drop_table("evidence_entries")
    op.drop_table("evidence_head")
