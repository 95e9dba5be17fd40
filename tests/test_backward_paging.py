"""Relay connections both ways (issue 18): `last`/`before` beside `first`/`after` on every
connection. Paging backward from the end visits exactly the rows paging forward does, in the
same order, with the page flags the Relay cursor connections spec describes; mixing the two
directions is BAD_USER_INPUT."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import Factory, data_of, error_codes, post_graphql

FULL = "full@acme.example"
PAGE = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor }"

# (name, document with %s for the paging arguments, path to the connection, page size)
DEMO_CONNECTIONS = [
    ("customers", "{ customers(%s) { " + PAGE + " } }", ["customers"], 40),
    (
        "customers by last sign-in",
        "{ customers(orderBy: END_DATE_ASC, %s) { " + PAGE + " } }",
        ["customers"],
        45,
    ),
    ("admins", "{ admins(%s) { " + PAGE + " } }", ["admins"], 1),
    ("resources", "{ resources(%s) { " + PAGE + " } }", ["resources"], 6),
    (
        "recently added rows",
        "{ licenseAnalytics(product: MEETINGS) { recentlyAdded { rows(%s) { " + PAGE + " } } } }",
        ["licenseAnalytics", "recentlyAdded", "rows"],
        15,
    ),
    (
        "overage rows by customer name",
        "{ licenseAnalytics(product: MEETINGS) { overage { "
        "rows(orderBy: {field: CUSTOMER_NAME, direction: DESC}, %s) { " + PAGE + " } } } }",
        ["licenseAnalytics", "overage", "rows"],
        3,
    ),
    (
        "calling usage table",
        "{ callingAnalytics { customersUsage(%s) { " + PAGE + " } } }",
        ["callingAnalytics", "customersUsage"],
        10,
    ),
]


def dig(data: dict[str, Any], path: list[str]) -> dict[str, Any]:
    for key in path:
        data = data[key]
    return data


async def walk(api: Api, document: str, path: list[str], size: int, *, backward: bool) -> list[str]:
    """Every row's cursor, paging one way through the whole list (in the list's order)."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(500):
        if backward:
            args = f"last: {size}" + (f', before: "{cursor}"' if cursor else "")
        else:
            args = f"first: {size}" + (f', after: "{cursor}"' if cursor else "")
        connection = dig(data_of(await post_graphql(api, document % args, as_=FULL)), path)
        info = connection["pageInfo"]
        page = [edge["cursor"] for edge in connection["edges"]]
        assert len(page) <= size
        if page:
            assert info["startCursor"] == page[0] and info["endCursor"] == page[-1]
        if backward:
            # Paging backward: rows follow this page exactly when it was asked before a cursor.
            assert info["hasNextPage"] is (cursor is not None)
            seen = page + seen
            more, cursor = info["hasPreviousPage"], info["startCursor"]
        else:
            assert info["hasPreviousPage"] is (cursor is not None)
            seen = seen + page
            more, cursor = info["hasNextPage"], info["endCursor"]
        if not more:
            assert len(page) <= size
            return seen
        assert len(page) == size, "only the last page of a walk may be short"
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize(
    ("document", "path", "size"),
    [pytest.param(d, p, s, id=name) for name, d, p, s in DEMO_CONNECTIONS],
)
async def test_backward_walk_visits_the_forward_rows(
    demo_api: Api, document: str, path: list[str], size: int
) -> None:
    forward = await walk(demo_api, document, path, size, backward=False)
    assert len(forward) > size, "the demo must give this list more than one page"
    assert len(set(forward)) == len(forward)
    backward = await walk(demo_api, document, path, size, backward=True)
    assert backward == forward


