"""The writes of subscription management (graph/resolvers/subscriptions.py): order set-up,
licence quantities, auto-renew, renewal, cancellation.

Each runs inside the mutation's transaction after ``locked_subscription`` has locked the
customer (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite has one writer) and read the
subscription again, so two changes of one customer's subscriptions run one after the other and
each decides on what the other committed. Licence lines and subscriptions are written with plain
``UPDATE`` statements on their tables, so whatever maintains summaries of them (status spans,
here; licence aggregates kept by the database) applies; the customer's status spans are
refreshed in the same transaction (``refresh``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import SubscriptionKind, SubscriptionState
from db.models import LicenseLine, Subscription
from db.queries.customer_children import SUBSCRIPTION_COLUMNS, subscriptions_by_ids
from db.queries.writes import lock_customers
from db.scope import Scope
from db.status import StatusRules, refresh_status_spans
from db.webhooks.events import WebhookEventName
from db.webhooks.subscription_events import emit_subscription

S = Subscription.__table__.c  # type: ignore[attr-defined]
L = LicenseLine.__table__.c  # type: ignore[attr-defined]


def in_force(sub: Any, now: datetime) -> bool:
    """ACTIVE and start <= now < end (DESIGN.md section 2)."""
    return bool(sub.state == SubscriptionState.ACTIVE and sub.start_date <= now < sub.end_date)


def paid_in_force(sub: Any, now: datetime) -> bool:
    return in_force(sub, now) and sub.kind == SubscriptionKind.PAID


async def locked_subscription(session: AsyncSession, *, scope: Scope, pk: int) -> Any | None:
    """The subscription if ``scope`` sees it, read again once its customer is locked (a change
    committed meanwhile is seen); None when it is unknown, another partner's or out of scope."""
    rows = await subscriptions_by_ids(session, scope=scope, ids=[pk])
    if pk not in rows:
        return None
    await lock_customers(session, [rows[pk].customer_id])
    return (await subscriptions_by_ids(session, scope=scope, ids=[pk])).get(pk)


def _own(scope: Scope, row: Any) -> None:
    """A row changed here was read through ``scope`` (``locked_subscription``)."""
    if row.partner_id != scope.partner_id:
        raise PermissionError("The row is not of the scope's partner.")


async def _subscription_row(session: AsyncSession, *, scope: Scope, pk: int) -> Any:
    found = await session.execute(
        select(*SUBSCRIPTION_COLUMNS).where(S.id == pk, S.partner_id == scope.partner_id)
    )
    return found.one()


async def license_lines(session: AsyncSession, *, scope: Scope, subscription: Any) -> Sequence[Any]:
    """The subscription's licence lines, by product and licence type."""
    _own(scope, subscription)
    rows = await session.execute(
        select(*L)
        .where(L.subscription_id == subscription.id, L.partner_id == scope.partner_id)
        .order_by(L.product, L.license_type)
    )
    return rows.all()


async def set_purchased(session: AsyncSession, *, scope: Scope, line: Any, purchased: int) -> bool:
    """Set the line's purchased count if it still holds the count it was read with (a
    conditional UPDATE: a writer that bypassed the customer lock is detected, never
    overwritten); False when it did not."""
    _own(scope, line)
    result = await session.execute(
        update(LicenseLine)
        .where(L.id == line.id, L.partner_id == scope.partner_id, L.purchased == line.purchased)
        .values(purchased=purchased)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def update_subscription(
    session: AsyncSession, *, scope: Scope, subscription: Any, **values: Any
) -> Any:
    """Write ``values`` on the subscription; the row as it is now."""
    _own(scope, subscription)
    await session.execute(
        update(Subscription)
        .where(S.id == subscription.id, S.partner_id == scope.partner_id)
        .values(**values)
    )
    return await _subscription_row(session, scope=scope, pk=subscription.id)


async def refresh(
    session: AsyncSession,
    *,
    scope: Scope,
    subscription: Any,
    rules: StatusRules,
    now: datetime | None = None,
    change: str = "UPDATED",
) -> None:
    """The customer's status spans and products, from its data as this transaction sees it;
    the change told by webhook (SUBSCRIPTION_CHANGED with ``change``, and the statuses that
    moved at ``now``)."""
    _own(scope, subscription)
    await refresh_status_spans(session, [subscription.customer_id], rules, now=now)
    if now is not None:
        row = await _subscription_row(session, scope=scope, pk=subscription.id)
        await emit_subscription(
            session, WebhookEventName.SUBSCRIPTION_CHANGED, row, now, change=change
        )
