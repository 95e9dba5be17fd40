"""Attacks on session 7's work (shared versions, license KPI spans, calling licence spans,
queries outside a transaction, the reworked calling tables): each test states what a hostile or
careless writer or reader tried (the TRUNCATE gap it found is fixed by migration 0026)."""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text, update

from db.engine import session_factory
from db.models import CallWeeklyAggregate, LicenseLine, Subscription
from db.queries import analytics as q
from db.queries.calls.common import licensed_totals
from db.versioning import is_write
from graph.auth.permissions import _issue
from tests.conftest import NOW, Api, postgresql_only
from tests.helpers import Factory, data_of, post_graphql, token_for, utc
from tests.test_trials import START_TRIAL, for_customer

SUB = Subscription.__table__  # type: ignore[attr-defined]
LINE = LicenseLine.__table__  # type: ignore[attr-defined]
KPIS = (
    "{ licenseKpis { totalCustomers aboutToExpire aboutToRenew lowAllocation overLicenseLimit } }"
)
LICENSED = """
query { callingAnalytics { usersByVolumeTrend { weekStart licensedUsersWithoutCalls } } }
"""


@postgresql_only
async def test_truncating_licence_lines_empties_the_license_kpis(api: Api) -> None:
    """TRUNCATE fires no row or DELETE trigger: an operator's ``TRUNCATE license_line`` (or
    ``subscription ... CASCADE``) must still leave no KPI span or day edge behind, or the
    dashboard keeps counting customers that have no licence left."""
    factory = Factory(api.engine)
    acme = await factory.partner()
    await factory.admin(acme, "full@acme.example", "FULL_ADMIN")
    customer = await factory.customer(acme, "Ours")
    await factory.subscription(customer, lines=[("MEETINGS", 10, 12, 3)])
    before = data_of(await post_graphql(api, KPIS, as_="full@acme.example"))["licenseKpis"]
    assert before["totalCustomers"] == 1
    async with api.engine.begin() as conn:
        await conn.execute(text("TRUNCATE license_line CASCADE"))
    after = data_of(await post_graphql(api, KPIS, as_="full@acme.example"))["licenseKpis"]
    assert after == {k: 0 for k in after}, after


@postgresql_only
async def test_truncating_licence_lines_empties_the_calling_licences(api: Api) -> None:
    """The calling licence spans (0022) handle TRUNCATE themselves."""
    factory = Factory(api.engine)
    acme = await factory.partner()
    await factory.admin(acme, "full@acme.example", "FULL_ADMIN")
    customer = await factory.customer(acme, "Ours")
    await factory.subscription(customer, lines=[("CALLING", 10, 4, 3)])
    before = data_of(await post_graphql(api, LICENSED, as_="full@acme.example"))
    weeks = before["callingAnalytics"]["usersByVolumeTrend"]
    assert weeks[-1]["licensedUsersWithoutCalls"] == 4, weeks
    async with api.engine.begin() as conn:
        await conn.execute(text("TRUNCATE license_line CASCADE"))
    after = data_of(await post_graphql(api, LICENSED, as_="full@acme.example"))
    weeks = after["callingAnalytics"]["usersByVolumeTrend"]
    assert all(w["licensedUsersWithoutCalls"] == 0 for w in weeks), weeks


# --- the calling usage table: two merged parts, every order, both directions ------------------

ORDERS = [
    f"{key}_{way}"
    for key in ("CALLS", "MINUTES", "ACTIVE_USERS", "CALLS_CHANGE", "NAME")
    for way in ("ASC", "DESC")
]
USAGE = """
query Usage($order: CallingCustomerUsageOrder!, %s) {
  callingAnalytics(week: "2026-11-15") {
    customersUsage(orderBy: $order, %s) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      nodes { customer { name } calls minutes activeUsers licensedUsers callsChange }
    }
  }
}
"""
FORWARD = USAGE % ("$first: Int!, $after: String", "first: $first, after: $after")
BACKWARD = USAGE % ("$last: Int, $before: String", "last: $last, before: $before")
WEEK = utc(2026, 11, 15)


