"""covering index for the weekly license trend

Revision ID: 0007_snapshot_covering
Revises: 0006_customer_provisioned
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_snapshot_covering"
down_revision: str | None = "0006_customer_provisioned"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [
    "partner_id",
    "product",
    "week_start",
    "subscription_id",
    "purchased",
    "assigned",
    "used",
]


def upgrade() -> None:
    # The trend sums purchased/assigned/used per week for a partner and product: with every
    # column in the index it is answered from the index alone (2.7 s -> 0.44 s at 100,000
    # customers on SQLite).
    with op.batch_alter_table("license_snapshot", schema=None) as batch_op:
        batch_op.create_index("ix_license_snapshot_trend", COLUMNS, unique=False)
        batch_op.drop_index("ix_license_snapshot_partner_week")


def downgrade() -> None:
    with op.batch_alter_table("license_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            "ix_license_snapshot_partner_week", ["partner_id", "product", "week_start"]
        )
        batch_op.drop_index("ix_license_snapshot_trend")
