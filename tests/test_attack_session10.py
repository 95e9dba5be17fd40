"""Session 10's attack on the kept low-allocation spans (migration 0033, ``db.low_reference``,
``db.queries.analytics.low_kept``).

Oracle: the flag recomputed in Python from ``license_product_total`` (ACTIVE, purchased > 0,
start + 30 days <= now < end, ratio < half the deployment's median of its band, the medians
read by ``low_allocation_medians``), per partner, compared with ``partner_figures`` (kept
spans + correction) at several references and instants, and the GraphQL dashboard compared
with a server with no reference at all.

Failing at this commit (see each test):
- ``test_negative_assignments_from_an_operator_are_flagged_as_before`` (SQLite): a band with
  no reference row: the span trigger's ``ratio < (SELECT half ...)`` is NULL, the correction's
  r is 0, so a negative ratio is neither kept nor in [0, h): the KPIs and totalCount drop it
  while the page lists it.
- ``test_a_deployment_whose_postgresql_time_zone_has_daylight_saving`` (PostgreSQL):
  ``interval '30 days'`` follows the session's TimeZone (0021's 90-day windows too).
- ``test_a_partner_created_while_the_reference_is_being_set`` (PostgreSQL): the rebuild locks
  the partners it listed only; a newer partner's open write keeps spans at the old reference.
- ``test_an_operator_writing_two_partners_while_the_reference_is_set`` (PostgreSQL): the
  rebuild, taking every partner's lock in order, is a deadlock victim of a transaction that
  writes a later partner, then an earlier one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from db.engine import session_factory
from db.low_reference import rebase_low_reference, set_low_reference
from db.queries.analytics.low_kept import ANY_LOW, low_kpi
from db.queries.analytics.medians import low_allocation_medians
from db.queries.analytics.partner import partner_figures
from graph.auth.permissions import system_scope
from tests.conftest import NOW, Api, _require_backend, postgresql_only
from tests.databases import make_database
from tests.helpers import Factory, data_of, post_graphql
from tests.test_license_kpi_blocks import _alembic

DAY = timedelta(days=1)
US = timedelta(microseconds=1)
AGE = timedelta(days=30)
PRODUCTS = ("MEETINGS", "CALLING")
NAMES = (ANY_LOW, low_kpi("MEETINGS"), low_kpi("CALLING"))
ALL_KEYS = [(p, b) for p in PRODUCTS for b in range(1, 6)]

LOW_DASHBOARD = """
query D($product: AnalyticsProduct!) {
  licenseKpis { lowAllocation }
  licenseAnalytics(product: $product) {
    lowAllocation {
      kpis { lowAllocationCustomers allocationPercent }
      rows(first: 50) { totalCount nodes { subscriptionId allocationPercent } }
    }
  }
}
"""

# SQLite alone: PostgreSQL refuses a negative ratio (license_ratio_count's CHECK).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="session")


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def oracle(engine: Any, partner_id: int, now: datetime) -> dict[str, tuple[int, ...]]:
    """The low-allocation figures recomputed in Python from the totals at ``now``."""
    async with session_factory(engine)() as session:
        medians = await low_allocation_medians(session, now=now)
        rows = (
            await session.execute(
                text(
                    "SELECT customer_id, product, band, state, purchased, assigned, used, "
                    "ratio, start_date, end_date FROM license_product_total "
                    "WHERE partner_id = :p"
                ),
                {"p": partner_id},
            )
        ).all()
    flagged: dict[str, list[Any]] = {p: [] for p in PRODUCTS}
    for customer, product, band, state, purchased, assigned, used, ratio, start, end in rows:
        if product not in PRODUCTS or state != "ACTIVE" or purchased <= 0:
            continue
        if not (_aware(start) + AGE <= now < _aware(end)):
            continue
        median = medians.get((product, band))
        if median is None or not ratio < median / 2:
            continue
        flagged[product].append((customer, purchased, assigned, used))
    out = {ANY_LOW: (len({r[0] for p in PRODUCTS for r in flagged[p]}), 0, 0, 0, 0)}
    for p in PRODUCTS:
        rs = flagged[p]
        out[low_kpi(p)] = (
            len({r[0] for r in rs}),
            sum(r[1] for r in rs),
            sum(r[2] for r in rs),
            sum(r[3] for r in rs),
            len(rs),
        )
    return out


async def kept(
    engine: Any, partner_id: int, now: datetime, names: tuple[str, ...] = NAMES
) -> dict[str, tuple[int, ...]]:
    """``partner_figures``' low-allocation figures (kept spans + correction) at ``now``."""
    async with session_factory(engine)() as session:
        medians = await low_allocation_medians(session, now=now)
        got = await partner_figures(
            session, scope=system_scope(partner_id), now=now, kpis=(), low=names, medians=medians
        )
    return {name: (f.customers, f.purchased, f.assigned, f.used, f.rows) for name, f in got.items()}


