"""SQLite through aiosqlite in one trip to its thread per statement.

aiosqlite runs each call on a connection in that connection's own thread, and SQLAlchemy's
adapter makes four such calls a statement: open a cursor, execute, fetch every row, close the
cursor. Each is a queue put, a wake-up of the thread, a wake-up of the event loop through its
self-pipe and a switch of the GIL: ~80 µs a statement measured here (116 -> 36 µs for a small
SELECT), ~0.7 ms of an 8-statement dashboard. ``OneTripCursor`` makes the four steps one call
that runs in the thread; what SQLAlchemy reads afterwards (rows, ``description``, ``rowcount``,
``lastrowid``) it reads from the closed ``sqlite3`` cursor, which keeps them.

Server-side cursors (streamed results) keep SQLAlchemy's own adapter. ``create_engine`` installs
this through ``create_async_engine(module=...)`` (SQLAlchemy's documented way to give a dialect
another DBAPI module); it relies on aiosqlite's ``Connection._execute`` and ``_conn`` (pinned
in ``pyproject.toml``; ``tests/test_sqlite_driver.py`` checks the behaviour it keeps).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement runs, is fetched and closed in one call to the thread."""

    __slots__ = ()
    # The sqlite3 cursor is closed already: nothing to await at close.
    _awaitable_cursor_close = False

    def _make_new_cursor(self, connection: Any) -> Any:
        return None

    def _aenter_cursor(self, cursor: Any) -> Any:
        return None

    async def _one_trip(self, work: Callable[[sqlite3.Cursor], Any]) -> Any:
        """``work`` on a new sqlite3 cursor, closed after it, all in one call to the thread;
        the closed cursor stays for what SQLAlchemy reads next (description, counts)."""
        raw: sqlite3.Connection = self._connection._conn

        def run() -> tuple[sqlite3.Cursor, Any]:
            cursor = raw.cursor()
            try:
                return cursor, work(cursor)
            finally:
                cursor.close()

        async with self._adapt_connection._execute_mutex:
            cursor, result = await self._connection._execute(run)
            self._cursor = cursor
            return result

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        def work(cursor: sqlite3.Cursor) -> list[Any] | None:
            if parameters is None:
                cursor.execute(operation)
            else:
                cursor.execute(operation, parameters)
            return cursor.fetchall() if cursor.description else None

        rows = await self._one_trip(work)
        if rows is not None:
            self._rows = collections.deque(rows)
        return self._cursor

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._one_trip(lambda cursor: cursor.executemany(operation, seq_of_parameters))
        return self._cursor


class TrackedConnection(aiosqlite.Connection):
    """aiosqlite's connection, counting the calls queued to its thread and those finished
    there: each counter has one writer (the event loop, the thread), so equal counts say that
    nothing runs or waits in the thread (a call whose awaiter was cancelled still runs)."""

    _queued = 0
    _finished = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._finished += 1

        self._queued += 1
        return await super()._execute(run)

    def idle(self) -> bool:
        return self._queued == self._finished


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    def rollback(self) -> None:
        """No trip to the thread when SQLite has no transaction open: ``sqlite3``'s own
        ``rollback()`` does nothing then (it tests ``sqlite3_get_autocommit``, as
        ``in_transaction`` does, here without the thread: a field read). A read opens none
        (the module's legacy transaction control begins one before a write only), and closing
        a request's session rolled back twice, the session's transaction and then the pool's
        reset on return: two trips, ~0.1 ms of the request's floor (issue 17). The test is
        made only while nothing runs or waits in the thread (a statement still running there
        may yet open a transaction); otherwise, and for an open transaction, the rollback
        goes to the thread as before."""
        connection = self._connection
        raw: sqlite3.Connection | None = connection._connection
        if raw is not None and isinstance(connection, TrackedConnection) and connection.idle():
            try:
                if not raw.in_transaction:
                    return
            except sqlite3.ProgrammingError:  # closed: the adapter's rollback reports it
                pass
        super().rollback()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite's DBAPI adapter handing out ``OneTripConnection``s."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        connection.__class__ = OneTripConnection
        queue: Any = connection._connection  # aiosqlite's, its thread started
        queue.__class__ = TrackedConnection
        return connection


def one_trip_module() -> OneTripDbapi:
    return OneTripDbapi(aiosqlite, sqlite3)
