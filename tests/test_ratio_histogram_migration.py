"""Migration 0027 (issue 16): the ratio histogram of the medians becomes per partner.

An existing database at 0026 (one deployment-wide row per product, band and ratio, rows left at
0 included) is upgraded: the rows are recomputed per partner, their sum over partners is the old
histogram without its zeros, and the medians do not move. The triggers keep the new shape on the
next write; the downgrade gives back 0026's shape, kept by 0026's triggers, and upgrading again
works. Both backends.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text

from db.engine import session_factory
from db.license_totals import RATIO_BUCKETS
from db.queries.analytics.medians import low_allocation_medians
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


async def _change(db: Database, subscription: int, purchased: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE license_line SET purchased = :p WHERE subscription_id = :s"),
            {"p": purchased, "s": subscription},
        )


async def _check_per_partner(db: Database) -> None:
    async with db.engine.connect() as conn:
        await histograms(conn)  # kept == recomputed per partner, no row at 0


async def test_migration_0027_recomputes_the_histogram_per_partner_and_downgrades(
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
        medians = await _medians(db)
        assert medians

        # when: upgraded
        await _run_alembic(db, "upgrade", "head")

        # then: per partner, the same sums, no zeros, the same medians
        assert "partner_id" in await _columns(db, "license_ratio_count")
        assert "partner_id" in await _columns(db, "license_ratio_bucket")
        await _check_per_partner(db)
        assert await _zeros(db) == 0
        assert await _deployment_wide(db) == old
        assert await _medians(db) == medians
        # and the new triggers keep it on the next writes
        await _change(db, subs[0], 20)
        await _change(db, subs[2], 20)
        await _check_per_partner(db)
        moved = await _deployment_wide(db)
        assert moved[("MEETINGS", 2, 0.25)] == 2 and ("MEETINGS", 1, 0.5) not in moved

        medians = await _medians(db)

        # when: downgraded to 0026
        await _run_alembic(db, "downgrade", BEFORE)

        # then: 0026's shape, the same sums, kept by 0026's triggers
        assert "partner_id" not in await _columns(db, "license_ratio_count")
        assert "partner_id" not in await _columns(db, "license_ratio_bucket")
        assert await _deployment_wide(db) == moved
        assert await _buckets(db) == _bucketed(moved)
        assert await _medians(db) == medians
        await _change(db, subs[0], 10)
        moved = {**moved, ("MEETINGS", 2, 0.25): 1, ("MEETINGS", 1, 0.5): 1}
        assert await _deployment_wide(db) == moved
        assert await _buckets(db) == _bucketed(moved)

        # and upgraded again
        await _run_alembic(db, "upgrade", "head")
        await _check_per_partner(db)
        await _change(db, subs[2], 10)
        await _check_per_partner(db)
        assert (await _deployment_wide(db))[("MEETINGS", 1, 0.5)] == 2
    finally:
        await db.engine.dispose()
        if backend == "postgresql":
            await drop_pg_database(db.url.rsplit("/", 1)[1])