async def set_reference(engine: Any, halves: dict[tuple[str, int], float]) -> None:
    async with session_factory(engine)() as session, session.begin():
        await set_low_reference(session, halves)


async def rebase(engine: Any, now: datetime) -> None:
    async with session_factory(engine)() as session, session.begin():
        await rebase_low_reference(session, now=now)


async def check(
    engine: Any, partners: list[int], now: datetime, label: Any, *, subsets: bool = False
) -> None:
    for partner in partners:
        expected = await oracle(engine, partner, now)
        assert await kept(engine, partner, now) == expected, (label, partner, now)
        if subsets:  # each name asked alone, and a product's section with the top KPI
            for names in (
                (ANY_LOW,),
                *((low_kpi(p),) for p in PRODUCTS),
                (low_kpi("CALLING"), ANY_LOW),
            ):
                got = await kept(engine, partner, now, names)
                assert got == {n: expected[n] for n in names}, (label, partner, names)


async def dashboards(api: Api) -> dict[str, Any]:
    out = {}
    for email in ("full@acme.example", "full@globex.example"):
        for product in PRODUCTS:
            body = await post_graphql(api, LOW_DASHBOARD, {"product": product}, as_=email)
            out[f"{email} {product}"] = data_of(body)
    return out


async def _odd_ratios_world(f: Factory) -> tuple[list[int], dict[str, int]]:
    """Two partners; ratios at awkward values (1/3, 2/3, 0.0005, 0.1235, 0, > 1), purchased 0,
    customers with several subscriptions over products and bands."""
    partners = []
    subs: dict[str, int] = {}
    for k, key in enumerate(("acme", "globex")):
        partner = await f.partner(f"Partner {key}", f"{key}.example")
        await f.admin(partner, f"full@{key}.example", "FULL_ADMIN")
        partners.append(partner)
        shapes = [
            # (purchased, assigned) per product, per subscription, per customer
            [[("MEETINGS", 3, 1), ("CALLING", 3, 2)], [("MEETINGS", 2000, 1)]],
            [[("MEETINGS", 2000, 247), ("CALLING", 2000, 1000)]],
            [[("MEETINGS", 5, 7), ("CALLING", 10, 0)], [("CALLING", 40, 2)]],
            [[("MEETINGS", 0, 3), ("CALLING", 3, 1)]],
            [[("MEETINGS", 3, 2)], [("MEETINGS", 6, 2 + k)], [("CALLING", 600, 60)]],
            [[("MEETINGS", 10, 1), ("CALLING", 10, 5)]],
            [[("MEETINGS", 40, 20 + k), ("CALLING", 150, 150)]],
            [[("MEETINGS", 10, 4), ("CALLING", 150, 7)]],
        ]
        for n, customer_subs in enumerate(shapes):
            customer = await f.customer(partner, f"{key} customer {n}")
            for m, lines in enumerate(customer_subs):
                start = NOW - (40 + 7 * n + m) * DAY
                end = NOW + (20 + 5 * n + m) * DAY
                subs[f"{key}.{n}.{m}"] = await f.subscription(
                    customer,
                    start=start,
                    end=end,
                    lines=[(p, purchased, assigned, 1) for p, purchased, assigned in lines],
                )
    return partners, subs


