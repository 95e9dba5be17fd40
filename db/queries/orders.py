"""Orders and invoices of subscriptions, numbered per partner.

Every change to a subscription writes one ``subscription_order`` row whose ``action``
(``db.enums.OrderAction``) says what happened; changes that cost something also issue an
``invoice`` (``db.billing`` prices them). Numbers count per partner (``ORD-0000001``,
``INV-0000001``) from ``partner_counter`` rows taken in the writing transaction, so they never
reveal another partner's volume and two concurrent orders never share one; the unique indexes
of migration 0014 guard them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.billing import PAYMENT_TERM
from db.enums import InvoiceStatus, OrderAction, OrderStatus
from db.models import Invoice, Order
from db.queries.counters import INVOICE, SUBSCRIPTION_ORDER, next_number, start_counter
from db.types import inserted_id
from db.webhooks.order_events import emit_order

ORDERS = Order.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
O = ORDERS.c  # noqa: E741
I = INVOICES.c  # noqa: E741


async def _number(session: AsyncSession, partner_id: int, name: str, table: Any) -> int:
    used = select(func.count()).select_from(table).where(table.c.partner_id == partner_id)
    await start_counter(session, partner_id=partner_id, name=name, after=used.scalar_subquery())
    return await next_number(session, partner_id=partner_id, name=name)


async def place_order(
    session: AsyncSession,
    *,
    partner_id: int,
    subscription_id: int,
    action: OrderAction,
    description: str,
    now: datetime,
    status: OrderStatus = OrderStatus.COMPLETED,
) -> Any:
    """Write one order row; the row."""
    number = await _number(session, partner_id, SUBSCRIPTION_ORDER, ORDERS)
    result = await session.execute(
        insert(Order).values(
            partner_id=partner_id,
            subscription_id=subscription_id,
            order_number=f"ORD-{number:07d}",
            placed_at=now,
            action=action.value,
            description=description[:500],
            status=status.value,
        )
    )
    order_id = inserted_id(result)
    row = (await session.execute(select(*O).where(O.id == order_id))).one()
    await emit_order(session, row)
    return row


async def settle_orders(
    session: AsyncSession, *, partner_id: int, subscription_id: int, status: OrderStatus
) -> None:
    """The subscription's orders still in progress become ``status``: COMPLETED when its
    set-up is done, CANCELLED when it is cancelled before."""
    await session.execute(
        update(Order)
        .where(
            O.partner_id == partner_id,
            O.subscription_id == subscription_id,
            O.status == OrderStatus.IN_PROGRESS.value,
        )
        .values(status=status.value)
    )


async def billing_currency(
    session: AsyncSession, *, partner_id: int, subscription_id: int, default: str
) -> str:
    """The currency the subscription is billed in: that of its latest invoice, else the
    partner's latest invoice's, else ``default``."""
    for condition in (I.subscription_id == subscription_id, I.partner_id == partner_id):
        found = await session.execute(
            select(I.currency)
            .where(I.partner_id == partner_id, condition)
            .order_by(I.issued_at.desc(), I.id.desc())
            .limit(1)
        )
        currency = found.scalar_one_or_none()
        if currency is not None:
            return str(currency)
    return default


async def has_invoice(session: AsyncSession, *, partner_id: int, subscription_id: int) -> bool:
    found = await session.execute(
        select(I.id)
        .where(I.partner_id == partner_id, I.subscription_id == subscription_id)
        .limit(1)
    )
    return found.first() is not None


async def issue_invoice(
    session: AsyncSession,
    *,
    partner_id: int,
    subscription_id: int,
    amount_cents: int,
    currency: str,
    now: datetime,
) -> str:
    """An open invoice issued now, due in 30 days; its number."""
    number = await _number(session, partner_id, INVOICE, INVOICES)
    invoice_number = f"INV-{number:07d}"
    await session.execute(
        insert(Invoice).values(
            partner_id=partner_id,
            subscription_id=subscription_id,
            invoice_number=invoice_number,
            issued_at=now,
            due_at=now + PAYMENT_TERM,
            amount_cents=amount_cents,
            currency=currency,
            status=InvoiceStatus.OPEN.value,
        )
    )
    return invoice_number
