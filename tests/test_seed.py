"""Demo and synthetic seeds (DESIGN.md section 6): idempotent, deterministic, complete.

Every test builds its own migrated SQLite files under ``tmp_path``; one test also loads the same
synthetic data into PostgreSQL (skipped when unreachable, unless ``CI`` is set).
"""

from __future__ import annotations

import os
import re
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from db.engine import create_engine, session_factory
from db.enums import CustomerStatus, ManagedBy, Product, Role, SubscriptionKind, SubscriptionState
from db.migrate import migrate
from db.models import Tag
from db.seed import SeedError, seed_demo, seed_resources, seed_synthetic
from db.seed.common import snapshot_weeks
from db.seed.resources import catalogue
from db.status import (
    STATUS_RULES_KEY,
    StatusRules,
    ensure_status_rules,
    refresh_status_spans,
    statuses_at,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)
RULES = StatusRules(expiring_soon_days=7, inactivity_days=30)
DAY = timedelta(days=1)
TABLES = SQLModel.metadata.tables
COMPARED = (
    "partner", "admin", "tag", "customer", "customer_tag", "customer_assignment", "subscription",
    "subscription_tag", "license_line", "license_snapshot", "invoice", "subscription_order",
    "customer_status_span", "customer_product", "app_meta",
)  # fmt: skip


