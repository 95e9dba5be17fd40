"""The delivery loop of ``partner-hub serve`` (started in the app's lifespan) and the
time-driven status scheduler beside it.

Each turn claims due deliveries (``db.webhooks.deliveries.claim_due``), sends them concurrently
(one customer's deliveries to one endpoint are never claimed together: see the claim's order
rule) and records each outcome in its own short transaction. Every ``webhook_schedule_seconds``
one server emits the status changes time made (``db.webhooks.timed``).

Connections are pooled per endpoint host: the request goes to an IP address checked once, and a
pooled connection is only reused for the same host name (its TLS certificate was checked for
that name).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import session_factory
from db.settings import Settings
from db.webhooks.deliveries import (
    Claimed,
    Outcome,
    RetryPolicy,
    claim_due,
    prune,
    record_outcomes,
)
from db.webhooks.outbox import wall_clock
from db.webhooks.secrets import unseal
from db.webhooks.timed import emit_crossed
from graph.webhooks.sender import new_client, send

log = logging.getLogger("partner_hub.webhooks")
MAX_CLIENTS = 256


def policy_of(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.webhook_retry_base_seconds,
        max_delay_seconds=settings.webhook_retry_max_delay_seconds,
        window_seconds=settings.webhook_retry_window_seconds,
    )


class WebhookWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        secret: bytes,
        domain_now: Callable[[], datetime],
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        self.secret = secret
        self.domain_now = domain_now
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self.policy = policy_of(settings)
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}
        self._limit = asyncio.Semaphore(settings.webhook_concurrency)
        self._next_schedule = 0.0
        self._closing: set[asyncio.Future[None]] = set()

    def _client(self, url: str) -> httpx.AsyncClient:
        parts = urlsplit(url)
        key = (parts.scheme, (parts.hostname or "").lower())
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                oldest = next(iter(self._clients))
                self._closing.add(asyncio.ensure_future(self._clients.pop(oldest).aclose()))
            client = self._clients[key] = new_client()
        return client

    async def deliver_due(self) -> int:
        """One turn: claim, send concurrently, record every outcome in one transaction (one
        write per turn, not per delivery: SQLite has one writer). The number attempted."""
        async with self.sessions() as session:
            claimed = await claim_due(
                session,
                now=wall_clock(),
                lease_seconds=self.settings.webhook_timeout_seconds + 30,
                worker=self.name,
                limit=self.settings.webhook_batch,
            )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._one(c) for c in claimed))
        async with self.sessions() as session:
            await record_outcomes(
                session,
                results=[(c, o, t) for c, (o, t) in zip(claimed, outcomes, strict=True)],
                worker=self.name,
                policy=self.policy,
            )
        return len(claimed)

    async def _one(self, claimed: Claimed) -> tuple[Outcome, datetime]:
        async with self._limit:
            try:
                secret = unseal(claimed.secret, self.secret)
            except ValueError:
                outcome = Outcome(False, None, None, "the endpoint secret cannot be unsealed")
            else:
                outcome = await send(
                    self._client(claimed.url),
                    self.settings,
                    url=claimed.url,
                    secret=secret,
                    message_id=claimed.message_id,
                    body=claimed.body,
                )
        return outcome, wall_clock()

    async def schedule(self) -> int | None:
        """Emit the status changes time made since the last run (one server at a time), and
        forget deliveries past the retention."""
        async with self.sessions() as session:
            emitted = await emit_crossed(session, now=self.domain_now())
        if emitted is not None:  # this server had the turn
            keep = timedelta(days=self.settings.webhook_retention_days)
            async with self.sessions() as session:
                await prune(
                    session,
                    delivered_before=wall_clock() - keep,
                    events_before=self.domain_now() - keep,
                )
        return emitted

    async def run(self) -> None:
        """Until cancelled: deliver what is due, look for time-driven changes now and then."""
        while True:
            try:
                if time.monotonic() >= self._next_schedule:
                    self._next_schedule = time.monotonic() + self.settings.webhook_schedule_seconds
                    await self.schedule()
                busy = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery turn failed")
                busy = 0
            if not busy:
                await asyncio.sleep(self.settings.webhook_poll_seconds)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class RunningWorker:
    """The loop as a task of the app's lifespan."""

    def __init__(self, worker: WebhookWorker) -> None:
        self.worker = worker
        self.task = asyncio.create_task(worker.run(), name="webhook-delivery")

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.worker.aclose()
