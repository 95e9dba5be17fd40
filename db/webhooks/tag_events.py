"""CUSTOMER_TAGS_CHANGED: the tags a write attached to or detached from customers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from db.models import CustomerTag
from db.webhooks.events import WebhookEventName, global_id
from db.webhooks.outbox import Session, emit, subscribers

CT = CustomerTag.__table__.c  # type: ignore[attr-defined]
EVENT = WebhookEventName.CUSTOMER_TAGS_CHANGED


async def emit_tag_changes(
    session: Session,
    partner_id: int,
    *,
    added: Iterable[tuple[int, int]] = (),
    removed: Iterable[tuple[int, int]] = (),
    now: datetime,
    endpoint_ids: list[int] | None = None,
) -> None:
    """One event per customer whose tags changed; pairs are (customer id, tag id)."""
    endpoints = (
        endpoint_ids if endpoint_ids is not None else await subscribers(session, partner_id, EVENT)
    )
    if not endpoints:
        return
    changes: dict[int, tuple[set[int], set[int]]] = defaultdict(lambda: (set(), set()))
    for customer_id, tag_id in added:
        changes[customer_id][0].add(tag_id)
    for customer_id, tag_id in removed:
        changes[customer_id][1].add(tag_id)
    if not changes:
        return
    current: dict[int, set[int]] = defaultdict(set)
    rows = await session.execute(
        select(CT.customer_id, CT.tag_id).where(CT.customer_id.in_(sorted(changes)))
    )
    for customer_id, tag_id in rows:
        current[customer_id].add(tag_id)
    for customer_id in sorted(changes):
        plus, minus = changes[customer_id]
        await emit(
            session,
            partner_id,
            EVENT,
            {
                "customerId": global_id("Customer", customer_id),
                "tagIds": [global_id("Tag", t) for t in sorted(current[customer_id])],
                "added": [global_id("Tag", t) for t in sorted(plus)],
                "removed": [global_id("Tag", t) for t in sorted(minus)],
            },
            customer_id=customer_id,
            now=now,
            endpoint_ids=endpoints,
        )


async def links_of_tag(session: Session, tag_id: int) -> tuple[int | None, list[tuple[int, int]]]:
    """(partner id, [(customer id, tag id)]) of a tag's customer links, before it goes."""
    rows = (
        await session.execute(select(CT.partner_id, CT.customer_id).where(CT.tag_id == tag_id))
    ).all()
    if not rows:
        return None, []
    return rows[0][0], [(customer_id, tag_id) for _, customer_id in rows]
