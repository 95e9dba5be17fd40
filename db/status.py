"""Customer statuses as time spans (DESIGN.md section 2, "Customer status").

Each status of a customer holds over a set of half-open time spans ``[valid_from, valid_to)``
that depend only on the customer's subscriptions, license lines, last admin sign-in and two
settings. ``refresh_status_spans`` recomputes and stores those spans whenever one of the inputs
changes (in the same transaction as the change); reading "the statuses that hold now" is then a
range test ``valid_from <= now < valid_to`` that SQL can filter, count and index. The rows never
go stale as time passes. When a threshold setting changes, ``ensure_status_rules`` rebuilds every
span at start-up (the rules' fingerprint is kept in ``app_meta``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.enums import CustomerStatus, SubscriptionKind, SubscriptionState
from db.models import (
    AppMeta,
    Customer,
    CustomerProduct,
    CustomerStatusSpan,
    LicenseLine,
    Subscription,
)
from db.types import BEGINNING_OF_TIME, END_OF_TIME

CU = Customer.__table__.c  # type: ignore[attr-defined]
SUB = Subscription.__table__.c  # type: ignore[attr-defined]
LL = LicenseLine.__table__.c  # type: ignore[attr-defined]
SP = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]
CPR = CustomerProduct.__table__.c  # type: ignore[attr-defined]

# Bump when the span rules themselves change, so stored spans are rebuilt on start-up.
RULES_REVISION = 1
_TERMINAL = (SubscriptionState.EXPIRED, SubscriptionState.CANCELLED)
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SubscriptionFacts:
    """What the status rules need to know about one subscription."""

    kind: str
    state: str
    start: datetime
    end: datetime
    auto_renew: bool
    over_licensed: bool  # some license line has assigned > purchased
    products: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusRules:
    expiring_soon_days: int
    inactivity_days: int

    @property
    def fingerprint(self) -> str:
        raw = f"{RULES_REVISION}:{self.expiring_soon_days}:{self.inactivity_days}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


Span = tuple[str, datetime, datetime]


def _merge(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def compute_spans(
    subscriptions: Sequence[SubscriptionFacts],
    last_admin_sign_in_at: datetime | None,
    rules: StatusRules,
) -> list[Span]:
    """Every (status, valid_from, valid_to) of one customer, spans of one status merged."""
    raw: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    soon = timedelta(days=rules.expiring_soon_days)
    for sub in subscriptions:
        if sub.state == SubscriptionState.ACTIVE:
            # In force over [start, end).
            status = (
                CustomerStatus.TRIAL
                if sub.kind == SubscriptionKind.TRIAL
                else CustomerStatus.ACTIVE
            )
            raw[status].append((sub.start, sub.end))
            if sub.kind == SubscriptionKind.TRIAL or not sub.auto_renew:
                # now < end <= now + N  <=>  end - N <= now < end
                raw[CustomerStatus.EXPIRING_SOON].append((max(sub.start, sub.end - soon), sub.end))
            if sub.over_licensed:
                raw[CustomerStatus.LICENSE_OVERAGE].append((sub.start, sub.end))
        elif sub.state == SubscriptionState.PROVISIONING:
            raw[CustomerStatus.READY_FOR_ORDER_SETUP].append((BEGINNING_OF_TIME, END_OF_TIME))
        elif sub.state == SubscriptionState.SUSPENDED:
            raw[CustomerStatus.SUSPENDED].append((BEGINNING_OF_TIME, END_OF_TIME))
    if subscriptions:
        # Every subscription is expired/cancelled or has ended (end <= now).
        ends = [s.end for s in subscriptions if s.state not in _TERMINAL]
        raw[CustomerStatus.EXPIRED].append((max(ends, default=BEGINNING_OF_TIME), END_OF_TIME))
    if last_admin_sign_in_at is None:
        raw[CustomerStatus.NO_RECENT_ACTIVITY].append((BEGINNING_OF_TIME, END_OF_TIME))
    else:
        # now - last > N days  <=>  now >= last + N days + 1 microsecond (the storage resolution).
        since = last_admin_sign_in_at + timedelta(days=rules.inactivity_days) + _ONE_MICROSECOND
        raw[CustomerStatus.NO_RECENT_ACTIVITY].append((since, END_OF_TIME))
    spans: list[Span] = []
    for status in CustomerStatus:
        for start, end in _merge(raw.get(status, ())):
            spans.append((status.value, start, end))
    return spans


def customer_products(subscriptions: Sequence[SubscriptionFacts]) -> set[str]:
    """Products the customer has ordered on subscriptions that are not expired or cancelled."""
    return {p for s in subscriptions if s.state not in _TERMINAL for p in s.products}


def statuses_at(spans: Iterable[Span], now: datetime) -> set[str]:
    return {status for status, start, end in spans if start <= now < end}


async def refresh_status_spans(
    session: AsyncSession | AsyncConnection,
    customer_ids: Sequence[int],
    rules: StatusRules,
    *,
    now: datetime | None = None,
) -> None:
    """Recompute the stored spans and products of ``customer_ids`` from their current data.

    With ``now`` (the write's clock: every write path passes it), the statuses that change at
    ``now`` are emitted as ``CUSTOMER_STATUS_CHANGED`` webhook events in the same transaction,
    for partners with a subscribed endpoint (``db.webhooks.status_events``). Without it (the
    start-up rebuild after a threshold change, test factories) nothing is emitted."""
    if not customer_ids:
        return
    from db.webhooks.status_events import StatusWatch

    watch = StatusWatch(now) if now is not None else None
    for i in range(0, len(customer_ids), 500):
        chunk = list(customer_ids[i : i + 500])
        customers = (
            await session.execute(
                select(CU.id, CU.partner_id, CU.last_admin_sign_in_at, CU.name_key).where(
                    CU.id.in_(chunk)
                )
            )
        ).all()
        facts = await _load_facts(session, chunk)
        if watch is not None:
            await watch.start(session, [(c.id, c.partner_id) for c in customers])
        await session.execute(delete(CustomerStatusSpan).where(SP.customer_id.in_(chunk)))
        await session.execute(delete(CustomerProduct).where(CPR.customer_id.in_(chunk)))
        span_rows, product_rows = [], []
        for customer_id, partner_id, last_sign_in, name_key in customers:
            subs = facts.get(customer_id, [])
            for status, start, end in compute_spans(subs, last_sign_in, rules):
                span_rows.append(
                    {
                        "partner_id": partner_id,
                        "customer_id": customer_id,
                        "status": status,
                        "valid_from": start,
                        "valid_to": end,
                        "name_key": name_key,
                    }
                )
            for product in sorted(customer_products(subs)):
                product_rows.append(
                    {"partner_id": partner_id, "customer_id": customer_id, "product": product}
                )
        if span_rows:
            await session.execute(insert(CustomerStatusSpan), span_rows)
        if product_rows:
            await session.execute(insert(CustomerProduct), product_rows)
        if watch is not None:
            await watch.finish(session)


async def _load_facts(
    session: AsyncSession | AsyncConnection, customer_ids: list[int]
) -> dict[int, list[SubscriptionFacts]]:
    subs = (
        await session.execute(
            select(
                SUB.id,
                SUB.customer_id,
                SUB.kind,
                SUB.state,
                SUB.start_date,
                SUB.end_date,
                SUB.auto_renew,
            ).where(SUB.customer_id.in_(customer_ids))
        )
    ).all()
    lines = (
        await session.execute(
            select(
                LL.subscription_id,
                LL.product,
                LL.purchased,
                LL.assigned,
            ).where(LL.subscription_id.in_([s.id for s in subs]))
        )
    ).all()
    over: set[int] = set()
    products: dict[int, set[str]] = defaultdict(set)
    for sub_id, product, purchased, assigned in lines:
        products[sub_id].add(product)
        if assigned > purchased:
            over.add(sub_id)
    facts: dict[int, list[SubscriptionFacts]] = defaultdict(list)
    for sub_id, customer_id, kind, state, start, end, auto_renew in subs:
        facts[customer_id].append(
            SubscriptionFacts(
                kind=kind,
                state=state,
                start=start,
                end=end,
                auto_renew=bool(auto_renew),
                over_licensed=sub_id in over,
                products=tuple(sorted(products[sub_id])),
            )
        )
    return facts


STATUS_RULES_KEY = "status_rules"


async def ensure_status_rules(session: AsyncSession, rules: StatusRules) -> bool:
    """Rebuild every customer's spans when the stored rules differ; True when it rebuilt."""
    stored = await session.get(AppMeta, STATUS_RULES_KEY)
    if stored is not None and stored.value == rules.fingerprint:
        return False
    ids = list((await session.execute(select(CU.id))).scalars())
    await refresh_status_spans(session, ids, rules)
    if stored is None:
        session.add(AppMeta(key=STATUS_RULES_KEY, value=rules.fingerprint))
    else:
        stored.value = rules.fingerprint
    await session.commit()
    return True
