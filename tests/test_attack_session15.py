"""Session 15's attack on a directory page reading its customers' relationships in its own
statement (``db.queries.customer_pages.customers_page(parts=...)``, ``graph.detail.page_plans``)
and on argument errors coded BAD_USER_INPUT (``graph.extensions.input_error``).

Pinned here:

- every role (built-in and custom, ``tests/test_role_matrix_nested.py``'s) reads on every page
  shape (plain, walked by a tag or a status, searched, backward, after a cursor, every order)
  exactly what ``node(id:)`` (the per-request loaders, one customer at a time) answers for the
  same customer: a relationship a role may not read stays empty, one it reads only for its
  assigned customers is read for those only;
- another partner's tag id in ``filter.tagIds``, alone or with other filters, reaches nothing;
- a token revoked, an admin deactivated, a role or partner changed between two pages with
  relationships (plain and walked) is honoured by the very next page;
- argument values a client sends (nulls, lists with nulls, enum and ID garbage, huge numbers,
  nested input objects) are never an INTERNAL_SERVER_ERROR nor a logged traceback.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from sqlalchemy import select, update

from db.models import Admin, ApiToken
from graph.ids import to_global_id
from tests.authz_support import AuthzFactory
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_auth import new_token
from tests.test_role_matrix_nested import ROLES, build_world, caller_email

NODE = """
  id name
  statuses products
  tags { id name }
  subscriptions {
    subscriptionId kind
    licenses { product licenseType purchased }
    invoices { invoiceNumber }
    orders { orderNumber }
    tags { name }
  }
  trials { subscriptionId tags { name } licenses { product } }
  partnerAdmins { role admin { email } }