def _key(order: str, node: dict[str, Any]) -> Any:
    field = {
        "CALLS": "calls",
        "MINUTES": "minutes",
        "ACTIVE_USERS": "activeUsers",
        "CALLS_CHANGE": "callsChange",
    }.get(order.rsplit("_", 1)[0])
    return node["customer"]["name"].lower() if field is None else node[field]


async def _walk(api: Api, email: str, order: str, size: int, *, backward: bool) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    for _ in range(50):
        variables: dict[str, Any] = {"order": order}
        if backward:
            variables.update(last=size, before=cursor)
        else:
            variables.update(first=size, after=cursor)
        document = BACKWARD if backward else FORWARD
        body = data_of(await post_graphql(api, document, variables, as_=email))
        table = body["callingAnalytics"]["customersUsage"]
        page = table["nodes"]
        assert len(page) <= size
        if backward:
            seen = page + seen
            more, cursor = table["pageInfo"]["hasPreviousPage"], table["pageInfo"]["startCursor"]
        else:
            seen = seen + page
            more, cursor = table["pageInfo"]["hasNextPage"], table["pageInfo"]["endCursor"]
        if not more:
            return [table["totalCount"], seen]
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("order", ORDERS)
async def test_usage_table_walks_every_order_both_ways_within_the_scope(
    api: Api, order: str
) -> None:
    """Rows with calls (some of them 0 in the week: calls only the week before) and quiet
    licensed rows (every numeric key 0) tie on the key: each walk, forward and backward, page
    size 1 and 2, visits exactly the scope's rows, once each, in the order asked, and the
    count says as many; a partner admin sees only their customers, nobody another partner's."""
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex", "globex.example")
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    mine = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    c = {name: await f.customer(acme, name) for name in "ABCDEFGHIJ"}
    g = {name: await f.customer(globex, "G" + name) for name in "XY"}
    licence = {"A": 5, "B": 0, "C": 7, "D": 3, "E": 2, "H": 4}
    for name, assigned in licence.items():
        await f.subscription(c[name], lines=[("CALLING", 10, assigned, 0)])
    await f.subscription(g["X"], lines=[("CALLING", 10, 6, 0)])
    # not in force: ended, and starting after now
    await f.subscription(
        c["G"],
        start=NOW - timedelta(days=90),
        end=NOW - timedelta(days=1),
        lines=[("CALLING", 10, 9, 0)],
    )
    await f.subscription(
        c["I"],
        start=NOW + timedelta(days=1),
        end=NOW + timedelta(days=90),
        lines=[("CALLING", 10, 9, 0)],
    )
    aggregates = [  # customer, week, calls, seconds, active users
        (c["A"], WEEK, 3, 100, 2),
        (c["A"], WEEK - timedelta(days=7), 1, 60, 1),
        (c["C"], WEEK - timedelta(days=7), 4, 240, 2),  # calls only the week before
        (c["F"], WEEK, 2, 30, 1),  # unlicensed, calls
        (c["J"], WEEK - timedelta(days=7), 5, 50, 1),  # unlicensed, only the week before
        (c["H"], WEEK, 1, 60, 1),
        (g["Y"], WEEK, 9, 900, 3),
    ]
    async with api.engine.begin() as conn:
        for customer, week, calls, seconds, users in aggregates:
            partner = globex if customer in g.values() else acme
            await conn.execute(
                insert(CallWeeklyAggregate).values(
                    customer_id=customer,
                    week_start=week,
                    partner_id=partner,
                    calls=calls,
                    duration_seconds=seconds,
                    active_users=users,
                )
            )
    for name in "CDF":
        await f.assign(c[name], mine)
    expected = {
        "full@acme.example": {"A", "B", "C", "D", "E", "F", "H"},
        "partner@acme.example": {"C", "D", "F"},
        "full@globex.example": {"GX", "GY"},
    }
    for email, names in expected.items():
        walks = []
        for size in (1, 2, 3):
            for backward in (False, True):
                total, rows = await _walk(api, email, order, size, backward=backward)
                got = [r["customer"]["name"] for r in rows]
                assert sorted(got) == sorted(names), (email, size, backward, got)
                assert total == len(names), (email, total)
                keys = [_key(order, r) for r in rows]
                assert keys == sorted(keys, reverse=order.endswith("_DESC")), (email, got, keys)
                walks.append(got)
        assert all(w == walks[0] for w in walks), (email, walks)


