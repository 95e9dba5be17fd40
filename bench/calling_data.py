"""Call records for the calling benchmark: 1,000 Calling customers, about a million calls.

The synthetic data sets (``seed --customers N``) have no call records; ``ensure_calls`` adds
them to one, once (a data set that already holds calls is left as it is), through the ingestion
path: ``db.ingest.store.insert_records`` (the bulk paths) then ``refresh_aggregates`` for every
(customer, week) loaded. The customers are the partner's first ``customers`` by id that have a
CALLING line, else its first customers; each gets ``users`` users calling over the eight closed
weeks before ``NOW`` and the current week. Deterministic.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bench.common import NOW
from db.engine import create_engine
from db.enums import CallFeature, EndpointType, Product
from db.ingest.aggregates import refresh_aggregates
from db.ingest.records import week_start_of
from db.ingest.store import insert_records
from db.models import CallRecord, Customer, LicenseLine, Partner, Subscription
from db.versioning import writes_for

WEEKS = 9  # eight closed weeks and the current one
CHUNK = 50_000


def _c(model: Any) -> Any:
    return model.__table__.c


async def ensure_calls(
    url: str, *, customers: int = 1000, records: int = 1_000_000, users: int = 20
) -> dict[str, int]:
    """Load the calls unless the data set has some; (customers, records) it holds."""
    engine = create_engine(url, pool=False)
    try:
        async with engine.connect() as conn:
            held = int(await conn.scalar(select(func.count()).select_from(CallRecord)) or 0)
            if held:
                with_calls = await conn.scalar(
                    select(func.count(func.distinct(_c(CallRecord).customer_id)))
                )
                return {"customers": int(with_calls or 0), "records": held}
            partner = int(
                await conn.scalar(select(_c(Partner).id).order_by(_c(Partner).id).limit(1)) or 0
            )
            S, L, C = _c(Subscription), _c(LicenseLine), _c(Customer)
            calling = (
                select(S.customer_id)
                .join(LicenseLine, L.subscription_id == S.id)
                .where(S.partner_id == partner, L.product == Product.CALLING.value)
                .distinct()
                .order_by(S.customer_id)
                .limit(customers)
            )
            chosen = [int(c) for c in (await conn.execute(calling)).scalars()]
            if len(chosen) < customers:
                rest = select(C.id).where(C.partner_id == partner).order_by(C.id).limit(customers)
                extra = [int(c) for c in (await conn.execute(rest)).scalars() if c not in chosen]
                chosen += extra[: customers - len(chosen)]
        started = time.perf_counter()
        pairs = await _load(engine, partner, chosen, records, users)
        async with engine.begin() as conn:
            await writes_for(conn, partner)
            await refresh_aggregates(conn, pairs)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execute(text("COMMIT"))
                await conn.execute(text("ANALYZE"))
        print(
            f"  loaded {records:,} calls for {len(chosen):,} customers "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        return {"customers": len(chosen), "records": records}
    finally:
        await engine.dispose()


async def _load(
    engine: Any, partner: int, customers: list[int], records: int, users: int
) -> set[tuple[int, Any]]:
    rng = random.Random(7)
    endpoints = [e.value for e in EndpointType]
    features = [f.value for f in CallFeature]
    first_day = week_start_of(NOW) - timedelta(weeks=WEEKS - 1)
    span = (NOW - first_day).total_seconds()
    per_customer = records // len(customers)
    pairs: set[tuple[int, Any]] = set()
    rows: list[tuple[Any, ...]] = []
    n = 0
    for customer in customers:
        queue = rng.random() < 0.3
        poor_network = rng.random() < 0.1
        for _ in range(per_customer):
            n += 1
            started_at = first_day + timedelta(seconds=rng.random() * span)
            week = week_start_of(started_at)
            pairs.add((customer, week))
            queued = queue and rng.random() < 0.4
            answered = rng.random() < 0.85 if queued else None
            bad = poor_network and rng.random() < 0.3
            used = ";".join(f for f in features if rng.random() < 0.05)
            rows.append(
                (
                    f"b{n}",
                    partner,
                    customer,
                    f"u{customer}-{rng.randrange(users)}",
                    started_at,
                    week,
                    rng.randrange(10, 1200),
                    "OUTBOUND",
                    endpoints[rng.randrange(len(endpoints))],
                    8.0 if bad else 0.5,
                    20.0,
                    500.0 if bad else 80.0,
                    used,
                    f"q{customer}" if queued else None,
                    rng.randrange(1, 90) if queued else None,
                    answered,
                    (not answered) if queued else None,
                )
            )
            if len(rows) >= CHUNK:
                await _write(engine, partner, rows)
                rows = []
    if rows:
        await _write(engine, partner, rows)
    return pairs


async def _write(engine: Any, partner: int, rows: list[tuple[Any, ...]]) -> None:
    for attempt in range(20):  # a shared server may refuse a connection for a while
        try:
            async with engine.begin() as conn:
                await writes_for(conn, partner)
                await insert_records(conn, rows)
            return
        except DBAPIError:
            if attempt == 19:
                raise
            await asyncio.sleep(3)
