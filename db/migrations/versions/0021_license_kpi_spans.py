"""license KPI spans maintained by triggers: per customer and subscription, when each license
KPI condition holds; per partner, KPI and day, the edges of those spans (issue 16)

The deployment-wide allocation-ratio histogram (0012) gets a coarse level, per bucket of
1/256, so that a band's median reads the buckets and then one bucket's ratios.

Revision ID: 0021_license_kpi_spans
Revises: 0022_calling_licence_spans

See ``db.license_kpis`` for what the rows mean and how a count at ``now`` is read.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_license_kpi_spans"
down_revision: str | None = "0022_calling_licence_spans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WINDOW = "90 days"  # db.queries.analytics.common.WINDOW
# PostgreSQL: the same 90 days as hours. ``interval '90 days'`` added to a timestamptz counts
# calendar days in the session's TimeZone (an hour more or less across a daylight-saving change
# where the session's zone has one); the request compares with now - timedelta(days=90).
PG_WINDOW = "2160 hours"
SPAN_COLUMNS = (
    "partner_id, customer_id, kpi, subscription_id, valid_from, valid_to, "
    "customers, purchased, assigned, used, line_rows"
)
WEIGHTS = ("customers", "purchased", "assigned", "used", "line_rows")


class Dialect:
    """The few expressions that differ between the backends."""

    def __init__(self, postgresql: bool) -> None:
        self.postgresql = postgresql

    def minus_window(self, moment: str) -> str:
        if self.postgresql:
            return f"({moment} - interval '{PG_WINDOW}')"
        # Stored text 'YYYY-MM-DD HH:MM:SS.ffffff': shifted without its fraction, which is put
        # back (datetime() of the whole text rounds to the millisecond: .9995 s and over went
        # up a second, so a span began or ended about a second late; fixed by migration 0030).
        return f"(datetime(substr({moment}, 1, 19), '-{WINDOW}') || substr({moment}, 20))"

    def plus_window(self, moment: str) -> str:
        if self.postgresql:
            return f"({moment} + interval '{PG_WINDOW}')"
        return f"(datetime(substr({moment}, 1, 19), '+{WINDOW}') || substr({moment}, 20))"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.postgresql else f"max({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.postgresql else f"min({a}, {b})"

    def day(self, moment: str) -> str:
        """db.directory_counts.day_number."""
        if self.postgresql:
            return f"(({moment} AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
        return f"CAST(julianday(substr({moment}, 1, 10)) - 2440587.5 AS INTEGER)"


SQLITE_D = Dialect(postgresql=False)
POSTGRESQL_D = Dialect(postgresql=True)


def _intervals(d: Dialect, where: str) -> str:
    """(partner_id, customer_id, kpi, subscription_id, lo, hi, purchased, assigned, used,
    line_rows) of every ACTIVE Meetings or Calling total of ``license_product_total`` matching
    ``where``: the interval [lo, hi) of ``now`` during which it counts for the KPI (DESIGN.md
    section 3). A product's sections are '<PRODUCT>/<SECTION>'; the top KPIs, over both
    products, 'ANY/...'.
    """
    start, end, renewal = "t.start_date", "t.end_date", "t.renewal_date"
    expiring_from = d.greatest(start, d.minus_window(end))
    renewing = (
        "t.auto_renew AND t.renewal_date IS NOT NULL",
        d.greatest(start, d.minus_window(renewal)),
        d.least(end, renewal),
    )

    def weights(*values: str) -> str:
        return ", ".join(f"{v} AS {w}" for v, w in zip(values, WEIGHTS[1:], strict=True))

    sums = weights("t.purchased", "t.assigned", "t.used", "1")
    over = weights("t.over_purchased", "t.over_assigned", "t.over_used", "t.lines_over")
    none = weights("0", "0", "0", "0")
    cases = [
        ("t.product || '/RECENT'", "1 = 1", start, d.least(end, d.plus_window(start)), sums),
        ("t.product || '/EXPIRING'", "NOT t.auto_renew", expiring_from, end, sums),
        ("t.product || '/RENEWING'", *renewing, sums),
        ("t.product || '/OVERAGE'", "t.lines_over > 0", start, end, over),
        ("'ANY/TOTAL'", "1 = 1", start, end, none),
        ("'ANY/EXPIRING'", "(t.kind = 'TRIAL' OR NOT t.auto_renew)", expiring_from, end, none),
        ("'ANY/RENEWING'", *renewing, none),
        ("'ANY/OVER'", "t.lines_over > 0", start, end, none),
    ]
    return " UNION ALL ".join(
        f"SELECT t.partner_id, t.customer_id, {kpi} AS kpi, t.subscription_id, {f} AS lo, "
        f"{to} AS hi, {values} FROM license_product_total t "
        f"WHERE t.state = 'ACTIVE' AND t.product IN ('MEETINGS', 'CALLING') "
        f"AND {cond} AND {where}"
        for kpi, cond, f, to, values in cases
    )


def spans_select(d: Dialect, where: str, intervals: str | None = None) -> str:
    """The rows of ``license_kpi_span`` of the totals matching ``where``: one per subscription
    and product KPI (the sums), and per customer and KPI the union of its subscriptions'
    intervals (customers = 1), merged island by island. Empty intervals leave no row.
    ``intervals``: a select of ``_intervals``' columns to use instead of it (later migrations
    add KPIs)."""
    iv = f"SELECT * FROM ({intervals or _intervals(d, where)}) iv WHERE iv.lo < iv.hi"
    per_subscription = (
        "SELECT partner_id, customer_id, kpi, subscription_id, lo, hi, 0, "
        "purchased, assigned, used, line_rows "
        f"FROM ({iv}) s WHERE kpi NOT LIKE 'ANY/%'"
    )
    part = "PARTITION BY partner_id, customer_id, kpi ORDER BY lo, hi"
    # An interval that starts after every earlier one ended opens a new island.
    islands = (
        "SELECT partner_id, customer_id, kpi, lo, hi, "
        f"SUM(brk) OVER ({part} ROWS UNBOUNDED PRECEDING) AS island FROM ("
        "SELECT partner_id, customer_id, kpi, lo, hi, "
        f"CASE WHEN lo <= MAX(hi) OVER ({part} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) "
        f"THEN 0 ELSE 1 END AS brk FROM ({iv}) c) b"
    )
    per_customer = (
        "SELECT partner_id, customer_id, kpi, 0, MIN(lo), MAX(hi), 1, 0, 0, 0, 0 "
        f"FROM ({islands}) i GROUP BY partner_id, customer_id, kpi, island"
    )
    return f"{per_subscription} UNION ALL {per_customer}"


def _edges(d: Dialect, source: str, sign: str = "1") -> str:
    """(partner_id, kpi, day, weights...) of the spans in ``source``: + at the start's day,
    - at the end's."""
    plus = ", ".join(f"({sign}) * {w} AS {w}" for w in WEIGHTS)
    minus = ", ".join(f"(0 - ({sign})) * {w}" for w in WEIGHTS)
    return (
        f"SELECT partner_id, kpi, {d.day('valid_from')} AS day, {plus} FROM {source} UNION ALL "
        f"SELECT partner_id, kpi, {d.day('valid_to')}, {minus} FROM {source}"
    )