# --- KPI spans at odd instants: the whole partner's kept figures = an assigned scope's count ---

DAY = timedelta(days=1)
MIDNIGHT = utc(2026, 11, 26)
# (kind, start, end, auto-renew, renewal, lines)
ODD_SUBSCRIPTIONS = [
    ("PAID", MIDNIGHT - 10 * DAY, MIDNIGHT + 5 * DAY, True, MIDNIGHT + 5 * DAY),
    ("PAID", MIDNIGHT - 10 * DAY, MIDNIGHT + 20 * DAY, True, MIDNIGHT + 200 * DAY),  # beyond end
    ("PAID", MIDNIGHT - 10 * DAY, MIDNIGHT + 200 * DAY, True, MIDNIGHT - 20 * DAY),  # passed
    ("PAID", MIDNIGHT, MIDNIGHT + 3 * DAY, False, None),  # starts at midnight
    ("TRIAL", MIDNIGHT - 3 * DAY, MIDNIGHT, False, None),  # ends at midnight
    ("PAID", MIDNIGHT + 2 * DAY, MIDNIGHT + 400 * DAY, True, MIDNIGHT + 89 * DAY),  # not yet
    ("PAID", MIDNIGHT - 89 * DAY, MIDNIGHT + 90 * DAY, True, MIDNIGHT + 90 * DAY),
    ("TRIAL", MIDNIGHT + timedelta(hours=13), MIDNIGHT + 7 * DAY, False, None),
]


async def test_kept_kpis_equal_the_direct_count_at_odd_instants(api: Api) -> None:
    """The whole partner's license KPIs and section KPIs are read from the kept spans and day
    edges; an admin assigned every customer counts the same subscriptions directly. At
    midnight, at a start, an end, a renewal (also one beyond the end, or passed), 90 days
    before them, a microsecond either side, both must say the same."""

    f = Factory(api.engine)
    acme = await f.partner()
    everyone = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    instants = {MIDNIGHT, MIDNIGHT + timedelta(hours=13)}
    for i, (kind, start, end, renew, renewal) in enumerate(ODD_SUBSCRIPTIONS):
        customer = await f.customer(acme, f"Customer {i}")
        await f.assign(customer, everyone)
        lines = [("MEETINGS", 10, 12 if i % 2 else 4, 3), ("CALLING", 20, 2, 1)]
        sub = await f.subscription(
            customer, kind=kind, start=start, end=end, auto_renew=renew, lines=lines
        )
        async with api.engine.begin() as conn:
            await conn.execute(update(SUB).where(SUB.c.id == sub).values(renewal_date=renewal))
        for edge in (start, end, renewal):
            if edge is not None:
                for base in (edge, edge - 90 * DAY, edge - 7 * DAY):
                    instants |= {base, base - timedelta(microseconds=1), base + timedelta(0, 1)}
    whole, assigned = _issue(acme), _issue(acme, everyone)
    async with session_factory(api.engine)() as session:
        for now in sorted(instants):
            kept = await q.license_kpis(session, scope=whole, now=now)
            direct = await q.license_kpis(session, scope=assigned, now=now)
            assert kept == direct, now
            for product in ("MEETINGS", "CALLING"):
                kept_s = await q.section_summaries(session, scope=whole, product=product, now=now)
                direct_s = await q.section_summaries(
                    session, scope=assigned, product=product, now=now
                )
                assert kept_s == direct_s, (now, product)
            kept_c = await licensed_totals(session, scope=whole, now=now)
            direct_c = await licensed_totals(session, scope=assigned, now=now)
            pair = ((kept_c.customers, kept_c.licensed), (direct_c.customers, direct_c.licensed))
            assert pair[0] == pair[1], (now, pair)


# --- a query outside a transaction writes nothing ---------------------------------------------

