"""The direct paths of ``graph.execution`` answer exactly what graphql-core would.

They skip work for scalar and enum attributes and for whole objects below attributes and
prefetched relationships; everything they cannot vouch for (a null in a
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
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.execution import PlainFieldExecutionContext
from tests.conftest import Api
from tests.fuzz_support import IdPools, documents
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


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Pet(Named):
    legs: int


@strawberry.type
class Owner:
    name: str
    pets: list[Pet]
    best: Pet | None
    marks: list[int]
    ahead: strawberry.Private[dict[str, Any]]

    @strawberry.field
    def friends(self) -> list[Pet]:
        value: list[Pet] = self.ahead.get("friends", [Pet(name="loaded", legs=0)])
        return value


@strawberry.type
class Page:
    owners: list[Owner]
    count: int


@strawberry.type
class OwnerQuery:
    @strawberry.field
    def page(self) -> Page:
        return OwnerQuery._page  # type: ignore[attr-defined,no-any-return]


_OWNER_SCHEMAS: dict[bool, strawberry.Schema] = {}


def run_owners(page: Any, document: str, fast: bool) -> dict[str, Any]:
    OwnerQuery._page = page  # type: ignore[attr-defined]
    if fast not in _OWNER_SCHEMAS:
        context = PlainFieldExecutionContext if fast else StrawberryGraphQLCoreExecutionContext
        _OWNER_SCHEMAS[fast] = strawberry.Schema(
            query=OwnerQuery, types=[Pet], execution_context_class=context
        )
    result = _OWNER_SCHEMAS[fast].execute_sync(document)
    return {"data": result.data, "errors": [(e.message, e.path) for e in result.errors or []]}


def owner(**changes: Any) -> Owner:
    good: dict[str, Any] = {
        "name": "o",
        "pets": [Pet(name="p", legs=4)],
        "best": Pet(name="b", legs=2),
        "marks": [1, 2],
        "ahead": {"friends": [Pet(name="f", legs=3)]},
    }
    return Owner(**(good | changes))


OWNERS = """{ page { count owners { __typename n: name name marks pets { name legs }
  best { ... on Pet { legs } ...Named } friends { __typename name } } } }
  fragment Named on Named { name }"""


@pytest.mark.parametrize(
    ("owners", "document", "bad"),
    [
        pytest.param([owner(), owner(best=None, pets=[])], OWNERS, False, id="objects"),
        pytest.param([owner(), owner(ahead={})], OWNERS, False, id="not prefetched"),
        pytest.param(
            [owner(), owner(pets=[Pet(name="p", legs=None)])], OWNERS, True, id="null leaf"
        ),  # type: ignore[arg-type]
        pytest.param([owner(), owner(pets=[None])], OWNERS, True, id="null item"),
        pytest.param([owner(), owner(marks=[1, None])], OWNERS, True, id="null leaf item"),
        pytest.param([owner(), owner(marks=[3, 2**40])], OWNERS, True, id="refused leaf item"),
        pytest.param([owner(), owner(marks="12")], OWNERS, True, id="leaf list not a list"),
        pytest.param([owner(), owner(best="a string")], OWNERS, True, id="not a Pet"),
        pytest.param(
            [owner(), owner(pets=[Pet(name="p", legs=2**40)])], OWNERS, True, id="refused int"
        ),
        pytest.param(
            [owner(pets=[Pet(name="p", legs=1)])],
            "{ page { owners { pets { ... on Named { name } } } } }",
            False,
            id="fragment on an interface",
        ),
    ],
)
def test_objects_below_attributes_and_prefetch_answer_like_graphql_core(
    owners: list[Any], document: str, bad: bool
) -> None:
    page = Page(owners=owners, count=len(owners))
    fast, stock = run_owners(page, document, fast=True), run_owners(page, document, fast=False)
    assert fast == stock
    assert bool(fast["errors"]) is bad
    if bad:
        assert fast["errors"][0][1][:3] == ["page", "owners", len(owners) - 1]


def test_objects_below_attributes_skip_graphql_core_per_value_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path is taken (not merely equivalent): no value of the page is completed by
    graphql-core's ``complete_value`` below ``page``."""
    completed: list[Any] = []
    stock_complete = StrawberryGraphQLCoreExecutionContext.complete_value

    def counting(self: Any, return_type: Any, *args: Any) -> Any:
        completed.append(str(return_type))
        return stock_complete(self, return_type, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "complete_value", counting)
    page = Page(owners=[owner(), owner()], count=2)
    assert not run_owners(page, OWNERS, fast=True)["errors"]
    assert completed == ["Page!", "Page"]  # the non-null wrapper, then the object itself
    completed.clear()
    assert not run_owners(page, OWNERS, fast=False)["errors"]
    assert len(completed) > 20


