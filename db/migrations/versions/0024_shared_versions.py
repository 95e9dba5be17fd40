"""shared data versions per partner: a partner's writes of deployment-wide inputs (the
low-allocation medians read every partner's subscriptions) move its own row, not a global one

Revision ID: 0024_shared_versions
Revises: 0019_webhooks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_shared_versions"
down_revision: str | None = "0019_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "partner_data_version",
        sa.Column("shared_version", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("partner_data_version") as batch:
        batch.drop_column("shared_version")
