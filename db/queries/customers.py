"""The customer directory: filtered, searched, keyset-paged customer lists and their children.

Status filters read ``customer_status_span`` (see ``db.status``) with the clock's ``now``; product
filters read ``customer_product``; both are kept in step with subscriptions by the writes that
change them. Every batch function here is one ``WHERE key IN (...)`` statement and returns its
results keyed by the parent id, for the per-request loaders of ``graph.loaders``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    exists,
    false,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.enums import CustomerStatus, SubscriptionKind, SubscriptionState
from db.models import (
    Admin,
    Customer,
    CustomerAssignment,
    CustomerProduct,
    CustomerStatusSpan,
    CustomerTag,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    SubscriptionTag,
    Tag,
)
from db.scope import Scope
from db.types import END_OF_TIME, UTCDateTime

C = Customer.__table__.c  # type: ignore[attr-defined]
S = Subscription.__table__.c  # type: ignore[attr-defined]
SPAN = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]


class CustomerOrder(StrEnum):
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    CREATED_AT_DESC = "CREATED_AT_DESC"
    END_DATE_ASC = "END_DATE_ASC"


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    """What to list: every field optional; lists match any value, fields combine with AND."""

    managed_by: str | None = None
    products: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    subscription_kind: str | None = None
    tag_ids: tuple[int, ...] | None = None
    search: str | None = None


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def status_holds(
    statuses: Sequence[str], now: datetime, customer_id: Any = None, partner_id: int | None = None
) -> Any:
    """EXISTS: one of ``statuses`` holds for the customer at ``now``.

    With ``partner_id`` the test can use ``ix_status_span_now`` (partner, status, valid_to, ...)
    for the whole partner at once, which PostgreSQL's planner prefers for a page at 100,000
    customers (a semi-join) over probing span by span."""
    conditions = [
        SPAN.customer_id == (C.id if customer_id is None else customer_id),
        SPAN.status.in_(list(statuses)),
        SPAN.valid_from <= now,
        SPAN.valid_to > now,
    ]
    if partner_id is not None:
        conditions.append(SPAN.partner_id == partner_id)
    return exists().where(*conditions)


def nearest_end(now: datetime) -> Any:
    """End date of the customer's soonest-ending in-force subscription (open end when none)."""
    sub = (
        select(func.min(S.end_date))
        .where(
            S.customer_id == C.id,
            S.state == SubscriptionState.ACTIVE.value,
            S.start_date <= now,
            S.end_date > now,
        )
        .scalar_subquery()
    )
    return func.coalesce(sub, literal(END_OF_TIME, UTCDateTime()))


def _filter_sets(
    scope: Scope, query: CustomerQuery, now: datetime
) -> list[tuple[Any, Any, list[Any]]]:
    """Each filter on a derived table as (its customer id column, the condition naming the
    partner or None, its own conditions).

    In probe order: the filters that usually keep the fewest customers first (a tag, then a
    status), so that a customer failing them is not probed further.
    """
    cp = CustomerProduct.__table__.c  # type: ignore[attr-defined]
    ct = CustomerTag.__table__.c  # type: ignore[attr-defined]
    sets: list[tuple[Any, Any, list[Any]]] = []
    if query.tag_ids:
        # A tag belongs to one partner (and so do the customers it is on): its id alone selects
        # the links, from the index alone.
        sets.append((ct.customer_id, None, [ct.tag_id.in_(list(query.tag_ids))]))
    kind_status: list[str] = []
    if query.subscription_kind is not None:
        kind_status = [
            CustomerStatus.TRIAL.value
            if query.subscription_kind == SubscriptionKind.TRIAL
            else CustomerStatus.ACTIVE.value
        ]
    for wanted in (list(query.statuses or ()), kind_status):
        if wanted:
            sets.append(
                (
                    SPAN.customer_id,
                    SPAN.partner_id == scope.partner_id,
                    [
                        SPAN.status.in_(wanted),
                        SPAN.valid_from <= now,
                        SPAN.valid_to > now,
                    ],
                )
            )
    if query.products:
        sets.append(
            (
                cp.customer_id,
                cp.partner_id == scope.partner_id,
                [cp.product.in_(list(query.products))],
            )
        )
    return sets


def _row_conditions(scope: Scope, query: CustomerQuery) -> list[Any]:
    """Conditions answered by the customer row itself (and the scope)."""
    conditions: list[Any] = [scope.customers()]
    if query.managed_by is not None:
        conditions.append(C.managed_by == query.managed_by)
    if any(v is not None and not v for v in (query.products, query.statuses, query.tag_ids)):
        conditions.append(false())  # an empty list has no value to match
    if query.search:
        conditions.append(C.name_key.like(_like_pattern(query.search), escape="\\"))
    return conditions


