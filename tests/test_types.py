"""Column types: datetimes come back aware and in UTC on every backend, whatever went in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import column, func, literal, select, table

from db.types import UTCDateTime
from tests.conftest import Api


async def test_datetimes_come_back_aware_in_utc(api: Api) -> None:
    """Written from UTC, another offset and naive (taken as UTC), read back through a column's
    result processor (the fast paths per driver) and through an expression over the type; on
    SQLite also text some other writer stored with its own offset."""
    # given
    plus_two = timezone(timedelta(hours=2))
    written = [
        datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 30, 15, tzinfo=plus_two),
        datetime(2026, 3, 1, 12, 30),
    ]
    expected = [
        datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 15, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
    ]
    sqlite = api.engine.dialect.name == "sqlite"
    probe = table("probe", column("at", UTCDateTime()))
    async with api.engine.begin() as conn:
        kind = "DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE"
        await conn.exec_driver_sql(f"CREATE TEMPORARY TABLE probe (at {kind})")
        await conn.execute(probe.insert(), [{"at": value} for value in written])
        # when
        latest = (await conn.execute(select(func.max(probe.c.at, type_=UTCDateTime())))).scalar()
        if sqlite:
            await conn.exec_driver_sql("INSERT INTO probe VALUES ('2026-03-01T09:30:15+02:00')")
            expected.append(datetime(2026, 3, 1, 7, 30, 15, tzinfo=UTC))
        read = list((await conn.execute(select(probe.c.at))).scalars())
        null = (await conn.execute(select(literal(None, UTCDateTime())))).scalar()
        await conn.exec_driver_sql("DROP TABLE probe")
    # then
    assert sorted(read) == sorted(expected)
    assert all(value.tzinfo is UTC for value in read)
    assert null is None
    assert latest == expected[0] and latest.tzinfo is UTC