WRITE_WORD = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)
EVERY_READ = """
query Everything($n: Int!) {
  viewer { email }
  partner { name }
  admins(first: 5) { totalCount }
  licenseKpis { totalCustomers lowAllocation }
  licenseAnalytics(product: MEETINGS) { lowAllocation { kpis { lowAllocationCustomers } } }
  callingAnalytics { usage { calls } }
  customers(first: $n) { totalCount nodes { name } }
  tags { name }
  helpdeskCases(first: 5) { totalCount }
  roles { name }
  auditLog(first: 5) { totalCount }
  quickLinks { title }
  resources(first: 5) { totalCount }
  webhookEndpoints { id }
  webhookDeliveries(first: 5) { totalCount }
}
"""


@postgresql_only
async def test_a_query_run_outside_a_transaction_writes_nothing(api: Api) -> None:
    """On PostgreSQL a known query runs in autocommit: any write on its path would commit at
    once, statement by statement, without the data version's bump. Every root query field,
    asked twice (the second time outside a transaction), sends no write statement."""
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    customer = await f.customer(acme, "Ours")
    await f.subscription(customer, lines=[("MEETINGS", 10, 3, 3), ("CALLING", 5, 5, 0)])
    first = data_of(await post_graphql(api, EVERY_READ, {"n": 5}, as_="full@acme.example"))
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement, conn.connection.dbapi_connection.autocommit))

    event.listen(api.engine.sync_engine, "before_cursor_execute", record)
    try:
        # (another page size: not the cached response, the same known document)
        again = data_of(await post_graphql(api, EVERY_READ, {"n": 6}, as_="full@acme.example"))
    finally:
        event.remove(api.engine.sync_engine, "before_cursor_execute", record)
    assert again == first
    assert seen and all(autocommit for _, autocommit in seen), seen
    writes = [
        s
        for s, _ in seen
        if is_write(s)
        # a read with a common table expression (is_write is conservative about WITH)
        and not (s.lstrip().upper().startswith("WITH") and not WRITE_WORD.search(s))
    ]
    assert not writes, writes


# --- low-allocation rows: thin rows sorted, full rows by key, every column both ways -----------

LOW_ROWS = """
query Low($order: LowAllocationOrder, %s) {
  licenseAnalytics(product: MEETINGS) {
    lowAllocation {
      kpis { lowAllocationCustomers }
      rows(orderBy: $order, %s) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        nodes { customerName subscriptionId monthsSinceAdded totalLicenses assigned used available
                allocationPercent }
      }
    }
  }
}
"""
LOW_FORWARD = LOW_ROWS % ("$first: Int!, $after: String", "first: $first, after: $after")
LOW_BACKWARD = LOW_ROWS % ("$last: Int, $before: String", "last: $last, before: $before")
LOW_COLUMNS = {
    "CUSTOMER_NAME": lambda n: n["customerName"].lower(),
    "SUBSCRIPTION_ID": lambda n: n["subscriptionId"],
    "MONTHS_SINCE_ADDED": lambda n: n["monthsSinceAdded"],
    "TOTAL_LICENSES": lambda n: n["totalLicenses"],
    "ASSIGNED": lambda n: n["assigned"],
    "USED": lambda n: n["used"],
    "AVAILABLE": lambda n: n["available"],
    "ALLOCATION_PERCENT": lambda n: n["allocationPercent"],
}


