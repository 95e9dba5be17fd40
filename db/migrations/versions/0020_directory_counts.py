"""directory counts maintained by triggers: customers per partner, status span edges per
partner, status and day (issue 16, ``totalCount``)

Revision ID: 0020_directory_counts
Revises: 0014_subscription_orders
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_directory_counts"
down_revision: str | None = "0014_subscription_orders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_day(moment: str) -> str:
    """db.directory_counts.day_number on SQLite's stored text ('YYYY-MM-DD HH:MM:SS...')."""
    return f"CAST(julianday(substr({moment}, 1, 10)) - 2440587.5 AS INTEGER)"


def _pg_day(moment: str) -> str:
    return f"(({moment} AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"


def _edges(source: str, day: Callable[[str], str], sign: str = "1") -> str:
    """(partner_id, status, day, starts, ends) of the spans in ``source``, one row per edge."""
    return (
        f"SELECT partner_id, status, {day('valid_from')} AS day, {sign} AS starts, 0 AS ends "
        f"FROM {source} UNION ALL "
        f"SELECT partner_id, status, {day('valid_to')}, 0, {sign} FROM {source}"
    )


def _edge_backfill(day: Callable[[str], str]) -> str:
    return (
        "INSERT INTO status_span_day (partner_id, status, day, starts, ends) "
        "SELECT partner_id, status, day, SUM(starts), SUM(ends) "
        f"FROM ({_edges('customer_status_span', day)}) e GROUP BY partner_id, status, day"
    )


CUSTOMER_BACKFILL = (
    "INSERT INTO partner_customer_count (partner_id, customers) "
    "SELECT partner_id, COUNT(*) FROM customer GROUP BY partner_id"
)

# --- SQLite: row triggers ----------------------------------------------------------------------

_CUSTOMER_ADD = (
    "INSERT INTO partner_customer_count (partner_id, customers) VALUES (NEW.partner_id, 1) "
    "ON CONFLICT (partner_id) DO UPDATE SET customers = customers + 1;"
)
_CUSTOMER_REMOVE = (
    "UPDATE partner_customer_count SET customers = customers - 1 WHERE partner_id = OLD.partner_id;"
)


def _sqlite_span_add(row: str = "NEW") -> str:
    out = ""
    for column, field in (("valid_from", "starts"), ("valid_to", "ends")):
        out += (
            "INSERT INTO status_span_day (partner_id, status, day, starts, ends) "
            f"VALUES ({row}.partner_id, {row}.status, {_sqlite_day(f'{row}.{column}')}, "
            f"{1 if field == 'starts' else 0}, {1 if field == 'ends' else 0}) "
            f"ON CONFLICT (partner_id, status, day) DO UPDATE SET {field} = {field} + 1; "
        )
    return out


def _sqlite_span_remove(row: str = "OLD") -> str:
    out = ""
    for column, field in (("valid_from", "starts"), ("valid_to", "ends")):
        out += (
            f"UPDATE status_span_day SET {field} = {field} - 1 "
            f"WHERE partner_id = {row}.partner_id AND status = {row}.status "
            f"AND day = {_sqlite_day(f'{row}.{column}')}; "
        )
    return out


SPAN_COLUMNS = "partner_id, status, valid_from, valid_to"
SQLITE_TRIGGERS = {
    "customer_count_ins": ("AFTER INSERT ON customer", _CUSTOMER_ADD),
    "customer_count_upd": (
        "AFTER UPDATE OF partner_id ON customer WHEN OLD.partner_id IS NOT NEW.partner_id",
        _CUSTOMER_REMOVE + " " + _CUSTOMER_ADD,
    ),
    "customer_count_del": ("AFTER DELETE ON customer", _CUSTOMER_REMOVE),
    "status_span_day_ins": ("AFTER INSERT ON customer_status_span", _sqlite_span_add()),
    "status_span_day_upd": (
        f"AFTER UPDATE OF {SPAN_COLUMNS} ON customer_status_span",
        _sqlite_span_remove() + _sqlite_span_add(),
    ),
    "status_span_day_del": ("AFTER DELETE ON customer_status_span", _sqlite_span_remove()),
}

