"""The parts of a customer: its relationships as the statements that read them with it.

Each relationship of a customer (statuses, products, tags, subscriptions with their license
lines, invoices, orders and tags, trials, assigned admins) is a ``_Part``: the columns, parent
condition, order and cap its loader reads (``graph.loaders``). ``part_columns`` makes each part
a correlated subquery aggregating its rows into one JSON array, selected in the statement of
the customer (``db.queries.customer_detail``) or of a page of customers
(``db.queries.customer_pages``, ``db.queries.customer_walks``); a part ``DetailPlan.rendered``
names is built as the response's own JSON text (``db.queries.customer_render``), with the number
of objects it holds. Decoding the rows is ``db.queries.customer_detail``'s.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, reduce
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
)

from db.engine import written_limit
from db.enums import CustomerStatus, Product
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
    _T,
    ADMIN_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    TAG_COLUMNS,
)
from db.queries.customer_render import (
    Spec,
    checks,
    concat,
    in_order,
    json_elements,
    json_object,
    json_value,
    objects,
    one_of,
    vouched,
)
from db.queries.customers import SPAN, S
from db.scope import Scope
from db.types import UTCDateTime

C = Customer.__table__.c  # type: ignore[attr-defined]
CUSTOMER_PARTS = ("statuses", "products", "tags", "subscriptions", "trials", "assigned_admins")
SUBSCRIPTION_PARTS = ("license_lines", "invoices", "orders", "tags")


@dataclass(frozen=True)
class DetailPlan:
    """What to load with the customer: per customer part its cap (None: uncapped), and the
    parts of each of its subscriptions and trials (with their caps)."""

    parts: tuple[tuple[str, int | None], ...]
    subscription_parts: tuple[tuple[str, int | None], ...] = ()
    trial_parts: tuple[tuple[str, int | None], ...] = ()
    # Parts PostgreSQL renders as the response's JSON (``db.queries.customer_render``): their
    # value is that JSON's text (``Detail.rendered``), and the nested parts above do not apply.
    rendered: tuple[tuple[str, Spec], ...] = ()

    def __post_init__(self) -> None:
        # Kept: a plan keys several caches a request (its statements, its layout), and hashing
        # its rendered specs (nested tuples of every selected field) each time cost more than
        # the lookups.
        value = hash((self.parts, self.subscription_parts, self.trial_parts, self.rendered))
        object.__setattr__(self, "_hash", value)

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def nested(self, name: str) -> tuple[tuple[str, int | None], ...]:
        """The parts read below each element of the customer part ``name`` (subscriptions,
        trials), with their caps."""
        if name == "subscriptions":
            return self.subscription_parts
        if name == "trials":
            return self.trial_parts
        return ()

    def ordinary(self) -> DetailPlan:
        """This plan without rendered parts: every part read as rows (a part the statement did
        not vouch for is read again so, ``customer_render.checks``)."""
        return DetailPlan(self.parts, self.subscription_parts, self.trial_parts)

    def spec(self, name: str) -> Spec | None:
        for part, spec in self.rendered:
            if part == name:
                return spec
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
    # A scalar part's enum names: a rendered value that is none of them is not vouched for
    # (``db.queries.customer_render.checks``).
    names: tuple[str, ...] = ()

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
        names=tuple(status.value for status in CustomerStatus),
    ),
    "products": _Part(
        _named(_CP.product),
        _CP.customer_id,
        (_CP.partner_id == _PARTNER,),
        (_CP.product,),
        (),
        True,
        names=tuple(product.value for product in Product),
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


def _rows(
    part: _Part, parent: Any, parent_id: Any, cap: int | None, spec: Spec | None = None
) -> Any:
    """The part's rows for the parent ``parent_id`` (a subquery correlated to ``parent``): its
    position ``n`` and its columns ``c0``...; rendered as ``spec``, only the columns the
    elements read (the first, the key nested parts are correlated to, always: the others
    would only widen every row sorted and limited), and in the rendered order. A rendered part
    kept in the order it is limited in (all but a capped part rendered in another order) has
    no position: it is aggregated in the order its rows arrive (``json_elements``)."""
    order = part.order or (part.columns[0][1],)
    kept: Any = range(len(part.columns))
    in_place = False
    if spec is not None:
        kept = _read_by(part, spec)
        in_place = cap is None or not part.rendered_order
        if part.rendered_order:
            order = part.rendered_order
    columns = [part.columns[i][1].label(f"c{i}") for i in kept]
    if in_place:
        inner = select(*columns)
    else:
        inner = select(func.row_number().over(order_by=order).label("n"), *columns)
    for table, on in part.joins:
        inner = inner.join(table, on)
    # Correlated to the parent row explicitly: a subquery in FROM is not correlated by default.
    inner = inner.where(part.parent == parent_id, *part.where).correlate(parent)
    inner = inner.order_by(*(order if in_place else part.order or (part.columns[0][1],)))
    if cap is not None:
        inner = inner.limit(written_limit(cap))
    return inner.subquery()


def _position(rows: Any) -> Any:
    """The rows' position column, None when they are aggregated in the order they arrive."""
    return rows.c.n if "n" in rows.c else None


