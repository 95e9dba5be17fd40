"""A page's customers' relationships read by the page's own statement (issue 17).

``customers_page(parts=...)`` selects each relationship the document asks for as a JSON column of
the page's statement (``db.queries.customer_parts.part_columns``); the customers and their
parts come back in one round trip instead of two. Every page shape is checked here against the
customer's own detail (``customer(id:)``, read by its own statement): unfiltered, walked by a
tag or a status, every order, backward, after a cursor, and a PostgreSQL walk that stopped at
its bound (whose remaining customers come from another statement and whose parts are then read
by ``page_relations``'s statement as before).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from db.queries import customer_walks
from tests.conftest import Api
from tests.helpers import data_of, post_graphql
from tests.test_n_plus_one import FULL, build_customers

NODE = """
      id name createdAt managedBy lastAdminSignInAt
      statuses
      products
      tags { id name }
      subscriptions {
        id subscriptionId kind state startDate endDate autoRenew renewalDate
        licenses { product licenseType purchased assigned used available }
        invoices { invoiceNumber issuedAt amountCents }
        orders { orderNumber placedAt action }
        tags { id name }
      }
      trials { id subscriptionId endDate }
      partnerAdmins { role assignedAt admin { id name email } }
"""
PAGE = (
    "query P($first: Int, $last: Int, $after: String, $before: String, $filter: CustomerFilter,"
    " $order: CustomerOrder) { customers(first: $first, last: $last, after: $after,"
    " before: $before, filter: $filter, orderBy: $order) {"
    " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes {" + NODE + "} } }"
)
DETAIL = "query D($id: ID!) { customer(id: $id) {" + NODE + "} }"


async def _pages(api: Api, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of the pages of ``variables``, following the cursor."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = await post_graphql(api, PAGE, {**variables, "after": after}, as_=FULL)
        page = data_of(body)["customers"]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def _same_as_detail(api: Api, nodes: list[dict[str, Any]]) -> None:
    assert nodes
    for node in nodes:
        detail = data_of(await post_graphql(api, DETAIL, {"id": node["id"]}, as_=FULL))
        assert detail["customer"] == node, node["name"]


async def _tag(api: Api, name: str) -> str:
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL))["tags"]
    return next(t["id"] for t in tags if t["name"] == name)


@pytest.mark.parametrize("order", ["NAME_ASC", "NAME_DESC", "CREATED_AT_DESC", "END_DATE_ASC"])
async def test_every_page_answers_its_customers_as_their_detail(api: Api, order: str) -> None:
    await build_customers(api, 23)
    gold = await _tag(api, "gold")
    filters: list[dict[str, Any] | None] = [
        None,
        {"tagIds": [gold]},  # walked along the tag's links in name order
        {"tagIds": [gold], "products": ["CALLING"]},
        {"statuses": ["LICENSE_OVERAGE"]},  # walked along the status's spans in name order
        {"statuses": ["ACTIVE"]},
    ]
    for flt in filters:
        nodes = await _pages(api, {"first": 4, "filter": flt, "order": order})
        await _same_as_detail(api, nodes)
    # backward: the 3 customers before the first page's last
    forward = await _pages(api, {"first": 5, "order": order})
    assert len(forward) == 23
    end_of_first = data_of(
        await post_graphql(api, PAGE, {"first": 5, "order": order, "after": None}, as_=FULL)
    )["customers"]["pageInfo"]["endCursor"]
    body = await post_graphql(
        api,
        PAGE.replace("$first: Int, ", "").replace("first: $first, ", ""),
        {"last": 3, "before": end_of_first, "order": order},
        as_=FULL,
    )
    backward = data_of(body)["customers"]["nodes"]
    assert [n["id"] for n in backward] == [n["id"] for n in forward[1:4]]
    await _same_as_detail(api, backward)


async def test_a_page_reads_its_parts_in_its_own_statement_with_its_limit_written_in(
    uncached_api: Api,
) -> None:
    api = uncached_api
    await build_customers(api, 7)
    gold = await _tag(api, "gold")
    for flt in (None, {"tagIds": [gold]}):
        variables = {"first": 3, "filter": flt}
        data_of(await post_graphql(api, PAGE, variables, as_=FULL))
        with api.counter.counting() as statements:
            data_of(await post_graphql(api, PAGE, variables, as_=FULL))
        pages = [s for s in statements if "FROM customer" in s and "json" in s.lower()]
        assert len(pages) == 1, statements
        assert not any("customer.id IN" in s or "= ANY" in s for s in statements), statements
        if api.db.backend == "postgresql" and flt is None:
            # a LIMIT passed as a parameter made PostgreSQL plan the directory page at every
            # execution (the walked page's are passed: written in, they made PostgreSQL plan
            # the walk at every execution; SQLite's walk is built per request anyway)
            assert re.search(r"LIMIT 4\b", pages[0]), pages[0]
            assert not re.search(r"LIMIT (\$|%|:|\?)", pages[0]), pages[0]


async def test_a_walk_stopped_at_its_bound_reads_the_parts_apart(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's walk stops after ``WALK_LIMIT`` customers of the walked set and asks the
    other filters' sets for the rest of the page: those rows carry no parts, so the page's parts
    are read by ``page_relations``'s statement, for every customer of the page."""
    monkeypatch.setattr(customer_walks, "WALK_LIMIT", 3)
    await build_customers(api, 17)
    gold = await _tag(api, "gold")
    nodes = await _pages(api, {"first": 5, "filter": {"tagIds": [gold], "products": ["CALLING"]}})
    assert len(nodes) == len([i for i in range(17) if 0 in (i % 3, (i + 1) % 3)])
    await _same_as_detail(api, nodes)


