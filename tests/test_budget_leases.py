"""The shared cost budget's leases (graph/cost_store.py ``SharedBudget``): an instance takes a
request's cost plus a small lease from the store and spends the lease without a round trip;
instances together never admit more than the budget, and unspent leases go back.

Each ``SharedBudget`` stands for one ``serve`` process; they share the test database's
``cost_budget`` table (or a Redis), exactly as processes of one deployment do.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import graph.cost_store
from graph.cost_store import PostgresStore, RedisStore, SharedBudget, Spent, Store
from tests.conftest import Api, postgresql_only
from tests.test_shared_budget import REDIS_URL, require_redis


class Counted:
    """A real store, its round trips counted."""

    def __init__(self, store: Any) -> None:
        self.store, self.trips = store, 0
        self.name, self.errors = store.name, store.errors

    async def spend(self, token_id: int, cost: float, capacity: float, rate: float) -> Spent:
        self.trips += 1
        answer: Spent = await self.store.spend(token_id, cost, capacity, rate)
        return answer

    async def close(self) -> None:
        await self.store.close()


Stores = Callable[[], Store]


@pytest.fixture(params=["postgresql", "redis"])
def stores(request: pytest.FixtureRequest, api: Api, backend: str) -> Stores:
    """A maker of stores over one deployment's budget (PostgreSQL's table or a Redis)."""
    graph.cost_store.STORE_TIMEOUT = 10.0  # a loaded machine's first trip is not an outage
    if request.param == "redis":
        require_redis()
        deployment = uuid.uuid4().hex
        return lambda: RedisStore(REDIS_URL, deployment)
    assert backend == "postgresql"
    return lambda: PostgresStore(api.db.url)


@pytest.fixture(autouse=True)
def _restore_timeout() -> Any:
    before = graph.cost_store.STORE_TIMEOUT
    yield
    graph.cost_store.STORE_TIMEOUT = before


@asynccontextmanager
async def instances(stores: Stores, n: int, per_minute: int) -> AsyncIterator[list[SharedBudget]]:
    budgets = [SharedBudget(Counted(stores()), per_minute) for _ in range(n)]
    try:
        yield budgets
    finally:
        for budget in budgets:
            await budget.close()


def trips(budget: SharedBudget) -> int:
    store = budget.store
    assert isinstance(store, Counted)
    return store.trips


@postgresql_only
async def test_a_token_s_next_requests_spend_its_lease_without_a_round_trip(
    stores: Stores,
) -> None:
    # given: a budget of 60,000 points a minute (a lease of 600)
    async with instances(stores, 1, 60_000) as (one,):
        # when: 50 requests of 10 points
        started = time.monotonic()
        answers = [await one.spend(7, 10) for _ in range(50)]
        taken, elapsed = trips(one), time.monotonic() - started

    # then: all granted; the first request went to the store alone, the second took a lease
    # that paid for the rest; what is left is reported as if every request had gone to the
    # store (plus what refilled meanwhile)
    assert all(granted for granted, _, _ in answers)
    assert taken == 2 or (taken == 3 and elapsed > 1)  # (a third after LEASE_SECONDS)
    assert 60_000 - 500 <= answers[-1][1] <= 60_000 - 500 + 1_000


@postgresql_only
async def test_a_token_s_occasional_requests_take_no_lease(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: requests of a token further apart than LEASE_SECONDS
    monkeypatch.setattr(graph.cost_store, "LEASE_SECONDS", 0.05)
    async with instances(stores, 1, 60_000) as (one,):
        for _ in range(3):
            assert (await one.spend(4, 10))[0]
            held = dict(one._leases)
            await asyncio.sleep(0.15)

        # then: each went to the store once and took nothing ahead (a lease would cost a
        # second trip to give it back)
        assert trips(one) == 3 and held == {}


@postgresql_only
async def test_a_burst_of_one_token_takes_one_lease_at_a_time(stores: Stores) -> None:
    # given: a busy token (60,000 a minute: a lease of 600)
    async with instances(stores, 1, 60_000) as (one,):
        assert (await one.spend(6, 0))[0]

        # when: 50 concurrent requests of 10 points
        answers = await asyncio.gather(*(one.spend(6, 10) for _ in range(50)))

        # then: one trip took one lease, which paid for the others (a lease per concurrent
        # request would have taken 50 % of the budget out of the other instances' reach)
        held, taken = one._leases[6].points, trips(one)
    assert all(granted for granted, _, _ in answers)
    assert taken == 2
    assert held == 600 - 490


@postgresql_only
async def test_instances_together_never_admit_more_than_the_budget(stores: Stores) -> None:
    # given: three instances of one deployment, 3,000 points a minute (50 a second)
    per_minute, cost = 3_000, 7
    async with instances(stores, 3, per_minute) as budgets:
        started = time.monotonic()

        # when: 40 concurrent requests per instance, each spending until refused
        async def client(budget: SharedBudget) -> int:
            granted = 0
            while (await budget.spend(11, cost))[0]:
                granted += cost
            return granted

        spent = await asyncio.gather(*(client(b) for b in budgets for _ in range(40)))
        # ... then one more client per instance, in turn (a client that stopped at its first
        # refusal may have left points that another instance's trip was giving back)
        for budget in budgets:
            spent.append(await client(budget))
        elapsed = time.monotonic() - started

    # then: never more than the budget plus what refilled meanwhile, and the leases strand
    # little: less than a request's cost per instance, and in the store
    total = sum(spent)
    assert total <= per_minute + elapsed * per_minute / 60
    assert total >= per_minute - 4 * cost


@pytest.fixture
def large_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of 20 % (12 seconds of refill), so that a lease given back or not tells apart
    whatever the machine's speed (1 % is 0.6 s of refill)."""
    monkeypatch.setattr(graph.cost_store, "LEASE_FRACTION", 0.2)