"""
PAGE = (
    "query P($first: Int, $last: Int, $after: String, $before: String, $filter: CustomerFilter,"
    " $order: CustomerOrder, $search: String) { customers(first: $first, last: $last,"
    " after: $after, before: $before, filter: $filter, orderBy: $order, search: $search) {"
    " pageInfo { hasNextPage endCursor startCursor } nodes {" + NODE + "} } }"
)
BY_NODE = "query N($id: ID!) { node(id: $id) { ... on Customer {" + NODE + "} } }"
ORDERS = ("NAME_ASC", "NAME_DESC", "CREATED_AT_ASC", "CREATED_AT_DESC", "END_DATE_ASC")


async def _page(api: Api, who: str, variables: dict[str, Any]) -> dict[str, Any]:
    if "last" in variables:  # an explicit null for `first` is refused (BAD_USER_INPUT)
        document = PAGE.replace("$first: Int, ", "").replace("first: $first, ", "")
        body = await post_graphql(api, document, variables, as_=who)
    else:
        body = await post_graphql(api, PAGE, {"first": 10, **variables}, as_=who)
    page: dict[str, Any] = data_of(body)["customers"]
    return page


async def _as_node(api: Api, who: str, node: dict[str, Any]) -> dict[str, Any] | None:
    found: dict[str, Any] | None = data_of(
        await post_graphql(api, BY_NODE, {"id": node["id"]}, as_=who)
    )["node"]
    return found


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_on_every_page_what_the_loaders_read(api: Api, role: str) -> None:
    w = await build_world(api, role)
    who = caller_email(w)
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL_EMAIL))["tags"]
    tag_ids = [t["id"] for t in tags]
    shapes: list[dict[str, Any]] = []
    for order in ORDERS:
        shapes.append({"order": order})
    for tag in tag_ids:
        shapes.append({"filter": {"tagIds": [tag]}})  # walked along the tag's links
        shapes.append({"filter": {"tagIds": [tag], "products": ["CALLING"]}})
        shapes.append({"filter": {"tagIds": [tag]}, "order": "NAME_DESC"})
    shapes += [
        {"filter": {"tagIds": tag_ids}},
        {"filter": {"statuses": ["ACTIVE"]}},
        {"filter": {"statuses": ["LICENSE_OVERAGE"]}},  # walked along the status's spans
        {"filter": {"statuses": ["ACTIVE", "EXPIRING_SOON"]}},
        {"search": "customer"},
        {"search": "mine", "order": "END_DATE_ASC"},
        {"first": 1},
        {"last": 1},
        {"last": 2, "order": "CREATED_AT_DESC"},
    ]
    seen: set[str] = set()
    for shape in shapes:
        try:
            page = await _page(api, who, shape)
        except AssertionError as refused:  # a role that may not read customers at all
            assert role == "ADMIN_MANAGER", (role, shape, refused)
            continue
        for node in page["nodes"]:
            seen.add(node["name"])
            assert node == await _as_node(api, who, node), (role, shape)
        if page["pageInfo"]["hasNextPage"]:
            after = await _page(api, who, {**shape, "after": page["pageInfo"]["endCursor"]})
            for node in after["nodes"]:
                assert node == await _as_node(api, who, node), (role, shape, "after")
    if role in ("PARTNER_ADMIN", "SALES_ADMIN"):
        assert seen == {"Customer mine"}, seen
    elif role != "ADMIN_MANAGER":
        assert seen == {"Customer mine", "Customer theirs"}, (role, seen)


FULL_EMAIL = "full@acme.example"


async def _answer(api: Api, token: str, document: str, variables: dict[str, Any]) -> Any:
    response = await api.client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    # (the extensions differ by token: each has its own cost budget)
    return response.status_code, body.get("data"), error_codes(body)


async def test_a_principal_changed_between_two_pages_is_honoured_by_the_next(
    uncached_api: Api,
) -> None:
    """A token seen with one principal, then changed (role, custom role, undefined role,
    partner, deactivated, revoked) before the next page with relationships: that page answers
    exactly what a token never seen (looked up alone first) answers, on every page shape (the
    plain page's statement and the walked page's carry the lookup on PostgreSQL)."""
    api = uncached_api
    w = await build_world(api, "NARROW_VIEWER")
    caller, partner = await _admin(api, caller_email(w))
    beta = Factory(api.engine)
    other = await beta.partner("Beta Partners", "beta.example")
    for name in ("Beta One", "Beta Two"):
        await beta.subscription(await beta.customer(other, name))
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL_EMAIL))["tags"]
    mine = next(t["id"] for t in tags if t["name"] == "Tag mine")
    shapes: list[dict[str, Any]] = [
        {"first": 5},
        {"first": 5, "filter": {"tagIds": [mine]}},  # walked
        {"first": 5, "filter": {"statuses": ["ACTIVE"]}},
        {"first": 5, "order": "END_DATE_ASC"},
    ]
    token = await token_for(api, caller_email(w))
    changes: list[dict[str, Any]] = [
        {"role": "FULL_ADMIN"},
        {"role": "PARTNER_ADMIN"},
        {"role": "FULL_ADMIN"},
        {"role": "NARROW_VIEWER"},
        {"role": "READ_ONLY_ADMIN"},
        {"role": "NO_SUCH_ROLE"},  # reads nothing
        {"role": "FULL_ADMIN"},
        {"partner_id": other},
        {"partner_id": partner},
        {"active": False},
        {"active": True},
        {},  # revoked
    ]
    for shape in shapes:
        # seen twice: the second runs provisionally (the lookup riding along on PostgreSQL)
        await _answer(api, token, PAGE, shape)
        with api.counter.counting() as statements:
            await _answer(api, token, PAGE, shape)
        if api.db.backend == "postgresql":
            assert "partner_hub_token_check" in statements[0], (shape, statements)
    for values in changes:
        async with api.engine.begin() as conn:
            if not values:
                await conn.execute(update(ApiToken).values(revoked_at=NOW))
            else:
                await conn.execute(update(Admin).where(Admin.id == caller).values(**values))
        fresh = await new_token(api, caller)
        for shape in shapes:
            got = await _answer(api, token, PAGE, shape)
            if not values or values == {"active": False}:
                assert got[:2] == (401, None), (values, shape, got)
                continue
            expected = await _answer(api, fresh, PAGE, shape)
            assert got == expected, (values, shape)
            # and again, seen with the new principal
            assert await _answer(api, token, PAGE, shape) == expected, (values, shape)
        names = str(expected)
        if values.get("role") == "FULL_ADMIN" or values == {"active": True}:
            assert "Customer theirs" in names and "Beta" not in names, values
        if values.get("partner_id") == other:
            assert "Beta One" in names and "Customer" not in names, values


async def _admin(api: Api, email: str) -> tuple[int, int]:
    async with api.engine.connect() as conn:
        found = (
            await conn.execute(select(Admin.id, Admin.partner_id).where(Admin.email == email))
        ).one()
    return int(found[0]), int(found[1])


# A root field refused while graphql-core coerces its arguments after a sibling root field has
# started (its statement in flight): the refusal nulls the whole response at once, and the
# sibling is left to settle in the background (graphql-core's ``settle_in_background``).
BESIDE_A_REFUSED_ROOT = [
    "query($v: Int) { customers(first: 2) { nodes { id tags { id } } totalCount }"
    " admins(first: $v) { nodes { id } } }",
    "query($v: Int) { customers(first: 2, filter: {statuses: [ACTIVE]}) { nodes { id } }"
    " a: customers(first: $v) { nodes { id } } }",
    'query($v: Int) { tags { id } customer(id: "Q3VzdG9tZXI6MQ") { name }'
    " helpdeskCases(first: $v) { nodes { id } } }",
]


@pytest.mark.parametrize("seen", [False, True])
async def test_a_refused_argument_beside_a_running_field_is_the_clients_error(
    uncached_api: Api, caplog: pytest.LogCaptureFixture, seen: bool
) -> None:
    """Before: on PostgreSQL the request's session closed (ROLLBACK) while the sibling's
    statement was still running on its connection: asyncpg's "another operation is in
    progress", answered INTERNAL_SERVER_ERROR with a logged traceback instead of the
    BAD_USER_INPUT the refusal is."""
    api = uncached_api
    await build_world(api, "FULL_ADMIN")
    token = await token_for(api, FULL_EMAIL)
    if seen:
        data_of(await post_graphql(api, "{ viewer { email } }", token=token))
    for document in BESIDE_A_REFUSED_ROOT:
        for _ in range(3):
            caplog.clear()
            with caplog.at_level(logging.INFO):
                body = await post_graphql(api, document, {"v": None}, token=token)
                gc.collect()  # (a connection left checked out is reported when collected)
            assert error_codes(body) == ["BAD_USER_INPUT"], (document, body)
            assert body["data"] is None
            unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
            assert not unexpected, [r.getMessage() for r in unexpected]
        # and the pool is sound: the next requests on it are answered
        for _ in range(3):
            assert data_of(
                await post_graphql(api, "{ customers(first: 1) { nodes { id } } }", token=token)
            )


async def test_another_partners_tag_in_the_filter_reaches_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beta's tag id, alone (a walk along its links, bounded or not) or with other filters,
    in Acme's filter: no Beta customer, tag, subscription or admin in Acme's page."""
    from db.queries import customer_walks

    w = await build_world(api, "FULL_ADMIN")
    f = AuthzFactory(api.engine)
    beta = await f.partner("Beta Partners", "beta.example")
    beta_admin = await f.admin(beta, "boss@beta.example", "PARTNER_ADMIN", name="Beta Boss")
    beta_tag = await f.tag(beta, "Beta tag")
    for i in range(5):
        customer = await f.customer(beta, f"Beta {i}")
        sub = await f.subscription(customer)
        await f.tag_customer(beta, customer, beta_tag)
        await f.tag_subscription(beta, sub, beta_tag)
        await f.assign(customer, beta_admin)
        await f.refresh(customer)
    foreign = to_global_id("Tag", beta_tag)
    own = [
        t["id"] for t in data_of(await post_graphql(api, "{ tags { id } }", as_=FULL_EMAIL))["tags"]
    ]
    for walk_limit in (customer_walks.WALK_LIMIT, 2):
        monkeypatch.setattr(customer_walks, "WALK_LIMIT", walk_limit)
        for flt in (
            {"tagIds": [foreign]},
            {"tagIds": [foreign], "products": ["MEETINGS"]},
            {"tagIds": [foreign], "statuses": ["ACTIVE"]},
            {"tagIds": [foreign, *own]},
            {"tagIds": [foreign], "subscriptionType": "PAID"},
        ):
            for order in ("NAME_ASC", "NAME_DESC"):
                page = await _page(api, caller_email(w), {"filter": flt, "order": order})
                assert "Beta" not in str(page), (flt, page)
                if len(flt["tagIds"]) == 1:
                    assert page["nodes"] == [], (flt, page)


