"""A shared budget store's outage is logged once, however long it lasts, and its end once
(graph/cost_store.py ``SharedBudget``): a Redis down for an hour logged a warning every
``RETRY_SECONDS`` (720 lines) where operators want one line saying it began and one it ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import graph.cost_store
from graph.cost_store import SharedBudget, Spent


class Flaky:
    """A store in memory that raises while ``down``."""

    name = "flaky"
    errors = (ConnectionError,)

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def spend(self, token_id: int, cost: float, capacity: float, rate: float) -> Spent:
        self.calls += 1
        if self.down:
            raise ConnectionError("store down")
        return True, capacity - cost, 0.0

    async def close(self) -> None:
        return None


def events(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [getattr(r, "event", None) for r in caplog.records if getattr(r, "event", None)]


@pytest.fixture
async def flaky(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Flaky, SharedBudget]]:
    """A budget over a ``Flaky`` store, retried at once after each failure."""
    monkeypatch.setattr(graph.cost_store, "RETRY_SECONDS", 0.0)
    store = Flaky()
    budget = SharedBudget(store, 6_000)
    try:
        yield store, budget
    finally:
        await budget.close()


async def test_an_outage_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture, flaky: tuple[Flaky, SharedBudget]
) -> None:
    # given: a budget over a store that goes down
    store, budget = flaky
    assert (await budget.spend(1, 10))[0]
    store.down = True

    # when: many requests meet the outage, each retrying the store
    spent = [await budget.spend(token, 10) for token in range(2, 40)]
    tried = store.calls
    store.down = False
    recovered = [await budget.spend(token, 10) for token in range(40, 45)]

    # then: every request was served (by the process's own budget meanwhile), the store was
    # retried, and the log holds one line for the outage and one for its end
    assert all(allowed for allowed, _, _ in spent + recovered)
    assert tried > 30
    assert events(caplog) == ["cost_budget_degraded", "cost_budget_restored"]


async def test_a_second_outage_is_logged_again(
    caplog: pytest.LogCaptureFixture, flaky: tuple[Flaky, SharedBudget]
) -> None:
    # given
    store, budget = flaky

    # when: down, up, down again (a token each: no lease spares a trip)
    for token, down in enumerate((True, False, True, False)):
        store.down = down
        await budget.spend(token, 10)

    # then
    assert events(caplog) == ["cost_budget_degraded", "cost_budget_restored"] * 2


async def test_an_outage_ended_by_a_lease_given_back_is_logged_as_ended(
    caplog: pytest.LogCaptureFixture, flaky: tuple[Flaky, SharedBudget]
) -> None:
    # given: a token busy enough to hold a lease, then an outage another token meets
    store, budget = flaky
    await budget.spend(1, 10)
    await budget.spend(1, 10)  # seen within LEASE_SECONDS: a lease is kept
    assert budget._leases
    store.down = True
    await budget.spend(2, 10)

    # when: the store answers again, and the first it hears is the lease given back
    # (the process closing; the lease sweep gives back the same way)
    store.down = False
    calls = store.calls
    await budget.close()

    # then: the store answered, and the log says the outage ended
    assert store.calls > calls
    assert events(caplog) == ["cost_budget_degraded", "cost_budget_restored"]


async def test_an_outage_ended_by_the_lease_sweep_is_logged_as_ended(
    caplog: pytest.LogCaptureFixture, flaky: tuple[Flaky, SharedBudget]
) -> None:
    # given: a lease, then an outage another token meets
    store, budget = flaky
    await budget.spend(1, 10)
    await budget.spend(1, 10)
    store.down = True
    await budget.spend(2, 10)
    store.down = False

    # when: the sweep gives the expired lease back, and the store takes it
    for held in budget._leases.values():
        held.until = 0.0
    budget._start_sweep()
    while budget._returns:
        await next(iter(budget._returns))

    # then
    assert events(caplog) == ["cost_budget_degraded", "cost_budget_restored"]


async def test_a_return_racing_a_failed_one_does_not_end_the_outage(
    caplog: pytest.LogCaptureFixture, flaky: tuple[Flaky, SharedBudget]
) -> None:
    # given: a store that fails the first of a batch of returns and takes the others
    store, budget = flaky
    real = store.spend
    first = True

    async def spend(token_id: int, cost: float, capacity: float, rate: float) -> Spent:
        nonlocal first
        failing, first = first, False
        await asyncio.sleep(0)  # every returner's call under way before the first fails
        if failing:
            raise ConnectionError("timed out")
        return await real(token_id, cost, capacity, rate)

    store.spend = spend  # type: ignore[method-assign]

    # when: a batch of returns (as the sweep or close sends them)
    await budget._give_back([(token, 5.0) for token in range(8)])

    # then: one outage, not ended by the returns already under way
    assert store.calls >= 2
    assert events(caplog) == ["cost_budget_degraded"]
