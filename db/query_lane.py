"""Connections kept between PostgreSQL queries (issue 17: the detail's throughput).

A query on PostgreSQL runs outside a transaction, on an ``AUTOCOMMIT`` connection
(``graph.endpoint``). Each one took a session, which checked a connection out of the pool, set
its isolation level, began the session's transaction, and on the way out rolled it back, reset
the isolation level and checked the connection in again: ~110 us of CPU a request here (a
``{ __typename }``'s whole answer is ~590 us), in five greenlet switches, for a connection that
the next query of the same worker takes back at once (the pool is LIFO).

``QueryLane`` keeps up to ``keep`` such connections checked out, ``AUTOCOMMIT`` already, and hands
the last one given back to the next query (LIFO, as the pool: its prepared statements are planned
already). The request's session is bound to it (``graph.hub``) and begins nothing unless an ORM
statement runs; statements of ``db.driver_query`` run on it directly
(``db.engine.request_connection``).

A connection goes back to the lane only as it came out, by construction:

- its execution options are reset to the ones it was opened with (``RIDER``, a provisional
  request's token check, is cleared first: left on the connection it would check another
  request's statements); a connection with any other option changed is not kept;
- not in a transaction (a session that began one rolled it back when it closed; one that
  SQLAlchemy's execution began is rolled back here, which sends nothing on ``AUTOCOMMIT``),
  not closed, not invalidated, its driver connection open;
- only from a request that ended without an exception (a cancelled one, a failed one: its
  connection may be anywhere in the protocol) - those are closed, which returns them to the
  pool's own reset and checks, as before.

A kept connection idle for longer than ``db.engine.PING_IDLE_S`` is pinged before use, as the
pool pings one (``db.engine._checked_out``); a dead one is invalidated and another taken. Every
one kept is pinged too after a request's connection was found dead (``QueryLane._note_end``).
The lane's connections count against the pool's size and overflow, and never make anyone wait
for one (``db.engine.LanePool``): a checkout that would wait takes a kept one back first, and
while one waits a query's connection is checked in rather than kept. A worker holds at most
``keep`` of them idle (the pool's ``pool_size``), besides the pool's own idle ones.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.driver_query import RIDER
from db.engine import PING_IDLE_S, LanePool, ping

AUTOCOMMIT = "AUTOCOMMIT"


class QueryLane:
    """Up to ``keep`` ``AUTOCOMMIT`` connections of ``engine``, kept between queries."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self.engine = engine
        self.keep = keep
        self._idle: list[tuple[AsyncConnection, dict[str, Any], float]] = []
        self.closed = False
        # Kept connections given back before this (``time.monotonic``) are pinged before use.
        self._suspect_before = 0.0
        pool = engine.pool
        if isinstance(pool, LanePool):
            pool.lanes.add(self)

    def give_up_one(self) -> bool:
        """Close one kept connection, checking it in: called by the pool (in SQLAlchemy's
        greenlet) when a checkout would otherwise wait (``db.engine.LanePool``)."""
        while self._idle:
            connection, _baseline, since = self._idle.pop(0)  # the least recently used
            sync = connection.sync_connection
            if sync is not None and not sync.closed:
                _check_in(sync, since)
                return True
        return False

    async def _open(self) -> tuple[AsyncConnection, dict[str, Any]]:
        connection = await self.engine.connect()
        try:
            await connection.execution_options(isolation_level=AUTOCOMMIT, **{RIDER: None})
        except BaseException:
            await connection.close()
            raise
        sync = connection.sync_connection
        assert sync is not None
        return connection, dict(sync.get_execution_options())

    async def _take(self) -> tuple[AsyncConnection, dict[str, Any]]:
        while self._idle:
            connection, baseline, since = self._idle.pop()
            fresh = since > self._suspect_before and time.monotonic() - since <= PING_IDLE_S
            if fresh and _open_driver(connection):
                return connection, baseline
            try:  # idle for long, closed by the server, or suspect: as the pool checks it
                await connection.run_sync(ping)
            except DisconnectionError:
                await connection.invalidate()
                await connection.close()
                continue
            except BaseException:
                # Cancelled while it pinged (a client gone): neither kept nor the request's,
                # the connection stayed checked out of the pool for good.
                await connection.close()
                raise
            return connection, baseline
        return await self._open()

    def _note_end(self, connection: AsyncConnection) -> None:
        """A request's connection found dead at its end (the server restarted or failed over,
        a middlebox dropped it, silently: the driver learnt it by using it): the others kept
        may be dead too, and are pinged before their next use. Taken as they are, each failed
        a request of its own, one after another; the pool hands the dead one's replacement to
        the next request (LIFO), so that there one request failed."""
        if _found_dead(connection):
            self._suspect_before = time.monotonic()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A kept connection (or a new one) for one request; given back when the request ends
        without an exception and the connection is as it came out, else closed."""
        connection, baseline = await self._take()
        try:
            yield connection
            sync = connection.sync_connection
            if sync is not None and sync.in_transaction() and not sync.invalidated:
                # Begun by SQLAlchemy's own execution (its "autobegin"; AUTOCOMMIT sends no
                # BEGIN), ended as a session ends the one it began: nothing is sent.
                await connection.rollback()
        except BaseException:
            self._note_end(connection)
            await connection.close()
            raise
        if not self._give_back(connection, baseline):
            self._note_end(connection)
            await connection.close()

    def _give_back(self, connection: AsyncConnection, baseline: dict[str, Any]) -> bool:
        sync = connection.sync_connection
        if self.closed or sync is None or len(self._idle) >= self.keep:
            return False
        pool = self.engine.pool
        if isinstance(pool, LanePool) and pool.waiting:
            return False  # checked in instead, for whoever waits for a connection
        if sync.closed or sync.invalidated or sync.in_transaction():
            return False
        if sync.get_execution_options().get(RIDER) is not None:
            sync.execution_options(**{RIDER: None})
        if dict(sync.get_execution_options()) != baseline or not _open_driver(connection):
            return False
        self._idle.append((connection, baseline, time.monotonic()))
        return True

    async def close(self) -> None:
        """Give every kept connection back to the pool (before the engine is disposed)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for connection, _baseline, since in idle:
            sync = connection.sync_connection
            if sync is not None and not sync.closed:
                await connection.run_sync(_check_in, since)


def _check_in(sync: Any, since: float) -> None:
    """Close ``sync`` (a kept connection's ``Connection``), checking it in, idle since
    ``since``: the pool's check-in marks it as used just now (``db.engine._returned``), and the
    checkout that takes it next (a mutation's) would not ping a connection kept idle for long,
    which the lane itself pings before using it again."""
    if sync.invalidated:
        sync.close()
        return
    info = sync.connection.info  # its pool record's, kept across check-ins
    sync.close()
    info["returned_at"] = since


def _found_dead(connection: AsyncConnection) -> bool:
    """Invalidated (SQLAlchemy saw a disconnect), or its driver connection closed."""
    sync = connection.sync_connection
    if sync is None or sync.closed:
        return False
    if sync.invalidated:
        return True
    driver = getattr(sync.connection.dbapi_connection, "_connection", None)
    return driver is not None and driver.is_closed()


def _open_driver(connection: AsyncConnection) -> bool:
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return False
    adapter = sync.connection.dbapi_connection
    driver = getattr(adapter, "_connection", None)
    return bool(getattr(adapter, "autocommit", False)) and not (
        driver is None or driver.is_closed()
    )
