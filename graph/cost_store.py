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
the store again, logging ``cost_budget_degraded`` once per outage (and ``cost_budget_restored``
once it answers again). Failing open this way keeps a
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
LEASE_FRACTION = 0.01  # of the budget an instance takes ahead of its requests (SharedBudget)
LEASE_SECONDS = 1.0
RETURNS = 4  # leases given back at a time (SharedBudget)

Spent = tuple[bool, float, float]

# KEYS[1] the token's bucket; ARGV capacity, rate (points a second), cost (negative: points
# given back, up to capacity). Returns
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
  level = math.min(capacity, level - cost)
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

    async def spend(self, token_id: int, cost: float, capacity: float, rate: float) -> Spent: ...

    async def close(self) -> None: ...


def _answer(granted: bool, level: float, cost: float, rate: float) -> Spent:
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
                        # With leases a busy process makes a trip a second or so per token, so
                        # a connection idle for 10 s is not about to be used: it goes, leaving
                        # PostgreSQL's connections (max_connections) to those in use.
                        max_inactive_connection_lifetime=10,
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

    async def spend(self, token_id: int, cost: float, capacity: float, rate: float) -> Spent:
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

    async def spend(self, token_id: int, cost: float, capacity: float, rate: float) -> Spent:
        async with asyncio.timeout(STORE_TIMEOUT):
            granted, level = await self.script(
                keys=[f"{self.prefix}{token_id}"], args=[capacity, rate, cost]
            )
        return _answer(bool(granted), float(level), cost, rate)

    async def close(self) -> None:
        await self.client.aclose()


class Lease:
    """Points an instance took from the store ahead of its requests, spent here until
    ``until``. ``shown`` is the token's level as one bucket would have it at ``stamp`` (the
    store's level plus the lease), refilled and spent here like ``CostLimiter``'s buckets, for
    ``currentlyAvailable``: two requests of the same cost a moment apart report the same level,
    as they did when each went to the store."""

    __slots__ = ("points", "shown", "stamp", "until")

    def __init__(self, points: float, until: float, level: float) -> None:
        self.points, self.until = points, until
        self.shown, self.stamp = level + points, time.monotonic()

    def level(self) -> float:
        """The store's level the lease was last told of (``shown`` without the lease)."""
        return self.shown - self.points

    def spend(self, cost: int, capacity: float, rate: float, now: float) -> float:
        self.points -= cost
        self.shown = min(capacity, self.shown + (now - self.stamp) * rate) - cost
        self.stamp = now
        return self.shown


