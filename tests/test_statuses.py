"""Customer statuses follow DESIGN.md section 2 exactly, at any instant.

``reference_statuses`` below is written straight from the DESIGN.md table and shares no code with
``db.status``; the tests hold the stored status spans (and the SQL that filters and counts them)
to it: in memory for many random customers and instants, then end to end through the API, and
finally with the clock moved on over the very same stored rows.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from db.models import CustomerStatusSpan
from db.status import StatusRules, SubscriptionFacts, compute_spans, statuses_at
from tests.conftest import NOW, Api, instance_beside
from tests.helpers import Factory, data_of, post_graphql
from tests.test_customers import insert_customer, refresh

ALL_STATUSES = [
    "TRIAL",
    "ACTIVE",
    "EXPIRING_SOON",
    "LICENSE_OVERAGE",
    "NO_RECENT_ACTIVITY",
    "READY_FOR_ORDER_SETUP",
    "SUSPENDED",
    "EXPIRED",
]
STATES = ["PROVISIONING", "ACTIVE", "SUSPENDED", "EXPIRED", "CANCELLED"]
DAY = timedelta(days=1)
MICRO = timedelta(microseconds=1)


# --- the reference: DESIGN.md section 2, "Customer status", read literally -----------------------


@dataclass(frozen=True)
class Sub:
    key: int
    kind: str  # PAID | TRIAL
    state: str  # PROVISIONING | ACTIVE | SUSPENDED | EXPIRED | CANCELLED
    start: datetime
    end: datetime
    auto_renew: bool


@dataclass(frozen=True)
class Line:
    sub: int  # Sub.key
    product: str
    purchased: int
    assigned: int


def reference_statuses(
    subscriptions: Sequence[Sub],
    lines: Sequence[Line],
    last_sign_in: datetime | None,
    now: datetime,
    soon_days: int = 7,
    inactive_days: int = 30,
) -> set[str]:
    def in_force(s: Sub) -> bool:
        # "in force when its state is ACTIVE and start <= now < end"
        return s.state == "ACTIVE" and s.start <= now < s.end

    def within(date: datetime, days: int) -> bool:
        # '"Within N days" means now < date <= now + N days'
        return now < date <= now + timedelta(days=days)

    statuses: set[str] = set()
    if any(s.kind == "TRIAL" and in_force(s) for s in subscriptions):
        statuses.add("TRIAL")
    if any(s.kind == "PAID" and in_force(s) for s in subscriptions):
        statuses.add("ACTIVE")
    if any(
        in_force(s) and (s.kind == "TRIAL" or not s.auto_renew) and within(s.end, soon_days)
        for s in subscriptions
    ):
        statuses.add("EXPIRING_SOON")
    if any(
        in_force(s) and any(ln.sub == s.key and ln.assigned > ln.purchased for ln in lines)
        for s in subscriptions
    ):
        statuses.add("LICENSE_OVERAGE")
    if last_sign_in is None or now - last_sign_in > timedelta(days=inactive_days):
        statuses.add("NO_RECENT_ACTIVITY")
    if any(s.state == "PROVISIONING" for s in subscriptions):
        statuses.add("READY_FOR_ORDER_SETUP")
    if any(s.state == "SUSPENDED" for s in subscriptions):
        statuses.add("SUSPENDED")
    if subscriptions and all(
        s.state in ("EXPIRED", "CANCELLED") or s.end <= now for s in subscriptions
    ):
        statuses.add("EXPIRED")
    return statuses


# --- (a) the span computation against the reference, in memory -----------------------------------


def _facts(subs: Sequence[Sub], lines: Sequence[Line]) -> list[SubscriptionFacts]:
    return [
        SubscriptionFacts(
            kind=s.kind,
            state=s.state,
            start=s.start,
            end=s.end,
            auto_renew=s.auto_renew,
            over_licensed=any(ln.sub == s.key and ln.assigned > ln.purchased for ln in lines),
            products=tuple(sorted({ln.product for ln in lines if ln.sub == s.key})),
        )
        for s in subs
    ]


def _instants(soon_days: int, inactive_days: int) -> list[timedelta]:
    """Offsets from an anchor that sit on, just before and just after every rule's edge."""
    edges = [
        timedelta(0),
        timedelta(days=soon_days),
        -timedelta(days=soon_days),
        timedelta(days=inactive_days),
        -timedelta(days=inactive_days),
        timedelta(days=1),
        -timedelta(days=1),
    ]
    return [e + d for e in edges for d in (-MICRO, timedelta(0), MICRO)]