def test_object_completers_are_compiled_once_per_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each (type, selection) shape is compiled into a completer once; later requests with the
    same document reuse it, a different selection gets its own."""
    import graph.completers

    monkeypatch.setattr(graph.completers, "_COMPLETERS", {})
    page = Page(owners=[owner(), owner()], count=2)
    first = run_owners(page, OWNERS, fast=True)
    compiled = dict(graph.completers._COMPLETERS)
    again = run_owners(page, OWNERS, fast=True)
    assert first == again and not first["errors"]
    assert compiled and compiled == graph.completers._COMPLETERS
    other = run_owners(page, "{ page { owners { name pets { legs } } } }", fast=True)
    assert other["data"]["page"]["owners"][0] == {"name": "o", "pets": [{"legs": 4}]}
    assert len(graph.completers._COMPLETERS) > len(compiled)


class Raising:
    """A source whose attribute ``attribute`` raises ``error`` when read (a property that fails,
    a lazy-loaded column on a closed session); the other fields of ``Item`` are good."""

    def __init__(self, attribute: str, error: Exception) -> None:
        self._attribute, self._error = attribute, error
        self._good = item()

    def __getattr__(self, name: str) -> Any:
        if name == self._attribute:
            raise self._error
        return getattr(self._good, name)


@pytest.mark.parametrize("attribute", ["name", "note", "seen"])
@pytest.mark.parametrize(
    "error", [ValueError("broken row"), AttributeError("lazy load"), KeyError("gone")]
)
def test_a_source_attribute_that_raises_is_reported_like_graphql_core(
    attribute: str, error: Exception
) -> None:
    """The direct path reads attributes itself: what the read raises must become the field's
    error at its path, with its null propagated, as graphql-core's default resolver makes it."""
    items = [item(), Raising(attribute, error)]
    document = "{ items { name count colour seen note } }"
    fast, stock = run(items, document, fast=True), run(items, document, fast=False)
    assert fast == stock
    assert stock["errors"] and stock["errors"][0][1] == ["items", 1, attribute]


@pytest.mark.parametrize("attribute", ["name", "pets", "marks", "best"])
def test_an_attribute_below_a_plain_object_that_raises_is_reported_like_graphql_core(
    attribute: str,
) -> None:
    good = owner()

    class Broken:
        ahead = good.ahead

        def __getattr__(self, name: str) -> Any:
            if name == attribute:
                raise ValueError("broken row")
            return getattr(good, name)

    page = Page(owners=[owner(), Broken()], count=2)  # type: ignore[list-item]
    fast, stock = run_owners(page, OWNERS, fast=True), run_owners(page, OWNERS, fast=False)
    assert fast == stock
    assert stock["errors"] and stock["errors"][0][1][:3] == ["page", "owners", 1]


class Broken(Exception):
    """What a raising attribute raises."""


class _Raises:
    def __repr__(self) -> str:
        return "RAISES"


RAISES = _Raises()  # drawn as an attribute's value: reading the attribute raises


def with_values(cls: type, values: dict[str, Any]) -> Any:
    """An instance of ``cls`` with ``values``; those that are ``RAISES`` raise when read (a
    property of a subclass, so that the instance is still of ``cls`` for type resolution)."""

    def fail(self: Any) -> Any:
        raise Broken("read failed")

    def shown(self: Any) -> str:
        return f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in values.items())})"

    raising: dict[str, Any] = {k: property(fail) for k, v in values.items() if v is RAISES}
    raising["__repr__"] = shown
    instance = object.__new__(type(f"Raising{cls.__name__}", (cls,), raising))
    instance.__dict__.update({k: v for k, v in values.items() if v is not RAISES})
    return instance


def odd(good: st.SearchStrategy[Any], *bad: Any) -> st.SearchStrategy[Any]:
    """Mostly good values; now and then a null, a refused value or a raising read."""
    return st.one_of(good, good, st.sampled_from([None, RAISES, *bad]))


NAMES = odd(st.text(max_size=3), 7)
PETS = st.builds(
    lambda name, legs: with_values(Pet, {"name": name, "legs": legs}),
    NAMES,
    odd(st.integers(-3, 3), 2**40, "four"),
)
OWNERS_DATA = st.builds(
    lambda name, pets, best, marks, friends: with_values(
        Owner,
        {
            "name": name,
            "pets": pets,
            "best": best,
            "marks": marks,
            "ahead": {} if friends is None else {"friends": friends},
        },
    ),
    NAMES,
    odd(st.lists(odd(PETS), max_size=3), "12"),
    odd(PETS, "a string"),
    odd(st.lists(odd(st.integers(-3, 3), 2**40), max_size=3), "12"),
    st.one_of(st.none(), st.lists(odd(PETS), max_size=2)),
)
OWNER_SCHEMA = strawberry.Schema(query=OwnerQuery, types=[Pet])._schema


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(
    owners=st.lists(OWNERS_DATA, max_size=3),
    document=documents(OWNER_SCHEMA, IdPools(), max_depth=5),
)
def test_generated_documents_over_generated_sources_answer_like_graphql_core(
    owners: list[Any], document: tuple[str, dict[str, Any]]
) -> None:
    """Any selection (fragments, aliases, directives, ``Node``-like interfaces) over sources with
    nulls, refused values and raising attributes anywhere: the same data and errors."""
    page = Page(owners=owners, count=len(owners))
    query, _ = document
    assert run_owners(page, query, fast=True) == run_owners(page, query, fast=False)