async def _low_walk(
    api: Api, email: str, order: dict[str, str], size: int, *, backward: bool
) -> tuple[int, list[Any]]:
    seen: list[Any] = []
    cursor = None
    for _ in range(60):
        variables: dict[str, Any] = {"order": order}
        variables.update({"last": size, "before": cursor} if backward else {"first": size})
        if not backward:
            variables["after"] = cursor
        document = LOW_BACKWARD if backward else LOW_FORWARD
        body = data_of(await post_graphql(api, document, variables, as_=email))
        rows = body["licenseAnalytics"]["lowAllocation"]["rows"]
        info = rows["pageInfo"]
        seen = rows["nodes"] + seen if backward else seen + rows["nodes"]
        more = info["hasPreviousPage"] if backward else info["hasNextPage"]
        cursor = info["startCursor"] if backward else info["endCursor"]
        if not more:
            return rows["totalCount"], seen
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("column", sorted(LOW_COLUMNS))
async def test_low_allocation_rows_walk_every_column_both_ways_within_the_scope(
    api: Api, column: str
) -> None:
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex", "globex.example")
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    mine = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    # band 1-10: ratios 0.1 x3, 0.2 x2, 0.8, 0.9, 1 x3: median 0.5, flagged below 0.25
    # band 11-50: 0.05 x2, 1 x3: median 1, flagged below 0.5
    acme_lines = [(10, a) for a in (1, 1, 1, 2, 2, 8, 10)] + [(20, a) for a in (1, 1, 20, 20)]
    globex_lines = [(10, a) for a in (9, 10, 10)] + [(20, a) for a in (20,)]
    flagged_acme: set[str] = set()
    for i, (purchased, assigned) in enumerate(acme_lines):
        customer = await f.customer(acme, f"Acme {i % 4}")  # names tie
        await f.subscription(customer, lines=[("MEETINGS", purchased, assigned, assigned)])
        if assigned / purchased < (0.25 if purchased == 10 else 0.5):
            flagged_acme.add(str(customer))
            if i % 2:
                await f.assign(customer, mine)
    for i, (purchased, assigned) in enumerate(globex_lines):
        customer = await f.customer(globex, f"Globex {i}")
        await f.subscription(customer, lines=[("MEETINGS", purchased, assigned, assigned)])
    expected = {"full@acme.example": 7, "partner@acme.example": 3, "full@globex.example": 0}
    for email, count in expected.items():
        for direction in ("ASC", "DESC"):
            order = {"field": column, "direction": direction}
            walks = []
            for size in (1, 2):
                for backward in (False, True):
                    total, rows = await _low_walk(api, email, order, size, backward=backward)
                    assert total == len(rows) == count, (email, order, size, backward, rows)
                    keys = [LOW_COLUMNS[column](r) for r in rows]
                    assert keys == sorted(keys, reverse=direction == "DESC"), (email, keys)
                    walks.append([r["subscriptionId"] for r in rows])
            assert len(set(walks[0])) == count
            assert all(w == walks[0] for w in walks), (email, order, walks)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ("first: 0", "INVALID_PAGE_SIZE"),
        ("first: 101", "INVALID_PAGE_SIZE"),
        ("first: 2147483647", "INVALID_PAGE_SIZE"),
        ("last: 2147483647", "INVALID_PAGE_SIZE"),
        ("last: -5", "INVALID_PAGE_SIZE"),
        ('first: 5, after: "x\\u0000y"', "BAD_USER_INPUT"),
        ('last: 5, before: "AAAA"', "INVALID_CURSOR"),
        ("first: 5, last: 5", "BAD_USER_INPUT"),
    ],
)
@pytest.mark.parametrize("table", ["customersUsage", "customersQuality"])
async def test_calling_tables_refuse_odd_paging_with_codes(
    api: Api, table: str, args: str, code: str
) -> None:
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    document = f"{{ callingAnalytics {{ {table}({args}) {{ totalCount }} }} }}"
    body = await post_graphql(api, document, as_="full@acme.example")
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert codes == [code], body


# --- cached responses that read the medians: every reader, after another partner's trial -------

MEDIAN_READERS = {
    "top KPIs": "query A { licenseKpis { lowAllocation } }",
    "rows": "query B { licenseAnalytics(product: MEETINGS) "
    "{ lowAllocation { rows(first: 5) { totalCount } } } }",
    "rows backward": "query C { licenseAnalytics(product: MEETINGS) "
    "{ lowAllocation { rows(last: 5) { totalCount } } } }",
    "through a fragment": "query D { ...K } fragment K on Query { licenseKpis { lowAllocation } }",
}