async def test_before_a_cursor_gives_the_rows_just_before_it(demo_api: Api) -> None:
    document = "{ customers(%s) { " + PAGE + " nodes { name } } }"
    first = dig(data_of(await post_graphql(demo_api, document % "first: 12", as_=FULL)), [])
    names = [n["name"] for n in first["customers"]["nodes"]]
    cursors = [e["cursor"] for e in first["customers"]["edges"]]
    before = await post_graphql(demo_api, document % f'last: 5, before: "{cursors[9]}"', as_=FULL)
    page = data_of(before)["customers"]
    assert [n["name"] for n in page["nodes"]] == names[4:9]
    assert [e["cursor"] for e in page["edges"]] == cursors[4:9]
    assert page["pageInfo"]["hasPreviousPage"] is True and page["pageInfo"]["hasNextPage"] is True
    # `before` alone pages backward by the default page size.
    alone = await post_graphql(demo_api, document % f'before: "{cursors[3]}"', as_=FULL)
    assert [n["name"] for n in data_of(alone)["customers"]["nodes"]] == names[:3]
    assert data_of(alone)["customers"]["pageInfo"]["hasPreviousPage"] is False


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ("first: 5, last: 5", "BAD_USER_INPUT"),
        ('after: "x", before: "y"', "BAD_USER_INPUT"),
        ('first: 5, before: "y"', "BAD_USER_INPUT"),
        ('after: "x", last: 5', "BAD_USER_INPUT"),
        ("last: 0", "INVALID_PAGE_SIZE"),
        ("last: 101", "INVALID_PAGE_SIZE"),
        ("last: -1", "INVALID_PAGE_SIZE"),
        ('last: 5, before: "not a cursor"', "INVALID_CURSOR"),
    ],
)
async def test_mixed_directions_and_bad_sizes_are_coded(
    demo_api: Api, args: str, code: str
) -> None:
    body = await post_graphql(demo_api, f"{{ customers({args}) {{ totalCount }} }}", as_=FULL)
    assert error_codes(body) == [code]
    assert body["data"] is None


async def test_a_cursor_of_one_direction_serves_the_other(demo_api: Api) -> None:
    """An `endCursor` read forward may be passed as `before`, and a `startCursor` read
    backward as `after`: cursors name rows, not directions."""
    document = "{ admins(%s) { " + PAGE + " } }"
    forward = dig(data_of(await post_graphql(demo_api, document % "first: 3", as_=FULL)), [])
    end = forward["admins"]["pageInfo"]["endCursor"]
    cursors = [e["cursor"] for e in forward["admins"]["edges"]]
    back = await post_graphql(demo_api, document % f'last: 2, before: "{end}"', as_=FULL)
    assert [e["cursor"] for e in data_of(back)["admins"]["edges"]] == cursors[:2]


async def test_backward_paging_of_audit_log_and_helpdesk(api: Api) -> None:
    factory = Factory(api.engine)
    partner = await factory.partner()
    await factory.admin(partner, FULL, "FULL_ADMIN")
    for n in range(7):
        created = await post_graphql(
            api,
            "mutation($n: String!) { createTag(input: {name: $n}) { userErrors { code } } }",
            {"n": f"tag{n}"},
            as_=FULL,
        )
        assert data_of(created)["createTag"]["userErrors"] == []
    audit = "{ auditLog(%s) { " + PAGE + " } }"
    forward = await walk(api, audit, ["auditLog"], 3, backward=False)
    assert len(forward) == 7
    assert await walk(api, audit, ["auditLog"], 3, backward=True) == forward
    for n in range(5):
        opened = await post_graphql(
            api,
            "mutation($s: String!) { openHelpdeskCase(input: {product: MEETINGS, subject: $s, "
            'description: "It broke.", severity: LOW}) { userErrors { code } } }',
            {"s": f"Case {n}"},
            as_=FULL,
        )
        assert data_of(opened)["openHelpdeskCase"]["userErrors"] == []
    cases = "{ helpdeskCases(%s) { " + PAGE + " } }"
    forward = await walk(api, cases, ["helpdeskCases"], 2, backward=False)
    assert len(forward) == 5
    assert await walk(api, cases, ["helpdeskCases"], 2, backward=True) == forward
