"""License analytics (DESIGN.md section 3) against a plain-Python reference.

A synthetic data set of 3,000 customers over two partners is seeded once per backend. The
reference (``tests/analytics_reference.py``) recomputes every KPI and every row from raw data:
customers, subscriptions and license lines read through the directory API as the caller sees
them; the weekly license snapshots, which the API does not expose, read straight from their
table; and every partner's in-force subscriptions, read from the database, for the
deployment-wide low-allocation medians.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from db.models import LicenseLine, LicenseSnapshot, Subscription
from db.seed import seed_synthetic
from db.status import StatusRules
from graph.ids import from_global_id
from tests import analytics_reference as ref
from tests.conftest import NOW, Api, _require_backend, api_over
from tests.databases import Database, make_database
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for

PRODUCTS = ("MEETINGS", "CALLING")
FULL = "full@synth1.example"
SCOPED = "partner@synth1.example"
DAY = timedelta(days=1)

COMMON = (
    "customerId customerName subscriptionId subscriptionNodeId kind totalLicenses assigned "
    "used available allocationPercent usagePercent"
)
SECTIONS: dict[str, dict[str, str]] = {
    "recentlyAdded": {
        "order": "RecentlyAddedOrder",
        "kpis": "newCustomers totalLicenses",
        "fields": "startDate daysSinceAdded weeklyAllocationChange weeklyUsageChange",
        "default": "DAYS_SINCE_ADDED ASC",
    },
    "aboutToExpire": {
        "order": "ExpiringOrder",
        "kpis": "expiringCustomers allocationPercent usagePercent",
        "fields": "endDate daysUntilExpiry usageLast3Months weeklyAllocationChange "
        "weeklyUsageChange",
        "default": "DAYS_UNTIL_EXPIRY ASC",
    },
    "aboutToRenew": {
        "order": "RenewingOrder",
        "kpis": "renewingCustomers allocationPercent usagePercent",
        "fields": "renewalDate daysUntilRenewal usageLast3Months weeklyAllocationChange "
        "weeklyUsageChange",
        "default": "DAYS_UNTIL_RENEWAL ASC",
    },
    "lowAllocation": {
        "order": "LowAllocationOrder",
        "kpis": "lowAllocationCustomers allocationPercent usageWhenAssignedPercent "
        "unassignedLicenses",
        "fields": "startDate monthsSinceAdded usageWhenAssignedPercent sizeBand "
        "weeklyAllocationChange",
        "default": "ALLOCATION_PERCENT ASC",
    },
    "overage": {
        "order": "OverageOrder",
        "kpis": "overageCustomers overageLicenses averageOverage",
        "fields": "licenseType overage endDate monthsRemaining autoRenew",
        "default": "OVERAGE DESC",
    },
}
DATE_FIELDS = ("startDate", "endDate", "renewalDate")
KPIS = "licenseKpis { totalCustomers aboutToExpire aboutToRenew lowAllocation overLicenseLimit }"
TREND = "distributionTrend(weeks: $weeks) { weekStart purchased assigned used }"


def section_query(name: str) -> str:
    spec = SECTIONS[name]
    return (
        f"query Section($product: AnalyticsProduct!, $first: Int!, $after: String, "
        f"$order: {spec['order']}) {{ licenseAnalytics(product: $product) {{ {name} {{ "
        f"kpis {{ {spec['kpis']} }} rows(first: $first, after: $after, orderBy: $order) {{ "
        "totalCount pageInfo { hasNextPage hasPreviousPage endCursor } "
        f"edges {{ cursor }} nodes {{ {COMMON} {spec['fields']} }} }} }} }} }}"
    )


SECTION_QUERIES = {name: section_query(name) for name in SECTIONS}
DASHBOARD = (
    "query Dashboard($product: AnalyticsProduct!, $weeks: Int! = 13) { "
    + KPIS
    + " licenseAnalytics(product: $product) { "
    + TREND
    + " ".join(
        f" {name} {{ kpis {{ {spec['kpis']} }} rows {{ totalCount pageInfo {{ hasNextPage "
        f"endCursor }} nodes {{ {COMMON} {spec['fields']} }} }} }}"
        for name, spec in SECTIONS.items()
    )
    + " } }"
)
DIRECTORY = """
query Directory($after: String) {
  customers(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name
      subscriptions {
        id subscriptionId kind state startDate endDate autoRenew renewalDate
        licenses { product licenseType purchased assigned used }
      }
    }
  }
}
"""


# --- the seeded data set, once per backend -------------------------------------------------------


@pytest.fixture(scope="module")
async def seeded_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    await _require_backend(backend)
    tmp = str(tmp_path_factory.mktemp("analytics"))
    db = await make_database(backend, "partner_hub_test_analytics", tmp)
    await seed_synthetic(
        db.engine,
        customers=3000,
        partners=2,
        random_seed=11,
        now=NOW,
        rules=StatusRules(7, 30),
        progress=False,
    )
    yield db
    await db.dispose()


@pytest.fixture
async def seeded(seeded_database: Database) -> AsyncIterator[Api]:
    async with api_over(seeded_database) as value:
        yield value


_worlds: dict[tuple[str, str], ref.World] = {}


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


VISIBLE = """
query Visible($after: String) {
  customers(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } }
}
"""


async def _directory(api: Api, email: str, query: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = data_of(await post_graphql(api, query, {"after": after}, as_=email))["customers"]
        nodes.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def world_of(api: Api, email: str) -> ref.World:
    """What ``email`` sees through the directory API, plus snapshots and deployment facts.

    A scoped admin's world is the full admin's restricted to the customers the directory lists
    for the scoped admin (reading every subscription twice would only cost time)."""
    key = (api.db.url, email)
    if key in _worlds:
        return _worlds[key]
    if email != FULL:
        full = await world_of(api, FULL)
        mine = {c["id"] for c in await _directory(api, email, VISIBLE)}
        own = [s for s in full.subs if s.customer_gid in mine]
        own_pks = {s.pk for s in own}
        snapshots = [s for s in full.snapshots if s.subscription_pk in own_pks]
        world = ref.World(now=NOW, subs=own, snapshots=snapshots, deployment=full.deployment)
        _worlds[key] = world
        return world
    subs: list[ref.Sub] = []
    for c in await _directory(api, email, DIRECTORY):
        for s in c["subscriptions"]:
            subs.append(
                ref.Sub(
                    pk=from_global_id(s["id"])[1],
                    customer_pk=from_global_id(c["id"])[1],
                    customer_gid=c["id"],
                    customer_name=c["name"],
                    gid=s["id"],
                    ref=s["subscriptionId"],
                    kind=s["kind"],
                    state=s["state"],
                    start=_dt(s["startDate"]),  # type: ignore[arg-type]
                    end=_dt(s["endDate"]),  # type: ignore[arg-type]
                    auto_renew=s["autoRenew"],
                    renewal=_dt(s["renewalDate"]),
                    lines=tuple(
                        ref.Line(
                            x["product"], x["licenseType"], x["purchased"], x["assigned"], x["used"]
                        )
                        for x in s["licenses"]
                    ),
                )
            )
    visible = {s.pk for s in subs}
    ls = LicenseSnapshot.__table__.c  # type: ignore[attr-defined]
    sc = Subscription.__table__.c  # type: ignore[attr-defined]
    lc = LicenseLine.__table__.c  # type: ignore[attr-defined]
    async with api.engine.connect() as conn:
        snapshot_rows = await conn.execute(
            select(
                ls.subscription_id, ls.product, ls.week_start, ls.purchased, ls.assigned, ls.used
            )
        )
        snapshots = [ref.Snapshot(*row) for row in snapshot_rows if row[0] in visible]
        # Every partner's subscriptions and lines, for the deployment-wide medians.
        line_rows = await conn.execute(
            select(
                sc.id, sc.state, sc.start_date, sc.end_date, lc.product, lc.purchased, lc.assigned
            ).join(LicenseLine, lc.subscription_id == sc.id)
        )
        per_sub: dict[tuple[int, str], list[int]] = {}
        for sub_pk, state, start, end, product, purchased, assigned in line_rows:
            if state == "ACTIVE" and start <= NOW < end:
                totals = per_sub.setdefault((sub_pk, product), [0, 0])
                totals[0] += purchased
                totals[1] += assigned
    deployment = [(product, p, a) for (_, product), (p, a) in per_sub.items()]
    _worlds[key] = world = ref.World(now=NOW, subs=subs, snapshots=snapshots, deployment=deployment)
    return world


async def all_rows(
    api: Api,
    email: str,
    product: str,
    section: str,
    order: dict[str, str] | None = None,
    first: int = 100,
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """KPIs, every row over all pages, and totalCount of one section."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        variables = {"product": product, "first": first, "after": after, "order": order}
        body = data_of(await post_graphql(api, SECTION_QUERIES[section], variables, as_=email))
        data = body["licenseAnalytics"][section]
        page = data["rows"]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert len(page["nodes"]) <= first
        rows.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return data["kpis"], rows, page["totalCount"]
        after = page["pageInfo"]["endCursor"]


