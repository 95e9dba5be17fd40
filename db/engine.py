"""Async engine and sessions. One engine per process, one session per request."""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import Integer, bindparam, column, event, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

from db.driver_query import guard_riders
from db.sqlite_driver import OneTripConnection, one_trip_module
from db.versioning import track_writes


class DatabaseUrlError(ValueError):
    """The configured database URL is not one Partner Hub can use."""


SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def validate_database_url(url: str) -> str:
    """Return the backend name ('sqlite' or 'postgresql') or raise ``DatabaseUrlError``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"cannot parse database URL {url!r}") from exc
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            f"use one of {', '.join(s + '://' for s in SUPPORTED_DRIVERS)}"
        )
    return parsed.get_backend_name()


# Pool sizes per process: (pool_size, max_overflow). Each pooled aiosqlite connection is a
# thread of its own with its own page cache; at 15 of them (SQLAlchemy's default) a two-worker
# server's threads fought over the GIL (fewer requests a second at 32 connections than at 8) and
# their caches reached 1.8-2.5 GB (issue 17). Four connections keep SQLite's work overlapping
# the event loop's; more requests wait for a connection in the loop instead of in threads.
# The pool is LIFO: requests one after another keep the connection returned last, whose prepared
# statements PostgreSQL has planned already (FIFO rotated through every connection opened under
# load, each planning its first five executions anew; ``tests/test_pool_order.py``).
POOL_SIZES = {"postgresql": (10, 20), "sqlite": (4, 0)}
SQLITE_CACHE_MB = 16
# A pooled PostgreSQL connection idle for longer than this is pinged before use (see
# ``_checked_out``); one used more recently is handed out as it is.
PING_IDLE_S = 10.0


def _returned(_dbapi_connection: Any, record: Any) -> None:
    record.info["returned_at"] = time.monotonic()


def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's ``pool_pre_ping``, without its price on a busy server.

    ``pool_pre_ping`` sent ``BEGIN``, ``;`` and ``ROLLBACK`` (asyncpg's ping) on every checkout:
    three round trips before each request's own statements (issue 17's profile: a request took
    one checkout, the token lookup and one to six statements). A connection PostgreSQL closed
    (a restart, ``pg_terminate_backend``) is seen closed by asyncpg as soon as the event loop
    reads the end of its socket, without a round trip; only a connection idle for longer than
    ``PING_IDLE_S`` (which a silently broken network could have left half-open) is pinged. A
    dead one is replaced before the request uses it (``DisconnectionError`` makes the pool
    discard it and check out another, as pre-ping does).
    """
    returned = record.info.get("returned_at")
    _ping(dbapi_connection, returned is not None and time.monotonic() - returned > PING_IDLE_S)


def _ping(dbapi_connection: Any, idle: bool) -> None:
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("the connection was closed")
    if idle:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("the connection did not answer a ping") from exc


def ping(sync: Any) -> None:
    """``_checked_out``'s check of a PostgreSQL connection idle for long, for one kept out of
    the pool (``db.query_lane``; ``sync``: a ``Connection``, in SQLAlchemy's greenlet)."""
    _ping(sync.connection.dbapi_connection, True)


