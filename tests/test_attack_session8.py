"""Attacks on session 8's changes, black-box through the ASGI app, on both backends.

- The license KPI figures (one statement per shape, the partner, instants and halved medians
  bound; day edges read as blocks of 32 and 1,024 days, today's as per-instant edges) at odd
  instants: midnight and a microsecond either side, block boundaries, 1970-01-01 and
  9998-12-31, spans of zero length, a span of two microseconds across midnight.
- Shared-shape statements asked by two partners and scoped roles interleaved; cursors of one
  partner's or one direction's low-allocation page refused on another.
- Section rows' lazy cursors: ``edges`` asked through fragments, directives and aliases.
- Never a 500 on odd arguments.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text

from db.engine import create_engine, session_factory
from db.license_kpis import LICENSE_KPI_SPAN as SPAN
from db.migrate import migrate
from db.queries.admins import issue_token
from db.settings import Settings
from graph.app import create_app
from tests import analytics_reference as ref
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql
from tests.test_license_totals import check_rollups, world
from tests.test_low_allocation_order import _upgrade_to

DAY = timedelta(days=1)
US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
B1024 = EPOCH + 20480 * DAY  # 2026-01-27, a 1,024-day (and 32-day) block's first day
B32 = EPOCH + 20800 * DAY  # 2026-12-13, a 32-day block's first day
LAST = datetime(9998, 12, 31, tzinfo=UTC)

KPIS = "licenseKpis { totalCustomers aboutToExpire aboutToRenew lowAllocation overLicenseLimit }"
SECTION_KPIS = {
    "recentlyAdded": "newCustomers totalLicenses",
    "aboutToExpire": "expiringCustomers allocationPercent usagePercent",
    "aboutToRenew": "renewingCustomers allocationPercent usagePercent",
    "lowAllocation": "lowAllocationCustomers allocationPercent usageWhenAssignedPercent "
    "unassignedLicenses",
    "overage": "overageCustomers overageLicenses averageOverage",
}
ROW = "subscriptionId totalLicenses assigned used allocationPercent"
DASHBOARD = (
    "query D($product: AnalyticsProduct!) { "
    + KPIS
    + " licenseAnalytics(product: $product) { "
    + " ".join(
        f"{name} {{ kpis {{ {kpis} }} rows(first: 100) {{ totalCount "
        f"pageInfo {{ hasNextPage }} nodes {{ {ROW} }} }} }}"
        for name, kpis in SECTION_KPIS.items()
    )
    + " } }"
)
DEFAULT = {
    "recentlyAdded": ("DAYS_SINCE_ADDED", "ASC"),
    "aboutToExpire": ("DAYS_UNTIL_EXPIRY", "ASC"),
    "aboutToRenew": ("DAYS_UNTIL_RENEWAL", "ASC"),
    "lowAllocation": ("ALLOCATION_PERCENT", "ASC"),
    "overage": ("OVERAGE", "DESC"),
}


@asynccontextmanager
async def client_at(api: Api, now: datetime) -> AsyncIterator[Api]:
    """The app over the test's database with the clock pinned at ``now``."""
    settings = Settings(database_url=api.db.url, now=now, secret_key="test-secret")
    app = create_app(settings, engine=api.engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(
                db=api.db, settings=settings, client=client, counter=api.counter, tokens=api.tokens
            )
    finally:
        await app.state.hub.stop()


async def _token(api: Api, admin_id: int) -> str:
    async with session_factory(api.engine)() as session:
        token = await issue_token(session, admin_id=admin_id, now=NOW)
        await session.commit()
    return token


def _expected_rows(w: ref.World, product: str) -> dict[str, Any]:
    out = {}
    for name, section in ref.sections(w, product).items():
        column, direction = DEFAULT[name]
        rows = ref.ordered(section["rows"], column, direction)
        out[name] = {
            "kpis": section["kpis"],
            "rows": {
                "totalCount": len(rows),
                "pageInfo": {"hasNextPage": False},
                "nodes": [{k: r[k] for k in ROW.split()} for r in rows],
            },
        }
    return out


# --- 1. figures at odd instants ------------------------------------------------------------------


async def _odd_world(api: Api) -> tuple[list[int], list[int]]:
    """Two partners; subscriptions whose edges fall on midnights, block boundaries, a
    microsecond either side of them, the first and last dates the API allows, and spans of
    zero length. Returns (partners, admins)."""
    f = Factory(api.engine)
    partners, admins = [], []
    for p in (1, 2):
        partner = await f.partner(f"Partner {p}", f"p{p}.example")
        partners.append(partner)
        admins.append(await f.admin(partner, f"full@p{p}.example", "FULL_ADMIN"))
        cs = [await f.customer(partner, f"Customer {p}{c}") for c in range(6)]
        low = [("MEETINGS", 10, 1, 1), ("CALLING", 0, 0, 0)]  # purchased 0: never a ratio
        fine = [("MEETINGS", 10, 9, 5), ("CALLING", 40, 36, 30)]
        over = [("MEETINGS", 5, 7, 2), ("CALLING", 40, 3, 3)]
        spans = [
            # (customer, kind, start, end, auto-renew, lines)
            (0, "PAID", B1024 - US, B1024 + US, False, low),  # two microseconds over midnight
            (0, "PAID", B1024, B1024, True, over),  # zero length at midnight
            (1, "PAID", B1024 - 31 * DAY, B1024 + 90 * DAY, True, low),
            (1, "TRIAL", B1024 - 89 * DAY - US, B1024 + US, False, fine),
            (2, "PAID", EPOCH, LAST, False, low),  # the whole range the API allows
            (2, "PAID", EPOCH, EPOCH + US, True, over),
            (3, "PAID", B32 - 30 * DAY, B32 + 90 * DAY - US, True, over),
            (3, "PAID", B32 - US, B32, False, fine),
            (4, "PAID", B32, B32 + US, False, fine),
            (4, "TRIAL", B32 - 90 * DAY, B32 + 90 * DAY, False, low),
            (5, "PAID", LAST - 90 * DAY, LAST, True, over),
            (5, "PAID", LAST - DAY, LAST - DAY, False, fine),  # zero length, not at midnight
            (5, "PAID", B1024 - 1024 * DAY, B1024 + 32 * DAY, False, fine),
        ]
        if p == 2:
            spans = spans[::2]  # the other partner: different figures at the same instants
        for c, kind, start, end, renew, lines in spans:
            await f.subscription(
                cs[c], kind=kind, start=start, end=end, auto_renew=renew, lines=lines
            )
    return partners, admins


INSTANTS = [
    B1024 - US,
    B1024,
    B1024 + US,
    B1024 + 90 * DAY - US,
    B1024 + 90 * DAY,
    B32 - US,
    B32,
    B32 + US,
    B32 + 90 * DAY - US,
    EPOCH,
    EPOCH + US,
    LAST - 90 * DAY - US,
    LAST - DAY,
    LAST - US,
    NOW,
]


async def test_figures_are_exact_at_odd_instants(api: Api) -> None:
    partners, admins = await _odd_world(api)
    tokens = [await _token(api, a) for a in admins]
    for now in INSTANTS:
        async with client_at(api, now) as at:
            for partner, token in zip(partners, tokens, strict=True):
                async with api.engine.connect() as conn:
                    w = await world(conn, partner, now)
                for product in ("MEETINGS", "CALLING"):
                    body = await post_graphql(at, DASHBOARD, {"product": product}, token=token)
                    got = data_of(body)
                    assert got["licenseKpis"] == ref.license_kpis(w), (now, partner)
                    assert got["licenseAnalytics"] == _expected_rows(w, product), (
                        now,
                        partner,
                        product,
                    )


async def test_migration_0030_rebuilds_the_spans_the_rounded_shift_left_late(
    tmp_path: Path,
) -> None:
    """SQLite: before 0030 the span triggers shifted a date by 90 days through ``datetime()``,
    which rounds .9995 s up to the next second. A database whose triggers still do (0021's
    old text, put back by hand) gets its spans rebuilt and its triggers fixed by 0030."""
    url = f"sqlite+aiosqlite:///{tmp_path}/before_0030.db"
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, url, "0028_low_allocation_order")
            old = re.compile(r"datetime\(substr\(([^,]+), 1, 19\),")
            for name, sql in (
                await connection.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master WHERE name LIKE 'license_kpi_spans_%'"
                    )
                )
            ).all():
                await connection.execute(text(f"DROP TRIGGER {name}"))
                await connection.execute(text(old.sub(r"datetime(\1,", sql)))
        f = Factory(engine)
        partner = await f.partner()
        customer = await f.customer(partner, "Late Ltd")
        other = await f.customer(partner, "Whole Seconds Ltd")
        late = B32 + 90 * DAY - US  # its renewing span starts at B32 - US
        await f.subscription(customer, start=B32 - 30 * DAY, end=late, auto_renew=True)
        await f.subscription(other, start=B32 - 30 * DAY, end=B32 + 90 * DAY, auto_renew=True)

        async def renewing_from() -> list[Any]:
            async with engine.connect() as conn:
                return list(
                    (
                        await conn.execute(
                            select(SPAN.c.customer_id, SPAN.c.valid_from)
                            .where(SPAN.c.kpi == "ANY/RENEWING")
                            .order_by(SPAN.c.customer_id)
                        )
                    ).all()
                )

        assert await renewing_from() == [(customer, B32 + US * 999999), (other, B32)]  # the bug

        # when
        await migrate(engine)

        # then: the spans are the select's, their day edges, blocks and instants follow
        assert await renewing_from() == [(customer, B32 - US), (other, B32)]
        await check_rollups(engine)
        # and a later write goes through the fixed triggers
        await f.subscription(customer, start=B32 - 30 * DAY, end=late + DAY, auto_renew=True)
        async with engine.connect() as conn:
            froms = (
                await conn.execute(
                    select(SPAN.c.valid_from).where(
                        SPAN.c.kpi == "MEETINGS/RENEWING",
                        SPAN.c.customer_id == customer,
                        SPAN.c.subscription_id != 0,  # each subscription's, not the union
                    )
                )
            ).scalars()
            assert sorted(froms) == [B32 - US, B32 + DAY - US]
        await check_rollups(engine)
    finally:
        await engine.dispose()
