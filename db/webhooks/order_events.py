"""ORDER_CREATED: every order row (``db.queries.orders.place_order``, which trials and the
subscription management mutations share) is told to subscribed endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db.models import Subscription
from db.webhooks.events import WebhookEventName, global_id
from db.webhooks.outbox import Session, emit, iso, subscribers

S = Subscription.__table__.c  # type: ignore[attr-defined]
EVENT = WebhookEventName.ORDER_CREATED


async def emit_order(session: Session, order: Any) -> None:
    """ORDER_CREATED for the order row just written (nothing more when nobody subscribes)."""
    endpoints = await subscribers(session, order.partner_id, EVENT)
    if not endpoints:
        return
    customer_id = (
        await session.execute(select(S.customer_id).where(S.id == order.subscription_id))
    ).scalar_one()
    await emit(
        session,
        order.partner_id,
        EVENT,
        {
            "orderNumber": order.order_number,
            "action": order.action,
            "status": order.status,
            "description": order.description,
            "placedAt": iso(order.placed_at),
            "subscriptionId": global_id("Subscription", order.subscription_id),
            "customerId": global_id("Customer", customer_id),
        },
        customer_id=customer_id,
        now=order.placed_at,
        endpoint_ids=endpoints,
    )
