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

Under load, with the lane's connections as many as the pool may open, a query waits in the lane
(first come first served) and a finished query hands its connection straight to it: no
check-in, no checkout, no ``AUTOCOMMIT`` set again (at 32 connections over two workers and a
pool of 10 each, every query used to wait for the pool). A waiter cancelled just as it was
handed one passes it on.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.driver_query import RIDER
from db.engine import PING_IDLE_S, LanePool, ping

AUTOCOMMIT = "AUTOCOMMIT"


Handed = tuple[AsyncConnection, dict[str, Any]]


class QueryLane:
    """Up to ``keep`` ``AUTOCOMMIT`` connections of ``engine``, kept between queries."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self.engine = engine
        self.keep = keep
        self._idle: list[tuple[AsyncConnection, dict[str, Any], float]] = []
        self.closed = False
        # Connections of the lane open now (idle, in use or being handed over), at most
        # ``limit``: the pool's whole size (none when its overflow is unlimited). Past it a
        # query waits here, first come first served, for one a finished query hands over.
        self.opened = 0
        self.limit: int | None = None
        self._waiters: collections.deque[asyncio.Future[Handed | None]] = collections.deque()
        self._closing: set[asyncio.Task[None]] = set()
        # Kept connections given back before this (``time.monotonic``) are pinged before use.
        self._suspect_before = 0.0
        pool = engine.pool
        if isinstance(pool, LanePool):
            pool.lanes.add(self)
            self.limit = pool.capacity()

    def give_up_one(self) -> bool:
        """Close one kept connection, checking it in: called by the pool (in SQLAlchemy's
        greenlet) when a checkout would otherwise wait (``db.engine.LanePool``)."""
        while self._idle:
            connection, _baseline, since = self._idle.pop(0)  # the least recently used
            self._closed_one()
            sync = connection.sync_connection
            if sync is not None and not sync.closed:
                _check_in(sync, since)
                return True
        return False

    async def _open(self) -> Handed:
        connection = await self.engine.connect()
        try:
            await connection.execution_options(isolation_level=AUTOCOMMIT, **{RIDER: None})
        except BaseException:
            await connection.close()
            raise
        sync = connection.sync_connection
        assert sync is not None
        return connection, dict(sync.get_execution_options())

    async def _take(self) -> Handed:
        while True:
            while self._idle:
                connection, baseline, since = self._idle.pop()
                fresh = since > self._suspect_before and time.monotonic() - since <= PING_IDLE_S
                if fresh and _open_driver(connection):
                    return connection, baseline
                try:  # idle for long, closed by the server, or suspect: as the pool checks it
                    await connection.run_sync(ping)
                except DisconnectionError:
                    self._closed_one()
                    await connection.invalidate()
                    await connection.close()
                    continue
                except BaseException:  # cancelled while it pinged: not kept, not lost
                    self._discard(connection)
                    raise
                return connection, baseline
            if self.limit is None or self.opened < self.limit or self.closed:
                self.opened += 1
                try:
                    return await self._open()
                except BaseException:
                    self._closed_one()
                    raise
            waiter: asyncio.Future[Handed | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())  # handed over as it was cancelled
                raise
            if handed is not None:
                return handed
            # None: one of the lane's connections was closed; there is room to open one

    def _closed_one(self) -> None:
        """One of the lane's connections is closed (or failed to open): room for a waiter."""
        self.opened -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        """Tell the first query waiting that there is room to open a connection."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _pass_on(self, handed: Handed | None) -> None:
        """What was handed to a waiter that was cancelled meanwhile goes on: the room it was
        told of to the next waiter; a connection to the next waiter, or kept, or closed."""
        if handed is None:
            self._wake_one()
        elif not self._place(*handed):
            self._discard(handed[0])

    def _discard(self, connection: AsyncConnection) -> None:
        """Close ``connection`` in a task of its own (from a cancelled task, which cannot
        await), kept until done (``close`` waits for it)."""
        self._closed_one()
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

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
            self._closed_one()
            await connection.close()
            raise
        if not (self._reusable(connection, baseline) and self._place(connection, baseline)):
            self._note_end(connection)
            self._closed_one()
            await connection.close()

    def _reusable(self, connection: AsyncConnection, baseline: dict[str, Any]) -> bool:
        """Whether ``connection`` is as it came out of the lane (its rider cleared first)."""
        sync = connection.sync_connection
        if self.closed or sync is None:
            return False
        if sync.closed or sync.invalidated or sync.in_transaction():
            return False
        if sync.get_execution_options().get(RIDER) is not None:
            sync.execution_options(**{RIDER: None})
        return dict(sync.get_execution_options()) == baseline and _open_driver(connection)

    def _place(self, connection: AsyncConnection, baseline: dict[str, Any]) -> bool:
        """Hand a reusable connection to the first query waiting, or keep it; False when it is
        to be closed: nobody waits and ``keep`` are kept, or a checkout waits in the pool (it
        is checked in for that one, first come first served)."""
        pool = self.engine.pool
        if isinstance(pool, LanePool) and pool.waiting:
            return False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result((connection, baseline))
                return True
        if len(self._idle) >= self.keep:
            return False
        self._idle.append((connection, baseline, time.monotonic()))
        return True

    async def close(self) -> None:
        """Give every kept connection back to the pool (before the engine is disposed)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for connection, _baseline, since in idle:
            self._closed_one()
            sync = connection.sync_connection
            if sync is not None and not sync.closed:
                await connection.run_sync(_check_in, since)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


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
    return sync.invalidated or _driver_closed(sync)


def _open_driver(connection: AsyncConnection) -> bool:
    """Usable as the lane hands it out: open, ``AUTOCOMMIT``, its driver connection open."""
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return False
    autocommit = bool(getattr(sync.connection.dbapi_connection, "autocommit", False))
    return autocommit and not _driver_closed(sync)


def _driver_closed(sync: Any) -> bool:
    driver = getattr(sync.connection.dbapi_connection, "_connection", None)
    return driver is None or bool(driver.is_closed())
