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

- PostgreSQL: only on an ``AUTOCOMMIT`` connection (a query's, ``graph.endpoint``), where the
  adapter sends nothing before it. A request that keeps its transaction (a mutation) takes
  SQLAlchemy's path, which sends ``BEGIN`` first.
- SQLite: in one trip to the connection's thread, as ``graph``'s ``OneTripCursor`` does; the
  module's transaction control opens nothing for a SELECT, whichever path runs it.

The engine's ``before_cursor_execute`` and ``after_cursor_execute`` listeners are called with
the statement and its parameters as SQLAlchemy would call them, without a cursor or an execution
context (None): the data versions' write tracking and the statement counts of the tests and
benchmarks see it as before. A listener may await (``await_only``: the provisional token check
runs its lookup alone from one), so they were called in SQLAlchemy's greenlet, whose spawn and
switches cost ~50 us of a customer detail's ~1 ms of CPU (A/B in one process). When every listener
is one registered as never awaiting (``never_awaits``: the token check's guard, the data
versions' tracking, the tests' statement counter) and the guard surely lets the statement
through without its lookup (no pending check, or the statement carries it), they are called
directly; anything else (a listener of unknown kind, a pending check the statement does not
carry) keeps the greenlet.

Parameters and columns that SQLAlchemy processes (a ``TypeDecorator``'s bind processor, an
ARRAY's, SQLite's text datetimes) get the same processors here, taken from the same compiled
statement (``_bind_processors`` and each result column's cached processor): the customer detail
and a page's relationships (``db.queries.customer_detail``) run this way too, saving the same
~140 us of CPU a statement.

Anything unusual (another driver, an invalidated connection, a failure of the driver) takes
SQLAlchemy's path: a failure is run again there, so that it raises, and invalidates a broken
connection, exactly as before (its listeners then see the statement twice). The statement is a
read: running it twice changes nothing.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.util.concurrency import await_only, greenlet_spawn

from db.sqlite_driver import OneTripConnection, TrackedConnection

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # (parameter name, fixed value) in the order the driver takes them
    positions: tuple[tuple[str, Any], ...]
    # SQLAlchemy's processor of each parameter (in that order) and of each column, or None
    # where none has any
    binds: tuple[Processor, ...] | None = None
    columns: tuple[Processor, ...] | None = None

    # NULLs too, as SQLAlchemy processes them: a JSON parameter's None is sent as the text
    # 'null', and a TypeDecorator may read NULL as a value.
    def args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        values = [params.get(name, value) for name, value in self.positions]
        if self.binds is not None:
            for i, process in enumerate(self.binds):
                if process is not None:
                    values[i] = process(values[i])
        return tuple(values)

    def row(self, row: Any) -> Any:
        if row is None or self.columns is None:
            return row
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.columns, row, strict=True)
        )


# The dialect's attribute holding its compiled forms of the driver queries (``_compile``).
_FORMS = "_partner_hub_driver_forms"
_CHECKED_FORMS = "_partner_hub_driver_checked_forms"
# The execution option of a connection whose request runs on a provisional principal: its
# ``db.token_check.TokenCheck``, which a statement with a checked form carries.
RIDER = "partner_hub_token_check"
_UNCOMPILED: Any = object()


