"""The outbox: ``emit`` writes an event and its deliveries in the caller's transaction.

Every write that causes an event calls ``emit`` with the session of its own transaction, so an
event exists exactly when its change committed. A partner without an active endpoint
subscribed to the event pays one small indexed statement (``subscribers``) and nothing else;
callers that must compute something to describe the change (a status diff, the tags before)
ask ``subscribers`` first and skip that work too.

To emit from a new write path (issue 19's order and subscription mutations, say)::

    await emit(session, partner_id, WebhookEventName.ORDER_CREATED,
               {"orderId": ..., "subscriptionId": global_id("Subscription", sub_pk)},
               customer_id=customer_pk, now=now)
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.webhook_models import WebhookDelivery, WebhookEndpoint, WebhookOutboxEvent
from db.webhooks.events import TEST_EVENT, TEST_TYPE, WIRE_TYPES

E = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
PENDING = "PENDING"
Session = AsyncSession | AsyncConnection


def wall_clock() -> datetime:
    """Delivery times run on the wall clock (a pinned domain clock must not stop retries)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def subscribers(session: Session, partner_id: int, event: str) -> list[int]:
    """Active endpoints of the partner subscribed to ``event`` (one indexed statement)."""
    rows = await session.execute(
        select(E.id, E.events).where(E.partner_id == partner_id, E.active.is_(True))
    )
    return [pk for pk, events in rows if event in events.split(",")]


async def partners_subscribed(session: Session, event: str) -> list[int]:
    """Partners with at least one active endpoint subscribed to ``event``."""
    rows = await session.execute(select(E.partner_id, E.events).where(E.active.is_(True)))
    return sorted({p for p, events in rows if event in events.split(",")})


def body_of(event: str, data: Mapping[str, Any], occurred_at: datetime) -> str:
    kind = TEST_TYPE if event == TEST_EVENT else WIRE_TYPES[event]
    return orjson.dumps({"type": kind, "timestamp": iso(occurred_at), "data": data}).decode()


async def write_event(
    session: Session,
    *,
    partner_id: int,
    event: str,
    data: Mapping[str, Any],
    endpoint_ids: Sequence[int],
    customer_id: int | None,
    now: datetime,
) -> int:
    """The event row and one pending delivery per endpoint; the event's primary key."""
    result = await session.execute(
        insert(WebhookOutboxEvent)
        .values(
            partner_id=partner_id,
            message_id=f"msg_{secrets.token_hex(12)}",
            event=event,
            customer_id=customer_id,
            body=body_of(event, data, now),
            occurred_at=now,
        )
        .returning(WebhookOutboxEvent.__table__.c.id)  # type: ignore[attr-defined]
    )
    event_pk = int(result.scalar_one())
    await add_deliveries(
        session,
        partner_id=partner_id,
        event_pk=event_pk,
        event=event,
        endpoint_ids=endpoint_ids,
        customer_id=customer_id,
    )
    return event_pk


async def add_deliveries(
    session: Session,
    *,
    partner_id: int,
    event_pk: int,
    event: str,
    endpoint_ids: Sequence[int],
    customer_id: int | None,
) -> list[int]:
    created = wall_clock()
    ids = []
    for endpoint_id in endpoint_ids:
        result = await session.execute(
            insert(WebhookDelivery)
            .values(
                partner_id=partner_id,
                endpoint_id=endpoint_id,
                event_id=event_pk,
                event=event,
                customer_id=customer_id,
                status=PENDING,
                attempts=0,
                created_at=created,
                next_attempt_at=created,
            )
            .returning(WebhookDelivery.__table__.c.id)  # type: ignore[attr-defined]
        )
        ids.append(int(result.scalar_one()))
    return ids


async def emit(
    session: Session,
    partner_id: int,
    event: str,
    data: Mapping[str, Any],
    *,
    customer_id: int | None = None,
    now: datetime,
    endpoint_ids: Sequence[int] | None = None,
) -> None:
    """Write ``event`` for every active endpoint of the partner subscribed to it, in the
    caller's transaction; nothing when there is none. ``customer_id`` keeps the events of one
    customer in order at each endpoint. ``endpoint_ids`` skips the lookup when the caller
    already asked ``subscribers``."""
    if endpoint_ids is None:
        endpoint_ids = await subscribers(session, partner_id, event)
    if not endpoint_ids:
        return
    await write_event(
        session,
        partner_id=partner_id,
        event=event,
        data=data,
        endpoint_ids=endpoint_ids,
        customer_id=customer_id,
        now=now,
    )
