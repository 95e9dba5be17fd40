"""Maintained license aggregates (issue 16): what the license dashboard reads instead of
rescanning license lines and weekly snapshots on every request.

- ``license_product_total``: one row per subscription and product having license lines, with
  the sums over those lines and the subscription's own columns copied beside them (partner,
  customer, kind, state, dates, auto-renew), its size band and allocation ratio.
- ``license_week_total``: per partner, product and week, the sums of the weekly snapshots.
- ``license_ratio_count``: per product, size band and allocation ratio, how many
  ``license_product_total`` rows in state ACTIVE with purchased > 0 have that ratio (the
  histogram the deployment-wide low-allocation medians are read from), with
  ``license_ratio_bucket`` its coarse level and ``license_ratio_delta`` the changes not yet
  folded into it (below).

Database triggers keep all three right in the same transaction as the rows they summarise, for
every writer (the API, ingestion, the seeders, an operator's SQL): migration
``0012_license_totals`` creates them (row triggers on SQLite, statement triggers with
transition tables on PostgreSQL, so a bulk ``COPY`` updates each total once per statement;
there, a partner's writers take turns on its rows under ``db.partner_write_lock``, 0032).
Nothing here depends on the clock: windows that move with ``now`` are applied when reading.

This module does not import ``db.models``; ``db.models`` imports it at its end so the tables
share its metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Float,
    Index,
    Integer,
    String,
    Table,
)
from sqlmodel import SQLModel

from db.types import UTCDateTime

__all__ = [
    "LICENSE_PRODUCT_TOTAL",
    "LICENSE_RATIO_BUCKET",
    "LICENSE_RATIO_COUNT",
    "LICENSE_RATIO_DELTA",
    "LICENSE_WEEK_TOTAL",
    "RATIO_BUCKETS",
    "RATIO_FOLD_LOCK",
]

STALE_READ = ("purchased", "band", "ratio")
# The low-allocation rows of a band, ACTIVE ones alone, in the order of their default page
# (allocation percent in tenths, then the subscription), with every column their flag, KPIs
# and thin rows read (migration 0028; see ``db.queries.analytics.common.low_subscriptions``).
LOW_INDEX = (
    "partner_id",
    "product",
    "band",
    "state",
    "allocation_tenths",
    "subscription_id",
    "ratio",
    "start_date",
    "end_date",
    "purchased",
    "assigned",
    "used",
    "available",
    "customer_id",
)
# ``tenths_sql(assigned, purchased)`` of ``db.queries.analytics.measures`` (100 * assigned /
# purchased rounded half up to one decimal, in tenths; 0 without purchased licenses), computed
# in 64 bits: a total of over a million assigned licenses must not make a write overflow on
# PostgreSQL (SQLite's integers are 64-bit anyway, so the values are the same on both).
ALLOCATION_TENTHS = (
    "CASE WHEN purchased > 0 THEN (CAST(assigned AS BIGINT) * 2000 + purchased)"
    " / (CAST(purchased AS BIGINT) * 2) ELSE 0 END"
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
    # Generated: STORED here; migration 0028 adds it VIRTUAL on SQLite (an ALTER TABLE can add
    # no STORED column; the index keeps its values) and STORED on PostgreSQL (which indexes no
    # VIRTUAL one). The triggers that write these rows name their columns: never this one.
    Column(
        "allocation_tenths",
        BigInteger,
        Computed(ALLOCATION_TENTHS, persisted=True),
        nullable=True,
    ),
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
    # The low-allocation rows: per band, the ACTIVE ones up to the tenths of half the median,
    # walked in the default page's order (migration 0028 replaced 0021's
    # ``ix_license_product_total_ratio``, keyed by the ratio and reading every state).
    Index("ix_license_product_total_low", *LOW_INDEX),
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

# The deployment-wide histogram's base: per product, band and ratio. On PostgreSQL only the
# writer holding the fold lock moves it (migration 0027): the others append their change to
# ``license_ratio_delta`` below, so two partners' writes of the same ratio never wait on a row
# here. The counts are the base plus the pending deltas; a fold deletes rows reaching 0.
LICENSE_RATIO_COUNT = Table(
    "license_ratio_count",
    SQLModel.metadata,
    Column("product", String(32), primary_key=True),
    Column("band", Integer, primary_key=True, autoincrement=False),
    Column("ratio", Float, primary_key=True),
    Column("n", Integer, nullable=False),
)

# The histogram's coarse level (migration 0021): per product, band and bucket of 1 / RATIO_BUCKETS
# (bucket = floor(ratio * RATIO_BUCKETS), exact: the scale is a power of two), the sum of
# ``license_ratio_count.n``. A median reads the buckets, then one bucket's ratios (each plus
# the pending deltas that fall in them).
RATIO_BUCKETS = 256
LICENSE_RATIO_BUCKET = Table(
    "license_ratio_bucket",
    SQLModel.metadata,
    Column("product", String(32), primary_key=True),
    Column("band", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
)

# Append-only changes of the histogram not yet folded into its base (PostgreSQL, migration
# 0027): a writer that does not get the fold lock inserts its net change per (product, band,
# ratio) here: no unique key, so the insert never waits on another transaction. The next writer
# that gets the lock moves every row it can see into the base. Always empty on SQLite (one
# writer at a time: its triggers move the base directly); the medians read it on both backends.
RATIO_FOLD_LOCK = 16_027_001  # the fold's pg_try_advisory_xact_lock key (copied in 0027)
LICENSE_RATIO_DELTA = Table(
    "license_ratio_delta",
    SQLModel.metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("product", String(32), nullable=False),
    Column("band", Integer, nullable=False, autoincrement=False),
    Column("ratio", Float, nullable=False),
    Column("n", Integer, nullable=False),
)
