"""SQLite through aiosqlite in one trip to its thread per statement.

aiosqlite runs each call on a connection in that connection's own thread, and SQLAlchemy's
adapter makes four such calls a statement: open a cursor, execute, fetch every row, close the
cursor. Each is a queue put, a wake-up of the thread, a wake-up of the event loop through its
self-pipe and a switch of the GIL: ~80 µs a statement measured here (116 -> 36 µs for a small
SELECT), ~0.7 ms of an 8-statement dashboard. ``OneTripCursor`` makes the four steps one call
that runs in the thread; what SQLAlchemy reads afterwards (rows, ``description``, ``rowcount``,
``lastrowid``) it reads from the closed ``sqlite3`` cursor, which keeps them.

A request's reads can share one snapshot (``read_from_one_snapshot``): the connection's next
statement then opens a read transaction first (``BEGIN``, deferred: in WAL mode its first read
fixes the snapshot, and it takes no write lock), in the same call to the thread; the
transaction ends when the connection rolls back (the session's close).

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
        connection = self._connection
        raw: sqlite3.Connection = connection._conn
        snapshot = False

        def run() -> tuple[sqlite3.Cursor, Any]:
            if snapshot:
                connection.begin_snapshot(raw)
            cursor = raw.cursor()
            try:
                return cursor, work(cursor)
            finally:
                cursor.close()

        async with self._adapt_connection._execute_mutex:
            # Read and cleared here, on the event loop, once the connection is this
            # statement's (one cancelled while it waited leaves it asked): statements queued
            # after this one run behind it in the thread, inside the transaction it opens.
            snapshot = isinstance(connection, TrackedConnection) and connection.take_snapshot()
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
    # The next statement opens a read transaction first (``OneTripConnection.snapshot``).
    _snapshot = False
    # While that transaction is open: the database's changes by this connection when it began
    # (written in the thread, read on the loop while nothing runs there).
    _snapshot_changes: int | None = None

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

    def take_snapshot(self) -> bool:
        """Whether the next statement opens the read transaction (asked once, answered once)."""
        snapshot, self._snapshot = self._snapshot, False
        return snapshot

    def begin_snapshot(self, raw: sqlite3.Connection) -> None:
        """In the thread, before the statement that asked: open the read transaction (none
        when one is open already: it goes on as it is)."""
        if not raw.in_transaction:
            raw.execute("BEGIN")
            self._snapshot_changes = raw.total_changes


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    def snapshot(self) -> None:
        """Read from one snapshot until the next rollback or commit: the next statement opens a
        deferred transaction first, in the same trip to the thread. pysqlite opens none for a
        read (each SELECT would see the database as it is when it runs) and only begins one
        before a write."""
        connection = self._connection
        if isinstance(connection, TrackedConnection):
            connection._snapshot = True

    def commit(self) -> None:
        self._forget_snapshot()
        super().commit()

    def _forget_snapshot(self) -> int | None:
        """Forget a snapshot asked for (it ends with the transaction, or never began: the
        pool's reset of a connection whose request ran no statement); the changes when the
        transaction it opened began, if it did."""
        connection = self._connection
        if not isinstance(connection, TrackedConnection):
            return None
        changes, connection._snapshot_changes = connection._snapshot_changes, None
        connection._snapshot = False
        return changes

    def rollback(self) -> None:
        """Without a trip to the thread when SQLite has no transaction open, or only the read
        transaction of a snapshot.

        No transaction: ``sqlite3``'s own ``rollback()`` does nothing then (it tests
        ``sqlite3_get_autocommit``, as ``in_transaction`` does, here without the thread: a
        field read). A read outside a snapshot opens none (the module's legacy transaction
        control begins one before a write only), and closing a request's session rolled back
        twice, the session's transaction and then the pool's reset on return: two trips,
        ~0.1 ms of the request's floor (issue 17).

        A snapshot's transaction that changed nothing (its own count of changes is where it
        was at its ``BEGIN``) is rolled back here, on the event loop: SQLite only lets go of
        its read lock on the WAL, a few microseconds, where a trip to the thread cost ~0.25 ms
        of CPU on a loaded machine (measured: a session of two reads). ``sqlite3`` allows it:
        the connection is opened with ``check_same_thread=False`` (SQLAlchemy's default for a
        file), as this module's cursors need already (they close on the loop).

        Either is done only while nothing runs or waits in the thread (a statement still
        running there may yet open a transaction, and no two threads may use the connection
        at once); otherwise, and for a transaction that wrote, the rollback goes to the thread
        as before."""
        changes = self._forget_snapshot()
        connection = self._connection
        raw: sqlite3.Connection | None = connection._connection
        if raw is not None and isinstance(connection, TrackedConnection) and connection.idle():
            try:
                if not raw.in_transaction:
                    return
                if changes is not None and changes == raw.total_changes:
                    raw.rollback()
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