class DriverQuery:
    """``statement`` (a Core SELECT, or a frozen text with typed columns, ``db.engine.frozen``)
    run on a request's driver connection."""

    def __init__(
        self,
        statement: Select[Any] | TextualSelect,
        checked: Select[Any] | TextualSelect | None = None,
    ) -> None:
        self.statement = statement
        # The same statement with a provisional request's token check as its last column
        # (``db.token_check.with_token_check``), if it can carry one.
        self.checked = checked

    def _compile(self, dialect: Dialect, checked: bool = False) -> _Compiled | None:
        """The statement's (or its ``checked`` form's) text, parameter order and processors
        for ``dialect``, or None when SQLAlchemy would do more than run processors (expanding
        parameters, escaped parameter names: then only its own path is the same)."""
        # Kept on the dialect, by query: a disposed engine's forms go with its dialect. Kept
        # here by dialect (even weakly), they kept every dialect alive for good, its processors
        # (closures over the dialect) holding their own key.
        attribute = _CHECKED_FORMS if checked else _FORMS
        forms: weakref.WeakKeyDictionary[DriverQuery, _Compiled | None] | None = getattr(
            dialect, attribute, None
        )
        if forms is None:
            forms = weakref.WeakKeyDictionary()
            setattr(dialect, attribute, forms)
        found = forms.get(self, _UNCOMPILED)
        if found is _UNCOMPILED:
            statement = self.checked if checked else self.statement
            compiled: Any = statement.compile(dialect=dialect) if statement is not None else None
            found = None
            if compiled is None:
                forms[self] = None
                return None
            positional = compiled.positiontup
            expanding = compiled.post_compile_params or compiled.literal_execute_params
            # A name SQLAlchemy escapes (``a.b[0]``) is another in ``compiled.params``.
            if positional is not None and not expanding and not compiled.escaped_bind_names:
                processors = compiled._bind_processors
                binds = tuple(processors.get(name) for name in positional)
                columns = _column_processors(dialect, compiled._result_columns)
                if columns is not None:
                    found = _Compiled(
                        compiled.string,
                        tuple((name, compiled.params[name]) for name in positional),
                        binds if any(binds) else None,
                        columns if any(columns) else None,
                    )
            forms[self] = found
        return found

    async def first(self, connection: AsyncConnection, params: dict[str, Any]) -> Any:
        """The first row (a sequence of the selected columns' values) or None."""
        return await self._run(connection, params, False)

    async def all(self, connection: AsyncConnection, params: dict[str, Any]) -> list[Any]:
        """Every row (each a sequence of the selected columns' values)."""
        rows: list[Any] = await self._run(connection, params, True)
        return rows

    async def _run(self, connection: AsyncConnection, params: dict[str, Any], every: bool) -> Any:
        sync = connection.sync_connection
        compiled = None
        if sync is not None and not sync.closed and not sync.invalidated:
            compiled = self._compile(sync.dialect)
        if compiled is not None and sync is not None:
            adapter = sync.connection.dbapi_connection
            run = None
            if isinstance(adapter, AsyncAdapt_asyncpg_connection) and adapter.autocommit:
                run = _on_asyncpg
            elif isinstance(adapter, OneTripConnection):
                run = _on_sqlite
            check = sync._execution_options.get(RIDER)
            checked = None
            if check is not None and check.pending and run is _on_asyncpg:
                checked = self._compile(sync.dialect, checked=True)
            if checked is not None:
                compiled, params = checked, {**params, **check.params()}
            if run is not None:
                args = compiled.args(params)
                if checked is not None:
                    check.carrier = compiled.sql  # what ``TokenCheck.before`` lets through
                call = run(adapter, sync.dialect, compiled.sql, args, every)
                try:
                    # The engine's listeners see the statement as they would (the data
                    # versions' write tracking, statement counts in tests and benchmarks), in a
                    # greenlet as SQLAlchemy calls them, so that one may await (``await_only``).
                    if not (sync._has_events or sync.engine._has_events):
                        found = await call
                    elif (check is None or not check.pending or checked is not None) and (
                        _never_await(sync)
                    ):
                        found = await _told(sync, compiled.sql, args, call)
                    else:
                        found = await greenlet_spawn(_with_events, sync, compiled.sql, args, call)
                except Exception:  # run again below: it raises as it always did
                    call.close()  # (a listener failed before the driver was asked)
                except BaseException:
                    # Cancelled while a listener awaited: the driver's coroutine was never
                    # started; closed, it is not reported as never awaited.
                    call.close()
                    raise
                else:
                    if checked is None:
                        if every:
                            return [compiled.row(row) for row in found]
                        return compiled.row(found)
                    return _arrived(check, compiled, found, every)
                finally:
                    if checked is not None:
                        check.carrier = None
        result = await connection.execute(self.statement, params)
        return result.all() if every else result.first()


def _arrived(check: Any, compiled: _Compiled, found: Any, every: bool) -> Any:
    """The rows of a statement that carried a token check, without its column, once the check
    has answered (it raises when the principal changed; with no row it has not answered, and the
    request's next statement, or its end, asks again)."""
    rows = [compiled.row(row) for row in found] if every else [compiled.row(found)]
    if rows and rows[0] is not None:
        check.arrived(rows[0][-1])
    stripped = [None if row is None else row[:-1] for row in rows]
    return stripped if every else stripped[0]


