"""license totals maintained by triggers: per subscription and product, per partner, product
and week, and the allocation-ratio histogram (issue 16)

Revision ID: 0012_license_totals
Revises: 0017_cost_budget
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_license_totals"
down_revision: str | None = "0017_cost_budget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# --- the SQL both backends share -------------------------------------------------------------

TOTAL_COLUMNS = (
    "subscription_id, product, partner_id, customer_id, kind, state, start_date, end_date, "
    "renewal_date, auto_renew, purchased, assigned, used, available, lines_over, "
    "over_purchased, over_assigned, over_used, band, ratio"
)


def _band(purchased: str) -> str:
    """db.queries.analytics.measures.SIZE_BANDS: 1-10, 11-50, 51-250, 251-1000, 1001+."""
    return (
        f"CASE WHEN {purchased} <= 10 THEN 1 WHEN {purchased} <= 50 THEN 2 "
        f"WHEN {purchased} <= 250 THEN 3 WHEN {purchased} <= 1000 THEN 4 ELSE 5 END"
    )


def _totals_select(where: str, real: str) -> str:
    """One row per subscription and product of the license lines matching ``where``."""
    over = "l.assigned > l.purchased"
    return (
        "SELECT s.id, l.product, s.partner_id, s.customer_id, s.kind, s.state, s.start_date, "
        "s.end_date, s.renewal_date, s.auto_renew, "
        "SUM(l.purchased), SUM(l.assigned), SUM(l.used), "
        "SUM(CASE WHEN l.purchased > l.assigned THEN l.purchased - l.assigned ELSE 0 END), "
        f"SUM(CASE WHEN {over} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {over} THEN l.purchased ELSE 0 END), "
        f"SUM(CASE WHEN {over} THEN l.assigned ELSE 0 END), "
        f"SUM(CASE WHEN {over} THEN l.used ELSE 0 END), "
        f"{_band('SUM(l.purchased)')}, "
        f"CASE WHEN SUM(l.purchased) > 0 "
        f"THEN CAST(SUM(l.assigned) AS {real}) / CAST(SUM(l.purchased) AS {real}) END "
        "FROM license_line l JOIN subscription s ON s.id = l.subscription_id "
        f"WHERE {where} GROUP BY s.id, l.product"
    )


RATIO_BACKFILL = (
    "INSERT INTO license_ratio_count (product, band, ratio, n) "
    "SELECT product, band, ratio, COUNT(*) FROM license_product_total "
    "WHERE state = 'ACTIVE' AND purchased > 0 GROUP BY product, band, ratio"
)
WEEK_BACKFILL = (
    "INSERT INTO license_week_total "
    "(partner_id, product, week_start, purchased, assigned, used, snapshots) "
    "SELECT partner_id, product, week_start, SUM(purchased), SUM(assigned), SUM(used), COUNT(*) "
    "FROM license_snapshot GROUP BY partner_id, product, week_start"
)

# --- SQLite: row triggers ----------------------------------------------------------------------


def _sqlite_refresh(where: str, delete: str) -> str:
    return (
        f"DELETE FROM license_product_total WHERE {delete}; "
        f"INSERT INTO license_product_total ({TOTAL_COLUMNS}) {_totals_select(where, 'REAL')};"
    )


def _sqlite_line(row: str) -> str:
    return _sqlite_refresh(
        f"l.subscription_id = {row}.subscription_id AND l.product = {row}.product",
        f"subscription_id = {row}.subscription_id AND product = {row}.product",
    )


def _sqlite_subscription(row: str) -> str:
    return _sqlite_refresh(f"l.subscription_id = {row}.id", f"subscription_id = {row}.id")


_RATIO_ADD = (
    "INSERT INTO license_ratio_count (product, band, ratio, n) "
    "SELECT NEW.product, NEW.band, NEW.ratio, 1 WHERE NEW.state = 'ACTIVE' AND NEW.purchased > 0 "
    "ON CONFLICT (product, band, ratio) DO UPDATE SET n = n + 1;"
)
_RATIO_REMOVE = (
    "UPDATE license_ratio_count SET n = n - 1 WHERE OLD.state = 'ACTIVE' AND OLD.purchased > 0 "
    "AND product = OLD.product AND band = OLD.band AND ratio = OLD.ratio;"
)
_WEEK_ADD = (
    "INSERT INTO license_week_total "
    "(partner_id, product, week_start, purchased, assigned, used, snapshots) "
    "VALUES (NEW.partner_id, NEW.product, NEW.week_start, "
    "NEW.purchased, NEW.assigned, NEW.used, 1) "
    "ON CONFLICT (partner_id, product, week_start) DO UPDATE SET "
    "purchased = purchased + excluded.purchased, assigned = assigned + excluded.assigned, "
    "used = used + excluded.used, snapshots = snapshots + 1;"
)
_WEEK_REMOVE = (
    "UPDATE license_week_total SET purchased = purchased - OLD.purchased, "
    "assigned = assigned - OLD.assigned, used = used - OLD.used, snapshots = snapshots - 1 "
    "WHERE partner_id = OLD.partner_id AND product = OLD.product AND week_start = OLD.week_start;"
)
SUBSCRIPTION_COLUMNS = (
    "partner_id, customer_id, kind, state, start_date, end_date, renewal_date, auto_renew"
)

SQLITE_TRIGGERS = {
    "license_line_totals_ins": ("AFTER INSERT ON license_line", _sqlite_line("NEW")),
    "license_line_totals_upd": (
        "AFTER UPDATE ON license_line",
        _sqlite_line("OLD") + " " + _sqlite_line("NEW"),
    ),
    "license_line_totals_del": ("AFTER DELETE ON license_line", _sqlite_line("OLD")),
    "subscription_totals_ins": ("AFTER INSERT ON subscription", _sqlite_subscription("NEW")),
    "subscription_totals_upd": (
        f"AFTER UPDATE OF id, {SUBSCRIPTION_COLUMNS} ON subscription",
        _sqlite_subscription("OLD") + " " + _sqlite_subscription("NEW"),
    ),
    "subscription_totals_del": (
        "AFTER DELETE ON subscription",
        "DELETE FROM license_product_total WHERE subscription_id = OLD.id;",
    ),
    "license_product_total_ins": ("AFTER INSERT ON license_product_total", _RATIO_ADD),
    "license_product_total_upd": (
        "AFTER UPDATE ON license_product_total",
        _RATIO_REMOVE + " " + _RATIO_ADD,
    ),
    "license_product_total_del": ("AFTER DELETE ON license_product_total", _RATIO_REMOVE),
    "license_snapshot_totals_ins": ("AFTER INSERT ON license_snapshot", _WEEK_ADD),
    "license_snapshot_totals_upd": (
        "AFTER UPDATE ON license_snapshot",
        _WEEK_REMOVE + " " + _WEEK_ADD,
    ),
    "license_snapshot_totals_del": ("AFTER DELETE ON license_snapshot", _WEEK_REMOVE),
}

# --- PostgreSQL: statement triggers over transition tables --------------------------------------

PG_FUNCTIONS = [
    # Rewrites the totals of the given subscriptions and moves the ratio histogram with them.
    f"""
