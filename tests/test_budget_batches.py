"""The shared cost budget coalesces concurrent spends into one store trip (graph/cost_store.py):
the answers are those of the same spends made one after the other, in arrival order; a batch
spanning tokens never deadlocks against another instance's; a store that fails mid-batch sends
the whole batch to the process's own budget; a bug fails the waiting spends, not the next ones.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from graph.cost_store import PostgresStore, RedisStore, SharedBudget, Spends, Spent
from tests.conftest import Api, postgresql_only
from tests.test_shared_budget import REDIS_URL, patient_store, require_redis

__all__ = ["patient_store"]  # the fixture, used by name

CAPACITY = 1_000_000  # points a minute: refill is ~16,667 points a second


class Counting:
    """A store wrapper recording the size of every trip."""

    def __init__(self, store: Any) -> None:
        self.store, self.trips = store, []
        self.name, self.errors = store.name, store.errors

    async def spend(self, spends: Spends, capacity: float, rate: float) -> list[Spent]:
        self.trips.append(len(spends))
        answers: list[Spent] = await self.store.spend(spends, capacity, rate)
        return answers

    async def close(self) -> None:
        await self.store.close()


def sequential(spends: Spends, level: dict[int, float]) -> list[bool]:
    """The reference: each spend against what the ones before it left (no refill)."""
    granted = []
    for token_id, cost in spends:
        left = level.get(token_id, float(CAPACITY))
        granted.append(cost <= left)
        level[token_id] = left - cost if cost <= left else left
    return granted


def store_of(kind: str, api: Api) -> Any:
    if kind == "redis":
        require_redis()
        return RedisStore(REDIS_URL, f"batches-{random.getrandbits(48):x}")
    return PostgresStore(api.db.url)


STORES = pytest.mark.parametrize("kind", ["postgresql", "redis"])


@postgresql_only
@STORES
async def test_concurrent_spends_share_trips_and_answer_as_if_one_by_one(
    api: Api, kind: str, patient_store: None
) -> None:
    # given: a budget over a counting store, tokens with random ids and costs near the capacity
    store = Counting(store_of(kind, api))
    budget = SharedBudget(store, CAPACITY)
    rng = random.Random(17)
    base = rng.randrange(10**6, 10**9)
    spends = [(base + rng.randrange(3), rng.randrange(100_000, 400_000)) for _ in range(40)]
    try:
        # when: all forty spent at once, from forty tasks
        answers = await asyncio.gather(*(budget.spend(t, c) for t, c in spends))
    finally:
        await budget.close()

    # then: fewer trips than spends, every spend in one of them, and the grants of the same
    # spends made one after the other (refill over the test's few seconds is < one cost)
    assert len(store.trips) < len(spends)
    assert sum(store.trips) == len(spends)
    assert [granted for granted, _, _ in answers] == sequential(spends, {})
    refused = [wait for granted, _, wait in answers if not granted]
    assert refused and all(wait > 0 for wait in refused)


@postgresql_only
async def test_two_instances_batching_tokens_in_opposite_orders_never_deadlock(
    api: Api, patient_store: None
) -> None:
    # given: two instances (two budgets, two pools) and two tokens each spends in turn
    one = SharedBudget(PostgresStore(api.db.url), CAPACITY)
    two = SharedBudget(PostgresStore(api.db.url), CAPACITY)
    a = random.Random().randrange(10**6, 10**9)
    b = a + 1
    try:
        # when: 30 rounds, each instance sending a batch [a, b] or [b, a] at the same moment
        for _ in range(30):
            await asyncio.gather(
                *(one.spend(t, 1) for t in (a, b, a, b)),
                *(two.spend(t, 1) for t in (b, a, b, a)),
            )
    finally:
        await one.close()
        await two.close()

    # then: no batch waited into a deadlock (PostgreSQL would abort one after a second, and
    # the batch would have gone to the process's budget: the store never went down)
    assert one._down_until == 0.0 and two._down_until == 0.0


@postgresql_only
@STORES
async def test_a_store_failing_mid_batch_sends_the_whole_batch_to_the_process_budget(
    api: Api, kind: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a store whose trips fail with one of its own errors after the first
    store = Counting(store_of(kind, api))
    budget = SharedBudget(store, CAPACITY)
    spent = store.store.spend
    token = random.Random().randrange(10**6, 10**9)

    async def failing(spends: Spends, capacity: float, rate: float) -> list[Spent]:
        if len(store.trips) > 1:
            raise TimeoutError("store too slow")
        answers: list[Spent] = await spent(spends, capacity, rate)
        return answers

    monkeypatch.setattr(store.store, "spend", failing)
    try:
        with caplog.at_level(logging.WARNING, logger="partner_hub.cost"):
            # when: one spend alone, then a batch of five while the store fails
            first = await budget.spend(token, 10)
            batch = await asyncio.gather(*(budget.spend(token, 10) for _ in range(5)))
            # and: a spend after it, within the retry period
            after = await budget.spend(token, 10)
    finally:
        await budget.close()

    # then: all granted (the process's own budget took the batch and the next), logged once
    assert first[0] and all(granted for granted, _, _ in batch) and after[0]
    assert len(store.trips) == 2  # the later spend did not try the store again
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("cost_budget_degraded") == 1


@postgresql_only
async def test_a_bug_in_a_trip_fails_its_waiting_spends_and_not_the_next(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a store whose first trip raises an unexpected error (not one of its own)
    store = PostgresStore(api.db.url)
    budget = SharedBudget(store, CAPACITY)
    spent = store.spend
    calls = 0

    async def buggy(spends: Spends, capacity: float, rate: float) -> list[Spent]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ZeroDivisionError("bug")
        answers: list[Spent] = await spent(spends, capacity, rate)
        return answers

    monkeypatch.setattr(store, "spend", buggy)
    token = random.Random().randrange(10**6, 10**9)
    try:
        # when: three spends in the failing trip, then one more
        failed = await asyncio.gather(
            *(budget.spend(token, 1) for _ in range(3)), return_exceptions=True
        )
        later = await budget.spend(token, 1)
    finally:
        await budget.close()

    # then: the three fail with the bug (the request reports it, masked); the next is answered
    assert [type(f) for f in failed] == [ZeroDivisionError] * 3
    assert later[0] is True
    assert budget._down_until == 0.0  # a bug is not an outage


@postgresql_only
async def test_a_cancelled_spend_does_not_stop_the_others_of_its_batch(
    api: Api, patient_store: None
) -> None:
    # given: a budget, and a batch of three spends of which the middle one is cancelled
    budget = SharedBudget(PostgresStore(api.db.url), CAPACITY)
    token = random.Random().randrange(10**6, 10**9)
    try:
        await budget.spend(token, 1)  # the pool is open
        tasks = [asyncio.create_task(budget.spend(token, 100)) for _ in range(3)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        _, level, _ = await budget.spend(token, 1)
    finally:
        await budget.close()

    # then: the others are answered; the cancelled one was still spent (as a sent one is)
    assert results[0][0] is True and results[2][0] is True  # type: ignore[index]
    assert isinstance(results[1], asyncio.CancelledError)
    assert level <= CAPACITY - 302 + 50  # 1 + 3 x 100 + 1 spent; refill of the test's moments