class SharedBudget:
    """A store's budget, or this process's while the store does not answer.

    A round trip to the store per request cost the directory page 15-18 % of its throughput
    (issue 17's bench; every PostgreSQL request paid it, ``{ __typename }`` included). So a
    trip of a token seen within ``LEASE_SECONDS`` takes a request's cost plus a lease of
    ``LEASE_FRACTION`` of the budget, which later requests of the token spend here without a
    trip until it runs out or ``LEASE_SECONDS`` pass; what is left then goes back to the store
    (with the token's next trip, or by a sweep). Points
    are taken from the store before they are spent, so instances never admit more than the
    budget together but for one margin: the store, not knowing what is leased, refills to its
    capacity while a lease is out (a lease is refilled in ``LEASE_FRACTION`` of a minute), so a
    burst after a pause may admit the budget plus the leases held (``LEASE_FRACTION`` per
    instance). An instance's unspent lease is missing from the others' view until it goes
    back (at most ``LEASE_FRACTION`` per instance and token, for at most ``LEASE_SECONDS``).
    After a refusal, the token's next trips (for ``LEASE_SECONDS``) take no lease: near the
    end of a budget each request goes to the store, as before."""

    shared = True

    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.local = CostLimiter(per_minute)
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.lease = self.capacity * LEASE_FRACTION
        self._down_until = 0.0
        self._outage = False  # logged as begun, not yet as ended
        self._leases: dict[int, Lease] = {}
        self._lean_until: dict[int, float] = {}  # tokens refused lately: no lease
        self._last_trip: dict[int, float] = {}  # tokens' last trips (monotonic seconds)
        self._trips: dict[int, asyncio.Future[None]] = {}  # tokens' trips under way
        self._sweep: asyncio.TimerHandle | None = None
        self._returns: set[asyncio.Task[None]] = set()

    async def spend(self, token_id: int, cost: int) -> Spent:
        while True:
            now = time.monotonic()
            if now < self._down_until:
                return self.local.take(token_id, cost)
            held = self._leases.get(token_id)
            if held is not None and held.until > now and held.points >= cost:
                return True, held.spend(cost, self.capacity, self.rate, now), 0.0
            pending = self._trips.get(token_id)
            if pending is None:
                break
            # One trip per token at a time: concurrent requests would each take a lease (a
            # burst of 100 could hold the whole budget here); they wait for it and spend it.
            await asyncio.shield(pending)
        done = self._trips[token_id] = asyncio.get_running_loop().create_future()
        try:
            spent = await self._trip(token_id, cost, now)
            if self._outage:
                self._restored()
            return spent
        except self.store.errors as error:
            self._degraded(error)
            return self.local.take(token_id, cost)
        finally:
            del self._trips[token_id]
            done.set_result(None)

    async def _trip(self, token_id: int, cost: int, now: float) -> Spent:
        """Spend at the store, giving back the token's lease and taking a new one."""
        held = self._leases.pop(token_id, None)  # concurrent requests must not spend it too
        points = held.points if held is not None else 0.0
        need = cost - points
        # A lease only for a token seen within LEASE_SECONDS: a token's occasional request
        # would otherwise pay a second trip, the lease's return.
        busy = self._last_trip.get(token_id, -LEASE_SECONDS) > now - LEASE_SECONDS
        self._seen(token_id, now)
        lean = self._lean_until.get(token_id, 0.0) > now
        extra = self.lease if busy and not lean else 0.0
        try:
            granted, level = await self._store_spend(token_id, need + extra)
            if not granted and extra:
                self._lean_until[token_id] = now + LEASE_SECONDS
                extra = 0.0
                granted, level = await self._store_spend(token_id, need)
        except BaseException:
            # The store may have acted before the answer was lost (a timeout, a cancelled
            # request): keep only what the call cannot have given back already (its spend of
            # ``need + extra`` gives back up to ``points - cost - extra``; the sweep gives back
            # the lease kept here, so keeping it all may give those points back twice).
            if held is not None and (kept := min(points, cost + extra)) > 0:
                self._keep(token_id, kept, held.until, held.level())
            raise
        if not granted:
            if held is not None:  # still the token's: spent by a later request, or given back
                self._keep(token_id, held.points, held.until, level)
            return False, level + points, max(0.0, (need - level) / self.rate)
        if extra:
            self._keep(token_id, extra, time.monotonic() + LEASE_SECONDS, level)
        return True, level + extra, 0.0

    def _seen(self, token_id: int, now: float) -> None:
        last = self._last_trip
        if len(last) >= 4096 and token_id not in last:  # forget tokens quiet for a while
            self._last_trip = last = {t: at for t, at in last.items() if at > now - LEASE_SECONDS}
            self._lean_until = {t: u for t, u in self._lean_until.items() if u > now}
        last[token_id] = now

    async def _store_spend(self, token_id: int, points: float) -> tuple[bool, float]:
        granted, level, _ = await self.store.spend(token_id, points, self.capacity, self.rate)
        return granted, level

    def _keep(self, token_id: int, points: float, until: float, level: float) -> None:
        held = self._leases.get(token_id)
        if held is None:
            self._leases[token_id] = Lease(points, until, level)
        else:  # another request's lease meanwhile: one lease, the later expiry
            held.points += points
            held.until = max(held.until, until)
            held.shown, held.stamp = level + held.points, time.monotonic()
        if self._sweep is None:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(LEASE_SECONDS, self._start_sweep)

    def _start_sweep(self) -> None:
        self._sweep = None
        now = time.monotonic()
        expired = [t for t, held in self._leases.items() if held.until <= now]
        returns = [(t, held.points) for t in expired if (held := self._leases.pop(t)).points > 0]
        if returns:
            task = asyncio.get_running_loop().create_task(self._give_back(returns))
            self._returns.add(task)
            task.add_done_callback(self._returns.discard)
        self._lean_until = {t: u for t, u in self._lean_until.items() if u > now}
        if self._leases:
            self._sweep = asyncio.get_running_loop().call_later(LEASE_SECONDS, self._start_sweep)

    async def _give_back(self, returns: list[tuple[int, float]]) -> None:
        """Give leases back, ``RETURNS`` trips at a time: a trip each at once (hundreds of tokens
        busy in one second) overflowed PostgreSQL's pool or opened as many Redis connections,
        timed out, and took the process's budget for an outage. None more once one fails."""
        left = iter(returns)
        failed = False

        async def returner() -> None:
            nonlocal failed
            for token_id, points in left:
                if failed:
                    return
                try:
                    await self._store_spend(token_id, -points)
                except self.store.errors as error:
                    failed = True  # lost points: a token may spend a little less this minute
                    self._degraded(error)
                else:
                    # The store may answer a return first (the sweep's, or close's: no spend
                    # comes after it), but not one that raced this batch's failure.
                    if self._outage and not failed:
                        self._restored()

        await asyncio.gather(*(returner() for _ in range(RETURNS)))

    def _degraded(self, error: BaseException) -> None:
        """Per-process budgets for ``RETRY_SECONDS``; logged once an outage, however long it
        lasts (each retry that fails again is not a new one), and its end once (``_restored``)."""
        if not self._outage:
            self._outage = True
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

    def _restored(self) -> None:
        self._outage = False
        log.warning(
            "cost budget store answering again: the deployment's budget is shared again",
            extra={"event": "cost_budget_restored", "store": self.store.name},
        )

    async def close(self) -> None:
        """Give every lease back (a restart must not strand them), then close the store."""
        while self._trips:  # a trip under way may yet take a lease: wait for its answer
            await asyncio.wait([asyncio.shield(f) for f in self._trips.values()])
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        leases, self._leases = self._leases, {}
        returns = [(t, held.points) for t, held in leases.items() if held.points > 0]
        await asyncio.gather(self._give_back(returns), *self._returns, return_exceptions=True)
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
