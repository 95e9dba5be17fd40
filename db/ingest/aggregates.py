"""Recomputing the calling aggregates from the stored call records.

Aggregates are never incremented: for every (customer, week) an ingestion touched, the rows of
``call_weekly_aggregate`` and ``call_weekly_detail`` are deleted and recomputed from
``call_record``: in SQL on PostgreSQL (hash aggregation, one pass per table), in one streamed
pass on SQLite (``db.ingest.sqlite_aggregates``: SQLite would sort for every ``GROUP BY``).
Re-ingesting therefore rewrites the same numbers, and a load that was interrupted is repaired by
loading it again. The partners' sums of the refreshed weeks (``db.calls_partner``) are then
recomputed from the customer rows, in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, Table, bindparam, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.calls_models import (
    CALL_WEEKLY_DETAIL,
    DAYS,
    day_calls,
    day_seconds,
    endpoint_calls,
    endpoint_poor_calls,
    feature_calls,
)
from db.calls_partner import refresh_partner_weeks
from db.enums import CallFeature, EndpointType
from db.ingest import sqlite_aggregates
from db.ingest.store import RECORD
from db.models import AppMeta, CallWeeklyAggregate
from db.types import UTCDateTime


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


R = RECORD.c
WEEKLY = _table(CallWeeklyAggregate)
DETAIL = CALL_WEEKLY_DETAIL
AGGREGATES = (WEEKLY, DETAIL)
THRESHOLDS_KEY = "call_quality_thresholds"
CUSTOMER_CHUNK = 1000  # customers whose aggregates one set of statements recomputes


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """A call leg is poor when a metric is strictly above its threshold (DESIGN.md section 3).

    TODO(settings): read these from ``db.settings.Settings`` (``poor_packet_loss_percent``,
    ``poor_jitter_ms``, ``poor_latency_ms``) once that module carries them.
    """

    packet_loss_percent: float = 5.0
    jitter_ms: float = 150.0
    latency_ms: float = 400.0

    def is_poor(self, packet_loss_percent: float, jitter_ms: float, latency_ms: float) -> bool:
        return (
            packet_loss_percent > self.packet_loss_percent
            or jitter_ms > self.jitter_ms
            or latency_ms > self.latency_ms
        )

    @property
    def fingerprint(self) -> str:
        raw = f"{self.packet_loss_percent!r}:{self.jitter_ms!r}:{self.latency_ms!r}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


DEFAULT_THRESHOLDS = QualityThresholds()


def thresholds_from(settings: Any) -> QualityThresholds:
    """The thresholds of ``settings`` (``poor_packet_loss_percent``, ``poor_jitter_ms``,
    ``poor_latency_ms``), the defaults for those it does not carry yet."""
    return QualityThresholds(
        packet_loss_percent=float(
            getattr(settings, "poor_packet_loss_percent", DEFAULT_THRESHOLDS.packet_loss_percent)
        ),
        jitter_ms=float(getattr(settings, "poor_jitter_ms", DEFAULT_THRESHOLDS.jitter_ms)),
        latency_ms=float(getattr(settings, "poor_latency_ms", DEFAULT_THRESHOLDS.latency_ms)),
    )


async def refresh_aggregates(
    conn: AsyncConnection,
    pairs: Iterable[tuple[int, datetime]],
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> int:
    """Recompute every aggregate of the given (customer id, week start) pairs from the records.

    Customers are handled in chunks; each chunk recomputes the union of its weeks (a superset of
    the pairs, which is still exact). Returns the number of (customer, week) pairs refreshed.
    """
    weeks_of: dict[int, set[datetime]] = defaultdict(set)
    for customer_id, week in pairs:
        weeks_of[customer_id].add(week)
    customers = sorted(weeks_of)
    for i in range(0, len(customers), CUSTOMER_CHUNK):
        chunk = customers[i : i + CUSTOMER_CHUNK]
        weeks = sorted(set().union(*(weeks_of[c] for c in chunk)))
        for table in AGGREGATES:
            await conn.execute(
                delete(table).where(table.c.customer_id.in_(chunk), table.c.week_start.in_(weeks))
            )
        if conn.dialect.name == "sqlite":
            await sqlite_aggregates.rebuild(
                conn, chunk, sqlite_aggregates.week_texts(weeks), thresholds
            )
        else:
            await _rebuild_in_sql(conn, chunk, weeks, thresholds)
    # The partners' sums of those weeks, from the rows just rebuilt (db.calls_partner).
    await refresh_partner_weeks(conn, customers, set().union(*weeks_of.values()))
    return sum(len(w) for w in weeks_of.values())


def _postgresql_rebuild_sql() -> str:
    """Both tables from two scans of the records: one aggregating per customer and week (each
    per-record expression computed once, behind an ``OFFSET 0`` fence that keeps PostgreSQL from
    inlining it into every aggregate), one counting calls per user; a data-modifying CTE writes
    the detail rows and the statement itself the weekly rows."""
    day_columns = [
        *(f"count(*) FILTER (WHERE dow = {d}) AS {day_calls(d)}" for d in DAYS),
        *(f"coalesce(sum(seconds) FILTER (WHERE dow = {d}), 0) AS {day_seconds(d)}" for d in DAYS),
    ]
    endpoint_columns = [
        f"count(*) FILTER (WHERE endpoint_type = '{e.value}') AS {endpoint_calls(e)}, "
        f"coalesce(sum(poor) FILTER (WHERE endpoint_type = '{e.value}'), 0) "
        f"AS {endpoint_poor_calls(e)}"
        for e in EndpointType
    ]
    feature_columns = [
        f"count(*) FILTER (WHERE strpos(tagged, ';{f.value};') > 0) AS {feature_calls(f)}"
        for f in CallFeature
    ]
    detail_names = [
        *(day_calls(d) for d in DAYS),
        *(day_seconds(d) for d in DAYS),
        *(n for e in EndpointType for n in (endpoint_calls(e), endpoint_poor_calls(e))),
        *(feature_calls(f) for f in CallFeature),
    ]
    scope = "customer_id IN :customers AND week_start IN :weeks"
    return f"""
