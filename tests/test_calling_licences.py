"""The calling licences kept by triggers (``calling_licence_span``, ``calling_licence_day``)
stay right through any writes to subscriptions and CALLING lines, made with plain SQL through the
engine (an operator's statements: no application code runs), and any clock move across days,
weeks and licence starts and ends (at any hour): after each step every calling figure, the
customers usage table (every row, paged) and the partner's licensed totals equal the
recomputation from what the test wrote, for full admins and for a partner admin limited to one
customer. Property-based (hypothesis), on both backends.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from db.calls_licensed import CALLING_LICENCE_DAY, CALLING_LICENCE_SPAN, day_number
from db.calls_licensed import licensed_totals as partner_licensed_totals
from db.engine import session_factory
from db.models import LicenseLine, Subscription
from tests.conftest import NOW, Api, api_over
from tests.databases import Database
from tests.test_calling_partner_weeks import (
    World,
    add_licence,
    calls,
    figures_equal_the_reference,
    ingest,
    world,
)

HOURS = st.integers(-15 * 24, 25 * 24)
CLOCK = st.integers(-10 * 24, 25 * 24)  # after every call the script may ingest
steps = st.lists(
    st.one_of(
        st.tuples(st.just("ingest"), st.lists(calls, min_size=1, max_size=6)),
        st.tuples(st.just("clock"), CLOCK),
        st.tuples(st.just("assign"), st.tuples(st.integers(0, 9), st.integers(0, 40))),
        st.tuples(
            st.just("state"),
            st.tuples(
                st.integers(0, 9), st.sampled_from(["ACTIVE", "CANCELLED", "SUSPENDED", "EXPIRED"])
            ),
        ),
        st.tuples(st.just("term"), st.tuples(st.integers(0, 9), HOURS, HOURS)),
        st.tuples(
            st.just("new"),
            st.tuples(st.integers(0, 4), HOURS, st.integers(1, 40 * 24), st.integers(0, 30)),
        ),
        st.tuples(st.just("drop"), st.integers(0, 9)),
    ),
    min_size=1,
    max_size=6,
)


async def apply(api: Api, w: World, action: str, arg: Any) -> None:
    """One write, as plain SQL through the engine, mirrored in ``w``."""
    if action == "ingest":
        batch = [w.call(spec) for spec in arg]
        await ingest(api, w, batch)
        w.calls += batch
        return
    if action == "clock":
        w.now = NOW + timedelta(hours=arg)
        return
    if action == "new":
        customer, start, hours, assigned = arg
        begins = NOW + timedelta(hours=start)
        await add_licence(
            api, w, w.customers[customer], begins, begins + timedelta(hours=hours), assigned
        )
        return
    index, *rest = arg if isinstance(arg, tuple) else (arg,)
    lic = w.licences[index % len(w.licences)]
    subs, lines = Subscription.__table__, LicenseLine.__table__  # type: ignore[attr-defined]
    sub, line = subs.c, lines.c
    async with api.engine.begin() as conn:
        if action == "assign" and lic.line is not None:
            (lic.assigned,) = rest
            await conn.execute(
                update(lines).where(line.id == lic.line).values(assigned=lic.assigned)
            )
        elif action == "state":
            (lic.state,) = rest
            await conn.execute(update(subs).where(sub.id == lic.id).values(state=lic.state))
        elif action == "term":
            start, end = sorted(NOW + timedelta(hours=h) for h in rest)
            lic.start, lic.end = start, end
            await conn.execute(
                update(subs).where(sub.id == lic.id).values(start_date=start, end_date=end)
            )
        elif action == "drop" and lic.line is not None:
            await conn.execute(delete(lines).where(line.id == lic.line))
            lic.line = None


async def kept_totals_equal_the_recomputation(api: Api, w: World) -> None:
    """Per partner, the kept licensed customers and users at ``now``; and every day row is the
    sum of the spans' edges that day."""
    licensed = w.licensed()
    async with session_factory(api.engine)() as session:
        for partner in set(w.partner_of.values()):
            mine = {c: n for c, n in licensed.items() if w.partner_of[c] == partner}
            totals = await partner_licensed_totals(session, partner, w.now)
            assert (totals.customers, totals.licensed) == (len(mine), sum(mine.values()))
        spans = (await session.execute(select(CALLING_LICENCE_SPAN))).all()
        days = (await session.execute(select(CALLING_LICENCE_DAY))).all()
    edges: defaultdict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for span in spans:
        for moment, sign in ((span.valid_from, 1), (span.valid_to, -1)):
            edge = edges[(span.partner_id, day_number(moment))]
            edge[0] += sign
            edge[1] += sign * span.licensed
    kept = {
        (d.partner_id, d.day): [d.customers, d.licensed] for d in days if d.customers or d.licensed
    }
    assert kept == {k: v for k, v in edges.items() if v != [0, 0]}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=steps)
async def test_licensed_figures_follow_any_licence_writes_and_clock_moves(
    fresh_database: Database, script: list[tuple[str, Any]]
) -> None:
    await fresh_database.empty()
    async with api_over(fresh_database) as api:
        w = await world(api)
        w.counter = api.counter
        await kept_totals_equal_the_recomputation(api, w)
        for action, arg in script:
            await apply(api, w, action, arg)
            await kept_totals_equal_the_recomputation(api, w)
            await figures_equal_the_reference(fresh_database, w)


def test_the_clock_moves_cross_week_starts_and_the_licences_ends() -> None:
    # NOW is a Thursday: -10 days to +25 days spans three Sundays and every licence's end.
    sundays = [
        NOW + timedelta(hours=h)
        for h in range(-10 * 24, 25 * 24 + 1, 24)
        if (NOW + timedelta(hours=h)).weekday() == 6
    ]
    assert len(sundays) >= 3
    assert NOW.tzinfo is UTC and NOW.date() > date(2026, 11, 14)
