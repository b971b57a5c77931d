"""Proven identities: the signed envelope of each approval, rejection and break-glass use, and the
evidence event that logged it (the gate counts a record only with both).

Revision ID: 0005_identities
Revises: 0004_logcheck
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_identities"
down_revision = "0004_logcheck"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
TABLES = ("approvals", "break_glass")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("envelope", JSONDoc, nullable=True))
            batch.add_column(sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                       nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("event_id")
            batch.drop_column("envelope")
