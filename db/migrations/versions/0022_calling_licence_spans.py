"""calling licences kept by triggers: per customer, the spans of its in-force CALLING licences;
per partner and day, their edges (issue 16, ``callingAnalytics`` flat in the partner's size)

Revision ID: 0022_calling_licence_spans
Revises: 0024_shared_versions
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_calling_licence_spans"
down_revision: str | None = "0024_shared_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# --- the SQL both backends share (frozen here: db.calls_licensed describes the tables) ---------


def _licences(where: str) -> str:
    """The CALLING lines of ACTIVE subscriptions matching ``where`` (on ``s``), with their
    subscription's customer, partner and term."""
    return (
        "SELECT s.customer_id, s.partner_id, s.start_date, s.end_date, l.assigned "
        "FROM subscription s JOIN license_line l ON l.subscription_id = s.id "
        f"WHERE {where} AND s.state = 'ACTIVE' AND l.product = 'CALLING' "
        "AND s.end_date > s.start_date"
    )


def _spans_select(where: str) -> str:
    """The spans of the customers matching ``where``: between two consecutive starts or ends of
    their licences, the sum of the licences in force (start <= t < end); a stretch with none
    has no span. No CTE: SQLite refuses WITH in a trigger."""
    r = _licences(where)
    return (
        "SELECT b.customer_id, MIN(r.partner_id), b.t, b.u, SUM(r.assigned) "
        "FROM (SELECT customer_id, t, LEAD(t) OVER (PARTITION BY customer_id ORDER BY t) AS u "
        f"FROM (SELECT customer_id, start_date AS t FROM ({r}) AS r1 "
        f"UNION SELECT customer_id, end_date FROM ({r}) AS r2) AS e) AS b "
        f"JOIN ({r}) AS r ON r.customer_id = b.customer_id "
        "AND r.start_date <= b.t AND r.end_date > b.t "
        "WHERE b.u IS NOT NULL GROUP BY b.customer_id, b.t, b.u"
    )


SPAN_COLUMNS = "customer_id, partner_id, valid_from, valid_to, licensed"


def _sqlite_day(moment: str) -> str:
    """db.calls_licensed.day_number on SQLite's stored text ('YYYY-MM-DD HH:MM:SS...')."""
    return f"CAST(julianday(substr({moment}, 1, 10)) - 2440587.5 AS INTEGER)"


def _pg_day(moment: str) -> str:
    return f"(({moment} AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"


def _edges(source: str, day: Callable[[str], str], sign: str = "1") -> str:
    """(partner_id, day, customers, licensed) deltas of the spans in ``source``: each span
    counts from its start (``valid_from``) and stops counting at its end (``valid_to``)."""
    return (
        f"SELECT partner_id, {day('valid_from')} AS day, {sign} AS customers, "
        f"{sign} * licensed AS licensed FROM {source} UNION ALL "
        f"SELECT partner_id, {day('valid_to')}, -({sign}), -({sign}) * licensed FROM {source}"
    )


def _day_backfill(day: Callable[[str], str]) -> str:
    return (
        "INSERT INTO calling_licence_day (partner_id, day, customers, licensed) "
        "SELECT partner_id, day, SUM(customers), SUM(licensed) "
        f"FROM ({_edges('calling_licence_span', day)}) e GROUP BY partner_id, day"
    )


# --- SQLite: row triggers ----------------------------------------------------------------------


def _sqlite_refresh(customer: str) -> str:
    """Rewrite the spans of one customer (``customer``: an SQL expression, NULL for none)."""
    return (
        f"DELETE FROM calling_licence_span WHERE customer_id = {customer}; "
        f"INSERT INTO calling_licence_span ({SPAN_COLUMNS}) "
        f"{_spans_select(f's.customer_id = {customer}')};"
    )


def _of_subscription(row: str) -> str:
    return f"(SELECT customer_id FROM subscription WHERE id = {row}.subscription_id)"


def _sqlite_edge(row: str, sign: int) -> str:
    out = ""
    for column, direction in (("valid_from", sign), ("valid_to", -sign)):
        out += (
            "INSERT INTO calling_licence_day (partner_id, day, customers, licensed) "
            f"VALUES ({row}.partner_id, {_sqlite_day(f'{row}.{column}')}, {direction}, "
            f"{direction} * {row}.licensed) "
            "ON CONFLICT (partner_id, day) DO UPDATE SET customers = customers + "
            "excluded.customers, licensed = licensed + excluded.licensed; "
        )
    return out


