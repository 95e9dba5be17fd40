"""Migration 0027 (issue 16): the ratio histogram of the medians gets pending deltas.

An existing database at 0026 (one deployment-wide row per product, band and ratio, rows left at
0 included) is upgraded: the base is recomputed from the totals (the old histogram without its
zeros), an empty ``license_ratio_delta`` is created, and the medians do not move. The triggers
keep base plus deltas equal to the recomputation on the next writes; on PostgreSQL a write made
while another transaction holds the fold lock is left pending, and the downgrade folds it before
giving back 0026's shape, kept by 0026's triggers; upgrading again works. Both backends.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text

from db.engine import session_factory
from db.license_totals import RATIO_BUCKETS, RATIO_FOLD_LOCK
from db.queries.analytics.medians import low_allocation_medians
from tests import test_license_totals as lt
from tests.conftest import NOW, _require_backend
from tests.databases import Database, drop_pg_database
from tests.helpers import Factory
from tests.test_license_totals import histograms
from tests.test_partner_counters import _database_at, _run_alembic

BEFORE = "0026_totals_truncate"


async def _deployment_wide(db: Database) -> dict[tuple[str, int, float], int]:
    """(product, band, ratio) -> n summed over whatever else the key holds; zeros left out."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT product, band, ratio, SUM(n) FROM license_ratio_count "
                "GROUP BY product, band, ratio HAVING SUM(n) <> 0"
            )
        )
        return {(p, int(b), float(r)): int(n) for p, b, r, n in rows}


async def _buckets(db: Database) -> dict[tuple[str, int, int], int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT product, band, bucket, SUM(n) FROM license_ratio_bucket "
                "GROUP BY product, band, bucket HAVING SUM(n) <> 0"
            )
        )
        return {(p, int(b), int(k)): int(n) for p, b, k, n in rows}


def _bucketed(ratios: dict[tuple[str, int, float], int]) -> dict[tuple[str, int, int], int]:
    out: dict[tuple[str, int, int], int] = {}
    for (product, band, ratio), n in ratios.items():
        key = (product, band, math.floor(ratio * RATIO_BUCKETS))
        out[key] = out.get(key, 0) + n
    return out


async def _columns(db: Database, table: str) -> list[str]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda c: [column["name"] for column in sa.inspect(c).get_columns(table)]
        )


async def _zeros(db: Database) -> int:
    async with db.engine.connect() as conn:
        counts = [
            await conn.scalar(text(f"SELECT COUNT(*) FROM {table} WHERE n = 0"))
            for table in ("license_ratio_count", "license_ratio_bucket")
        ]
    return sum(int(c or 0) for c in counts)


async def _medians(db: Database) -> Any:
    async with session_factory(db.engine)() as session:
        return await low_allocation_medians(session, now=NOW)


async def _reference(db: Database) -> Any:
    """The medians recomputed from the raw tables (tests/analytics_reference.py)."""
    async with db.engine.connect() as conn:
        return lt.ref.medians(await lt.world(conn, 0, NOW))


async def _change(db: Database, subscription: int, purchased: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE license_line SET purchased = :p WHERE subscription_id = :s"),
            {"p": purchased, "s": subscription},
        )


async def _check(db: Database) -> None:
    async with db.engine.connect() as conn:
        await histograms(conn)  # base + pending deltas == recomputed


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def _change_pending(db: Database, subscription: int, purchased: int) -> None:
    """PostgreSQL: the change made while another transaction holds the fold lock, so that it
    is appended to the pending deltas."""
    async with db.engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RATIO_FOLD_LOCK})
        await _change(db, subscription, purchased)
        await holder.rollback()
    async with db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT COUNT(*) FROM license_ratio_delta")) == 2


async def test_migration_0027_adds_pending_deltas_and_downgrades(
    backend: str, tmp_path: Path
) -> None:
    await _require_backend(backend)
    # given: a database at 0026 with two partners whose subscriptions share ratios
    db = await _database_at(backend, tmp_path, BEFORE)
    try:
        f = Factory(db.engine)
        acme, globex = await f.partner(), await f.partner("Globex", "globex.example")
        subs = []
        for partner, lines in (
            (acme, [("MEETINGS", 10, 5, 5)]),
            (acme, [("MEETINGS", 10, 2, 2), ("CALLING", 40, 30, 9)]),
            (globex, [("MEETINGS", 10, 5, 5)]),
            (globex, [("CALLING", 40, 30, 1)]),
            (globex, [("MEETINGS", 300, 75, 1)]),
        ):
            customer = await f.customer(partner, f"Customer {len(subs)}")
            subs.append(await f.subscription(customer, lines=lines))
        await _change(db, subs[4], 400)  # 0026 leaves (MEETINGS, 4, 0.25) at n = 0
        assert await _zeros(db) > 0
        old = await _deployment_wide(db)
        assert old[("MEETINGS", 1, 0.5)] == 2 and old[("CALLING", 2, 0.75)] == 2

        # when: upgraded
        await _run_alembic(db, "upgrade", "head")

        # then: the deployment-wide base recomputed (no zeros), no deltas, the same medians
        assert "license_ratio_delta" in await _tables(db)
        assert "partner_id" not in await _columns(db, "license_ratio_count")
        await _check(db)
        assert await _zeros(db) == 0
        assert await _deployment_wide(db) == old
        assert await _buckets(db) == _bucketed(old)
        assert await _medians(db) == await _reference(db) != {}
        # and the new triggers keep it on the next writes
        await _change(db, subs[0], 20)
        await _change(db, subs[2], 20)
        await _check(db)
        moved = await _deployment_wide(db)
        assert moved[("MEETINGS", 2, 0.25)] == 2 and ("MEETINGS", 1, 0.5) not in moved
        if backend == "postgresql":  # a change left pending: the downgrade must fold it
            await _change_pending(db, subs[0], 10)
            await _check(db)
            moved = {**moved, ("MEETINGS", 2, 0.25): 1, ("MEETINGS", 1, 0.5): 1}
            assert await _deployment_wide(db) != moved  # (the base alone lacks it)
        assert await _medians(db) == await _reference(db)

        # when: downgraded to 0026
        await _run_alembic(db, "downgrade", BEFORE)

        # then: 0026's shape, the same sums, kept by 0026's triggers
        assert "license_ratio_delta" not in await _tables(db)
        assert await _deployment_wide(db) == moved
        assert await _buckets(db) == _bucketed(moved)
        await _change(db, subs[2], 10)
        moved = {**moved, ("MEETINGS", 2, 0.25): moved[("MEETINGS", 2, 0.25)] - 1}
        moved[("MEETINGS", 1, 0.5)] = moved.get(("MEETINGS", 1, 0.5), 0) + 1
        moved = {k: n for k, n in moved.items() if n}
        assert await _deployment_wide(db) == moved
        assert await _buckets(db) == _bucketed(moved)

        # and upgraded again
        await _run_alembic(db, "upgrade", "head")
        await _check(db)
        assert await _deployment_wide(db) == moved
        assert await _medians(db) == await _reference(db)
        await _change(db, subs[4], 300)
        await _check(db)
        assert (await _deployment_wide(db))[("MEETINGS", 4, 0.25)] == 1
    finally:
        await db.engine.dispose()
        if backend == "postgresql":
            await drop_pg_database(db.url.rsplit("/", 1)[1])
