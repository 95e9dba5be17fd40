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

import asyncio
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
from graph.ids import from_global_id
from tests import analytics_reference as ref
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, error_codes, post_graphql
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


# --- 2. shared shapes across partners and roles; cursors --------------------------------------

VISIBLE = """
query Visible($after: String) {
  customers(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } }
}
"""
LOW_PAGE = """
query Low($product: AnalyticsProduct!, $first: Int!, $after: String, $order: LowAllocationOrder) {
  licenseAnalytics(product: $product) {
    lowAllocation {
      rows(first: $first, after: $after, orderBy: $order) { ...Page }
    }
  }
}
"""
LOW_BACK = """
query Low($product: AnalyticsProduct!, $last: Int, $before: String, $order: LowAllocationOrder) {
  licenseAnalytics(product: $product) {
    lowAllocation {
      rows(last: $last, before: $before, orderBy: $order) { ...Page }
    }
  }
}
"""
LOW_BOTH = """
query Low($product: AnalyticsProduct!) {
  licenseAnalytics(product: $product) {
    lowAllocation { rows(first: 1, last: 1) { ...Page } }
  }
}
"""
PAGE_FRAGMENT = """
fragment Page on LowAllocationConnection {
  totalCount
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  nodes { subscriptionId allocationPercent }
}
"""
ROLES = {  # email -> (role, customers assigned by index)
    "full@p1.example": ("FULL_ADMIN", ()),
    "partner@p1.example": ("PARTNER_ADMIN", (0, 1, 2, 5)),
    "readonly@p1.example": ("READ_ONLY_ADMIN", ()),
    "sales@p1.example": ("SALES_ADMIN", (3,)),
    "viewer@p1.example": ("VIEWER", (1, 4, 6)),
    "full@p2.example": ("FULL_ADMIN", ()),
}


async def _shared_world(api: Api) -> dict[str, int]:
    """Two partners whose low-allocation rows tie on tenths across bands (10.0 %: 1/10, 4/40,
    10/100, 100/1000, 150/1500), sit on the half-median edge, buy nothing or over-assign;
    admins of every kind. Returns email -> partner id."""
    f = Factory(api.engine)
    partner_of: dict[str, int] = {}
    old = NOW - 100 * DAY
    for p in (1, 2):
        partner = await f.partner(f"Partner {p}", f"p{p}.example")
        customers = [await f.customer(partner, f"Customer {p}{c:02d}") for c in range(8)]
        # every band's median 0.9: more subscriptions at 0.9 than low ones
        for c, (purchased, assigned) in enumerate(
            [(10, 9), (40, 36), (100, 90), (1000, 900), (2000, 1800)] * 3
        ):
            await f.subscription(
                customers[c % 8], start=old, lines=[("MEETINGS", purchased, assigned, 1)]
            )
        low = [(10, 1), (40, 4), (100, 10), (1000, 100), (1500, 150), (10, 0), (1000, 449)]
        low += [(1000, 450), (40, 18), (0, 3), (5, 9), (2000, 899), (2000, 900)]
        if p == 2:
            low = low[1::2]
        for c, (purchased, assigned) in enumerate(low):
            lines = [("MEETINGS", purchased, assigned, c), ("CALLING", purchased, assigned, 0)]
            await f.subscription(customers[(c * 3) % 8], start=old, lines=lines)
        for email, (role, assigned) in ROLES.items():
            if not email.endswith(f"@p{p}.example"):
                continue
            partner_of[email] = partner
            if role == "VIEWER":
                continue
            admin = await f.admin(partner, email, role)
            for c in assigned:
                await f.assign(customers[c], admin)
    return partner_of


async def _custom_viewer(api: Api, partner_of: dict[str, int]) -> None:
    from tests.authz_support import create_admin, create_role

    rules = [("customer", "read", "assigned"), ("analytics", "read", "assigned")]
    body = await create_role(api, "full@p1.example", "VIEWER", rules)
    assert not body.get("errors"), body
    gid = await create_admin(api, "full@p1.example", "viewer@p1.example", "VIEWER")
    admin = from_global_id(gid)[1]
    async with api.engine.connect() as conn:
        ids = (
            await conn.execute(
                text("SELECT id FROM customer WHERE partner_id = :p ORDER BY id"),
                {"p": partner_of["viewer@p1.example"]},
            )
        ).scalars()
        customers = list(ids)
    f = Factory(api.engine)
    for c in ROLES["viewer@p1.example"][1]:
        await f.assign(customers[c], admin)


async def _visible(api: Api, email: str) -> set[int]:
    out: set[int] = set()
    after = None
    while True:
        page = data_of(await post_graphql(api, VISIBLE, {"after": after}, as_=email))["customers"]
        out |= {from_global_id(n["id"])[1] for n in page["nodes"]}
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


async def _reference(api: Api, partner: int, visible: set[int]) -> ref.World:
    async with api.engine.connect() as conn:
        w = await world(conn, partner, NOW)
    w.subs = [s for s in w.subs if s.customer_pk in visible]
    return w