async def fresh_sqlite(tmp_path: Path, name: str) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
    await migrate(engine)
    return engine


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows of every table in the database, whether or not it is a model."""
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        return {
            n: (await conn.execute(text(f'SELECT count(*) FROM "{n}"'))).scalar_one() for n in names
        }


async def dump(engine: AsyncEngine, table: str) -> list[tuple[Any, ...]]:
    model = TABLES[table]
    async with engine.connect() as conn:
        rows = await conn.execute(select(model).order_by(*model.primary_key.columns))
        return [tuple(r) for r in rows]


async def add_tag(engine: AsyncEngine) -> None:
    """A row inserted without an id, as the API would insert it."""
    async with engine.begin() as conn:
        row = {"partner_id": 1, "name": "Later", "name_key": "later", "created_at": NOW}
        await conn.execute(insert(Tag).values(**row))


async def rows_of(engine: AsyncEngine, table: str) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(TABLES[table])))


async def stored_spans(engine: AsyncEngine) -> dict[int, list[tuple[str, datetime, datetime]]]:
    spans: dict[int, list[tuple[str, datetime, datetime]]] = defaultdict(list)
    for row in await rows_of(engine, "customer_status_span"):
        spans[row.customer_id].append((row.status, row.valid_from, row.valid_to))
    return spans


def expected_statuses(
    subs: list[Any], lines: dict[int, list[Any]], last_sign_in: datetime | None, at: datetime
) -> set[str]:
    """The DESIGN.md section 2 table, read literally."""

    def in_force(s: Any) -> bool:
        return bool(s.state == "ACTIVE" and s.start_date <= at < s.end_date)

    def within(when: datetime, days: int) -> bool:
        return at < when <= at + timedelta(days=days)

    found = set()
    if any(in_force(s) and s.kind == "TRIAL" for s in subs):
        found.add("TRIAL")
    if any(in_force(s) and s.kind == "PAID" for s in subs):
        found.add("ACTIVE")
    if any(
        in_force(s)
        and (s.kind == "TRIAL" or not s.auto_renew)
        and within(s.end_date, RULES.expiring_soon_days)
        for s in subs
    ):
        found.add("EXPIRING_SOON")
    if any(in_force(s) and any(x.assigned > x.purchased for x in lines[s.id]) for s in subs):
        found.add("LICENSE_OVERAGE")
    if last_sign_in is None or at - last_sign_in > timedelta(days=RULES.inactivity_days):
        found.add("NO_RECENT_ACTIVITY")
    if any(s.state == "PROVISIONING" for s in subs):
        found.add("READY_FOR_ORDER_SETUP")
    if any(s.state == "SUSPENDED" for s in subs):
        found.add("SUSPENDED")
    if subs and all(s.state in ("EXPIRED", "CANCELLED") or s.end_date <= at for s in subs):
        found.add("EXPIRED")
    return found


async def test_demo_seed_twice_changes_nothing(tmp_path: Path) -> None:
    # given
    engine = await fresh_sqlite(tmp_path, "demo")
    # when
    first = await seed_demo(engine, now=NOW, rules=RULES, progress=False)
    counts = await row_counts(engine)
    second = await seed_demo(engine, now=NOW + 3 * DAY, rules=RULES, progress=False)
    # then
    assert first.created and not second.created
    assert await row_counts(engine) == counts
    assert (first.partners, first.customers) == (2, 520)
    assert second == type(first)(**{**first.__dict__, "created": False})
    assert counts["resource"] == len(catalogue()) >= 40
    assert await seed_resources(engine, now=NOW) == 0
    await engine.dispose()


async def test_demo_covers_every_status_product_kind_state_and_role(tmp_path: Path) -> None:
    # given
    engine = await fresh_sqlite(tmp_path, "demo")
    # when
    await seed_demo(engine, now=NOW, rules=RULES, progress=False)
    # then: the stored spans agree with the DESIGN.md table at several instants
    customers = await rows_of(engine, "customer")
    subs = await rows_of(engine, "subscription")
    lines = await rows_of(engine, "license_line")
    subs_of, lines_of = defaultdict(list), defaultdict(list)
    for s in subs:
        subs_of[s.customer_id].append(s)
    for x in lines:
        lines_of[x.subscription_id].append(x)
    spans = await stored_spans(engine)
    seen: set[str] = set()
    for at in (NOW, NOW + 5 * DAY, NOW + 45 * DAY):
        for c in customers:
            held = statuses_at(spans[c.id], at)
            assert held == expected_statuses(subs_of[c.id], lines_of, c.last_admin_sign_in_at, at)
            if at == NOW:
                seen |= held
    assert seen == {s.value for s in CustomerStatus}
    for partner_id in {c.partner_id for c in customers}:
        mine = {c.id for c in customers if c.partner_id == partner_id}
        assert {s for c in mine for s in statuses_at(spans[c], NOW)} == seen
    # every product, kind, state, managed-by value
    assert {x.product for x in lines} == {p.value for p in Product}
    products = {(r.customer_id, r.product) for r in await rows_of(engine, "customer_product")}
    assert {p for _, p in products} == {p.value for p in Product}
    assert {s.kind for s in subs} == {k.value for k in SubscriptionKind}
    assert {s.state for s in subs} == {k.value for k in SubscriptionState}
    assert {c.managed_by for c in customers} == {m.value for m in ManagedBy}
    assert any(c.last_admin_sign_in_at is None for c in customers)
    signed_in = [c.last_admin_sign_in_at for c in customers if c.last_admin_sign_in_at]
    assert any(NOW - at > 30 * DAY for at in signed_in)
    for s in subs:
        pattern = r"Sub\d{6}" if s.kind == "PAID" else r"Trial-\d{6}"  # as startTrial makes
        assert re.fullmatch(pattern, s.subscription_id), s.subscription_id
    await _assert_partners_admins_and_tags(engine)
    await _assert_snapshots(engine, subs, lines)
    _assert_analytics_cases(subs, lines_of)
    # derived data is what the service computes, and nothing needs rebuilding
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA foreign_key_check"))).all() == []
    async with session_factory(engine)() as session:
        assert not await ensure_status_rules(session, RULES)
    await _assert_derived_rows_match_refresh(engine)
    await engine.dispose()


async def _assert_partners_admins_and_tags(engine: AsyncEngine) -> None:
    partners = {p.name: p for p in await rows_of(engine, "partner")}
    assert partners["Acme Partners"].domain == "acme.example"
    assert partners["Acme Partners"].setup_state in ("TERMS_ACCEPTED", "READY")
    assert partners["Globex Reseller"].domain == "globex.example"
    assert partners["Globex Reseller"].setup_state == "NOT_STARTED"
    admins = {a.email: a for a in await rows_of(engine, "admin")}
    roles = {"full": Role.FULL_ADMIN, "partner": Role.PARTNER_ADMIN}
    roles |= {"readonly": Role.READ_ONLY_ADMIN, "sales": Role.SALES_ADMIN}
    for partner in partners.values():
        for local, role in roles.items():
            admin = admins[f"{local}@{partner.domain}"]
            assert (admin.role, admin.partner_id, admin.active) == (role, partner.id, True)
        assert sum(a.partner_id == partner.id for a in admins.values()) > 4
    assignments = await rows_of(engine, "customer_assignment")
    assigned = {a.admin_id for a in assignments}
    for partner in partners.values():
        assert admins[f"partner@{partner.domain}"].id in assigned
        assert admins[f"sales@{partner.domain}"].id in assigned
    pairs = {(a.customer_id, a.admin_id) for a in assignments}
    provisioned = [c for c in await rows_of(engine, "customer") if c.provisioned_by_admin_id]
    assert provisioned
    assert all((c.id, c.provisioned_by_admin_id) in pairs for c in provisioned)
    tags = await rows_of(engine, "tag")
    customer_tags = await rows_of(engine, "customer_tag")
    for partner in partners.values():
        mine = [t for t in tags if t.partner_id == partner.id]
        assert len(mine) >= 10
        assert all(1 <= len(t.name.strip()) <= 25 and t.name_key == t.name.lower() for t in mine)
        assert len({t.name_key for t in mine}) == len(mine)
        attached = {ct.tag_id for ct in customer_tags if ct.partner_id == partner.id}
        assert len(attached) >= 10
    assert await rows_of(engine, "subscription_tag")


async def _assert_snapshots(engine: AsyncEngine, subs: list[Any], lines: list[Any]) -> None:
    weeks = snapshot_weeks(NOW)
    assert weeks[-1] == datetime(2026, 11, 15, tzinfo=UTC)  # last week closed on Sunday 22nd
    assert all(w.weekday() == 6 and w + 7 * DAY <= NOW for w in weeks)
    by_line = defaultdict(list)
    for snap in await rows_of(engine, "license_snapshot"):
        by_line[snap.license_line_id].append(snap)
    started = {s.id: s.start_date for s in subs}
    assert set(by_line) == {x.id for x in lines}
    for line in lines:
        snaps = sorted(by_line[line.id], key=lambda s: s.week_start)
        assert [s.week_start for s in snaps] == weeks
        if started[line.subscription_id] < weeks[-1]:
            last = snaps[-1]
            ended = last.purchased == 0
            assert ended or (last.purchased, last.assigned, last.used) == (
                line.purchased,
                line.assigned,
                line.used,
            )
        assert all(s.used <= s.assigned for s in snaps)


def _assert_analytics_cases(subs: list[Any], lines_of: dict[int, list[Any]]) -> None:
    """Each partner has rows for every analytics table of DESIGN.md section 3."""
    for partner_id in {s.partner_id for s in subs}:
        live = [
            s
            for s in subs
            if s.partner_id == partner_id
            and s.state == "ACTIVE"
            and s.start_date <= NOW < s.end_date
        ]
        assert any(s.start_date > NOW - 90 * DAY for s in live)  # recently added
        assert any(not s.auto_renew and s.end_date <= NOW + 90 * DAY for s in live)  # expire
        assert any(s.auto_renew and s.renewal_date <= NOW + 90 * DAY for s in live)  # renew
        ratios = {}
        for s in live:
            kpi = [x for x in lines_of[s.id] if x.product == "MEETINGS"]
            if kpi:
                ratios[s.id] = sum(x.assigned for x in kpi) / sum(x.purchased for x in kpi)
        median = statistics.median(ratios.values())
        old = {s.id for s in live if s.start_date <= NOW - 30 * DAY}
        assert any(r < median / 2 for sid, r in ratios.items() if sid in old)  # low allocation
        assert any(x.assigned > x.purchased for s in live for x in lines_of[s.id])  # overage
        assert any(x.used < x.assigned for s in live for x in lines_of[s.id])


async def _assert_derived_rows_match_refresh(engine: AsyncEngine) -> None:
    """``refresh_status_spans`` recomputing from the stored rows changes nothing."""
    spans = await dump(engine, "customer_status_span")
    products = await dump(engine, "customer_product")
    ids = [c.id for c in await rows_of(engine, "customer")]
    async with engine.begin() as conn:
        await refresh_status_spans(conn, ids, RULES)
    strip = sorted(row[1:] for row in spans)  # span ids are renumbered by the refresh
    assert sorted(row[1:] for row in await dump(engine, "customer_status_span")) == strip
    assert await dump(engine, "customer_product") == products


async def test_synthetic_seed_is_deterministic(tmp_path: Path) -> None:
    # given
    one, two = await fresh_sqlite(tmp_path, "one"), await fresh_sqlite(tmp_path, "two")
    # when
    kwargs: dict[str, Any] = {"customers": 2000, "partners": 2, "random_seed": 7}
    report = await seed_synthetic(one, now=NOW, rules=RULES, progress=False, **kwargs)
    again = await seed_synthetic(two, now=NOW, rules=RULES, progress=False, **kwargs)
    # then
    assert report == again
    assert (report.partners, report.customers, report.admins) == (2, 2000, 12)
    assert report.snapshots == 13 * report.license_lines
    for table in COMPARED:
        assert await dump(one, table) == await dump(two, table), table
    partners = await rows_of(one, "partner")
    assert sorted((p.name, p.domain) for p in partners) == [
        ("Synthetic Partner 1", "synth1.example"),
        ("Synthetic Partner 2", "synth2.example"),
    ]
    emails = {a.email for a in await rows_of(one, "admin")}
    for n in (1, 2):
        assert {f"{r}@synth{n}.example" for r in ("full", "partner", "readonly", "sales")} <= emails
    spans = await stored_spans(one)
    held = {s for c in spans.values() for s in statuses_at(c, NOW)}
    assert held == {s.value for s in CustomerStatus}
    async with one.connect() as conn:
        assert (await conn.execute(text("PRAGMA foreign_key_check"))).all() == []
    await _assert_derived_rows_match_refresh(one)
    # a different seed gives different data
    other = await fresh_sqlite(tmp_path, "other")
    await seed_synthetic(other, customers=20, partners=2, random_seed=8, now=NOW, rules=RULES)
    names = [c.name for c in await rows_of(other, "customer")]
    assert names != [c.name for c in await rows_of(one, "customer")][:20]
    for engine in (one, two, other):
        await engine.dispose()


async def test_synthetic_seed_refuses_existing_partners_and_writes_nothing(tmp_path: Path) -> None:
    # given
    engine = await fresh_sqlite(tmp_path, "twice")
    await seed_demo(engine, now=NOW, rules=RULES, progress=False)
    small: dict[str, Any] = {"customers": 40, "now": NOW, "rules": RULES, "progress": False}
    await seed_synthetic(engine, partners=2, random_seed=1, **small)
    counts = await row_counts(engine)
    # when / then
    for partners in (2, 3):
        with pytest.raises(SeedError, match="already exist"):
            await seed_synthetic(engine, partners=partners, random_seed=2, **small)
        assert await row_counts(engine) == counts
    # and ids keep counting after the seeded ones
    await add_tag(engine)
    async with engine.connect() as conn:
        meta = TABLES["app_meta"]
        stored = await conn.execute(select(meta.c.value).where(meta.c.key == STATUS_RULES_KEY))
        assert stored.scalar_one() == RULES.fingerprint
    await engine.dispose()


PG_ADMIN_URL = os.environ.get(
    "PARTNER_HUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def test_synthetic_seed_is_identical_on_postgresql(tmp_path: Path) -> None:
    # given
    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"partner_hub_test_seed_{os.getpid()}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    pg = create_engine(f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}")
    lite = await fresh_sqlite(tmp_path, "lite")
    try:
        await migrate(pg)
        kwargs: dict[str, Any] = {"customers": 300, "partners": 2, "random_seed": 3, "now": NOW}
        # when
        await seed_demo(pg, now=NOW, rules=RULES, progress=False)
        await seed_demo(lite, now=NOW, rules=RULES, progress=False)
        await seed_synthetic(pg, rules=RULES, progress=False, **kwargs)
        await seed_synthetic(lite, rules=RULES, progress=False, **kwargs)
        # then
        for table in COMPARED:
            assert await dump(pg, table) == await dump(lite, table), table
        await add_tag(pg)  # the id sequences continue after the explicit ids
    finally:
        await pg.dispose()
        await lite.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
