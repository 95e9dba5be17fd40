"""the low-allocation page walks its rows in order: ``license_product_total.allocation_tenths``
(the default sort key, allocation percent in tenths, as a generated column) and an index per
partner, product, band and state in (tenths, subscription) order that replaces 0021's
``ix_license_product_total_ratio``

The first page no longer sorts every flagged subscription of the product: each band's part
walks its range in the page's order and the parts are merged up to the page's size (SQLite: a
merge of ordered compound arms; PostgreSQL: a Merge Append under the Limit). With the state in
the key, the low-allocation KPIs read the ACTIVE rows of a band alone.

Revision ID: 0028_low_allocation_order
Revises: 0029_kpi_day_blocks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0028_low_allocation_order"
down_revision: str | None = "0029_kpi_day_blocks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ``tenths_sql(assigned, purchased)`` (db.queries.analytics.measures), in 64 bits so that no
# write can overflow on PostgreSQL. SQLite adds it VIRTUAL (ALTER TABLE cannot add a STORED
# one; the index keeps the values), PostgreSQL STORED (its only kind). The totals' triggers
# name the columns they write, so they never write this one.
TENTHS = (
    "CASE WHEN purchased > 0 THEN (CAST(assigned AS BIGINT) * 2000 + purchased)"
    " / (CAST(purchased AS BIGINT) * 2) ELSE 0 END"
)
LOW_INDEX = [
    *("partner_id", "product", "band", "state", "allocation_tenths", "subscription_id"),
    *("ratio", "start_date", "end_date", "purchased", "assigned", "used", "available"),
    "customer_id",
]
RATIO_INDEX = [
    *("partner_id", "product", "band", "ratio", "state", "start_date", "end_date"),
    *("purchased", "assigned", "used", "available", "customer_id", "subscription_id"),
]


def upgrade() -> None:
    stored = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "license_product_total",
        sa.Column(
            "allocation_tenths",
            sa.BigInteger(),
            sa.Computed(TENTHS, persisted=stored),
            nullable=True,
        ),
    )
    op.drop_index("ix_license_product_total_ratio", table_name="license_product_total")
    op.create_index("ix_license_product_total_low", "license_product_total", LOW_INDEX)
    op.execute("ANALYZE license_product_total")
    if stored:
        # The STORED column rewrote the table: its visibility map is gone, and with it every
        # index-only scan of it, until a VACUUM (``db.migrate.VACUUM_AFTER``).
        context.config.attributes.setdefault("vacuum_after", set()).add("license_product_total")


def downgrade() -> None:
    op.drop_index("ix_license_product_total_low", table_name="license_product_total")
    op.create_index("ix_license_product_total_ratio", "license_product_total", RATIO_INDEX)
    op.drop_column("license_product_total", "allocation_tenths")
    op.execute("ANALYZE license_product_total")
