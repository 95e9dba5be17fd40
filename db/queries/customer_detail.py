"""A customer and the relationships a document selects on it, in one statement.

The per-request loaders (``graph.loaders``) answer each relationship with one ``WHERE key IN
(...)`` statement: 11 round trips for issue 8's customer detail, where PostGraphile 4 sends one.
Here every relationship becomes a correlated subquery that aggregates its rows into a JSON
array (PostgreSQL ``json_agg``/``json_build_array``, SQLite ``json_group_array``/``json_array``),
selected next to the customer's own columns: one statement, one round trip.

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
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.driver_query import DriverQuery
from db.engine import frozen, written_limit
from db.enums import CustomerStatus
from db.models import Admin, Customer, Invoice, LicenseLine, Order, Tag
from db.queries.customer_children import (
    _A,
    _CA,
    _CP,
    _CT,
    _I,
    _L,
    _O,
    _ST,
    _STATUS_ORDER,
    _T,
    ADMIN_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    TAG_COLUMNS,
)
from db.queries.customer_render import Spec, in_order, json_array, json_object
from db.queries.customers import CUSTOMER_COLUMNS, SPAN, Record, S, _record_type
from db.scope import Scope
from db.token_check import with_token_check
from db.types import UTCDateTime

C = Customer.__table__.c  # type: ignore[attr-defined]
CUSTOMER_PARTS = ("statuses", "products", "tags", "subscriptions", "trials", "assigned_admins")
SUBSCRIPTION_PARTS = ("license_lines", "invoices", "orders", "tags")


_first = itemgetter(0)


@dataclass(frozen=True)
class DetailPlan:
    """What to load with the customer: per customer part its cap (None: uncapped), and the
    parts of each of its subscriptions and trials (with their caps)."""

    parts: tuple[tuple[str, int | None], ...]
    subscription_parts: tuple[tuple[str, int | None], ...] = ()
    trial_parts: tuple[tuple[str, int | None], ...] = ()
    # Parts PostgreSQL renders as the response's JSON (``db.queries.customer_render``): their
    # ``Detail.parts`` value is that JSON decoded, and the nested parts above do not apply.
    rendered: tuple[tuple[str, Spec], ...] = ()

    def __post_init__(self) -> None:
        # Kept: a plan keys several caches a request (its statements, its layout), and hashing
        # its rendered specs (nested tuples of every selected field) each time cost more than
        # the lookups.
        value = hash((self.parts, self.subscription_parts, self.trial_parts, self.rendered))
        object.__setattr__(self, "_hash", value)

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def spec(self, name: str) -> Spec | None:
        for part, spec in self.rendered:
            if part == name:
                return spec
        return None


@dataclass(frozen=True)
class Detail:
    """The customer's row and, per part asked for, the rows its loader would have returned
    (for a subscription or trial: ``children[part][subscription id]``)."""

    row: Record
    parts: dict[str, list[Any]]
    children: dict[str, dict[int, list[Any]]]


# Text of an instant -> the instant, for the values a page repeats (a tag's creation on every
# customer it is on, the same term ends): bounded, cleared when full. Datetimes are immutable.
_PARSED: dict[str, datetime] = {}
_PARSED_MAX = 8192
_parse = datetime.fromisoformat


def _parse_datetime(value: Any) -> datetime | None:
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
        parsed = _parse(value)
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


@dataclass(frozen=True)
class _Part:
    """A relationship: its columns (named as in the loader's result), its condition on the
    parent id, its order and, for subscriptions, the position of nested parts."""

    columns: tuple[tuple[str, Any], ...]
    parent: Any  # the column holding the parent's id
    where: tuple[Any, ...]
    order: tuple[Any, ...]
    joins: tuple[tuple[Any, Any], ...] = ()
    scalar: bool = False  # a list of one column's values (statuses, products)
    # The order of a rendered part when it is not ``order`` (statuses: their enum's, in which
    # Python sorts them otherwise).
    rendered_order: tuple[Any, ...] = ()

    def index(self, name: str) -> int:
        """The position of the column ``name`` (the first so named)."""
        for i, (column_name, _) in enumerate(self.columns):
            if column_name == name:
                return i
        raise KeyError(name)


def _named(*columns: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((c.name, c) for c in columns)


_PARTNER: Any = bindparam("partner_id")
_NOW = bindparam("now", type_=UTCDateTime())
_SUB_ORDER = (S.start_date.desc(), S.id.desc())
_TAG_ORDER = (_T.name_key, _T.id)
_TAG_JOIN = (Tag, _T.id == _CT.tag_id)

_CUSTOMER_PARTS: dict[str, _Part] = {
    "statuses": _Part(
        _named(SPAN.status),
        SPAN.customer_id,
        (SPAN.partner_id == _PARTNER, SPAN.valid_from <= _NOW, SPAN.valid_to > _NOW),
        (),
        scalar=True,
        rendered_order=(in_order([status.value for status in CustomerStatus], SPAN.status),),
    ),
    "products": _Part(
        _named(_CP.product),
        _CP.customer_id,
        (_CP.partner_id == _PARTNER,),
        (_CP.product,),
        (),
        True,
    ),
    "tags": _Part(
        _named(_CT.customer_id, *TAG_COLUMNS),
        _CT.customer_id,
        (_CT.partner_id == _PARTNER,),
        _TAG_ORDER,
        (_TAG_JOIN,),
    ),
    "subscriptions": _Part(
        _named(*SUBSCRIPTION_COLUMNS), S.customer_id, (S.partner_id == _PARTNER,), _SUB_ORDER
    ),
    "trials": _Part(
        _named(*SUBSCRIPTION_COLUMNS),
        S.customer_id,
        (S.partner_id == _PARTNER, S.kind == "TRIAL"),
        _SUB_ORDER,
    ),
    "assigned_admins": _Part(
        _named(_CA.customer_id, _CA.assigned_at, *ADMIN_COLUMNS),
        _CA.customer_id,
        (_CA.partner_id == _PARTNER,),
        (_A.name, _A.id),
        ((Admin, _A.id == _CA.admin_id),),
    ),
}


def _by_subscription(table: Any, *order: Any) -> _Part:
    c = table.__table__.c
    return _Part(_named(*c), c.subscription_id, (c.partner_id == _PARTNER,), order)


_SUBSCRIPTION_PARTS: dict[str, _Part] = {
    "license_lines": _by_subscription(LicenseLine, _L.product, _L.license_type),
    "invoices": _by_subscription(Invoice, _I.issued_at.desc(), _I.id.desc()),
    "orders": _by_subscription(Order, _O.placed_at.desc(), _O.id.desc()),
    "tags": _Part(
        _named(_ST.subscription_id, *TAG_COLUMNS),
        _ST.subscription_id,
        (_ST.partner_id == _PARTNER,),
        _TAG_ORDER,
        ((Tag, _T.id == _ST.tag_id),),
    ),
}


def _array(
    dialect: str,
    part: _Part,
    parent: Any,
    parent_id: Any,
    cap: int | None,
    nested: Any = (),
    spec: Spec | None = None,
) -> Any:
    """The part's rows for the parent ``parent_id`` as one JSON array of arrays
    ``[position, column values..., nested arrays...]`` (a scalar subquery); with ``spec``
    (PostgreSQL), as the response's JSON (``db.queries.customer_render``)."""
    order = part.order or (part.columns[0][1],)
    if spec is not None and part.rendered_order:
        order = part.rendered_order
    position = func.row_number().over(order_by=order)
    inner = select(
        position.label("n"), *[column.label(f"c{i}") for i, (_, column) in enumerate(part.columns)]
    )
    for table, on in part.joins:
        inner = inner.join(table, on)
    # Correlated to the parent row explicitly: a subquery in FROM is not correlated by default.
    inner = inner.where(part.parent == parent_id, *part.where).correlate(parent)
    inner = inner.order_by(*(part.order or (part.columns[0][1],)))
    if cap is not None:
        inner = inner.limit(written_limit(cap))
    rows = inner.subquery()
    if spec is not None:
        return select(json_array(_element(dialect, part, rows, spec), rows.c.n)).scalar_subquery()
    values: list[Any] = [rows.c.n, *[rows.c[f"c{i}"] for i in range(len(part.columns))]]
    for child, child_cap in nested:
        values.append(_array(dialect, _SUBSCRIPTION_PARTS[child], rows, rows.c.c0, child_cap))
    if dialect == "postgresql":
        return select(func.json_agg(func.json_build_array(*values))).scalar_subquery()
    # SQLite: a nested array arrives as text unless it is passed through json() again.
    values = [func.json(v) if i > len(part.columns) else v for i, v in enumerate(values)]
    return select(func.json_group_array(func.json_array(*values))).scalar_subquery()


def _element(dialect: str, part: _Part, rows: Any, spec: Spec) -> Any:
    """One rendered element of ``part`` for a row of ``rows`` (its columns ``c0``...)."""
    if not spec:  # a list of the part's one column
        return rows.c.c0

    def column(name: str) -> Any:
        return rows.c[f"c{part.index(name)}"]

    def nested(child: str, cap: int | None, child_spec: Spec) -> Any:
        return _array(dialect, _SUBSCRIPTION_PARTS[child], rows, rows.c.c0, cap, (), child_spec)

    return json_object(spec, column, nested)


@lru_cache(maxsize=64)
def _statement(dialect: str, plan: DetailPlan, whole: bool) -> Any:
    """The customer's columns (only its id unless ``whole``) and a JSON array per part."""
    columns: list[ColumnElement[Any]] = list(CUSTOMER_COLUMNS) if whole else [C.id]
    return select(*columns, *part_columns(dialect, plan))


@lru_cache(maxsize=64)
def part_columns(dialect: str, plan: DetailPlan) -> tuple[ColumnElement[Any], ...]:
    """One JSON array per part of ``plan``, correlated to the ``customer`` row of the statement
    they are selected in (labelled by part): the parts of a page's customers read with the page
    itself (``db.queries.customer_pages``) or of ``_statement``. The rendered parts
    (``plan.rendered``) come last, together as one JSON array of their arrays (one text to
    decode a customer instead of one a part: ~6 a customer of a directory page). They take the
    parameters ``partner_id`` and ``now``; ``part_count`` columns in all."""
    if plan.rendered and dialect != "postgresql":
        raise ValueError("only PostgreSQL renders")
    columns: list[ColumnElement[Any]] = []
    rendered: list[Any] = []
    for name, cap in plan.parts:
        spec = plan.spec(name)
        if spec is not None:
            rendered.append(_array(dialect, _CUSTOMER_PARTS[name], C.id.table, C.id, cap, (), spec))
            continue
        nested: Sequence[tuple[str, int | None]] = ()
        if name == "subscriptions":
            nested = plan.subscription_parts
        elif name == "trials":
            nested = plan.trial_parts
        part = _array(dialect, _CUSTOMER_PARTS[name], C.id.table, C.id, cap, nested)
        if dialect == "postgresql":
            # As text: decoded by orjson here rather than by the driver's json codec.
            part = cast(part, Text)
        columns.append(part.label(name))
    if rendered:
        columns.append(cast(func.json_build_array(*rendered), Text).label("rendered"))
    return tuple(columns)


def part_count(plan: DetailPlan) -> int:
    """The columns ``part_columns`` selects for ``plan``."""
    return len(plan.parts) - len(plan.rendered) + (1 if plan.rendered else 0)


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
    Any, tuple[tuple[str, Make, tuple[tuple[str, Make, int], ...]], ...], tuple[str, ...]
]


