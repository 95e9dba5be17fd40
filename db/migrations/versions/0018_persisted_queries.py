"""registered persisted queries (documents allowed by their SHA-256)

Revision ID: 0018_persisted_queries
Revises: 0011_partner_counters
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0018_persisted_queries"
down_revision: str | None = "0011_partner_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persisted_query",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("operation_name", sa.String(length=200), nullable=True),
        sa.Column("registered_at", UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("persisted_query")