ODD_HALVES = (
    0.0,
    0.0005,
    0.1235,
    1 / 3,
    2 / 3,
    1 / 6,
    0.05,
    0.5,
    1e-12,
    -1.0,
    0.7,
    1.4,
    2.0,
    1e9,
)


async def test_odd_thresholds_and_odd_ratios_give_the_recomputed_figures(
    uncached_api: Api,
) -> None:
    api = uncached_api
    f = Factory(api.engine)
    partners, _ = await _odd_ratios_world(f)
    await check(api.engine, partners, NOW, "no reference")
    await rebase(api.engine, NOW)
    await check(api.engine, partners, NOW, "rebased")
    answers = await dashboards(api)
    for half in ODD_HALVES:
        await set_reference(api.engine, dict.fromkeys(ALL_KEYS, half))
        await check(api.engine, partners, NOW, half, subsets=True)
        assert await dashboards(api) == answers, half
    # references of products and bands no total has, and a mix per band
    strange = {
        ("MEETINGS", 0): 5.0,
        ("MEETINGS", 6): 5.0,
        ("MEETINGS", -1): 5.0,
        ("OTHER", 1): 5.0,
        ("ANY", 1): 5.0,
        ("meetings", 1): 5.0,
    }
    await set_reference(api.engine, strange)
    await check(api.engine, partners, NOW, "strange keys")
    mix = {key: ODD_HALVES[i % len(ODD_HALVES)] for i, key in enumerate(ALL_KEYS)}
    await set_reference(api.engine, {**mix, **strange})
    await check(api.engine, partners, NOW, "mix", subsets=True)
    assert await dashboards(api) == answers
    await set_reference(api.engine, {})
    assert await dashboards(api) == answers
    # at other instants (ends, ages, starts move in and out), the reference kept
    for hours in (-24 * 20, -24 * 9, 24 * 21, 24 * 26, 24 * 33):
        await check(api.engine, partners, NOW + timedelta(hours=hours), ("mix", hours))


async def test_ratios_exactly_at_the_current_and_the_reference_half(api: Api) -> None:
    """A band whose median is 2/3 (half 1/3) with a total at exactly 1/3; references at
    exactly that half, just below and just above it."""
    f = Factory(api.engine)
    partner = await f.partner()
    ratios = [(3, 1), (3, 1), (3, 2), (3, 2), (3, 2), (3, 3), (3, 3), (6, 1)]  # median 2/3
    for n, (purchased, assigned) in enumerate(ratios):
        customer = await f.customer(partner, f"Customer {n}")
        await f.subscription(
            customer,
            start=NOW - 60 * DAY,
            end=NOW + 60 * DAY,
            lines=[("MEETINGS", purchased, assigned, 0)],
        )
    async with session_factory(api.engine)() as session:
        medians = await low_allocation_medians(session, now=NOW)
    assert medians[("MEETINGS", 1)] == 2 / 3
    third = 1 / 3
    for half in (third, third - 2**-54, third + 2**-54, 1 / 6, 0.3333, 0.3334):
        await set_reference(api.engine, {("MEETINGS", 1): half})
        await check(api.engine, [partner], NOW, half)
    await rebase(api.engine, NOW)
    await check(api.engine, [partner], NOW, "rebased")


