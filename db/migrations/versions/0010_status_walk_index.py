"""status spans carry the customer's name key, indexed per partner and status in name order

Revision ID: 0010_status_walk
Revises: 0009_tag_walk
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_status_walk"
down_revision: str | None = "0009_tag_walk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A directory page filtered by one status, in name order, walks that status's spans in name
    # order and probes the other filters per customer (db.queries.customers), as a page filtered
    # by one tag walks the tag's links (0009). The validity columns come last so that "holds
    # now" is tested from the index alone.
    with op.batch_alter_table("customer_status_span", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE customer_status_span SET name_key = (SELECT customer.name_key FROM customer "
        "WHERE customer.id = customer_status_span.customer_id)"
    )
    with op.batch_alter_table("customer_status_span", schema=None) as batch_op:
        batch_op.alter_column("name_key", existing_type=sa.String(length=200), nullable=False)
        batch_op.create_index(
            "ix_status_span_name",
            ["partner_id", "status", "name_key", "customer_id", "valid_to", "valid_from"],
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_status_span", schema=None) as batch_op:
        batch_op.drop_index("ix_status_span_name")
        batch_op.drop_column("name_key")