async def test_shared_shapes_answer_each_partner_and_role_its_own_figures(api: Api) -> None:
    # given
    partner_of = await _shared_world(api)
    await _custom_viewer(api, partner_of)
    worlds = {}
    for email, partner in partner_of.items():
        worlds[email] = await _reference(api, partner, await _visible(api, email))
    assert len({len(w.subs) for w in worlds.values()}) > 3  # the scopes differ

    # when: every admin asks the same shapes at once, twice, both products
    asks = [(e, p) for _ in range(2) for e in partner_of for p in ("MEETINGS", "CALLING")]
    bodies = await asyncio.gather(
        *(post_graphql(api, DASHBOARD, {"product": p}, as_=e) for e, p in asks)
    )

    # then
    for (email, product), body in zip(asks, bodies, strict=True):
        got = data_of(body)
        w = worlds[email]
        assert got["licenseKpis"] == ref.license_kpis(w), email
        assert got["licenseAnalytics"] == _expected_rows(w, product), (email, product)


async def _page(api: Api, email: str, **variables: Any) -> dict[str, Any]:
    variables.setdefault("product", "MEETINGS")
    document = LOW_BACK if "last" in variables or "before" in variables else LOW_PAGE
    if "both" in variables:
        document = LOW_BOTH
        del variables["both"]
    return await post_graphql(api, document + PAGE_FRAGMENT, variables, as_=email)


def _rows_of(body: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = data_of(body)["licenseAnalytics"]["lowAllocation"]["rows"]
    return rows


async def test_low_allocation_paging_every_way_gives_the_reference_order(api: Api) -> None:
    partner_of = await _shared_world(api)
    for email in ("full@p1.example", "partner@p1.example", "full@p2.example"):
        w = await _reference(api, partner_of[email], await _visible(api, email))
        flagged = ref.sections(w, "MEETINGS")["lowAllocation"]["rows"]
        assert flagged
        for direction in ("ASC", "DESC"):
            order = {"field": "ALLOCATION_PERCENT", "direction": direction}
            ordered = ref.ordered(flagged, "ALLOCATION_PERCENT", direction)
            want = [r["subscriptionId"] for r in ordered]
            for size in (1, 2, 3, 100):
                seen: list[str] = []
                after = None
                while True:
                    rows = _rows_of(await _page(api, email, first=size, after=after, order=order))
                    assert rows["totalCount"] == len(want)
                    seen += [n["subscriptionId"] for n in rows["nodes"]]
                    if not rows["pageInfo"]["hasNextPage"]:
                        break
                    after = rows["pageInfo"]["endCursor"]
                assert seen == want, (email, direction, size)
                back: list[str] = []
                before = None
                while True:
                    rows = _rows_of(await _page(api, email, last=size, before=before, order=order))
                    back = [n["subscriptionId"] for n in rows["nodes"]] + back
                    if not rows["pageInfo"]["hasPreviousPage"]:
                        break
                    before = rows["pageInfo"]["startCursor"]
                assert back == want, (email, direction, size, "backward")


async def test_low_allocation_cursors_of_another_list_are_refused(api: Api) -> None:
    await _shared_world(api)
    full1, scoped1, full2 = "full@p1.example", "partner@p1.example", "full@p2.example"
    asc = {"field": "ALLOCATION_PERCENT", "direction": "ASC"}
    desc = {"field": "ALLOCATION_PERCENT", "direction": "DESC"}
    cursor = _rows_of(await _page(api, full1, first=1, order=asc))["pageInfo"]["endCursor"]
    assert cursor
    refused = [
        (full2, {"first": 1, "after": cursor, "order": asc}),  # another partner
        (full2, {"last": 1, "before": cursor, "order": asc}),
        (full1, {"first": 1, "after": cursor, "order": desc}),  # another direction
        (full1, {"first": 1, "after": cursor, "product": "CALLING", "order": asc}),
        (full1, {"first": 1, "after": cursor[:-2], "order": asc}),  # forged
        (full1, {"first": 1, "after": "bm90IGEgY3Vyc29y", "order": asc}),
        (full1, {"first": 1, "after": "", "order": asc}),
        (full1, {"first": 1, "after": "%%%", "order": asc}),
    ]
    for email, variables in refused:
        body = await _page(api, email, **variables)
        assert error_codes(body) == ["INVALID_CURSOR"], (email, sorted(variables.items())[1:])
        assert body["data"]["licenseAnalytics"]["lowAllocation"]["rows"] is None
    bad_sizes = [
        {"first": 0},
        {"first": 101},
        {"first": -1},
        {"last": 0},
        {"last": 101},
        {"last": -5},
    ]
    for variables in bad_sizes:
        body = await _page(api, full1, **variables)
        assert error_codes(body) == ["INVALID_PAGE_SIZE"], (variables, body)
    body = await _page(api, full1, first=2**31 - 1)  # refused by its cost first, coded
    assert error_codes(body) and "INTERNAL" not in error_codes(body), body
    body = await _page(api, full1, both=True)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    # a scoped admin's own cursor works for it (and is not the full admin's list)
    mine = _rows_of(await _page(api, scoped1, first=1, order=asc))["pageInfo"]["endCursor"]
    assert not _rows_of(await _page(api, scoped1, first=1, after=mine, order=asc)).get("errors")