def _random_customer(
    rng: random.Random, anchors: Sequence[datetime], soon_days: int, inactive_days: int
) -> tuple[list[Sub], list[Line], datetime | None]:
    def instant() -> datetime:
        anchor = rng.choice(anchors)
        if rng.random() < 0.6:
            return anchor + rng.choice(_instants(soon_days, inactive_days))
        return anchor + timedelta(seconds=rng.randint(-120 * 86400, 400 * 86400))

    subs: list[Sub] = []
    lines: list[Line] = []
    for key in range(rng.choice([0, 0, 1, 1, 2, 3, 4])):
        start = instant()
        roll = rng.random()
        if roll < 0.7:
            end = start + timedelta(days=rng.choice([1, 7, 8, 30, 90, 365]))
        elif roll < 0.95:
            end = instant()  # may even precede the start: degenerate data must not crash
        else:
            end = start
        subs.append(
            Sub(
                key=key,
                kind=rng.choice(["PAID", "TRIAL"]),
                state=rng.choice([*STATES, "ACTIVE", "ACTIVE"]),
                start=start,
                end=end,
                auto_renew=rng.random() < 0.5,
            )
        )
        for product in rng.sample(["MEETINGS", "CALLING", "MESSAGING"], rng.randint(0, 2)):
            purchased = rng.randint(0, 20)
            assigned = purchased + rng.choice([-3, -1, 0, 0, 1, 4])
            lines.append(Line(key, product, purchased, max(assigned, 0)))
    roll = rng.random()
    if roll < 0.2:
        last_sign_in = None
    elif roll < 0.6:
        # exactly N days (and a microsecond either side) before one of the instants
        last_sign_in = (
            rng.choice(anchors)
            - timedelta(days=inactive_days)
            + rng.choice([-MICRO, timedelta(0), MICRO])
        )
    else:
        last_sign_in = instant()
    return subs, lines, last_sign_in


def test_spans_agree_with_the_reference_for_random_customers_and_instants() -> None:
    for soon_days, inactive_days, customers in [(7, 30, 400), (14, 10, 150), (1, 1, 150)]:
        # given
        rng = random.Random(20261126 + soon_days)
        anchors = [NOW + timedelta(days=d) for d in (-200, -31, -7, 0, 3, 7, 30, 90)]
        rules = StatusRules(expiring_soon_days=soon_days, inactivity_days=inactive_days)
        checked = 0
        for _ in range(customers):
            subs, lines, last_sign_in = _random_customer(rng, anchors, soon_days, inactive_days)
            # when
            spans = compute_spans(_facts(subs, lines), last_sign_in, rules)
            # then: at every instant that matters to this customer, and at random ones
            instants = {a + off for a in anchors for off in _instants(soon_days, inactive_days)}
            for s in subs:
                instants.update(s.start + d for d in (-MICRO, timedelta(0), MICRO))
                instants.update(s.end + d for d in (-MICRO, timedelta(0), MICRO))
                soon = s.end - timedelta(days=soon_days)
                instants.update(soon + d for d in (-MICRO, timedelta(0), MICRO))
            if last_sign_in is not None:
                idle = last_sign_in + timedelta(days=inactive_days)
                instants.update(idle + d for d in (-MICRO, timedelta(0), MICRO))
            instants.update(NOW + timedelta(seconds=rng.randint(-(10**7), 10**7)) for _ in range(5))
            for now in sorted(instants):
                expected = reference_statuses(
                    subs, lines, last_sign_in, now, soon_days, inactive_days
                )
                assert statuses_at(spans, now) == expected, (subs, lines, last_sign_in, now)
                checked += 1
        assert checked > 20 * customers


