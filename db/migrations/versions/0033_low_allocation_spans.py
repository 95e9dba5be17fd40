"""low allocation kept as KPI spans at a reference threshold per size band, so that the whole
partner's low-allocation figures read a few day edges instead of every flagged subscription
(issue 16)

A subscription's product total is flagged low at ``now`` when it is ACTIVE with purchased > 0,
``start + 30 days <= now < end`` and its ratio is below half the deployment-wide median of its
size band (DESIGN.md section 3). The medians move with every licence write of the deployment,
so they cannot be kept per partner; but at a fixed threshold the flag is an interval of
``now``, like every other KPI of 0021. ``license_low_reference`` holds one threshold per
(product, band) (``half``: half a median at some moment, written by
``db.low_reference.rebase_low_reference``); the span triggers keep, besides 0021's KPIs,

| KPI | a total counts while |
| --- | --- |
| ``<P>/LOW`` | start + 30 days <= now < end |
| ``ANY/LOW`` | the same, over both products (customers only) |

always with state ACTIVE, purchased > 0 and a ratio below the reference half of its (product,
band). A band without a reference row flags nothing. A dashboard adds the
kept figures to a correction over the rows whose flag differs between the reference and the
current medians (ratio between the two halves, read from ``ix_license_product_total_ratio``)
and their customers: exact at any reference, and next to nothing when the reference is the
current medians.

This migration creates the table empty (no LOW span yet: the correction answers everything,
exactly as before) and recreates the span triggers (SQLite) and the refresh function
(PostgreSQL) with the two KPIs.

Revision ID: 0033_low_allocation_spans
Revises: 0032_partner_write_lock
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0033_low_allocation_spans"
down_revision: str | None = "0032_partner_write_lock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIN_AGE = "30 days"  # db.queries.analytics.common.LOW_ALLOCATION_MIN_AGE
# PostgreSQL: as hours (a timestamptz plus '30 days' counts calendar days in the session's
# TimeZone: an hour off across a daylight-saving change). 0021's 90 days get the same fix here:
# the refresh function recreated below builds its windows with 0021's corrected expressions.
PG_MIN_AGE = "720 hours"
LOW_KPIS = ("MEETINGS/LOW", "CALLING/LOW", "ANY/LOW")
SPAN_TRIGGERS = ("license_kpi_spans_ins", "license_kpi_spans_upd", "license_kpi_spans_del")


def spans_module() -> ModuleType:
    """Migration 0021 (its dialects and its span select)."""
    path = Path(__file__).with_name("0021_license_kpi_spans.py")
    spec = importlib.util.spec_from_file_location("_migration_0021", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _aged(postgresql: bool, moment: str) -> str:
    """``moment + 30 days``, exact (SQLite: the stored text's whole seconds shifted, its
    fraction put back, as 0030 does for 90 days)."""
    if postgresql:
        return f"({moment} + interval '{PG_MIN_AGE}')"
    return f"(datetime(substr({moment}, 1, 19), '+{MIN_AGE}') || substr({moment}, 20))"


def low_intervals(postgresql: bool, where: str) -> str:
    """0021's interval rows (see its ``_intervals``) of the low-allocation KPIs at the
    reference thresholds, for the totals matching ``where``."""
    flagged = (
        "t.purchased > 0 AND t.ratio < (SELECT r.half FROM license_low_reference r "
        "WHERE r.product = t.product AND r.band = t.band)"
    )
    columns = {
        "t.product || '/LOW'": "t.purchased AS purchased, t.assigned AS assigned, "
        "t.used AS used, 1 AS line_rows",
        "'ANY/LOW'": "0 AS purchased, 0 AS assigned, 0 AS used, 0 AS line_rows",
    }
    return " UNION ALL ".join(
        f"SELECT t.partner_id, t.customer_id, {kpi} AS kpi, t.subscription_id, "
        f"{_aged(postgresql, 't.start_date')} AS lo, t.end_date AS hi, {values} "
        "FROM license_product_total t "
        "WHERE t.state = 'ACTIVE' AND t.product IN ('MEETINGS', 'CALLING') "
        f"AND {flagged} AND {where}"
        for kpi, values in columns.items()
    )


def spans_select(m: ModuleType, postgresql: bool, where: str, *, only_low: bool = False) -> str:
    """0021's span rows of the totals matching ``where`` with the low-allocation KPIs
    (``only_low``: those alone)."""
    d = m.POSTGRESQL if postgresql else m.SQLITE
    low = low_intervals(postgresql, where)
    intervals = low if only_low else f"{m._intervals(d, where)} UNION ALL {low}"
    return m.spans_select(d, where, intervals)


def _sqlite_refresh(m: ModuleType, row: str) -> str:
    return (
        f"DELETE FROM license_kpi_span WHERE customer_id = {row}.customer_id; "
        f"INSERT INTO license_kpi_span ({m.SPAN_COLUMNS}) "
        f"{spans_select(m, False, f't.customer_id = {row}.customer_id')};"
    )


def _pg_refresh(m: ModuleType, low: bool) -> str:
    select = (
        spans_select(m, True, "t.customer_id = ANY(affected)")
        if low
        else m.spans_select(m.POSTGRESQL, "t.customer_id = ANY(affected)")
    )
    return f"""
CREATE OR REPLACE FUNCTION license_kpi_refresh(affected integer[]) RETURNS void LANGUAGE sql AS $$
DELETE FROM license_kpi_span WHERE customer_id = ANY(affected);
INSERT INTO license_kpi_span ({m.SPAN_COLUMNS})
{select};
$$
"""


def _sqlite_triggers(m: ModuleType, low: bool) -> dict[str, tuple[str, str]]:
    if not low:
        return {name: m.SQLITE_TRIGGERS[name] for name in SPAN_TRIGGERS}
    return {
        "license_kpi_spans_ins": (
            "AFTER INSERT ON license_product_total",
            _sqlite_refresh(m, "NEW"),
        ),
        "license_kpi_spans_upd": (
            "AFTER UPDATE ON license_product_total",
            _sqlite_refresh(m, "OLD") + " " + _sqlite_refresh(m, "NEW"),
        ),
        "license_kpi_spans_del": (
            "AFTER DELETE ON license_product_total",
            _sqlite_refresh(m, "OLD"),
        ),
    }


def _install(low: bool) -> None:
    m = spans_module()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_refresh(m, low))
        return
    for name, (event, body) in _sqlite_triggers(m, low).items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW BEGIN {body} END")


def upgrade() -> None:
    op.create_table(
        "license_low_reference",
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("band", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("half", sa.Float(), nullable=False),
        # floor(1000 * half): where the ratio index's tenths ranges around it start and end.
        sa.Column("tenths", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("product", "band"),
    )
    _install(low=True)


def downgrade() -> None:
    _install(low=False)
    # The spans' rows go, and with them (the day, block and edge triggers) their edges.
    kpis = ", ".join(f"'{k}'" for k in LOW_KPIS)
    op.execute(f"DELETE FROM license_kpi_span WHERE kpi IN ({kpis})")
    for table in ("license_kpi_day", "license_kpi_block", "license_kpi_edge"):
        op.execute(f"DELETE FROM {table} WHERE kpi IN ({kpis})")
    op.drop_table("license_low_reference")
