"""A customer and the relationships a document selects on it, in one statement.

The per-request loaders (``graph.loaders``) answer each relationship with one ``WHERE key IN
(...)`` statement: 11 round trips for issue 8's customer detail, where PostGraphile 4 sends one.
Here every relationship becomes a correlated subquery that aggregates its rows into a JSON
array (PostgreSQL ``json_agg``/``json_build_array``, SQLite ``json_group_array``/``json_array``:
``db.queries.customer_parts``), selected next to the customer's own columns: one statement, one
round trip. This module runs those statements and decodes their rows.

Each relationship reads exactly what its loader statement reads (the same tables, the same
partner condition, the same order and the same cap), and every element carries its position in
that order, by which it is sorted again here (SQLite promises no order for an aggregate). The
rows come back as the same named tuples the loaders return (``records``), so the API objects
are made by the same converters. The customer itself is selected within ``scope``, as
``customers_by_ids`` does; which relationships the caller may read at all is decided by the
caller (``graph.detail``) before it asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.driver_query import DriverQuery
from db.engine import frozen, request_connection
from db.queries.customer_children import (
    _STATUS_ORDER,
)
from db.queries.customer_parts import (
    _CUSTOMER_PARTS,
    _SUBSCRIPTION_PARTS,
    C,
    DetailPlan,
    _Part,
    part_columns,
    part_count,
    part_params,
)
from db.queries.customer_render import RenderedJSON
from db.queries.customers import CUSTOMER_COLUMNS, Record, _record_type
from db.scope import Scope
from db.token_check import with_token_check
from db.types import UTCDateTime

_first = itemgetter(0)


@dataclass(frozen=True)
class Detail:
    """The customer's row and, per part asked for, the rows its loader would have returned
    (for a subscription or trial: ``children[part][subscription id]``), or for a part
    rendered by PostgreSQL its JSON text (``rendered``). Not ``vouched`` when a rendered part
    holds a value the ordinary path would not write as it is (``customer_render.checks``): that
    part is missing from ``rendered``, and the caller reads the parts again the ordinary way."""

    row: Record
    parts: dict[str, list[Any]]
    children: dict[str, dict[int, list[Any]]]
    rendered: dict[str, RenderedJSON]
    vouched: bool = True


# Text of an instant -> the instant, for the values a page repeats (a tag's creation on every
# customer it is on, the same term ends): bounded, cleared when full. Datetimes are immutable.
_PARSED: dict[str, datetime] = {}
_PARSED_MAX = 8192
_parse = datetime.fromisoformat


def _parse_datetime(value: Any) -> datetime | str | None:
    """An instant's JSON text as a datetime; a text Python cannot hold as one (PostgreSQL's
    ``infinity``, a year BC or past 9999) as it is, which the ``DateTime`` scalar refuses where
    a document selects it: an error at that field, not of every row's relationship (the row's
    other columns, and columns no field shows, read as ever), as when the part is rendered
    (``db.queries.customer_render.checks``)."""
    if value is None:
        return None
    found = _PARSED.get(value)
    if found is not None:
        return found
    try:
        # SQLite stores naive UTC text. Parsing an offset costs ~40 ns, datetime.replace(tzinfo=)
        # ~600 (as ``db.types.UTCDateTime``); a page parses ~400 of these.
        parsed = _parse(value + "+00:00")
    except ValueError:  # PostgreSQL's text carries its offset
        try:
            parsed = _parse(value)
        except ValueError:
            return str(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        elif parsed.tzinfo is not UTC:
            parsed = parsed.astimezone(UTC)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[value] = parsed
    return parsed


def _converter(column: Any) -> Callable[[Any], Any] | None:
    """How a column's JSON value becomes what the column's own result would have been."""
    if isinstance(column.type, UTCDateTime):
        return _parse_datetime
    if isinstance(column.type, Boolean):
        return lambda value: None if value is None else bool(value)
    return None


@lru_cache(maxsize=64)
def _statement(dialect: str, plan: DetailPlan, whole: bool) -> Any:
    """The customer's columns (only its id unless ``whole``) and a JSON array per part."""
    columns: list[ColumnElement[Any]] = list(CUSTOMER_COLUMNS) if whole else [C.id]
    return select(*columns, *part_columns(dialect, plan))


_MAKERS: dict[int, Callable[[list[Any]], list[Any]]] = {}


