"""CUSTOMER_STATUS_CHANGED: what a write changed in a customer's statuses at ``now``, and what
time changed since the last look (``db.webhooks.timed``).

``refresh_status_spans`` is the one place every write that can move a status passes (trials,
the command line, any later write path that refreshes spans); it asks ``StatusWatch.start``
before replacing a chunk's spans and ``finish`` after, so the event is in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from db.models import CustomerStatusSpan
from db.webhooks.events import WebhookEventName, global_id
from db.webhooks.outbox import Session, emit, subscribers

SP = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]
EVENT = WebhookEventName.CUSTOMER_STATUS_CHANGED


def status_data(customer_id: int, before: set[str], after: set[str]) -> dict[str, object]:
    return {
        "customerId": global_id("Customer", customer_id),
        "statuses": sorted(after),
        "added": sorted(after - before),
        "removed": sorted(before - after),
    }


async def statuses_now(
    session: Session, customer_ids: Sequence[int], now: datetime
) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {pk: set() for pk in customer_ids}
    rows = await session.execute(
        select(SP.customer_id, SP.status).where(
            SP.customer_id.in_(list(customer_ids)), SP.valid_from <= now, SP.valid_to > now
        )
    )
    for customer_id, status in rows:
        found[customer_id].add(status)
    return found


@dataclass
class StatusWatch:
    """The statuses of the watched customers before a refresh (only customers of partners
    with a subscribed endpoint are watched: others cost one statement per partner)."""

    now: datetime
    endpoints: dict[int, list[int]] = field(default_factory=dict)  # partner -> endpoint ids
    partner_of: dict[int, int] = field(default_factory=dict)
    before: dict[int, set[str]] = field(default_factory=dict)

    async def start(self, session: Session, customers: Iterable[tuple[int, int]]) -> None:
        """``customers``: (customer id, partner id) about to be refreshed."""
        self.partner_of.clear()
        for customer_id, partner_id in customers:
            if partner_id not in self.endpoints:
                self.endpoints[partner_id] = await subscribers(session, partner_id, EVENT)
            if self.endpoints[partner_id]:
                self.partner_of[customer_id] = partner_id
        self.before = (
            await statuses_now(session, list(self.partner_of), self.now) if self.partner_of else {}
        )

    async def finish(self, session: Session) -> None:
        if not self.partner_of:
            return
        after = await statuses_now(session, list(self.partner_of), self.now)
        for customer_id, partner_id in self.partner_of.items():
            old, new = self.before.get(customer_id, set()), after[customer_id]
            if old != new:
                await emit(
                    session,
                    partner_id,
                    EVENT,
                    status_data(customer_id, old, new),
                    customer_id=customer_id,
                    now=self.now,
                    endpoint_ids=self.endpoints[partner_id],
                )
