"""SQLite statements in one trip to aiosqlite's thread (``db.sqlite_driver``), keeping what
SQLAlchemy reads from a DBAPI cursor: rows, description, rowcount, lastrowid, executemany,
errors (and a usable connection after one), streamed results."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.engine import create_engine
from db.sqlite_driver import OneTripDbapi, one_trip_module

META = MetaData()
ITEM = Table(
    "item",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The adapter alone (``db.engine.create_engine`` adds the version bookkeeping, whose
    tables this bare database has not)."""
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}", module=one_trip_module()
    )
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call queued to an aiosqlite connection's thread."""
    calls: list[Any] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_the_engine_uses_the_one_trip_adapter(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        assert isinstance(engine.dialect.loaded_dbapi, OneTripDbapi)
    finally:
        await engine.dispose()


async def test_a_statement_is_one_trip_and_keeps_rows_description_and_counts(
    engine: AsyncEngine, trips: list[Any]
) -> None:
    async with engine.begin() as conn:
        # given
        inserted = await conn.execute(insert(ITEM).values(name="a"))
        assert inserted.inserted_primary_key == (1,)  # lastrowid
        await conn.execute(insert(ITEM), [{"name": "b"}, {"name": "c"}, {"name": "d"}])
        # when
        trips.clear()
        result = await conn.execute(select(ITEM.c.id, ITEM.c.name).order_by(ITEM.c.id))
        # then: one call to the thread, every row, the columns' names
        assert len(trips) == 1
        assert list(result.keys()) == ["id", "name"]
        assert result.all() == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
        changed = await conn.execute(text("UPDATE item SET name = name || '!' WHERE id > 2"))
        assert changed.rowcount == 2
        gone = await conn.execute(text("DELETE FROM item WHERE id = 4"))
        assert gone.rowcount == 1
        returned = await conn.execute(text("UPDATE item SET name = 'z' WHERE id = 1 RETURNING id"))
        assert returned.all() == [(1,)]
        assert (await conn.execute(text("SELECT count(*) FROM item"))).scalar() == 3
        empty = await conn.execute(text("SELECT id FROM item WHERE id < 0"))
        assert empty.all() == []


async def test_errors_keep_their_types_and_the_connection_stays_usable(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        await conn.execute(insert(ITEM).values(name="dup"))
        with pytest.raises(IntegrityError):
            await conn.execute(insert(ITEM).values(name="dup"))
        await conn.rollback()
        with pytest.raises(OperationalError):
            await conn.execute(text("SELECT * FROM no_such_table"))
        await conn.rollback()
        await conn.execute(insert(ITEM).values(name="after"))
        await conn.commit()
        names = (await conn.execute(select(ITEM.c.name))).scalars().all()
        assert names == ["after"]


async def test_streamed_results_and_nested_reads(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(ITEM), [{"name": f"n{i:03}"} for i in range(250)])
    async with engine.connect() as conn:
        streamed = await conn.stream(select(ITEM.c.name).order_by(ITEM.c.id))
        got = [row[0] async for row in streamed]
        assert got == [f"n{i:03}" for i in range(250)]
        # a buffered result read after another statement ran keeps its own rows
        first = await conn.execute(select(ITEM.c.id).where(ITEM.c.id <= 3).order_by(ITEM.c.id))
        second = await conn.execute(select(ITEM.c.id).where(ITEM.c.id > 247).order_by(ITEM.c.id))
        assert second.scalars().all() == [248, 249, 250]
        assert first.scalars().all() == [1, 2, 3]


def _rollbacks(trips: list[Any]) -> int:
    """Rollbacks among the calls queued to the thread (``TrackedConnection`` wraps each)."""
    called = [cell.cell_contents for fn in trips for cell in fn.__closure__ or ()]
    return sum(getattr(c, "__name__", None) == "rollback" for c in called)


async def test_a_read_closes_without_a_rollback_trip(engine: AsyncEngine, trips: list[Any]) -> None:
    # given: a session-like read (begin, a SELECT, close): SQLite opens no transaction for it
    async with engine.connect() as conn:
        await conn.execute(select(ITEM.c.id))
        trips.clear()
    # then: closing (the transaction's rollback, then the pool's reset) went nowhere
    assert trips == []


async def test_a_write_still_rolls_back(engine: AsyncEngine, trips: list[Any]) -> None:
    async with engine.connect() as conn:
        await conn.execute(insert(ITEM).values(name="never"))
        trips.clear()
        await conn.rollback()
        assert _rollbacks(trips) == 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(ITEM.c.name))).all() == []


