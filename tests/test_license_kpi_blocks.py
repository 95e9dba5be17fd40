"""The day edges' blocks (``license_kpi_block``, migration 0029) follow an operator's TRUNCATE
on PostgreSQL, and the migration builds, drops and rebuilds them from the day edges.

The property tests of ``tests/test_license_totals.py`` check the blocks against the days after
every random write on both backends; here: what no row trigger sees (TRUNCATE) and the
migration's own backfill and downgrade.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.license_kpis import LICENSE_KPI_BLOCK, LICENSE_KPI_DAY, LICENSE_KPI_SPAN, WEIGHTS
from db.migrate import alembic_config
from db.models import Subscription
from tests.conftest import NOW, Api, _require_backend, postgresql_only
from tests.databases import make_database
from tests.helpers import Factory
from tests.test_license_totals import check_rollups

REVISION = "0029_kpi_day_blocks"
SPAN_KEY = ("customer_id", "partner_id", "kpi", "subscription_id", "valid_from")


async def _history(engine: AsyncEngine, partners: int = 2, first: int = 0) -> None:
    """Subscriptions starting from ~4 years back to 2 months ahead: edges in several blocks of
    1,024 days and many of 32, for two partners."""
    factory = Factory(engine)
    for p in range(first, first + partners):
        partner = await factory.partner(f"Partner {p}", f"p{p}.example")
        for c in range(4):
            customer = await factory.customer(partner, f"Customer {p}{c}")
            for n, back in enumerate((1500, 1030, 400, 95, 33, 1, -60)):
                start = NOW - timedelta(days=back - c * 7, hours=p)
                await factory.subscription(
                    customer,
                    start=start,
                    end=start + timedelta(days=40 + 97 * n),
                    auto_renew=(n + c) % 2 == 0,
                    lines=[("MEETINGS" if n % 3 else "CALLING", 10 + n, 5 + c * n, 3)],
                )


async def _blocks(engine: AsyncEngine) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The blocks with a non-zero weight (rows at zero may stay: readers never mind them)."""
    b = LICENSE_KPI_BLOCK.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(b.partner_id, b.kpi, b.level, b.block, *[b[w] for w in WEIGHTS])
        )
        return {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:])}


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE license_kpi_day",
        "TRUNCATE license_kpi_span",
        "TRUNCATE license_line CASCADE",
        "TRUNCATE subscription CASCADE",
    ],
)
async def test_a_truncate_empties_the_blocks_and_they_keep_following(
    api: Api, statement: str
) -> None:
    # given
    await _history(api.engine, partners=1)
    before = await _blocks(api.engine)
    assert {level for _, _, level, _ in before} == {5, 10}
    assert len({block for _, _, level, block in before if level == 10}) >= 2
    await check_rollups(api.engine)

    # when
    async with api.engine.begin() as conn:
        await conn.execute(text(statement))

    # then: nothing left to sum, and later writes are summed again
    assert await _blocks(api.engine) == {}
    await check_rollups(api.engine)
    await _history(api.engine, partners=1, first=1)
    assert await _blocks(api.engine) != {}
    await check_rollups(api.engine)


async def _alembic(engine: AsyncEngine, action: str, revision: str) -> None:
    def run(connection: object) -> None:
        config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def test_migration_0029_down_and_up_rebuilds_the_same_blocks(
    backend: str, tmp_path: Path
) -> None:
    await _require_backend(backend)
    # given: a database at head with history, blocks kept by the triggers
    db = await make_database(backend, "partner_hub_test_m0029", str(tmp_path))
    before_0029 = (
        ScriptDirectory.from_config(alembic_config(db.url)).get_revision(REVISION).down_revision
    )
    assert isinstance(before_0029, str)
    try:
        await _history(db.engine)
        kept = await _blocks(db.engine)
        assert kept
        await check_rollups(db.engine)

        # when: down (the table goes) and up again (built from the day edges)
        await _alembic(db.engine, "downgrade", before_0029)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert "license_kpi_block" not in tables and "license_kpi_day" in tables
        await _alembic(db.engine, "upgrade", "head")

        # then: the same blocks, and the triggers keep them again
        assert await _blocks(db.engine) == kept
        await check_rollups(db.engine)
        async with db.engine.begin() as conn:
            first = (await conn.execute(select(sa.func.min(Subscription.id)))).scalar_one()
            await conn.execute(
                text("DELETE FROM license_line WHERE subscription_id = :s"), {"s": first}
            )
            await conn.execute(delete(Subscription).where(Subscription.id == first))  # type: ignore[arg-type]
            # An operator's own writes to the spans and the day edges: weights changed, an end
            # moved, a key moved.
            span = LICENSE_KPI_SPAN.c
            await conn.execute(
                sa.update(LICENSE_KPI_SPAN)
                .where(span.kpi == "ANY/EXPIRING")
                .values(used=span.used + 7)
            )
            one = (await conn.execute(select(LICENSE_KPI_SPAN).limit(1))).one()
            await conn.execute(
                sa.update(LICENSE_KPI_SPAN)
                .where(*[span[c] == one._mapping[c] for c in SPAN_KEY])
                .values(valid_to=one.valid_to + timedelta(hours=5))
            )
            day = LICENSE_KPI_DAY.c
            await conn.execute(sa.update(LICENSE_KPI_DAY).values(customers=day.customers + 1))
            await conn.execute(
                sa.update(LICENSE_KPI_DAY)
                .where(day.kpi == "ANY/TOTAL")
                .values(day=day.day + 100_000, used=day.used + 2)
            )
        await _history(db.engine, partners=1, first=2)
        assert await _blocks(db.engine) != kept
        await check_rollups(db.engine)
    finally:
        await db.dispose()
