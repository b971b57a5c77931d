"""Approvals and rejections (bound to a release digest and an environment), and break-glass uses
with their retrospective reviews.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("env", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("roles", JSONDoc, nullable=False),
        sa.Column("owned_services", JSONDoc, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_approvals_decision"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name="fk_approvals_rollout_id_rollouts",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
    )
    op.create_index("ix_approvals_rollout_id", "approvals", ["rollout_id"])

    op.create_table(
        "break_glass",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("review_due_at", sa.Float(), nullable=False),
        sa.Column("notified", sa.Text(), nullable=False),
        sa.Column("reviewed_at", sa.Float(), nullable=True),
        sa.Column("reviewed_by", sa.String(), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name="fk_break_glass_rollout_id_rollouts",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_break_glass"),
    )
    op.create_index("ix_break_glass_rollout_id", "break_glass", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("ix_break_glass_rollout_id", table_name="break_glass")
    op.drop_table("break_glass")
    op.drop_index("ix_approvals_rollout_id", table_name="approvals")
    op.drop_table("approvals")
