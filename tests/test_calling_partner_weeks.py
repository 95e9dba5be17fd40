"""The partner-wide calling figures (``call_partner_week``) stay equal to the recomputation from
the records themselves (``tests.test_calling.Expected``) through any sequence of ingests
(new calls, calls loaded again) and clock moves across weeks and licence ends, for a full admin
of each partner (the partner rows) and a partner admin limited to one customer (the customer
rows); and every partner row stays the sum of its customer rows. Property-based (hypothesis),
on both backends.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, func, select

from db.calls_partner import CALL_PARTNER_WEEK, PARTNER_COLUMNS, partner_sums
from db.ingest import CSV_COLUMNS, ingest_stream
from db.models import LicenseLine
from db.settings import Settings
from graph.ids import to_global_id
from tests.conftest import NOW, Api, api_over, app_client
from tests.databases import Database
from tests.helpers import Factory, data_of, post_graphql
from tests.test_calling import (
    ENDPOINTS,
    FEATURES,
    FIGURES,
    USAGE_PAGE,
    Call,
    Expected,
    all_rows,
)

WEEKS = [date(2026, 10, 18), date(2026, 10, 25), date(2026, 11, 1), date(2026, 11, 8)]
ADMINS = ("full@acme.example", "partner@acme.example", "full@globex.example")

calls = st.fixed_dictionaries(
    {
        "customer": st.integers(0, 4),
        "week": st.integers(0, len(WEEKS) - 1),
        "second": st.integers(0, 7 * 86400 - 1),
        "user": st.integers(0, 3),
        "seconds": st.integers(0, 900),
        "endpoint": st.sampled_from(ENDPOINTS),
        "poor": st.booleans(),
        "features": st.lists(st.sampled_from(FEATURES), max_size=2, unique=True),
        "queue": st.one_of(st.none(), st.tuples(st.integers(0, 120), st.booleans())),
    }
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("ingest"), st.lists(calls, min_size=1, max_size=10)),
        st.tuples(st.just("again"), st.integers(1, 5)),
        st.tuples(st.just("clock"), st.integers(-10, 20)),
    ),
    min_size=1,
    max_size=5,
)


@dataclass
class Licence:
    """A subscription with one CALLING line, as the test wrote it (``World.licensed``)."""

    id: int
    line: int | None  # the line's id; None once the line is deleted
    customer: int
    start: datetime
    end: datetime
    assigned: int
    state: str = "ACTIVE"


class World:
    def __init__(self, customers: list[int], partners: dict[int, int], assigned: int) -> None:
        self.customers = customers
        self.partner_of = partners
        self.assigned = assigned
        self.calls: list[Call] = []
        self.licences: list[Licence] = []
        self.names: dict[int, str] = {}
        self.factory: Any = None  # the one Factory: its counter names subscriptions
        self.now = NOW
        self.n = 0
        self.counter: Any = None

    def call(self, spec: dict[str, Any]) -> Call:
        self.n += 1
        pk = self.customers[spec["customer"]]
        w = WEEKS[spec["week"]]
        queue = spec["queue"]
        return Call(
            call_id=f"c{self.n}",
            customer=pk,
            customer_ref=to_global_id("Customer", pk),
            user=f"u{pk}-{spec['user']}",
            started=datetime(w.year, w.month, w.day, tzinfo=UTC)
            + timedelta(seconds=spec["second"]),
            seconds=spec["seconds"],
            direction="OUTBOUND",
            endpoint=spec["endpoint"],
            loss=9.0 if spec["poor"] else 0.5,
            jitter=10.0,
            latency=50.0,
            features=spec["features"],
            queue=None if queue is None else "q1",
            wait=None if queue is None else queue[0],
            answered=None if queue is None else queue[1],
            abandoned=None if queue is None else not queue[1],
        )

    def licensed(self) -> dict[int, int]:
        """Assigned CALLING licences in force at ``now`` per customer (DESIGN.md section 2:
        ACTIVE and start <= now < end), recomputed from what the test wrote."""
        found: dict[int, int] = {}
        for lic in self.licences:
            if lic.line is not None and lic.state == "ACTIVE" and lic.start <= self.now < lic.end:
                found[lic.customer] = found.get(lic.customer, 0) + lic.assigned
        return found


async def add_licence(
    api: Api, w: World, customer: int, start: datetime, end: datetime, assigned: int
) -> None:
    sub = await w.factory.subscription(
        customer, start=start, end=end, lines=[("CALLING", assigned + 5, assigned, 0)]
    )
    async with api.engine.connect() as conn:
        line = await conn.scalar(
            select(func.max(LicenseLine.id)).where(LicenseLine.subscription_id == sub)  # type: ignore[arg-type]
        )
    w.licences.append(Licence(sub, int(line), customer, start, end, assigned))


async def world(api: Api) -> World:
    f = Factory(api.engine)
    acme = await f.partner("Acme Partners", "acme.example")
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    partner_admin = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    names = [f"Acme {i}" for i in range(3)] + [f"Globex {i}" for i in range(2)]
    customers = [await f.customer(acme if n.startswith("Acme") else globex, n) for n in names]
    c0, c1, c2, c3, _ = customers
    await f.subscription(c2, lines=[("MEETINGS", 10, 9, 3)])  # not a CALLING licence
    await f.assign(c0, partner_admin)
    partners = {c: acme for c in customers[:3]} | {c: globex for c in customers[3:]}
    w = World(customers, partners, c0)
    w.names = dict(zip(customers, names, strict=True))
    w.factory = f
    # Licences that end, or start, within the clock's moves (World.licensed).
    long_ago, later = NOW - timedelta(days=100), NOW + timedelta(days=265)
    await add_licence(api, w, c0, long_ago, NOW + timedelta(days=5), 20)
    await add_licence(api, w, c0, long_ago, later, 4)
    await add_licence(api, w, c1, long_ago, NOW + timedelta(days=12), 9)
    await add_licence(api, w, c1, NOW + timedelta(days=3), later, 6)  # starts after now
    await add_licence(api, w, c3, long_ago, later, 12)
    return w


async def ingest(api: Api, w: World, batch: list[Call]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(c.csv_row() for c in batch)
    out.seek(0)
    report = await ingest_stream(api.engine, out, now=w.now, batch_size=4)
    assert report.rejected == 0, report.rejections


async def partner_rows_are_sums(api: Api) -> None:
    weekly, detail, sums = partner_sums()
    pw = CALL_PARTNER_WEEK
    async with api.engine.connect() as conn:
        stored = {
            (r[0], r[1]): tuple(int(v) for v in r[2:])
            for r in await conn.execute(
                select(pw.c.partner_id, pw.c.week_start, *[pw.c[n] for n in PARTNER_COLUMNS])
            )
        }
        summed = {
            (r[0], r[1]): tuple(int(v) for v in r[2:])
            for r in await conn.execute(
                select(weekly.c.partner_id, weekly.c.week_start, *sums)  # type: ignore[call-overload]
                .select_from(
                    weekly.join(
                        detail,
                        and_(
                            detail.c.customer_id == weekly.c.customer_id,
                            detail.c.week_start == weekly.c.week_start,
                        ),
                    )
                )
                .group_by(weekly.c.partner_id, weekly.c.week_start)
            )
        }
        assert await conn.scalar(select(func.count()).select_from(pw)) == len(stored)
    assert stored == summed


async def figures_equal_the_reference(db: Database, w: World) -> None:
    last_week = (w.now - timedelta(days=(w.now.weekday() + 1) % 7 + 7)).date()
    settings = Settings(database_url=db.url, now=w.now, secret_key="t")
    async with app_client(settings, db.engine) as (_, client):
        api = Api(db=db, settings=settings, client=client, counter=w.counter)
        for admin in ADMINS:
            visible = (
                {w.assigned}
                if admin.startswith("partner@")
                else {c for c, p in w.partner_of.items() if p == w.partner_of[w.customers[0]]}
                if "acme" in admin
                else {c for c, p in w.partner_of.items() if p != w.partner_of[w.customers[0]]}
            )
            expected = Expected(
                w.calls, week=last_week, visible=visible, licensed=w.licensed(), names=w.names
            )
            figures = data_of(await post_graphql(api, FIGURES, {"week": None}, as_=admin))
            analytics = figures["callingAnalytics"]
            assert analytics["weekStart"] == last_week.isoformat(), admin
            assert analytics["usage"] == expected.usage(), admin
            assert analytics["usersByVolumeTrend"] == expected.volume_trend(), admin
            assert analytics["quality"] == expected.quality(), admin
            assert analytics["qualityTrend"] == expected.quality_trend(), admin
            assert analytics["qualityByEndpoint"] == expected.quality_by_endpoint(), admin
            assert analytics["featureUsage"] == expected.feature_usage(), admin
            assert analytics["callQueue"]["kpis"] == expected.queue_kpis(), admin
            rows, total = await all_rows(api, admin, USAGE_PAGE, ["customersUsage"], None)
            assert rows == expected.customers_usage(), admin
            assert total == len(rows), admin


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=steps)
async def test_partner_figures_follow_any_ingests_and_clock_moves(
    fresh_database: Database, script: list[tuple[str, Any]]
) -> None:
    await fresh_database.empty()
    async with api_over(fresh_database) as api:
        w = await world(api)
        w.counter = api.counter
        for action, arg in script:
            if action == "ingest":
                batch = [w.call(spec) for spec in arg]
                await ingest(api, w, batch)
                w.calls += batch
            elif action == "again" and w.calls:  # loaded again: duplicates, nothing changes
                await ingest(api, w, w.calls[-arg:])
            elif action == "clock":
                w.now = NOW + timedelta(days=arg)
            await partner_rows_are_sums(api)
            await figures_equal_the_reference(fresh_database, w)


def test_the_weeks_of_the_script_are_sundays_before_every_clock() -> None:
    assert all(w.weekday() == 6 for w in WEEKS)
    assert datetime(2026, 11, 15, tzinfo=UTC) <= NOW - timedelta(days=10)