def _day_delta(d: Dialect, sources: list[tuple[str, str]]) -> str:
    rows = " UNION ALL ".join(_edges(d, s, sign) for s, sign in sources)
    names = ", ".join(WEIGHTS)
    sums = ", ".join(f"SUM({w})" for w in WEIGHTS)
    nonzero = " OR ".join(f"SUM({w}) <> 0" for w in WEIGHTS)
    update = ", ".join(f"{w} = license_kpi_day.{w} + excluded.{w}" for w in WEIGHTS)
    # Keys in order: two transactions adding to one partner's days lock them in the same order.
    return (
        f"INSERT INTO license_kpi_day (partner_id, kpi, day, {names}) "
        f"SELECT partner_id, kpi, day, {sums} "
        f"FROM ({rows}) e "
        f"GROUP BY partner_id, kpi, day HAVING {nonzero} ORDER BY partner_id, kpi, day "
        f"ON CONFLICT (partner_id, kpi, day) DO UPDATE SET {update};"
    )


# --- the coarse ratio histogram ------------------------------------------------------------------
# license_ratio_bucket: license_ratio_count summed per bucket of 1/256 (floor(ratio * 256);
# ratio * 256 is exact, so a bucket is exactly the ratios in [b / 256, (b + 1) / 256)).


def _bucket(d: Dialect, ratio: str) -> str:
    if d.postgresql:
        return f"CAST(floor({ratio} * 256) AS bigint)"
    return f"CAST({ratio} * 256 AS INTEGER)"  # truncation: floor for ratios >= 0


