"""Session 16's attacks on rendering (``graph.render``): answers must not depend on
``graph.render.RENDER``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from graph import render
from graph.types import common
from graph.types import tags as tag_types
from tests.conftest import Api
from tests.helpers import post_graphql
from tests.test_n_plus_one import FULL, build_customers
from tests.test_render import uncached  # noqa: F401  (fixture)


async def _answers(
    api: Api, monkeypatch: pytest.MonkeyPatch, document: str, variables: dict[str, Any]
) -> list[bytes]:
    answers = []
    for on in (False, True):
        monkeypatch.setattr(render, "RENDER", on)
        body = await post_graphql(api, document, variables, as_=FULL)
        body.pop("extensions", None)
        answers.append(orjson.dumps(body))
    return answers


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
    plain, rendered = await _answers(api, monkeypatch, _page(TYPE_CONDITIONS[shape]), {})
    assert b'"errors"' not in plain, plain
    assert rendered == plain


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
    plain, rendered = await _answers(api, monkeypatch, SHARED[shape], {})
    assert b'"errors"' not in plain, plain
    assert rendered == plain


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
    plain, rendered = await _answers(api, monkeypatch, document, {"id": pk})
    assert b'"errors"' not in plain, plain
    assert rendered == plain


async def test_fragments_that_apply_are_still_rendered(
    uncached: Api,  # noqa: F811
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = uncached
    await build_customers(api, 3)
    made: list[str] = []

    def counted(cls: Any, values: dict[str, Any]) -> Any:
        made.append(cls.__name__)
        return common.made(cls, values)

    monkeypatch.setattr(tag_types, "made", counted)
    document = (
        _page("... on Customer { tags { ... on Node { ... on Tag { n: name } id } ...T } }")
        + " fragment T on Tag { createdAt }"
    )
    plain, rendered = await _answers(api, monkeypatch, document, {})
    assert b'"errors"' not in plain, plain
    assert rendered == plain
    made.clear()
    await post_graphql(api, document, as_=FULL)
    assert ("Tag" in made) is (backend != "postgresql")