def comparable(api_rows: list[dict[str, Any]], ref_rows: list[dict[str, Any]]) -> list[Any]:
    """Reference rows cut to the fields the API returned, dates as datetimes."""
    out = []
    for got, want in zip(api_rows, ref_rows, strict=True):
        out.append(
            (
                {k: _dt(v) if k in DATE_FIELDS else v for k, v in got.items()},
                {k: want[k] for k in got},
            )
        )
    return out


def order_of(spec: str) -> tuple[str, str]:
    field, direction = spec.split()
    return field, direction


# --- the reference test ------------------------------------------------------------------------


@pytest.mark.parametrize("email", [FULL, SCOPED])
async def test_every_figure_matches_the_reference(seeded: Api, email: str) -> None:
    # given
    world = await world_of(seeded, email)
    assert len(world.subs) > 100

    # when
    kpis = data_of(await post_graphql(seeded, "{ " + KPIS + " }", as_=email))["licenseKpis"]

    # then
    assert kpis == ref.license_kpis(world)
    assert kpis["lowAllocation"] > 0 and kpis["overLicenseLimit"] > 0
    for product in PRODUCTS:
        expected = ref.sections(world, product)
        trend = data_of(
            await post_graphql(
                seeded,
                "query T($p: AnalyticsProduct!, $weeks: Int!) { licenseAnalytics(product: $p) { "
                + TREND
                + " } }",
                {"p": product, "weeks": 13},
                as_=email,
            )
        )["licenseAnalytics"]["distributionTrend"]
        want_trend = ref.trend(world, product, 13)
        assert [{**w, "weekStart": _dt(w["weekStart"])} for w in trend] == want_trend
        assert want_trend[-1]["weekStart"] == datetime(2026, 11, 15, tzinfo=NOW.tzinfo)
        for section, spec in SECTIONS.items():
            got_kpis, got_rows, total = await all_rows(seeded, email, product, section)
            want = expected[section]
            assert got_kpis == want["kpis"], (product, section)
            assert total == len(want["rows"]) == len(got_rows), (product, section)
            want_rows = ref.ordered(want["rows"], *order_of(spec["default"]))
            for got, exp in comparable(got_rows, want_rows):
                assert got == exp, (product, section)


