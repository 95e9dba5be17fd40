"""Maintained license aggregates (issue 16): what the license dashboard reads instead of
rescanning license lines and weekly snapshots on every request.

- ``license_product_total``: one row per subscription and product having license lines, with
  the sums over those lines and the subscription's own columns copied beside them (partner,
  customer, kind, state, dates, auto-renew), its size band and allocation ratio.
- ``license_week_total``: per partner, product and week, the sums of the weekly snapshots.
- ``license_ratio_count``: per product, size band, allocation ratio and partner, how many
  ``license_product_total`` rows in state ACTIVE with purchased > 0 have that ratio (the
  histogram the deployment-wide low-allocation medians are read from, summed over partners),
  and ``license_ratio_bucket`` its coarse level (below).

Database triggers keep all three right in the same transaction as the rows they summarise, for
every writer (the API, ingestion, the seeders, an operator's SQL): migration
``0012_license_totals`` creates them (row triggers on SQLite, statement triggers with
transition tables on PostgreSQL, so a bulk ``COPY`` updates each total once per statement).
Nothing here depends on the clock: windows that move with ``now`` are applied when reading.

This module does not import ``db.models``; ``db.models`` imports it at its end so the tables
share its metadata.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table
from sqlmodel import SQLModel

from db.types import UTCDateTime

__all__ = [
    "LICENSE_PRODUCT_TOTAL",
    "LICENSE_RATIO_BUCKET",
    "LICENSE_RATIO_COUNT",
    "LICENSE_WEEK_TOTAL",
    "RATIO_BUCKETS",
]

STALE_READ = ("purchased", "band", "ratio")
RATIO_INDEX = (
    "partner_id",
    "product",
    "band",
    "ratio",
    "state",
    "start_date",
    "end_date",
    "purchased",
    "assigned",
    "used",
    "available",
    "customer_id",
    "subscription_id",
)
LICENSE_PRODUCT_TOTAL = Table(
    "license_product_total",
    SQLModel.metadata,
    Column("subscription_id", Integer, primary_key=True, autoincrement=False),
    Column("product", String(32), primary_key=True),
    Column("partner_id", Integer, nullable=False),
    Column("customer_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("start_date", UTCDateTime(), nullable=False),
    Column("end_date", UTCDateTime(), nullable=False),
    Column("renewal_date", UTCDateTime(), nullable=True),
    Column("auto_renew", Boolean, nullable=False),
    Column("purchased", Integer, nullable=False),
    Column("assigned", Integer, nullable=False),
    Column("used", Integer, nullable=False),
    Column("available", Integer, nullable=False),
    Column("lines_over", Integer, nullable=False),
    Column("over_purchased", Integer, nullable=False),
    Column("over_assigned", Integer, nullable=False),
    Column("over_used", Integer, nullable=False),
    Column("band", Integer, nullable=False),
    # assigned / purchased as a double (NULL when purchased is 0): equal fractions are equal
    # doubles (IEEE division rounds correctly), so the histogram groups them exactly.
    Column("ratio", Float, nullable=True),
    # A section's page walks one of these in its order (the subscription breaks ties) and
    # stops after its rows (migration 0021 added the subscription).
    Index("ix_license_product_total_end", "partner_id", "product", "end_date", "subscription_id"),
    Index(
        "ix_license_product_total_start", "partner_id", "product", "start_date", "subscription_id"
    ),
    Index(
        "ix_license_product_total_renewal",
        "partner_id",
        "product",
        "renewal_date",
        "subscription_id",
    ),
    # Deployment-wide: ACTIVE rows that are not in force (ended, or not started yet) correct
    # the ratio histogram at read time.
    # (migration 0021 added the columns the medians read from them: an index-only range.)
    Index("ix_license_product_total_stale_end", "product", "state", "end_date", *STALE_READ),
    Index(
        "ix_license_product_total_stale_start",
        "product",
        "state",
        "start_date",
        "end_date",
        *STALE_READ,
    ),
    # A customer's rows, which the KPI span triggers of migration 0021 rebuild on every change.
    Index("ix_license_product_total_customer", "customer_id"),
    # The low-allocation rows: per band, the ratios below half the median, with every column
    # their KPIs, filters and sort keys read (an index-only range; migration 0021).
    Index("ix_license_product_total_ratio", *RATIO_INDEX),
)

LICENSE_WEEK_TOTAL = Table(
    "license_week_total",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("product", String(32), primary_key=True),
    Column("week_start", UTCDateTime(), primary_key=True),
    Column("purchased", BigInteger, nullable=False),
    Column("assigned", BigInteger, nullable=False),
    Column("used", BigInteger, nullable=False),
    Column("snapshots", Integer, nullable=False),
)

# Per partner (migration 0027): a partner's writes touch only its own rows, so two partners'
# writes of the same ratio never wait on each other; the medians sum over partners. The key leads
# with what the medians read by (product, band, then a ratio range); on SQLite the table is
# WITHOUT ROWID, so that order holds the counts too. Rows at n = 0 are deleted by the triggers.
LICENSE_RATIO_COUNT = Table(
    "license_ratio_count",
    SQLModel.metadata,
    Column("product", String(32), primary_key=True),
    Column("band", Integer, primary_key=True, autoincrement=False),
    Column("ratio", Float, primary_key=True),
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
    sqlite_with_rowid=False,
)

# The histogram's coarse level (migration 0021): per product, band and bucket of 1 / RATIO_BUCKETS
# (bucket = floor(ratio * RATIO_BUCKETS), exact: the scale is a power of two), the sum of
# ``license_ratio_count.n``, per partner like it. A median reads the buckets of every partner
# (product, band, bucket: the key's order), then one bucket's ratios.
RATIO_BUCKETS = 256
LICENSE_RATIO_BUCKET = Table(
    "license_ratio_bucket",
    SQLModel.metadata,
    Column("product", String(32), primary_key=True),
    Column("band", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
    sqlite_with_rowid=False,
)
