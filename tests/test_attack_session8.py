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
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError

from db.engine import create_engine, session_factory
from db.license_kpis import LICENSE_KPI_SPAN as SPAN
from db.migrate import migrate
from db.queries.admins import issue_token
from db.queries.analytics.medians import low_allocation_medians
from graph.ids import from_global_id, to_global_id
from tests import analytics_reference as ref
from tests.conftest import NOW, Api, instance_beside, postgresql_only, sqlite_only
from tests.helpers import Factory, data_of, error_codes, post_graphql
from tests.test_license_totals import check_rollups, histograms, world
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
    async with instance_beside(api, now=now) as other:
        yield other


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
            # before 1970 (plain SQL can write it): negative day numbers and blocks
            (1, "PAID", EPOCH - 1025 * DAY, EPOCH - US, True, low),
            (2, "TRIAL", EPOCH - 33 * DAY - US, EPOCH + 31 * DAY, False, over),
            (3, "PAID", EPOCH - 100 * DAY, EPOCH + 89 * DAY, True, fine),
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
    EPOCH - 1024 * DAY - US,
    EPOCH - 32 * DAY,
    EPOCH - US,
    EPOCH,
    EPOCH + US,
    LAST - 90 * DAY - US,
    LAST - DAY,
    LAST - US,
    NOW,
    # the clock given with an offset: the UTC day is another than the local one
    (B1024 - US).astimezone(timezone(timedelta(hours=14))),
    (B32 + US).astimezone(timezone(timedelta(hours=-12))),
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


# --- 4. lazy cursors: edges however the document asks them -----------------------------------

EDGES_DOCUMENTS = {
    "nested fragments": (
        "query Q { licenseAnalytics(product: MEETINGS) { SECTION { rows(first: 3) { ...A } } } }"
        " fragment A on CONNECTION { ...B nodes { subscriptionId } }"
        " fragment B on CONNECTION { edges { cursor node { subscriptionId } } }"
    ),
    "fragment on the section": (
        "query Q { licenseAnalytics(product: MEETINGS) { SECTION { ...S } } }"
        " fragment S on SECTION_TYPE { rows(first: 3) { nodes { subscriptionId } "
        "edges { cursor node { subscriptionId } } } }"
    ),
    "include true": (
        "query Q($yes: Boolean!) { licenseAnalytics(product: MEETINGS) { SECTION { "
        "rows(first: 3) { nodes { subscriptionId } edges @include(if: $yes) { cursor "
        "node { subscriptionId } } } } } }"
    ),
    "skip false inline": (
        "query Q($no: Boolean!) { licenseAnalytics(product: MEETINGS) { SECTION { "
        "rows(first: 3) { nodes { subscriptionId } ... @skip(if: $no) { edges { cursor "
        "node { subscriptionId } } } } } } }"
    ),
    "typed inline": (
        "query Q { licenseAnalytics(product: MEETINGS) { SECTION { rows(first: 3) { "
        "nodes { subscriptionId } ... on CONNECTION { edges { cursor node { subscriptionId } } "
        "} } } } }"
    ),
    "aliased": (
        "query Q { licenseAnalytics(product: MEETINGS) { SECTION { rows(first: 3) { "
        "edges: nodes { subscriptionId } nodes: edges { cursor node { subscriptionId } } "
        "} } } }"
    ),
    "two aliases of one page": (
        "query Q { licenseAnalytics(product: MEETINGS) { SECTION { "
        "a: rows(first: 3) { nodes { subscriptionId } } "
        "b: rows(first: 3) { nodes { subscriptionId } edges { cursor node { subscriptionId } } } "
        "} } }"
    ),
    "merged twice": (
        "query Q { licenseAnalytics(product: MEETINGS) { SECTION { "
        "rows(first: 3) { nodes { subscriptionId } } "
        "rows(first: 3) { edges { cursor node { subscriptionId } } } } } }"
    ),
    "two analytics aliases": (
        "query Q { x: licenseAnalytics(product: MEETINGS) { SECTION { rows(first: 3) { "
        "nodes { subscriptionId } } } } licenseAnalytics(product: MEETINGS) { SECTION { "
        "rows(first: 3) { nodes { subscriptionId } edges { cursor node { subscriptionId } } "
        "} } } }"
    ),
}
SECTION_TYPES = {
    "lowAllocation": ("LowAllocationSection", "LowAllocationConnection"),
    "overage": ("OverageSection", "OverageConnection"),
}


