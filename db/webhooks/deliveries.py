"""Claiming due deliveries and recording their outcome (the delivery loop's SQL).

A claim is a lease: ``claimed_until`` a little past the request timeout. On PostgreSQL the due
rows are chosen with ``FOR UPDATE SKIP LOCKED``, so several servers claim disjoint rows; SQLite
serialises writers (``begin_write``). A server killed mid-delivery leaves its claims to expire;
another (or itself, restarted) claims them again: at least once, with the same ``webhook-id``.

Order per customer: a delivery is due only when no earlier delivery of the same customer to the
same endpoint is still pending, so one customer's events reach an endpoint in the order they
were written (a retried event holds back the later ones of that customer, not of others).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.queries.audit import write_audit
from db.queries.writes import begin_write
from db.versioning import writes_for
from db.webhook_models import RESPONSE_KEPT, WebhookDelivery, WebhookEndpoint, WebhookOutboxEvent
from db.webhooks.events import global_id

D = WebhookDelivery.__table__.c  # type: ignore[attr-defined]
E = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
V = WebhookOutboxEvent.__table__.c  # type: ignore[attr-defined]
PENDING, SUCCEEDED, FAILED = "PENDING", "SUCCEEDED", "FAILED"
DISABLE_OPERATION = "disableWebhookEndpoint"
# A partner id no partner has: declared by writes that change no data a response shows (the
# scheduler's watermark, pruning), so they move no partner's cached responses.
NO_PARTNER = 0


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    partner_id: int
    endpoint_id: int
    url: str
    secret: str  # sealed
    message_id: str
    body: str
    attempts: int
    first_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    body: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float
    max_delay_seconds: float
    window_seconds: float

    def delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: half fixed, half random ("equal jitter")."""
        ceiling = min(self.base_seconds * 2 ** max(attempts - 1, 0), self.max_delay_seconds)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_seconds: float, worker: str, limit: int
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries for ``worker`` (committed before returning)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    earlier = aliased(WebhookDelivery.__table__)  # type: ignore[attr-defined]
    blocked = exists().where(
        earlier.c.endpoint_id == D.endpoint_id,
        earlier.c.customer_id == D.customer_id,
        earlier.c.status == PENDING,
        earlier.c.id < D.id,
    )
    stmt = (
        select(D.id)
        .join(WebhookEndpoint, E.id == D.endpoint_id)
        .where(
            D.status == PENDING,
            D.next_attempt_at <= now,
            or_(D.claimed_until.is_(None), D.claimed_until < now),
            E.active.is_(True),
            ~blocked,
        )
        .order_by(D.next_attempt_at, D.id)
        .limit(limit)
    )
    if postgres:
        stmt = stmt.with_for_update(skip_locked=True, of=D.id.table)
    else:
        # An idle server looks every second: only take SQLite's write lock when there is work.
        if not (await session.execute(stmt.limit(1))).first():
            await session.rollback()
            return []
        await session.rollback()
        await begin_write(session)
    ids = [row[0] for row in await session.execute(stmt)]
    if not ids:
        await session.commit()
        return []
    await session.execute(
        update(WebhookDelivery)
        .where(D.id.in_(ids))
        .values(claimed_until=now + timedelta(seconds=lease_seconds), claimed_by=worker)
    )
    rows = await session.execute(
        select(
            D.id,
            D.partner_id,
            D.endpoint_id,
            E.url,
            E.secret,
            V.message_id,
            V.body,
            D.attempts,
            D.first_attempt_at,
        )
        .join(WebhookEndpoint, E.id == D.endpoint_id)
        .join(WebhookOutboxEvent, V.id == D.event_id)
        .where(D.id.in_(ids))
        .order_by(D.id)
    )
    claimed = [Claimed(*row) for row in rows]
    # Only these partners' data changed: their cached responses, not everyone's, are stale.
    await writes_for(session, {c.partner_id for c in claimed})
    await session.commit()
    return claimed