def _maker(part: _Part) -> Callable[[list[Any]], list[Any]]:
    """A part's JSON elements ``[position, column values...]`` -> its loader's values (named
    tuples, the columns that need it converted; plain values for a scalar part). Compiled once
    per part (the parts are this module's constants, kept by id) into one comprehension that
    names every column: slicing each element and converting in a loop cost ~2 us an element,
    as much as the rest of the page's decoding."""
    found = _MAKERS.get(id(part))
    if found is not None:
        return found
    names: dict[str, Any] = {"new": tuple.__new__}
    if part.scalar:
        body = "[element[1] for element in elements]"
    else:
        names["record"] = _record_type(tuple(name for name, _ in part.columns))
        values = []
        for i, (_, column) in enumerate(part.columns):
            convert = _converter(column)
            if convert is None:
                values.append(f"element[{i + 1}]")
            else:
                names[f"c{i}"] = convert
                values.append(f"c{i}(element[{i + 1}])")
        body = f"[new(record, ({', '.join(values)},)) for element in elements]"
    source = f"def make(elements):\n    return {body}\n"
    exec(compile(source, f"<part {part.columns[0][0]}>", "exec"), names)
    found = _MAKERS[id(part)] = names["make"]
    return found


def _scoped_select(dialect: str, plan: DetailPlan, scope: Scope) -> Any:
    customer_id = bindparam("customer_id", type_=Integer)
    return _statement(dialect, plan, True).where(scope.customers(), C.id == customer_id)


def _scoped_statement(dialect: str, plan: DetailPlan, scope: Scope) -> Any:
    """``_statement`` for one customer (``customer_id``) within ``scope``, built once per plan and
    scope (kept by ``_scoped_query``): a statement built per request made SQLAlchemy walk its
    whole tree for the cache key of its compiled form each time (0.8 ms a request, issue 17's
    profile). ``Scope`` compares by
    partner, assigned admin and plan hint, so one is kept per caller's reach, not per request.
    Frozen into text (``db.engine.frozen``)."""
    return frozen(dialect, _scoped_select(dialect, plan, scope))


Make = Callable[[list[Any]], list[Any]]
Layout = tuple[
    Any,
    tuple[tuple[str, Make, tuple[tuple[str, Make, int], ...]], ...],
    tuple[tuple[str, bool], ...],
]


@lru_cache(maxsize=64)
def _layout(width: int, plan: DetailPlan) -> Layout:
    """The customer's record type; per part of ``plan`` read as rows, in the result's order, its
    name, its ``_maker`` and its nested parts (key in ``Detail.children``, maker, position in an
    element); the rendered parts' names in their columns' order, each with whether it comes
    with its count (a list of enum names does not: no object): worked out once per plan, not
    per row."""
    record = _record_type(tuple(c.name for c in CUSTOMER_COLUMNS[:width]))
    parts: list[tuple[str, Make, tuple[tuple[str, Make, int], ...]]] = []
    rendered: list[tuple[str, bool]] = []
    for name, _ in plan.parts:
        part = _CUSTOMER_PARTS[name]
        spec = plan.spec(name)
        if spec is not None:
            rendered.append((name, bool(spec)))
            continue
        after = len(part.columns) + 1  # position, then the part's columns, then nested arrays
        children = tuple(
            (f"{name}.{child}", _maker(_SUBSCRIPTION_PARTS[child]), after + i)
            for i, (child, _) in enumerate(plan.nested(name))
        )
        parts.append((name, _maker(part), children))
    return record, tuple(parts), tuple(rendered)


def _decode(found: Any, width: int, plan: DetailPlan, start: int | None = None) -> Detail:
    """One result row (the customer's ``width`` columns, then one JSON array per part from
    ``start``, by default right after them), in the loaders' order (SQLite promises no order
    for an aggregate: elements carry their position)."""
    return _decoded(found, width, _layout(width, plan), start)


