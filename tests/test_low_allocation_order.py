"""The low-allocation section in its default order (allocation percent, then subscription).

Its page walks each size band's flagged rows in that order (``ix_license_product_total_low``,
keyed by the maintained ``allocation_tenths``) and merges the bands up to the page's size. The
data set below makes the merge's ties and edges count: flagged subscriptions of every band share
the same allocation tenths with different ratios (10.0 % is 1/10, 4/40, 10/100, 99/991, 100/999,
150/1500 ...), and in one band a subscription with the same tenths as a flagged one but a ratio
at or just over half the median is not flagged (the flag is the ratio, not its tenths). Every
way of paging through the section, small pages forward and backward in both directions, must
give the reference's rows in the reference's order (``tests/analytics_reference.py``), and the
set the data was built to flag.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from db.engine import create_engine
from db.enums import SubscriptionState
from db.migrate import alembic_config, migrate
from db.queries.analytics.common import T, tenths_bound
from graph.ids import to_global_id
from tests import analytics_reference as ref
from tests.conftest import NOW, Api, _require_backend
from tests.databases import Database, drop_pg_database, recreate_pg_database
from tests.helpers import Factory, data_of, post_graphql

DAY = timedelta(days=1)
OLD = NOW - 100 * DAY
EMAIL = "full@acme.example"


def _rows_query(backward: bool) -> str:
    variables, arguments = (
        ("$last: Int, $before: String", "last: $last, before: $before")
        if backward
        else ("$first: Int, $after: String", "first: $first, after: $after")
    )
    return (
        f"query Low({variables}, $order: LowAllocationOrder) {{ licenseAnalytics(product: "
        "MEETINGS) { lowAllocation { kpis { lowAllocationCustomers } "
        f"rows({arguments}, orderBy: $order) {{ totalCount pageInfo {{ hasNextPage "
        "hasPreviousPage startCursor endCursor } nodes { customerName subscriptionNodeId "
        "allocationPercent sizeBand } } } } }"
    )


FORWARD, BACKWARD = _rows_query(False), _rows_query(True)

# Per band: purchased and assigned of the flagged subscriptions, all below half the median of
# 0.9 (0.45): most at 10.0 % with different ratios, three at 0 %, one at 9.8 %, and up to
# 44.95 % (45.0 % once rounded, the tenths of the edge below).
FLAGGED: dict[int, list[tuple[int, int]]] = {
    1: [(10, 1), (10, 1), (10, 0), (10, 4)],
    2: [(40, 4), (20, 2), (40, 4), (41, 4), (49, 5), (49, 22)],
    3: [(100, 10), (100, 10), (250, 25), (200, 0), (89 * 2, 80)],
    4: [(999, 100), (991, 99), (1000, 100), (1000, 100), (1000, 449), (1000, 0)],
    5: [(1500, 150), (1505, 151), (2000, 200), (2000, 899)],
}
# Same tenths (45.0 %) as a flagged 44.96 % but a ratio at or over half the median: not flagged.
EDGE = [(1000, 450), (10000, 4504)]
# What makes every band's median 0.9: more subscriptions at 0.9 than flagged ones.
FINE = {1: (10, 9), 2: (40, 36), 3: (100, 90), 4: (1000, 900), 5: (2000, 1800)}


async def _world(api: Api) -> tuple[ref.World, set[str]]:
    """The data set, as the reference sees it, and the names built to be flagged."""
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, EMAIL, "FULL_ADMIN")
    subs: list[ref.Sub] = []
    flagged: set[str] = set()

    async def add(
        name: str,
        purchased: int,
        assigned: int,
        *,
        state: str = SubscriptionState.ACTIVE.value,
        start: Any = OLD,
        end: Any = NOW + 265 * DAY,
    ) -> None:
        customer = await f.customer(partner, name)
        line = ("MEETINGS", purchased, assigned, assigned // 2)
        pk = await f.subscription(customer, state=state, start=start, end=end, lines=[line])
        subs.append(
            ref.Sub(
                pk=pk,
                customer_pk=customer,
                customer_gid=to_global_id("Customer", customer),
                customer_name=name,
                gid=to_global_id("Subscription", pk),
                ref="",
                kind="PAID",
                state=state,
                start=start,
                end=end,
                auto_renew=True,
                renewal=end,
                lines=(ref.Line("MEETINGS", "Standard", purchased, assigned, assigned // 2),),
            )
        )

    for band, rows in FLAGGED.items():
        for i, (purchased, assigned) in enumerate(rows):
            name = f"Low {band}.{i}"
            await add(name, purchased, assigned)
            flagged.add(name)
        for i in range(len(rows) + 3):
            await add(f"Fine {band}.{i}", *FINE[band])
    for i, (purchased, assigned) in enumerate(EDGE):
        await add(f"Edge {i}", purchased, assigned)
    # Low ratios that are not flagged: not ACTIVE, ended, not started, younger than 30 days.
    await add("Suspended", 100, 10, state=SubscriptionState.SUSPENDED.value)
    await add("Expired", 100, 10, state=SubscriptionState.EXPIRED.value)
    await add("Ended", 100, 10, end=NOW - DAY)
    await add("Not started", 100, 10, start=NOW + DAY)
    await add("Young", 100, 10, start=NOW - 10 * DAY)
    deployment = [
        (line.product, line.purchased, line.assigned)
        for s in subs
        if s.in_force(NOW)
        for line in s.lines
    ]
    return ref.World(now=NOW, subs=subs, snapshots=[], deployment=deployment), flagged


async def _walk(api: Api, size: int, direction: str, backward: bool) -> list[dict[str, Any]]:
    """Every row over all pages, in the order of ``direction``: forward by ``first``/``after``,
    or backward by ``last``/``before`` from the end (pages then prepended)."""
    order = {"field": "ALLOCATION_PERCENT", "direction": direction}
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        if backward:
            variables = {"last": size, "before": cursor, "order": order}
        else:
            variables = {"first": size, "after": cursor, "order": order}
        query = BACKWARD if backward else FORWARD
        body = data_of(await post_graphql(api, query, variables, as_=EMAIL))
        page = body["licenseAnalytics"]["lowAllocation"]["rows"]
        info = page["pageInfo"]
        assert 0 < len(page["nodes"]) <= size
        if backward:
            rows = page["nodes"] + rows
            if not info["hasPreviousPage"]:
                return rows
            cursor = info["startCursor"]
        else:
            rows += page["nodes"]
            if not info["hasNextPage"]:
                return rows
            cursor = info["endCursor"]


async def test_low_allocation_pages_merge_the_bands_in_the_reference_order(api: Api) -> None:
    # given
    world, built_flagged = await _world(api)
    want = ref.sections(world, "MEETINGS")["lowAllocation"]["rows"]
    assert {r["customerName"] for r in want} == built_flagged  # the reference agrees
    tenths = [round(r["allocationPercent"] * 10) for r in want]
    assert tenths.count(100) >= 12 and 450 in tenths  # ties across bands, and the edge

    for direction in ("ASC", "DESC"):
        expected = [
            (r["customerName"], r["subscriptionNodeId"], r["allocationPercent"], r["sizeBand"])
            for r in ref.ordered(want, "ALLOCATION_PERCENT", direction)
        ]
        for size in (1, 3, 7, 100):
            for backward in (False, True):
                # when
                rows = await _walk(api, size, direction, backward)

                # then
                got = [
                    (r["customerName"], r["subscriptionNodeId"], r["allocationPercent"],
                     r["sizeBand"])
                    for r in rows
                ]  # fmt: skip
                assert got == expected, (direction, size, backward)


async def test_the_first_page_and_the_kpis_count_the_flagged_rows_alone(api: Api) -> None:
    # given
    _, built_flagged = await _world(api)

    # when: the default order
    body = data_of(await post_graphql(api, FORWARD, {"first": 5}, as_=EMAIL))

    # then
    low = body["licenseAnalytics"]["lowAllocation"]
    assert low["rows"]["totalCount"] == len(built_flagged)
    assert low["kpis"]["lowAllocationCustomers"] == len(built_flagged)
    assert [r["allocationPercent"] for r in low["rows"]["nodes"]] == [0.0] * 3 + [9.8, 10.0]
    assert low["rows"]["pageInfo"]["hasNextPage"] is True


def test_the_tenths_bound_keeps_every_ratio_below_the_half() -> None:
    # given: every fraction a / p with p up to 400, and halves (doubles, as the halved medians
    # are) at it and just over it, where round-half-up puts its tenths over the half's
    fractions = {(a, p) for p in range(1, 401) for a in range(p + 1)}
    checked = 0
    for a, p in fractions:
        tenths = (2000 * a + p) // (2 * p)  # tenths_sql, as the generated column computes it
        ratio = a / p
        for half in (ratio, ratio * (1 + 1e-15), ratio + 1e-9, ratio + 0.0005, ratio + 0.001):
            # when
            bound = tenths_bound(half)

            # then: a flagged ratio (below the half) lies within the bound
            if ratio < half:
                assert tenths <= bound, (a, p, half)
                checked += 1
    assert checked > 100_000


# --- migration 0028 on existing data -------------------------------------------------------------


async def test_migration_0028_gives_existing_totals_their_tenths_and_vacuums(
    backend: str, tmp_path: Path
) -> None:
    await _require_backend(backend)
    # given: a database just before 0028 with totals of every kind of ratio (none purchased
    # included)
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/before_0028.db"
    else:
        url = await recreate_pg_database(f"partner_hub_test_m0028_{id(tmp_path)}")
    db = Database(backend=backend, url=url, engine=create_engine(url))
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, url, _before_0028(url))
        f = Factory(db.engine)
        partner = await f.partner()
        customer = await f.customer(partner, "Old Ltd")
        lines = [(10, 1), (41, 4), (999, 100), (2000, 899), (7, 7), (3, 9), (0, 5), (0, 0)]
        for purchased, assigned in lines:
            await f.subscription(customer, lines=[("MEETINGS", purchased, assigned, 0)])

        # when
        await migrate(db.engine)
        await f.subscription(customer, lines=[("MEETINGS", 49, 22, 0)])  # a total written after

        # then
        async with db.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(T.purchased, T.assigned, T.allocation_tenths).order_by(T.subscription_id)
                )
            ).all()
            if backend == "postgresql":
                vacuumed = (
                    await connection.execute(
                        text(
                            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables "
                            "WHERE relname = 'license_product_total'"
                        )
                    )
                ).scalar_one()
        assert [(p, a) for p, a, _ in rows] == [*lines, (49, 22)]
        assert [t for _, _, t in rows] == [
            (2000 * a + p) // (2 * p) if p > 0 else 0 for p, a, _ in rows
        ]
        assert [t for _, _, t in rows][:4] == [100, 98, 100, 450]
        if backend == "postgresql":
            # the STORED column rewrote the table (no visibility map): vacuumed by hand (not
            # autovacuum: ``last_vacuum``), its index-only scans stay index-only
            assert vacuumed is True
    finally:
        await db.engine.dispose()
        if backend == "postgresql":
            await drop_pg_database(url.rsplit("/", 1)[1])


def _before_0028(url: str) -> str:
    script = ScriptDirectory.from_config(alembic_config(url))
    revision = script.get_revision("0028_low_allocation_order")
    assert revision is not None and isinstance(revision.down_revision, str)
    return revision.down_revision


def _upgrade_to(connection: Any, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