def _find_edges(value: Any) -> list[tuple[list[Any], list[Any]]]:
    """Every (nodes, edges) pair of a page in the response (edges under either key)."""
    out = []
    if isinstance(value, dict):
        keys = [k for k in ("edges", "nodes") if isinstance(value.get(k), list)]
        lists = {k: value[k] for k in keys}
        with_cursor = [k for k, v in lists.items() if v and "cursor" in v[0]]
        plain = [k for k, v in lists.items() if k not in with_cursor]
        if with_cursor:
            out.append((lists[plain[0]] if plain else [], lists[with_cursor[0]]))
        for v in value.values():
            out += _find_edges(v)
    return out


@pytest.mark.parametrize("case", sorted(EDGES_DOCUMENTS))
async def test_edges_come_with_their_cursors_however_they_are_asked(api: Api, case: str) -> None:
    await _shared_world(api)
    for section, (section_type, connection) in SECTION_TYPES.items():
        document = (
            EDGES_DOCUMENTS[case]
            .replace("SECTION_TYPE", section_type)
            .replace("SECTION", section)
            .replace("CONNECTION", connection)
        )
        variables = {"yes": True} if "$yes" in document else {}
        variables |= {"no": False} if "$no" in document else {}
        body = data_of(await post_graphql(api, document, variables, as_="full@p1.example"))
        pages = _find_edges(body)
        assert pages, (case, section, body)
        for nodes, edges in pages:
            assert edges, (case, section, body)
            assert all(e["cursor"] for e in edges)
            ids = [e["node"]["subscriptionId"] for e in edges]
            assert not nodes or [n["subscriptionId"] for n in nodes] == ids
            # each cursor pages on from its row
            if section == "lowAllocation":
                after = _rows_of(
                    await _page(api, "full@p1.example", first=1, after=edges[0]["cursor"])
                )
                assert after["nodes"][0]["subscriptionId"] == ids[1], (case, section)


async def test_edges_left_out_are_left_out(api: Api) -> None:
    await _shared_world(api)
    document = EDGES_DOCUMENTS["include true"].replace("SECTION", "lowAllocation")
    body = data_of(await post_graphql(api, document, {"yes": False}, as_="full@p1.example"))
    rows = body["licenseAnalytics"]["lowAllocation"]["rows"]
    assert rows["nodes"] and "edges" not in rows


# --- 5. never a 500 ----------------------------------------------------------------------------

ODD_DOCUMENTS = [
    ("query { licenseAnalytics(product: MESSAGING) { product } }", {}),
    ('query { licenseAnalytics(product: "MEETINGS") { product } }', {}),
    ("query Q($p: AnalyticsProduct!) { licenseAnalytics(product: $p) { product } }", {"p": "x"}),
    ("query Q($p: AnalyticsProduct!) { licenseAnalytics(product: $p) { product } }", {"p": 1}),
    ("query Q($p: Product!) { licenseAnalytics(product: $p) { product } }", {"p": "MEETINGS"}),
    ("query Q($p: AnalyticsProduct!) { licenseAnalytics(product: $p) { product } }", {}),
    (
        "query { licenseAnalytics(product: MEETINGS) { lowAllocation { rows(orderBy: "
        "{field: OVERAGE}) { totalCount } } } }",
        {},
    ),
    (
        "query Q($o: LowAllocationOrder) { licenseAnalytics(product: MEETINGS) { lowAllocation {"
        " rows(orderBy: $o) { totalCount } } } }",
        {"o": {"field": "SIZE_BAND", "direction": "SIDEWAYS"}},
    ),
    (
        "query Q($f: Int!) { licenseAnalytics(product: MEETINGS) { lowAllocation {"
        " rows(first: $f) { totalCount } } } }",
        {"f": 2**40},
    ),
    (
        "query Q($f: Int!) { licenseAnalytics(product: MEETINGS) { lowAllocation {"
        " rows(first: $f) { totalCount } } } }",
        {"f": 1.5},
    ),
    (
        "query { licenseAnalytics(product: MEETINGS) { lowAllocation {"
        " rows(first: 100) { edges { cursor } } } overage { rows(first: 100) { edges { cursor }"
        " } } a: recentlyAdded { rows(first: 100) { nodes { subscriptionId } } } } }",
        {},
    ),
]