@pytest.mark.parametrize("document", list(MEDIAN_READERS.values()), ids=list(MEDIAN_READERS))
@pytest.mark.parametrize("role", ["FULL_ADMIN", "PARTNER_ADMIN"])
async def test_every_median_reader_sees_another_partners_trial(
    api: Api, document: str, role: str
) -> None:
    """Whatever reads the low-allocation medians (the top KPIs, the section's rows, forward or
    backward, for the whole partner or an assigned admin) is cached with the shared version:
    another partner's trial, which moves the medians, is seen at once."""
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex", "globex.example")
    reader = await f.admin(acme, "reader@acme.example", role)
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    ours = await f.customer(acme, "Ours")
    await f.assign(ours, reader)
    theirs = await f.customer(globex, "Theirs")
    others = [await f.customer(globex, f"Other {n}") for n in range(2)]
    await f.subscription(ours, lines=[("MEETINGS", 10, 3, 3)])  # ratio 0.3
    await f.subscription(theirs, lines=[("MEETINGS", 10, 10, 10)])  # ratio 1.0
    for email in ("reader@acme.example", "full@globex.example"):
        await token_for(api, email)

    token = await token_for(api, "reader@acme.example")
    caching: list[str | None] = []

    async def low() -> int:
        response = await api.client.post(
            "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {token}"}
        )
        caching.append(response.headers.get("x-partner-hub-cache"))
        body = data_of(response.json())
        if "licenseKpis" in body:
            return int(body["licenseKpis"]["lowAllocation"])
        return int(body["licenseAnalytics"]["lowAllocation"]["rows"]["totalCount"])

    assert await low() == 1  # median of {0.3, 1.0}: 0.65
    assert await low() == 1
    assert caching == ["miss", "hit"]  # (the response cache's)
    for other in others:  # two trials of ratio 0: median 0.15
        body = await post_graphql(
            api,
            START_TRIAL,
            {"input": for_customer(other, ("MEETINGS", 5))},
            as_="full@globex.example",
        )
        assert not data_of(body)["startTrial"]["userErrors"], body
    assert await low() == 0


async def test_kept_figures_follow_a_subscription_moved_to_another_customer(api: Api) -> None:
    """Plain SQL moves a subscription (and so its lines) to another customer, then back to a
    customer of no assigned admin: the kept spans of both customers follow (the whole partner's
    figures equal the assigned admin's direct count, which sees one of them)."""

    f = Factory(api.engine)
    acme = await f.partner()
    everyone = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    a, b = await f.customer(acme, "A"), await f.customer(acme, "B")
    await f.assign(a, everyone)
    await f.assign(b, everyone)
    lines = [("MEETINGS", 10, 12, 3), ("CALLING", 20, 2, 1)]
    sub = await f.subscription(a, end=NOW + 3 * DAY, auto_renew=False, lines=lines)
    whole, assigned = _issue(acme), _issue(acme, everyone)

    async def same() -> tuple[Any, ...]:
        async with session_factory(api.engine)() as session:
            kept = await q.license_kpis(session, scope=whole, now=NOW)
            direct = await q.license_kpis(session, scope=assigned, now=NOW)
            assert kept == direct
            kept_c = await licensed_totals(session, scope=whole, now=NOW)
            direct_c = await licensed_totals(session, scope=assigned, now=NOW)
            assert (kept_c.customers, kept_c.licensed) == (direct_c.customers, direct_c.licensed)
            for product in ("MEETINGS", "CALLING"):
                kept_s = await q.section_summaries(session, scope=whole, product=product, now=NOW)
                direct_s = await q.section_summaries(
                    session, scope=assigned, product=product, now=NOW
                )
                assert kept_s == direct_s, product
            return (kept, kept_c.customers, kept_c.licensed)

    before = await same()
    async with api.engine.begin() as conn:
        await conn.execute(update(SUB).where(SUB.c.id == sub).values(customer_id=b))
    moved = await same()
    assert moved == before  # one customer either way
    # another subscription for A, then B's moves onto A: A counts once
    await f.subscription(a, lines=[("MEETINGS", 10, 1, 1)])
    async with api.engine.begin() as conn:
        await conn.execute(update(SUB).where(SUB.c.id == sub).values(customer_id=a))
    after = await same()
    assert after[0].total_customers == 1, after


