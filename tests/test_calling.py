"""Calling analytics: every figure equals the same figure computed in plain Python from the
records themselves (two weeks, two partners, a full admin and a scoped partner admin)."""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from db.ingest import CSV_COLUMNS, ingest_stream
from graph.ids import to_global_id
from tests.conftest import NOW, Api
from tests.helpers import Factory, assert_forbidden, data_of, error_codes, post_graphql

FEATURES = [
    "TRANSFER",
    "HOLD",
    "FORWARD",
    "CONFERENCE",
    "CALL_QUEUE",
    "HUNT_GROUP",
    "AUTO_ATTENDANT",
    "VOICEMAIL",
    "CALL_PARK",
    "CALL_PICKUP",
]
ENDPOINTS = ["DESK_PHONE", "DESKTOP_APP", "MOBILE_APP", "BROWSER", "OTHER"]
LAST_WEEK = date(2026, 11, 15)  # NOW is Thursday 2026-11-26: last week is 15-22 November
OFFSETS = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30))]


# --- data: records and their figures in plain Python ---------------------------------------


@dataclass
class Call:
    call_id: str
    customer: int  # primary key
    customer_ref: str  # as written in the file: global ID or external id
    user: str
    started: datetime  # with its original offset
    seconds: int
    direction: str
    endpoint: str
    loss: float
    jitter: float
    latency: float
    features: list[str]
    queue: str | None = None
    wait: int | None = None
    answered: bool | None = None
    abandoned: bool | None = None

    @property
    def utc(self) -> datetime:
        return self.started.astimezone(UTC)

    @property
    def week(self) -> date:
        day = self.utc.date()
        while day.weekday() != 6:  # back to Sunday
            day -= timedelta(days=1)
        return day

    @property
    def poor(self) -> bool:
        return self.loss > 5 or self.jitter > 150 or self.latency > 400

    def csv_row(self) -> list[str]:
        def b(v: bool | None) -> str:
            return "" if v is None else str(v).lower()

        return [
            self.call_id,
            self.customer_ref,
            self.user,
            self.started.isoformat(),
            str(self.seconds),
            self.direction,
            self.endpoint,
            repr(self.loss),
            repr(self.jitter),
            repr(self.latency),
            ";".join(self.features),
            self.queue or "",
            "" if self.wait is None else str(self.wait),
            b(self.answered),
            b(self.abandoned),
        ]


def one_decimal(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def minutes(seconds: int) -> float:
    return one_decimal(Decimal(seconds) / 60)


def ratio(part: int, whole: int, scale: int = 1) -> float:
    return 0.0 if whole == 0 else one_decimal(Decimal(scale * part) / Decimal(whole))


def generate_calls(customers: dict[int, str], external: dict[int, str]) -> list[Call]:
    """Calls over four weeks (the last one still open at NOW) for the given customers."""
    rng = random.Random(20261126)
    calls: list[Call] = []
    weeks = [date(2026, 11, 1), date(2026, 11, 8), date(2026, 11, 15), date(2026, 11, 22)]
    for pk in customers:
        users = [f"u{pk}-{i}" for i in range(rng.randint(2, 6))]
        queue_prone = pk % 2 == 0
        for week in weeks:
            count = rng.choice([0, 3, 8, 15, 25])
            for _ in range(count):
                start = datetime(week.year, week.month, week.day, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(7 * 86400)
                )
                if start >= NOW:
                    continue
                queued = queue_prone and rng.random() < 0.4
                answered = queued and rng.random() < 0.6
                abandoned = queued and not answered and rng.random() < 0.8
                calls.append(
                    Call(
                        call_id=f"call-{len(calls):05d}",
                        customer=pk,
                        customer_ref=external[pk] if rng.random() < 0.5 else customers[pk],
                        user=rng.choice(users),
                        started=start.astimezone(rng.choice(OFFSETS)),
                        seconds=rng.randint(0, 3600),
                        direction=rng.choice(["INBOUND", "OUTBOUND", "INTERNAL"]),
                        endpoint=rng.choice(ENDPOINTS),
                        loss=rng.choice([0.0, 1.5, 5.0, 5.01, 7.25]),
                        jitter=rng.choice([3.0, 150.0, 150.5, 20.0]),
                        latency=rng.choice([80.0, 400.0, 400.001, 120.0, 90.0]),
                        features=sorted(
                            set(rng.sample(FEATURES, rng.choice([0, 0, 1, 2]))) - {"CALL_QUEUE"}
                            | ({"CALL_QUEUE"} if queued else set()),
                            key=FEATURES.index,
                        ),
                        queue=f"q{pk}" if queued else None,
                        wait=rng.randint(0, 300) if queued else None,
                        answered=answered if queued else None,
                        abandoned=abandoned if queued else None,
                    )
                )
    # A heavy user (51+ calls) and a medium one (11-50) in last week, for the volume buckets.
    first = next(iter(customers))
    for n, (user, count) in enumerate((("heavy", 55), ("medium", 12))):
        for i in range(count):
            calls.append(
                Call(
                    call_id=f"bulk-{n}-{i:03d}",
                    customer=first,
                    customer_ref=external[first],
                    user=user,
                    started=datetime(2026, 11, 16, 9, tzinfo=UTC) + timedelta(minutes=7 * i),
                    seconds=61 + i,
                    direction="OUTBOUND",
                    endpoint="DESKTOP_APP",
                    loss=5.0,
                    jitter=150.0,
                    latency=400.0,  # exactly on every threshold: not poor
                    features=[],
                )
            )
    # Right on the week boundaries, written with offsets that move them to the other side.
    for i, (moment, offset) in enumerate(
        (
            (datetime(2026, 11, 15, 0, 0, tzinfo=UTC), UTC),
            (datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC), timezone(timedelta(hours=2))),
            (datetime(2026, 11, 14, 23, 30, tzinfo=UTC), timezone(timedelta(hours=-3))),
        )
    ):
        calls.append(
            Call(
                call_id=f"edge-{i}",
                customer=first,
                customer_ref=customers[first],
                user="edge",
                started=moment.astimezone(offset),
                seconds=45,
                direction="INBOUND",
                endpoint="BROWSER",
                loss=5.000001,
                jitter=0.0,
                latency=0.0,
                features=["VOICEMAIL"],
            )
        )
    return calls


