"""The plain-field path of ``graph.execution`` answers exactly what graphql-core would.

It only skips work for scalar and enum attributes; everything it cannot vouch for (a null in a
non-null field, a value the scalar refuses) must reach graphql-core's ordinary path so that the
error, its path and the null propagation are the specification's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.execution import PlainFieldExecutionContext
from tests.conftest import Api
from tests.helpers import data_of, post_graphql

FULL = "full@acme.example"
FULL_PAGE = (
    Path(__file__).parents[1] / "bench" / "queries" / "directory_page_full.graphql"
).read_text()


@strawberry.enum
class Colour(Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    count: int
    colour: Colour
    seen: datetime | None
    note: str | None


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return Query._items  # type: ignore[attr-defined,no-any-return]


def run(items: list[Any], document: str, fast: bool) -> dict[str, Any]:
    Query._items = items  # type: ignore[attr-defined]
    context_class = PlainFieldExecutionContext if fast else StrawberryGraphQLCoreExecutionContext
    schema = strawberry.Schema(query=Query, execution_context_class=context_class)
    result = schema.execute_sync(document)
    return {
        "data": result.data,
        "errors": [(e.message, e.path) for e in result.errors or []],
    }


def item(**changes: Any) -> SimpleNamespace:
    """A source row: the fields of ``Item`` with good values unless ``changes`` says otherwise."""
    good = {"name": "a", "count": 2, "colour": Colour.RED, "note": None}
    return SimpleNamespace(**(good | {"seen": datetime(2026, 1, 2, tzinfo=UTC)} | changes))


@pytest.mark.parametrize(
    ("items", "bad"),
    [
        pytest.param([item(), item(seen=None, note="x")], False, id="plain values"),
        pytest.param([item(), item(name=None)], True, id="null in non-null"),
        pytest.param([item(), item(count="many")], True, id="refused int"),
        pytest.param([item(), item(colour="purple")], True, id="refused enum"),
        pytest.param([item(), item(seen="yesterday")], True, id="refused datetime"),
    ],
)
def test_plain_fields_answer_like_graphql_core(items: list[Any], bad: bool) -> None:
    document = "{ items { name count colour seen note } }"
    fast, stock = run(items, document, fast=True), run(items, document, fast=False)
    assert fast == stock
    assert bool(fast["errors"]) is bad
    if bad:
        assert fast["errors"][0][1][:2] == ["items", 1]


async def test_a_full_directory_page_is_the_same_with_and_without_the_plain_path(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = {"first": 50, "filter": None}
    fast = data_of(await post_graphql(uncached_demo_api, FULL_PAGE, variables, as_=FULL))
    monkeypatch.setattr(
        PlainFieldExecutionContext,
        "execute_field",
        StrawberryGraphQLCoreExecutionContext.execute_field,
    )
    stock = data_of(await post_graphql(uncached_demo_api, FULL_PAGE, variables, as_=FULL))
    assert len(fast["customers"]["nodes"]) == 50
    assert any(n["subscriptions"] for n in fast["customers"]["nodes"])
    assert fast == stock


@strawberry.type
class Child:
    name: str


@strawberry.type
class Parent:
    label: str
    ahead: strawberry.Private[dict[str, Any]]

    @strawberry.field
    def children(self) -> list[Child]:
        value: list[Child] = self.ahead.get("children", [Child(name="loaded")])
        return value


@strawberry.type
class ParentQuery:
    @strawberry.field
    def parents(self) -> list[Parent]:
        return ParentQuery._parents  # type: ignore[attr-defined,no-any-return]


def run_parents(parents: list[Parent], fast: bool) -> dict[str, Any]:
    ParentQuery._parents = parents  # type: ignore[attr-defined]
    context_class = PlainFieldExecutionContext if fast else StrawberryGraphQLCoreExecutionContext
    schema = strawberry.Schema(query=ParentQuery, execution_context_class=context_class)
    result = schema.execute_sync("{ parents { label children { name } } }")
    return {"data": result.data, "errors": [(e.message, e.path) for e in result.errors or []]}


@pytest.mark.parametrize(
    ("ahead", "bad"),
    [
        pytest.param({"children": [Child(name="x"), Child(name="y")]}, False, id="prefetched"),
        pytest.param({}, False, id="not prefetched: the resolver runs"),
        pytest.param({"children": [Child(name="x"), None]}, True, id="null item in non-null list"),
        pytest.param({"children": [Child(name=None)]}, True, id="null leaf below"),  # type: ignore[arg-type]
    ],
)
def test_prefetched_relationships_answer_like_graphql_core(
    ahead: dict[str, Any], bad: bool
) -> None:
    parents = [Parent(label="a", ahead={}), Parent(label="b", ahead=ahead)]
    fast, stock = run_parents(parents, fast=True), run_parents(parents, fast=False)
    assert fast == stock
    assert bool(fast["errors"]) is bad
    if bad:
        assert fast["errors"][0][1][:2] == ["parents", 1]
