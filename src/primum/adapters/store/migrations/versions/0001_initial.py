"""Rollouts, their events and commands, and the fencing-token counter.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("estate_name", sa.String(), nullable=False),
        sa.Column("estate_digest", sa.String(), nullable=False),
        sa.Column("services", JSONDoc, nullable=False),
        sa.Column("estate", JSONDoc, nullable=False),
        sa.Column("release", JSONDoc, nullable=False),
        sa.Column("status", JSONDoc, nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("next_due_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_estate_name", "rollouts", ["estate_name"])
    op.create_index("ix_rollouts_phase", "rollouts", ["phase"])
    op.create_index("ix_rollouts_next_due_at", "rollouts", ["next_due_at"])

    op.create_table(
        "rollout_events",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("env", sa.String(), nullable=True),
        sa.Column("service", sa.String(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSONDoc, nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name="fk_rollout_events_rollout_id_rollouts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_events"),
    )
    op.create_index("ix_rollout_events_rollout_id", "rollout_events", ["rollout_id"])

    op.create_table(
        "rollout_commands",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("payload", JSONDoc, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("consumed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name="fk_rollout_commands_rollout_id_rollouts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_commands"),
    )
    op.create_index("ix_rollout_commands_rollout_id", "rollout_commands", ["rollout_id"])

    fence = op.create_table(
        "fence_sequence",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_fence_sequence_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_fence_sequence"),
    )
    op.bulk_insert(fence, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("fence_sequence")
    op.drop_index("ix_rollout_commands_rollout_id", table_name="rollout_commands")
    op.drop_table("rollout_commands")
    op.drop_index("ix_rollout_events_rollout_id", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("ix_rollouts_next_due_at", table_name="rollouts")
    op.drop_index("ix_rollouts_phase", table_name="rollouts")
    op.drop_index("ix_rollouts_estate_name", table_name="rollouts")
    op.drop_table("rollouts")
