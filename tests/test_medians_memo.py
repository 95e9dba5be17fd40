"""The deployment's low-allocation medians kept between requests (``MediansMemo``).

A process answers from the medians it last read while the deployment's shared version is the
one they were read at and ``now`` stays between the starts and ends of ACTIVE rows around the
instant they were read at. Oracle: the same figures recomputed on every request, by a second app
over the same database with ``PARTNER_HUB_MEDIANS_MEMO`` off, and ``low_allocation_medians``
called directly at each instant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import session_factory
from db.queries.analytics.medians import (
    MediansMemo,
    in_db_order,
    low_allocation_medians,
    medians_window,
)
from db.versioning import writes_pending
from graph.ids import to_global_id
from tests.conftest import NOW, Api, api_over
from tests.databases import Database
from tests.helpers import Factory, data_of, post_graphql, token_for

DAY = timedelta(days=1)
DASHBOARD = """
query D($product: AnalyticsProduct!) {
  licenseKpis { totalCustomers lowAllocation }
  licenseAnalytics(product: $product) {
    lowAllocation {
      kpis { lowAllocationCustomers allocationPercent }
      rows(first: 50) { totalCount nodes { subscriptionId allocationPercent } }
    }
  }
}
"""
QUANTITY = """
mutation Q($input: ChangeLicenseQuantityInput!) {
  changeLicenseQuantity(input: $input) { userErrors { code message } }
}
"""


@pytest.fixture
async def apis(fresh_database: Database) -> AsyncIterator[tuple[Api, Api]]:
    """Two apps over one empty database, response cache off: the memo on, and off."""
    await fresh_database.empty()
    async with (
        api_over(fresh_database, response_cache_seconds=0) as kept,
        api_over(fresh_database, response_cache_seconds=0, medians_memo=False) as cold,
    ):
        yield kept, cold


def memo_of(api: Api) -> MediansMemo:
    memo = api.client._transport.app.state.hub.services.medians  # type: ignore[attr-defined]
    assert isinstance(memo, MediansMemo)
    return memo


async def world(f: Factory) -> dict[str, list[int]]:
    """Two partners; subscriptions spread over bands and ratios, some ending or starting soon
    (their instants bound the memo's window)."""
    subs: dict[str, list[int]] = {"acme": [], "globex": []}
    for p, key in enumerate(subs):
        partner = await f.partner(f"Partner {key}", f"{key}.example")
        await f.admin(partner, f"full@{key}.example", "FULL_ADMIN")
        for n in range(6):
            customer = await f.customer(partner, f"{key} customer {n}")
            purchased = (10, 40, 150, 10, 40, 600)[n]
            assigned = (1 + n * 3 + p) % purchased
            start = NOW - (60 + 10 * n) * DAY
            end = NOW + (3 + n + p) * DAY if n % 2 else NOW + 300 * DAY
            lines = [("MEETINGS", purchased, assigned, 1), ("CALLING", purchased, purchased, 1)]
            subs[key].append(await f.subscription(customer, start=start, end=end, lines=lines))
    return subs


# The bench's whole license dashboard (every section's KPIs and first page before low
# allocation's): the medians are asked after other statements of the request's transaction.
BENCH_QUERIES = Path(__file__).parent.parent / "bench" / "queries"
FULL_DASHBOARD = (BENCH_QUERIES / "license_dashboard.graphql").read_text()


async def dashboard(api: Api, email: str) -> dict[str, object]:
    body = await post_graphql(api, DASHBOARD, {"product": "MEETINGS"}, as_=email)
    full = await post_graphql(api, FULL_DASHBOARD, {"product": "MEETINGS"}, as_=email)
    return {"small": data_of(body), "full": data_of(full)}


async def same_answers(kept: Api, cold: Api) -> None:
    for email in ("full@acme.example", "full@globex.example"):
        assert await dashboard(kept, email) == await dashboard(cold, email), email


async def test_kept_medians_answer_until_a_licence_write_anywhere(apis: tuple[Api, Api]) -> None:
    kept, cold = apis
    f = Factory(kept.engine)
    subs = await world(f)
    for api in apis:  # tokens first: issuing one is a write (the epoch moves)
        for email in ("full@acme.example", "full@globex.example"):
            await token_for(api, email)

    # given: the first dashboard reads the medians, the next ones keep them
    await same_answers(kept, cold)
    memo = memo_of(kept)
    reads = memo.reads
    assert reads == 1
    await same_answers(kept, cold)
    assert memo.reads == reads
    # and no statement of the whole dashboard reads the histogram (asked after the section
    # statements of the request's transaction, which only read)
    with kept.counter.counting() as statements:
        await post_graphql(kept, FULL_DASHBOARD, {"product": "MEETINGS"}, as_="full@acme.example")
    assert statements
    assert not [s for s in statements if "license_ratio_" in s], statements

    # when: the other partner changes a licence quantity through the API (its shared version)
    variables = {
        "input": {
            "subscriptionId": to_global_id("Subscription", subs["globex"][0]),
            "product": "MEETINGS",
            "purchased": 400,
        }
    }
    body = await post_graphql(kept, QUANTITY, variables, as_="full@globex.example")
    assert not data_of(body)["changeLicenseQuantity"]["userErrors"], body

    # then: the medians are read again, and every answer is the recomputation's
    await same_answers(kept, cold)
    assert memo.reads == reads + 1
    reads = memo.reads

    # when: an operator's SQL through the engine (undeclared: the global epoch moves)
    async with kept.engine.begin() as conn:
        await conn.execute(
            text("UPDATE license_line SET assigned = 0 WHERE subscription_id = :s"),
            {"s": subs["acme"][1]},
        )
    await same_answers(kept, cold)
    assert memo.reads == reads + 1


async def test_kept_medians_follow_the_clock_across_every_start_and_end(
    fresh_database: Database,
) -> None:
    """At each start and end of an ACTIVE row, a microsecond before and after and in between,
    the memo's medians are those computed directly at that instant, and it reads again only
    when the instant left the window of the last read."""
    await fresh_database.empty()
    f = Factory(fresh_database.engine)
    await world(f)
    async with fresh_database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT start_date, end_date FROM subscription WHERE state = 'ACTIVE'")
        )
        edges = sorted({v for row in rows for v in row})
    sessions = session_factory(fresh_database.engine)
    async with sessions() as session:
        probe = await low_allocation_medians(session, now=NOW)
        assert probe, "the world has medians"
        # the window in the database's order (SQLite's text, PostgreSQL's instants)
        since, until = await medians_window(session, now=NOW)
        assert since is not None and until is not None
        assert since <= in_db_order(session, NOW) < until
        since, until = _as_aware(since), _as_aware(until)
    instants = sorted(
        {NOW - 100 * DAY, NOW + 400 * DAY}
        | {since, until}
        | {_as_aware(e) + d for e in edges for d in (-timedelta(microseconds=1), 0 * DAY)}
        | {_as_aware(e) + timedelta(hours=1) for e in edges}
    )
    memo = MediansMemo()
    windows: list[tuple[datetime | None, datetime | None]] = []
    for now in instants:
        async with sessions() as session:
            before = memo.reads
            got = await memo.medians(session, now=now, version="1:1")
            assert got == await low_allocation_medians(session, now=now), now
            if memo.reads == before:  # a hit: within the window of the last read
                lo, hi = windows[-1]
                at = in_db_order(session, now)
                assert (lo is None or lo <= at) and (hi is None or at < hi)
            else:
                windows.append(await medians_window(session, now=now))
    # one read per window visited: the instants in one window shared a read
    assert memo.reads == len(windows) < len(instants)
    # and another version reads again at once
    async with sessions() as session:
        before = memo.reads
        await memo.medians(session, now=instants[-1], version="1:2")
        assert memo.reads == before + 1


def _as_aware(value: object) -> datetime:
    if isinstance(value, str):  # SQLite's text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def test_a_transaction_with_uncommitted_writes_is_seen_as_such(
    fresh_database: Database,
) -> None:
    """The resolvers read the medians directly (not from the memo) inside a transaction that
    wrote: what it reads is not what the version read with the token says."""
    await fresh_database.empty()
    f = Factory(fresh_database.engine)
    subs = await world(f)
    async with session_factory(fresh_database.engine)() as session:
        await session.execute(text("SELECT 1"))
        assert not await writes_pending(session)
        await session.execute(
            text("UPDATE license_line SET assigned = 1 WHERE subscription_id = :s"),
            {"s": subs["acme"][0]},
        )
        assert await writes_pending(session)
        await session.commit()
        await session.execute(text("SELECT 1"))
        assert not await writes_pending(session)
