"""Session 16's attacks on rendering (``graph.render``): answers must not depend on
``graph.render.RENDER``."""

from __future__ import annotations

import orjson
import pytest

from graph import render
from tests.conftest import Api, instance_beside
from tests.helpers import post_graphql, token_for
from tests.test_n_plus_one import FULL, build_customers
from tests.test_render import answers as _answers
from tests.test_render import (
    made_objects,  # noqa: F401  (fixture)
    same_both_ways,
    uncached,  # noqa: F401  (fixture)
)


def _page(node: str) -> str:
    return "query { customers(first: 3) { nodes { " + node + " } } }"


TYPE_CONDITIONS = [
    # a fragment on another type of an interface: the ordinary path answers {} per element
    "tags { ... on Node { ... on Admin { name } } }",
    "tags { ... on Node { ... on Admin { __typename } } }",
    "subscriptions { ... on Node { ... on Customer { id } } }",
    "partnerAdmins { admin { ... on Node { ... on Tag { name createdAt } } } }",
    "subscriptions { id ... on Node { ... on Tag { name: id } } }",
]


@pytest.mark.parametrize("shape", range(len(TYPE_CONDITIONS)))
async def test_a_fragment_on_another_type_is_not_rendered_as_this_one(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    shape: int,
) -> None:
    api = uncached
    await build_customers(api, 3)
    await same_both_ways(api, monkeypatch, _page(TYPE_CONDITIONS[shape]), {})


SHARED = [
    # one page's customers answer both ``nodes`` and ``edges.node``: two selections, one object
    "query { customers(first: 3) { nodes { tags { id } } edges { node { tags { name } } } } }",
    "query { customers(first: 3) { nodes { t: subscriptions { id } }"
    " edges { node { t: subscriptions { kind } } } } }",
    # a relationship of the same name on a type the customer is not
    "query { customers(first: 3) { nodes { tags { id }"
    " ... on Node { ... on Subscription { tags { name } } } } } }",
]


@pytest.mark.parametrize("shape", range(len(SHARED)))
async def test_one_customer_under_two_selections_answers_each(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    shape: int,
) -> None:
    api = uncached
    await build_customers(api, 3)
    await same_both_ways(api, monkeypatch, SHARED[shape], {})