async def test_the_aged_edge_at_microseconds_and_fractions(api: Api) -> None:
    """Starts with fractions of a second (.000001, .5, .999999) and ends likewise: the flag's
    edges (start + 30 days, end) a microsecond either side, kept at a reference that flags
    everything and at the current medians."""
    f = Factory(api.engine)
    partner = await f.partner()
    fractions = (timedelta(0), US, timedelta(milliseconds=500), timedelta(seconds=1) - US)
    starts, ends = [], []
    for n, frac in enumerate(fractions):
        customer = await f.customer(partner, f"Customer {n}")
        start = NOW - AGE - timedelta(hours=n) + frac
        end = NOW + timedelta(days=2, hours=n) + frac
        starts.append(start)
        ends.append(end)
        await f.subscription(
            customer, start=start, end=end, lines=[("MEETINGS", 10, 1, 0), ("CALLING", 10, 1, 0)]
        )
        # others keep a median high (ratio 1) in the same bands
        other = await f.customer(partner, f"Other {n}")
        await f.subscription(
            other,
            start=NOW - 300 * DAY,
            end=NOW + 300 * DAY,
            lines=[("MEETINGS", 10, 10, 0), ("CALLING", 10, 10, 0)],
        )
    instants = sorted(
        {s + AGE + d for s in starts for d in (-US, timedelta(0), US)}
        | {e + d for e in ends for d in (-US, timedelta(0), US)}
    )
    for reference in ("rebase", "all"):
        if reference == "rebase":
            await rebase(api.engine, NOW)
        else:
            await set_reference(api.engine, dict.fromkeys(ALL_KEYS, 5.0))
        for now in instants:
            await check(api.engine, [partner], now, (reference, now))


@sqlite_only
async def test_negative_assignments_from_an_operator_are_flagged_as_before(api: Api) -> None:
    """An operator's SQL gives a line a negative ``assigned`` (nothing forbids it on SQLite;
    PostgreSQL's histogram CHECK refuses the write). The total's ratio is negative: below
    every half, flagged by the direct path (before 0033) and by the section's rows."""
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    subs = []
    for n in range(4):
        customer = await f.customer(partner, f"Customer {n}")
        subs.append(
            await f.subscription(
                customer,
                start=NOW - 60 * DAY,
                end=NOW + 60 * DAY,
                lines=[("MEETINGS", 10, 5 + n, 0)],
            )
        )
    async with api.engine.begin() as conn:
        await conn.execute(
            text("UPDATE license_line SET assigned = -3 WHERE subscription_id = :s"),
            {"s": subs[0]},
        )
    await set_reference(api.engine, {})
    # then: one answer's KPIs agree with its own rows (one subscription per customer here)
    body = data_of(
        await post_graphql(api, LOW_DASHBOARD, {"product": "MEETINGS"}, as_="full@acme.example")
    )
    low = body["licenseAnalytics"]["lowAllocation"]
    # (the page lists Sub000002 at -30 %, while totalCount and the KPIs said 0)
    assert len(low["rows"]["nodes"]) == low["rows"]["totalCount"] == 1, body
    assert low["rows"]["totalCount"] == low["kpis"]["lowAllocationCustomers"], body
    assert body["licenseKpis"]["lowAllocation"] == low["kpis"]["lowAllocationCustomers"], body
    # and the figures are the recomputation's, with no reference and at the current one
    await check(api.engine, [partner], NOW, "no reference")
    await rebase(api.engine, NOW)
    await check(api.engine, [partner], NOW, "rebased")


async def test_huge_and_infinite_thresholds_are_refused_or_exact(api: Api) -> None:
    """``set_low_reference`` takes "any values": a half whose 1000 * half leaves int64 (or is
    not finite) is refused (today an OverflowError or the driver's DataError, not a
    ValueError: ``half_tenths`` has no guard) with nothing changed, or works exactly."""
    from db.low_reference import reference_halves

    f = Factory(api.engine)
    partners, _ = await _odd_ratios_world(f)
    await rebase(api.engine, NOW)
    async with session_factory(api.engine)() as session:
        before = await reference_halves(session)
    for half in (1e300, float("inf"), 1e17, 9.3e15):
        refused = False
        try:
            await set_reference(api.engine, dict.fromkeys(ALL_KEYS, half))
        except Exception:
            refused = True
        async with session_factory(api.engine)() as session:
            now_halves = await reference_halves(session)
        assert now_halves == (before if refused else dict.fromkeys(ALL_KEYS, half)), half
        await check(api.engine, partners, NOW, half)
        if not refused:
            await rebase(api.engine, NOW)