async def test_scoped_admin_sees_only_its_customers(seeded: Api) -> None:
    # given
    everyone = await world_of(seeded, FULL)
    mine = await world_of(seeded, SCOPED)

    # when
    full = data_of(await post_graphql(seeded, "{ " + KPIS + " }", as_=FULL))["licenseKpis"]
    scoped = data_of(await post_graphql(seeded, "{ " + KPIS + " }", as_=SCOPED))["licenseKpis"]

    # then
    assert {s.customer_pk for s in mine.subs} < {s.customer_pk for s in everyone.subs}
    assert 0 < scoped["totalCustomers"] < full["totalCustomers"]


PAGING = {
    "aboutToExpire": (
        "CUSTOMER_NAME ASC",
        "ALLOCATION_PERCENT ASC",
        "DAYS_UNTIL_EXPIRY DESC",
        "USAGE_LAST_3_MONTHS DESC",
    ),
    "recentlyAdded": ("SUBSCRIPTION_ID DESC", "DAYS_SINCE_ADDED DESC", "WEEKLY_USAGE_CHANGE ASC"),
    "aboutToRenew": ("TOTAL_LICENSES DESC", "WEEKLY_ALLOCATION_CHANGE DESC"),
    "lowAllocation": (
        "ALLOCATION_PERCENT ASC",
        "ALLOCATION_PERCENT DESC",
        "SIZE_BAND ASC",
        "MONTHS_SINCE_ADDED DESC",
        "USAGE_WHEN_ASSIGNED_PERCENT ASC",
    ),
    "overage": ("AUTO_RENEW ASC", "LICENSE_TYPE DESC", "MONTHS_REMAINING ASC", "USED DESC"),
}