async def test_a_detail_answers_only_the_fragments_that_apply(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = uncached
    await build_customers(api, 2)
    monkeypatch.setattr(render, "RENDER", False)
    first = await post_graphql(api, "{ customers(first: 1) { nodes { id } } }", as_=FULL)
    pk = first["data"]["customers"]["nodes"][0]["id"]
    document = (
        "query D($id: ID!) { customer(id: $id) { tags { id }"
        " ... on Node { ... on Subscription { tags { name } } } } }"
    )
    await same_both_ways(api, monkeypatch, document, {"id": pk})


async def test_fragments_that_apply_are_still_rendered(
    uncached: Api,  # noqa: F811
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    made_objects: list[str],  # noqa: F811
) -> None:
    api = uncached
    await build_customers(api, 3)
    made = made_objects
    document = (
        _page("... on Customer { tags { ... on Node { ... on Tag { n: name } id } ...T } }")
        + " fragment T on Tag { createdAt }"
    )
    await same_both_ways(api, monkeypatch, document, {})
    made.clear()
    await post_graphql(api, document, as_=FULL)
    assert ("Tag" in made) is (backend != "postgresql")


NODE = (
    "id statuses s: products tags { n: name id } subscriptions { kind endDate"
    " licenses { product available } invoices { amountCents } orders { status } tags { id } }"
    " trials { id } partnerAdmins { role admin { email } }"
)
PAGINGS = [
    ("first: 4, orderBy: NAME_DESC", {}),
    ("last: 3, orderBy: CREATED_AT_DESC", {}),
    ("first: 4, orderBy: END_DATE_ASC", {}),
    ("last: 2, orderBy: END_DATE_ASC", {}),
    ("first: 5, filter: {statuses: [ACTIVE, EXPIRING_SOON]}", {}),
    ("last: 2, filter: {statuses: [ACTIVE]}, orderBy: NAME_DESC", {}),
    ("first: 5, filter: {subscriptionType: PAID, managedBy: PARTNER}", {}),
    ("first: 5, filter: {products: [TEAMS]}", {}),
    ('first: 5, search: "1"', {}),
]


@pytest.mark.parametrize("paging", range(len(PAGINGS)))
async def test_every_page_answers_the_same_rendered_or_not(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    paging: int,
) -> None:
    api = uncached
    await build_customers(api, 6)
    arguments, variables = PAGINGS[paging]
    document = (
        "query { customers(" + arguments + ") { pageInfo { hasNextPage hasPreviousPage }"
        " edges { cursor node { " + NODE + " } } } }"
    )
    plain, rendered = await _answers(api, monkeypatch, document, variables)
    assert rendered == plain
    if b'"errors"' not in plain:
        assert orjson.loads(plain)["data"]["customers"]["edges"]


@pytest.mark.parametrize("keys", [49, 50, 51, 120])
async def test_many_aliases_answer_the_same(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    keys: int,
) -> None:
    await build_customers(uncached, 2)
    async with instance_beside(uncached, max_aliases=1000) as api:
        await _many_aliases(api, monkeypatch, keys)


async def _many_aliases(api: Api, monkeypatch: pytest.MonkeyPatch, keys: int) -> None:
    many = " ".join(f"a{i}: name" for i in range(keys))
    document = _page(
        "tags { " + many + " } partnerAdmins { admin { " + many + " } }"
        " subscriptions { licenses { " + " ".join(f"b{i}: product" for i in range(keys)) + " } }"
    )
    await same_both_ways(api, monkeypatch, document, {})


async def test_a_stream_of_alias_spellings_makes_a_bounded_number_of_statements(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each alias spelling of a rendered relationship is a statement of its own (the keys are
    written into it): ~200 KB of compiled statement each in SQLAlchemy's cache, ~150 MB a process
    once the cache's 750 entries are full, where the ordinary path's statements never depend
    on aliases. Past ``MAX_SHAPES`` new spellings take the ordinary path."""
    api = uncached
    monkeypatch.setattr(render, "MAX_SHAPES", 8, raising=False)
    await build_customers(api, 2)
    token = await token_for(api, FULL)
    await post_graphql(api, _page("id"), token=token)  # the first request's upkeep
    texts: set[str] = set()
    for i in range(30):
        document = _page(f"tags {{ a{i}: name }} subscriptions {{ k{i}: kind }}")
        with api.counter.counting() as statements:
            body = await post_graphql(api, document, token=token)
        assert "errors" not in body, body
        texts.update(s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH")))
    assert len(texts) <= 8 + 4, len(texts)
    # and a spelling past the bound answers as the ordinary path does
    plain, rendered = await _answers(api, monkeypatch, _page("tags { z: name id }"), {})
    assert rendered == plain


ODD = [
    "tags { __typename: name name: __typename id: createdAt }",
    "t: tags { id } ... on Customer { t: tags { name } }",
    # (the page's three closing braces close the fragment's)
    "tags { ...N ...N } } } } fragment N on Node { id"
    " ... on Tag { id name ... on Node { __typename",
    "partnerAdmins { admin { id: email email: id } role: assignedAt }",
    "subscriptions { licenses { available: overage overage: available }"
    " tags: invoices { id: amountCents } }",
    "trials { tags { __typename } licenses { __typename } }",
]


@pytest.mark.parametrize("shape", range(len(ODD)))
async def test_odd_spellings_cost_and_answer_the_same(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    shape: int,
) -> None:
    api = uncached
    await build_customers(api, 3)
    document = _page(ODD[shape])
    costs = []
    answers = []
    for on in (False, True):
        monkeypatch.setattr(render, "RENDER", on)
        body = await post_graphql(api, document, as_=FULL)
        cost = body.pop("extensions", {}).get("cost", {})
        costs.append((cost.get("requestedQueryCost"), cost.get("actualQueryCost")))
        answers.append(orjson.dumps(body))
    assert b'"errors"' not in answers[0], answers[0]
    assert answers[1] == answers[0]
    assert costs[1] == costs[0] and costs[0][1] is not None, costs