def _read_by(part: _Part, spec: Spec) -> list[int]:
    """The positions of the columns of ``part`` that elements rendered as ``spec`` read, and
    the first."""
    names: set[str] = set()

    def collect(entries: Spec) -> None:
        for entry in entries:
            kind = entry[1]
            if kind in ("col", "enum", "time"):
                names.add(entry[2])
            elif kind == "gid":
                names.add(entry[3])
            elif kind == "excess":
                names.update(entry[2:4])
            elif kind == "obj":
                collect(entry[2])

    collect(spec)
    return sorted({0, *(part.index(name) for name in names)})


def _array(
    dialect: str, part: _Part, parent: Any, parent_id: Any, cap: int | None, nested: Any = ()
) -> Any:
    """The part's rows for the parent ``parent_id`` as one JSON array of arrays
    ``[position, column values..., nested arrays...]`` (a scalar subquery)."""
    rows = _rows(part, parent, parent_id, cap)
    values: list[Any] = [rows.c.n, *[rows.c[f"c{i}"] for i in range(len(part.columns))]]
    for child, child_cap in nested:
        values.append(_array(dialect, _SUBSCRIPTION_PARTS[child], rows, rows.c.c0, child_cap))
    if dialect == "postgresql":
        return select(func.json_agg(func.json_build_array(*values))).scalar_subquery()
    # SQLite: a nested array arrives as text unless it is passed through json() again.
    values = [func.json(v) if i > len(part.columns) else v for i, v in enumerate(values)]
    return select(func.json_group_array(func.json_array(*values))).scalar_subquery()


