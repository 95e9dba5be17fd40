"""the ratio histogram's writers never wait on a shared row: a deployment-wide base that only
the holder of a try-lock moves, and append-only deltas (issue 16)

``license_ratio_count`` (0012) and ``license_ratio_bucket`` (0021) have one row per product,
size band and ratio (bucket) for the whole deployment: on PostgreSQL two partners' writes of
subscriptions or licence lines landing on the same ratio waited on each other's row lock until
commit. They stay deployment-wide (the medians read a few hundred bucket rows whatever the
number of partners), but on PostgreSQL a write no longer upserts them directly:

- ``license_totals_refresh`` computes the write's net change per (product, band, ratio), as
  before. If the transaction gets ``pg_try_advisory_xact_lock(FOLD_LOCK)`` (READ COMMITTED
  only), it *folds*: one statement deletes every row of ``license_ratio_delta`` its snapshot
  sees (committed ones and its own), adds them and its own change to the base by one ordered
  upsert, and the rows left at 0 are deleted. Otherwise it appends its change to
  ``license_ratio_delta`` (no unique key: the insert waits on nobody) and goes on.
- At most one transaction holds the lock, until it ends: only it moves base rows, so no writer
  ever waits on one (and folders cannot deadlock on them). A writer that does not get the lock
  never waits for it. A folder's DELETE takes a snapshot after it got the lock, hence after the
  previous folder's commit: each delta row is moved exactly once; deltas of transactions still
  open are invisible to it and stay for a later fold; a folder that rolls back restores the
  deltas it took. The base plus the committed deltas is the histogram at every moment, which
  is what the medians read.
- A TRUNCATE of ``license_product_total`` empties the base and the deltas (364ec9a: 0012 to 0026
  kept counting totals that were gone); a TRUNCATE of ``license_ratio_delta`` itself recomputes
  the base from the totals (the pending changes it threw away are in them).

``license_ratio_bucket`` is kept from the base by 0021's statement triggers, which now also
delete buckets reaching 0. On SQLite (one writer at a time) the triggers of 0012 and 0021 keep
moving the base directly and ``license_ratio_delta`` stays empty: it exists so that the medians'
statements are the same on both backends. The upgrade recomputes the base from the totals on
both (dropping 0026's rows left at 0, and anything a TRUNCATE left behind before 364ec9a).

The SQL is copied here, not imported: the migrations are frozen.

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

# pg_try_advisory_xact_lock's key of the fold (single bigint key; db.calls_partner and
# db.webhooks.timed use others).
FOLD_LOCK = 16_027_001

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


def _bucket(ratio: str) -> str:
    """floor(ratio * 256) on PostgreSQL: exact, the scale is a power of two (0021)."""
    return f"CAST(floor({ratio} * 256) AS bigint)"


# The base recomputed from the totals (the buckets follow through their triggers).
RECOMPUTE = [
    "DELETE FROM license_ratio_count",
    "DELETE FROM license_ratio_bucket",
    "INSERT INTO license_ratio_count (product, band, ratio, n) "
    f"SELECT product, band, ratio, COUNT(*) FROM license_product_total WHERE {COUNTED} "
    "GROUP BY product, band, ratio ORDER BY product, band, ratio",
]

# --- PostgreSQL -------------------------------------------------------------------------------

# Moves every delta row this statement's snapshot sees, plus the caller's own change (arrays
# of one (product, band, ratio, n) per key; NULL for none), into the base: one upsert in key
# order, keys whose sum is 0 untouched; then the rows left at 0 are deleted (separate
# statement: a statement cannot see its own upsert). Only the holder of FOLD_LOCK calls it.
FOLD = """
CREATE FUNCTION license_ratio_fold(
    c_product text[], c_band integer[], c_ratio double precision[], c_n integer[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e_product text[];
    e_band integer[];
    e_ratio double precision[];
BEGIN
    WITH moved AS (
        DELETE FROM license_ratio_delta RETURNING product, band, ratio, n
    ), net AS (
        SELECT product, band, ratio, SUM(n) AS n FROM (
            SELECT product, band, ratio, n FROM moved
            UNION ALL
            SELECT product, band, ratio, n
            FROM unnest(c_product, c_band, c_ratio, c_n) AS c(product, band, ratio, n)
        ) x
        GROUP BY product, band, ratio HAVING SUM(n) <> 0
    ), folded AS (
        INSERT INTO license_ratio_count AS h (product, band, ratio, n)
        SELECT product, band, ratio, n FROM net ORDER BY product, band, ratio
        ON CONFLICT (product, band, ratio) DO UPDATE SET n = h.n + excluded.n
        RETURNING h.product, h.band, h.ratio, h.n
    )
    SELECT array_agg(product), array_agg(band), array_agg(ratio)
    INTO e_product, e_band, e_ratio FROM folded WHERE n = 0;
    IF e_product IS NOT NULL THEN
        DELETE FROM license_ratio_count h
        USING unnest(e_product, e_band, e_ratio) AS e(product, band, ratio)
        WHERE h.product = e.product AND h.band = e.band AND h.ratio = e.ratio AND h.n = 0;
    END IF;
END $$
"""

# Rewrites the totals of the given subscriptions and computes the histogram's net change
# (new - old per key; a write keeping a total's ratio changes nothing); the holder of the fold
# lock folds it with the pending deltas, any other writer appends it and never waits. READ
# COMMITTED only: the fold needs a snapshot taken after the lock (a REPEATABLE READ writer
# appends; the next READ COMMITTED writer folds its rows).
REFRESH = f"""
CREATE OR REPLACE FUNCTION license_totals_refresh(subs integer[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g_product text[];
    g_band integer[];
    g_ratio double precision[];
    c_product text[];
    c_band integer[];
    c_ratio double precision[];
    c_n integer[];
BEGIN
    WITH gone AS (
        DELETE FROM license_product_total WHERE subscription_id = ANY(subs)
        RETURNING product, band, ratio, state, purchased
    )
    SELECT array_agg(product), array_agg(band), array_agg(ratio)
    INTO g_product, g_band, g_ratio FROM gone WHERE {COUNTED};
    WITH added AS (
        INSERT INTO license_product_total ({TOTAL_COLUMNS})
        {_totals_select("l.subscription_id = ANY(subs)", "double precision")}
        RETURNING product, band, ratio, state, purchased
    ), change AS (
        SELECT product, band, ratio, SUM(d) AS n FROM (
            SELECT product, band, ratio, 1 AS d FROM added WHERE {COUNTED}
            UNION ALL
            SELECT product, band, ratio, -1
            FROM unnest(g_product, g_band, g_ratio) AS g(product, band, ratio)
        ) x
        GROUP BY product, band, ratio HAVING SUM(d) <> 0
    )
    SELECT array_agg(product), array_agg(band), array_agg(ratio), array_agg(n::integer)
    INTO c_product, c_band, c_ratio, c_n FROM change;
    IF c_product IS NULL THEN
        RETURN;
    END IF;
    IF current_setting('transaction_isolation') = 'read committed'
       AND pg_try_advisory_xact_lock({FOLD_LOCK}) THEN
        PERFORM license_ratio_fold(c_product, c_band, c_ratio, c_n);
    ELSE
        INSERT INTO license_ratio_delta (product, band, ratio, n)
        SELECT product, band, ratio, n
        FROM unnest(c_product, c_band, c_ratio, c_n) AS c(product, band, ratio, n);
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


def _pg_bucket_delta(sources: list[tuple[str, str]]) -> str:
    """0021's: the buckets move by the counts' change, one ordered upsert."""
    rows = " UNION ALL ".join(
        f"SELECT product, band, {_bucket('ratio')} AS bucket, {sign} * n AS n FROM {source}"
        for source, sign in sources
    )
    return (
        "INSERT INTO license_ratio_bucket (product, band, bucket, n) "
        f"SELECT product, band, bucket, SUM(n) FROM ({rows}) d "
        "GROUP BY product, band, bucket HAVING SUM(n) <> 0 ORDER BY product, band, bucket "
        "ON CONFLICT (product, band, bucket) DO UPDATE SET n = license_ratio_bucket.n + excluded.n;"
    )


# The buckets a statement took counts out of and left at 0 (0 can only follow a removal); only
# the holder of the fold lock moves the counts, so deleting them waits on nobody.
DROP_EMPTY_BUCKETS = (
    "DELETE FROM license_ratio_bucket b USING ("
    f"SELECT DISTINCT product, band, {_bucket('ratio')} AS bucket FROM old_rows) o "
    "WHERE b.product = o.product AND b.band = o.band AND b.bucket = o.bucket AND b.n = 0;"
)


def pg_buckets_function(drop_empty: bool) -> str:
    """0021's trigger function on license_ratio_count (``drop_empty``: and 0027's deletion of
    the buckets reaching 0)."""
    drop = DROP_EMPTY_BUCKETS if drop_empty else ""
    return f"""
CREATE OR REPLACE FUNCTION license_ratio_buckets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM license_ratio_bucket;
    ELSIF TG_OP = 'INSERT' THEN
        {_pg_bucket_delta([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_bucket_delta([("old_rows", "-1")])}
        {drop}
    ELSE
        {_pg_bucket_delta([("new_rows", "1"), ("old_rows", "-1")])}
        {drop}
    END IF;
    RETURN NULL;
END $$
"""


# A TRUNCATE of the totals themselves (an operator's; PostgreSQL fires no DELETE trigger for it)
# empties the histogram that counts them, its base and its pending deltas, as 0021's empties
# the KPI spans (the buckets follow through their own DELETE trigger). 0012 to 0026 left the
# histogram counting totals that were gone. Every writer of a delta holds a lock on the totals
# (it changed them first), so the TRUNCATE waits for it to end: no delta is left behind.
TOTALS_TRUNCATED = """
CREATE FUNCTION license_ratio_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM license_ratio_count;
    DELETE FROM license_ratio_delta;
    RETURN NULL;
END $$
"""
TOTALS_TRUNCATED_TRIGGER = (
    "CREATE TRIGGER license_product_total_ratio_tru AFTER TRUNCATE ON license_product_total "
    "FOR EACH STATEMENT EXECUTE FUNCTION license_ratio_counts_truncated()"
)
# A TRUNCATE of the pending deltas throws away changes the base does not hold yet: the base is
# recomputed from the totals. Every writer of a histogram change touches the delta table
# (appending, or deleting what it folds) before it commits, so the TRUNCATE's lock orders it:
# a writer done before is in the totals read here; one after finds the new base.
DELTAS_TRUNCATED = f"""
CREATE FUNCTION license_ratio_deltas_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {"; ".join(RECOMPUTE)};
    RETURN NULL;
END $$
"""
DELTAS_TRUNCATED_TRIGGER = (
    "CREATE TRIGGER license_ratio_delta_tru AFTER TRUNCATE ON license_ratio_delta "
    "FOR EACH STATEMENT EXECUTE FUNCTION license_ratio_deltas_truncated()"
)


# --- the steps --------------------------------------------------------------------------------


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "license_ratio_delta",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("product", sa.String(length=32), nullable=False),
        sa.Column("band", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ratio", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    if postgresql:
        op.execute(pg_buckets_function(drop_empty=True))
    for statement in RECOMPUTE:  # the buckets follow through the triggers of 0021
        op.execute(statement)
    for table in ("license_ratio_count", "license_ratio_bucket"):
        op.execute(f"ANALYZE {table}")
    if postgresql:
        op.execute(FOLD)
        op.execute(REFRESH)
        op.execute(TOTALS_TRUNCATED)
        op.execute(TOTALS_TRUNCATED_TRIGGER)
        op.execute(DELTAS_TRUNCATED)
        op.execute(DELTAS_TRUNCATED_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The pending deltas go into the base first (waiting for a folder still at work).
        op.execute(f"SELECT pg_advisory_xact_lock({FOLD_LOCK})")
        op.execute("SELECT license_ratio_fold(NULL, NULL, NULL, NULL)")
        op.execute("DROP TRIGGER IF EXISTS license_ratio_delta_tru ON license_ratio_delta")
        op.execute("DROP FUNCTION IF EXISTS license_ratio_deltas_truncated()")
        op.execute(
            "DROP TRIGGER IF EXISTS license_product_total_ratio_tru ON license_product_total"
        )
        op.execute("DROP FUNCTION IF EXISTS license_ratio_counts_truncated()")
        op.execute(OLD_REFRESH)
        op.execute(
            "DROP FUNCTION IF EXISTS license_ratio_fold(text[], integer[], double precision[], "
            "integer[])"
        )
        op.execute(pg_buckets_function(drop_empty=False))
    op.drop_table("license_ratio_delta")
