"""The ratio histogram's fold under concurrent writers (migration 0027, PostgreSQL).

Six writers of two partners change licence lines back and forth between the same few ratios at
once. A writer moves the deployment-wide base only if it gets the fold lock, otherwise appends
its change to ``license_ratio_delta``: no writer waits on another's histogram row, so there is
no deadlock (0026, where every write upserted the shared rows, had 109 deadlocks in these 180
transactions and took 90 s; this takes about 2 s). Afterwards the base plus the pending deltas
is the recomputation from the raw tables and the medians are the reference's; one more write,
alone, folds every delta.
"""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.engine import session_factory
from db.queries.analytics.medians import low_allocation_medians
from db.versioning import writes_for
from tests import test_license_totals as lt
from tests.conftest import NOW, Api, postgresql_only
from tests.helpers import Factory

WRITERS, TRANSACTIONS = 6, 30
CHANGE = text("UPDATE license_line SET purchased = :p, assigned = :a WHERE subscription_id = :s")


async def _pending(api: Api) -> int:
    async with api.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT COUNT(*) FROM license_ratio_delta")) or 0)


@postgresql_only
async def test_concurrent_writers_of_the_same_ratios_never_deadlock_and_stay_exact(
    api: Api,
) -> None:
    f = Factory(api.engine)
    partners = [await f.partner(), await f.partner("B", "b.example")]
    owned: dict[int, list[int]] = {}  # writer -> its subscriptions (no two share a line)
    for writer in range(WRITERS):
        partner = partners[writer % 2]
        owned[writer] = []
        for n in range(3):
            customer = await f.customer(partner, f"Customer {writer}-{n}")
            owned[writer].append(await f.subscription(customer, lines=[("MEETINGS", 10, 5, 5)]))
    outcomes = {"ok": 0, "deadlock": 0, "other": 0}

    async def write(writer: int) -> None:
        rnd = random.Random(writer)
        for _ in range(TRANSACTIONS):
            try:
                async with api.engine.begin() as conn:
                    await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                    await writes_for(conn, partners[writer % 2])
                    for subscription in rnd.sample(owned[writer], 2):
                        await conn.execute(
                            CHANGE,
                            {
                                "p": rnd.choice([10, 20]),
                                "a": rnd.choice([5, 10]),
                                "s": subscription,
                            },
                        )
                outcomes["ok"] += 1
            except DBAPIError as e:
                outcomes["deadlock" if "deadlock" in str(e) else "other"] += 1

    await asyncio.gather(*(write(k) for k in range(WRITERS)))
    assert outcomes == {"ok": WRITERS * TRANSACTIONS, "deadlock": 0, "other": 0}
    async with api.engine.connect() as conn:
        await lt.histograms(conn)  # base + pending deltas == recomputed
        reference = lt.ref.medians(await lt.world(conn, 0, NOW))
    async with session_factory(api.engine)() as session:
        assert await low_allocation_medians(session, now=NOW) == reference != {}

    # one more write, with nobody else writing: it gets the lock and folds every delta
    async with api.engine.begin() as conn:
        await conn.execute(CHANGE, {"p": 40, "a": 5, "s": owned[0][0]})
    assert await _pending(api) == 0
    async with api.engine.connect() as conn:
        await lt.histograms(conn)
        reference = lt.ref.medians(await lt.world(conn, 0, NOW))
    async with session_factory(api.engine)() as session:
        assert await low_allocation_medians(session, now=NOW) == reference


@postgresql_only
async def test_a_repeatable_read_writer_appends_and_the_next_writer_folds(api: Api) -> None:
    """The fold needs a snapshot taken after the lock: a REPEATABLE READ (or SERIALIZABLE)
    transaction, whose snapshot is older, appends its change even when the lock is free; the
    next READ COMMITTED writer folds it."""
    f = Factory(api.engine)
    partner = await f.partner()
    subscriptions = [
        await f.subscription(
            await f.customer(partner, f"Customer {n}"), lines=[("MEETINGS", 10, 5, 5)]
        )
        for n in range(2)
    ]
    async with api.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            await conn.execute(CHANGE, {"p": 20, "a": 5, "s": subscriptions[0]})
    assert await _pending(api) == 2
    async with api.engine.connect() as conn:
        await lt.histograms(conn)
    async with api.engine.begin() as conn:
        await conn.execute(CHANGE, {"p": 20, "a": 10, "s": subscriptions[1]})
    assert await _pending(api) == 0
    async with api.engine.connect() as conn:
        assert await lt.histograms(conn) == (
            {("MEETINGS", 2, 0.25): 1, ("MEETINGS", 2, 0.5): 1},
            {("MEETINGS", 2, 64): 1, ("MEETINGS", 2, 128): 1},
        )