def test_reference_edges_are_the_ones_design_md_states() -> None:
    # The reference itself, on the edges the table defines (so a wrong reference cannot hide a
    # wrong implementation).
    paid = Sub(0, "PAID", "ACTIVE", NOW - 10 * DAY, NOW + 7 * DAY, auto_renew=False)
    assert reference_statuses([paid], [], NOW, NOW) == {"ACTIVE", "EXPIRING_SOON"}
    assert reference_statuses([paid], [], NOW, NOW - MICRO) == {"ACTIVE"}
    ends_now = Sub(0, "PAID", "ACTIVE", NOW - 10 * DAY, NOW, auto_renew=True)
    assert reference_statuses([ends_now], [], NOW, NOW) == {"EXPIRED"}
    starts_now = Sub(0, "TRIAL", "ACTIVE", NOW, NOW + 30 * DAY, auto_renew=False)
    assert reference_statuses([starts_now], [], NOW, NOW) == {"TRIAL"}
    assert reference_statuses([starts_now], [], NOW, NOW - MICRO) == set()
    assert reference_statuses([], [], NOW - 30 * DAY, NOW) == set()
    assert reference_statuses([], [], NOW - 30 * DAY - MICRO, NOW) == {"NO_RECENT_ACTIVITY"}
    assert reference_statuses([], [], None, NOW) == {"NO_RECENT_ACTIVITY"}


# --- (b) end to end: engineered customers through the API ----------------------------------------


@dataclass
class Planned:
    name: str
    subs: list[dict[str, Any]] = field(default_factory=list)
    last_sign_in: datetime | None = NOW - DAY


OK_LINES = [("MEETINGS", 10, 5, 3)]
OVER_LINES = [("MEETINGS", 10, 12, 9), ("CALLING", 5, 1, 1)]


def sub(**kw: Any) -> dict[str, Any]:
    """A planned subscription: paid, active, in force for a year, auto-renewing, no overage."""
    base = {
        "kind": "PAID",
        "state": "ACTIVE",
        "start": NOW - 100 * DAY,
        "end": NOW + 265 * DAY,
        "auto_renew": True,
        "lines": OK_LINES,
    }
    return {**base, **kw}


def _plan() -> list[Planned]:
    """One customer per status (and a few holding several), each on a rule's edge."""
    over = OVER_LINES
    return [
        Planned("Trial In Force", [sub(kind="TRIAL", end=NOW + 30 * DAY, auto_renew=False)]),
        Planned("Trial Ending In 3 Days", [sub(kind="TRIAL", end=NOW + 3 * DAY)]),
        Planned("Trial Starting Now", [sub(kind="TRIAL", start=NOW, end=NOW + 20 * DAY)]),
        Planned("Paid Renewing Soon", [sub(end=NOW + 3 * DAY, auto_renew=True)]),
        Planned("Paid Ending In Exactly 7 Days", [sub(end=NOW + 7 * DAY, auto_renew=False)]),
        Planned(
            "Paid Ending In 7 Days And A Bit", [sub(end=NOW + 7 * DAY + MICRO, auto_renew=False)]
        ),
        Planned("Paid Ending Now", [sub(end=NOW, auto_renew=False)]),
        Planned("Paid Starting Tomorrow", [sub(start=NOW + DAY)]),
        Planned("Overage", [sub(lines=over)]),
        Planned("Overage On An Expired Sub", [sub(state="EXPIRED", lines=over)]),
        Planned("Silent For 31 Days", [sub()], last_sign_in=NOW - 31 * DAY),
        Planned("Silent For Exactly 30 Days", [sub()], last_sign_in=NOW - 30 * DAY),
        Planned("Never Signed In", [], last_sign_in=None),
        Planned("No Subscriptions", []),
        Planned("Provisioning", [sub(state="PROVISIONING", start=NOW + DAY)]),
        Planned("Suspended", [sub(state="SUSPENDED")]),
        Planned(
            "Everything Over",
            [sub(state="EXPIRED"), sub(state="CANCELLED"), sub(end=NOW - DAY)],
        ),
        Planned(
            "Expired And Provisioning",
            [sub(state="EXPIRED"), sub(state="PROVISIONING", end=NOW - DAY)],
        ),
        Planned(
            "Busy Mix",
            [
                sub(kind="TRIAL", end=NOW + 5 * DAY, lines=over),
                sub(state="SUSPENDED"),
                sub(state="PROVISIONING", start=NOW + 10 * DAY),
                sub(end=NOW + 100 * DAY, auto_renew=False),
            ],
            last_sign_in=NOW - 45 * DAY,
        ),
    ]


