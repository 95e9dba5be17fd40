"""Relationship values loaded ahead for a whole page, so their fields complete synchronously.

A relationship field (a customer's tags, a subscription's license lines) resolves through a
per-request loader: one ``WHERE key IN (...)`` statement for every parent of the page. That keeps
the SQL flat, but each of the page's parents still awaited its own loader future, and
graphql-core wraps every awaited list item in an asyncio task: on a directory page of 50 that was
about 300 tasks and futures per request, more time than the SQL itself (issue 8's profile).

A resolver that returns a page (``customers``, ``customer``) therefore looks at the fields the
document selects below it and, for each relationship asked for, loads the values of all parents
with the same loader (the same statement) before returning. The field resolvers read the value
when it is there and fall back to the loader otherwise, so a parent reached any other way still
answers correctly; prefetching only changes how many awaitables there are, never what is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionNode

from db.queries.customer_render import RenderedJSON
from graph.auth.permissions import Act, visible_under
from graph.memo import operation_memo

if TYPE_CHECKING:
    from graph.context import Context
    from graph.loaders import Loader, Loaders

_MISSING: Any = object()


class HasAhead(Protocol):
    pk: int
    ahead: dict[str, Any]


@dataclass(frozen=True)
class Relation:
    """A relationship field: the loader that answers it and how rows become API objects."""

    loader: Callable[[Loaders], Loader[Any]]
    convert: Callable[[Any], Any]
    # Relations of the converted objects, prefetched in turn (a subscription's license lines).
    children: dict[str, Relation] | None = None


async def allowed_under(ctx: Context, relation: Relation, pks: Sequence[int]) -> set[int] | None:
    """Of the customers ``pks`` the caller sees, those whose ``relation`` it may read; None
    when all of them. The rule its loader applies (``graph.loaders._loader``), for the CSV
    columns that mirror a relationship field (``graph.export``)."""
    obj, parent = relation.loader(ctx.loaders).rule
    return await visible_under(ctx, obj, Act.READ, pks, parent=parent)


async def _load(ctx: Context, relation: Relation, pk: int) -> Any:
    # The loader applies the caller's rule for the related kind (graph.loaders._loader).
    return relation.convert(await relation.loader(ctx.loaders).load(pk))


def ahead_or_load(parent: HasAhead, ctx: Context, field: str, relation: Relation) -> Any:
    """The field's value when prefetched, else an awaitable that loads it: graphql-core awaits
    whatever a resolver returns that is awaitable."""
    value = parent.ahead.get(field, _MISSING)
    if value is _MISSING or type(value) is RenderedJSON:
        # RenderedJSON: the response's JSON, which only the direct path takes (``graph.render``);
        # should graphql-core's own completion reach it, the loader answers as it would have.
        return _load(ctx, relation, parent.pk)
    return value


class Picked:
    """A field the document selects: its name and the fields selected below it, fragments
    (spread or inline) flattened into the field's own list; ``key`` is its response name (its
    alias, else its name; None below a directive, or below a path selected under two names,
    ``below``) and ``on`` the type conditions of the fragments it was flattened out of (since
    its parent field), which only rendering (``graph.render``) reads: a field under
    ``... on Admin`` in a tag's selection is in the list, and is not answered."""

    __slots__ = ("__weakref__", "key", "name", "on", "selections")

    def __init__(
        self,
        name: str,
        selections: list[Picked],
        key: str | None = None,
        fixed: bool = True,
        on: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.selections = selections
        # None below a directive (``_picked``).
        self.key: str | None = (name if key is None else key) if fixed else None
        self.on = on

    def __repr__(self) -> str:
        return f"Picked({self.name!r}, {self.selections!r})"


def _picked(
    nodes: Iterable[SelectionNode],
    fragments: Mapping[str, Any],
    directed: bool = False,
    on: tuple[str, ...] = (),
) -> list[Picked]:
    """``nodes``' fields; below a directive (``@skip``, ``@include``, ``@defer``: what is
    answered then depends on more than the document) their ``key`` is None; ``on``: the type
    conditions of the fragments ``nodes`` are in."""
    level: list[Picked] = []
    for node in nodes:
        under = directed or bool(node.directives)
        if isinstance(node, FieldNode):
            below = node.selection_set
            inner = _picked(below.selections, fragments, under) if below is not None else []
            key = None if under else node.alias.value if node.alias is not None else node.name.value
            level.append(Picked(node.name.value, inner, key, fixed=not under, on=on))
        elif isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            inner_on = on if condition is None else (*on, condition.name.value)
            level.extend(_picked(node.selection_set.selections, fragments, under, inner_on))
        elif isinstance(node, FragmentSpreadNode):
            fragment = fragments[node.name.value]
            under = under or bool(fragment.directives)
            inner_on = (*on, fragment.type_condition.name.value)
            level.extend(_picked(fragment.selection_set.selections, fragments, under, inner_on))
    return level


def selected(fields: Iterable[Picked], *path: str) -> list[Picked]:
    """The fields selected at ``path`` below ``fields``."""
    level = list(fields)
    for head in path:
        level = [inner for field in level if field.name == head for inner in field.selections]
    return level


def below(info: Any, *path: str) -> list[Picked]:
    """The fields the document selects at ``path`` below the field being resolved.

    Read off the document's nodes: Strawberry's ``info.selected_fields`` converted every
    argument and directive of the whole selection too (with the variables), which nothing here
    reads; for the customer detail's 51 fields that took about 90 us of each request, this
    walk about 15. Kept per operation (``graph.memo``) by path and field nodes: what a
    document selects below its nodes never changes (the fragments are the document's own).
    The walk took about 50 us of each customer detail."""
    return below_each(info, path)


def below_each(info: Any, *paths: tuple[str, ...]) -> list[Picked]:
    """``below`` at each of ``paths`` (a connection's ``nodes`` and ``edges.node``), together.

    When the objects there are reached by more than one route of response names (both paths,
    or one step under two aliases: ``a: nodes { tags { name } } b: nodes { tags { id } }``),
    one object answers each route with that route's own selection: their fields' ``key`` is
    None, never rendered (``graph.render``) as the merge of them."""
    raw = getattr(info, "_raw_info", info)  # Strawberry's Info wraps graphql-core's
    memo = operation_memo(raw.operation)
    key = ("below", paths, *[id(node) for node in raw.field_nodes])
    level = memo.get(key)
    if level is None:
        fields = _picked(raw.field_nodes, raw.fragments)
        top = [inner for f in fields for inner in f.selections]
        level = [picked for path in paths for picked in selected(top, *path)]
        if sum(_routes(top, path) for path in paths) > 1:
            level = [Picked(p.name, p.selections, fixed=False, on=p.on) for p in level]
        memo[key] = level
    # A ``Picked`` is never changed once made; each caller gets its own list.
    return list(level)


def _routes(fields: Sequence[Picked], path: Sequence[str]) -> int:
    """By how many routes of response names ``path`` below ``fields`` reaches a selection."""
    routes: list[list[Picked]] = [list(fields)]
    for head in path:
        keyed: dict[tuple[int, str | None], list[Picked]] = {}
        for i, level in enumerate(routes):
            for field in level:
                if field.name == head:
                    keyed.setdefault((i, field.key), []).extend(field.selections)
        routes = list(keyed.values())
    return sum(1 for level in routes if level)


async def prefetch(
    ctx: Context,
    parents: Sequence[HasAhead],
    fields: Sequence[Picked],
    relations: dict[str, Relation],
) -> None:
    """Load every relation of ``relations`` that ``fields`` selects, for all ``parents`` at once."""
    if not parents:
        return
    for name, relation in relations.items():
        below = [f for f in fields if f.name == name]
        if not below:
            continue
        pks = [p.pk for p in parents]
        values = await relation.loader(ctx.loaders).load_ahead(pks)
        converted = [relation.convert(v) for v in values]
        for parent, value in zip(parents, converted, strict=True):
            parent.ahead[name] = value
        if relation.children:
            children = [child for value in converted for child in value]
            grand = [g for f in below for g in selected(f.selections)]
            await prefetch(ctx, children, grand, relation.children)
