"""Calculated query cost: computed before execution from page sizes, limited, rate limited."""

from __future__ import annotations

from tests.conftest import Api, api_over
from tests.helpers import Factory, error_codes, post_graphql

PAGE = """
query Page($first: Int!) {
  customers(first: $first) { nodes { name tags { name } subscriptions { subscriptionId } } }
}
"""


async def _partner(api: Api) -> None:
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    await f.customer(partner, "Zeta Corp")


async def test_cost_is_reported_and_grows_with_the_page_size(api: Api) -> None:
    # given
    await _partner(api)
    # when
    small = await post_graphql(api, PAGE, {"first": 2}, as_="full@acme.example")
    large = await post_graphql(api, PAGE, {"first": 100}, as_="full@acme.example")
    # then: objects: the page 1 + first * (customer 1 + tags 20 (max_tags_per_customer)
    # + subscriptions 10 (MAX_SUBSCRIPTIONS_PER_CUSTOMER)); scalars cost nothing
    assert small["extensions"]["cost"]["requestedQueryCost"] == 1 + 2 * (1 + 20 + 10)
    assert large["extensions"]["cost"]["requestedQueryCost"] == 1 + 100 * (1 + 20 + 10)
    # and the objects returned: the page and its one customer
    assert small["extensions"]["cost"]["actualQueryCost"] == 2
    assert small["data"]["customers"]["nodes"][0]["name"] == "Zeta Corp"


async def test_a_query_over_the_cost_limit_is_refused_before_any_resolver(api: Api) -> None:
    # given: a limit that the 100-row page exceeds
    await _partner(api)
    async with api_over(api.db, max_query_cost=300) as limited:
        token_body = await post_graphql(limited, "{ viewer { email } }", as_="full@acme.example")
        assert token_body["data"]["viewer"]["email"] == "full@acme.example"
        # when
        with limited.counter.counting() as statements:
            body = await post_graphql(limited, PAGE, {"first": 100}, as_="full@acme.example")
        # then: only the token lookup ran, no resolver touched the database
        assert error_codes(body) == ["QUERY_TOO_COSTLY"]
        assert body["errors"][0]["extensions"]["cost"] == 1 + 100 * 31
        assert body.get("data") is None
        assert len(statements) == 1, statements


async def test_the_rate_limit_refuses_a_token_that_spent_its_budget(api: Api) -> None:
    # given: a budget of 200 cost points a minute
    await _partner(api)
    async with api_over(api.db, cost_per_minute=200) as limited:
        # when: each page costs 1 + 5 * 31 = 156
        first = await post_graphql(limited, PAGE, {"first": 5}, as_="full@acme.example")
        second = await post_graphql(
            limited, PAGE, {"first": 5}, as_="full@acme.example", expect_status=429
        )
        # then
        assert not first.get("errors")
        assert first["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 200 - 156
        assert error_codes(second) == ["RATE_LIMITED"]
        assert second["errors"][0]["extensions"]["retryAfterSeconds"] > 0
        assert second.get("data") is None


def test_a_refusal_never_tells_the_client_to_retry_at_once() -> None:
    # A refused spend short of a few points waits a few hundredths of a second: rounded to
    # 0.0 it told the client to retry at once, into another refusal (the attack tests' find).
    from graph.cost import wait_tenths

    assert [wait_tenths(w) for w in (0.0, 0.01, 0.049, 0.1, 0.11, 2.34, 60.0)] == [
        0.1,
        0.1,
        0.1,
        0.1,
        0.2,
        2.4,
        60.0,
    ]
