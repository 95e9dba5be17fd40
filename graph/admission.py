"""Admission control: at most N GraphQL requests of a process execute at once; the others wait
their turn, first come first served, before they take anything (issue 17).

Why: a busy worker had 16 requests in flight (32 connections over 2 workers) against a pool of
4 SQLite connections. Every one of them had parsed its body, built its context and objects, and
then waited in SQLAlchemy's pool, while those holding a connection had their Python work between
statements spread over all 16 on the one event loop: each connection was held longer, the
young objects of 16 requests outlived the GC's young generation, and SQLite's threads fought
the loop for the GIL. At 32 connections the server answered fewer requests a second than at 8.
Waiting here costs a future in a deque; the request that finishes hands its slot straight to
the first waiter.

Rules kept:
- No deadlock with the pool: a request inside the limit never needs a second slot, and the
  pool's connections are released by requests that hold slots.
- A waiting request whose client disconnects never runs: while it waits, its ``receive`` is
  read (the body is kept and handed to the app afterwards, up to ``max_body_bytes``; past that
  the app reads the rest and refuses it as always) and ``http.disconnect`` drops it.
- Graceful shutdown (``graph.serving``): waiting requests are requests in flight; they run as
  slots free up within the grace, and one cancelled by the end of the grace leaves the queue
  without taking a slot (or gives back the one just handed to it).
- Only ``/graphql`` waits (this wraps its endpoint, not the app): health checks answer under
  load, and a CSV export streams for long (it keeps to the pool's own limit).
- A request without an ``Authorization`` header neither waits nor has its body read: the
  endpoint answers it (401, or a refusal of its method, or GraphiQL) before it reads the body
  or takes a pool connection, so the limit has nothing to guard there, and an unauthenticated
  client could otherwise make the server read ``max_body_bytes`` (or wait for a body that
  never comes) before telling it who it must be.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests executing at once per process, by backend, when PARTNER_HUB_SERVE_MAX_CONCURRENT is
# unset. SQLite: the pool's 4 connections; more executing requests only wait inside, and at 32
# connections over 2 workers the p99 was 0.5-0.8x that without a limit, throughput within the
# noise of a loaded machine (bench/results/2026-12-06-serving-sqlite-admission.md; 2, 6 and 8
# were no better). PostgreSQL: 0, no limit (not measured; its pool holds 10 and the database
# does its work in its own processes).
DEFAULT_MAX_CONCURRENT = {"sqlite": 4, "postgresql": 0}


class Admission:
    """In front of the GraphQL endpoint: at most ``limit`` of its HTTP requests run at once (0:
    no limit); the others wait in arrival order, once their body has arrived."""

    def __init__(self, app: ASGIApp, limit: int, max_body_bytes: int) -> None:
        self.app = app
        self.limit = limit
        self.max_body_bytes = max_body_bytes
        self.running = 0
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0 or scope["type"] != "http" or not _authorization_sent(scope):
            await self.app(scope, receive, send)
            return
        kept: collections.deque[Message] = collections.deque()
        whole = await self._read_body(scope, receive, kept)
        if whole is None:
            return  # the client left before its body arrived: nothing ran, nothing to answer

        async def replay() -> Message:
            return kept.popleft() if kept else await receive()

        if not whole and scope["method"] == "POST":
            # the app refuses a POST body this large (413) before it takes anything; a GET's
            # body is never read, so a GET declaring a large one still waits its turn
            await self.app(scope, replay, send)
            return
        if self.running < self.limit:  # then no one waits: a freed slot goes to a waiter first
            self.running += 1
        elif not await self._wait(receive, kept):
            return  # the client left while waiting
        turn = True

        def give_back() -> None:
            nonlocal turn
            if turn:
                turn = False
                self._release()

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The answer is made (the endpoint writes it with its session closed): a client
                # slow to read it, or never reading it, holds no turn while it is written (four
                # that never read would otherwise stall a SQLite worker's GraphQL for good: the
                # server has no write timeout).
                give_back()
            await send(message)

        try:
            await self.app(scope, replay, answering)
        finally:
            give_back()

    async def _read_body(
        self, scope: Scope, receive: Receive, kept: collections.deque[Message]
    ) -> bool | None:
        """Read the body into ``kept`` before taking a turn, so that a slow client holds no
        slot: True once it is all there, False when it is larger than ``max_body_bytes`` (by
        its ``Content-Length``, unread, or while reading), None when the client disconnected."""
        # The first Content-Length, as the endpoint's ``read_body`` takes it (a dict keeps the
        # last: a request declaring a small size, then a large one, skipped the queue)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return False
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            kept.append(message)
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return False
            if not message.get("more_body", False):
                return True

    def _release(self) -> None:
        """Hand the slot to the first waiter, else free it."""
        if self.waiting:
            self.waiting.popleft().set_result(None)
        else:
            self.running -= 1

    async def _wait(self, receive: Receive, kept: collections.deque[Message]) -> bool:
        """Wait for a slot, watching the connection: True once the slot is this request's,
        False when the client disconnected first (with the body read, ``receive`` has nothing
        else to give; a part of a body not read yet joins ``kept``)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        watcher = asyncio.ensure_future(receive())
        try:
            await asyncio.wait((turn, watcher), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the end of the shutdown's grace
            self._leave(turn)
            await _stop(watcher)
            raise
        # Anything but a request message is a connection that cannot be answered either.
        gone = watcher.done() and (
            watcher.cancelled()
            or watcher.exception() is not None
            or watcher.result()["type"] != "http.request"
        )
        await _stop(watcher)
        if gone:
            self._leave(turn)
            return False
        if watcher.done() and not watcher.cancelled():
            kept.append(watcher.result())
        if not turn.done():
            # ``receive`` gave more of a body (one not read before, by its declared size):
            # wait for the turn alone
            try:
                await turn
            except asyncio.CancelledError:
                self._leave(turn)
                raise
        return True

    def _leave(self, turn: asyncio.Future[None]) -> None:
        """A waiter gives up: out of the queue, or, when the slot was just handed to it, the
        slot passes on."""
        if turn.done():
            self._release()
        else:
            self.waiting.remove(turn)
            turn.cancel()


def _authorization_sent(scope: Scope) -> bool:
    """Whether the request has an ``Authorization`` header, whatever its value (the endpoint
    reads the body, then authenticates, only then; ASGI header names are lower case)."""
    return any(name == b"authorization" for name, _ in scope["headers"])


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has ended (``asyncio.wait`` neither raises the task's
    cancellation nor swallows this task's own)."""
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))