def customer_conditions(
    scope: Scope, query: CustomerQuery, now: datetime, *, as_sets: bool = False
) -> list[Any]:
    """Conditions on ``customer`` for ``query`` within ``scope``.

    Without ``as_sets`` each filter is a correlated EXISTS that names the partner, so that the
    planner may join whole sets through the partner-leading indexes. A count has to visit every
    match, so with ``as_sets`` the filters become ``id IN (SELECT customer_id ...)`` over the
    indexed derived tables: the database then starts from the (usually much smaller) set of
    matching ids instead of probing every customer of the partner.
    """
    conditions = _row_conditions(scope, query)
    for customer_id, partner, where in _filter_sets(scope, query, now):
        if partner is not None:
            where = [partner, *where]
        if as_sets:
            conditions.append(C.id.in_(select(customer_id).where(*where)))
        else:
            conditions.append(exists().where(customer_id == C.id, *where))
    return conditions


CUSTOMER_COLUMNS = (
    C.id,
    C.partner_id,
    C.name,
    C.created_at,
    C.managed_by,
    C.last_admin_sign_in_at,
    C.external_id,
)


def _order_keys(order: CustomerOrder, now: datetime) -> tuple[list[Any], bool]:
    """Key expressions (the last is always the id) and whether they descend."""
    if order in (CustomerOrder.NAME_ASC, CustomerOrder.NAME_DESC):
        return [C.name_key, C.id], order is CustomerOrder.NAME_DESC
    if order in (CustomerOrder.CREATED_AT_ASC, CustomerOrder.CREATED_AT_DESC):
        return [C.created_at, C.id], order is CustomerOrder.CREATED_AT_DESC
    return [nearest_end(now), C.id], False


def order_key_types(order: CustomerOrder) -> tuple[str, str]:
    """How each key value travels in a cursor ('str', 'datetime' or 'int')."""
    if order in (CustomerOrder.NAME_ASC, CustomerOrder.NAME_DESC):
        return ("str", "int")
    return ("datetime", "int")


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    keys: list[tuple[Any, ...]]
    has_next: bool


async def customers_page(
    session: AsyncSession,
    *,
    scope: Scope,
    query: CustomerQuery,
    order: CustomerOrder,
    now: datetime,
    first: int,
    after: tuple[Any, ...] | None = None,
) -> Page:
    """One keyset page of customers (``first`` rows after the ``after`` key)."""
    keys, descending = _order_keys(order, now)
    conditions = customer_conditions(scope, query, now)
    if after is not None:
        row_key, cursor_key = tuple_(*keys), tuple_(*after)
        conditions.append(row_key < cursor_key if descending else row_key > cursor_key)
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    stmt: Select[Any] = (
        select(*CUSTOMER_COLUMNS, *labelled)
        .where(and_(*conditions))
        .order_by(*[k.desc() if descending else k.asc() for k in keys])
        .limit(first + 1)
    )
    result = (await session.execute(stmt)).all()
    has_next = len(result) > first
    result = result[:first]
    n = len(keys)
    return Page(
        rows=result,
        keys=[tuple(row[-n:]) for row in result],
        has_next=has_next,
    )


async def count_customers(
    session: AsyncSession, *, scope: Scope, query: CustomerQuery, now: datetime
) -> int:
    stmt = (
        select(func.count())
        .select_from(Customer)
        .where(and_(*customer_conditions(scope, query, now, as_sets=True)))
    )
    return int((await session.execute(stmt)).scalar_one())


async def customers_by_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    stmt = select(*CUSTOMER_COLUMNS).where(scope.customers(), C.id.in_(list(ids)))
    rows: Sequence[Any] = (await session.execute(stmt)).all()
    return {row.id: row for row in rows}


# --- children of customers (batch functions for loaders) -------------------------------------

_STATUS_ORDER = {status.value: i for i, status in enumerate(CustomerStatus)}


async def statuses_by_customer_ids(
    session: AsyncSession, *, ids: Sequence[int], now: datetime
) -> dict[int, list[str]]:
    rows = await session.execute(
        select(SPAN.customer_id, SPAN.status).where(
            SPAN.customer_id.in_(list(ids)), SPAN.valid_from <= now, SPAN.valid_to > now
        )
    )
    out: dict[int, list[str]] = defaultdict(list)
    for customer_id, status in rows:
        out[customer_id].append(status)
    for values in out.values():
        values.sort(key=_STATUS_ORDER.__getitem__)
    return out


async def products_by_customer_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[str]]:
    cp = CustomerProduct.__table__.c  # type: ignore[attr-defined]
    rows = await session.execute(
        select(cp.customer_id, cp.product).where(cp.customer_id.in_(list(ids))).order_by(cp.product)
    )
    out: dict[int, list[str]] = defaultdict(list)
    for customer_id, product in rows:
        out[customer_id].append(product)
    return out


TAG_COLUMNS = tuple(Tag.__table__.c)  # type: ignore[attr-defined]


