"""Relationship values are loaded ahead for the whole page, whatever shape the document has.

``customers`` and ``customer`` prefetch the relationships the document selects (through
``nodes``, ``edges { node }``, fragments and aliases) so that their fields complete without an
awaitable per parent; any parent reached another way still loads through the loaders.
"""

from __future__ import annotations

from typing import Any

import pytest

import graph.prefetch
from tests.conftest import Api
from tests.helpers import data_of, post_graphql
from tests.test_n_plus_one import EXPECTED_STATEMENTS, FULL, PAGE_QUERY, build_customers

FRAGMENTS_QUERY = """
query Page($first: Int!) {
  customers(first: $first) {
    edges {
      node {
        ...Customer
        labels: tags { name }
        ... on Customer { subscriptions { licenses { product purchased } } }
      }
    }
  }
}
fragment Customer on Customer {
  name
  statuses
  subscriptions { subscriptionId tags { name } invoices { invoiceNumber } }
  trials { subscriptionId licenses { product } orders { orderNumber } }
  partnerAdmins { role admin { email } }
  products
}
"""


def refuse_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*_: Any) -> Any:
        raise AssertionError("a prefetched relationship went through its loader")

    monkeypatch.setattr(graph.prefetch, "_load", refuse)


async def test_a_page_answers_every_relationship_from_what_was_prefetched(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = uncached_api
    # given
    await build_customers(api, 12)
    expected = data_of(await post_graphql(api, PAGE_QUERY, {"first": 10}, as_=FULL))
    refuse_loading(monkeypatch)
    # when
    with api.counter.counting() as statements:
        page = data_of(await post_graphql(api, PAGE_QUERY, {"first": 10}, as_=FULL))
        shaped = data_of(await post_graphql(api, FRAGMENTS_QUERY, {"first": 10}, as_=FULL))
    # then
    assert page == expected
    assert len(statements) <= 2 * EXPECTED_STATEMENTS  # both documents, no per-row statement
    for node, edge in zip(page["customers"]["nodes"], shaped["customers"]["edges"], strict=True):
        got = edge["node"]
        assert got["name"] == node["name"] and got["statuses"] == node["statuses"]
        assert got["labels"] == [{"name": t["name"]} for t in node["tags"]]
        assert [s["licenses"] for s in got["subscriptions"]] == [
            [{"product": line["product"], "purchased": line["purchased"]} for line in s["licenses"]]
            for s in node["subscriptions"]
        ]
        assert [s["invoices"] for s in got["subscriptions"]] == [
            [{"invoiceNumber": i["invoiceNumber"]} for i in s["invoices"]]
            for s in node["subscriptions"]
        ]
        assert len(got["trials"]) == 1 and got["trials"][0]["orders"]
        assert [a["admin"]["email"] for a in got["partnerAdmins"]] == [
            a["admin"]["email"] for a in node["partnerAdmins"]
        ]


async def test_one_customer_is_prefetched_and_other_parents_still_load(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = uncached_api
    await build_customers(api, 2)
    page = data_of(await post_graphql(api, PAGE_QUERY, {"first": 1}, as_=FULL))
    customer = page["customers"]["nodes"][0]
    detail = (
        "query($id: ID!) { customer(id: $id) { "
        "tags { name } subscriptions { licenses { used } } } }"
    )
    via_node = "query($id: ID!) { node(id: $id) { ... on Customer { tags { name } } } }"
    # node(id:) does not prefetch: its relationships load through the loaders
    node = data_of(await post_graphql(api, via_node, {"id": customer["id"]}, as_=FULL))
    assert node["node"]["tags"] == [{"name": t["name"]} for t in customer["tags"]]
    refuse_loading(monkeypatch)
    one = data_of(await post_graphql(api, detail, {"id": customer["id"]}, as_=FULL))["customer"]
    assert one["tags"] == [{"name": t["name"]} for t in customer["tags"]]
    assert len(one["subscriptions"]) == 2


async def test_values_loaded_ahead_answer_later_loads_until_cleared() -> None:
    """``Loader.load_ahead`` keeps values rather than futures; a later ``load`` of one of those
    keys must still be answered without a batch, ``clear`` must forget it, and keys loaded by
    ``load`` are not fetched again by ``load_ahead``."""
    from graph.loaders import Loader

    batches: list[list[int]] = []

    async def batch(keys: list[int]) -> list[str]:
        batches.append(list(keys))
        return [f"v{key}" for key in keys]

    loader: Loader[str] = Loader(batch)
    # when
    ahead = await loader.load_ahead([3, 1, 3])
    later = await loader.load(1)
    # then
    assert ahead == ["v3", "v1", "v3"]
    assert later == "v1"
    assert batches == [[3, 1]]
    # when
    loader.clear(1)
    again = await loader.load(1)
    four = await loader.load(4)
    mixed = await loader.load_ahead([4, 3, 5])
    # then
    assert (again, four, mixed) == ("v1", "v4", ["v4", "v3", "v5"])
    assert batches == [[3, 1], [1], [4], [5]]
    # when
    loader.clear_all()
    await loader.load_ahead([3])
    # then
    assert batches[-1] == [3]


def _strawberry_below(info: Any, *path: str) -> list[Any]:
    """What ``below`` answered when it read Strawberry's ``info.selected_fields``: the fields at
    ``path``, fragments flattened at every level."""
    from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

    def flat(selections: Any, *rest: str) -> list[Any]:
        level: list[Any] = []
        for selection in selections:
            if isinstance(selection, FragmentSpread | InlineFragment):
                level.extend(flat(selection.selections))
            elif isinstance(selection, SelectedField):
                level.append(selection)
        if not rest:
            return level
        head, *tail = rest
        return [g for field in level if field.name == head for g in flat(field.selections, *tail)]

    return flat([s for field in info.selected_fields for s in field.selections], *path)


def _tree(fields: Any) -> list[Any]:
    """Names of ``fields`` and of everything below them, fragments flattened."""
    from strawberry.types.nodes import FragmentSpread, InlineFragment

    out: list[Any] = []
    for field in fields:
        if isinstance(field, FragmentSpread | InlineFragment):
            out.extend(_tree(field.selections))
        else:
            out.append((field.name, _tree(field.selections)))
    return out


DIRECTIVES_QUERY = """
query($first: Int!, $skip: Boolean = false) {
  customers(first: $first) {
    nodes { ... @include(if: true) { named: name tags @skip(if: $skip) { id } } }
    ...More
  }
}
fragment More on CustomerConnection { edges { node { ...Deep } } pageInfo { hasNextPage } }
fragment Deep on Customer {
  subscriptions { ... on Subscription { licenses { product } } }
  again: subscriptions { invoices { invoiceNumber } }
}
"""
DETAIL_QUERY = """
query($id: ID!) {
  customer(id: $id) { ...One tags { name } ... on Customer { trials { licenses { product } } } }
}
fragment One on Customer { statuses subscriptions { tags { id } ...Sub } }
fragment Sub on Subscription { licenses { used } orders { orderNumber } }
"""


@pytest.mark.parametrize("document", [FRAGMENTS_QUERY, PAGE_QUERY, DIRECTIVES_QUERY, DETAIL_QUERY])
async def test_below_reads_the_selection_strawberry_would_convert(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch, document: str
) -> None:
    """``below`` walks the document's nodes itself (cheaper than ``info.selected_fields``): for
    documents with aliases, directives, inline and named fragments, at every path the resolvers
    ask for, the same field names in the same order, all the way down."""
    import graph.resolvers.customers

    api = uncached_api
    await build_customers(api, 2)
    page = data_of(await post_graphql(api, PAGE_QUERY, {"first": 1}, as_=FULL))
    seen: list[tuple[Any, Any]] = []
    original = graph.prefetch.below

    def spy(info: Any, *path: str) -> Any:
        mine = original(info, *path)
        seen.append((_tree(mine), _tree(_strawberry_below(info, *path))))
        return mine

    monkeypatch.setattr(graph.resolvers.customers, "below", spy)
    variables = {"first": 2, "id": page["customers"]["nodes"][0]["id"]}
    data_of(await post_graphql(api, document, variables, as_=FULL))
    assert seen and any(mine for mine, _ in seen)
    for mine, theirs in seen:
        assert mine == theirs