SUBSCRIPTION_CHANGED = (
    "(OLD.state IS NOT NEW.state OR OLD.start_date IS NOT NEW.start_date "
    "OR OLD.end_date IS NOT NEW.end_date OR OLD.customer_id IS NOT NEW.customer_id "
    "OR OLD.partner_id IS NOT NEW.partner_id) AND EXISTS (SELECT 1 FROM license_line "
    "WHERE subscription_id = NEW.id AND product = 'CALLING')"
)
LINE_CHANGED = (
    "(OLD.product = 'CALLING' OR NEW.product = 'CALLING') AND "
    "(OLD.subscription_id IS NOT NEW.subscription_id OR OLD.product IS NOT NEW.product "
    "OR OLD.assigned IS NOT NEW.assigned)"
)
SQLITE_TRIGGERS = {
    "calling_licence_line_ins": (
        "AFTER INSERT ON license_line WHEN NEW.product = 'CALLING'",
        _sqlite_refresh(_of_subscription("NEW")),
    ),
    "calling_licence_line_upd": (
        f"AFTER UPDATE OF subscription_id, product, assigned ON license_line WHEN {LINE_CHANGED}",
        _sqlite_refresh(_of_subscription("OLD")) + " " + _sqlite_refresh(_of_subscription("NEW")),
    ),
    "calling_licence_line_del": (
        "AFTER DELETE ON license_line WHEN OLD.product = 'CALLING'",
        _sqlite_refresh(_of_subscription("OLD")),
    ),
    "calling_licence_subscription_upd": (
        "AFTER UPDATE OF state, start_date, end_date, customer_id, partner_id ON subscription "
        f"WHEN {SUBSCRIPTION_CHANGED}",
        _sqlite_refresh("OLD.customer_id") + " " + _sqlite_refresh("NEW.customer_id"),
    ),
    "calling_licence_subscription_del": (
        "AFTER DELETE ON subscription WHEN OLD.state = 'ACTIVE'",
        _sqlite_refresh("OLD.customer_id"),
    ),
    "calling_licence_span_ins": ("AFTER INSERT ON calling_licence_span", _sqlite_edge("NEW", 1)),
    "calling_licence_span_del": ("AFTER DELETE ON calling_licence_span", _sqlite_edge("OLD", -1)),
}

# --- PostgreSQL: statement triggers over transition tables --------------------------------------


def _pg_day_delta(source: str, sign: str) -> str:
    return (
        "INSERT INTO calling_licence_day (partner_id, day, customers, licensed) "
        "SELECT partner_id, day, SUM(customers), SUM(licensed) "
        f"FROM ({_edges(source, _pg_day, sign)}) d "
        "GROUP BY partner_id, day HAVING SUM(customers) <> 0 OR SUM(licensed) <> 0 "
        "ORDER BY partner_id, day "
        "ON CONFLICT (partner_id, day) DO UPDATE SET "
        "customers = calling_licence_day.customers + excluded.customers, "
        "licensed = calling_licence_day.licensed + excluded.licensed"
    )