def _bucket_backfill(d: Dialect) -> str:
    return (
        "INSERT INTO license_ratio_bucket (product, band, bucket, n) "
        f"SELECT product, band, {_bucket(d, 'ratio')}, SUM(n) FROM license_ratio_count "
        f"GROUP BY product, band, {_bucket(d, 'ratio')}"
    )


def _sqlite_bucket(row: str, sign: str) -> str:
    return (
        "INSERT INTO license_ratio_bucket (product, band, bucket, n) "
        f"VALUES ({row}.product, {row}.band, {_bucket(SQLITE_D, f'{row}.ratio')}, {sign}{row}.n) "
        "ON CONFLICT (product, band, bucket) DO UPDATE SET n = n + excluded.n;"
    )


def _pg_bucket_delta(sources: list[tuple[str, str]]) -> str:
    rows = " UNION ALL ".join(
        f"SELECT product, band, {_bucket(POSTGRESQL_D, 'ratio')} AS bucket, {sign} * n AS n "
        f"FROM {source}"
        for source, sign in sources
    )
    return (
        "INSERT INTO license_ratio_bucket (product, band, bucket, n) "
        f"SELECT product, band, bucket, SUM(n) FROM ({rows}) d "
        "GROUP BY product, band, bucket HAVING SUM(n) <> 0 ORDER BY product, band, bucket "
        "ON CONFLICT (product, band, bucket) DO UPDATE SET n = license_ratio_bucket.n + excluded.n;"
    )


# --- SQLite: row triggers ----------------------------------------------------------------------

SQLITE = Dialect(postgresql=False)


def _sqlite_refresh(row: str) -> str:
    return (
        f"DELETE FROM license_kpi_span WHERE customer_id = {row}.customer_id; "
        f"INSERT INTO license_kpi_span ({SPAN_COLUMNS}) "
        f"{spans_select(SQLITE, f't.customer_id = {row}.customer_id')};"
    )


def _sqlite_day(row: str, sign: int) -> str:
    out = ""
    names = ", ".join(WEIGHTS)
    for column, direction in (("valid_from", sign), ("valid_to", -sign)):
        values = ", ".join(f"{direction} * {row}.{w}" for w in WEIGHTS)
        update = ", ".join(f"{w} = {w} + excluded.{w}" for w in WEIGHTS)
        out += (
            f"INSERT INTO license_kpi_day (partner_id, kpi, day, {names}) "
            f"VALUES ({row}.partner_id, {row}.kpi, {SQLITE.day(f'{row}.{column}')}, {values}) "
            f"ON CONFLICT (partner_id, kpi, day) DO UPDATE SET {update}; "
        )
    return out


SQLITE_TRIGGERS = {
    "license_kpi_spans_ins": ("AFTER INSERT ON license_product_total", _sqlite_refresh("NEW")),
    "license_kpi_spans_upd": (
        "AFTER UPDATE ON license_product_total",
        _sqlite_refresh("OLD") + " " + _sqlite_refresh("NEW"),
    ),
    "license_kpi_spans_del": ("AFTER DELETE ON license_product_total", _sqlite_refresh("OLD")),
    "license_kpi_day_ins": ("AFTER INSERT ON license_kpi_span", _sqlite_day("NEW", 1)),
    "license_kpi_day_upd": (
        "AFTER UPDATE ON license_kpi_span",
        _sqlite_day("OLD", -1) + _sqlite_day("NEW", 1),
    ),
    "license_kpi_day_del": ("AFTER DELETE ON license_kpi_span", _sqlite_day("OLD", -1)),
    "license_ratio_bucket_ins": ("AFTER INSERT ON license_ratio_count", _sqlite_bucket("NEW", "")),
    "license_ratio_bucket_upd": (
        "AFTER UPDATE ON license_ratio_count",
        _sqlite_bucket("OLD", "-") + " " + _sqlite_bucket("NEW", ""),
    ),
    "license_ratio_bucket_del": ("AFTER DELETE ON license_ratio_count", _sqlite_bucket("OLD", "-")),
}