CREATE FUNCTION license_totals_refresh(subs integer[]) RETURNS void LANGUAGE sql AS $$
WITH gone AS (
    DELETE FROM license_product_total WHERE subscription_id = ANY(subs)
    RETURNING product, band, ratio, state, purchased
), minus AS (
    SELECT product, band, ratio, COUNT(*) AS c FROM gone
    WHERE state = 'ACTIVE' AND purchased > 0 GROUP BY product, band, ratio
)
UPDATE license_ratio_count h SET n = h.n - m.c FROM minus m
WHERE h.product = m.product AND h.band = m.band AND h.ratio = m.ratio;
WITH added AS (
    INSERT INTO license_product_total ({TOTAL_COLUMNS})
    {_totals_select("l.subscription_id = ANY(subs)", "double precision")}
    RETURNING product, band, ratio, state, purchased
)
INSERT INTO license_ratio_count (product, band, ratio, n)
SELECT product, band, ratio, COUNT(*) FROM added
WHERE state = 'ACTIVE' AND purchased > 0 GROUP BY product, band, ratio
ON CONFLICT (product, band, ratio) DO UPDATE SET n = license_ratio_count.n + excluded.n;
$$
""",
    """
CREATE FUNCTION license_line_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM license_totals_refresh(ARRAY(SELECT DISTINCT subscription_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM license_totals_refresh(ARRAY(SELECT DISTINCT subscription_id FROM old_rows));
    ELSE
        PERFORM license_totals_refresh(ARRAY(
            SELECT subscription_id FROM new_rows UNION SELECT subscription_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION subscription_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM license_totals_refresh(ARRAY(SELECT id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM license_totals_refresh(ARRAY(SELECT id FROM old_rows));
    ELSE
        PERFORM license_totals_refresh(ARRAY(
            SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
            WHERE o.id IS NULL
               OR (n.{SUBSCRIPTION_COLUMNS.replace(", ", ", n.")})
                  IS DISTINCT FROM (o.{SUBSCRIPTION_COLUMNS.replace(", ", ", o.")})
            UNION
            SELECT o.id FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id WHERE n.id IS NULL));
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION license_snapshot_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE license_week_total w
        SET purchased = w.purchased - o.p, assigned = w.assigned - o.a, used = w.used - o.u,
            snapshots = w.snapshots - o.c
        FROM (SELECT partner_id, product, week_start, SUM(purchased) AS p, SUM(assigned) AS a,
                     SUM(used) AS u, COUNT(*) AS c
              FROM old_rows GROUP BY partner_id, product, week_start) o
        WHERE w.partner_id = o.partner_id AND w.product = o.product
          AND w.week_start = o.week_start;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO license_week_total
            (partner_id, product, week_start, purchased, assigned, used, snapshots)
        SELECT partner_id, product, week_start, SUM(purchased), SUM(assigned), SUM(used),
               COUNT(*)
        FROM new_rows GROUP BY partner_id, product, week_start
        ON CONFLICT (partner_id, product, week_start) DO UPDATE SET
            purchased = license_week_total.purchased + excluded.purchased,
            assigned = license_week_total.assigned + excluded.assigned,
            used = license_week_total.used + excluded.used,
            snapshots = license_week_total.snapshots + excluded.snapshots;
    END IF;
    RETURN NULL;
END $$
""",
]
PG_FUNCTION_NAMES = (
    "license_snapshot_totals()",
    "subscription_totals()",
    "license_line_totals()",
    "license_totals_refresh(integer[])",
)


def _pg_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, 'AFTER ... REFERENCING ...'), each FOR EACH STATEMENT."""
    out = {}
    for table, function in (
        ("license_line", "license_line_totals"),
        ("subscription", "subscription_totals"),
        ("license_snapshot", "license_snapshot_totals"),
    ):
        for event, referencing in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            name = f"{table}_totals_{event.lower()[:3]}"
            out[name] = (
                table,
                f"AFTER {event} ON {table} REFERENCING {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            )
    return out


def upgrade() -> None:
    op.create_table(
        "license_product_total",
        sa.Column("subscription_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewal_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("purchased", sa.Integer(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("lines_over", sa.Integer(), nullable=False),
        sa.Column("over_purchased", sa.Integer(), nullable=False),
        sa.Column("over_assigned", sa.Integer(), nullable=False),
        sa.Column("over_used", sa.Integer(), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("subscription_id", "product"),
    )
    for name, columns in (
        ("ix_license_product_total_end", ["partner_id", "product", "end_date"]),
        ("ix_license_product_total_start", ["partner_id", "product", "start_date"]),
        ("ix_license_product_total_renewal", ["partner_id", "product", "renewal_date"]),
        ("ix_license_product_total_stale_end", ["product", "state", "end_date"]),
        ("ix_license_product_total_stale_start", ["product", "state", "start_date"]),
    ):
        op.create_index(name, "license_product_total", columns)
    op.create_table(
        "license_week_total",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("week_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purchased", sa.BigInteger(), nullable=False),
        sa.Column("assigned", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("snapshots", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "product", "week_start"),
    )
    op.create_table(
        "license_ratio_count",
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("band", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ratio", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product", "band", "ratio"),
    )
    # Build the totals of an existing database, then keep them with triggers from now on (the
    # migration runs in one transaction, so no write falls between the two).
    postgresql = op.get_bind().dialect.name == "postgresql"
    real = "double precision" if postgresql else "REAL"
    everything = _totals_select("1 = 1", real)
    op.execute(f"INSERT INTO license_product_total ({TOTAL_COLUMNS}) {everything}")
    op.execute(RATIO_BACKFILL)
    op.execute(WEEK_BACKFILL)
    for table in ("license_product_total", "license_week_total", "license_ratio_count"):
        op.execute(f"ANALYZE {table}")  # the planner's statistics for the new indexes
    if postgresql:
        for function in PG_FUNCTIONS:
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
        for function in PG_FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("license_ratio_count")
    op.drop_table("license_week_total")
    for name in (
        "ix_license_product_total_stale_start",
        "ix_license_product_total_stale_end",
        "ix_license_product_total_renewal",
        "ix_license_product_total_start",
        "ix_license_product_total_end",
    ):
        op.drop_index(name, table_name="license_product_total")
    op.drop_table("license_product_total")