@pytest.mark.parametrize("weeks", [0, 53, -1, 2**31 - 1, -(2**31)])
async def test_distribution_trend_refuses_odd_weeks_alone(api: Api, weeks: int) -> None:
    await _shared_world(api)
    document = (
        "query Q($w: Int!) { licenseKpis { totalCustomers } licenseAnalytics(product: CALLING) {"
        " product distributionTrend(weeks: $w) { weekStart } } }"
    )
    body = await post_graphql(api, document, {"w": weeks}, as_="full@p1.example")
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"]["licenseAnalytics"]["distributionTrend"] is None
    assert body["data"]["licenseAnalytics"]["product"] == "CALLING"
    assert body["data"]["licenseKpis"]["totalCustomers"] > 0


@pytest.mark.parametrize("n", range(len(ODD_DOCUMENTS)))
async def test_odd_analytics_arguments_get_codes_never_a_500(api: Api, n: int) -> None:
    await _shared_world(api)
    document, variables = ODD_DOCUMENTS[n]
    response = await api.client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {await _token_of(api, 'full@p1.example')}"},
    )
    assert response.status_code in (200, 400), response.text
    body = response.json()
    codes = error_codes(body)
    if n == len(ODD_DOCUMENTS) - 1:
        assert not codes, body  # three pages of 100 within the budget
    else:
        assert codes and None not in codes and "INTERNAL_SERVER_ERROR" not in codes, body


async def _token_of(api: Api, email: str) -> str:
    from tests.helpers import token_for

    return await token_for(api, email)


# --- 3. the fold under writers of every kind (PostgreSQL) ------------------------------------

CHANGE_QUANTITY = """
mutation M($input: ChangeLicenseQuantityInput!) {
  changeLicenseQuantity(input: $input) { userErrors { code } }
}
"""
CANCEL = """
mutation M($input: CancelSubscriptionInput!) {
  cancelSubscription(input: $input) { userErrors { code } }
}
"""
LINES = text(
    "UPDATE license_line SET purchased = :p, assigned = :a WHERE subscription_id IN :s"
).bindparams(bindparam("s", expanding=True))


class _RolledBack(Exception):
    pass