def _decoded(found: Any, width: int, plan_layout: Layout, start: int | None) -> Detail:
    """``_decode`` with the plan's ``_layout`` looked up once for a page's rows."""
    record, layout, rendered = plan_layout
    row = tuple.__new__(record, tuple(found[:width]))
    parts: dict[str, list[Any]] = {}
    children: dict[str, dict[int, list[Any]]] = {}
    loads = orjson.loads
    first = width if start is None else start
    # The response's JSON already, one column a part after those read as rows, ``(objects,
    # text)`` or the text of a list of enum names: never decoded (``db.queries.customer_render``).
    texts = {}
    vouched = True
    for offset, (name, counted) in enumerate(rendered, first + len(layout)):
        value = found[offset]
        text = value[1] if counted else value
        if text is None:  # a value the statement does not vouch for (``checks``)
            vouched = False
            continue
        texts[name] = RenderedJSON(text, value[0] if counted else 0)
    for offset, (name, make, nested) in enumerate(layout, first):
        raw = found[offset]
        elements = (loads(raw) if isinstance(raw, str | bytes) else raw) or []
        elements.sort(key=_first)
        values = make(elements)
        if name == "statuses":
            values.sort(key=_STATUS_ORDER.__getitem__)
        parts[name] = values
        for key, make_child, index in nested:
            of_child = children[key] = {}
            for parent, element in zip(values, elements, strict=True):
                arrays = element[index] or []
                arrays.sort(key=_first)
                of_child[parent.id] = make_child(arrays)
    return Detail(row=row, parts=parts, children=children, rendered=texts, vouched=vouched)


@lru_cache(maxsize=256)
def _scoped_query(dialect: str, plan: DetailPlan, scope: Scope) -> DriverQuery:
    """``_scoped_statement`` run on the driver's connection (``db.driver_query``)."""
    return DriverQuery(
        _scoped_statement(dialect, plan, scope),
        _checked(dialect, _scoped_select(dialect, plan, scope)),
    )


async def customer_detail(
    session: AsyncSession, *, scope: Scope, id: int, now: datetime, plan: DetailPlan
) -> Detail | None:
    """The customer ``id`` within ``scope`` and the parts ``plan`` names; None when the caller
    does not see it."""
    dialect = session.get_bind().dialect.name
    query = _scoped_query(dialect, plan, scope)
    params = {**part_params(scope, now), "customer_id": id}
    found = await query.first(await request_connection(session), params)
    return None if found is None else _decode(found, len(CUSTOMER_COLUMNS), plan)


def _page_statement(dialect: str, plan: DetailPlan, scope: Scope) -> Any:
    """``_page_select`` frozen into text (``db.engine.frozen``), kept by ``_page_query``."""
    return frozen(dialect, _page_select(dialect, plan, scope))


@lru_cache(maxsize=256)
def _page_query(dialect: str, plan: DetailPlan, scope: Scope) -> DriverQuery:
    """``_page_statement`` run on the driver's connection (``db.driver_query``)."""
    return DriverQuery(
        _page_statement(dialect, plan, scope), _checked(dialect, _page_select(dialect, plan, scope))
    )


def _checked(dialect: str, select: Any) -> Any:
    """``select`` carrying a provisional request's token lookup (``db.token_check``), frozen;
    PostgreSQL only (a lookup on SQLite is no round trip)."""
    return frozen(dialect, with_token_check(select)) if dialect == "postgresql" else None


def _page_select(dialect: str, plan: DetailPlan, scope: Scope) -> Any:
    """``_statement`` for the customers ``ids`` within ``scope``: the ids as one array
    (PostgreSQL) or one JSON text (SQLite), so the text is the same for every page size and one
    prepared statement serves them all (as ``db.queries.customers._Batch``)."""
    if dialect == "postgresql":
        ids: Any = C.id == any_(bindparam("ids", type_=ARRAY(Integer)))
    else:
        keys = func.json_each(bindparam("ids", type_=String)).table_valued("value")
        ids = C.id.in_(select(keys.c.value))
    return _statement(dialect, plan, False).where(ids, scope.customers())


def page_details(rows: Sequence[Any], width: int, plan: DetailPlan) -> dict[int, Detail]:
    """The parts of a page's customers read with the page (``part_columns`` last in each of
    ``rows``, after the customer's ``width`` columns and the page's own), by customer id."""
    start = len(rows[0]) - part_count(plan) if rows else 0
    layout = _layout(width, plan)
    return {found[0]: _decoded(found, width, layout, start) for found in rows}


async def customers_parts(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int], now: datetime, plan: DetailPlan
) -> dict[int, Detail]:
    """The parts ``plan`` names of those of the customers ``ids`` that ``scope`` sees (a page's),
    by customer id; one statement for the page where the loaders took one per relationship."""
    dialect = session.get_bind().dialect.name
    keys: Any = list(ids) if dialect == "postgresql" else orjson.dumps(list(ids)).decode()
    params = {"ids": keys, **part_params(scope, now)}
    rows = await _page_query(dialect, plan, scope).all(await request_connection(session), params)
    layout = _layout(1, plan)
    return {found[0]: _decoded(found, 1, layout, None) for found in rows}