@pytest.mark.parametrize("section", list(PAGING))
async def test_paging_in_any_order_yields_every_row_once(seeded: Api, section: str) -> None:
    # given
    world = await world_of(seeded, SCOPED)
    rows_of = ref.sections(world, "MEETINGS")[section]["rows"]
    assert len(rows_of) > 10
    for order in PAGING[section]:
        field, direction = order_of(order)
        want = ref.ordered(rows_of, field, direction)

        # when
        _, rows, total = await all_rows(
            seeded, SCOPED, "MEETINGS", section, {"field": field, "direction": direction}, first=15
        )

        # then
        keys = [(r["subscriptionNodeId"], r.get("licenseType")) for r in rows]
        assert len(keys) == len(set(keys)) == total == len(want), order
        assert [r["subscriptionNodeId"] for r in rows] == [r["subscriptionNodeId"] for r in want], (
            order
        )


# --- statement count -----------------------------------------------------------------------------


async def dashboard_statements(api: Api, email: str) -> tuple[int, dict[str, Any]]:
    await token_for(api, email)
    data_of(await post_graphql(api, DASHBOARD, {"product": "MEETINGS"}, as_=email))  # warm-up
    with api.counter.counting() as statements:
        body = data_of(await post_graphql(api, DASHBOARD, {"product": "CALLING"}, as_=email))
    return len(statements), body


async def test_the_dashboard_runs_a_constant_number_of_statements(api: Api, seeded: Api) -> None:
    # given: a partner with one small customer, and the seeded 3,000-customer data set
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    customer = await f.customer(partner, "Solo Corp")
    await f.subscription(customer, lines=[("CALLING", 10, 12, 5)], auto_renew=False)

    # when
    small, small_body = await dashboard_statements(api, "full@acme.example")
    large, large_body = await dashboard_statements(seeded, FULL)

    # then
    assert small_body["licenseAnalytics"]["overage"]["rows"]["totalCount"] == 1
    assert large_body["licenseAnalytics"]["aboutToExpire"]["rows"]["totalCount"] > 20
    # authentication; the medians (stale rows with the ratio buckets, the middle buckets'
    # ratios); licenseKpis; the trend; the shared section KPIs; low allocation's KPIs; 5 pages
    assert small == large <= 12, (small, large)


# --- edge cases ----------------------------------------------------------------------------------


