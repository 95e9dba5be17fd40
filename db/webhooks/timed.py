"""Status changes that time makes (a trial enters EXPIRING_SOON, a subscription ends, a
customer falls into NO_RECENT_ACTIVITY): emitted when a span boundary is crossed.

The stored spans say when each status begins and ends, so no write is needed: ``emit_crossed``
looks for boundaries in ``(watermark, now]`` among customers of partners with a subscribed
endpoint, compares each such customer's statuses before and after, emits the difference and
moves the watermark, all in one transaction. One server at a time does it: on PostgreSQL the
transaction holds an advisory lock (a second server skips its turn); SQLite serialises writers.

The baseline of a customer whose statuses a write already announced after the watermark is
what that event said (a write at 10:00 announced its change; a boundary at 10:30 is compared
with the statuses of 10:00, not with spans the write replaced).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AppMeta, CustomerStatusSpan
from db.queries.writes import begin_write
from db.status import statuses_at
from db.versioning import writes_for
from db.webhook_models import WebhookOutboxEvent
from db.webhooks.deliveries import NO_PARTNER
from db.webhooks.outbox import emit, partners_subscribed, subscribers
from db.webhooks.status_events import EVENT, status_data

SP = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]
V = WebhookOutboxEvent.__table__.c  # type: ignore[attr-defined]
WATERMARK_KEY = "webhook_status_watermark"
ADVISORY_LOCK = 7_320_020  # pg_try_advisory_xact_lock key of the time-driven scheduler
_JUST_BEFORE = timedelta(microseconds=1)


async def _watermark(session: AsyncSession) -> AppMeta | None:
    return await session.get(AppMeta, WATERMARK_KEY, with_for_update=True)


async def emit_crossed(session: AsyncSession, *, now: datetime) -> int | None:
    """Emit what time changed since the last run; the number of events, or None when another
    server holds the turn. The first run only sets the watermark (no history is replayed)."""
    if session.get_bind().dialect.name == "postgresql":
        got = await session.execute(text(f"SELECT pg_try_advisory_xact_lock({ADVISORY_LOCK})"))
        if not got.scalar_one():
            await session.rollback()
            return None
    else:
        await begin_write(session)
    mark = await _watermark(session)
    if mark is None:
        session.add(AppMeta(key=WATERMARK_KEY, value=now.isoformat()))
        await session.commit()
        return 0
    since = datetime.fromisoformat(mark.value)
    if now <= since:
        await session.rollback()
        return 0
    emitted = 0
    partners = await partners_subscribed(session, EVENT)
    if partners:
        emitted = await _emit_between(session, partners, since, now)
    # The watermark is no partner's data; the events are their partners' (deliveries shown by
    # webhookDeliveries): only those partners' cached responses go stale.
    await writes_for(session, [*partners, NO_PARTNER])
    mark.value = now.isoformat()
    await session.commit()
    return emitted


async def _emit_between(
    session: AsyncSession, partners: list[int], since: datetime, now: datetime
) -> int:
    crossed = (
        await session.execute(
            select(SP.customer_id, SP.partner_id)
            .where(
                SP.partner_id.in_(partners),
                or_(
                    and_(SP.valid_from > since, SP.valid_from <= now),
                    and_(SP.valid_to > since, SP.valid_to <= now),
                ),
            )
            .distinct()
        )
    ).all()
    if not crossed:
        return 0
    customers = {customer_id: partner_id for customer_id, partner_id in crossed}
    spans: dict[int, list[tuple[str, datetime, datetime]]] = {c: [] for c in customers}
    announced: dict[int, set[str]] = {}
    ids = sorted(customers)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for customer_id, status, start, end in await session.execute(
            select(SP.customer_id, SP.status, SP.valid_from, SP.valid_to).where(
                SP.customer_id.in_(chunk)
            )
        ):
            spans[customer_id].append((status, start, end))
        for customer_id, body in await session.execute(
            select(V.customer_id, V.body)
            .where(V.customer_id.in_(chunk), V.event == EVENT, V.occurred_at > since)
            .order_by(V.id)
        ):
            announced[customer_id] = set(orjson.loads(body)["data"]["statuses"])
    emitted = 0
    endpoints: dict[int, list[int]] = {}
    for customer_id in ids:
        partner_id = customers[customer_id]
        before = announced.get(customer_id)
        if before is None:
            before = statuses_at(spans[customer_id], since)
        after = statuses_at(spans[customer_id], now)
        if before == after:
            continue
        if partner_id not in endpoints:
            endpoints[partner_id] = await subscribers(session, partner_id, EVENT)
        await emit(
            session,
            partner_id,
            EVENT,
            status_data(customer_id, before, after),
            customer_id=customer_id,
            now=now,
            endpoint_ids=endpoints[partner_id],
        )
        emitted += 1
    return emitted