@postgresql_only
async def test_the_fold_stays_exact_under_mutations_rollbacks_and_a_truncate(api: Api) -> None:
    # given: two partners' subscriptions, some for the API's writers, some for plain SQL
    f = Factory(api.engine)
    emails = ("full@p1.example", "full@p2.example")
    through_api: dict[str, list[int]] = {}
    # each SQL writer its own lines (one per partner): writers of the same rows in any order
    # deadlock on the rows themselves, whatever the histogram does; the last, REPEATABLE READ
    owned: dict[int, list[int]] = {k: [] for k in range(4)}
    partners = []
    for p, email in enumerate(emails, 1):
        partner = await f.partner(f"Partner {p}", f"p{p}.example")
        partners.append(partner)
        await f.admin(partner, email, "FULL_ADMIN")
        through_api[email] = []
        for n in range(7):
            customer = await f.customer(partner, f"Customer {p}-{n}")
            lines = [("MEETINGS", 10, 5, 5), ("CALLING", 40, 4, 1)]
            sub = await f.subscription(customer, start=NOW - 60 * DAY, lines=lines)
            (through_api[email] if n < 3 else owned[n - 3]).append(sub)
    failures: list[Any] = []
    aborted: list[int] = []

    async def api_writer(email: str) -> None:
        rnd = random.Random(email)
        for _ in range(12):
            sub = rnd.choice(through_api[email])
            product = rnd.choice(("MEETINGS", "CALLING"))
            variables = {
                "input": {
                    "subscriptionId": to_global_id("Subscription", sub),
                    "product": product,
                    "purchased": rnd.choice((5, 10, 20, 400)),
                }
            }
            response = await api.client.post(
                "/graphql",
                json={"query": CHANGE_QUANTITY, "variables": variables},
                headers={"Authorization": f"Bearer {await _token_of(api, email)}"},
            )
            if response.status_code != 200 or response.json().get("errors"):
                failures.append((email, response.status_code, response.text))
        sub = through_api[email][0]
        variables = {
            "input": {"subscriptionId": to_global_id("Subscription", sub), "atTermEnd": False}
        }
        body = await post_graphql(api, CANCEL, variables, as_=email)
        if body.get("errors") or body["data"]["cancelSubscription"]["userErrors"]:
            failures.append((email, body))

    async def sql_writer(k: int, isolation: str = "READ COMMITTED") -> None:
        rnd = random.Random(k)
        subs = owned[k]
        for n in range(15):
            try:
                async with api.engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level=isolation)
                    async with conn.begin():
                        await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                        # one statement over both partners' lines (two statements in
                        # opposite partner orders would deadlock on the partners' own rows)
                        values = {"p": rnd.choice((10, 20, 0)), "a": rnd.choice((5, 9))}
                        await conn.execute(LINES, {**values, "s": subs})
                        if n % 3 == 1:
                            raise _RolledBack
            except _RolledBack:
                pass
            except Exception as e:  # also raw from the commit's version bump (db.versioning)
                # A REPEATABLE READ writer fails to serialize when a rollup row it moves was
                # committed since its snapshot: a client retries; the transaction is rolled
                # back whole, one case more. A deadlock is a failure: one partner's writers
                # take turns on its rollups (migration 0032; before it, runs here deadlocked).
                if isolation == "REPEATABLE READ" and "could not serialize" in str(e):
                    aborted.append(k)
                else:
                    failures.append((k, isolation, str(e)[:300]))

    async def truncater() -> None:
        await asyncio.sleep(0.05)
        try:
            async with api.engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                await conn.execute(text("TRUNCATE license_ratio_delta"))
        except DBAPIError as e:
            failures.append(("truncate", str(e)[:3000]))

    # when
    await asyncio.gather(
        *(api_writer(e) for e in emails),
        *(sql_writer(k) for k in range(3)),
        sql_writer(3, "REPEATABLE READ"),
        truncater(),
    )

    # then: no error; base + deltas the recomputation; the medians and KPIs the reference's
    assert [x[:2] for x in failures] == [], sorted({str(x)[:200] for x in failures})
    async with api.engine.connect() as conn:
        await histograms(conn)
        worlds = [await world(conn, partner, NOW) for partner in partners]
    async with session_factory(api.engine)() as session:
        assert await low_allocation_medians(session, now=NOW) == ref.medians(worlds[0])
    for email, w in zip(emails, worlds, strict=True):
        for product in ("MEETINGS", "CALLING"):
            got = data_of(await post_graphql(api, DASHBOARD, {"product": product}, as_=email))
            assert got["licenseKpis"] == ref.license_kpis(w), email
            assert got["licenseAnalytics"] == _expected_rows(w, product), (email, product)