def _rendered(part: _Part, cap: int | None, spec: Spec) -> Any:
    """The customer part ``part`` rendered as ``spec`` (``db.queries.customer_render``): a
    scalar subquery of one record ``(objects, JSON array)``, which the driver gives as a tuple
    (a scalar subquery has one column; a text ``<objects>:<JSON>`` split in Python copied every
    text, ~35 kB a directory page). The objects are counted beside the text: ``count(*)`` of
    the rows times each element's (``objects``), plus those of each nested part, whose rows are
    counted in the ``LATERAL`` subquery that renders them (a JSON text is not counted again by
    parsing it). A list of enum names (``()``) holds no object: its JSON array alone, a text.
    The JSON is NULL when a row's values are not all ones the ordinary path writes as they are
    (``customer_render.checks``, nested parts' rows included): the part is then read again the
    ordinary way (``graph.detail``)."""
    rows = _rows(part, C.id.table, C.id, cap, spec)
    counted: list[tuple[Any, int]] = []  # per nested part: its LATERAL subquery, its elements'
    conditions: list[Any] = []

    def column(name: str) -> Any:
        return rows.c[f"c{part.index(name)}"]

    def nested(name: str, child_cap: int | None, child_spec: Spec) -> Any:
        if any(entry[1] == "part" for entry in child_spec):  # ``graph.render`` makes none
            raise ValueError(f"a part nested in a nested part: {name}")
        child = _SUBSCRIPTION_PARTS[name]
        below = _rows(child, rows, rows.c.c0, child_cap, child_spec)

        def child_column(column_name: str) -> Any:
            return below.c[f"c{child.index(column_name)}"]

        element = json_object(child_spec, child_column, nested)
        text = concat(["[", json_elements(element, _position(below)), "]"])
        values = [text.label("j"), cast(func.count(), Integer).label("k")]
        child_conditions = checks(child_spec, child_column)
        if child_conditions:
            # NULL without rows: skipped by the parent's ``bool_and``, as a row that passes.
            every = func.bool_and(and_(*child_conditions))
            values.append(every.label("ok"))
        lateral_ = select(*values).select_from(below).lateral()
        counted.append((lateral_, objects(child_spec)))
        if child_conditions:
            conditions.append(lateral_.c.ok)
        return lateral_.c.j

    if not spec:
        element_values = [json_value(rows.c.c0)]
        names = concat(["[", json_elements(element_values, _position(rows)), "]"])
        scalar_checks = [one_of(rows.c.c0, part.names)] if part.names else []
        return select(vouched(names, scalar_checks)).scalar_subquery()
    element = json_object(spec, column, nested)
    conditions[:0] = checks(spec, column)
    terms = [_times(func.count(), objects(spec))]
    joined: Any = rows
    for lateral, each in counted:
        joined = joined.join(lateral, true())
        if each:
            terms.append(_times(func.coalesce(func.sum(lateral.c.k), _ZERO), each))
    count = reduce(operator.add, terms)
    text = vouched(concat(["[", json_elements(element, _position(rows)), "]"]), conditions)
    return select(func.row(count, text)).select_from(joined).scalar_subquery()


_ZERO = literal_column("0", Integer())


def _times(value: Any, factor: int) -> Any:
    return value if factor == 1 else value * literal_column(str(int(factor)), Integer())


@lru_cache(maxsize=64)
def part_columns(dialect: str, plan: DetailPlan) -> tuple[ColumnElement[Any], ...]:
    """One JSON array per part of ``plan``, correlated to the ``customer`` row of the statement
    they are selected in (labelled by part): the parts of a page's customers read with the page
    itself (``db.queries.customer_pages``) or of ``_statement``. The rendered parts
    (``plan.rendered``) come last, one column each (``_rendered``): never decoded, each goes
    into the response as it is (they were one JSON array of their arrays while they were
    decoded, one text to decode a customer instead of one a part). They take the parameters
    ``partner_id`` and ``now``; ``part_count`` columns in all."""
    if plan.rendered and dialect != "postgresql":
        raise ValueError("only PostgreSQL renders")
    columns: list[ColumnElement[Any]] = []
    rendered: list[Any] = []
    for name, cap in plan.parts:
        spec = plan.spec(name)
        if spec is not None:
            rendered.append(_rendered(_CUSTOMER_PARTS[name], cap, spec).label(name))
            continue
        part = _array(dialect, _CUSTOMER_PARTS[name], C.id.table, C.id, cap, plan.nested(name))
        if dialect == "postgresql":
            # As text: decoded by orjson here rather than by the driver's json codec.
            part = cast(part, Text)
        columns.append(part.label(name))
    return (*columns, *rendered)


def part_count(plan: DetailPlan) -> int:
    """The columns ``part_columns`` selects for ``plan``: one a part."""
    return len(plan.parts)


def part_params(scope: Scope, now: datetime) -> dict[str, Any]:
    """The parameters ``part_columns`` take."""
    return {"partner_id": scope.partner_id, "now": now}
