"""Session 12's attacks on the shared cost budget's leases (graph/cost_store.py ``SharedBudget``).

Each ``SharedBudget`` stands for one ``serve`` process over one deployment's store (the test
database's ``cost_budget`` table, or a Redis), as in tests/test_budget_leases.py. ``Gated`` is a
real store whose answer can be held back after the store acted: a reply in flight when the
request is cancelled or times out, or when the process closes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import graph.cost_store
from graph.cost_store import SharedBudget, Spent
from tests.conftest import postgresql_only
from tests.test_budget_leases import Stores, _restore_timeout, large_leases, stores

__all__ = ["_restore_timeout", "large_leases", "stores"]  # fixtures, used by name


class Gated:
    """A real store; while ``hold`` is set, each answer waits for it once the store has acted,
    then raises ``fail`` if set (the store acted, the answer was lost)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.name, self.errors = store.name, store.errors
        self.hold: asyncio.Event | None = None
        self.acted = asyncio.Event()
        self.fail: BaseException | None = None

    async def spend(self, token_id: int, cost: float, capacity: float, rate: float) -> Spent:
        answer: Spent = await self.store.spend(token_id, cost, capacity, rate)
        if self.hold is not None:
            self.acted.set()
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        return answer

    async def close(self) -> None:
        await self.store.close()


def gate(budget: SharedBudget) -> Gated:
    store = budget.store
    assert isinstance(store, Gated)
    return store


def as_if_lease_seconds_passed(budget: SharedBudget, token_id: int) -> None:
    """The token's lease expired and its trip is more than LEASE_SECONDS old, the sweep not run
    yet: the sweep runs every LEASE_SECONDS from the first lease it found, so a lease taken
    after it was armed stays up to LEASE_SECONDS past its expiry."""
    budget._leases[token_id].until = time.monotonic()
    budget._last_trip[token_id] -= graph.cost_store.LEASE_SECONDS
    if budget._sweep is not None:
        budget._sweep.cancel()
        budget._sweep = None


@postgresql_only
@pytest.mark.parametrize("lost", ["cancelled", "timed out"])
async def test_a_trip_lost_after_the_store_acted_does_not_give_a_lease_back_twice(
    stores: Stores, large_leases: None, lost: str
) -> None:
    # given: 6,000 points a minute (100 a second, leases of 1,200); 3,000 spent and a lease of
    # 1,200 taken (1,800 left in the store), the lease unspent and expired
    started = time.monotonic()
    one = SharedBudget(Gated(stores()), 6_000)
    other = SharedBudget(stores(), 6_000)
    try:
        assert (await one.spend(1, 0))[0]
        assert (await one.spend(1, 3_000))[0]
        assert one._leases[1].points == 1_200
        as_if_lease_seconds_passed(one, 1)

        # when: the token's next request (10 points) gives the lease's 1,190 left over back
        # with its trip, and the store acts, but the answer is lost: the request is cancelled
        # (its client left) or the answer comes after STORE_TIMEOUT
        gated = gate(one)
        gated.hold = asyncio.Event()
        request = asyncio.create_task(one.spend(1, 10))
        await gated.acted.wait()
        if lost == "cancelled":
            request.cancel()
        else:
            gated.fail = TimeoutError()
        gated.hold.set()
        if lost == "cancelled":
            with pytest.raises(asyncio.CancelledError):
                await request
        else:
            assert (await request)[0]  # served from the process's own budget meanwhile
        await one.close()  # gives back whatever leases it holds

        # then: the store holds at most its 1,800 and the lease's 1,200 (and what refilled; the
        # request's 10 are spent or not): the lease's points went back once (twice, it held
        # 4,190)
        granted, remaining, _ = await other.spend(1, 0)
    finally:
        await one.close()
        await other.close()
    assert granted
    assert remaining <= 3_000 + (time.monotonic() - started) * 100


@postgresql_only
async def test_a_lease_taken_by_a_trip_under_way_at_close_goes_back(
    stores: Stores, large_leases: None
) -> None:
    # given: a busy token (6,000 a minute, leases of 1,200) whose trip's answer is on its way
    one = SharedBudget(Gated(stores()), 6_000)
    other = SharedBudget(stores(), 6_000)
    try:
        assert (await one.spend(2, 0))[0]
        gated = gate(one)
        gated.hold = asyncio.Event()
        request = asyncio.create_task(one.spend(2, 100))
        await gated.acted.wait()

        # when: the process closes meanwhile (a shutdown), and the answer then arrives
        closing = asyncio.create_task(one.close())
        await asyncio.sleep(0.05)
        gated.hold.set()
        assert (await request)[0]
        await closing

        # then: the lease that trip took went back too (stranded, the store held 4,700), and
        # no sweep is left to run against the closed store
        leases, sweep = dict(one._leases), one._sweep
        granted, remaining, _ = await other.spend(2, 0)
    finally:
        await other.close()
    assert leases == {} and sweep is None
    assert granted
    assert remaining >= 5_900


@postgresql_only
async def test_a_sweep_of_many_leases_is_no_outage(
    stores: Stores, large_leases: None, caplog: pytest.LogCaptureFixture
) -> None:
    # given: 1,000 tokens busy in the same second, each holding a lease (6,000 a minute, leases
    # of 1,200 after a request of 10)
    one = SharedBudget(stores(), 6_000)
    other = SharedBudget(stores(), 6_000)
    tokens = range(1_000, 2_000)
    try:
        for _ in range(2):
            for first in range(tokens.start, tokens.stop, 50):
                await asyncio.gather(*(one.spend(t, 10) for t in range(first, first + 50)))
        held = [t for t in tokens if t in one._leases]
        assert len(held) >= 500

        # when: they all expire together and the sweep gives them back, the store answering
        # as in production (within STORE_TIMEOUT)
        graph.cost_store.STORE_TIMEOUT = 0.5
        for token_id in held:
            one._leases[token_id].until = time.monotonic()
        if one._sweep is not None:
            one._sweep.cancel()
        one._start_sweep()
        await asyncio.gather(*one._returns)

        # then: the leases are back (the store holds 6,000 less 20, plus refill), and the
        # process did not take its own sweep for an outage (each lease its own trip at once
        # overflowed PostgreSQL's pool of 2 or opened hundreds of Redis connections, timing
        # out: per-process budgets for RETRY_SECONDS)
        down = one._down_until
        graph.cost_store.STORE_TIMEOUT = 10.0
        left = [(await other.spend(t, 0))[1] for t in held[::30]]
    finally:
        await one.close()
        await other.close()
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "cost_budget_degraded" not in events and down == 0.0
    assert min(left) >= 5_900