async def record_outcomes(
    session: AsyncSession,
    *,
    results: list[tuple[Claimed, Outcome, datetime]],
    worker: str,
    policy: RetryPolicy,
) -> list[str]:
    """Store the outcomes of a turn's attempts in one transaction (a row only while its claim
    is still ours); each delivery's new status ("LOST" when another server took it over).

    A failure is retried after ``policy.delay`` until ``window_seconds`` after the first
    attempt, then FAILED. An endpoint whose deliveries have failed for ``window_seconds``
    without one success is disabled, with its reason and an audit entry."""
    if session.get_bind().dialect.name != "postgresql":
        await begin_write(session)
    statuses = []
    try:
        await writes_for(session, {claimed.partner_id for claimed, _, _ in results})
        for claimed, outcome, now in results:
            statuses.append(await _record(session, claimed, outcome, now, worker, policy))
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return statuses


async def _record(
    session: AsyncSession,
    claimed: Claimed,
    outcome: Outcome,
    now: datetime,
    worker: str,
    policy: RetryPolicy,
) -> str:
    attempts = claimed.attempts + 1
    first = claimed.first_attempt_at or now
    values: dict[str, Any] = {
        "attempts": attempts,
        "first_attempt_at": first,
        "last_attempt_at": now,
        "claimed_until": None,
        "claimed_by": None,
        "response_status": outcome.status,
        "response_body": (outcome.body or "")[:RESPONSE_KEPT] if outcome.body is not None else None,
        "error": (outcome.error or "")[:500] or None,
    }
    if outcome.ok:
        status = SUCCEEDED
        values.update(status=status, next_attempt_at=None)
    else:
        window_end = first + timedelta(seconds=policy.window_seconds)
        if now >= window_end:
            status = FAILED
            values.update(status=status, next_attempt_at=None)
        else:
            status = PENDING
            retry = min(now + timedelta(seconds=policy.delay(attempts)), window_end)
            values.update(status=status, next_attempt_at=retry)
    result = await session.execute(
        update(WebhookDelivery)
        .where(D.id == claimed.id, D.claimed_by == worker, D.status == PENDING)
        .values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return "LOST"  # our claim expired and another server took the delivery over
    await _endpoint_health(session, claimed, outcome, now, policy)
    return status


async def _endpoint_health(
    session: AsyncSession, claimed: Claimed, outcome: Outcome, now: datetime, policy: RetryPolicy
) -> None:
    if outcome.ok:
        await session.execute(
            update(WebhookEndpoint)
            .where(E.id == claimed.endpoint_id, E.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return
    row = (
        await session.execute(
            select(E.failing_since, E.active).where(E.id == claimed.endpoint_id).with_for_update()
        )
    ).one_or_none()
    if row is None or not row.active:
        return
    if row.failing_since is None:
        await session.execute(
            update(WebhookEndpoint).where(E.id == claimed.endpoint_id).values(failing_since=now)
        )
        return
    if now - row.failing_since < timedelta(seconds=policy.window_seconds):
        return
    last = f"HTTP {outcome.status}" if outcome.status is not None else (outcome.error or "error")
    reason = (
        f"Disabled after failing for {policy.window_seconds / 3600:g} hours "
        f"(since {row.failing_since.isoformat()}); last attempt: {last}."
    )
    await session.execute(
        update(WebhookEndpoint)
        .where(E.id == claimed.endpoint_id)
        .values(active=False, disabled_reason=reason)
    )
    await write_audit(
        session,
        partner_id=claimed.partner_id,
        admin_id=None,
        operation=DISABLE_OPERATION,
        object_type="webhookEndpoint",
        object_id=global_id("WebhookEndpoint", claimed.endpoint_id),
        before={"active": True},
        after={"active": False, "disabledReason": reason},
        now=now,
    )


async def prune(
    session: AsyncSession, *, delivered_before: datetime, events_before: datetime
) -> int:
    """Forget finished deliveries older than the retention, then events no delivery needs; the
    number of deliveries removed. Pending deliveries are never removed."""
    if session.get_bind().dialect.name != "postgresql":
        await begin_write(session)
    # The outbox events are read by no response; the deliveries are listed by
    # ``webhookDeliveries``: the partners whose deliveries go move their versions, so no cached
    # response lists a pruned delivery.
    await writes_for(session, [NO_PARTNER])
    removed = (
        await session.execute(
            delete(WebhookDelivery)
            .where(D.status != PENDING, D.created_at < delivered_before)
            .returning(D.partner_id)
        )
    ).all()
    await writes_for(session, {int(partner) for (partner,) in removed})
    await session.execute(
        delete(WebhookOutboxEvent).where(
            V.occurred_at < events_before, ~exists().where(D.event_id == V.id)
        )
    )
    await session.commit()
    return len(removed)