async def test_an_empty_partner_gets_zeros_not_nan(api: Api) -> None:
    # given: a partner without customers next to one with data
    f = Factory(api.engine)
    empty = await f.partner()
    await f.admin(empty, "full@acme.example", "FULL_ADMIN")
    other = await f.partner("Globex Reseller", "globex.example")
    await f.subscription(await f.customer(other, "Busy Corp"), lines=[("MEETINGS", 10, 12, 9)])

    for product in PRODUCTS:
        # when
        body = data_of(
            await post_graphql(api, DASHBOARD, {"product": product}, as_="full@acme.example")
        )

        # then
        assert set(body["licenseKpis"].values()) == {0}
        analytics = body["licenseAnalytics"]
        trend = analytics.pop("distributionTrend")
        assert [w["weekStart"] for w in trend] == [
            (datetime(2026, 11, 15, tzinfo=NOW.tzinfo) - 7 * DAY * k).isoformat()
            for k in range(12, -1, -1)
        ]
        assert {(w["purchased"], w["assigned"], w["used"]) for w in trend} == {(0, 0, 0)}
        for section in analytics.values():
            assert all(v == 0 and type(v) in (int, float) for v in section["kpis"].values())
            assert section["rows"]["totalCount"] == 0 and section["rows"]["nodes"] == []
            assert section["rows"]["pageInfo"] == {"hasNextPage": False, "endCursor": None}


async def test_definitions_on_a_small_hand_built_data_set(api: Api) -> None:
    # given: five in-force subscriptions of the 1-10 band, allocation ratios 0, .2, .5, .7, .9
    # (median .5), two of them at another partner: Acme's own median would be .2, and Low Ltd
    # (.2) would not be below half of it; Young Ltd (0) counts in the median but is too young
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    globex = await f.partner("Globex Reseller", "globex.example")
    old = NOW - 100 * DAY
    low = await f.customer(acme, "Low Ltd")
    await f.subscription(low, start=old, lines=[("MEETINGS", 10, 2, 1)])
    fine = await f.customer(acme, "Fine Ltd")
    await f.subscription(fine, start=old, end=NOW + 3 * DAY + DAY / 2, auto_renew=False,
                         lines=[("MEETINGS", 10, 7, 3)])  # fmt: skip
    for name, assigned in (("Globex A", 5), ("Globex B", 9)):
        await f.subscription(
            await f.customer(globex, name), start=old, lines=[("MEETINGS", 10, assigned, 0)]
        )
    young = await f.customer(acme, "Young Ltd")
    await f.subscription(young, start=NOW - 10 * DAY, lines=[("MEETINGS", 10, 0, 0)])

    # when
    body = data_of(
        await post_graphql(api, DASHBOARD, {"product": "MEETINGS"}, as_="full@acme.example")
    )

    # then: only Low Ltd is below half the deployment's median (.2 < .25)
    a = body["licenseAnalytics"]
    assert [r["customerName"] for r in a["lowAllocation"]["rows"]["nodes"]] == ["Low Ltd"]
    assert a["lowAllocation"]["kpis"] == {
        "lowAllocationCustomers": 1,
        "allocationPercent": 20.0,
        "usageWhenAssignedPercent": 50.0,
        "unassignedLicenses": 8,
    }
    assert a["lowAllocation"]["rows"]["nodes"][0]["sizeBand"] == "1-10"
    assert body["licenseKpis"]["lowAllocation"] == 1
    expiring = a["aboutToExpire"]["rows"]["nodes"]
    assert [(r["customerName"], r["daysUntilExpiry"]) for r in expiring] == [("Fine Ltd", 4)]
    assert a["aboutToExpire"]["kpis"] == {
        "expiringCustomers": 1,
        "allocationPercent": 70.0,
        "usagePercent": 30.0,
    }
    assert [r["customerName"] for r in a["recentlyAdded"]["rows"]["nodes"]] == ["Young Ltd"]
    assert a["recentlyAdded"]["rows"]["nodes"][0]["daysSinceAdded"] == 10