# --- PostgreSQL: statement triggers over transition tables --------------------------------------
# Signed deltas, summed per key; a key whose delta is 0 (an update that changed nothing counted)
# is not written, so such updates take no lock on the partner's counts. Keys in order, so two
# transactions adding to the same counts lock them in the same order.


def _pg_customer_delta(sources: list[tuple[str, str]]) -> str:
    rows = " UNION ALL ".join(f"SELECT partner_id, {sign} AS n FROM {s}" for s, sign in sources)
    return (
        "INSERT INTO partner_customer_count (partner_id, customers) "
        f"SELECT partner_id, SUM(n) FROM ({rows}) d GROUP BY partner_id HAVING SUM(n) <> 0 "
        "ORDER BY partner_id "
        "ON CONFLICT (partner_id) DO UPDATE "
        "SET customers = partner_customer_count.customers + excluded.customers;"
    )


def _pg_span_delta(sources: list[tuple[str, str]]) -> str:
    rows = " UNION ALL ".join(_edges(s, _pg_day, sign) for s, sign in sources)
    return (
        "INSERT INTO status_span_day (partner_id, status, day, starts, ends) "
        f"SELECT partner_id, status, day, SUM(starts), SUM(ends) FROM ({rows}) d "
        "GROUP BY partner_id, status, day HAVING SUM(starts) <> 0 OR SUM(ends) <> 0 "
        "ORDER BY partner_id, status, day "
        "ON CONFLICT (partner_id, status, day) DO UPDATE "
        "SET starts = status_span_day.starts + excluded.starts, "
        "ends = status_span_day.ends + excluded.ends;"
    )


def _pg_function(name: str, counts: str, delta: Callable[[list[tuple[str, str]]], str]) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM {counts};
    ELSIF TG_OP = 'INSERT' THEN
        {delta([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {delta([("old_rows", "-1")])}
    ELSE
        {delta([("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
"""


PG_FUNCTIONS = {
    "customer_counts": _pg_function(
        "customer_counts", "partner_customer_count", _pg_customer_delta
    ),
    "status_span_days": _pg_function("status_span_days", "status_span_day", _pg_span_delta),
}
PG_TABLES = {"customer": "customer_counts", "customer_status_span": "status_span_days"}


def _pg_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, 'AFTER ... REFERENCING ...'), each FOR EACH STATEMENT."""
    out = {}
    for table, function in PG_TABLES.items():
        for event, referencing in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            name = f"{table}_counts_{event.lower()[:3]}"
            out[name] = (
                table,
                f"AFTER {event} ON {table} REFERENCING {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            )
        # TRUNCATE fires no DELETE trigger: it empties the counts instead.
        out[f"{table}_counts_tru"] = (
            table,
            f"AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        )
    return out


def upgrade() -> None:
    op.create_table(
        "partner_customer_count",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id"),
    )
    op.create_table(
        "status_span_day",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("ends", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "status", "day"),
    )
    # Today's starts (the correction of db.directory_counts.status_count); today's ends use
    # ix_status_span_now (partner_id, status, valid_to, ...).
    op.create_index(
        "ix_status_span_from",
        "customer_status_span",
        ["partner_id", "status", "valid_from"],
    )
    # Build the counts of an existing database, then keep them with triggers from now on (the
    # migration runs in one transaction, so no write falls between the two).
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute(CUSTOMER_BACKFILL)
    op.execute(_edge_backfill(_pg_day if postgresql else _sqlite_day))
    for table in ("partner_customer_count", "status_span_day"):
        op.execute(f"ANALYZE {table}")
    if postgresql:
        for function in PG_FUNCTIONS.values():
            op.execute(function)
        for name, (_table, body) in _pg_triggers().items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, (event, body) in SQLITE_TRIGGERS.items():
            on, _, when = event.partition(" WHEN ")
            when = f"WHEN {when} " if when else ""
            op.execute(f"CREATE TRIGGER {name} {on} FOR EACH ROW {when}BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, _) in _pg_triggers().items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_status_span_from", table_name="customer_status_span")
    op.drop_table("status_span_day")
    op.drop_table("partner_customer_count")
