"""The response cache answers repeated queries without executing them, and never stale.

A hit must be exactly the response an execution would give now: the same data for the same
admin, policies, data, document and variables; any committed write (through the API or not), a
policy change or another admin means executing again. Hits still spend the query's cost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from db.models import Customer
from db.queries.admins import Principal
from graph.response_cache import ResponseCache, request_key
from tests.conftest import Api, api_over
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_policies import ADD_RULE, REMOVE_RULE, rule

FULL, PARTNER = "full@acme.example", "partner@acme.example"
OTHER_FULL = "full@globex.example"
PAGE = "query Page($first: Int!) { customers(first: $first) { nodes { id name tags { name } } } }"
TAGS = "mutation M($input: CustomerTagsInput!) { addTagsToCustomers(input: $input) { changed } }"


async def world(api: Api) -> dict[str, int]:
    """Acme with two customers (one assigned to its partner admin), Globex with one."""
    f = Factory(api.engine)
    acme, globex = await f.partner(), await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, FULL, "FULL_ADMIN")
    partner_admin = await f.admin(acme, PARTNER, "PARTNER_ADMIN")
    await f.admin(globex, OTHER_FULL, "FULL_ADMIN")
    first, second = await f.customer(acme, "Alpha"), await f.customer(acme, "Bravo")
    await f.customer(globex, "Globex customer")
    await f.assign(first, partner_admin)
    await f.refresh(first, second)
    return {"first": first, "second": second, "acme": acme, "globex": globex}


async def post(api: Api, document: str, variables: dict[str, Any], email: str) -> Any:
    token = await token_for(api, email)
    return await api.client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_repeated_query_is_answered_from_the_cache_with_only_the_token_lookup(
    api: Api,
) -> None:
    await world(api)
    first = await post(api, PAGE, {"first": 10}, FULL)
    with api.counter.counting() as statements:
        second = await post(api, PAGE, {"first": 10}, FULL)
    assert first.headers["x-partner-hub-cache"] == "miss"
    assert second.headers["x-partner-hub-cache"] == "hit"
    assert second.json()["data"] == first.json()["data"]
    assert len(statements) == 1 and "api_token" in statements[0]
    # the hit reports the query's cost like an execution (and spends it: see the rate limit test)
    cost = [r.json()["extensions"]["cost"] for r in (first, second)]
    assert cost[0]["requestedQueryCost"] == cost[1]["requestedQueryCost"] > 0
    assert set(cost[1]["throttleStatus"]) == set(cost[0]["throttleStatus"])


async def test_variables_in_another_order_share_the_entry_other_values_do_not(api: Api) -> None:
    await world(api)
    document = (
        "query P($first: Int!, $search: String) "
        "{ customers(first: $first, search: $search) { nodes { name } } }"
    )
    await post(api, document, {"first": 5, "search": "a"}, FULL)
    same = await post(api, document, {"search": "a", "first": 5}, FULL)
    other = await post(api, document, {"first": 5, "search": "bra"}, FULL)
    assert same.headers["x-partner-hub-cache"] == "hit"
    assert other.headers["x-partner-hub-cache"] == "miss"
    assert [n["name"] for n in other.json()["data"]["customers"]["nodes"]] == ["Bravo"]


async def test_a_write_through_the_api_is_seen_by_the_next_query(api: Api) -> None:
    await world(api)
    before = data_of(await post_graphql(api, PAGE, {"first": 10}, as_=FULL))
    tag = data_of(
        await post_graphql(
            api,
            'mutation { createTag(input: {name: "gold"}) { tag { id } } }',
            as_=FULL,
        )
    )["createTag"]["tag"]["id"]
    customer = before["customers"]["nodes"][0]["id"]
    changed = data_of(
        await post_graphql(
            api, TAGS, {"input": {"customerIds": [customer], "tagIds": [tag]}}, as_=FULL
        )
    )
    assert changed["addTagsToCustomers"]["changed"] == 1
    after = await post(api, PAGE, {"first": 10}, FULL)
    assert after.headers["x-partner-hub-cache"] == "miss"
    assert after.json()["data"]["customers"]["nodes"][0]["tags"] == [{"name": "gold"}]


async def test_a_write_outside_the_api_is_seen_by_the_next_query(api: Api) -> None:
    ids = await world(api)
    await post(api, PAGE, {"first": 10}, FULL)
    async with api.engine.begin() as conn:  # another process, the CLI, an operator's SQL
        await conn.execute(update(Customer).where(Customer.id == ids["first"]).values(name="Aa"))
    after = await post(api, PAGE, {"first": 10}, FULL)
    assert after.headers["x-partner-hub-cache"] == "miss"
    assert after.json()["data"]["customers"]["nodes"][0]["name"] == "Aa"


async def test_entries_are_per_admin_and_never_cross_partners(api: Api) -> None:
    await world(api)
    names = {}
    for email in (FULL, PARTNER, OTHER_FULL, FULL):
        response = await post(api, PAGE, {"first": 10}, email)
        names[email] = [n["name"] for n in response.json()["data"]["customers"]["nodes"]]
    assert names[FULL] == ["Alpha", "Bravo"]
    assert names[PARTNER] == ["Alpha"]  # assigned customers only, not the full admin's entry
    assert names[OTHER_FULL] == ["Globex customer"]


async def test_a_policy_change_applies_to_the_next_query_of_that_role(api: Api) -> None:
    await world(api)
    tags = "query { tags { name } }"
    assert data_of(await post_graphql(api, tags, as_=PARTNER))["tags"] == []
    removed = await post_graphql(api, REMOVE_RULE, rule("PARTNER_ADMIN", "tag", "read"), as_=FULL)
    assert not data_of(removed)["removePolicyRule"]["userErrors"]
    assert "FORBIDDEN" in error_codes(await post_graphql(api, tags, as_=PARTNER))
    added = await post_graphql(api, ADD_RULE, rule("PARTNER_ADMIN", "tag", "read"), as_=FULL)
    assert not data_of(added)["addPolicyRule"]["userErrors"]
    assert data_of(await post_graphql(api, tags, as_=PARTNER))["tags"] == []


async def test_errors_and_mutations_are_never_served_from_the_cache(api: Api) -> None:
    await world(api)
    bad = "query { customers(first: 500) { nodes { name } } }"
    for _ in range(2):
        response = await post(api, bad, {}, FULL)
        assert error_codes(response.json()) == ["INVALID_PAGE_SIZE"]
        assert response.headers["x-partner-hub-cache"] == "miss"
    create = 'mutation { createTag(input: {name: "dup"}) { tag { name } userErrors { code } } }'
    first = (await post(api, create, {}, FULL)).json()["data"]["createTag"]
    again = (await post(api, create, {}, FULL)).json()["data"]["createTag"]
    assert first["tag"] == {"name": "dup"} and not first["userErrors"]
    assert again["tag"] is None and again["userErrors"]  # executed again: the name is taken


async def test_hits_spend_the_rate_limit_like_executions(api: Api) -> None:
    await world(api)
    async with api_over(api.db, cost_per_minute=150) as limited:
        codes = []
        for _ in range(8):  # each page costs 1 + 3 * (1 + 20 tags): two fit in 150
            codes.append(error_codes((await post(limited, PAGE, {"first": 3}, FULL)).json()))
        assert codes[0] == [] and codes[1] == []
        assert ["RATE_LIMITED"] in codes, codes


def principal(data_version: str = "1") -> Principal:
    return Principal(1, 1, "a@b.example", "A", "FULL_ADMIN", 1, "p1", data_version)


def test_keys_hold_everything_a_response_depends_on() -> None:
    body = b'{"query": "query Q { viewer { id } }", "variables": {"a": 1, "b": 2}}'
    same = b'{"variables": {"b": 2, "a": 1}, "query": "query Q { viewer { id } }"}'
    now = datetime(2026, 11, 26, tzinfo=UTC)
    key = request_key(principal(), body, now)
    assert key is not None and key == request_key(principal(), same, now)
    assert key != request_key(principal("2"), body, now)  # after a write
    assert key != request_key(principal(), body, datetime(2026, 11, 27, tzinfo=UTC))
    assert request_key(principal(), b'{"query": "mutation { x }"}', now) is None
    assert (
        request_key(
            principal(), b'{"query": "query A { a } mutation B { b }", "operationName": "B"}', now
        )
        is None
    )
    assert request_key(principal(), b"not json", now) is None
    assert request_key(principal(), b'{"query": "{ a"}', now) is None


def test_entries_expire_and_the_least_recently_used_go_first() -> None:
    clock = [0.0]
    cache = ResponseCache(ttl_s=1.0, max_bytes=10, clock=lambda: clock[0])
    cache.put(("a",), b"1234", 1)
    cache.put(("b",), b"5678", 1)
    assert cache.get(("a",)) is not None  # a is now the most recently used
    cache.put(("c",), b"90", 1)
    cache.put(("d",), b"xy", 1)  # 12 bytes: b, the least recently used, goes
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None
    clock[0] = 1.5
    assert cache.get(("a",)) is None  # older than the TTL
    assert (cache.hits, len(cache)) == (2, 2)