# --- PostgreSQL: statement triggers over transition tables --------------------------------------

POSTGRESQL = Dialect(postgresql=True)

PG_FUNCTIONS = {
    "license_kpi_refresh(integer[])": f"""
CREATE FUNCTION license_kpi_refresh(affected integer[]) RETURNS void LANGUAGE sql AS $$
DELETE FROM license_kpi_span WHERE customer_id = ANY(affected);
INSERT INTO license_kpi_span ({SPAN_COLUMNS})
{spans_select(POSTGRESQL, "t.customer_id = ANY(affected)")};
$$
""",
    "license_kpi_spans()": """
CREATE FUNCTION license_kpi_spans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM license_kpi_span;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM license_kpi_refresh(ARRAY(SELECT DISTINCT customer_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM license_kpi_refresh(ARRAY(SELECT DISTINCT customer_id FROM old_rows));
    ELSE
        PERFORM license_kpi_refresh(ARRAY(
            SELECT customer_id FROM new_rows UNION SELECT customer_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$
""",
    "license_kpi_days()": f"""
CREATE FUNCTION license_kpi_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM license_kpi_day;
    ELSIF TG_OP = 'INSERT' THEN
        {_day_delta(POSTGRESQL, [("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {_day_delta(POSTGRESQL, [("old_rows", "-1")])}
    ELSE
        {_day_delta(POSTGRESQL, [("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
""",
}
PG_FUNCTIONS["license_ratio_buckets()"] = f"""
CREATE FUNCTION license_ratio_buckets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM license_ratio_bucket;
    ELSIF TG_OP = 'INSERT' THEN
        {_pg_bucket_delta([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_bucket_delta([("old_rows", "-1")])}
    ELSE
        {_pg_bucket_delta([("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
"""
PG_TABLES = {
    "license_product_total": "license_kpi_spans",
    "license_kpi_span": "license_kpi_days",
    "license_ratio_count": "license_ratio_buckets",
}


