"""Trials: start (for an existing or a new customer), extend, convert to a paid subscription.

Every write refreshes the customer's status spans in the same transaction.
"""

from __future__ import annotations

import calendar
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import ManagedBy, OrderAction, SubscriptionKind, SubscriptionState
from db.models import Customer, CustomerAssignment, LicenseLine, Subscription
from db.queries.customer_children import SUBSCRIPTION_COLUMNS
from db.queries.orders import place_order
from db.scope import Scope
from db.status import StatusRules, refresh_status_spans
from db.types import inserted_id
from db.webhooks.events import WebhookEventName as Ev
from db.webhooks.events import global_id
from db.webhooks.outbox import iso
from db.webhooks.subscription_events import emit_subscription

S = Subscription.__table__.c  # type: ignore[attr-defined]
L = LicenseLine.__table__.c  # type: ignore[attr-defined]


def _own(scope: Scope, trial: Any) -> None:
    """A trial row changed here was read through ``scope`` (subscriptions_by_ids)."""
    if trial.partner_id != scope.partner_id:
        raise PermissionError("The trial is not of the scope's partner.")


async def products_in_trial(
    session: AsyncSession, *, scope: Scope, customer_id: int, products: Sequence[str], now: datetime
) -> list[str]:
    """Which of ``products`` already have a trial in force for the customer."""
    rows = await session.execute(
        select(L.product)
        .join(Subscription, S.id == L.subscription_id)
        .where(
            S.partner_id == scope.partner_id,
            S.customer_id == customer_id,
            S.kind == SubscriptionKind.TRIAL.value,
            S.state == SubscriptionState.ACTIVE.value,
            S.start_date <= now,
            S.end_date > now,
            L.product.in_(list(products)),
        )
        .distinct()
    )
    return sorted(r[0] for r in rows)


async def create_customer(
    session: AsyncSession,
    *,
    partner_id: int,
    name: str,
    admin_id: int,
    now: datetime,
) -> int:
    """A new customer provisioned (and assigned to) ``admin_id``."""
    result = await session.execute(
        insert(Customer).values(
            partner_id=partner_id,
            external_id=f"PH-{secrets.token_hex(6).upper()}",
            name=name,
            name_key=name.lower(),
            created_at=now,
            managed_by=ManagedBy.EXTERNAL_ADMIN.value,
            last_admin_sign_in_at=None,
            provisioned_by_admin_id=admin_id,
        )
    )
    customer_id = inserted_id(result)
    await session.execute(
        insert(CustomerAssignment).values(
            customer_id=customer_id,
            admin_id=admin_id,
            partner_id=partner_id,
            assigned_at=now,
            assigned_by_admin_id=admin_id,
        )
    )
    return customer_id


async def _unique_reference(session: AsyncSession, partner_id: int, prefix: str) -> str:
    while True:
        ref = f"{prefix}{secrets.randbelow(900_000) + 100_000}"
        taken = await session.execute(
            select(func.count()).where(S.partner_id == partner_id, S.subscription_id == ref)
        )
        if not taken.scalar_one():
            return ref


async def _order(
    session: AsyncSession,
    *,
    partner_id: int,
    subscription_id: int,
    action: OrderAction,
    text: str,
    now: datetime,
) -> None:
    await place_order(
        session,
        partner_id=partner_id,
        subscription_id=subscription_id,
        action=action,
        description=text,
        now=now,
    )


async def start_trial(
    session: AsyncSession,
    *,
    partner_id: int,
    customer_id: int,
    products: Sequence[tuple[str, int]],
    duration_days: int,
    admin_id: int,
    now: datetime,
    rules: StatusRules,
) -> Any:
    ref = await _unique_reference(session, partner_id, "Trial-")
    result = await session.execute(
        insert(Subscription).values(
            partner_id=partner_id,
            customer_id=customer_id,
            subscription_id=ref,
            kind=SubscriptionKind.TRIAL.value,
            state=SubscriptionState.ACTIVE.value,
            start_date=now,
            end_date=now + timedelta(days=duration_days),
            auto_renew=False,
            renewal_date=None,
            created_at=now,
            created_by_admin_id=admin_id,
        )
    )
    sub_id = inserted_id(result)
    await session.execute(
        insert(LicenseLine),
        [
            {
                "partner_id": partner_id,
                "subscription_id": sub_id,
                "product": product,
                "license_type": "Trial",
                "purchased": licenses,
                "assigned": 0,
                "used": 0,
            }
            for product, licenses in products
        ],
    )
    await _order(
        session,
        partner_id=partner_id,
        subscription_id=sub_id,
        action=OrderAction.TRIAL_START,
        text=f"{duration_days}-day trial: " + ", ".join(f"{n} {p}" for p, n in products),
        now=now,
    )
    await refresh_status_spans(session, [customer_id], rules, now=now)
    row = await subscription_row(session, subscription_id=sub_id)
    lines = [{"product": p, "licenses": n} for p, n in products]
    await emit_subscription(session, Ev.TRIAL_STARTED, row, now, products=lines)
    await emit_subscription(session, Ev.SUBSCRIPTION_CHANGED, row, now, change="CREATED")
    return row