@postgresql_only
async def test_a_deployment_whose_postgresql_time_zone_has_daylight_saving(api: Api) -> None:
    """PostgreSQL's ``timestamptz + interval '30 days'`` is 30 calendar days in the session's
    TimeZone (the server's default: the app pins none): across a daylight-saving change it
    is 30 days +- 1 hour, while the request's flag compares with now - timedelta(days=30)."""
    f = Factory(api.engine)
    partner = await f.partner()
    start = datetime(2026, 10, 28, 12, tzinfo=UTC)  # + 30 days crosses 2026-11-01 (US DST end)
    low = await f.subscription(
        await f.customer(partner, "Low"),
        start=start,
        end=start + 200 * DAY,
        lines=[("MEETINGS", 10, 1, 0)],
    )
    for n in range(3):
        await f.subscription(
            await f.customer(partner, f"High {n}"),
            start=start - 100 * DAY,
            end=start + 200 * DAY,
            lines=[("MEETINGS", 10, 10, 0)],
        )
    edge = start + AGE
    instants = [edge - US, edge, edge + timedelta(minutes=30), edge + timedelta(hours=2)]
    # when: the reference is taken, and a write lands, on a server whose zone is New York's
    async with session_factory(api.engine)() as session, session.begin():
        await session.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        await rebase_low_reference(session, now=edge + DAY)
    for now in instants:
        await check(api.engine, [partner], now, ("rebase in New York", now))
    async with api.engine.begin() as conn:
        await conn.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        await conn.execute(
            text("UPDATE license_line SET used = 1 WHERE subscription_id = :s"), {"s": low}
        )
    for now in instants:
        await check(api.engine, [partner], now, ("write in New York", now))


async def low_spans(engine: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT * FROM license_kpi_span WHERE kpi IN "
                "('MEETINGS/LOW', 'CALLING/LOW', 'ANY/LOW') ORDER BY 1, 2, 3, 4, 5, 6"
            )
        )
        return sorted(tuple(str(v) for v in row) for row in rows)


@postgresql_only
async def test_references_set_while_partners_write(api: Api) -> None:
    """Writers of two partners (plain SQL on licence lines, one statement over both partners
    too) while the reference is set and rebased again and again: nothing fails, and afterwards
    the kept spans are those a rebuild at the final reference makes, the figures exact."""
    f = Factory(api.engine)
    partners, subs = await _odd_ratios_world(f)
    ids = sorted(subs.values())
    writers, rounds = 4, 12
    owned = {w: ids[w::writers] for w in range(writers)}
    errors: list[BaseException] = []

    async def writer(w: int) -> None:
        for r in range(rounds):
            try:
                async with api.engine.begin() as conn:
                    for s in owned[w][r % 2 :: 2]:
                        await conn.execute(
                            text(
                                "UPDATE license_line SET assigned = :a WHERE subscription_id = :s"
                            ),
                            {"a": (w * 7 + r * 3 + s) % 23, "s": s},
                        )
            except Exception as exc:
                errors.append(exc)
            await asyncio.sleep(0)

    async def referee() -> None:
        for r in range(rounds):
            try:
                async with session_factory(api.engine)() as session, session.begin():
                    if r % 3 == 0:
                        await rebase_low_reference(session, now=NOW)
                    else:
                        halves = {
                            k: ODD_HALVES[(r + i) % len(ODD_HALVES)] for i, k in enumerate(ALL_KEYS)
                        }
                        await set_low_reference(session, halves)
            except Exception as exc:
                errors.append(exc)
            await asyncio.sleep(0)

    await asyncio.wait_for(
        asyncio.gather(*(writer(w) for w in range(writers)), referee()), timeout=120
    )
    assert not errors, errors
    await check(api.engine, partners, NOW, "after the race")
    spans = await low_spans(api.engine)
    async with session_factory(api.engine)() as session:
        from db.low_reference import reference_halves

        halves = await reference_halves(session)
    await set_reference(api.engine, halves)
    assert await low_spans(api.engine) == spans


async def _low_rollup_rows(engine: Any) -> dict[str, int]:
    out = {}
    async with engine.connect() as conn:
        for table in (
            "license_kpi_span",
            "license_kpi_day",
            "license_kpi_block",
            "license_kpi_edge",
        ):
            out[table] = int(
                await conn.scalar(
                    text(
                        f"SELECT COUNT(*) FROM {table} WHERE kpi IN "
                        "('MEETINGS/LOW', 'CALLING/LOW', 'ANY/LOW')"
                    )
                )
                or 0
            )
    return out