def run_alone(sync: Any, query: DriverQuery, params: dict[str, Any]) -> Any:
    """``query``'s first row on ``sync`` (a ``Connection``), the engine's listeners told as for
    any statement: called in SQLAlchemy's greenlet, from within a listener too
    (``db.token_check``). On the driver's connection when it can be (as ``_run``), else through
    SQLAlchemy's own path."""
    compiled = query._compile(sync.dialect) if not sync.invalidated else None
    adapter = sync.connection.dbapi_connection if compiled is not None else None
    if compiled is None or not isinstance(adapter, AsyncAdapt_asyncpg_connection):
        return sync.execute(query.statement, params).first()
    args = compiled.args(params)
    call = _on_asyncpg(adapter, sync.dialect, compiled.sql, args)
    try:
        return compiled.row(_with_events(sync, compiled.sql, args, call))
    except BaseException:
        call.close()
        raise


# Statement listeners that never await (registered with ``retval=True``, so that SQLAlchemy
# keeps them as they are and they are known here by identity).
_NEVER_AWAIT: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
Listener = Callable[..., tuple[Any, Any]]


def never_awaits(listener: Listener) -> Listener:
    """Register ``listener`` (a ``before_cursor_execute`` listener listened with ``retval=True``
    that returns the statement and parameters unchanged) as one that never awaits."""
    _NEVER_AWAIT.add(listener)
    return listener


def _never_await(sync: Any) -> bool:
    """Whether every statement listener of ``sync`` (a ``Connection``) never awaits."""
    dispatch = sync.dispatch
    before, after = dispatch.before_cursor_execute, dispatch.after_cursor_execute
    return all(fn in _NEVER_AWAIT for fn in before) and not any(after)


async def _told(sync: Any, sql: str, args: tuple[Any, ...], call: Awaitable[Any]) -> Any:
    """``_with_events`` outside SQLAlchemy's greenlet, for listeners that never await."""
    sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)
    return await call


@never_awaits
def guard_riders(
    conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    """A statement listener (``before_cursor_execute``, the engine's first, ``retval=True``): a
    connection with a rider (``RIDER``: a provisional request's token check) has it see every
    statement before it runs (``db.token_check.TokenCheck.before``; it awaits only for a
    pending check's lookup, which ``DriverQuery`` runs in a greenlet)."""
    rider = conn._execution_options.get(RIDER)
    if rider is not None:
        rider.before(conn, statement)
    return statement, params


def _column_processors(dialect: Dialect, columns: Any) -> tuple[Processor, ...] | None:
    """Each result column's processor, or None when one depends on the type the cursor reports,
    which only SQLAlchemy's path knows: asyncpg's Float and Numeric (and arrays of them) pick
    theirs by the column's type oid, and raise without one."""
    try:
        return tuple(column[3]._cached_result_processor(dialect, None) for column in columns)
    except (TypeError, exc.InvalidRequestError):
        return None


def _with_events(sync: Any, sql: str, args: tuple[Any, ...], call: Awaitable[Any]) -> Any:
    sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)
    found = await_only(call)
    sync.dispatch.after_cursor_execute(sync, None, sql, args, None, False)
    return found


async def _on_asyncpg(
    adapter: Any, dialect: Any, sql: str, args: tuple[Any, ...], every: bool = False
) -> Any:
    async with adapter._execute_mutex:
        prepared, _ = await adapter._prepare(sql, dialect._invalidate_schema_cache_asof)
        if every:
            return await prepared.fetch(*args)
        return await prepared.fetchrow(*args)


async def _on_sqlite(
    adapter: Any, _dialect: Any, sql: str, args: tuple[Any, ...], every: bool = False
) -> Any:
    connection: Any = adapter._connection
    snapshot = False

    def run(raw: sqlite3.Connection) -> Any:
        if snapshot:
            connection.begin_snapshot(raw)
        cursor = raw.cursor()
        try:
            executed = cursor.execute(sql, args)
            return executed.fetchall() if every else executed.fetchone()
        finally:
            cursor.close()

    async with adapter._execute_mutex:
        # The request's snapshot (``db.engine.read_from_one_snapshot``) opens with its first
        # statement, this one, in the same trip, as ``OneTripCursor`` opens it; asked for once
        # the connection is this statement's (one cancelled while it waited leaves it asked).
        snapshot = isinstance(connection, TrackedConnection) and connection.take_snapshot()
        return await connection._execute(run, connection._conn)