async def tags_by_customer_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    ct = CustomerTag.__table__.c  # type: ignore[attr-defined]
    t = Tag.__table__.c  # type: ignore[attr-defined]
    rows = await session.execute(
        select(ct.customer_id, *TAG_COLUMNS)
        .join(Tag, t.id == ct.tag_id)
        .where(ct.customer_id.in_(list(ids)))
        .order_by(t.name_key, t.id)
    )
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[row.customer_id].append(row)
    return out


SUBSCRIPTION_COLUMNS = tuple(Subscription.__table__.c)  # type: ignore[attr-defined]


async def subscriptions_by_customer_ids(
    session: AsyncSession, *, ids: Sequence[int], kind: str | None = None
) -> dict[int, list[Row[Any]]]:
    """Subscriptions of each customer, newest first (by start date, then id)."""
    conditions: list[ColumnElement[bool]] = [S.customer_id.in_(list(ids))]
    if kind is not None:
        conditions.append(S.kind == kind)
    rows = await session.execute(
        select(*SUBSCRIPTION_COLUMNS)
        .where(*conditions)
        .order_by(S.customer_id, S.start_date.desc(), S.id.desc())
    )
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[row.customer_id].append(row)
    return out


async def subscriptions_by_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    rows = await session.execute(
        select(*SUBSCRIPTION_COLUMNS).where(
            S.id.in_(list(ids)), S.partner_id == scope.partner_id, scope.customers(S.customer_id)
        )
    )
    return {row.id: row for row in rows}


async def _by_subscription(
    session: AsyncSession, table: Any, ids: Sequence[int], order: Sequence[Any]
) -> dict[int, list[Row[Any]]]:
    c = table.__table__.c
    rows = await session.execute(
        select(*c).where(c.subscription_id.in_(list(ids))).order_by(c.subscription_id, *order)
    )
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[row.subscription_id].append(row)
    return out


async def license_lines_by_subscription_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    c = LicenseLine.__table__.c  # type: ignore[attr-defined]
    return await _by_subscription(session, LicenseLine, ids, [c.product, c.license_type])


async def invoices_by_subscription_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    c = Invoice.__table__.c  # type: ignore[attr-defined]
    return await _by_subscription(session, Invoice, ids, [c.issued_at.desc(), c.id.desc()])


async def orders_by_subscription_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    c = Order.__table__.c  # type: ignore[attr-defined]
    return await _by_subscription(session, Order, ids, [c.placed_at.desc(), c.id.desc()])


async def tags_by_subscription_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    st = SubscriptionTag.__table__.c  # type: ignore[attr-defined]
    t = Tag.__table__.c  # type: ignore[attr-defined]
    rows = await session.execute(
        select(st.subscription_id, *TAG_COLUMNS)
        .join(Tag, t.id == st.tag_id)
        .where(st.subscription_id.in_(list(ids)))
        .order_by(t.name_key, t.id)
    )
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[row.subscription_id].append(row)
    return out


ADMIN_COLUMNS = tuple(Admin.__table__.c)  # type: ignore[attr-defined]


async def assigned_admins_by_customer_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    ca = CustomerAssignment.__table__.c  # type: ignore[attr-defined]
    a = Admin.__table__.c  # type: ignore[attr-defined]
    rows = await session.execute(
        select(ca.customer_id, ca.assigned_at, *ADMIN_COLUMNS)
        .join(Admin, a.id == ca.admin_id)
        .where(ca.customer_id.in_(list(ids)))
        .order_by(ca.customer_id, a.name, a.id)
    )
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[row.customer_id].append(row)
    return out


async def in_force_totals_by_customer_ids(
    session: AsyncSession, *, ids: Sequence[int], now: datetime
) -> dict[int, tuple[datetime | None, int, int]]:
    """Per customer: nearest end of an in-force subscription, licenses purchased and assigned
    over the license lines of its in-force subscriptions."""
    L = LicenseLine.__table__.c  # type: ignore[attr-defined]
    in_force = and_(
        S.customer_id.in_(list(ids)),
        S.state == SubscriptionState.ACTIVE.value,
        S.start_date <= now,
        S.end_date > now,
    )
    ends = await session.execute(
        select(S.customer_id, func.min(S.end_date)).where(in_force).group_by(S.customer_id)
    )
    sums = await session.execute(
        select(S.customer_id, func.sum(L.purchased), func.sum(L.assigned))
        .join(LicenseLine, L.subscription_id == S.id)
        .where(in_force)
        .group_by(S.customer_id)
    )
    end_of: dict[int, datetime | None] = {}
    for customer_id, end in ends:
        # min() over a TypeDecorator column comes back raw on SQLite.
        end_of[customer_id] = UTCDateTime().process_result_value(end, session.get_bind().dialect)
    out: dict[int, tuple[datetime | None, int, int]] = {}
    for customer_id, purchased, assigned in sums:
        out[customer_id] = (end_of.get(customer_id), int(purchased or 0), int(assigned or 0))
    for customer_id, end in end_of.items():
        out.setdefault(customer_id, (end, 0, 0))
    return out