async def test_migration_0033_down_and_up_with_a_reference_set(
    backend: str, tmp_path: Path
) -> None:
    await _require_backend(backend)
    db = await make_database(backend, "partner_hub_test_m0033", str(tmp_path))
    try:
        f = Factory(db.engine)
        partners, subs = await _odd_ratios_world(f)
        await set_reference(db.engine, {k: 0.4 for k in ALL_KEYS})
        assert (await _low_rollup_rows(db.engine))["license_kpi_span"] > 0
        await check(db.engine, partners, NOW, "before")

        # when: down to 0032 (no LOW rollup row left), a write there, and up again
        await _alembic(db.engine, "downgrade", "0032_partner_write_lock")
        assert set((await _low_rollup_rows(db.engine)).values()) == {0}
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE license_line SET assigned = 0 WHERE subscription_id IN (:a, :b)"),
                {"a": subs["acme.1.0"], "b": subs["globex.6.0"]},
            )
        await _alembic(db.engine, "upgrade", "head")

        # then: no kept span until a reference, the figures exact before and after one
        assert set((await _low_rollup_rows(db.engine)).values()) == {0}
        await check(db.engine, partners, NOW, "up again")
        await set_reference(db.engine, {k: 0.4 for k in ALL_KEYS})
        await check(db.engine, partners, NOW, "reference again")
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE license_line SET assigned = 1 WHERE subscription_id = :a"),
                {"a": subs["acme.6.0"]},
            )
        await check(db.engine, partners, NOW, "a write at the reference")
        await check(db.engine, partners, NOW + 25 * DAY, "later")
    finally:
        await db.dispose()


@postgresql_only
async def test_a_partner_created_while_the_reference_is_being_set(api: Api) -> None:
    """A partner created while ``set_low_reference`` waits for the partners' locks (its first
    subscription written in a transaction still open then, committed after the blocker): the
    rebuild takes the newcomer's lock too, so its spans end at the new reference."""
    from sqlalchemy import insert

    from db.models import LicenseLine, Subscription

    f = Factory(api.engine)
    first = await f.partner()
    held = 0
    for n in range(4):
        held = await f.subscription(
            await f.customer(first, f"Customer {n}"),
            start=NOW - 90 * DAY,
            end=NOW + 90 * DAY,
            lines=[("MEETINGS", 10, 2 + 2 * n, 0)],
        )
    await set_reference(api.engine, dict.fromkeys(ALL_KEYS, 0.0))  # flags nothing

    # given: a writer of the first partner holds its lock, so the rebuild waits after listing
    blocker = await api.engine.connect()
    await blocker.begin()
    await blocker.execute(
        text("UPDATE license_line SET used = used + 1 WHERE subscription_id = :s"), {"s": held}
    )
    rebuild = asyncio.create_task(set_reference(api.engine, dict.fromkeys(ALL_KEYS, 5.0)))
    # (the rebuild tries every partner's lock, finds the first busy and tries again later,
    # holding none meanwhile: it cannot be done while the blocker is open)
    await asyncio.sleep(0.3)
    assert not rebuild.done()

    # when: a new partner and customer are committed, its first subscription written (open)
    second = await f.partner("Newcomer", "new.example")
    customer = await f.customer(second, "New customer")
    writer = await api.engine.connect()
    await writer.begin()
    sub = (
        await writer.execute(
            insert(Subscription.__table__).values(  # type: ignore[attr-defined]
                partner_id=second,
                customer_id=customer,
                subscription_id="SubNew",
                kind="PAID",
                state="ACTIVE",
                start_date=NOW - 90 * DAY,
                end_date=NOW + 90 * DAY,
                auto_renew=False,
                renewal_date=None,
                created_at=NOW - 90 * DAY,
            )
        )
    ).inserted_primary_key[0]
    await writer.execute(
        insert(LicenseLine.__table__).values(  # type: ignore[attr-defined]
            partner_id=second,
            subscription_id=sub,
            product="MEETINGS",
            license_type="Standard",
            purchased=10,
            assigned=1,
            used=0,
        )
    )
    await blocker.commit()
    await blocker.close()
    # the newcomer's writer holds its partner's lock: the rebuild waits for it too
    await asyncio.sleep(0.3)
    assert not rebuild.done()
    await writer.commit()
    await writer.close()
    await asyncio.wait_for(rebuild, timeout=30)

    # then: both partners' figures are exact at the new reference
    await check(api.engine, [first, second], NOW, "new partner during the rebuild")