async def test_a_rollback_waits_for_a_call_still_in_the_thread(engine: AsyncEngine) -> None:
    """A statement whose awaiter was cancelled still runs in the thread and may open a
    transaction after the rollback looked: the rollback then goes to the thread, behind it."""
    async with engine.connect() as conn:
        await conn.execute(select(ITEM.c.id))
        raw = await conn.get_raw_connection()
        adapted: Any = raw.driver_connection
        assert adapted.idle()
        started = threading.Event()
        release = threading.Event()

        def busy() -> None:
            started.set()
            release.wait(5)
            adapted._conn.execute("INSERT INTO item (name) VALUES ('late')")

        pending = asyncio.ensure_future(adapted._execute(busy))
        await asyncio.to_thread(started.wait, 5)
        assert not adapted.idle() and not adapted._conn.in_transaction
        release.set()
        await conn.rollback()  # queued behind ``busy``: rolls its insert back
        await pending
        assert adapted.idle() and not adapted._conn.in_transaction
    async with engine.connect() as conn:
        assert (await conn.execute(select(ITEM.c.name))).all() == []


async def adapted_of(conn: Any) -> Any:
    """The ``OneTripConnection`` under a SQLAlchemy connection."""
    raw = await conn.get_raw_connection()
    return raw.dbapi_connection


async def test_a_snapshot_reads_one_state_and_ends_without_a_trip(
    engine: AsyncEngine, trips: list[Any]
) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # as db.engine's: writers go on
        await conn.execute(insert(ITEM).values(name="a"))
    async with engine.connect() as reader:
        # given: a snapshot asked for, then its first read (one trip, BEGIN included)
        (await adapted_of(reader)).snapshot()
        trips.clear()
        assert (await reader.execute(select(ITEM.c.name))).scalars().all() == ["a"]
        assert len(trips) == 1
        # when: another connection commits
        async with engine.begin() as writer:
            await writer.execute(insert(ITEM).values(name="b"))
        # then: the reader still sees the state of its first read
        assert (await reader.execute(select(ITEM.c.name))).scalars().all() == ["a"]
        # when: it rolls back (the session's close): no trip
        trips.clear()
        await reader.rollback()
        assert _rollbacks(trips) == 0 and trips == []
        # then: its next read is of the database as it is, outside a transaction
        names = (await reader.execute(select(ITEM.c.name).order_by(ITEM.c.id))).scalars().all()
        assert names == ["a", "b"]
        assert not (await adapted_of(reader))._connection._conn.in_transaction


async def test_a_snapshot_that_wrote_rolls_back_in_the_thread(
    engine: AsyncEngine, trips: list[Any]
) -> None:
    async with engine.connect() as conn:
        (await adapted_of(conn)).snapshot()
        await conn.execute(select(ITEM.c.id))
        await conn.execute(insert(ITEM).values(name="never"))
        trips.clear()
        await conn.rollback()
        assert _rollbacks(trips) == 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(ITEM.c.name))).all() == []


async def test_a_snapshot_asked_for_and_not_begun_ends_with_the_connection(
    engine: AsyncEngine,
) -> None:
    """The pool's reset forgets it: the next user of the connection reads as before."""
    async with engine.connect() as conn:
        (await adapted_of(conn)).snapshot()
    async with engine.connect() as conn:
        await conn.execute(select(ITEM.c.id))
        assert not (await adapted_of(conn))._connection._conn.in_transaction
