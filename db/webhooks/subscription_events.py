"""SUBSCRIPTION_CHANGED and the trial events: what a webhook says about a subscription.

Any write path that creates or changes a subscription (trials here; issue 19's order setup and
licence changes) calls ``emit_subscription`` in its transaction, with the subscription's row
as read after the change (``db.queries.trials.subscription_row``)::

    await emit_subscription(session, WebhookEventName.SUBSCRIPTION_CHANGED, row, now,
                            change="UPDATED")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from db.webhooks.events import global_id
from db.webhooks.outbox import Session, emit, iso


def subscription_data(row: Any) -> dict[str, Any]:
    """Global ids and wire timestamps of a subscription row."""
    return {
        "subscriptionId": global_id("Subscription", row.id),
        "customerId": global_id("Customer", row.customer_id),
        "reference": row.subscription_id,
        "kind": row.kind,
        "state": row.state,
        "startDate": iso(row.start_date),
        "endDate": iso(row.end_date),
    }


async def emit_subscription(
    session: Session, event: str, row: Any, now: datetime, **extra: Any
) -> None:
    """``event`` about the subscription ``row``, with ``extra`` fields in its data."""
    await emit(
        session,
        row.partner_id,
        event,
        {**subscription_data(row), **extra},
        customer_id=row.customer_id,
        now=now,
    )
