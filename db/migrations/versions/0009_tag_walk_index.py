"""customer tags carry the customer's name key; status spans covered per customer

Revision ID: 0009_tag_walk
Revises: 0008_status_span_now
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_tag_walk"
down_revision: str | None = "0008_status_span_now"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A directory page filtered by a tag, in name order, walks the tag's links in that order and
    # probes the other filters per customer (db.queries.customers): its cost is then set by how
    # selective the other filters are, not by how many customers carry the tag. That needs the
    # sort key beside the link. Customer names are written once, when the customer is created.
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE customer_tag SET name_key = "
        "(SELECT customer.name_key FROM customer WHERE customer.id = customer_tag.customer_id)"
    )
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.alter_column("name_key", existing_type=sa.String(length=200), nullable=False)
        batch_op.create_index("ix_customer_tag_name", ["tag_id", "name_key", "customer_id"])
        batch_op.drop_index("ix_customer_tag_tag")
    # The per-customer status probe of that walk (and the statuses loader) test "holds now" from
    # the index alone.
    with op.batch_alter_table("customer_status_span", schema=None) as batch_op:
        batch_op.create_index(
            "ix_status_span_customer_now", ["customer_id", "status", "valid_to", "valid_from"]
        )
        batch_op.drop_index("ix_status_span_customer")


def downgrade() -> None:
    with op.batch_alter_table("customer_status_span", schema=None) as batch_op:
        batch_op.create_index("ix_status_span_customer", ["customer_id", "status"])
        batch_op.drop_index("ix_status_span_customer_now")
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.create_index("ix_customer_tag_tag", ["tag_id", "customer_id"])
        batch_op.drop_index("ix_customer_tag_name")
        batch_op.drop_column("name_key")
