"""Demo call records: nine weeks of calls for the demo partners' Calling customers.

Every customer of "Acme Partners" and "Globex Reseller" with a CALLING line on an in-force
subscription gets users (a share of its assigned Calling licenses, a handful at most, so the
demo stays at tens of thousands of records) who call on working days in business hours of the
customer's time zone, over the eight closed weeks before ``now`` and the current week up to
``now``. Some customers have a poor network (packet loss, jitter, latency above the thresholds);
some run call queues, a few of them with high abandonment; volumes drift from week to week.

The records go through the ingestion path (``db.ingest``): idempotent inserts, then the
aggregates recomputed from the records. Deterministic for ``now`` and ``random_seed``; a no-op
when the demo partners already have call records.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.calls_models import CallDirection
from db.enums import CallFeature, EndpointType, Product, SubscriptionState
from db.ingest.aggregates import refresh_aggregates
from db.ingest.records import week_start_of
from db.ingest.store import insert_records
from db.models import CallRecord, Customer, LicenseLine, Partner, Subscription
from db.seed.writer import progress_bar

DEMO_PARTNER_NAMES = ("Acme Partners", "Globex Reseller")
WEEKS = 8  # closed weeks before the current one
MAX_USERS = 4
CHUNK = 5000
DAY = timedelta(days=1)


def _columns(model: Any) -> Any:
    return model.__table__.c


P = _columns(Partner)
C = _columns(Customer)
S = _columns(Subscription)
L = _columns(LicenseLine)
R = _columns(CallRecord)

ENDPOINT_MIXES = (
    # desktop, mobile, desk phone, browser, other
    (45, 25, 20, 8, 2),
    (20, 15, 60, 3, 2),  # desk-phone shops
    (30, 55, 5, 8, 2),  # mobile workforce
)
FEATURE_ODDS = (
    (CallFeature.HOLD, 0.12),
    (CallFeature.TRANSFER, 0.08),
    (CallFeature.VOICEMAIL, 0.09),
    (CallFeature.FORWARD, 0.05),
    (CallFeature.CONFERENCE, 0.035),
    (CallFeature.CALL_PICKUP, 0.02),
    (CallFeature.CALL_PARK, 0.012),
)


@dataclass(frozen=True)
class CallingCustomer:
    customer_id: int
    partner_id: int
    external_id: str
    assigned: int
    calling_since: datetime


@dataclass
class Profile:
    """How one customer calls."""

    users: list[tuple[str, float]]  # user id, mean calls per working day
    utc_offset_hours: int
    endpoint_weights: tuple[int, ...]
    poor_network: bool
    queues: list[str]
    queue_share: float  # share of inbound calls that go through a queue
    abandon_rate: float
    mean_wait: float
    weekly_drift: float
    hunt_groups: bool
    auto_attendant: bool


def _profile(rng: random.Random, customer: CallingCustomer) -> Profile:
    count = min(MAX_USERS, max(1, round(customer.assigned * rng.uniform(0.2, 0.6))))
    users = []
    for k in range(count):
        roll = rng.random()
        per_day = rng.uniform(12, 18) if roll < 0.06 else rng.uniform(3, 8) if roll < 0.3 else 0.6
        users.append((f"user-{k + 1:03d}", per_day * rng.uniform(0.6, 1.2)))
    has_queues = rng.random() < 0.4
    troubled_queue = has_queues and rng.random() < 0.25
    return Profile(
        users=users,
        utc_offset_hours=rng.choice((-8, -7, -6, -5, 0, 1, 2, 5, 8, 9)),
        endpoint_weights=rng.choice(ENDPOINT_MIXES),
        poor_network=rng.random() < 0.12,
        queues=[f"queue-{n}" for n in range(1, rng.randint(2, 4))] if has_queues else [],
        queue_share=rng.uniform(0.3, 0.7),
        abandon_rate=rng.uniform(0.3, 0.5) if troubled_queue else rng.uniform(0.03, 0.1),
        mean_wait=rng.uniform(90, 200) if troubled_queue else rng.uniform(12, 45),
        weekly_drift=rng.choice((1.0, 1.0, 1.03, 0.96, 1.06)),
        hunt_groups=rng.random() < 0.3,
        auto_attendant=rng.random() < 0.5,
    )


def _quality(rng: random.Random, profile: Profile, endpoint: str) -> tuple[float, float, float]:
    mobile = endpoint in (EndpointType.MOBILE_APP, EndpointType.BROWSER)
    if profile.poor_network and rng.random() < 0.45:
        return (
            round(rng.uniform(2.0, 12.0), 2),
            round(rng.uniform(60, 260), 1),
            round(rng.uniform(200, 650), 1),
        )
    loss = round(min(rng.expovariate(1 / (1.2 if mobile else 0.4)), 30.0), 2)
    jitter = round(rng.uniform(2, 40) + (rng.expovariate(1 / 40) if mobile else 0), 1)
    latency = round(rng.uniform(30, 160) + (rng.expovariate(1 / 90) if mobile else 0), 1)
    return loss, jitter, latency


def _calls_of_customer(
    customer: CallingCustomer, *, now: datetime, random_seed: int
) -> list[tuple[object, ...]]:
    """Stored-record tuples (``db.ingest.store.RECORD_COLUMNS`` order) of one customer."""
    rng = random.Random(f"{random_seed}:calls:{customer.external_id}")
    profile = _profile(rng, customer)
    first_week = week_start_of(now) - timedelta(weeks=WEEKS)
    start = max(first_week, customer.calling_since)
    endpoints = list(EndpointType)
    out: list[tuple[object, ...]] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < now:
        weekday = day.weekday() < 5
        weeks_in = (day - first_week).days // 7
        level = profile.weekly_drift**weeks_in * (1.0 if weekday else 0.08)
        for user, per_day in profile.users:
            for _ in range(_poisson(rng, per_day * level)):
                local_hour = rng.triangular(7.5, 18.5, 11)
                started = day + timedelta(
                    hours=local_hour - profile.utc_offset_hours, seconds=rng.randrange(3600)
                )
                if not start <= started < now:
                    continue
                out.append(_record(rng, profile, customer, user, started, endpoints))
        day += DAY
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _record(
    rng: random.Random,
    profile: Profile,
    customer: CallingCustomer,
    user: str,
    started: datetime,
    endpoints: list[EndpointType],
) -> tuple[object, ...]:
    direction = rng.choices(list(CallDirection), weights=(45, 40, 15))[0]
    endpoint = rng.choices(endpoints, weights=profile.endpoint_weights)[0]
    loss, jitter, latency = _quality(rng, profile, endpoint)
    features = {f for f, odds in FEATURE_ODDS if rng.random() < odds}
    queue = wait = answered = abandoned = None
    if direction is CallDirection.INBOUND:
        if profile.auto_attendant and rng.random() < 0.35:
            features.add(CallFeature.AUTO_ATTENDANT)
        if profile.hunt_groups and rng.random() < 0.15:
            features.add(CallFeature.HUNT_GROUP)
        if profile.queues and rng.random() < profile.queue_share:
            features.add(CallFeature.CALL_QUEUE)
            queue = rng.choice(profile.queues)
            abandoned = rng.random() < profile.abandon_rate
            answered = not abandoned and rng.random() < 0.97
            wait = int(rng.expovariate(1 / profile.mean_wait) * (1.4 if abandoned else 1.0))
    seconds = 0 if abandoned else min(int(rng.lognormvariate(5.0, 0.9)), 7200)
    order = {f: i for i, f in enumerate(CallFeature)}
    return (
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        customer.partner_id,
        customer.customer_id,
        user,
        started,
        week_start_of(started),
        seconds,
        direction.value,
        endpoint.value,
        loss,
        jitter,
        latency,
        ";".join(f.value for f in sorted(features, key=order.__getitem__)),
        queue,
        wait,
        answered,
        abandoned,
    )


async def _calling_customers(engine: AsyncEngine, now: datetime) -> list[CallingCustomer]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                C.id,
                C.partner_id,
                C.external_id,
                func.sum(L.assigned),
                func.min(S.start_date),
            )
            .join(Subscription, S.customer_id == C.id)
            .join(LicenseLine, L.subscription_id == S.id)
            .join(Partner, P.id == C.partner_id)
            .where(
                P.name.in_(DEMO_PARTNER_NAMES),
                L.product == Product.CALLING.value,
                S.state == SubscriptionState.ACTIVE.value,
                S.start_date <= now,
                S.end_date > now,
            )
            .group_by(C.id, C.partner_id, C.external_id)
            .order_by(C.external_id)
        )
        out = []
        for customer_id, partner_id, external_id, assigned, since in rows:
            if isinstance(since, str):  # min() over a TypeDecorator column is raw on SQLite
                since = datetime.fromisoformat(since)
            since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
            out.append(
                CallingCustomer(customer_id, partner_id, external_id, int(assigned or 0), since)
            )
        return out


async def _demo_calls_present(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(R.id)
            .join(Partner, P.id == R.partner_id)
            .where(P.name.in_(DEMO_PARTNER_NAMES))
            .limit(1)
        )
        return found.first() is not None


async def seed_demo_calls(
    engine: AsyncEngine, *, now: datetime, random_seed: int = 7, progress: bool = False
) -> int:
    """Load the demo call records unless the demo partners have some; the number loaded."""
    now = now.astimezone(UTC)
    if await _demo_calls_present(engine):
        return 0
    customers = [c for c in await _calling_customers(engine, now) if c.assigned > 0]
    inserted = 0
    touched: set[tuple[int, datetime]] = set()
    async with engine.begin() as conn:
        with progress_bar("Demo call records", len(customers), enabled=progress) as advance:
            pending: list[tuple[object, ...]] = []
            for customer in customers:
                records = _calls_of_customer(customer, now=now, random_seed=random_seed)
                pending += records
                touched.update((customer.customer_id, r[5]) for r in records)  # type: ignore[misc]
                if len(pending) >= CHUNK:
                    inserted += await insert_records(conn, pending)
                    pending = []
                advance(1)
            inserted += await insert_records(conn, pending)
        await refresh_aggregates(conn, touched)
    return inserted