@postgresql_only
async def test_a_closing_instance_gives_its_lease_back(stores: Stores, large_leases: None) -> None:
    # given: an instance that spent once, taking a lease (6,000 a minute: a lease of 1,200)
    async with instances(stores, 1, 6_000) as (one,):
        assert (await one.spend(3, 0))[0]  # the token's first request: no lease
        assert (await one.spend(3, 100))[0]
        assert one._leases[3].points == 1_200

    # when: it has closed (a restart); then: another instance sees only the request's cost gone
    # (4,700 and some refill had the lease stayed taken)
    async with instances(stores, 1, 6_000) as (other,):
        granted, remaining, _ = await other.spend(3, 0)
    assert granted
    assert 5_900 <= remaining <= 6_000


@postgresql_only
async def test_an_unspent_lease_goes_back_after_lease_seconds(
    stores: Stores, large_leases: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph.cost_store, "LEASE_SECONDS", 0.1)
    async with instances(stores, 2, 6_000) as (one, other):
        # given: one instance's second request of a token took a lease
        assert (await one.spend(5, 0))[0]
        assert (await one.spend(5, 100))[0]
        # when: the lease's time has passed while the instance stays up
        await asyncio.sleep(0.5)

        # then: the lease is back in the store: the other instance sees only the cost gone
        assert 5 not in one._leases
        granted, remaining, _ = await other.spend(5, 0)
    assert granted
    assert 5_900 <= remaining <= 6_000


@postgresql_only
async def test_near_the_end_of_a_budget_requests_take_no_lease(
    stores: Stores, large_leases: None
) -> None:
    # given: 600 points a minute (10 a second, a lease of 120); 400 + 120 taken: 80 left
    async with instances(stores, 1, 600) as (one,):
        assert (await one.spend(9, 0))[0]  # no lease for a token's first request
        assert (await one.spend(9, 400))[0]
        assert one._leases[9].points == 120
        # when: three requests of 100 points
        first = await one.spend(9, 100)  # the lease pays: 20 left in it
        first_trips = trips(one) - 1
        # 20 leased + 80 from the store: refused with another lease, granted without one
        second = await one.spend(9, 100)
        second_trips, leased = trips(one) - 1, dict(one._leases)
        third = await one.spend(9, 100)  # nothing leased, (nearly) nothing in the store

    # then: the lease is spent first, then the store's last points, then a refusal with a wait
    assert first[0] and first_trips == 1
    assert second[0] and second_trips == 3 and leased == {}
    assert not third[0] and third[2] > 0 and third[1] < 100
    assert trips(one) - 1 == 4  # no lease asked for after a refusal: one trip