class LanePool(AsyncAdaptedQueuePool):
    """The pool of a PostgreSQL engine, aware of the connections its lanes keep checked out
    between queries (``db.query_lane``), so that those never make anyone wait:

    - a checkout that would wait (no connection in the pool, no overflow left) takes one of
      them back first (``QueryLane.give_up_one``: closed, it is checked in here);
    - while a checkout waits (``waiting``), a lane keeps nothing: each connection a query gives
      back is checked in, for the first who waits (a query arriving later waits behind).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lanes: weakref.WeakSet[Any] = weakref.WeakSet()
        self.waiting = 0

    def _do_get(self) -> Any:
        if not self.exhausted():  # one in the pool, or one to open (which awaits, not waits)
            return super()._do_get()
        for lane in list(self.lanes):
            if lane.give_up_one():
                return super()._do_get()
        self.waiting += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1

    def capacity(self) -> int | None:
        """The most connections the pool opens at once (None: no limit)."""
        return None if self._max_overflow < 0 else self.size() + self._max_overflow

    def exhausted(self) -> bool:
        """No connection in the pool and none more may be opened: a checkout would wait."""
        limited = self._max_overflow > -1
        return limited and self._pool.empty() and self._overflow >= self._max_overflow

    def recreate(self) -> LanePool:
        pool = super().recreate()
        assert isinstance(pool, LanePool)
        pool.lanes = self.lanes
        return pool


def _sqlite_pragmas(cache_mb: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
        cursor.close()

    return on_connect


def create_engine(
    url: str,
    *,
    pool: bool = True,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    sqlite_cache_mb: int = SQLITE_CACHE_MB,
) -> AsyncEngine:
    """Create the async engine for ``url`` (validated first); pool sizes default by backend
    (``POOL_SIZES``)."""
    backend = validate_database_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if not pool:
        kwargs["poolclass"] = NullPool
    elif make_url(url).database not in (None, "", ":memory:"):  # in memory: SQLAlchemy's pool
        size, overflow = POOL_SIZES[backend]
        kwargs.update(
            pool_size=size if pool_size is None else pool_size,
            max_overflow=overflow if max_overflow is None else max_overflow,
            pool_use_lifo=True,
        )
        if backend == "postgresql":
            kwargs["poolclass"] = LanePool
    if backend == "sqlite" and make_url(url).get_driver_name() == "aiosqlite":
        kwargs["module"] = one_trip_module()  # one trip to aiosqlite's thread a statement
    engine = create_async_engine(url, **kwargs)
    if backend == "postgresql":
        # first of the statement listeners: a provisional request's token check sees every
        # statement before any other listener does (db/token_check.py)
        event.listen(engine.sync_engine, "before_cursor_execute", guard_riders, retval=True)
    if backend == "postgresql" and pool:
        event.listen(engine.sync_engine, "checkin", _returned)
        event.listen(engine.sync_engine, "checkout", _checked_out)
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(sqlite_cache_mb))
    track_writes(engine)
    return engine


class RequestSession(Session):
    """The ORM session of ``session_factory``'s sessions; it can read from one snapshot
    (``read_from_one_snapshot``)."""


_SNAPSHOT = "partner_hub_snapshot"


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=RequestSession
    )


def read_from_one_snapshot(session: AsyncSession) -> None:
    """SQLite: every statement of ``session``'s next transaction (the one its next statement
    begins, until it rolls back or commits; closing the session rolls back) reads one snapshot
    of the database, so that one response never mixes two states (a page and its count, a
    customer and its parts) when a writer commits between its statements. pysqlite opens no
    transaction for a read, so each statement would see the database as it is when it runs.

    The transaction is deferred: WAL gives it its snapshot at its first read and it takes no
    write lock, so writers never wait on it. It opens in the same trip to aiosqlite's thread
    as that statement (``db.sqlite_driver``), asked for when the session begins
    (``_begin_snapshot``): nothing is awaited here (``session.connection()`` and
    ``get_raw_connection()`` were ~45 us of CPU a request). A write inside it would fail when
    another writer committed since its snapshot (``SQLITE_BUSY_SNAPSHOT``, without the busy
    timeout): a mutation rolls it back before it takes the write lock
    (``graph.mutations.transaction``).

    Nothing on PostgreSQL: its queries run at READ COMMITTED outside a transaction
    (``graph.endpoint``), each statement with its own snapshot, so a writer committing between two
    of them shows in the later one. One snapshot (REPEATABLE READ READ ONLY) needs BEGIN and
    ROLLBACK, two round trips asyncpg cannot send along with a statement (no pipelining):
    in process, alternating request by request on a loaded machine (session 12), the detail
    took +9 % CPU and +23 % wall a request, the directory +5 % and +13 %. Not taken."""
    session.info[_SNAPSHOT] = True


@event.listens_for(RequestSession, "after_begin")
def _begin_snapshot(session: Session, _transaction: SessionTransaction, connection: Any) -> None:
    if session.info.pop(_SNAPSHOT, False):
        adapted = connection.connection.dbapi_connection
        if isinstance(adapted, OneTripConnection):
            adapted.snapshot()


async def analyze(engine: AsyncEngine) -> None:
    """Refresh the planner's statistics (after bulk loads): with them SQLite drives filtered
    counts from the small set of matching ids instead of scanning every customer. PostgreSQL
    also gets the visibility map autovacuum would build later (``VACUUM``): without it an
    index-only scan visits the table anyway (the status filter at 100,000 customers: 16 ms
    instead of 1.5 ms for the span index)."""
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            await connection.exec_driver_sql("ANALYZE")
            await connection.commit()
        else:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))


async def optimize(engine: AsyncEngine) -> None:
    """Cheap statistics upkeep at start-up (SQLite analyses only tables that need it).

    Best effort: when another connection holds the write lock past the busy timeout (a burst
    of writes arriving with the first requests), start-up goes on without it rather than
    failing the request that started the server (seen as a flaky INTERNAL_SERVER_ERROR)."""
    if engine.dialect.name == "sqlite":
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA optimize=0x10002")
                await connection.commit()
        except OperationalError as error:
            if "locked" not in str(error.orig):
                raise


async def request_connection(
    session: AsyncSession, execution_options: dict[str, Any] | None = None
) -> AsyncConnection:
    """The connection ``session``'s statements run on: a query's kept connection as it is
    (the session is bound to it, ``db.query_lane``; ``AUTOCOMMIT`` already), without beginning
    the session's transaction on it; else the session's own (with ``execution_options``)."""
    bind = session.bind
    if isinstance(bind, AsyncConnection):
        return bind
    return await session.connection(execution_options=execution_options)


async def execute_core(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    """``session.execute`` for a Core statement (columns, not entities), on the session's own
    connection and transaction, without the ORM's layer: the ORM wraps every execution in its
    compile state, load options and row "instances" pass, which for a statement that loads no
    entity change nothing in the rows; about 60-70 us of CPU a statement (the token lookup,
    PostgreSQL, measured in-process). Same SQL, same rows, same engine events."""
    connection = await request_connection(session)
    return await connection.execute(statement, params)


def written_limit(rows: int) -> Any:
    """A LIMIT written into a statement's text rather than passed: PostgreSQL planned the
    directory page's prepared statement (``ORDER BY name_key, id LIMIT $n``) anew at every
    execution (its generic plan, costed for an unknown limit, never won), and a statement built
    once per limit (a page size, a relationship's cap) loses nothing by it. Not a rule: a walk
    along a status's spans went the other way (with its LIMITs written in, PostgreSQL planned
    it anew every time: ``db.queries.customer_walks``). Which plan PostgreSQL keeps is checked
    per statement (``bench.plans``: ``pg_prepared_statements``' generic and custom plans)."""
    return literal_column(str(int(rows)), Integer())


def frozen(dialect: str, statement: Any) -> Any:
    """``statement`` (a select) compiled once into text, with its typed parameters and result
    columns, for a statement built once and executed often.

    SQLAlchemy looks a statement's compiled form up by its cache key on every execution, and
    hashing a large statement's key (a tuple of every element of its tree) costs: ~80 us for
    the customer detail's. A text's key is its string (whose hash Python keeps) and its
    parameters. The text is the statement's own SQL, named parameters rendered without casts:
    the driver's dialect renders it back exactly as it renders the statement
    (``tests/test_detail_statement.py``), with the same parameter processing (the parameters
    keep their types) and the same result processing (the columns keep theirs)."""
    named = (postgresql if dialect == "postgresql" else sqlite).dialect(paramstyle="named")
    named.bind_typing = BindTyping.NONE
    compiled = statement.compile(dialect=named)
    binds: dict[str, Any] = {}
    for bind in compiled.binds.values():
        name = compiled.bind_names[bind]
        value = None if bind.required else bind.effective_value
        binds[name] = bindparam(name, value, type_=bind.type, required=bind.required)
    columns = [column(c.name, c.type) for c in statement.selected_columns]
    return text(compiled.string).bindparams(*binds.values()).columns(*columns)
