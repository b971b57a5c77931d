"""When a rollout's lease was last renewed, so a takeover can record how long the rollout went unattended
(from the old holder's last renewal to the new holder's first tick) as evidence.

Revision ID: 0004_logcheck
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_logcheck"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("lease_renewed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("lease_renewed_at")
