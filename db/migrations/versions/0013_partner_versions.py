"""data versions per partner; calling aggregates per partner and week

Revision ID: 0013_partner_versions
Revises: 0011_partner_counters
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_partner_versions"
down_revision: str | None = "0011_partner_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every partner starts at version 0 (no row); the global epoch in app_meta stays.
    op.create_table(
        "partner_data_version",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id"),
    )


def downgrade() -> None:
    op.drop_table("partner_data_version")