@postgresql_only
async def test_concurrent_licence_changes_through_the_api_never_fail(api: Api) -> None:
    """Writers of one partner's lines at once, each its own subscription, through
    changeLicenseQuantity: each change is applied or answered with a user error, never a
    deadlock surfacing as an error."""
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    subs = []
    for n in range(6):
        customer = await f.customer(partner, f"Customer {n}")
        lines = [("MEETINGS", 10, 5, 5), ("CALLING", 40, 4, 1)]
        subs.append(await f.subscription(customer, start=NOW - 60 * DAY, lines=lines))
    token = await _token_of(api, "full@acme.example")
    failures: list[Any] = []

    async def writer(k: int) -> None:
        rnd = random.Random(k)
        for _ in range(15):
            variables = {
                "input": {
                    "subscriptionId": to_global_id("Subscription", subs[k]),
                    "product": rnd.choice(("MEETINGS", "CALLING")),
                    "purchased": rnd.choice((5, 10, 20, 400)),
                }
            }
            response = await api.client.post(
                "/graphql",
                json={"query": CHANGE_QUANTITY, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 200 or response.json().get("errors"):
                failures.append((response.status_code, response.text[:300]))

    await asyncio.gather(*(writer(k) for k in range(6)))
    assert failures == []
    async with api.engine.connect() as conn:
        await histograms(conn)
        await check_rollups(api.engine)


# --- 6. an operator's direct SQL -----------------------------------------------------------------


async def _small_partner(api: Api) -> tuple[int, list[int]]:
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    subs = []
    for n in range(4):
        customer = await f.customer(partner, f"Customer {n}")
        lines = [("MEETINGS", 10, 1 + 3 * n, 1), ("CALLING", 40, 4, 1)]
        subs.append(await f.subscription(customer, start=NOW - 60 * DAY, lines=lines))
    return partner, subs


async def _change(api: Api, subscription: int, purchased: int) -> dict[str, Any]:
    variables = {
        "input": {
            "subscriptionId": to_global_id("Subscription", subscription),
            "product": "MEETINGS",
            "purchased": purchased,
        }
    }
    return await post_graphql(api, CHANGE_QUANTITY, variables, as_="full@acme.example")


@pytest.mark.parametrize(
    "values", ["('NOPE', 3, 0.5, 1)", "('MESSAGING', 1, 0.1, 7)", "('CALLING', 99, 0.5, 2)"]
)
async def test_deltas_of_an_unknown_product_or_band_change_no_figure(api: Api, values: str) -> None:
    # given: an operator's delta for a product or band the dashboard does not read
    partner, subs = await _small_partner(api)
    async with api.engine.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO license_ratio_delta (product, band, ratio, n) VALUES {values}")
        )

    # when: a write (which folds on PostgreSQL) and the dashboard
    body = await _change(api, subs[0], 20)

    # then
    assert data_of(body)["changeLicenseQuantity"]["userErrors"] == []
    async with api.engine.connect() as conn:
        w = await world(conn, partner, NOW)
    for product in ("MEETINGS", "CALLING"):
        got = data_of(
            await post_graphql(api, DASHBOARD, {"product": product}, as_="full@acme.example")
        )
        assert got["licenseKpis"] == ref.license_kpis(w)
        assert got["licenseAnalytics"] == _expected_rows(w, product), product


@postgresql_only
@pytest.mark.parametrize("ratio", ["NaN", "1e300", "-0.5"])
async def test_a_garbage_delta_ratio_is_refused_and_writes_go_on(api: Api, ratio: str) -> None:
    """An operator's delta with a NaN, huge or negative ratio broke the fold's bucket cast and
    with it every later write of any partner (migration 0031: a CHECK refuses it)."""
    _, subs = await _small_partner(api)
    with pytest.raises(DBAPIError):
        async with api.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO license_ratio_delta (product, band, ratio, n) "
                    f"VALUES ('MEETINGS', 2, CAST('{ratio}' AS DOUBLE PRECISION), 1)"
                )
            )
    body = await _change(api, subs[0], 20)
    assert data_of(body)["changeLicenseQuantity"]["userErrors"] == []


@postgresql_only
@pytest.mark.parametrize("table", ["license_kpi_block", "license_kpi_edge"])
async def test_a_truncate_of_the_rollups_leaves_the_figures_exact(api: Api, table: str) -> None:
    """Migration 0031: the rollups rebuild themselves from the day edges and spans."""
    partners, admins = await _odd_world(api)
    token = await _token(api, admins[0])
    async with api.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {table}"))
    for now in (B1024 + US, B32 - US):
        async with client_at(api, now) as at:
            async with api.engine.connect() as conn:
                w = await world(conn, partners[0], now)
            body = await post_graphql(at, DASHBOARD, {"product": "MEETINGS"}, token=token)
            assert data_of(body)["licenseKpis"] == ref.license_kpis(w), now


@sqlite_only
@pytest.mark.parametrize("ratio", ["NULL", "-0.5", "1e300"])
async def test_sqlite_refuses_a_garbage_pending_ratio_too(api: Api, ratio: str) -> None:
    """SQLite never writes deltas itself; an operator's row with no, a negative or a huge ratio
    is refused by migration 0031's guard (PostgreSQL: its CHECK), so no read can trip on it."""
    with pytest.raises(DBAPIError):
        async with api.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO license_ratio_delta (product, band, ratio, n) "
                    f"VALUES ('MEETINGS', 2, {ratio}, 1)"
                )
            )
