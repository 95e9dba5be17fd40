"""The parts of a customer: its relationships as the statements that read them with it.

Each relationship of a customer (statuses, products, tags, subscriptions with their license
lines, invoices, orders and tags, trials, assigned admins) is a ``_Part``: the columns, parent
condition, order and cap its loader reads (``graph.loaders``). ``part_columns`` makes each part
a correlated subquery aggregating its rows into one JSON array, selected in the statement of
the customer (``db.queries.customer_detail``) or of a page of customers
(``db.queries.customer_pages``, ``db.queries.customer_walks``); a part ``DetailPlan.rendered``
names is built as the response's own JSON (``db.queries.customer_render``). Decoding the rows
is ``db.queries.customer_detail``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, cast, func, select

from db.engine import written_limit
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
    _T,
    ADMIN_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    TAG_COLUMNS,
)
from db.queries.customer_render import Spec, in_order, json_array, json_object
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

    def nested(self, name: str) -> tuple[tuple[str, int | None], ...]:
        """The parts read below each element of the customer part ``name`` (subscriptions,
        trials), with their caps."""
        if name == "subscriptions":
            return self.subscription_parts
        if name == "trials":
            return self.trial_parts
        return ()

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
    # A rendered part whose elements are kept in the order they are limited in (all but a
    # capped part rendered in another order) is aggregated in its subquery's order: no
    # position, no sort inside the aggregate (``json_array``).
    in_place = spec is not None and (cap is None or not part.rendered_order)
    if spec is not None and part.rendered_order:
        order = part.rendered_order
    kept = range(len(part.columns)) if spec is None else _read_by(part, spec)
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
    rows = inner.subquery()
    if spec is not None:
        element = _element(dialect, part, rows, spec)
        # FROM named: an element may read its rows only through a nested part (``licenses``).
        position = None if in_place else rows.c.n
        return select(json_array(element, position)).select_from(rows).scalar_subquery()
    values: list[Any] = [rows.c.n, *[rows.c[f"c{i}"] for i in range(len(part.columns))]]
    for child, child_cap in nested:
        values.append(_array(dialect, _SUBSCRIPTION_PARTS[child], rows, rows.c.c0, child_cap))
    if dialect == "postgresql":
        return select(func.json_agg(func.json_build_array(*values))).scalar_subquery()
    # SQLite: a nested array arrives as text unless it is passed through json() again.
    values = [func.json(v) if i > len(part.columns) else v for i, v in enumerate(values)]
    return select(func.json_group_array(func.json_array(*values))).scalar_subquery()


def _read_by(part: _Part, spec: Spec) -> list[int]:
    """The positions of the columns of ``part`` that its rendered elements read (the first, its
    key, always: nested parts are correlated to it): the others would only widen every row
    the subquery sorts and limits."""
    names: set[str] = set()

    def collect(entries: Spec) -> None:
        for entry in entries:
            kind = entry[1]
            if kind in ("col", "time"):
                names.add(entry[2])
            elif kind == "gid":
                names.add(entry[3])
            elif kind == "excess":
                names.update(entry[2:4])
            elif kind == "obj":
                collect(entry[2])

    collect(spec)
    return sorted({0, *(part.index(name) for name in names)})


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
        part = _array(dialect, _CUSTOMER_PARTS[name], C.id.table, C.id, cap, plan.nested(name))
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


def part_params(scope: Scope, now: datetime) -> dict[str, Any]:
    """The parameters ``part_columns`` take."""
    return {"partner_id": scope.partner_id, "now": now}
