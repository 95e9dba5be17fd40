"""A small Core SELECT run on the request's own driver connection, without SQLAlchemy's
execution layer (issue 17: the token lookup, every request's first statement).

Through ``AsyncConnection.execute`` the lookup cost ~230 us of CPU on PostgreSQL where the same
prepared statement through asyncpg cost ~90 us: a greenlet switch there and back, the compiled
cache's key, an execution context, the engine's events, a cursor adapter and a ``CursorResult``.
For a statement whose parameters and columns SQLAlchemy passes through unchanged (no bind or
result processor, checked once per dialect when it is compiled) none of that changes what is
sent or what comes back. ``DriverQuery`` compiles the statement once per dialect (the same text
SQLAlchemy compiles, so on PostgreSQL the same entry of the connection's prepared-statement
cache) and runs it on the connection the request already holds, under the adapter's lock:

- PostgreSQL: only on an ``AUTOCOMMIT`` connection (a query's, ``graph.app``), where the
  adapter sends nothing before it. A request that keeps its transaction (a mutation) takes
  SQLAlchemy's path, which sends ``BEGIN`` first.
- SQLite: in one trip to the connection's thread, as ``graph``'s ``OneTripCursor`` does; the
  module's transaction control opens nothing for a SELECT, whichever path runs it.

The engine's ``before_cursor_execute`` and ``after_cursor_execute`` listeners are called with
the statement and its parameters as SQLAlchemy would call them, without a cursor or an execution
context (None): the data versions' write tracking and the statement counts of the tests and
benchmarks see it as before.

Anything unusual (another driver, an invalidated connection, a failure of the driver) takes
SQLAlchemy's path: a failure is run again there, so that it raises, and invalidates a broken
connection, exactly as before (its listeners then see the statement twice). The statement is a
read: running it twice changes nothing.
"""

from __future__ import annotations

import sqlite3
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from db.sqlite_driver import OneTripConnection, TrackedConnection


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # (parameter name, fixed value) in the order the driver takes them
    positions: tuple[tuple[str, Any], ...]


class DriverQuery:
    """``statement`` (a Core SELECT of plain columns) run on a request's driver connection."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        # per dialect (an id could be a disposed engine's dialect's, reused)
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled | None] = (
            weakref.WeakKeyDictionary()
        )

    def _compile(self, dialect: Dialect) -> _Compiled | None:
        """The statement's text and parameter order for ``dialect``, or None when SQLAlchemy
        would process a parameter or a column (then only its own path is the same)."""
        if dialect not in self._compiled:
            compiled: Any = self.statement.compile(dialect=dialect)
            processed = bool(compiled._bind_processors) or any(
                column[3]._cached_result_processor(dialect, None) is not None
                for column in compiled._result_columns
            )
            positional = compiled.positiontup
            self._compiled[dialect] = (
                None
                if processed or positional is None
                else _Compiled(
                    compiled.string, tuple((name, compiled.params[name]) for name in positional)
                )
            )
        return self._compiled[dialect]

    async def first(self, connection: AsyncConnection, params: dict[str, Any]) -> Any:
        """The first row (a sequence of the selected columns' values) or None."""
        sync = connection.sync_connection
        compiled = None
        if sync is not None and not sync.closed and not sync.invalidated:
            compiled = self._compile(sync.dialect)
        if compiled is not None and sync is not None:
            adapter = sync.connection.dbapi_connection
            run = None
            if isinstance(adapter, AsyncAdapt_asyncpg_connection) and adapter.autocommit:
                run = _asyncpg_first
            elif isinstance(adapter, OneTripConnection):
                run = _sqlite_first
            if run is not None:
                args = tuple(params.get(name, value) for name, value in compiled.positions)
                # The engine's listeners see the statement as they would (the data versions'
                # write tracking, statement counts in tests and benchmarks).
                events = sync._has_events or sync.engine._has_events
                if events:
                    sync.dispatch.before_cursor_execute(sync, None, compiled.sql, args, None, False)
                try:
                    row = await run(adapter, sync.dialect, compiled.sql, args)
                except Exception:  # run again below: it raises as it always did
                    pass
                else:
                    if events:
                        sync.dispatch.after_cursor_execute(
                            sync, None, compiled.sql, args, None, False
                        )
                    return row
        return (await connection.execute(self.statement, params)).first()


async def _asyncpg_first(adapter: Any, dialect: Any, sql: str, args: tuple[Any, ...]) -> Any:
    async with adapter._execute_mutex:
        prepared, _ = await adapter._prepare(sql, dialect._invalidate_schema_cache_asof)
        return await prepared.fetchrow(*args)


async def _sqlite_first(adapter: Any, _dialect: Any, sql: str, args: tuple[Any, ...]) -> Any:
    connection: Any = adapter._connection
    # The request's snapshot (``db.engine.read_from_one_snapshot``) opens with its first
    # statement, this one, in the same trip, as ``OneTripCursor`` opens it.
    snapshot = isinstance(connection, TrackedConnection) and connection.take_snapshot()

    def run(raw: sqlite3.Connection) -> Any:
        if snapshot:
            connection.begin_snapshot(raw)
        cursor = raw.cursor()
        try:
            return cursor.execute(sql, args).fetchone()
        finally:
            cursor.close()

    async with adapter._execute_mutex:
        return await connection._execute(run, connection._conn)