@pytest.mark.parametrize("flt", [None, "gold"])
async def test_policies_replaced_during_the_page_statement_change_nothing_of_the_page(
    api: Api, monkeypatch: pytest.MonkeyPatch, flt: str | None
) -> None:
    """The process's policies are replaced under a request's feet (another request syncs a newer
    version, a policy mutation reloads them) while its page statement runs: the parts that
    statement read were planned with the policies before, so the relationships must be answered
    with that same plan. Planned twice, a part the new policies grant was looked up among the
    parts read and not found (KeyError: INTERNAL_SERVER_ERROR)."""
    from db.queries import customer_pages
    from db.queries.policies import read_policy_csv
    from graph.auth.permissions import DEFAULT_POLICY_PATH

    # given: FULL_ADMIN may not read tags, then may once the page's statement has run
    await build_customers(api, 3)
    variables: dict[str, Any] = {"first": 3}
    if flt is not None:
        variables["filter"] = {"tagIds": [await _tag(api, flt)]}
    hub = api.client._transport.app.state.hub  # type: ignore[attr-defined]
    authorizer = (await hub.start()).authorizer
    granted = read_policy_csv(DEFAULT_POLICY_PATH)
    without_tags = [line for line in granted if line[1:5] != ("FULL_ADMIN", "*", "tag", "read")]
    assert len(without_tags) == len(granted) - 1
    authorizer.replace_policies(without_tags, "1000000")
    page = customer_pages.customers_page

    async def page_then_policies_replaced(*args: Any, **kwargs: Any) -> Any:
        found = await page(*args, **kwargs)
        authorizer.replace_policies(granted, "1000001")
        return found

    monkeypatch.setattr(customer_pages, "customers_page", page_then_policies_replaced)
    # when
    body = await post_graphql(api, PAGE, variables, as_=FULL)
    # then: answered as planned when the page was read (tags refused: empty)
    nodes = data_of(body)["customers"]["nodes"]
    assert nodes and all(n["tags"] == [] and n["subscriptions"] for n in nodes), nodes
