"""The directory's maintained counts (``db.directory_counts``, kept by the triggers of migration
0020) against an exact ``COUNT`` after every write of random sequences.

Writes go through the real writers: customers created by ``db.queries.trials.create_customer``
and deleted with plain SQL (the spans go by cascade), trials started, extended and converted by
``db.queries.trials``, subscriptions added (starting and ending within hours, to land edges on
"today") and suspended or provisioned, admins signing in — each followed, as the API does, by
``db.status.refresh_status_spans`` — and the clock moves by minutes to months between them
(across midnight, the expiring-soon and inactivity thresholds). After each step, for both
partners: the unfiltered total and the total for each status alone (and for each subscription
type) equal the exact count the directory makes for any other filter. Both backends.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db import directory_counts
from db.engine import create_engine, session_factory
from db.enums import CustomerStatus, SubscriptionKind
from db.models import Admin, Customer, Partner, Subscription
from db.queries import customer_filters as q
from db.queries import trials
from db.status import StatusRules, refresh_status_spans
from graph.auth.permissions import system_scope
from tests.conftest import _require_backend, postgresql_only
from tests.databases import Database, make_database

START = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)
RULES = StatusRules(expiring_soon_days=7, inactivity_days=30)
P, A, C, S = (t.__table__ for t in (Partner, Admin, Customer, Subscription))  # type: ignore[attr-defined]

OPS = st.one_of(
    st.tuples(st.just("customer"), st.integers(0, 1)),  # partner
    st.tuples(st.just("delete"), st.integers(0, 99)),
    st.tuples(st.just("trial"), st.integers(0, 99), st.integers(1, 40)),  # customer, days
    st.tuples(st.just("extend"), st.integers(0, 99), st.integers(-20 * 24, 30 * 24)),  # hours
    st.tuples(st.just("convert"), st.integers(0, 99), st.booleans()),
    st.tuples(
        st.just("subscribe"),
        st.integers(0, 99),
        st.integers(-30 * 60, 30 * 60),  # start, minutes from now
        st.integers(1, 40 * 24 * 60),  # length in minutes
        st.booleans(),  # auto-renew
    ),
    st.tuples(
        st.just("state"),
        st.integers(0, 99),
        st.sampled_from(("SUSPENDED", "PROVISIONING", "CANCELLED", "ACTIVE")),
    ),
    st.tuples(st.just("sign_in"), st.integers(0, 99), st.integers(-40 * 24, 0)),  # hours ago
    st.tuples(
        st.just("clock"),
        st.sampled_from((7, 90, 150, 3 * 60, 20 * 60, 24 * 60, 8 * 24 * 60, 31 * 24 * 60)),
    ),
)


async def _pick(session: Any, table: Any, index: int) -> Any:
    rows = (await session.execute(select(table).order_by(table.c.id))).all()
    return rows[index % len(rows)] if rows else None


async def apply(
    engine: AsyncEngine, op: tuple[Any, ...], now: datetime, admins: list[int]
) -> datetime:
    """One write (in its own transaction); returns the clock after it."""
    kind = op[0]
    if kind == "clock":
        return now + timedelta(minutes=op[1])
    async with session_factory(engine)() as session, session.begin():
        if kind == "customer":
            partners = sorted((await session.execute(select(P.c.id))).scalars())
            partner = partners[op[1]]
            admin = admins[op[1]]
            customer = await trials.create_customer(
                session, partner_id=partner, name=f"New {now:%H%M%S%f}", admin_id=admin, now=now
            )
            await refresh_status_spans(session, [customer], RULES)
            return now
        if kind in ("delete", "trial", "subscribe", "sign_in"):
            customer = await _pick(session, C, op[1])
            if customer is None:
                return now
            if kind == "delete":
                await session.execute(delete(C).where(C.c.id == customer.id))
                return now
            if kind == "trial":
                admin = admins[0] if customer.partner_id == admins[2] else admins[1]
                await trials.start_trial(
                    session,
                    partner_id=customer.partner_id,
                    customer_id=customer.id,
                    products=[("MEETINGS", 10)],
                    duration_days=op[2],
                    admin_id=admin,
                    now=now,
                    rules=RULES,
                )
                return now
            if kind == "subscribe":
                _, _, start_m, length_m, renew = op
                start = now + timedelta(minutes=start_m)
                end = start + timedelta(minutes=length_m)
                await session.execute(
                    insert(S).values(
                        partner_id=customer.partner_id,
                        customer_id=customer.id,
                        subscription_id=f"Sub-{now:%j%H%M%S%f}-{customer.id}",
                        kind=SubscriptionKind.PAID.value,
                        state="ACTIVE",
                        start_date=start,
                        end_date=end,
                        auto_renew=renew,
                        renewal_date=end if renew else None,
                        created_at=now,
                    )
                )
            else:
                signed_in = now + timedelta(hours=op[2])
                await session.execute(
                    update(C).where(C.c.id == customer.id).values(last_admin_sign_in_at=signed_in)
                )
            await refresh_status_spans(session, [customer.id], RULES)
            return now
        sub = await _pick(session, S, op[1])
        if sub is None:
            return now
        scope = system_scope(sub.partner_id)
        if kind == "extend" and sub.kind == "TRIAL":
            end = sub.end_date + timedelta(hours=op[2])
            if end > sub.start_date:
                await trials.extend_trial(
                    session, scope=scope, trial=sub, new_end=end, now=now, rules=RULES
                )
        elif kind == "convert" and sub.kind == "TRIAL" and sub.state == "ACTIVE":
            admin = admins[0] if sub.partner_id == admins[2] else admins[1]
            await trials.convert_trial(
                session,
                scope=scope,
                trial=sub,
                auto_renew=op[2],
                term_months=12,
                admin_id=admin,
                now=now,
                rules=RULES,
            )
        elif kind == "state":
            await session.execute(update(S).where(S.c.id == sub.id).values(state=op[2]))
            await refresh_status_spans(session, [sub.customer_id], RULES)
    return now


QUERIES = [
    q.CustomerQuery(),
    *(q.CustomerQuery(statuses=(s.value,)) for s in CustomerStatus),
    *(q.CustomerQuery(subscription_kind=k.value) for k in SubscriptionKind),
]


async def check(engine: AsyncEngine, partners: list[int], now: datetime) -> None:
    async with session_factory(engine)() as session:
        for partner in partners:
            scope = system_scope(partner)
            for query in QUERIES:
                assert q.maintained_status(scope, query) is not None
                exact = await session.scalar(
                    select(func.count())
                    .select_from(C)
                    .where(and_(*q.customer_conditions(scope, query, now, as_sets=True)))
                )
                got = await q.count_customers(session, scope=scope, query=query, now=now)
                assert got == exact, (partner, query, now)


async def _base(engine: AsyncEngine) -> tuple[list[int], list[int]]:
    """Two partners with an admin and two customers each; (partners, [admin 1, admin 2,
    partner 1])."""
    async with engine.begin() as conn:
        for table in (S, C, A, P):
            await conn.execute(delete(table))
        partners, admins = [], []
        for p in (1, 2):
            result = await conn.execute(
                insert(P).values(
                    name=f"Partner {p}",
                    domain=f"p{p}.example",
                    setup_state="READY",
                    created_at=START,
                )
            )
            partner = result.inserted_primary_key[0]
            partners.append(partner)
            result = await conn.execute(
                insert(A).values(
                    partner_id=partner,
                    email=f"a@p{p}.example",
                    name="Admin",
                    role="FULL_ADMIN",
                    active=True,
                    created_at=START,
                )
            )
            admins.append(result.inserted_primary_key[0])
    for p in (0, 1, 0, 1):
        await apply(engine, ("customer", p), START, [*admins, partners[0]])
    return partners, [*admins, partners[0]]


async def _run(url: str, ops: list[tuple[Any, ...]]) -> None:
    engine = create_engine(url)
    try:
        partners, admins = await _base(engine)
        now = START
        await check(engine, partners, now)
        for op in ops:
            now = await apply(engine, op, now, admins)
            await check(engine, partners, now)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    async def make() -> Database:
        await _require_backend(backend)
        return await make_database(
            backend, "partner_hub_test_directory_counts", str(tmp_path_factory.mktemp("dc"))
        )

    db = asyncio.run(make())
    asyncio.run(db.engine.dispose())
    yield db.url
    asyncio.run(db.dispose())


def test_maintained_counts_equal_an_exact_count_after_every_write(database_url: str) -> None:
    @settings(
        max_examples=10,  # well under 30 s per backend on a loaded 2-core machine
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: bounded runtime
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(OPS, min_size=4, max_size=14))
    def run(ops: list[tuple[Any, ...]]) -> None:
        asyncio.run(_run(database_url, ops))

    run()


def test_restricted_scopes_and_other_filters_are_counted() -> None:
    """Only an unrestricted scope with no filter, or one status, reads the maintained counts."""
    from graph.auth.permissions import _issue  # type: ignore[attr-defined]

    whole, assigned = system_scope(1), _issue(1, 7)
    assert q.maintained_status(whole, q.CustomerQuery()) == ""
    assert q.maintained_status(whole, q.CustomerQuery(statuses=("TRIAL",))) == "TRIAL"
    assert q.maintained_status(assigned, q.CustomerQuery()) is None
    assert q.maintained_status(assigned, q.CustomerQuery(statuses=("TRIAL",))) is None
    for other in (
        q.CustomerQuery(statuses=("TRIAL", "ACTIVE")),
        q.CustomerQuery(statuses=()),
        q.CustomerQuery(search="a"),
        q.CustomerQuery(managed_by="EXTERNAL_ADMIN"),
        q.CustomerQuery(products=("MEETINGS",)),
        q.CustomerQuery(tag_ids=(1,)),
        q.CustomerQuery(statuses=("EXPIRED",), subscription_kind="TRIAL"),
    ):
        assert q.maintained_status(whole, other) is None, other
    assert (
        q.maintained_status(whole, q.CustomerQuery(statuses=("TRIAL",), subscription_kind="TRIAL"))
        == "TRIAL"
    )
    assert directory_counts.day_number(datetime(1970, 1, 2, 23, 59, tzinfo=UTC)) == 1


@postgresql_only
def test_truncate_empties_the_counts(database_url: str, backend: str) -> None:
    """PostgreSQL's TRUNCATE fires no DELETE trigger: its own trigger empties the counts."""

    async def run() -> None:
        from sqlalchemy import text

        engine = create_engine(database_url)
        try:
            partners, admins = await _base(engine)
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE customer CASCADE"))
            await check(engine, partners, START)
            await apply(engine, ("customer", 1), START, admins)
            await check(engine, partners, START)
            async with session_factory(engine)() as session:
                assert await directory_counts.customer_count(session, partners[1]) == 1
        finally:
            await engine.dispose()

    asyncio.run(run())