@postgresql_only
async def test_an_operator_writing_two_partners_while_the_reference_is_set(api: Api) -> None:
    """An operator's transaction writes the second partner, then the first, while a rebase
    runs: the rebase holds no lock while it waits (try-locks, all given back when one is
    busy), so it queues behind the writer and neither fails."""
    f = Factory(api.engine)
    partners, subs = await _odd_ratios_world(f)
    update = text("UPDATE license_line SET assigned = assigned + 1 WHERE subscription_id = :s")
    operator = await api.engine.connect()
    failures: list[tuple[str, BaseException]] = []
    try:
        await operator.begin()
        await operator.execute(update, {"s": subs["globex.0.0"]})  # the second partner's lock
        rebuild = asyncio.create_task(rebase(api.engine, NOW))
        await asyncio.sleep(0.3)  # the rebuild tries, finds the second partner's lock busy
        try:
            await operator.execute(update, {"s": subs["acme.0.0"]})
            await operator.commit()
        except Exception as exc:
            failures.append(("operator", exc))
            await operator.rollback()
        try:
            await asyncio.wait_for(rebuild, timeout=30)
        except Exception as exc:
            failures.append(("rebase", exc))
    finally:
        await operator.close()
    assert not failures, failures
    await check(api.engine, partners, NOW, "after")


QUANTITY = """
mutation Q($input: ChangeLicenseQuantityInput!) {
  changeLicenseQuantity(input: $input) { userErrors { code message } }
}
"""


@postgresql_only
async def test_api_quantity_changes_while_the_reference_moves(api: Api) -> None:
    from graph.ids import to_global_id

    f = Factory(api.engine)
    partners, subs = await _odd_ratios_world(f)
    for email in ("full@acme.example", "full@globex.example"):
        await post_graphql(api, LOW_DASHBOARD, {"product": "MEETINGS"}, as_=email)
    failures: list[Any] = []

    async def mutate(key: str, n: int) -> None:
        email = f"full@{key}.example"
        mine = sorted(v for k, v in subs.items() if k.startswith(key))[n::3]
        for r, sub in enumerate(mine * 2):
            variables = {
                "input": {
                    "subscriptionId": to_global_id("Subscription", sub),
                    "product": "MEETINGS",
                    "purchased": 3 + (sub * 7 + r * 5) % 40,
                }
            }
            body = await post_graphql(api, QUANTITY, variables, as_=email)
            # (business refusals, e.g. below the assigned count, are fine; a failure is not)
            if body.get("errors"):
                failures.append((key, sub, body["errors"]))

    async def referee() -> None:
        for r in range(6):
            try:
                async with session_factory(api.engine)() as session, session.begin():
                    if r % 2:
                        await rebase_low_reference(session, now=NOW)
                    else:
                        await set_low_reference(session, dict.fromkeys(ALL_KEYS, 0.1 * r))
            except Exception as exc:
                failures.append(("referee", exc))

    tasks = [mutate(key, n) for key in ("acme", "globex") for n in range(3)]
    await asyncio.wait_for(asyncio.gather(*tasks, referee()), timeout=120)
    assert not failures, failures
    await check(api.engine, partners, NOW, "after")
    spans = await low_spans(api.engine)
    async with session_factory(api.engine)() as session:
        from db.low_reference import reference_halves

        halves = await reference_halves(session)
    await set_reference(api.engine, halves)
    assert await low_spans(api.engine) == spans