WITH agg AS (
    SELECT customer_id, week_start, min(partner_id) AS partner_id,
        count(*) AS calls, coalesce(sum(seconds), 0) AS seconds, coalesce(sum(poor), 0) AS poor,
        count(*) FILTER (WHERE queued) AS queue_calls,
        count(*) FILTER (WHERE answered) AS answered_calls,
        count(*) FILTER (WHERE abandoned) AS abandoned_calls,
        coalesce(sum(wait) FILTER (WHERE answered), 0) AS answered_wait,
        coalesce(sum(wait) FILTER (WHERE abandoned), 0) AS abandoned_wait,
        {", ".join([*day_columns, *endpoint_columns, *feature_columns])}
    FROM (
        SELECT customer_id, week_start, partner_id, duration_seconds AS seconds, endpoint_type,
            extract(dow FROM timezone('UTC', started_at))::int AS dow,
            (packet_loss_percent > :loss OR jitter_ms > :jitter OR latency_ms > :latency)::int
                AS poor,
            queue_id IS NOT NULL AS queued,
            coalesce(answered, false) AS answered,
            coalesce(abandoned, false) AS abandoned,
            coalesce(wait_seconds, 0) AS wait,
            ';' || features || ';' AS tagged
        FROM call_record WHERE {scope}
        OFFSET 0
    ) AS records
    GROUP BY customer_id, week_start
), users AS (
    SELECT customer_id, week_start,
        count(*) FILTER (WHERE n <= 10) AS small,
        count(*) FILTER (WHERE n > 10 AND n <= 50) AS medium,
        count(*) FILTER (WHERE n > 50) AS large
    FROM (
        SELECT customer_id, week_start, count(*) AS n FROM call_record WHERE {scope}
        GROUP BY customer_id, week_start, user_id
    ) AS per_user
    GROUP BY customer_id, week_start
), detail AS (
    INSERT INTO call_weekly_detail (customer_id, week_start, partner_id,
        {", ".join(detail_names)}, users_1_to_10, users_11_to_50, users_51_plus)
    SELECT agg.customer_id, agg.week_start, agg.partner_id,
        {", ".join(f"agg.{n}" for n in detail_names)}, users.small, users.medium, users.large
    FROM agg JOIN users USING (customer_id, week_start)
)
INSERT INTO call_weekly_aggregate (customer_id, week_start, partner_id, calls,
    duration_seconds, active_users, poor_calls, queue_calls, answered_calls, abandoned_calls,
    answered_wait_seconds, abandoned_wait_seconds)
SELECT agg.customer_id, agg.week_start, agg.partner_id, agg.calls, agg.seconds,
    users.small + users.medium + users.large, agg.poor, agg.queue_calls, agg.answered_calls,
    agg.abandoned_calls, agg.answered_wait, agg.abandoned_wait
FROM agg JOIN users USING (customer_id, week_start)
"""


_POSTGRESQL_REBUILD = _postgresql_rebuild_sql()


async def _rebuild_in_sql(
    conn: AsyncConnection,
    customers: list[int],
    weeks: list[datetime],
    thresholds: QualityThresholds,
) -> None:
    """PostgreSQL: both aggregate tables in one statement (see ``_postgresql_rebuild_sql``)."""
    stmt = text(_POSTGRESQL_REBUILD).bindparams(
        bindparam("customers", expanding=True, type_=Integer()),
        bindparam("weeks", expanding=True, type_=UTCDateTime()),
        bindparam("loss", type_=Float()),
        bindparam("jitter", type_=Float()),
        bindparam("latency", type_=Float()),
    )
    await conn.execute(
        stmt,
        {
            "customers": customers,
            "weeks": weeks,
            "loss": thresholds.packet_loss_percent,
            "jitter": thresholds.jitter_ms,
            "latency": thresholds.latency_ms,
        },
    )


async def all_pairs(conn: AsyncConnection) -> list[tuple[int, datetime]]:
    """Every (customer, week) that has call records."""
    rows = await conn.execute(select(R.customer_id, R.week_start).distinct())
    return [(int(c), w) for c, w in rows]


async def ensure_quality_thresholds(
    conn: AsyncConnection, thresholds: QualityThresholds = DEFAULT_THRESHOLDS
) -> bool:
    """Rebuild every aggregate when the poor-quality thresholds changed since the last build.

    Poor-call counts are stored, so they follow the thresholds they were computed with; the
    fingerprint of those thresholds is kept in ``app_meta``. Returns True when it rebuilt.
    """
    meta = _table(AppMeta)
    stored = (await conn.execute(select(meta.c.value).where(meta.c.key == THRESHOLDS_KEY))).scalar()
    if stored == thresholds.fingerprint:
        return False
    pairs = await all_pairs(conn)
    if pairs:
        await refresh_aggregates(conn, pairs, thresholds)
    await conn.execute(delete(meta).where(meta.c.key == THRESHOLDS_KEY))
    await conn.execute(insert(meta).values(key=THRESHOLDS_KEY, value=thresholds.fingerprint))
    return bool(pairs)


__all__ = [
    "DEFAULT_THRESHOLDS",
    "QualityThresholds",
    "all_pairs",
    "ensure_quality_thresholds",
    "refresh_aggregates",
    "thresholds_from",
]
