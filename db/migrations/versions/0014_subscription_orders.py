"""order and invoice numbers unique per partner; order action/status and invoice status enums

Revision ID: 0014_subscription_orders
Revises: 0012_license_totals
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_subscription_orders"
down_revision: str | None = "0012_license_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The enums as of this revision (db.enums OrderAction, OrderStatus, InvoiceStatus), frozen here.
ENUMS = {
    ("subscription_order", "action"): (
        "NEW",
        "RENEWAL",
        "ADD_LICENSES",
        "REMOVE_LICENSES",
        "ORDER_SETUP",
        "AUTO_RENEW_ON",
        "AUTO_RENEW_OFF",
        "CANCELLATION_AT_TERM_END",
        "CANCELLATION",
        "CONVERSION",
        "TRIAL_START",
        "TRIAL_EXTENSION",
    ),
    ("subscription_order", "status"): ("IN_PROGRESS", "COMPLETED", "CANCELLED"),
    ("invoice", "status"): ("OPEN", "PAID", "OVERDUE"),
}
NUMBERS = {
    "subscription_order": ("order_number", "ux_subscription_order_partner_number"),
    "invoice": ("invoice_number", "ux_invoice_partner_number"),
}


def upgrade() -> None:
    bind = op.get_bind()
    # Strings become enums: every value the code ever wrote is already one; spelling variants
    # (case, spaces) are folded, and anything else stops the upgrade rather than be guessed.
    for (table, column), values in ENUMS.items():
        op.execute(
            f"UPDATE {table} SET {column} = UPPER(TRIM({column})) "
            f"WHERE {column} <> UPPER(TRIM({column}))"
        )
        allowed = ", ".join(f"'{v}'" for v in values)
        unknown = bind.execute(
            sa.text(f"SELECT DISTINCT {column} FROM {table} WHERE {column} NOT IN ({allowed})")
        ).scalars()
        found = sorted(str(v) for v in unknown)
        if found:
            raise RuntimeError(
                f"{table}.{column} holds values outside {list(values)}: {found}; map them first"
            )
    # Numbers unique per partner: a repeated number (only random ones could repeat) keeps its
    # first row and the others get their id appended, then the unique index guards them.
    for table, (column, index) in NUMBERS.items():
        op.execute(
            f"UPDATE {table} SET {column} = {column} || '-' || CAST(id AS VARCHAR(20)) "
            f"WHERE id NOT IN (SELECT MIN(id) FROM {table} GROUP BY partner_id, {column})"
        )
        op.create_index(index, table, ["partner_id", column], unique=True)


def downgrade() -> None:
    for table, (_, index) in NUMBERS.items():
        op.drop_index(index, table_name=table)
