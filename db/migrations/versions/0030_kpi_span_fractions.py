"""license KPI spans on SQLite shift a date by 90 days without rounding its fraction of a second

Migration 0021's SQLite span triggers computed ``date - 90 days`` and ``date + 90 days`` as
``datetime(date, '-90 days') || <the date's fraction>``: ``datetime()`` of the whole stored text
rounds it to the millisecond, so a date at .9995 s or later went up a second before its own
fraction was put back (23:59:59.999999 minus 90 days gave 00:00:00.999999 of the next day). A
span that starts at renewal (or end) - 90 days, or ends at start + 90 days, was then about a
second late: at that instant the dashboard's figures (top KPIs, section KPIs) missed it while
its rows counted it. 0021 now shifts the date's first 19 characters (whole seconds); this
recreates its span triggers and rebuilds the spans of every customer with such a date.
PostgreSQL's interval arithmetic was exact: nothing to do there.

Revision ID: 0030_kpi_span_fractions
Revises: 0028_low_allocation_order
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0030_kpi_span_fractions"
down_revision: str | None = "0028_low_allocation_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPAN_TRIGGERS = ("license_kpi_spans_ins", "license_kpi_spans_upd", "license_kpi_spans_del")


def _spans() -> ModuleType:
    """Migration 0021 (its span triggers and their select, the fixed shift included)."""
    path = Path(__file__).with_name("0021_license_kpi_spans.py")
    spec = importlib.util.spec_from_file_location("_migration_0021", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    m = _spans()
    for name in SPAN_TRIGGERS:
        event, body = m.SQLITE_TRIGGERS[name]
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW BEGIN {body} END")
    # Customers with a date the old shift rounded (any fraction from .999 s: a superset), their
    # spans rebuilt by the fixed select; the day, block and edge triggers follow the rows.
    fractions = " OR ".join(
        f"substr({column}, 21, 3) = '999'" for column in ("start_date", "end_date", "renewal_date")
    )
    customers = f"SELECT DISTINCT customer_id FROM license_product_total WHERE {fractions}"
    op.execute(f"DELETE FROM license_kpi_span WHERE customer_id IN ({customers})")
    op.execute(
        f"INSERT INTO license_kpi_span ({m.SPAN_COLUMNS}) "
        f"{m.spans_select(m.SQLITE, f't.customer_id IN ({customers})')}"
    )


def downgrade() -> None:
    # The fixed triggers stay: the rounding they replace was a bug, not a format.
    pass