async def test_section_pages_built_once_per_shape_bind_each_partners_scope(api: Api) -> None:
    # given: two partners whose full admins ask the same pages (one statement shape, built once
    # and reused): each partner's own recently added and low-allocation customers
    f = Factory(api.engine)
    old = NOW - 100 * DAY
    names = {}
    for partner_name, domain in (("Acme", "acme.example"), ("Globex", "globex.example")):
        partner = await f.partner(f"{partner_name} Reseller", domain)
        await f.admin(partner, f"full@{domain}", "FULL_ADMIN")
        low = await f.customer(partner, f"{partner_name} Low")
        await f.subscription(low, start=old, lines=[("MEETINGS", 10, 1, 0)])
        fine = await f.customer(partner, f"{partner_name} Fine")
        await f.subscription(fine, start=old, lines=[("MEETINGS", 10, 9, 0)])
        young = await f.customer(partner, f"{partner_name} Young")
        await f.subscription(young, start=NOW - 10 * DAY, lines=[("MEETINGS", 10, 8, 0)])
        names[domain] = partner_name
    # Globex has a second low customer: the KPIs (one figures statement per shape, built once,
    # the partner bound) differ between the two partners.
    globex_low = await f.customer(partner, "Globex Low 2")
    await f.subscription(globex_low, start=old, lines=[("MEETINGS", 10, 2, 0)])
    lows = {"acme.example": 1, "globex.example": 2}

    for domain, partner_name in names.items():
        # when
        body = data_of(
            await post_graphql(api, DASHBOARD, {"product": "MEETINGS"}, as_=f"full@{domain}")
        )

        # then
        a = body["licenseAnalytics"]
        low_rows = a["lowAllocation"]["rows"]["nodes"]
        expected = [f"{partner_name} Low"] + (["Globex Low 2"] if lows[domain] == 2 else [])
        assert sorted(r["customerName"] for r in low_rows) == expected
        assert a["lowAllocation"]["kpis"]["lowAllocationCustomers"] == lows[domain]
        assert body["licenseKpis"]["lowAllocation"] == lows[domain]
        assert body["licenseKpis"]["totalCustomers"] == 3 + lows[domain] - 1
        added = a["recentlyAdded"]["rows"]["nodes"]
        assert [r["customerName"] for r in added] == [f"{partner_name} Young"]


async def test_bad_input_gets_a_clear_error_code(api: Api) -> None:
    # given
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    for n in range(3):
        await f.subscription(await f.customer(partner, f"C{n}"), start=NOW - 5 * DAY)
    trend = (
        "query T($w: Int!) { licenseAnalytics(product: MEETINGS) { "
        + TREND.replace("$weeks", "$w")
        + " } }"
    )

    async def codes(query: str, variables: dict[str, Any]) -> list[str]:
        body = await post_graphql(api, query, variables, as_="full@acme.example")
        assert body.get("errors"), body
        return error_codes(body)

    # when / then
    for weeks in (0, 53, -1):
        assert await codes(trend, {"w": weeks}) == ["BAD_USER_INPUT"]
    assert len(data_of(await post_graphql(api, trend, {"w": 52}, as_="full@acme.example"))[
        "licenseAnalytics"]["distributionTrend"]) == 52  # fmt: skip
    # unknown product and unknown column: GraphQL validation errors, never a 500
    query = SECTION_QUERIES["recentlyAdded"]
    base = {"product": "MEETINGS", "first": 2, "after": None, "order": None}
    assert await codes(query, {**base, "product": "VIDEO"})
    assert await codes(query, {**base, "order": {"field": "COLOR"}})
    assert await codes(query, {**base, "order": {"field": "OVERAGE"}})
    for first in (0, 101):
        assert await codes(query, {**base, "first": first}) == ["INVALID_PAGE_SIZE"]
    assert await codes(query, {**base, "after": "not-a-cursor"}) == ["INVALID_CURSOR"]
    # a cursor of one ordering is refused by another
    page = data_of(await post_graphql(api, query, base, as_="full@acme.example"))
    cursor = page["licenseAnalytics"]["recentlyAdded"]["rows"]["pageInfo"]["endCursor"]
    other = {**base, "after": cursor, "order": {"field": "USED", "direction": "DESC"}}
    assert await codes(query, other) == ["INVALID_CURSOR"]
    assert await codes(query, {**base, "after": cursor, "product": "CALLING"}) == ["INVALID_CURSOR"]