class Expected:
    """The figures of one week for the customers a caller sees, from the calls alone."""

    def __init__(
        self,
        calls: list[Call],
        *,
        week: date,
        visible: set[int],
        licensed: dict[int, int],
        names: dict[int, str],
    ) -> None:
        self.calls = [c for c in calls if c.customer in visible]
        self.week = week
        self.visible = visible
        self.licensed = {k: v for k, v in licensed.items() if k in visible}
        self.names = names

    def of_week(self, week: date, customer: int | None = None) -> list[Call]:
        return [
            c for c in self.calls if c.week == week and (customer is None or c.customer == customer)
        ]

    def usage(self) -> dict[str, Any]:
        week = self.of_week(self.week)
        days = [self.week + timedelta(days=i) for i in range(7)]
        return {
            "calls": len(week),
            "minutes": minutes(sum(c.seconds for c in week)),
            "activeUsers": len({(c.customer, c.user) for c in week}),
            "daily": [
                {
                    "date": d.isoformat(),
                    "calls": sum(1 for c in week if c.utc.date() == d),
                    "minutes": minutes(sum(c.seconds for c in week if c.utc.date() == d)),
                }
                for d in days
            ],
        }

    def weeks(self, count: int) -> list[date]:
        return [self.week - timedelta(weeks=k) for k in range(count - 1, -1, -1)]

    def volume_trend(self) -> list[dict[str, Any]]:
        out = []
        for week in self.weeks(8):
            per_user = Counter((c.customer, c.user) for c in self.of_week(week))
            active = Counter(customer for customer, _ in per_user)
            out.append(
                {
                    "weekStart": week.isoformat(),
                    "users1To10": sum(1 for n in per_user.values() if n <= 10),
                    "users11To50": sum(1 for n in per_user.values() if 11 <= n <= 50),
                    "users51Plus": sum(1 for n in per_user.values() if n >= 51),
                    "licensedUsersWithoutCalls": sum(
                        max(n - active[customer], 0) for customer, n in self.licensed.items()
                    ),
                }
            )
        return out

    @staticmethod
    def _quality(calls: list[Call]) -> dict[str, Any]:
        poor = sum(1 for c in calls if c.poor)
        return {
            "totalCalls": len(calls),
            "poorCalls": poor,
            "poorPercent": ratio(poor, len(calls), 100),
        }

    def quality(self) -> dict[str, Any]:
        return self._quality(self.of_week(self.week))

    def quality_trend(self) -> list[dict[str, Any]]:
        return [
            {"weekStart": w.isoformat(), **self._quality(self.of_week(w))} for w in self.weeks(8)
        ]

    def quality_by_endpoint(self) -> list[dict[str, Any]]:
        week = self.of_week(self.week)
        return [
            {"endpointType": e, **self._quality([c for c in week if c.endpoint == e])}
            for e in ENDPOINTS
        ]

    def feature_usage(self) -> list[dict[str, Any]]:
        week = self.of_week(self.week)
        return [{"feature": f, "calls": sum(1 for c in week if f in c.features)} for f in FEATURES]

    @staticmethod
    def _queue(calls: list[Call]) -> dict[str, Any]:
        queued = [c for c in calls if c.queue]
        answered = [c.wait or 0 for c in queued if c.answered]
        abandoned = [c.wait or 0 for c in queued if c.abandoned]
        return {
            "queueCalls": len(queued),
            "answeredCalls": len(answered),
            "abandonedCalls": len(abandoned),
            "averageTimeToAnswerSeconds": ratio(sum(answered), len(answered)),
            "averageWaitBeforeAbandonSeconds": ratio(sum(abandoned), len(abandoned)),
            "abandonedRatePercent": ratio(len(abandoned), len(queued), 100),
        }

    def queue_kpis(self) -> dict[str, Any]:
        return self._queue(self.of_week(self.week))

    def _customer(self, pk: int) -> dict[str, Any]:
        return {"id": to_global_id("Customer", pk), "name": self.names[pk]}

    def customers_usage(self) -> list[dict[str, Any]]:
        previous = self.week - timedelta(weeks=1)
        rows = []
        for pk in sorted(self.visible):
            now, before = self.of_week(self.week, pk), self.of_week(previous, pk)
            if pk not in self.licensed and not now:
                continue
            now_minutes = minutes(sum(c.seconds for c in now))
            before_minutes = minutes(sum(c.seconds for c in before))
            active = len({c.user for c in now})
            rows.append(
                {
                    "customer": self._customer(pk),
                    "calls": len(now),
                    "minutes": now_minutes,
                    "activeUsers": active,
                    "licensedUsers": self.licensed.get(pk, 0),
                    "callsChange": len(now) - len(before),
                    "minutesChange": float(
                        Decimal(str(now_minutes)) - Decimal(str(before_minutes))
                    ),
                    "activeUsersChange": active - len({c.user for c in before}),
                }
            )
        return sorted(rows, key=lambda r: (r["calls"], self._pk(r)), reverse=True)

    @staticmethod
    def _pk(row: dict[str, Any]) -> int:
        from graph.ids import from_global_id

        return from_global_id(row["customer"]["id"])[1]

    def customers_quality(self) -> list[dict[str, Any]]:
        rows = []
        for pk in sorted(self.visible):
            week = self.of_week(self.week, pk)
            if week:
                rows.append({"customer": self._customer(pk), **self._quality(week)})

        def key(r: dict[str, Any]) -> tuple[int, int]:
            return (r["poorCalls"] * 1_000_000 // r["totalCalls"], self._pk(r))

        return sorted(rows, key=key, reverse=True)

    def queue_customers(self) -> list[dict[str, Any]]:
        rows = []
        for pk in sorted(self.visible):
            figures = self._queue(self.of_week(self.week, pk))
            if figures["queueCalls"]:
                rows.append({"customer": self._customer(pk), **figures})

        def key(r: dict[str, Any]) -> tuple[int, int]:
            return (r["abandonedCalls"] * 1_000_000 // r["queueCalls"], self._pk(r))

        return sorted(rows, key=key, reverse=True)


# --- the API -------------------------------------------------------------------------------

FIGURES = """
query Figures($week: Date) {
  callingAnalytics(week: $week) {
    weekStart weekEnd complete
    usage { calls minutes activeUsers daily { date calls minutes } }
    usersByVolumeTrend {
      weekStart users1To10 users11To50 users51Plus licensedUsersWithoutCalls
    }
    quality { totalCalls poorCalls poorPercent }
    qualityTrend { weekStart totalCalls poorCalls poorPercent }
    qualityByEndpoint { endpointType totalCalls poorCalls poorPercent }
    featureUsage { feature calls }
    callQueue {
      kpis {
        queueCalls answeredCalls abandonedCalls
        averageTimeToAnswerSeconds averageWaitBeforeAbandonSeconds abandonedRatePercent
      }
    }
  }
}
"""
USAGE_PAGE = """
query UsagePage($week: Date, $first: Int!, $after: String) {
  callingAnalytics(week: $week) {
    customersUsage(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        customer { id name }
        calls minutes activeUsers licensedUsers callsChange minutesChange activeUsersChange
      }
    }
  }
}
"""
QUALITY_PAGE = """
query QualityPage($week: Date, $first: Int!, $after: String) {
  callingAnalytics(week: $week) {
    customersQuality(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { customer { id name } totalCalls poorCalls poorPercent }
    }
  }
}
"""
QUEUE_PAGE = """
query QueuePage($week: Date, $first: Int!, $after: String) {
  callingAnalytics(week: $week) {
    callQueue {
      customers(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes {
          customer { id name }
          queueCalls answeredCalls abandonedCalls
          averageTimeToAnswerSeconds averageWaitBeforeAbandonSeconds abandonedRatePercent
        }
      }
    }
  }
}
"""


async def all_rows(
    api: Api, as_: str, query: str, path: list[str], week: str | None
) -> tuple[list[dict[str, Any]], int]:
    """Every row of a customer table, two at a time (so cursors are exercised)."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        body = await post_graphql(api, query, {"week": week, "first": 2, "after": after}, as_=as_)
        connection = data_of(body)["callingAnalytics"]
        for key in path:
            connection = connection[key]
        rows += connection["nodes"]
        if not connection["pageInfo"]["hasNextPage"]:
            return rows, connection["totalCount"]
        after = connection["pageInfo"]["endCursor"]


@dataclass
class World:
    calls: list[Call]
    names: dict[int, str]
    licensed: dict[int, int]
    acme: set[int]
    globex: set[int]
    assigned: set[int]


@pytest.fixture
async def world(api: Api, tmp_path: Path) -> World:
    f = Factory(api.engine)
    acme = await f.partner("Acme Partners", "acme.example")
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    await f.admin(acme, "readonly@acme.example", "READ_ONLY_ADMIN")
    partner_admin = await f.admin(acme, "partner@acme.example", "PARTNER_ADMIN")
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    names = {}
    for partner, prefix in ((acme, "Acme"), (globex, "Globex")):
        for i in range(5 if partner == acme else 3):
            name = f"{prefix} Customer {i}"
            names[await f.customer(partner, name)] = name
    a = [pk for pk, n in names.items() if n.startswith("Acme")]
    g = [pk for pk, n in names.items() if n.startswith("Globex")]
    # Calling licenses: in force (two subscriptions add up), expired (ignored), Meetings only.
    await f.subscription(a[0], lines=[("CALLING", 30, 20, 10), ("MEETINGS", 5, 5, 5)])
    await f.subscription(a[0], lines=[("CALLING", 5, 4, 1)])
    await f.subscription(a[1], lines=[("CALLING", 10, 9, 3)])
    await f.subscription(a[2], state="EXPIRED", lines=[("CALLING", 50, 50, 0)])
    await f.subscription(a[3], lines=[("MEETINGS", 10, 10, 10)])
    await f.subscription(a[4], lines=[("CALLING", 40, 35, 0)])  # licensed, never calls
    await f.subscription(g[0], lines=[("CALLING", 12, 12, 12)])
    licensed = {a[0]: 24, a[1]: 9, a[4]: 35, g[0]: 12}
    for pk in (a[0], a[2]):
        await f.assign(pk, partner_admin)
    calling = {pk: to_global_id("Customer", pk) for pk in [*a[:4], *g]}
    external = {pk: f"EXT-{i + 1:05d}" for i, pk in enumerate(sorted(names))}
    calls = generate_calls(calling, external)
    path = tmp_path / "calls.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(c.csv_row() for c in calls)
    with path.open(encoding="utf-8", newline="") as source:
        report = await ingest_stream(api.engine, source, now=NOW, batch_size=97)
    assert (report.read, report.inserted, report.rejected) == (len(calls), len(calls), 0)
    return World(calls, names, licensed, set(a), set(g), {a[0], a[2]})


@pytest.mark.parametrize(
    ("as_", "week", "expected_week"),
    [
        ("full@acme.example", None, LAST_WEEK),
        ("full@acme.example", "2026-11-10", date(2026, 11, 8)),
        ("partner@acme.example", None, LAST_WEEK),
        ("partner@acme.example", "2026-11-08", date(2026, 11, 8)),
        ("readonly@acme.example", "2026-11-21", LAST_WEEK),
        ("full@globex.example", None, LAST_WEEK),
    ],
)
async def test_every_figure_equals_the_records_aggregated_in_python(
    api: Api, world: World, as_: str, week: str | None, expected_week: date
) -> None:
    # given
    visible = {
        "full@acme.example": world.acme,
        "readonly@acme.example": world.acme,
        "partner@acme.example": world.assigned,
        "full@globex.example": world.globex,
    }[as_]
    expected = Expected(
        world.calls,
        week=expected_week,
        visible=visible,
        licensed=world.licensed,
        names=world.names,
    )

    # when
    figures = data_of(await post_graphql(api, FIGURES, {"week": week}, as_=as_))
    usage_rows, usage_total = await all_rows(api, as_, USAGE_PAGE, ["customersUsage"], week)
    quality_rows, quality_total = await all_rows(api, as_, QUALITY_PAGE, ["customersQuality"], week)
    queue_rows, queue_total = await all_rows(api, as_, QUEUE_PAGE, ["callQueue", "customers"], week)

    # then
    analytics = figures["callingAnalytics"]
    assert analytics["weekStart"] == expected_week.isoformat()
    assert analytics["weekEnd"] == (expected_week + timedelta(days=7)).isoformat()
    assert analytics["complete"] is True
    assert analytics["usage"] == expected.usage()
    assert analytics["usersByVolumeTrend"] == expected.volume_trend()
    assert analytics["quality"] == expected.quality()
    assert analytics["qualityTrend"] == expected.quality_trend()
    assert analytics["qualityByEndpoint"] == expected.quality_by_endpoint()
    assert analytics["featureUsage"] == expected.feature_usage()
    assert analytics["callQueue"]["kpis"] == expected.queue_kpis()
    assert usage_rows == expected.customers_usage()
    assert usage_total == len(usage_rows)
    assert quality_rows == expected.customers_quality()
    assert quality_total == len(quality_rows)
    assert queue_rows == expected.queue_customers()
    assert queue_total == len(queue_rows)
    assert analytics["usage"]["calls"] > 0  # the data set is not vacuous for this caller


async def test_the_data_set_covers_what_the_reference_test_claims(api: Api, world: World) -> None:
    # given / when
    last = [c for c in world.calls if c.week == LAST_WEEK]

    # then: every bucket, exact thresholds on both sides, queues, offsets, an open week
    per_user = Counter((c.customer, c.user) for c in last)
    assert {n > 50 for n in per_user.values()} == {True, False}
    assert any(10 < n <= 50 for n in per_user.values())
    assert any(c.loss == 5.0 and not c.poor for c in last)
    assert any(c.latency == 400.0 and not c.poor for c in last)
    assert any(c.jitter == 150.0 and not c.poor for c in last)
    assert any(c.loss == 5.000001 and c.poor for c in world.calls)
    assert any(c.answered for c in last) and any(c.abandoned for c in last)
    assert any(c.queue and not c.answered and not c.abandoned for c in world.calls)
    assert any(c.started.utcoffset() != timedelta(0) for c in world.calls)
    assert any(c.week == date(2026, 11, 22) for c in world.calls)  # the open week
    assert world.licensed and set(world.assigned) < set(world.acme)


async def test_the_open_week_can_be_asked_for_and_says_it_is_incomplete(
    api: Api, world: World
) -> None:
    # when
    body = await post_graphql(
        api,
        "query($week: Date) {"
        " callingAnalytics(week: $week) { weekStart complete usage { calls } } }",
        {"week": "2026-11-25"},
        as_="full@acme.example",
    )

    # then
    analytics = data_of(body)["callingAnalytics"]
    open_week = [
        c for c in world.calls if c.week == date(2026, 11, 22) and c.customer in world.acme
    ]
    assert analytics == {
        "weekStart": "2026-11-22",
        "complete": False,
        "usage": {"calls": len(open_week)},
    }


async def test_a_week_after_now_and_a_bad_trend_length_are_refused(api: Api, world: World) -> None:
    # when
    future = await post_graphql(
        api,
        "query($week: Date) { callingAnalytics(week: $week) { weekStart } }",
        {"week": "2026-11-29"},
        as_="full@acme.example",
    )
    trend = await post_graphql(
        api,
        "{ callingAnalytics { qualityTrend(weeks: 53) { weekStart } } }",
        as_="full@acme.example",
    )

    # then
    assert error_codes(future) == ["BAD_USER_INPUT"]
    assert error_codes(trend) == ["BAD_USER_INPUT"]


async def test_other_orderings_page_the_same_rows(api: Api, world: World) -> None:
    # given
    query = """
    query($first: Int!, $after: String, $order: CallingCustomerUsageOrder!) {
      callingAnalytics {
        customersUsage(first: $first, after: $after, orderBy: $order) {
          pageInfo { hasNextPage endCursor }
          nodes { customer { name } calls callsChange }
        }
      }
    }
    """

    async def names(order: str) -> list[tuple[str, int, int]]:
        out, after = [], None
        while True:
            body = await post_graphql(
                api, query, {"first": 1, "after": after, "order": order}, as_="full@acme.example"
            )
            page = data_of(body)["callingAnalytics"]["customersUsage"]
            out += [(n["customer"]["name"], n["calls"], n["callsChange"]) for n in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                return out
            after = page["pageInfo"]["endCursor"]

    # when
    by_name = await names("NAME_ASC")
    by_name_desc = await names("NAME_DESC")
    by_change = await names("CALLS_CHANGE_ASC")

    # then
    assert [n for n, _, _ in by_name] == sorted(n for n, _, _ in by_name)
    assert by_name_desc == by_name[::-1]
    assert sorted(by_change) == sorted(by_name)
    assert [c for _, _, c in by_change] == sorted(c for _, _, c in by_change)


async def test_a_cursor_of_another_week_is_refused(api: Api, world: World) -> None:
    # given
    first = await post_graphql(api, USAGE_PAGE, {"week": None, "first": 1}, as_="full@acme.example")
    cursor = data_of(first)["callingAnalytics"]["customersUsage"]["pageInfo"]["endCursor"]

    # when
    body = await post_graphql(
        api,
        USAGE_PAGE,
        {"week": "2026-11-08", "first": 1, "after": cursor},
        as_="full@acme.example",
    )

    # then
    assert error_codes(body) == ["INVALID_CURSOR"]


async def test_a_role_without_analytics_is_refused(api: Api) -> None:
    # given: a custom role that may read customers only
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "sales@acme.example", "SALES_ADMIN")
    await f.admin(acme, "nobody@acme.example", "NO_SUCH_ROLE")

    # when
    sales = await post_graphql(
        api, "{ callingAnalytics { usage { calls } } }", as_="sales@acme.example"
    )
    nobody = await post_graphql(
        api, "{ callingAnalytics { usage { calls } } }", as_="nobody@acme.example"
    )

    # then: sales admins see their (no) customers; a role without the rule is refused
    assert data_of(sales)["callingAnalytics"]["usage"]["calls"] == 0
    assert_forbidden(nobody)


async def test_nothing_ingested_gives_zeros_not_errors(api: Api) -> None:
    # given
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")

    # when
    body = await post_graphql(api, FIGURES, {"week": None}, as_="full@acme.example")

    # then
    analytics = data_of(body)["callingAnalytics"]
    assert analytics["usage"]["calls"] == 0 and len(analytics["usage"]["daily"]) == 7
    assert analytics["quality"] == {"totalCalls": 0, "poorCalls": 0, "poorPercent": 0.0}
    assert analytics["callQueue"]["kpis"]["abandonedRatePercent"] == 0.0
    assert [w["weekStart"] for w in analytics["qualityTrend"]][-1] == LAST_WEEK.isoformat()
    assert len(analytics["qualityTrend"]) == 8


def test_rounding_is_half_up_on_exact_values() -> None:
    # given / when / then
    from db.queries import calls as q

    assert q.minutes(3) == 0.1  # 0.05 min
    assert q.minutes(9) == 0.2  # 0.15 min: half up, not to even
    assert q.percent(1, 8) == 12.5 and q.percent(1, 16) == 6.3  # 6.25 %
    assert q.percent(0, 0) == 0.0 and q.ratio_tenths(5, 0) == 0.0
    assert minutes(9) == q.minutes(9) and ratio(1, 16, 100) == q.percent(1, 16)


def test_the_week_of_a_date_starts_on_its_sunday() -> None:
    from db.queries import calls as q

    assert q.week_start(date(2026, 11, 22)) == datetime(2026, 11, 22, tzinfo=UTC)
    assert q.week_start(date(2026, 11, 28)) == datetime(2026, 11, 22, tzinfo=UTC)
    assert q.last_closed_week(NOW) == datetime(2026, 11, 15, tzinfo=UTC)
    assert q.last_closed_week(datetime(2026, 11, 22, tzinfo=UTC)) == datetime(
        2026, 11, 15, tzinfo=UTC
    )


async def test_figures_come_from_aggregates_in_a_bounded_number_of_statements(
    api: Api, world: World
) -> None:
    # given: the app has started (its first request loads policies)
    await post_graphql(api, "{ viewer { id } }", as_="full@acme.example")

    # when
    with api.counter.counting() as statements:
        data_of(await post_graphql(api, FIGURES, {"week": None}, as_="full@acme.example"))

    # then: no raw call record is read; one or two statements per figure
    assert not any("call_record" in s for s in statements)
    assert len(statements) <= 12, statements


async def test_the_demo_call_records_show_quality_problems_and_abandoned_queues(api: Api) -> None:
    # given
    from db.seed import seed_demo
    from db.seed.calls import seed_demo_calls
    from db.status import StatusRules

    await seed_demo(api.engine, now=NOW, rules=StatusRules(7, 30), progress=False)

    # when: the demo seed loaded its call records already; loading them again adds none
    async with api.engine.connect() as conn:
        loaded = (await conn.execute(text("SELECT count(*) FROM call_record"))).scalar_one()
    again = await seed_demo_calls(api.engine, now=NOW)
    body = await post_graphql(
        api,
        """{ callingAnalytics {
              usage { calls activeUsers }
              usersByVolumeTrend { users1To10 users11To50 users51Plus licensedUsersWithoutCalls }
              customersQuality(first: 1) { nodes { poorPercent } }
              callQueue { customers(first: 1) { nodes { abandonedRatePercent } } }
              featureUsage { feature calls }
            } }""",
        as_="full@acme.example",
    )

    # then
    assert 20_000 <= loaded <= 150_000 and again == 0
    analytics = data_of(body)["callingAnalytics"]
    assert analytics["usage"]["calls"] > 1000
    assert all(
        w["users1To10"] and w["users11To50"] and w["users51Plus"]
        for w in analytics["usersByVolumeTrend"]
    )
    assert analytics["usersByVolumeTrend"][-1]["licensedUsersWithoutCalls"] > 0
    assert analytics["customersQuality"]["nodes"][0]["poorPercent"] > 20
    assert analytics["callQueue"]["customers"]["nodes"][0]["abandonedRatePercent"] > 25
    assert all(f["calls"] > 0 for f in analytics["featureUsage"])


async def test_a_calling_subscription_starting_after_now_is_not_licensed_yet(api: Api) -> None:
    # given: one customer licensed today, one whose only CALLING subscription starts tomorrow
    # ("in force" is ACTIVE and start <= now < end), and one whose licence ended at now
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, "full@acme.example", "FULL_ADMIN")
    today = await f.customer(acme, "Licensed today")
    tomorrow = await f.customer(acme, "Licensed tomorrow")
    ended = await f.customer(acme, "Licence ended at now")
    await f.subscription(today, lines=[("CALLING", 10, 7, 2)])
    await f.subscription(
        tomorrow,
        start=NOW + timedelta(days=1),
        end=NOW + timedelta(days=60),
        lines=[("CALLING", 50, 40, 0)],
    )
    await f.subscription(
        ended,
        start=NOW - timedelta(days=60),
        end=NOW,
        lines=[("CALLING", 30, 30, 0)],
    )

    # when
    body = await post_graphql(
        api,
        """{ callingAnalytics {
              usersByVolumeTrend(weeks: 1) { licensedUsersWithoutCalls }
              customersUsage(first: 10) { totalCount nodes { customer { name } licensedUsers } }
            } }""",
        as_="full@acme.example",
    )

    # then: only the licence in force at now counts
    analytics = data_of(body)["callingAnalytics"]
    assert analytics["customersUsage"] == {
        "totalCount": 1,
        "nodes": [{"customer": {"name": "Licensed today"}, "licensedUsers": 7}],
    }
    assert analytics["usersByVolumeTrend"] == [{"licensedUsersWithoutCalls": 7}]
