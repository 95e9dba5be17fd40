"""index customers by the admin who provisioned them (the assigned scope reads it)

Revision ID: 0006_customer_provisioned
Revises: 0005_launch_tokens
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_customer_provisioned"
down_revision: str | None = "0005_launch_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_provisioned_by", ["provisioned_by_admin_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_provisioned_by")
