"""The children of customers and subscriptions, for the per-request loaders of ``graph.loaders``
(and the export): statuses, products, tags, subscriptions, licence lines, invoices, orders,
assigned admins and in-force totals, each one ``WHERE key IN (...)`` statement through the
caller's scope, with results keyed by the parent id."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Integer, String, and_, any_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import CustomerStatus, SubscriptionState
from db.models import (
    Admin,
    CustomerAssignment,
    CustomerProduct,
    CustomerTag,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    SubscriptionTag,
    Tag,
)
from db.queries.customers import SPAN, Record, S, records
from db.scope import Scope
from db.types import UTCDateTime

# --- children of customers (batch functions for loaders) -------------------------------------

_STATUS_ORDER = {status.value: i for i, status in enumerate(CustomerStatus)}

# The loaders' statements are built once: building a select costs more Python time (about
# 150 us) than the database spends answering these, and a built statement also keeps its
# cache key.


class _Batch:
    """A loader statement, built once per way of passing the parent keys ``ids``.

    PostgreSQL takes them as one array (``= ANY($1)``), SQLite as one JSON array text
    (``IN (SELECT value FROM json_each(?))``): either way the statement text is the same for
    every number of keys, so one prepared statement serves them all and nothing is rendered per
    key (an expanding ``IN (?, ?, ...)`` cost SQLite about 2 us a key and statement)."""

    def __init__(self, build: Callable[[Callable[[Any], Any]], Any]) -> None:
        self._array = build(lambda column: column == any_(bindparam("ids", type_=ARRAY(Integer))))
        keys = func.json_each(bindparam("ids", type_=String)).table_valued("value")
        self._json = build(lambda column: column.in_(select(keys.c.value)))
        self._expanding = build(lambda column: column.in_(bindparam("ids", expanding=True)))

    async def run(self, session: AsyncSession, ids: Sequence[int], **params: Any) -> Any:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            return await session.execute(self._array, {"ids": list(ids), **params})
        if dialect == "sqlite":
            text = "[" + ",".join(str(int(key)) for key in ids) + "]"
            return await session.execute(self._json, {"ids": text, **params})
        return await session.execute(self._expanding, {"ids": list(ids), **params})


def _grouped(result: Any, key: str) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    rows = records(result)
    if rows:
        at = rows[0]._fields.index(key)
        for row in rows:
            out[row[at]].append(row)
    return out


_STATUSES = _Batch(
    lambda ids_of: select(SPAN.customer_id, SPAN.status).where(
        ids_of(SPAN.customer_id),
        SPAN.partner_id == bindparam("partner_id"),
        SPAN.valid_from <= bindparam("now"),
        SPAN.valid_to > bindparam("now"),
    )
)


async def statuses_by_customer_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int], now: datetime
) -> dict[int, list[str]]:
    rows = await _STATUSES.run(session, ids, now=now, partner_id=scope.partner_id)
    out: dict[int, list[str]] = defaultdict(list)
    for customer_id, status in rows:
        out[customer_id].append(status)
    for values in out.values():
        values.sort(key=_STATUS_ORDER.__getitem__)
    return out


_CP = CustomerProduct.__table__.c  # type: ignore[attr-defined]
_PRODUCTS = _Batch(
    lambda ids_of: (
        select(_CP.customer_id, _CP.product)
        .where(ids_of(_CP.customer_id), _CP.partner_id == bindparam("partner_id"))
        .order_by(_CP.product)
    )
)


async def products_by_customer_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for customer_id, product in await _PRODUCTS.run(session, ids, partner_id=scope.partner_id):
        out[customer_id].append(product)
    return out


TAG_COLUMNS = tuple(Tag.__table__.c)  # type: ignore[attr-defined]
_T = Tag.__table__.c  # type: ignore[attr-defined]
_CT = CustomerTag.__table__.c  # type: ignore[attr-defined]
_ST = SubscriptionTag.__table__.c  # type: ignore[attr-defined]


def _tags_by(owner: Any) -> _Batch:
    """Tags of each owner (``owner``: the customer or subscription column of a link table)."""
    link = owner.table.c
    return _Batch(
        lambda ids_of: (
            select(owner, *TAG_COLUMNS)
            .join(Tag, _T.id == link.tag_id)
            .where(ids_of(owner), link.partner_id == bindparam("partner_id"))
            .order_by(_T.name_key, _T.id)
        )
    )


_CUSTOMER_TAGS = _tags_by(_CT.customer_id)
_SUBSCRIPTION_TAGS = _tags_by(_ST.subscription_id)


async def tags_by_customer_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[Record]]:
    return _grouped(
        await _CUSTOMER_TAGS.run(session, ids, partner_id=scope.partner_id), "customer_id"
    )


SUBSCRIPTION_COLUMNS = tuple(Subscription.__table__.c)  # type: ignore[attr-defined]
_SUBSCRIPTION_ORDER = (S.customer_id, S.start_date.desc(), S.id.desc())
_SUBSCRIPTIONS = _Batch(
    lambda ids_of: (
        select(*SUBSCRIPTION_COLUMNS)
        .where(ids_of(S.customer_id), S.partner_id == bindparam("partner_id"))
        .order_by(*_SUBSCRIPTION_ORDER)
    )
)
_SUBSCRIPTIONS_OF_KIND = _Batch(
    lambda ids_of: (
        select(*SUBSCRIPTION_COLUMNS)
        .where(
            ids_of(S.customer_id),
            S.partner_id == bindparam("partner_id"),
            S.kind == bindparam("kind"),
        )
        .order_by(*_SUBSCRIPTION_ORDER)
    )
)


async def subscriptions_by_customer_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int], kind: str | None = None
) -> dict[int, list[Record]]:
    """Subscriptions of each customer, newest first (by start date, then id)."""
    if kind is None:
        rows = await _SUBSCRIPTIONS.run(session, ids, partner_id=scope.partner_id)
    else:
        rows = await _SUBSCRIPTIONS_OF_KIND.run(
            session, ids, kind=kind, partner_id=scope.partner_id
        )
    return _grouped(rows, "customer_id")


async def subscriptions_by_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, Record]:
    rows = await session.execute(
        select(*SUBSCRIPTION_COLUMNS).where(
            S.id.in_(list(ids)), S.partner_id == scope.partner_id, scope.customers(S.customer_id)
        )
    )
    return {row.id: row for row in rows}


def _by_subscription(table: Any, *order: Any) -> _Batch:
    c = table.__table__.c
    return _Batch(
        lambda ids_of: (
            select(*c)
            .where(ids_of(c.subscription_id), c.partner_id == bindparam("partner_id"))
            .order_by(c.subscription_id, *order)
        )
    )


_L = LicenseLine.__table__.c  # type: ignore[attr-defined]
_I = Invoice.__table__.c  # type: ignore[attr-defined]
_O = Order.__table__.c  # type: ignore[attr-defined]
_LICENSE_LINES = _by_subscription(LicenseLine, _L.product, _L.license_type)
_INVOICES = _by_subscription(Invoice, _I.issued_at.desc(), _I.id.desc())
_ORDERS = _by_subscription(Order, _O.placed_at.desc(), _O.id.desc())


async def license_lines_by_subscription_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[Record]]:
    return _grouped(
        await _LICENSE_LINES.run(session, ids, partner_id=scope.partner_id), "subscription_id"
    )


async def invoices_by_subscription_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[Record]]:
    return _grouped(
        await _INVOICES.run(session, ids, partner_id=scope.partner_id), "subscription_id"
    )


async def orders_by_subscription_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[Record]]:
    return _grouped(await _ORDERS.run(session, ids, partner_id=scope.partner_id), "subscription_id")


async def tags_by_subscription_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[Record]]:
    rows = await _SUBSCRIPTION_TAGS.run(session, ids, partner_id=scope.partner_id)
    return _grouped(rows, "subscription_id")


ADMIN_COLUMNS = tuple(Admin.__table__.c)  # type: ignore[attr-defined]
_CA = CustomerAssignment.__table__.c  # type: ignore[attr-defined]
_A = Admin.__table__.c  # type: ignore[attr-defined]
_ASSIGNED_ADMINS = _Batch(
    lambda ids_of: (
        select(_CA.customer_id, _CA.assigned_at, *ADMIN_COLUMNS)
        .join(Admin, _A.id == _CA.admin_id)
        .where(ids_of(_CA.customer_id), _CA.partner_id == bindparam("partner_id"))
        .order_by(_CA.customer_id, _A.name, _A.id)
    )
)


async def assigned_admins_by_customer_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, list[Record]]:
    rows = await _ASSIGNED_ADMINS.run(session, ids, partner_id=scope.partner_id)
    return _grouped(rows, "customer_id")


async def in_force_totals_by_customer_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int], now: datetime
) -> dict[int, tuple[datetime | None, int, int]]:
    """Per customer: nearest end of an in-force subscription, licenses purchased and assigned
    over the license lines of its in-force subscriptions."""
    L = LicenseLine.__table__.c  # type: ignore[attr-defined]
    in_force = and_(
        S.customer_id.in_(list(ids)),
        S.partner_id == scope.partner_id,
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
