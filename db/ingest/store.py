"""Writing call records idempotently: a call id is stored once per partner, whatever is resent.

Call ids are unique per partner (``ux_call_record_partner_call``), never across partners: one
partner's id neither hides another's record nor tells it that the other has that id. Records go
in with ``INSERT ... ON CONFLICT (partner_id, call_id) DO NOTHING`` (the dialect inserts of
SQLite and PostgreSQL). Big batches take driver-level paths: SQLite's ``executemany`` with values
already in their stored form; on PostgreSQL a ``COPY`` straight into ``call_record`` inside a
savepoint, falling back, when a stored call id aborts it, to a ``COPY`` into a staging table and
one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import CallRecord
from db.versioning import mark_written

RECORD: Table = CallRecord.__table__  # type: ignore[attr-defined]
R = RECORD.c

# Column order of a stored record tuple (``db.ingest.run`` builds them in this order).
RECORD_COLUMNS: tuple[str, ...] = (
    "call_id",
    "partner_id",
    "customer_id",
    "user_id",
    "started_at",
    "week_start",
    "duration_seconds",
    "direction",
    "endpoint_type",
    "packet_loss_percent",
    "jitter_ms",
    "latency_ms",
    "features",
    "queue_id",
    "wait_seconds",
    "answered",
    "abandoned",
)
StoredRecord = tuple[Any, ...]
CONFLICT_KEY = ["partner_id", "call_id"]  # the columns of ux_call_record_partner_call


def _on_conflict_insert(conn: AsyncConnection) -> Any:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect_insert(RECORD).on_conflict_do_nothing(index_elements=CONFLICT_KEY)


@dataclass
class BulkState:
    """What the PostgreSQL bulk path learnt during one load: after a batch with a stored call
    id, the next ``RETRY_AFTER`` batches go straight to the staging path."""

    skip_direct: int = 0


RETRY_AFTER = 10


async def insert_records(
    conn: AsyncConnection, rows: Sequence[StoredRecord], state: BulkState | None = None
) -> int:
    """Insert ``rows`` unless their partner has their call id stored already; the number
    inserted."""
    if not rows:
        return 0
    if len(rows) >= BULK_ROWS:
        if conn.dialect.name == "postgresql":
            return await _copy(conn, rows, state or BulkState())
        return await _sqlite_executemany(conn, rows)
    stmt = _on_conflict_insert(conn).returning(R.id)
    params = [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in rows]
    result = await conn.execute(stmt, params)
    return len(result.all())


STAGE = "call_record_stage"
BULK_ROWS = 200  # from this many rows on, the driver-level paths below pay off
_SQLITE_INSERT = (
    f"INSERT INTO call_record ({', '.join(RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in RECORD_COLUMNS)}) "
    "ON CONFLICT (partner_id, call_id) DO NOTHING"
)


def sqlite_datetime(value: datetime) -> str:
    """A UTC datetime as ``UTCDateTime`` stores it on SQLite (SQLAlchemy's DATETIME text)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


async def _sqlite_executemany(conn: AsyncConnection, rows: Sequence[StoredRecord]) -> int:
    """SQLite: the driver's ``executemany`` with values already in their stored form (the
    per-value bind processing of an ORM-level executemany costs more than the insert)."""
    weeks: dict[datetime, str] = {}
    params: list[tuple[Any, ...]] = []
    append = params.append
    for (
        call_id,
        partner_id,
        customer_id,
        user_id,
        started,
        week,
        seconds,
        direction,
        endpoint,
        loss,
        jitter,
        latency,
        features,
        queue,
        wait,
        answered,
        abandoned,
    ) in rows:
        week_text = weeks.get(week)
        if week_text is None:
            week_text = weeks[week] = sqlite_datetime(week)
        append(
            (
                call_id,
                partner_id,
                customer_id,
                user_id,
                started.isoformat(" ", "microseconds")[:26]
                if started.tzinfo is UTC
                else sqlite_datetime(started),
                week_text,
                seconds,
                direction,
                endpoint,
                loss,
                jitter,
                latency,
                features,
                queue,
                wait,
                None if answered is None else int(answered),
                None if abandoned is None else int(abandoned),
            )
        )
    result = await conn.exec_driver_sql(_SQLITE_INSERT, params)
    return int(result.rowcount)


async def _copy(conn: AsyncConnection, rows: Sequence[StoredRecord], state: BulkState) -> int:
    """PostgreSQL: COPY straight into ``call_record`` inside a savepoint, which a stored (or
    repeated) call id aborts; then, and for a while after, COPY into a staging table and
    INSERT ... SELECT ... ON CONFLICT DO NOTHING from there. New records, the bulk of any load,
    thus cost what a bare COPY costs."""
    import asyncpg

    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    mark_written(conn)  # COPY is not a statement the data version sees
    if state.skip_direct > 0:
        state.skip_direct -= 1
    else:
        savepoint = await conn.begin_nested()
        try:
            await driver.copy_records_to_table(
                "call_record", records=rows, columns=list(RECORD_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            await savepoint.rollback()
            state.skip_direct = RETRY_AFTER
        else:
            await savepoint.commit()
            return len(rows)
    return await _copy_then_insert(conn, rows)


async def _copy_then_insert(conn: AsyncConnection, rows: Sequence[StoredRecord]) -> int:
    """PostgreSQL: COPY into a per-connection staging table, then one INSERT ... SELECT."""
    columns = ", ".join(RECORD_COLUMNS)
    await conn.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM call_record WITH NO DATA"
        )
    )
    await conn.execute(text(f"TRUNCATE {STAGE}"))
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.copy_records_to_table(STAGE, records=rows, columns=list(RECORD_COLUMNS))
    result = await conn.execute(
        text(
            f"INSERT INTO call_record ({columns}) SELECT {columns} FROM {STAGE} "
            "ON CONFLICT (partner_id, call_id) DO NOTHING"
        )
    )
    return int(result.rowcount)


__all__ = [
    "RECORD_COLUMNS",
    "BulkState",
    "StoredRecord",
    "insert_records",
    "sqlite_datetime",
]
