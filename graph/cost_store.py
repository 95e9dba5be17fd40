"""Where the per-token cost budget (graph/cost.py) lives: per deployment, or per process.

Several ``serve`` processes of one deployment share each token's budget, so a token may spend
``cost_per_minute`` whatever the number of instances (issue 17):

- with ``redis_url`` set, in Redis (one Lua script refills, spends and answers, on Redis's
  clock; keys expire once full again; named by the deployment's secret, so deployments may
  share a Redis);
- else on PostgreSQL, in the database's ``cost_budget`` table (db/cost_budgets.py), over a
  small connection pool of its own: the statement must commit at once, never inside a request's
  transaction (its row lock would serialize the token's requests until the request ended);
- on SQLite (one machine, usually one process) and with ``cost_budget_store=process``, in the
  process, as before.

When the shared store does not answer (Redis down, a timeout), a request is neither refused nor
failed: each process falls back to its own in-process budget for ``RETRY_SECONDS`` and then tries
the store again, logging ``cost_budget_degraded`` once per outage. Failing open this way keeps a
Redis outage from becoming an API outage (the budget protects the database from one token's
flood; it is not an authorization decision), while a token's spending stays bounded: at most
``cost_per_minute`` per instance.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from db.cost_budgets import SPEND
from db.settings import Settings
from graph.cost import CostLimiter

log = logging.getLogger("partner_hub.cost")

RETRY_SECONDS = 5.0
STORE_TIMEOUT = 0.5  # seconds: a store slower than this counts as down

Spent = tuple[bool, float, float]

# KEYS[1] the token's bucket; ARGV capacity, rate (points a second), cost. Returns
# {granted (0/1), level after, as a string (Lua numbers would come back truncated)}.
_REDIS_SPEND = """
local capacity, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'level', 'stamp')
local level, stamp = tonumber(held[1]), tonumber(held[2])
if level == nil or stamp == nil then level, stamp = capacity, now end
level = math.min(capacity, level + math.max(0, now - stamp) * rate)
local granted = 0
if cost <= level then
  level = level - cost
  granted = 1
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', tostring(math.max(now, stamp)))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / rate * 1000) + 1000)
return {granted, tostring(level)}
"""


class Budget(Protocol):
    """Spends a token's cost: (allowed, remaining, seconds to wait when refused)."""

    shared: bool

    async def spend(self, token_id: int, cost: int) -> Spent: ...

    async def close(self) -> None: ...


class Store(Protocol):
    name: str
    errors: tuple[type[BaseException], ...]

    async def spend(self, token_id: int, cost: int, capacity: float, rate: float) -> Spent: ...

    async def close(self) -> None: ...


def _answer(granted: bool, level: float, cost: int, rate: float) -> Spent:
    return granted, level, 0.0 if granted else max(0.0, (cost - level) / rate)


async def _keep_session(connection: Any) -> None:
    """The budget pool's reset: nothing beyond asyncpg's own rollback of an open transaction."""


class PostgresStore:
    """The ``cost_budget`` table, through a pool of at most ``size`` connections."""

    name = "postgresql"
    errors: tuple[type[BaseException], ...]

    def __init__(self, database_url: str, size: int = 2) -> None:
        import asyncpg

        self.dsn = make_url(database_url).set(drivername="postgresql")
        self.size = size
        self.errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> Any:
        if self._pool is None:
            import asyncpg

            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn.render_as_string(hide_password=False),
                        min_size=0,
                        max_size=self.size,
                        max_inactive_connection_lifetime=60,
                        timeout=STORE_TIMEOUT,
                        command_timeout=STORE_TIMEOUT,
                        # Every request commits a spend; waiting for its WAL flush held the
                        # token's row lock across an fsync and serialized a token's requests
                        # on the disk (issue 17's profile). A crash may forget the last
                        # fraction of a second of spending (PostgreSQL's asynchronous commit),
                        # never reorder or corrupt it: a rate limit's price, not data's.
                        server_settings={"synchronous_commit": "off"},
                        # asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE
                        # ALL; UNLISTEN *; RESET ALL;`` on every release: a second round trip
                        # per request for state the one statement below never makes (no lock,
                        # cursor, LISTEN or SET). The pool still rolls back a transaction left
                        # open (``Connection._reset``) before calling this.
                        reset=_keep_session,
                    )
        return self._pool

    async def spend(self, token_id: int, cost: int, capacity: float, rate: float) -> Spent:
        pool = await self._connections()
        async with asyncio.timeout(STORE_TIMEOUT):
            row = await pool.fetchrow(SPEND, token_id, float(cost), capacity, rate)
        return _answer(bool(row["granted"]), float(row["level"]), cost, rate)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class RedisStore:
    """One hash per token, ``partner-hub:cost:<deployment>:<token id>``."""

    name = "redis"
    errors: tuple[type[BaseException], ...]

    def __init__(self, url: str, deployment: str) -> None:
        import redis.asyncio
        import redis.exceptions

        self.client = redis.asyncio.Redis.from_url(
            url, socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT
        )
        self.script = self.client.register_script(_REDIS_SPEND)
        self.prefix = f"partner-hub:cost:{deployment}:"
        self.errors = (redis.exceptions.RedisError, OSError, TimeoutError)

    async def spend(self, token_id: int, cost: int, capacity: float, rate: float) -> Spent:
        async with asyncio.timeout(STORE_TIMEOUT):
            granted, level = await self.script(
                keys=[f"{self.prefix}{token_id}"], args=[capacity, rate, cost]
            )
        return _answer(bool(granted), float(level), cost, rate)

    async def close(self) -> None:
        await self.client.aclose()


class SharedBudget:
    """A store's budget, or this process's while the store does not answer."""

    shared = True

    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.local = CostLimiter(per_minute)
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._down_until = 0.0

    async def spend(self, token_id: int, cost: int) -> Spent:
        if time.monotonic() >= self._down_until:
            try:
                return await self.store.spend(token_id, cost, self.capacity, self.rate)
            except self.store.errors as error:
                if self._down_until == 0.0 or time.monotonic() >= self._down_until:
                    log.warning(
                        "cost budget store unreachable: each process keeps its own budget",
                        extra={
                            "event": "cost_budget_degraded",
                            "store": self.store.name,
                            "error": repr(error)[:200],
                            "retry_seconds": RETRY_SECONDS,
                        },
                    )
                self._down_until = time.monotonic() + RETRY_SECONDS
        return self.local.take(token_id, cost)

    async def close(self) -> None:
        await self.store.close()


def budget_for(settings: Settings, secret: bytes) -> Budget:
    """The budget this process spends from (see the module's docstring)."""
    if settings.cost_budget_store == "process":
        return CostLimiter(settings.cost_per_minute)
    if settings.redis_url:
        deployment = hashlib.sha256(b"cost-budget:" + secret).hexdigest()[:16]
        return SharedBudget(RedisStore(settings.redis_url, deployment), settings.cost_per_minute)
    if not settings.is_sqlite:
        return SharedBudget(PostgresStore(settings.database_url), settings.cost_per_minute)
    return CostLimiter(settings.cost_per_minute)
