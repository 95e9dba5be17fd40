"""The per-token cost budget is per deployment: API instances on one PostgreSQL database share
it (in the database, or in Redis with ``redis_url``); the embedded SQLite default keeps it in the
process; a Redis that does not answer degrades to per-process budgets, never to an error
(graph/cost_store.py).

Two apps over one database stand for two ``serve`` processes (each app has its own services,
hence its own budget object, exactly as two processes do).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

import graph.cost_store
from db.cost_budgets import SPEND
from db.settings import Settings
from tests.authz_support import AuthzFactory
from tests.conftest import NOW, Api, app_client, postgresql_only
from tests.helpers import error_codes, token_for

FULL = "full@acme.example"
PAGE = "query($n: Int!) { customers(first: $n) { nodes { name } } }"
REDIS_URL = os.environ.get("PARTNER_HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_unreachable_reason() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return None
    except OSError as exc:
        return f"Redis at 127.0.0.1:6379 unreachable: {exc}"


def require_redis() -> None:
    reason = redis_unreachable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires Redis: {reason}")
        pytest.skip(reason)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once closed


@asynccontextmanager
async def instance(api: Api, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Another app (another instance) over the test's database, its budget closed after."""
    settings = Settings(database_url=api.db.url, now=NOW, **overrides)
    async with app_client(settings, api.engine) as (_, client):
        yield client


async def spend(client: httpx.AsyncClient, token: str, n: int) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": PAGE, "variables": {"n": n}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 429), response.text  # refused or not, never a 500
    body: dict[str, Any] = response.json()
    return body


async def a_page_and_its_cost(api: Api) -> tuple[str, int, int]:
    """Acme's full admin's token, a page size whose cost is at least 67 points, and that cost
    (so a budget of 1.5 times it, at least the settings' minimum of 100, holds one page)."""
    partner = await AuthzFactory(api.engine).partner()
    await AuthzFactory(api.engine).admin(partner, FULL, "FULL_ADMIN")
    token = await token_for(api, FULL)
    async with instance(api, cost_budget_store="process", secret_key="probe") as probe:
        for n in (10, 50, 100):
            cost = int((await spend(probe, token, n))["extensions"]["cost"]["requestedQueryCost"])
            if cost >= 67:
                return token, n, cost
    raise AssertionError("no page costs 67 points")


@pytest.fixture
def patient_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store slower than 0.5 s counts as down (the process then keeps its own budget): on a
    loaded test machine a first Redis or PostgreSQL round trip can take that long, which would
    make a sharing test see two budgets. Sharing is what these tests check, not the timeout."""
    monkeypatch.setattr(graph.cost_store, "STORE_TIMEOUT", 10.0)


async def two_spends(api: Api, **settings: Any) -> list[list[str]]:
    """One page through each of two instances with a budget of 1.5 pages: the error codes."""
    token, n, cost = await a_page_and_its_cost(api)
    budget = {"cost_per_minute": cost * 3 // 2, "secret_key": f"s-{uuid.uuid4().hex}"}
    async with (
        instance(api, **budget, **settings) as one,
        instance(api, **budget, **settings) as two,
    ):
        first = await spend(one, token, n)
        second = await spend(two, token, n)
    return [error_codes(first), error_codes(second)]


async def test_two_instances_share_one_budget_on_postgresql_and_not_on_sqlite(
    api: Api, backend: str, patient_store: None
) -> None:
    # when: one page through each instance, a budget of one and a half pages a minute
    codes = await two_spends(api)

    # then: on PostgreSQL the second instance sees what the first spent; on SQLite (the embedded
    # default) each process has its own budget
    if backend == "postgresql":
        assert codes == [[], ["RATE_LIMITED"]]
    else:
        assert codes == [[], []]


async def test_two_instances_share_one_budget_in_redis(api: Api, patient_store: None) -> None:
    require_redis()
    # when
    codes = await two_spends(api, redis_url=REDIS_URL)

    # then: whatever the database, Redis holds the deployment's one budget
    assert codes == [[], ["RATE_LIMITED"]]


async def test_deployments_sharing_a_redis_keep_their_own_budgets(api: Api) -> None:
    require_redis()
    token, n, cost = await a_page_and_its_cost(api)
    budget = {"cost_per_minute": cost * 3 // 2, "redis_url": REDIS_URL}
    # given: two deployments (their own secrets) with a token of the same id
    async with (
        instance(api, **budget, secret_key=f"a-{uuid.uuid4().hex}") as one,
        instance(api, **budget, secret_key=f"b-{uuid.uuid4().hex}") as other,
    ):
        # when / then: each spends from its own budget
        assert error_codes(await spend(one, token, n)) == []
        assert error_codes(await spend(other, token, n)) == []


async def test_a_budget_in_redis_refills_and_reports_what_is_left(
    api: Api, patient_store: None
) -> None:
    require_redis()
    token, n, cost = await a_page_and_its_cost(api)
    per_minute = cost * 3 // 2
    settings = {"cost_per_minute": per_minute, "redis_url": REDIS_URL}
    async with instance(api, **settings, secret_key=f"r-{uuid.uuid4().hex}") as one:
        body = await spend(one, token, n)
        status = body["extensions"]["cost"]["throttleStatus"]
        # then: what is left after one page (plus at most a few points refilled meanwhile)
        assert per_minute - cost <= status["currentlyAvailable"] <= per_minute - cost + 5
        refused = await spend(one, token, n)
        assert error_codes(refused) == ["RATE_LIMITED"]
        wait = refused["errors"][0]["extensions"]["retryAfterSeconds"]
        assert 0 < wait <= 60 * cost / per_minute


async def test_an_unreachable_redis_degrades_to_a_budget_per_process_never_an_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # given: instances whose Redis does not answer (nobody listens on its port)
    token, n, cost = await a_page_and_its_cost(api)
    settings = {
        "cost_per_minute": cost * 3 // 2,
        "redis_url": f"redis://127.0.0.1:{closed_port()}/0",
        "secret_key": "s",
    }
    async with instance(api, **settings) as one, instance(api, **settings) as two:
        # when: a page through each, then a second through the first
        first, second = await spend(one, token, n), await spend(two, token, n)
        again = await spend(one, token, n)

    # then: served (each instance keeps its own budget, still enforced), and logged
    assert [error_codes(first), error_codes(second)] == [[], []]
    assert error_codes(again) == ["RATE_LIMITED"]
    assert "cost_budget_degraded" in [getattr(r, "event", None) for r in caplog.records]


@postgresql_only
async def test_a_spend_on_postgresql_is_one_statement_and_its_connection_is_reused(
    api: Api, patient_store: None
) -> None:
    # given: the budget's own pool, every statement its connection runs recorded
    store = graph.cost_store.PostgresStore(api.db.url)
    sent: list[str] = []
    try:
        assert (await store.spend(1, 10, 100.0, 100 / 60))[0]
        async with (await store._connections()).acquire() as connection:
            connection.add_query_logger(lambda record: sent.append(record.query))

        # when: three more spends
        answers = [await store.spend(1, 10, 100.0, 100 / 60) for _ in range(3)]
    finally:
        await store.close()

    # then: each is the one statement (no reset query on release: asyncpg's default sent
    # ``RESET ALL`` and more, a second round trip per request), and the budget still counts
    assert sent == [SPEND] * 3
    assert [granted for granted, _, _ in answers] == [True] * 3
    assert answers[-1][1] < 70.1