async def test_kept_figures_follow_a_subscription_moved_to_another_partner(api: Api) -> None:
    """An operator moves a subscription (its customer and partner, and its lines' partner) to
    another partner: the first partner's kept figures lose it, the second's gain it."""

    f = Factory(api.engine)
    acme, globex = await f.partner(), await f.partner("Globex", "globex.example")
    a, g = await f.customer(acme, "A"), await f.customer(globex, "G")
    lines = [("MEETINGS", 10, 12, 3), ("CALLING", 20, 2, 1)]
    sub = await f.subscription(a, end=NOW + 3 * DAY, auto_renew=False, lines=lines)
    async with api.engine.begin() as conn:
        await conn.execute(
            update(SUB).where(SUB.c.id == sub).values(customer_id=g, partner_id=globex)
        )
        await conn.execute(
            update(LINE).where(LINE.c.subscription_id == sub).values(partner_id=globex)
        )
    async with session_factory(api.engine)() as session:
        for partner, n in ((acme, 0), (globex, 1)):
            kpis = await q.license_kpis(session, scope=_issue(partner), now=NOW)
            assert (kpis.total_customers, kpis.about_to_expire, kpis.over_license_limit) == (
                n,
                n,
                n,
            ), (partner, kpis)
            licensed = await licensed_totals(session, scope=_issue(partner), now=NOW)
            assert (licensed.customers, licensed.licensed) == (n, 2 * n), partner
            summaries = await q.section_summaries(
                session, scope=_issue(partner), product="MEETINGS", now=NOW
            )
            assert summaries[q.Section.OVERAGE].customers == n, (partner, summaries)


@postgresql_only
async def test_a_pooled_connection_leaves_autocommit_with_the_query(api: Api) -> None:
    """The query's connection goes back to the pool in PostgreSQL's default mode: a mutation (or
    an ingest) that checks it out next runs in a transaction, also after a refused token."""
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    token = await token_for(api, "full@acme.example")
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        response = await api.client.post(
            "/graphql", json={"query": "{ viewer { email } }"}, headers=headers
        )
        assert response.status_code == 200
        # a known query document with a token that does not authenticate
        response = await api.client.post(
            "/graphql",
            json={"query": "{ viewer { email } }"},
            headers={"Authorization": "Bearer nope"},
        )
        assert response.status_code == 401
    pool = api.engine.sync_engine.pool
    async with contextlib.AsyncExitStack() as stack:
        modes = []
        for _ in range(pool.size()):  # type: ignore[attr-defined]
            conn = await stack.enter_async_context(api.engine.connect())
            raw = await conn.get_raw_connection()
            modes.append(raw.dbapi_connection.autocommit)  # type: ignore[union-attr]
    assert not any(modes), modes


QUALITY = """
query Quality($order: CallingCustomerQualityOrder!, %s) {
  callingAnalytics(week: "2026-11-15") {
    customersQuality(orderBy: $order, %s) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      nodes { customer { name } totalCalls poorCalls poorPercent }
    }
  }
}
"""
QUALITY_KEYS = {
    "POOR_PERCENT": lambda n: n["poorPercent"],
    "POOR_CALLS": lambda n: n["poorCalls"],
    "TOTAL_CALLS": lambda n: n["totalCalls"],
    "NAME": lambda n: n["customer"]["name"].lower(),
}


