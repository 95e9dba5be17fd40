"""SQLite: rebuild the calling aggregates in one streamed pass over the records.

SQLite has no hash aggregation: each ``GROUP BY`` of the SQL rebuild would sort every record of
the refreshed weeks. Here the records of the refreshed customers and weeks are read once,
unsorted, through the driver's cursor, and summed in Python; the definitions are those of the
SQL rebuild (``db.ingest.aggregates``), which PostgreSQL uses, and both backends run the same
reference tests. Week starts stay in SQLite's stored text form from read to write.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from db.calls_models import CALL_WEEKLY_DETAIL, DETAIL_COLUMNS
from db.enums import CallFeature, EndpointType

if TYPE_CHECKING:
    from db.ingest.aggregates import QualityThresholds

FETCH = 20_000
FULL_SCAN_SHARE = 0.05  # above this share of all records, a table scan beats the index

# Positions in a detail row (after customer_id, week_start, partner_id).
_ENDPOINTS = {e.value: 14 + 2 * i for i, e in enumerate(EndpointType)}
_FEATURES = {f.value: 24 + i for i, f in enumerate(CallFeature)}
_VOLUME = 34
_WIDTH = len(DETAIL_COLUMNS)  # 7 + 7 day columns, 2 per endpoint type, 1 per feature, 3
_WEEKDAY: dict[str, int] = {}  # "YYYY-MM-DD" -> 0 (Sunday) .. 6


def _marks(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


def _day_of_week(day: str) -> int:
    found = _WEEKDAY.get(day)
    if found is None:
        found = (date.fromisoformat(day).weekday() + 1) % 7
        if len(_WEEKDAY) < 100_000:
            _WEEKDAY[day] = found
    return found


async def rebuild(
    conn: AsyncConnection,
    customers: list[int],
    weeks: list[str],
    thresholds: QualityThresholds,
) -> None:
    """Insert the aggregate rows of ``customers`` x ``weeks`` (stored text) from the records;
    the caller deleted the old ones."""
    where = f"customer_id IN ({_marks(customers)}) AND week_start IN ({_marks(weeks)})"
    params = (*customers, *weeks)
    hint = await _scan_hint(conn, where, params)
    # (customer, week) -> [partner, calls, seconds, poor, queue, answered, abandoned,
    #                       answered wait, abandoned wait]
    weekly: dict[tuple[int, str], list[int]] = {}
    detail: dict[tuple[int, str], list[int]] = {}
    per_user: defaultdict[tuple[int, str, str], int] = defaultdict(int)
    # The driver's cursor, not a SQLAlchemy stream: records are summed as they arrive, in large
    # fetches (a SQLAlchemy row stream costs several times the query itself).
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    sql = (
        "SELECT customer_id, week_start, partner_id, user_id, substr(started_at, 1, 10), "
        "duration_seconds, endpoint_type, packet_loss_percent, jitter_ms, latency_ms, "
        f"features, queue_id, wait_seconds, answered, abandoned FROM call_record {hint} "
        f"WHERE {where}"
    )
    async with driver.execute(sql, params) as cursor:
        while chunk := await cursor.fetchmany(FETCH):
            _add(chunk, thresholds, weekly, detail, per_user)
    for (customer, week, _user), n in per_user.items():
        detail[(customer, week)][_VOLUME + (0 if n <= 10 else 1 if n <= 50 else 2)] += 1
    weekly_rows = [
        (c, w, v[0], v[1], v[2], sum(detail[(c, w)][_VOLUME:]), *v[3:])
        for (c, w), v in weekly.items()
    ]
    detail_rows = [(c, w, weekly[(c, w)][0], *v) for (c, w), v in detail.items()]
    if weekly_rows:
        await conn.exec_driver_sql(
            "INSERT INTO call_weekly_aggregate (customer_id, week_start, partner_id, calls, "
            "duration_seconds, active_users, poor_calls, queue_calls, answered_calls, "
            "abandoned_calls, answered_wait_seconds, abandoned_wait_seconds) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            weekly_rows,
        )
        await conn.exec_driver_sql(
            f"INSERT INTO {CALL_WEEKLY_DETAIL.name} (customer_id, week_start, partner_id, "
            f"{', '.join(DETAIL_COLUMNS)}) VALUES ({_marks([0] * (3 + _WIDTH))})",
            detail_rows,
        )


def _add(
    chunk: list[tuple[Any, ...]],
    thresholds: QualityThresholds,
    weekly: dict[tuple[int, str], list[int]],
    detail: dict[tuple[int, str], list[int]],
    per_user: defaultdict[tuple[int, str, str], int],
) -> None:
    loss_max = thresholds.packet_loss_percent
    jitter_max = thresholds.jitter_ms
    latency_max = thresholds.latency_ms
    endpoints, features, weekday = _ENDPOINTS, _FEATURES, _day_of_week
    for (
        customer,
        week,
        partner,
        user,
        day,
        seconds,
        kind,
        loss,
        jitter,
        latency,
        used,
        queue,
        wait,
        answered,
        abandoned,
    ) in chunk:
        poor = 1 if (loss > loss_max or jitter > jitter_max or latency > latency_max) else 0
        key = (customer, week)
        w = weekly.get(key)
        if w is None:
            w = weekly[key] = [partner, 0, 0, 0, 0, 0, 0, 0, 0]
            d = detail[key] = [0] * _WIDTH
        else:
            d = detail[key]
        w[1] += 1
        w[2] += seconds
        w[3] += poor
        if queue is not None:
            w[4] += 1
            if answered:
                w[5] += 1
                w[7] += wait
            if abandoned:
                w[6] += 1
                w[8] += wait
        per_user[(customer, week, user)] += 1
        i = weekday(day)
        d[i] += 1
        d[7 + i] += seconds
        e = endpoints[kind]
        d[e] += 1
        d[e + 1] += poor
        if used:
            for name in used.split(";"):
                column = features.get(name)
                if column is not None:
                    d[column] += 1


async def _scan_hint(conn: AsyncConnection, where: str, params: tuple[Any, ...]) -> str:
    """``NOT INDEXED`` when the refreshed records are a large share of the table (a sequential
    scan then beats one index probe per record); the count itself reads the index only."""
    touched = (
        await conn.exec_driver_sql(f"SELECT count(*) FROM call_record WHERE {where}", params)
    ).scalar_one()
    total = (await conn.exec_driver_sql("SELECT max(id) FROM call_record")).scalar_one() or 0
    return "NOT INDEXED" if touched > FULL_SCAN_SHARE * total else ""


def week_texts(weeks: list[datetime]) -> list[str]:
    """Week starts in their stored SQLite text form."""
    from db.ingest.store import sqlite_datetime

    return [sqlite_datetime(w) for w in weeks]