def _pg_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, 'AFTER ... REFERENCING ...'), each FOR EACH STATEMENT."""
    out = {}
    for table, function in PG_TABLES.items():
        for event, referencing in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            name = f"{function}_{event.lower()[:3]}"
            out[name] = (
                table,
                f"AFTER {event} ON {table} REFERENCING {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            )
        out[f"{function}_tru"] = (
            table,
            f"AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        )
    return out


def _backfill(d: Dialect) -> list[str]:
    names = ", ".join(WEIGHTS)
    sums = ", ".join(f"SUM({w})" for w in WEIGHTS)
    return [
        f"INSERT INTO license_kpi_span ({SPAN_COLUMNS}) {spans_select(d, '1 = 1')}",
        f"INSERT INTO license_kpi_day (partner_id, kpi, day, {names}) "
        f"SELECT partner_id, kpi, day, {sums} "
        f"FROM ({_edges(d, 'license_kpi_span')}) e "
        "GROUP BY partner_id, kpi, day",
    ]


def _columns(names: Sequence[str], kind: Callable[[], sa.types.TypeEngine]) -> list[sa.Column]:
    return [sa.Column(n, kind(), nullable=False) for n in names]


def upgrade() -> None:
    op.create_table(
        "license_kpi_span",
        sa.Column("customer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kpi", sa.String(length=48), nullable=False),
        sa.Column("subscription_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        *_columns(WEIGHTS, sa.BigInteger),
        sa.PrimaryKeyConstraint(
            "customer_id", "partner_id", "kpi", "subscription_id", "valid_from"
        ),
    )
    op.create_index(
        "ix_license_kpi_span_from", "license_kpi_span", ["partner_id", "kpi", "valid_from"]
    )
    op.create_index("ix_license_kpi_span_to", "license_kpi_span", ["partner_id", "kpi", "valid_to"])
    op.create_table(
        "license_kpi_day",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kpi", sa.String(length=48), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        *_columns(WEIGHTS, sa.BigInteger),
        sa.PrimaryKeyConstraint("partner_id", "kpi", "day"),
    )
    # A customer's totals: what the span triggers read on every change.
    op.create_index("ix_license_product_total_customer", "license_product_total", ["customer_id"])
    op.create_table(
        "license_ratio_bucket",
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("band", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product", "band", "bucket"),
    )
    # The low-allocation rows of a partner, band by band (db.queries.analytics.common).
    op.create_index(
        "ix_license_product_total_ratio",
        "license_product_total",
        [
            *("partner_id", "product", "band", "ratio", "state", "start_date", "end_date"),
            *("purchased", "assigned", "used", "available", "customer_id", "subscription_id"),
        ],
    )
    # Section pages walk an index in their order and stop after their rows: the date indexes
    # of 0012 get the subscription (the tie-break), the overage lines one of their own.
    for column in ("end_date", "start_date", "renewal_date"):
        name = f"ix_license_product_total_{column.removesuffix('_date')}"
        op.drop_index(name, table_name="license_product_total")
        op.create_index(
            name, "license_product_total", ["partner_id", "product", column, "subscription_id"]
        )
    # The medians' stale rows (ACTIVE, not in force) are read from these alone.
    for column, extra in (("end_date", []), ("start_date", ["end_date"])):
        name = f"ix_license_product_total_stale_{column.removesuffix('_date')}"
        op.drop_index(name, table_name="license_product_total")
        op.create_index(
            name,
            "license_product_total",
            ["product", "state", column, *extra, "purchased", "band", "ratio"],
        )
    op.create_index(
        "ix_license_line_overage",
        "license_line",
        [
            *("partner_id", "product", sa.text("(assigned - purchased)")),
            *("subscription_id", "license_type"),
        ],
        sqlite_where=sa.text("assigned > purchased"),
        postgresql_where=sa.text("assigned > purchased"),
    )
    op.execute("ANALYZE license_line")
    op.execute("ANALYZE license_product_total")
    # Build the spans of an existing database, then keep them with triggers from now on (the
    # migration runs in one transaction, so no write falls between the two).
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _backfill(POSTGRESQL if postgresql else SQLITE):
        op.execute(statement)
    op.execute(_bucket_backfill(POSTGRESQL if postgresql else SQLITE))
    for table in ("license_kpi_span", "license_kpi_day", "license_ratio_bucket"):
        op.execute(f"ANALYZE {table}")
    if postgresql:
        for function in PG_FUNCTIONS.values():
            op.execute(function)
        for name, (_table, body) in _pg_triggers().items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, (event, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, _) in _pg_triggers().items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_license_product_total_ratio", table_name="license_product_total")
    op.drop_index("ix_license_product_total_customer", table_name="license_product_total")
    op.drop_index("ix_license_line_overage", table_name="license_line")
    for column in ("end_date", "start_date", "renewal_date"):
        name = f"ix_license_product_total_{column.removesuffix('_date')}"
        op.drop_index(name, table_name="license_product_total")
        op.create_index(name, "license_product_total", ["partner_id", "product", column])
    for column in ("end_date", "start_date"):
        name = f"ix_license_product_total_stale_{column.removesuffix('_date')}"
        op.drop_index(name, table_name="license_product_total")
        op.create_index(name, "license_product_total", ["product", "state", column])
    op.drop_table("license_ratio_bucket")
    op.drop_table("license_kpi_day")
    op.drop_index("ix_license_kpi_span_to", table_name="license_kpi_span")
    op.drop_index("ix_license_kpi_span_from", table_name="license_kpi_span")
    op.drop_table("license_kpi_span")
