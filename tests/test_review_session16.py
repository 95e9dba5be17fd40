"""Review of session 16's rendering (``graph.render``): answers must not depend on
``graph.render.RENDER``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from db.queries import customer_walks
from graph import detail as detail_module
from tests.conftest import Api
from tests.helpers import data_of, post_graphql
from tests.test_n_plus_one import FULL, build_customers
from tests.test_render import answers as _answers
from tests.test_render import (
    made_objects,  # noqa: F401  (fixture)
    same_both_ways,
    uncached,  # noqa: F401  (fixture)
)

ALIASED_PATHS = [
    # one page's customers answer two aliases of ``nodes``: each with its own selection
    "a: nodes { tags { name } } b: nodes { tags { id } }",
    "a: nodes { statuses tags { name } } b: nodes { tags { createdAt } }",
    "edges { a: node { subscriptions { kind } } b: node { subscriptions { id } } }",
    "e: edges { node { tags { name } } } f: edges { node { tags { id } } }",
]


@pytest.mark.parametrize("shape", range(len(ALIASED_PATHS)))
async def test_aliases_of_the_path_to_the_customers_answer_each_their_own(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    shape: int,
) -> None:
    api = uncached
    await build_customers(api, 3)
    document = "query { customers(first: 3) { " + ALIASED_PATHS[shape] + " } }"
    await same_both_ways(api, monkeypatch, document, {})


NODE = (
    "id statuses products tags { n: name id } subscriptions { kind endDate"
    " licenses { product available } invoices { amountCents } tags { id } }"
    " trials { id } partnerAdmins { role admin { email } }"
)


@pytest.mark.parametrize("walk_limit", [3, 2_000])
async def test_a_walk_stopped_at_its_bound_answers_the_same_rendered_or_not(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    walk_limit: int,
    backend: str,
) -> None:
    """The walk's rows past its bound carry no parts: the page's parts are read apart
    (``customers_parts``), with the same plan, its rendered parts included."""
    api = uncached
    monkeypatch.setattr(customer_walks, "WALK_LIMIT", walk_limit)
    apart: list[Any] = []
    read_apart = detail_module.customers_parts

    async def counted(*args: Any, **kwargs: Any) -> Any:
        apart.append(kwargs["plan"])
        return await read_apart(*args, **kwargs)

    monkeypatch.setattr(detail_module, "customers_parts", counted)
    await build_customers(api, 17)
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL))["tags"]
    gold = next(t["id"] for t in tags if t["name"] == "gold")
    document = (
        "query P($f: CustomerFilter) { customers(first: 5, filter: $f) { nodes { " + NODE + " } } }"
    )
    variables = {"f": {"tagIds": [gold], "products": ["CALLING"]}}
    plain = await same_both_ways(api, monkeypatch, document, variables)
    nodes = orjson.loads(plain)["data"]["customers"]["nodes"]
    assert len(nodes) == 5 and all(node["tags"] for node in nodes)
    if backend == "postgresql" and walk_limit == 3:  # read apart, rendered
        assert apart and apart[-1].rendered
    detail = "query D($id: ID!) { customer(id: $id) { " + NODE + " } }"
    plain, rendered = await _answers(api, monkeypatch, detail, {"id": nodes[0]["id"]})
    assert rendered == plain
    assert orjson.loads(rendered)["data"]["customer"] == nodes[0]