async def _build(api: Api, plan: Sequence[Planned]) -> dict[str, tuple[list[Sub], list[Line]]]:
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    built: dict[str, tuple[list[Sub], list[Line]]] = {}
    ids = []
    async with api.engine.begin() as conn:
        for n, p in enumerate(plan):
            customer, _ = await insert_customer(
                conn,
                partner,
                p.name,
                external_id=f"ST-{n:03d}",
                last_sign_in=p.last_sign_in,
                subs=p.subs,
            )
            ids.append(customer)
            subs = [
                Sub(k, s["kind"], s["state"], s["start"], s["end"], s["auto_renew"])
                for k, s in enumerate(p.subs)
            ]
            lines = [
                Line(k, product, purchased, assigned)
                for k, s in enumerate(p.subs)
                for product, purchased, assigned, _used in s["lines"]
            ]
            built[p.name] = (subs, lines)
        await refresh(conn, ids)
    return built


def _expected(
    plan: Sequence[Planned], built: dict[str, tuple[list[Sub], list[Line]]], now: datetime
) -> dict[str, set[str]]:
    return {p.name: reference_statuses(*built[p.name], p.last_sign_in, now) for p in plan}


STATUSES_QUERY = """
query Statuses($filter: CustomerFilter) {
  customers(first: 100, filter: $filter) { totalCount nodes { name statuses } }
}
"""


BY_STATUS_QUERY = """
fragment Holders on CustomerConnection { totalCount nodes { name } }
query ByStatus {
  all: customers(first: 100) { nodes { name statuses } }
  TRIAL: customers(first: 100, filter: {statuses: [TRIAL]}) { ...Holders }
  ACTIVE: customers(first: 100, filter: {statuses: [ACTIVE]}) { ...Holders }
  EXPIRING_SOON: customers(first: 100, filter: {statuses: [EXPIRING_SOON]}) { ...Holders }
  LICENSE_OVERAGE: customers(first: 100, filter: {statuses: [LICENSE_OVERAGE]}) { ...Holders }
  NO_RECENT_ACTIVITY: customers(first: 100, filter: {statuses: [NO_RECENT_ACTIVITY]}) {
    ...Holders
  }
  READY_FOR_ORDER_SETUP: customers(first: 100, filter: {statuses: [READY_FOR_ORDER_SETUP]}) {
    ...Holders
  }
  SUSPENDED: customers(first: 100, filter: {statuses: [SUSPENDED]}) { ...Holders }
  EXPIRED: customers(first: 100, filter: {statuses: [EXPIRED]}) { ...Holders }
}
"""


async def _assert_api_matches(api: Api, expected: dict[str, set[str]]) -> dict[str, set[str]]:
    data = data_of(await post_graphql(api, BY_STATUS_QUERY, as_="full@acme.example"))
    got = {n["name"]: n["statuses"] for n in data["all"]["nodes"]}
    assert {name: set(s) for name, s in got.items()} == expected
    for statuses in got.values():  # reported in enum order, once each
        assert statuses == [s for s in ALL_STATUSES if s in statuses]
    for status in ALL_STATUSES:
        holders = {name for name, statuses in expected.items() if status in statuses}
        assert {n["name"] for n in data[status]["nodes"]} == holders, status
        assert data[status]["totalCount"] == len(holders), status
    return {name: set(s) for name, s in got.items()}