async def subscription_row(session: AsyncSession, *, subscription_id: int) -> Any:
    return (
        await session.execute(select(*SUBSCRIPTION_COLUMNS).where(S.id == subscription_id))
    ).one()


async def extend_trial(
    session: AsyncSession,
    *,
    scope: Scope,
    trial: Any,
    new_end: datetime,
    now: datetime,
    rules: StatusRules,
) -> Any:
    _own(scope, trial)
    await session.execute(update(Subscription).where(S.id == trial.id).values(end_date=new_end))
    await _order(
        session,
        partner_id=trial.partner_id,
        subscription_id=trial.id,
        action=OrderAction.TRIAL_EXTENSION,
        text=f"Trial extended to {new_end.date().isoformat()}",
        now=now,
    )
    await refresh_status_spans(session, [trial.customer_id], rules, now=now)
    row = await subscription_row(session, subscription_id=trial.id)
    previous = iso(trial.end_date)
    await emit_subscription(session, Ev.TRIAL_EXTENDED, row, now, previousEndDate=previous)
    await emit_subscription(session, Ev.SUBSCRIPTION_CHANGED, row, now, change="UPDATED")
    return row


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    days_in_month = calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(moment.day, days_in_month))


async def convert_trial(
    session: AsyncSession,
    *,
    scope: Scope,
    trial: Any,
    auto_renew: bool,
    term_months: int,
    admin_id: int,
    now: datetime,
    rules: StatusRules,
) -> tuple[Any, Any]:
    """End the trial now and open a PAID subscription with the same license lines."""
    _own(scope, trial)
    await session.execute(
        update(Subscription)
        .where(S.id == trial.id)
        .values(state=SubscriptionState.EXPIRED.value, end_date=now)
    )
    ref = await _unique_reference(session, trial.partner_id, "Sub")
    end = add_months(now, term_months)
    result = await session.execute(
        insert(Subscription).values(
            partner_id=trial.partner_id,
            customer_id=trial.customer_id,
            subscription_id=ref,
            kind=SubscriptionKind.PAID.value,
            state=SubscriptionState.ACTIVE.value,
            start_date=now,
            end_date=end,
            auto_renew=auto_renew,
            renewal_date=end if auto_renew else None,
            term_months=term_months,
            created_at=now,
            created_by_admin_id=admin_id,
        )
    )
    paid_id = inserted_id(result)
    lines = (await session.execute(select(*L).where(L.subscription_id == trial.id))).all()
    await session.execute(
        insert(LicenseLine),
        [
            {
                "partner_id": line.partner_id,
                "subscription_id": paid_id,
                "product": line.product,
                "license_type": "Standard",
                "purchased": line.purchased,
                "assigned": line.assigned,
                "used": line.used,
            }
            for line in lines
        ],
    )
    await _order(
        session,
        partner_id=trial.partner_id,
        subscription_id=paid_id,
        action=OrderAction.CONVERSION,
        text=f"Converted from {trial.subscription_id}, {term_months} months",
        now=now,
    )
    await refresh_status_spans(session, [trial.customer_id], rules, now=now)
    ended = await subscription_row(session, subscription_id=trial.id)
    paid = await subscription_row(session, subscription_id=paid_id)
    await emit_subscription(
        session,
        Ev.TRIAL_CONVERTED,
        ended,
        now,
        paidSubscriptionId=global_id("Subscription", paid_id),
    )
    await emit_subscription(session, Ev.SUBSCRIPTION_CHANGED, ended, now, change="UPDATED")
    await emit_subscription(session, Ev.SUBSCRIPTION_CHANGED, paid, now, change="CREATED")
    return ended, paid