@lru_cache(maxsize=64)
def _layout(width: int, plan: DetailPlan) -> Layout:
    """The customer's record type; per part of ``plan`` read as rows, in the result's order, its
    name, its ``_maker`` and its nested parts (key in ``Detail.children``, maker, position in an
    element); the rendered parts' names in their column's order: worked out once per plan, not
    per row."""
    record = _record_type(tuple(c.name for c in CUSTOMER_COLUMNS[:width]))
    parts: list[tuple[str, Make, tuple[tuple[str, Make, int], ...]]] = []
    rendered: list[str] = []
    for name, _ in plan.parts:
        part = _CUSTOMER_PARTS[name]
        if plan.spec(name) is not None:
            rendered.append(name)
            continue
        nested: Sequence[tuple[str, int | None]] = ()
        if name == "subscriptions":
            nested = plan.subscription_parts
        elif name == "trials":
            nested = plan.trial_parts
        after = len(part.columns) + 1  # position, then the part's columns, then nested arrays
        children = tuple(
            (f"{name}.{child}", _maker(_SUBSCRIPTION_PARTS[child]), after + i)
            for i, (child, _) in enumerate(nested)
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
    if rendered:  # the response's JSON already, in the column after the parts read as rows
        parts.update(zip(rendered, loads(found[first + len(layout)]), strict=True))
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
    return Detail(row=row, parts=parts, children=children)


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
    found = await query.first(await session.connection(), params)
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


def part_params(scope: Scope, now: datetime) -> dict[str, Any]:
    """The parameters ``part_columns`` take."""
    return {"partner_id": scope.partner_id, "now": now}


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
    rows = await _page_query(dialect, plan, scope).all(await session.connection(), params)
    layout = _layout(1, plan)
    return {found[0]: _decoded(found, 1, layout, None) for found in rows}
