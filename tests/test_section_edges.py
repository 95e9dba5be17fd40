"""Section rows sign their cursors only when read: ``edges`` (selected directly, through an
inline fragment or a fragment spread, under an alias) carries one cursor per node, the last
being ``pageInfo.endCursor``; a document that asks only ``pageInfo`` pages on with it."""

from __future__ import annotations

import pytest

from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql

FULL = "full@acme.example"


async def _world(api: Api) -> None:
    from datetime import timedelta

    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, FULL, "FULL_ADMIN")
    for i in range(5):  # five recently added customers, a day apart
        customer = await f.customer(acme, f"Recent {i}")
        await f.subscription(customer, start=NOW - timedelta(days=i + 1),
                             lines=[("MEETINGS", 10, i, 0)])  # fmt: skip


EDGES = {
    "direct": "rows(first: 2, after: $after) { pageInfo { endCursor hasNextPage } "
    "edges { cursor node { customerName } } nodes { customerName } }",
    "inline": "rows(first: 2, after: $after) { pageInfo { endCursor hasNextPage } "
    "... on RecentlyAddedConnection { edges { cursor node { customerName } } } "
    "nodes { customerName } }",
    "spread": "rows(first: 2, after: $after) { pageInfo { endCursor hasNextPage } "
    "...E nodes { customerName } }",
    "alias": "rows(first: 2, after: $after) { pageInfo { endCursor hasNextPage } "
    "e: edges { cursor node { customerName } } nodes { customerName } }",
}


def _document(rows: str) -> str:
    fragment = (
        " fragment E on RecentlyAddedConnection { edges { cursor node { customerName } } }"
        if "...E" in rows
        else ""
    )
    return (
        "query Q($after: String) { licenseAnalytics(product: MEETINGS) { recentlyAdded { "
        + rows
        + " } } }"
        + fragment
    )


@pytest.mark.parametrize("how", list(EDGES))
async def test_edges_carry_a_cursor_per_node_however_selected(api: Api, how: str) -> None:
    await _world(api)
    seen: list[str] = []
    after = None
    for _ in range(3):
        body = data_of(await post_graphql(api, _document(EDGES[how]), {"after": after}, as_=FULL))
        rows = body["licenseAnalytics"]["recentlyAdded"]["rows"]
        edges = rows["e" if how == "alias" else "edges"]
        assert [e["node"]["customerName"] for e in edges] == [
            n["customerName"] for n in rows["nodes"]
        ]
        assert all(isinstance(e["cursor"], str) and e["cursor"] for e in edges)
        assert len({e["cursor"] for e in edges}) == len(edges)
        assert edges[-1]["cursor"] == rows["pageInfo"]["endCursor"]
        seen += [n["customerName"] for n in rows["nodes"]]
        after = rows["pageInfo"]["endCursor"]
        if not rows["pageInfo"]["hasNextPage"]:
            break
    assert seen == [f"Recent {i}" for i in range(5)]  # newest first


async def test_page_info_alone_pages_through_every_row_once(api: Api) -> None:
    await _world(api)
    document = _document("rows(first: 2, after: $after) { pageInfo { endCursor hasNextPage } "
                         "nodes { customerName } }")  # fmt: skip
    seen: list[str] = []
    after = None
    while True:
        body = data_of(await post_graphql(api, document, {"after": after}, as_=FULL))
        rows = body["licenseAnalytics"]["recentlyAdded"]["rows"]
        seen += [n["customerName"] for n in rows["nodes"]]
        if not rows["pageInfo"]["hasNextPage"]:
            break
        after = rows["pageInfo"]["endCursor"]
    assert seen == [f"Recent {i}" for i in range(5)]