@pytest.mark.parametrize(
    "order",
    [
        "POOR_PERCENT_DESC",
        "POOR_PERCENT_ASC",
        "POOR_CALLS_DESC",
        "TOTAL_CALLS_DESC",
        "NAME_ASC",
        "NAME_DESC",
    ],
)
async def test_quality_table_walks_every_order_both_ways_within_the_scope(
    api: Api, order: str
) -> None:
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex", "globex.example")
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    mine = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    rows = [(3, 1), (3, 1), (6, 2), (4, 0), (4, 0), (1, 1), (2, 0)]  # calls, poor: ties
    customers = [await f.customer(acme, f"Name {i % 3}") for i in range(len(rows))]
    theirs = await f.customer(globex, "Theirs")
    async with api.engine.begin() as conn:
        for pk, (calls, poor) in zip(customers, rows, strict=True):
            await conn.execute(
                insert(CallWeeklyAggregate).values(
                    customer_id=pk,
                    week_start=WEEK,
                    partner_id=acme,
                    calls=calls,
                    duration_seconds=60 * calls,
                    active_users=1,
                    poor_calls=poor,
                )
            )
        await conn.execute(
            insert(CallWeeklyAggregate).values(
                customer_id=theirs,
                week_start=WEEK,
                partner_id=globex,
                calls=9,
                duration_seconds=9,
                active_users=1,
                poor_calls=9,
            )
        )
    for pk in customers[::2]:
        await f.assign(pk, mine)
    forward = QUALITY % ("$first: Int!, $after: String", "first: $first, after: $after")
    backward_doc = QUALITY % ("$last: Int, $before: String", "last: $last, before: $before")
    key = QUALITY_KEYS[order.rsplit("_", 1)[0]]
    for email, count in (
        ("full@acme.example", 7),
        ("partner@acme.example", 4),
        ("full@globex.example", 1),
    ):
        walks = []
        for size in (1, 2, 3):
            for backward in (False, True):
                seen: list[Any] = []
                cursor = None
                total = None
                for _ in range(20):
                    variables: dict[str, Any] = {"order": order}
                    if backward:
                        variables.update(last=size, before=cursor)
                    else:
                        variables.update(first=size, after=cursor)
                    document = backward_doc if backward else forward
                    body = data_of(await post_graphql(api, document, variables, as_=email))
                    table = body["callingAnalytics"]["customersQuality"]
                    total, info = table["totalCount"], table["pageInfo"]
                    seen = table["nodes"] + seen if backward else seen + table["nodes"]
                    more = info["hasPreviousPage"] if backward else info["hasNextPage"]
                    cursor = info["startCursor"] if backward else info["endCursor"]
                    if not more:
                        break
                assert total == len(seen) == count, (email, size, backward, seen)
                keys = [key(n) for n in seen]
                assert keys == sorted(keys, reverse=order.endswith("_DESC")), (email, keys)
                walks.append(
                    [(n["customer"]["name"], n["totalCalls"], n["poorCalls"]) for n in seen]
                )
        assert all(w == walks[0] for w in walks), (email, walks)


# --- the directory page's relationships (one statement) = each customer's own ----------------

CUSTOMER_FIELDS = """
  id name statuses products
  tags { name }
  subscriptions { subscriptionId tags { name } invoices { invoiceNumber }
                  licenses { product purchased assigned } orders { orderNumber } }
  trials { subscriptionId licenses { product } orders { orderNumber } }
  partnerAdmins { role admin { email } }
"""
DIRECTORY = (
    "query Page($filter: CustomerFilter) { customers(first: 25, filter: $filter) "
    "{ nodes { " + CUSTOMER_FIELDS + " } } }"
)
ONE = "query One($id: ID!) { customer(id: $id) { " + CUSTOMER_FIELDS + " } }"


@pytest.mark.parametrize(
    "email",
    ["full@acme.example", "partner@acme.example", "readonly@acme.example", "sales@acme.example"],
)
@pytest.mark.parametrize(
    "filter_",
    [None, {"statuses": ["EXPIRING_SOON"]}, {"statuses": ["TRIAL"], "products": ["CALLING"]}],
)
async def test_directory_page_relationships_equal_each_customers_own(
    demo_api: Api, email: str, filter_: dict[str, Any] | None
) -> None:
    """The page's relationships come from one JSON statement for all its customers; for any
    role (an assigned partner admin, a sales admin) and filtered page, each customer's must be
    exactly what ``customer(id:)`` answers for the same caller."""
    page = data_of(await post_graphql(demo_api, DIRECTORY, {"filter": filter_}, as_=email))
    nodes = page["customers"]["nodes"]
    assert nodes or filter_ is not None
    related = sum(len(n["subscriptions"]) + len(n["partnerAdmins"]) for n in nodes)
    assert related or not nodes, "the page must have relationships to compare"
    for node in nodes:
        one = data_of(await post_graphql(demo_api, ONE, {"id": node["id"]}, as_=email))
        assert one["customer"] == node, (email, node["name"])