ODD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    # an explicit null for a defaulted non-null argument, at the root and below it
    ("query($v: Int) { customers(first: $v) { nodes { id } } }", {"v": None}, "BAD_USER_INPUT"),
    (
        "query($v: CustomerOrder) { customers(orderBy: $v) { nodes { id } } }",
        {"v": None},
        "BAD_USER_INPUT",
    ),
    ("query($v: Int = null) { admins(first: $v) { nodes { id } } }", {}, "BAD_USER_INPUT"),
    (
        "query($v: Int) { licenseAnalytics(product: CALLING) { aboutToExpire {"
        " rows(first: $v) { nodes { subscriptionId } } } } }",
        {"v": None},
        "BAD_USER_INPUT",
    ),
    # ... and for a defaulted non-null field of an input object
    (
        'mutation($v: Boolean) { cancelSubscription(input: {subscriptionId: "U3Vic2NyaXB0aW9uOjE",'
        " atTermEnd: $v}) { userErrors { code } } }",
        {"v": None},
        "BAD_USER_INPUT",
    ),
    (
        "query($v: [ID!]) { customers(filter: {tagIds: $v}) { nodes { id } } }",
        {"v": [10**30]},
        "INVALID_ID",
    ),
    (
        "query($v: [ID!]) { customers(filter: {tagIds: $v}) { nodes { id } } }",
        {"v": ["VGFnOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"]},
        "INVALID_ID",
    ),
    ("query($v: ID!) { customer(id: $v) { id } }", {"v": 2**70}, "INVALID_ID"),
    ("query($v: Int) { customers(first: $v) { nodes { id } } }", {"v": 2**31}, "BAD_USER_INPUT"),
]


async def test_odd_argument_values_are_the_clients_errors(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    await build_world(api, "FULL_ADMIN")
    for document, variables, code in ODD_INPUTS:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            body = await post_graphql(api, document, variables, as_=FULL_EMAIL)
        assert error_codes(body) == [code], (document, body)
        unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not unexpected, (document, [r.getMessage() for r in unexpected])
