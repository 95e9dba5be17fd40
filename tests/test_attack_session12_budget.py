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
