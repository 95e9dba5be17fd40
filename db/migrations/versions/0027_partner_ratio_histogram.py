"""the allocation-ratio histogram per partner: writes of two partners never wait on a shared row
(issue 16)

``license_ratio_count`` (0012) and ``license_ratio_bucket`` (0021) had one row per product, size
band and ratio (bucket) for the whole deployment: on PostgreSQL two partners' writes of
subscriptions or licence lines landing on the same ratio waited on each other's row lock until
commit. Both tables get the partner in their primary key, so that a partner's writes only touch
that partner's rows; the medians sum over partners when reading. The key leads with
(product, band, ratio | bucket), the order the medians read in; on SQLite the tables are
``WITHOUT ROWID``, so that order also holds the counts.

Rows whose count reaches 0 are deleted in the writer's transaction (they are the writer's
partner's own): the histogram holds only non-zero counts, and the buckets the medians read stay
as few as the partners' distinct buckets.

The tables are rebuilt and recomputed from ``license_product_total`` (the old rows carry no
partner); the triggers of 0012 and 0021 that wrote them are replaced under the same names, so
the downgrades of 0021 and 0012 still find them. The SQL is copied here, not imported: the
migrations are frozen.

Revision ID: 0027_partner_ratio_histogram
Revises: 0026_totals_truncate
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_partner_ratio_histogram"
down_revision: str | None = "0026_totals_truncate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# --- the SQL both backends share -------------------------------------------------------------

TOTAL_COLUMNS = (
    "subscription_id, product, partner_id, customer_id, kind, state, start_date, end_date, "
    "renewal_date, auto_renew, purchased, assigned, used, available, lines_over, "
    "over_purchased, over_assigned, over_used, band, ratio"
)
COUNTED = "state = 'ACTIVE' AND purchased > 0"  # the totals the histogram counts


def _band(purchased: str) -> str:
    """db.queries.analytics.measures.SIZE_BANDS: 1-10, 11-50, 51-250, 251-1000, 1001+."""
    return (
        f"CASE WHEN {purchased} <= 10 THEN 1 WHEN {purchased} <= 50 THEN 2 "
        f"WHEN {purchased} <= 250 THEN 3 WHEN {purchased} <= 1000 THEN 4 ELSE 5 END"
    )


def _totals_select(where: str, real: str) -> str:
    """One row per subscription and product of the license lines matching ``where`` (0012)."""
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


def _bucket(postgresql: bool, ratio: str) -> str:
    """floor(ratio * 256): exact, the scale is a power of two (0021)."""
    if postgresql:
        return f"CAST(floor({ratio} * 256) AS bigint)"
    return f"CAST({ratio} * 256 AS INTEGER)"  # truncation: floor for ratios >= 0


def _backfill(postgresql: bool, per_partner: bool) -> list[str]:
    """Both levels recomputed from the totals (per partner, or deployment-wide as before)."""
    p = "partner_id, " if per_partner else ""
    bucket = _bucket(postgresql, "ratio")
    return [
        f"INSERT INTO license_ratio_count ({p}product, band, ratio, n) "
        f"SELECT {p}product, band, ratio, COUNT(*) FROM license_product_total "
        f"WHERE {COUNTED} GROUP BY {p}product, band, ratio",
        f"INSERT INTO license_ratio_bucket ({p}product, band, bucket, n) "
        f"SELECT {p}product, band, {bucket}, SUM(n) FROM license_ratio_count "
        f"GROUP BY {p}product, band, {bucket}",
    ]


def _create_tables(per_partner: bool) -> None:
    partner = [sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False)]
    key = ["partner_id"] if per_partner else []
    op.create_table(
        "license_ratio_count",
        *(partner if per_partner else []),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("band", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ratio", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product", "band", "ratio", *key),
        sqlite_with_rowid=not per_partner,
    )
    partner = [sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False)]
    op.create_table(
        "license_ratio_bucket",
        *(partner if per_partner else []),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("band", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("product", "band", "bucket", *key),
        sqlite_with_rowid=not per_partner,
    )


# --- SQLite: row triggers (the names of 0012 and 0021) -------------------------------------------

RATIO_KEY = "product = {r}.product AND band = {r}.band AND ratio = {r}.ratio"
BUCKET_KEY = "product = {r}.product AND band = {r}.band AND bucket = " + _bucket(False, "{r}.ratio")


def _sqlite_ratio_add(row: str, per_partner: bool) -> str:
    p, pv, pk = ("", "", "")
    if per_partner:
        p, pv, pk = "partner_id, ", f"{row}.partner_id, ", ", partner_id"
    return (
        f"INSERT INTO license_ratio_count ({p}product, band, ratio, n) "
        f"SELECT {pv}{row}.product, {row}.band, {row}.ratio, 1 "
        f"WHERE {row}.state = 'ACTIVE' AND {row}.purchased > 0 "
        f"ON CONFLICT (product, band, ratio{pk}) DO UPDATE SET n = n + 1;"
    )


def _sqlite_ratio_remove(row: str, per_partner: bool) -> str:
    key = RATIO_KEY.format(r=row) + (f" AND partner_id = {row}.partner_id" if per_partner else "")
    out = (
        f"UPDATE license_ratio_count SET n = n - 1 "
        f"WHERE {row}.state = 'ACTIVE' AND {row}.purchased > 0 AND {key};"
    )
    if per_partner:
        out += f" DELETE FROM license_ratio_count WHERE {key} AND n = 0;"
    return out


def _sqlite_bucket_add(row: str, sign: str, per_partner: bool) -> str:
    bucket = _bucket(False, f"{row}.ratio")
    if not per_partner:  # 0021's
        return (
            "INSERT INTO license_ratio_bucket (product, band, bucket, n) "
            f"VALUES ({row}.product, {row}.band, {bucket}, {sign}{row}.n) "
            "ON CONFLICT (product, band, bucket) DO UPDATE SET n = n + excluded.n;"
        )
    return (
        "INSERT INTO license_ratio_bucket (partner_id, product, band, bucket, n) "
        f"SELECT {row}.partner_id, {row}.product, {row}.band, {bucket}, {sign}{row}.n "
        f"WHERE {row}.n <> 0 "
        "ON CONFLICT (product, band, bucket, partner_id) DO UPDATE SET n = n + excluded.n;"
    )


def _sqlite_bucket_drop_empty(row: str) -> str:
    key = BUCKET_KEY.format(r=row)
    return (
        f"DELETE FROM license_ratio_bucket WHERE {key} AND partner_id = {row}.partner_id AND n = 0;"
    )


def sqlite_triggers(per_partner: bool) -> dict[str, tuple[str, str]]:
    add, remove = _sqlite_ratio_add, _sqlite_ratio_remove
    bucket = _sqlite_bucket_add
    if per_partner:
        # An update adds first: a total that keeps its ratio never empties (and deletes) its row.
        total_update = add("NEW", True) + " " + remove("OLD", True)
        count_update = (
            bucket("NEW", "", True)
            + " "
            + bucket("OLD", "-", True)
            + " "
            + _sqlite_bucket_drop_empty("OLD")
        )
        count_delete = bucket("OLD", "-", True) + " " + _sqlite_bucket_drop_empty("OLD")
    else:
        total_update = remove("OLD", False) + " " + add("NEW", False)
        count_update = bucket("OLD", "-", False) + " " + bucket("NEW", "", False)
        count_delete = bucket("OLD", "-", False)
    return {
        "license_product_total_ins": (
            "AFTER INSERT ON license_product_total",
            add("NEW", per_partner),
        ),
        "license_product_total_upd": ("AFTER UPDATE ON license_product_total", total_update),
        "license_product_total_del": (
            "AFTER DELETE ON license_product_total",
            remove("OLD", per_partner),
        ),
        "license_ratio_bucket_ins": (
            "AFTER INSERT ON license_ratio_count",
            bucket("NEW", "", per_partner),
        ),
        "license_ratio_bucket_upd": ("AFTER UPDATE ON license_ratio_count", count_update),
        "license_ratio_bucket_del": ("AFTER DELETE ON license_ratio_count", count_delete),
    }


# --- PostgreSQL: statement triggers over transition tables ----------------------------------------

# Rewrites the totals of the given subscriptions and moves each one's partner's histogram rows
# by the difference: the old totals' keys are kept aside, the new totals inserted, and one upsert
# adds (new - old) per key, in key order, skipping keys whose count does not change (a write
# that keeps a total's ratio touches no histogram row). An upsert, so a row another transaction
# of the partner emptied and deleted meanwhile is inserted again rather than lost; one ordered
# pass, so two such refreshes of one partner take its rows in the same order. Then the rows left
# at 0 are deleted (the writer already holds their locks).
REFRESH = f"""
CREATE OR REPLACE FUNCTION license_totals_refresh(subs integer[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g_partner integer[];
    g_product text[];
    g_band integer[];
    g_ratio double precision[];
    e_partner integer[];
    e_product text[];
    e_band integer[];
    e_ratio double precision[];
BEGIN
    WITH gone AS (
        DELETE FROM license_product_total WHERE subscription_id = ANY(subs)
        RETURNING partner_id, product, band, ratio, state, purchased
    )
    SELECT array_agg(partner_id), array_agg(product), array_agg(band), array_agg(ratio)
    INTO g_partner, g_product, g_band, g_ratio FROM gone WHERE {COUNTED};
    WITH added AS (
        INSERT INTO license_product_total ({TOTAL_COLUMNS})
        {_totals_select("l.subscription_id = ANY(subs)", "double precision")}
        RETURNING partner_id, product, band, ratio, state, purchased
    ), delta AS (
        SELECT partner_id, product, band, ratio, SUM(d) AS d FROM (
            SELECT partner_id, product, band, ratio, 1 AS d FROM added WHERE {COUNTED}
            UNION ALL
            SELECT partner_id, product, band, ratio, -1 FROM unnest(
                g_partner, g_product, g_band, g_ratio) AS g(partner_id, product, band, ratio)
        ) x
        GROUP BY partner_id, product, band, ratio HAVING SUM(d) <> 0
    ), moved AS (
        INSERT INTO license_ratio_count AS h (partner_id, product, band, ratio, n)
        SELECT partner_id, product, band, ratio, d FROM delta
        ORDER BY product, band, ratio, partner_id
        ON CONFLICT (product, band, ratio, partner_id) DO UPDATE SET n = h.n + excluded.n
        RETURNING h.partner_id, h.product, h.band, h.ratio, h.n
    )
    SELECT array_agg(partner_id), array_agg(product), array_agg(band), array_agg(ratio)
    INTO e_partner, e_product, e_band, e_ratio FROM moved WHERE n = 0;
    IF e_partner IS NOT NULL THEN
        DELETE FROM license_ratio_count h
        USING unnest(e_partner, e_product, e_band, e_ratio) AS e(partner_id, product, band, ratio)
        WHERE h.product = e.product AND h.band = e.band AND h.ratio = e.ratio
          AND h.partner_id = e.partner_id AND h.n = 0;
    END IF;
END $$
"""
# 0012's, for the downgrade.
OLD_REFRESH = f"""
CREATE OR REPLACE FUNCTION license_totals_refresh(subs integer[]) RETURNS void
LANGUAGE sql AS $$
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
"""


def _pg_bucket_delta(sources: list[tuple[str, str]], per_partner: bool) -> str:
    p = "partner_id, " if per_partner else ""
    pk = ", partner_id" if per_partner else ""
    rows = " UNION ALL ".join(
        f"SELECT {p}product, band, {_bucket(True, 'ratio')} AS bucket, {sign} * n AS n "
        f"FROM {source}"
        for source, sign in sources
    )
    return (
        f"INSERT INTO license_ratio_bucket ({p}product, band, bucket, n) "
        f"SELECT {p}product, band, bucket, SUM(n) FROM ({rows}) d "
        f"GROUP BY {p}product, band, bucket HAVING SUM(n) <> 0 "
        f"ORDER BY product, band, bucket{pk} "
        f"ON CONFLICT (product, band, bucket{pk}) "
        "DO UPDATE SET n = license_ratio_bucket.n + excluded.n;"
    )


def _pg_bucket_drop_empty(per_partner: bool) -> str:
    """The buckets a statement took counts out of and left at 0 (0 can only follow a removal)."""
    if not per_partner:
        return ""
    return (
        "DELETE FROM license_ratio_bucket b USING ("
        f"SELECT DISTINCT partner_id, product, band, {_bucket(True, 'ratio')} AS bucket "
        "FROM old_rows) o "
        "WHERE b.product = o.product AND b.band = o.band AND b.bucket = o.bucket "
        "AND b.partner_id = o.partner_id AND b.n = 0;"
    )


def pg_buckets_function(per_partner: bool) -> str:
    drop = _pg_bucket_drop_empty(per_partner)
    return f"""
CREATE OR REPLACE FUNCTION license_ratio_buckets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM license_ratio_bucket;
    ELSIF TG_OP = 'INSERT' THEN
        {_pg_bucket_delta([("new_rows", "1")], per_partner)}
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_bucket_delta([("old_rows", "-1")], per_partner)}
        {drop}
    ELSE
        {_pg_bucket_delta([("new_rows", "1"), ("old_rows", "-1")], per_partner)}
        {drop}
    END IF;
    RETURN NULL;
END $$
"""


def _pg_bucket_triggers() -> dict[str, str]:
    """0021's triggers on license_ratio_count: name -> body, each FOR EACH STATEMENT."""
    out = {}
    for event, referencing in (
        ("INSERT", "REFERENCING NEW TABLE AS new_rows "),
        ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows "),
        ("TRUNCATE", ""),
    ):
        out[f"license_ratio_buckets_{event.lower()[:3]}"] = (
            f"AFTER {event} ON license_ratio_count {referencing}"
            "FOR EACH STATEMENT EXECUTE FUNCTION license_ratio_buckets()"
        )
    return out


# A TRUNCATE of the totals themselves (an operator's; PostgreSQL fires no DELETE trigger for it)
# empties the histogram that counts them, as 0021's empties the KPI spans (the buckets follow
# through their own DELETE trigger). 0012 to 0026 left the histogram counting totals that were
# gone.
TOTALS_TRUNCATED = """
CREATE FUNCTION license_ratio_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM license_ratio_count;
    RETURN NULL;
END $$
"""
TOTALS_TRUNCATED_TRIGGER = (
    "CREATE TRIGGER license_product_total_ratio_tru AFTER TRUNCATE ON license_product_total "
    "FOR EACH STATEMENT EXECUTE FUNCTION license_ratio_counts_truncated()"
)


# --- the steps --------------------------------------------------------------------------------


def _rebuild(per_partner: bool) -> None:
    """Drop the histogram (and its triggers), create it in the given shape, recompute it from
    the totals and keep it with the matching triggers (one transaction: no write between)."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for name in _pg_bucket_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON license_ratio_count")
    else:
        for name in sqlite_triggers(per_partner):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("license_ratio_bucket")
    op.drop_table("license_ratio_count")
    _create_tables(per_partner)
    for statement in _backfill(postgresql, per_partner):
        op.execute(statement)
    for table in ("license_ratio_count", "license_ratio_bucket"):
        op.execute(f"ANALYZE {table}")
    if postgresql:
        op.execute(REFRESH if per_partner else OLD_REFRESH)
        op.execute(pg_buckets_function(per_partner))
        for name, body in _pg_bucket_triggers().items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, (event, body) in sqlite_triggers(per_partner).items():
            op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW BEGIN {body} END")


def upgrade() -> None:
    _rebuild(per_partner=True)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TOTALS_TRUNCATED)
        op.execute(TOTALS_TRUNCATED_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER IF EXISTS license_product_total_ratio_tru ON license_product_total"
        )
        op.execute("DROP FUNCTION IF EXISTS license_ratio_counts_truncated()")
    _rebuild(per_partner=False)
