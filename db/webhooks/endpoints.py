"""Endpoints and deliveries as the API reads and changes them (always within one partner)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.webhook_models import WebhookDelivery, WebhookEndpoint, WebhookOutboxEvent
from db.webhooks.outbox import add_deliveries, write_event

E = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
D = WebhookDelivery.__table__.c  # type: ignore[attr-defined]
V = WebhookOutboxEvent.__table__.c  # type: ignore[attr-defined]
ENDPOINT_COLUMNS = (
    E.id,
    E.partner_id,
    E.url,
    E.description,
    E.events,
    E.active,
    E.disabled_reason,
    E.failing_since,
    E.created_at,
)
DELIVERY_COLUMNS = (
    D.id,
    D.partner_id,
    D.endpoint_id,
    D.event,
    D.status,
    D.attempts,
    D.last_attempt_at,
    D.next_attempt_at,
    D.response_status,
    D.response_body,
    D.error,
    V.message_id,
    V.body,
)


async def endpoints_of_partner(session: AsyncSession, *, partner_id: int) -> list[Any]:
    rows = await session.execute(
        select(*ENDPOINT_COLUMNS).where(E.partner_id == partner_id).order_by(E.id)
    )
    return list(rows)


async def endpoints_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int], lock: bool = False
) -> dict[int, Any]:
    stmt = select(*ENDPOINT_COLUMNS).where(E.partner_id == partner_id, E.id.in_(list(ids)))
    if lock:
        stmt = stmt.with_for_update()
    return {row.id: row for row in await session.execute(stmt)}


async def count_endpoints(session: AsyncSession, *, partner_id: int) -> int:
    stmt = select(func.count()).select_from(WebhookEndpoint).where(E.partner_id == partner_id)
    return int((await session.execute(stmt)).scalar_one())


async def create_endpoint(
    session: AsyncSession,
    *,
    partner_id: int,
    url: str,
    description: str,
    events: Sequence[str],
    sealed_secret: str,
    now: datetime,
) -> Any:
    result = await session.execute(
        insert(WebhookEndpoint)
        .values(
            partner_id=partner_id,
            url=url,
            description=description,
            events=",".join(events),
            secret=sealed_secret,
            active=True,
            created_at=now,
        )
        .returning(*ENDPOINT_COLUMNS)
    )
    return result.one()


async def update_endpoint(
    session: AsyncSession, *, partner_id: int, endpoint_id: int, values: dict[str, Any]
) -> Any:
    result = await session.execute(
        update(WebhookEndpoint)
        .where(E.partner_id == partner_id, E.id == endpoint_id)
        .values(**values)
        .returning(*ENDPOINT_COLUMNS)
    )
    return result.one()


async def delete_endpoint(session: AsyncSession, *, partner_id: int, endpoint_id: int) -> None:
    await session.execute(
        delete(WebhookDelivery).where(D.partner_id == partner_id, D.endpoint_id == endpoint_id)
    )
    await session.execute(
        delete(WebhookEndpoint).where(E.partner_id == partner_id, E.id == endpoint_id)
    )


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    endpoint_id: int | None = None
    event: str | None = None
    status: str | None = None


def _conditions(partner_id: int, query: DeliveryQuery) -> list[Any]:
    conditions: list[Any] = [D.partner_id == partner_id]
    if query.endpoint_id is not None:
        conditions.append(D.endpoint_id == query.endpoint_id)
    if query.event is not None:
        conditions.append(D.event == query.event)
    if query.status is not None:
        conditions.append(D.status == query.status)
    return conditions


async def deliveries_page(
    session: AsyncSession,
    *,
    partner_id: int,
    query: DeliveryQuery,
    first: int,
    before_id: int | None,
) -> tuple[list[Any], bool]:
    """Newest first, keyset on the id."""
    conditions = _conditions(partner_id, query)
    if before_id is not None:
        conditions.append(D.id < before_id)
    rows = list(
        await session.execute(
            select(*DELIVERY_COLUMNS)
            .join(WebhookOutboxEvent, V.id == D.event_id)
            .where(*conditions)
            .order_by(D.id.desc())
            .limit(first + 1)
        )
    )
    return rows[:first], len(rows) > first


async def count_deliveries(session: AsyncSession, *, partner_id: int, query: DeliveryQuery) -> int:
    stmt = select(func.count()).select_from(WebhookDelivery).where(*_conditions(partner_id, query))
    return int((await session.execute(stmt)).scalar_one())


async def deliveries_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int]
) -> dict[int, Any]:
    rows = await session.execute(
        select(*DELIVERY_COLUMNS, D.event_id, D.customer_id)
        .join(WebhookOutboxEvent, V.id == D.event_id)
        .where(D.partner_id == partner_id, D.id.in_(list(ids)))
    )
    return {row.id: row for row in rows}


async def redeliver(session: AsyncSession, *, delivery: Any) -> int:
    """A new pending delivery of the same message (same ``webhook-id``) to the same endpoint."""
    (created,) = await add_deliveries(
        session,
        partner_id=delivery.partner_id,
        event_pk=delivery.event_id,
        event=delivery.event,
        endpoint_ids=[delivery.endpoint_id],
        customer_id=delivery.customer_id,
    )
    return created


async def send_test(session: AsyncSession, *, endpoint: Any, now: datetime) -> int:
    """A ``webhook.test`` message to one endpoint; the delivery's primary key."""
    from db.webhooks.events import TEST_EVENT, global_id

    event_pk = await write_event(
        session,
        partner_id=endpoint.partner_id,
        event=TEST_EVENT,
        data={"endpointId": global_id("WebhookEndpoint", endpoint.id), "test": True},
        endpoint_ids=[],
        customer_id=None,
        now=now,
    )
    (created,) = await add_deliveries(
        session,
        partner_id=endpoint.partner_id,
        event_pk=event_pk,
        event=TEST_EVENT,
        endpoint_ids=[endpoint.id],
        customer_id=None,
    )
    return created


def reenabled_values() -> dict[str, Any]:
    return {"active": True, "disabled_reason": None, "failing_since": None}