async def test_every_status_through_the_api_agrees_with_the_reference(api: Api) -> None:
    # given
    plan = _plan()
    built = await _build(api, plan)
    expected = _expected(plan, built, NOW)
    # the plan really does cover every status, alone and together
    assert set().union(*expected.values()) == set(ALL_STATUSES)
    assert expected["Paid Ending In Exactly 7 Days"] == {"ACTIVE", "EXPIRING_SOON"}
    assert expected["Busy Mix"] == {
        "TRIAL",
        "ACTIVE",
        "EXPIRING_SOON",
        "LICENSE_OVERAGE",
        "NO_RECENT_ACTIVITY",
        "READY_FOR_ORDER_SETUP",
        "SUSPENDED",
    }
    # when / then
    await _assert_api_matches(api, expected)


async def test_status_filter_matches_any_listed_status(api: Api) -> None:
    # given
    plan = _plan()
    built = await _build(api, plan)
    expected = _expected(plan, built, NOW)
    rng = random.Random(7)
    for _ in range(6):
        wanted = rng.sample(ALL_STATUSES, rng.randint(2, 4))
        # when
        body = await post_graphql(
            api, STATUSES_QUERY, {"filter": {"statuses": wanted}}, as_="full@acme.example"
        )
        # then
        page = data_of(body)["customers"]
        holders = {n for n, s in expected.items() if s & set(wanted)}
        assert {n["name"] for n in page["nodes"]} == holders, wanted
        assert page["totalCount"] == len(holders)


# --- (c) time passes over the same stored rows ---------------------------------------------------


@asynccontextmanager
async def api_at(api: Api, now: datetime) -> AsyncIterator[Api]:
    """A second app over the same database whose clock is pinned at ``now``."""
    async with instance_beside(api, now=now) as other:
        yield other


async def _stored_spans(api: Api) -> list[tuple[Any, ...]]:
    span = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]
    async with api.engine.connect() as conn:
        rows = await conn.execute(
            select(span.id, span.customer_id, span.status, span.valid_from, span.valid_to).order_by(
                span.id
            )
        )
        return [tuple(r) for r in rows]


def _moments() -> Iterable[datetime]:
    yield NOW + DAY  # "Paid Starting Tomorrow" starts
    yield NOW + 23 * DAY - MICRO
    yield NOW + 23 * DAY  # "Trial In Force" enters EXPIRING_SOON (7 days before its end)
    yield NOW + 30 * DAY - MICRO
    yield NOW + 30 * DAY  # ... and is over
    yield NOW + 31 * DAY  # "Silent For Exactly 30 Days" falls silent
    yield NOW + 400 * DAY  # everything has ended


async def test_statuses_follow_the_clock_without_rewriting_spans(api: Api) -> None:
    # given
    plan = _plan()
    built = await _build(api, plan)
    await _assert_api_matches(api, _expected(plan, built, NOW))
    spans_before = await _stored_spans(api)
    seen: dict[datetime, dict[str, set[str]]] = {}
    for moment in _moments():
        # when
        async with api_at(api, moment) as later:
            # then
            seen[moment] = await _assert_api_matches(later, _expected(plan, built, moment))
    assert await _stored_spans(api) == spans_before
    # the story of one trial (ends NOW + 30 days, last sign-in NOW - 1 day), told by the API
    trial = {moment: statuses["Trial In Force"] for moment, statuses in seen.items()}
    assert trial[NOW + 23 * DAY - MICRO] == {"TRIAL"}
    assert trial[NOW + 23 * DAY] == {"TRIAL", "EXPIRING_SOON"}
    assert trial[NOW + 30 * DAY - MICRO] == {"TRIAL", "EXPIRING_SOON", "NO_RECENT_ACTIVITY"}
    assert trial[NOW + 30 * DAY] == {"EXPIRED", "NO_RECENT_ACTIVITY"}
    assert seen[NOW + DAY]["Paid Starting Tomorrow"] == {"ACTIVE"}
    assert seen[NOW + 31 * DAY]["Silent For Exactly 30 Days"] == {"ACTIVE", "NO_RECENT_ACTIVITY"}
    assert seen[NOW + 400 * DAY]["Overage"] == {"EXPIRED", "NO_RECENT_ACTIVITY"}
