"""Demo call records: nine weeks of calls for the demo partners' Calling customers.

Every customer of "Acme Partners" and "Globex Reseller" with a CALLING line on an in-force
subscription gets as many users as it has Calling licenses assigned ("licensed users"). In each
week, as many of them call as the weekly license snapshots say were *used* (active) that week,
so the calling dashboard agrees with the license dashboard: active callers follow the used
Calling licenses, and "licensed without calls" is the assigned licenses nobody used. Most users
make a few calls a week (1-10), some 11-50, a few more than 50; they call on working days in
business hours of the customer's time zone, over the eight closed weeks before ``now`` and the
current week up to ``now``. Some customers have a poor network (packet loss, jitter, latency
above the thresholds); some run call queues, a few of them with high abandonment.

The records go through the ingestion path (``db.ingest``): idempotent inserts, then the
aggregates recomputed from the records. Deterministic for ``now`` and ``random_seed``; a no-op
when the demo partners already have call records.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.calls_models import CallDirection
from db.enums import CallFeature, EndpointType, Product, SubscriptionState
from db.ingest.aggregates import refresh_aggregates
from db.ingest.records import week_start_of
from db.ingest.store import insert_records
from db.models import CallRecord, Customer, LicenseLine, LicenseSnapshot, Partner, Subscription
from db.seed.writer import progress_bar

DEMO_PARTNER_NAMES = ("Acme Partners", "Globex Reseller")
WEEKS = 8  # closed weeks before the current one
CHUNK = 5000
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# Calls a user makes in a week: (share of users, low, high) of the mean of a Poisson draw. The
# chart "users by volume" buckets them by 1-10, 11-50 and 51+ calls.
CALLER_KINDS = ((0.93, 0.5, 4.0), (0.06, 13.0, 24.0), (0.01, 54.0, 62.0))


def _columns(model: Any) -> Any:
    return model.__table__.c


P = _columns(Partner)
C = _columns(Customer)
S = _columns(Subscription)
L = _columns(LicenseLine)
X = _columns(LicenseSnapshot)
R = _columns(CallRecord)

ENDPOINT_MIXES = (
    # desktop, mobile, desk phone, browser, other
    (45, 25, 20, 8, 2),
    (20, 15, 60, 3, 2),  # desk-phone shops
    (30, 55, 5, 8, 2),  # mobile workforce
)
INBOUND, OUTBOUND, INTERNAL = CallDirection.INBOUND, CallDirection.OUTBOUND, CallDirection.INTERNAL
ENDPOINTS = (  # in the order of ENDPOINT_MIXES
    EndpointType.DESKTOP_APP,
    EndpointType.MOBILE_APP,
    EndpointType.DESK_PHONE,
    EndpointType.BROWSER,
    EndpointType.OTHER,
)
FEATURE_ORDER = {f: i for i, f in enumerate(CallFeature)}
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
    assigned: int  # licensed users: Calling licenses assigned on in-force subscriptions
    used: int  # Calling licenses used (active) in the last 7 days
    calling_since: datetime
    weekly_used: dict[datetime, int] = field(default_factory=dict)  # snapshot week -> used


@dataclass
class Profile:
    """How one customer calls."""

    users: list[tuple[str, float]]  # user id, mean calls per week; the most active first
    utc_offset_hours: int
    endpoint_cum: list[int]  # cumulative weights of ENDPOINTS
    poor_network: bool
    queues: list[str]
    queue_share: float  # share of inbound calls that go through a queue
    abandon_rate: float
    mean_wait: float
    hunt_groups: bool
    auto_attendant: bool


def _caller_rate(rng: random.Random) -> float:
    roll = rng.random()
    for share, low, high in CALLER_KINDS:
        if roll < share:
            return rng.uniform(low, high)
        roll -= share
    return rng.uniform(CALLER_KINDS[0][1], CALLER_KINDS[0][2])


def _profile(rng: random.Random, customer: CallingCustomer) -> Profile:
    has_queues = rng.random() < 0.4
    troubled_queue = has_queues and rng.random() < 0.25
    return Profile(
        users=[(f"user-{k + 1:05d}", _caller_rate(rng)) for k in range(customer.assigned)],
        utc_offset_hours=rng.choice((-8, -7, -6, -5, 0, 1, 2, 5, 8, 9)),
        endpoint_cum=list(accumulate(rng.choice(ENDPOINT_MIXES))),
        poor_network=rng.random() < 0.12,
        queues=[f"queue-{n}" for n in range(1, rng.randint(2, 4))] if has_queues else [],
        queue_share=rng.uniform(0.3, 0.7),
        abandon_rate=rng.uniform(0.3, 0.5) if troubled_queue else rng.uniform(0.03, 0.1),
        mean_wait=rng.uniform(90, 200) if troubled_queue else rng.uniform(12, 45),
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
    """Stored-record tuples (``db.ingest.store.RECORD_COLUMNS`` order) of one customer.

    In a closed week, the users active that week (the snapshot's used count, the most active
    users first) make at least one call each; in the current week every user who was active
    in the last 7 days (``used``) calls at the pace of the days gone by, so some have not yet.
    """
    rng = random.Random(f"{random_seed}:calls:{customer.external_id}")
    profile = _profile(rng, customer)
    current = week_start_of(now)
    since = customer.calling_since
    out: list[tuple[object, ...]] = []
    for k in range(WEEKS, -1, -1):
        week = current - k * WEEK
        open_days = [d for d in (week + n * DAY for n in range(7)) if d + DAY > since and d < now]
        # Working days; a week whose licences started on its Saturday has that day alone.
        days = [d for d in open_days if d.weekday() < 5] or open_days
        if not days:
            continue
        if k:
            active, pace, floor = customer.weekly_used.get(week, 0), 1.0, 1
        else:
            active, pace, floor = customer.used, len(days) / 5, 0
        for user, per_week in profile.users[: min(active, len(profile.users))]:
            calls = max(floor, _poisson(rng, per_week * pace))
            for _ in range(calls):
                local_hour = rng.triangular(7.5, 18.5, 11)
                started = rng.choice(days) + timedelta(
                    hours=local_hour - profile.utc_offset_hours, seconds=rng.randrange(3600)
                )
                if since <= started < now:
                    # A weekday call stays in its UTC week; a weekend one may cross into the next.
                    of = week if week <= started < week + WEEK else week_start_of(started)
                    out.append(_record(rng, profile, customer, user, started, of))
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
    week: datetime,
) -> tuple[object, ...]:
    """One stored-record tuple; tens of thousands of calls a second (draws inlined)."""
    random_ = rng.random
    roll = random_() * 100
    direction = INBOUND if roll < 40 else OUTBOUND if roll < 85 else INTERNAL
    endpoint = ENDPOINTS[bisect(profile.endpoint_cum, random_() * profile.endpoint_cum[-1])]
    loss, jitter, latency = _quality(rng, profile, endpoint)
    features = [f for f, odds in FEATURE_ODDS if random_() < odds]
    queue = wait = answered = abandoned = None
    if direction is INBOUND:
        if profile.auto_attendant and random_() < 0.35:
            features.append(CallFeature.AUTO_ATTENDANT)
        if profile.hunt_groups and random_() < 0.15:
            features.append(CallFeature.HUNT_GROUP)
        if profile.queues and random_() < profile.queue_share:
            features.append(CallFeature.CALL_QUEUE)
            queue = rng.choice(profile.queues)
            abandoned = random_() < profile.abandon_rate
            answered = not abandoned and random_() < 0.97
            wait = int(rng.expovariate(1 / profile.mean_wait) * (1.4 if abandoned else 1.0))
    seconds = 0 if abandoned else min(int(rng.lognormvariate(5.0, 0.9)), 7200)
    if len(features) > 1:
        features.sort(key=FEATURE_ORDER.__getitem__)
    h = f"{rng.getrandbits(128):032x}"
    return (
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}",
        customer.partner_id,
        customer.customer_id,
        user,
        started,
        week,
        seconds,
        direction.value,
        endpoint.value,
        loss,
        jitter,
        latency,
        ";".join(features),
        queue,
        wait,
        answered,
        abandoned,
    )


async def _calling_customers(engine: AsyncEngine, now: datetime) -> list[CallingCustomer]:
    """The demo customers with Calling in force: assigned and used Calling licenses, and the
    used count of each of the last ``WEEKS`` weekly snapshots of those lines."""
    in_force = and_(
        P.name.in_(DEMO_PARTNER_NAMES),
        L.product == Product.CALLING.value,
        S.state == SubscriptionState.ACTIVE.value,
        S.start_date <= now,
        S.end_date > now,
    )
    first_week = week_start_of(now) - WEEKS * WEEK
    async with engine.connect() as conn:
        weekly: dict[int, dict[datetime, int]] = defaultdict(dict)
        snapshots = await conn.execute(
            select(S.customer_id, X.week_start, func.sum(X.used))
            .join(LicenseLine, L.id == X.license_line_id)
            .join(Subscription, S.id == L.subscription_id)
            .join(Partner, P.id == S.partner_id)
            .where(in_force, X.week_start >= first_week)
            .group_by(S.customer_id, X.week_start)
        )
        for customer_id, week, used in snapshots:
            weekly[customer_id][_utc(week)] = int(used or 0)
        rows = await conn.execute(
            select(
                C.id,
                C.partner_id,
                C.external_id,
                func.sum(L.assigned),
                func.sum(L.used),
                func.min(S.start_date),
            )
            .join(Subscription, S.customer_id == C.id)
            .join(LicenseLine, L.subscription_id == S.id)
            .join(Partner, P.id == C.partner_id)
            .where(in_force)
            .group_by(C.id, C.partner_id, C.external_id)
            .order_by(C.external_id)
        )
        return [
            CallingCustomer(
                customer_id,
                partner_id,
                external_id,
                int(assigned or 0),
                int(used or 0),
                _utc(since),
                weekly[customer_id],
            )
            for customer_id, partner_id, external_id, assigned, used, since in rows
        ]


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # min() over a TypeDecorator column is raw on SQLite
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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