PG_FUNCTIONS = {
    # Rewrites the spans of the given customers and moves the day edges with them (two
    # statements: the second sees the first's deletions).
    "calling_licence_refresh(integer[])": f"""
CREATE FUNCTION calling_licence_refresh(customers integer[]) RETURNS void LANGUAGE sql AS $$
WITH gone AS (
    DELETE FROM calling_licence_span WHERE customer_id = ANY(customers)
    RETURNING partner_id, valid_from, valid_to, licensed
)
{_pg_day_delta("gone", "-1")};
WITH made AS (
    INSERT INTO calling_licence_span ({SPAN_COLUMNS})
    {_spans_select("s.customer_id = ANY(customers)")}
    RETURNING partner_id, valid_from, valid_to, licensed
)
{_pg_day_delta("made", "1")};
$$
""",
    "calling_licence_lines()": """
CREATE FUNCTION calling_licence_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched integer[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM calling_licence_span;
        DELETE FROM calling_licence_day;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        touched := ARRAY(SELECT DISTINCT s.customer_id FROM new_rows n
                         JOIN subscription s ON s.id = n.subscription_id
                         WHERE n.product = 'CALLING');
    ELSIF TG_OP = 'DELETE' THEN
        touched := ARRAY(SELECT DISTINCT s.customer_id FROM old_rows o
                         JOIN subscription s ON s.id = o.subscription_id
                         WHERE o.product = 'CALLING');
    ELSE
        touched := ARRAY(
            SELECT s.customer_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            JOIN subscription s ON s.id IN (n.subscription_id, o.subscription_id)
            WHERE (n.product = 'CALLING' OR o.product = 'CALLING')
              AND (n.subscription_id, n.product, n.assigned)
                  IS DISTINCT FROM (o.subscription_id, o.product, o.assigned)
            UNION
            SELECT s.customer_id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
            JOIN subscription s ON s.id = n.subscription_id
            WHERE o.id IS NULL AND n.product = 'CALLING'
            UNION
            SELECT s.customer_id FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
            JOIN subscription s ON s.id = o.subscription_id
            WHERE n.id IS NULL AND o.product = 'CALLING');
    END IF;
    IF cardinality(touched) > 0 THEN
        PERFORM calling_licence_refresh(touched);
    END IF;
    RETURN NULL;
END $$
""",
    "calling_licence_subscriptions()": """
CREATE FUNCTION calling_licence_subscriptions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched integer[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM calling_licence_span;
        DELETE FROM calling_licence_day;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        touched := ARRAY(SELECT DISTINCT customer_id FROM old_rows WHERE state = 'ACTIVE');
    ELSE
        touched := ARRAY(
            SELECT c FROM new_rows n JOIN old_rows o ON o.id = n.id,
                LATERAL (VALUES (n.customer_id), (o.customer_id)) AS v(c)
            WHERE (n.state, n.start_date, n.end_date, n.customer_id, n.partner_id)
                  IS DISTINCT FROM (o.state, o.start_date, o.end_date, o.customer_id, o.partner_id)
              AND EXISTS (SELECT 1 FROM license_line l
                          WHERE l.subscription_id = n.id AND l.product = 'CALLING')
            UNION
            SELECT o.customer_id FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
            WHERE n.id IS NULL);
    END IF;
    IF cardinality(touched) > 0 THEN
        PERFORM calling_licence_refresh(touched);
    END IF;
    RETURN NULL;
END $$
""",
}


def _pg_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, 'AFTER ...'), each FOR EACH STATEMENT. A new subscription has no lines
    yet, so inserting one changes no span."""
    out = {}
    for table, function, events in (
        ("license_line", "calling_licence_lines", ("INSERT", "UPDATE", "DELETE")),
        ("subscription", "calling_licence_subscriptions", ("UPDATE", "DELETE")),
    ):
        for event in events:
            referencing = {
                "INSERT": "NEW TABLE AS new_rows",
                "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows",
            }[event]
            out[f"{table}_calling_licence_{event.lower()[:3]}"] = (
                table,
                f"AFTER {event} ON {table} REFERENCING {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            )
        out[f"{table}_calling_licence_tru"] = (
            table,
            f"AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        )
    return out


def upgrade() -> None:
    op.create_table(
        "calling_licence_span",
        sa.Column("customer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("licensed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "valid_from"),
    )
    for name, columns in (
        # A table page walks the partner's customers with a span (in id order).
        (
            "ix_calling_licence_span_walk",
            ["partner_id", "customer_id", "valid_from", "valid_to", "licensed"],
        ),
        # Today's starts and ends (the correction of db.calls_licensed.licensed_totals).
        ("ix_calling_licence_span_from", ["partner_id", "valid_from"]),
        ("ix_calling_licence_span_to", ["partner_id", "valid_to"]),
    ):
        op.create_index(name, "calling_licence_span", columns)
    # Licensed users without calls read a week's customers and active users from the index.
    op.create_index(
        "ix_call_weekly_partner_week_users",
        "call_weekly_aggregate",
        ["partner_id", "week_start", "customer_id", "active_users"],
    )
    op.create_table(
        "calling_licence_day",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customers", sa.BigInteger(), nullable=False),
        sa.Column("licensed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "day"),
    )
    # Build the spans and days of an existing database, then keep them with triggers from now
    # on (the migration runs in one transaction, so no write falls between the two).
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute(f"INSERT INTO calling_licence_span ({SPAN_COLUMNS}) {_spans_select('1 = 1')}")
    op.execute(_day_backfill(_pg_day if postgresql else _sqlite_day))
    for table in ("calling_licence_span", "calling_licence_day", "call_weekly_aggregate"):
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
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("calling_licence_day")
    op.drop_index("ix_call_weekly_partner_week_users", table_name="call_weekly_aggregate")
    for name in (
        "ix_calling_licence_span_to",
        "ix_calling_licence_span_from",
        "ix_calling_licence_span_walk",
    ):
        op.drop_index(name, table_name="calling_licence_span")
    op.drop_table("calling_licence_span")
