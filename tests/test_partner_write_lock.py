"""Writers of one partner serialise on its rollups, writers of two partners never wait
(migration 0032, PostgreSQL).

Writers of one partner, each changing only its own licence lines and subscriptions (plain SQL,
or API mutations that move dates), used to deadlock on the partner's shared rollup rows (KPI
spans of a shared customer, day edges, blocks, calling licence days): every trigger statement
takes them in key order, but a transaction of several statements (or one refresh that deletes
then re-inserts spans) takes them in several passes, and two such transactions could each hold
what the other's next pass wanted. Now every statement on a table that feeds a partner's
rollups first takes the partner's transaction-scoped advisory lock (``db.partner_write_lock``),
so two writers of one partner queue there before touching any rollup row, and a partner's
rollup rows are only ever locked by the holder of its lock. Two partners' writers take
different keys.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError

from db.partner_write_lock import LOCKED_TABLES, PARTNER_WRITE_LOCK
from graph.ids import to_global_id
from tests import test_license_totals as lt
from tests.conftest import NOW, Api, _require_backend, postgresql_only
from tests.databases import make_database
from tests.helpers import Factory, post_graphql
from tests.test_license_kpi_blocks import _alembic
from tests.test_subscriptions import AUTO_RENEW, QUANTITY, RENEW

DAY = timedelta(days=1)
WRITERS, TRANSACTIONS = 6, 20
CUSTOMERS, SUBSCRIPTIONS = 5, 24
LINES = text(
    "UPDATE license_line SET purchased = :p, assigned = :a "
    "WHERE subscription_id IN :s AND product = ANY(:products)"
).bindparams(bindparam("s", expanding=True))
TERMS = text(
    "UPDATE subscription SET auto_renew = NOT auto_renew, end_date = end_date + :shift "
    "WHERE id IN :s"
).bindparams(bindparam("s", expanding=True))


async def _one_partner(f: Factory, partner: int) -> dict[int, list[int]]:
    """A partner whose subscriptions spread over a few customers, with terms over many days and
    blocks (so the KPI spans, day edges and blocks of one customer and one day are shared by
    several writers); writer -> the subscriptions it alone writes."""
    customers = [await f.customer(partner, f"Customer {n}") for n in range(CUSTOMERS)]
    owned: dict[int, list[int]] = {k: [] for k in range(WRITERS)}
    for n in range(SUBSCRIPTIONS):
        start = NOW - (20 + 37 * n) * DAY
        sub = await f.subscription(
            customers[n % CUSTOMERS],
            kind="TRIAL" if n % 7 == 3 else "PAID",
            start=start,
            end=start + (120 + 45 * (n % 5)) * DAY,
            auto_renew=n % 2 == 0,
            lines=[("MEETINGS", 10 + n, 5, 3), ("CALLING", 40, 4 + n % 3, 1)],
        )
        owned[n % WRITERS].append(sub)
    return owned


async def _write_concurrently(api: Api, owned: dict[int, list[int]]) -> dict[str, Any]:
    """Each writer runs ``TRANSACTIONS`` transactions of one to three statements over its own
    subscriptions (lines of several subscriptions in one statement, subscriptions' terms, in a
    random order; a third of them rolled back): the outcomes, deadlocks counted."""
    outcomes: dict[str, Any] = {"ok": 0, "rolled back": 0, "deadlock": 0, "other": []}

    async def writer(k: int) -> None:
        rnd = random.Random(k)
        for n in range(TRANSACTIONS):
            try:
                async with api.engine.begin() as conn:
                    await conn.execute(text("SET LOCAL lock_timeout = '20s'"))
                    for _ in range(rnd.randint(1, 3)):
                        subs = rnd.sample(owned[k], rnd.randint(1, len(owned[k])))
                        if rnd.random() < 0.25:
                            shift = rnd.choice((-1, 1)) * rnd.randint(1, 60) * DAY
                            await conn.execute(TERMS, {"s": subs, "shift": shift})
                        else:
                            values = {
                                "p": rnd.choice((0, 4, 10, 20, 400)),
                                "a": rnd.choice((5, 9, 30)),
                                "products": rnd.choice(
                                    (["MEETINGS"], ["CALLING"], ["MEETINGS", "CALLING"])
                                ),
                            }
                            await conn.execute(LINES, {**values, "s": subs})
                    if n % 3 == 2:
                        await conn.rollback()
                        outcomes["rolled back"] += 1
                        continue
                outcomes["ok"] += 1
            except DBAPIError as e:
                if "deadlock detected" in str(e):
                    outcomes["deadlock"] += 1
                else:
                    outcomes["other"].append(str(e)[:300])

    await asyncio.gather(*(writer(k) for k in range(WRITERS)))
    return outcomes


@postgresql_only  # SQLite has one writer at a time by design
async def test_writers_of_one_partner_never_deadlock_and_the_figures_stay_exact(
    api: Api,
) -> None:
    # given: one partner, six writers, each with its own four subscriptions over five customers
    f = Factory(api.engine)
    partner = await f.partner()
    other = await f.partner("Globex", "globex.example")  # the medians see a second partner
    await f.subscription(await f.customer(other, "Other"), lines=[("MEETINGS", 10, 5, 5)])
    owned = await _one_partner(f, partner)

    # when
    outcomes = await _write_concurrently(api, owned)

    # then: every transaction committed or was rolled back by its writer: none deadlocked,
    # none met another's refresh of a shared customer's spans (a unique violation: before
    # 0032, 47 to 51 deadlocks and 39 to 41 of those in these 120 transactions)
    failed = {"deadlocks": outcomes["deadlock"], "other errors": len(outcomes["other"])}
    assert failed == {"deadlocks": 0, "other errors": 0}, (failed, outcomes["other"][:3])
    assert outcomes["ok"] + outcomes["rolled back"] == WRITERS * TRANSACTIONS
    # and the maintained figures are the reference's, the rollups what they roll up
    await lt.check(api.engine, [partner, other], NOW, ("MEETINGS", "CALLING"))
    await lt.check_rollups(api.engine)


@postgresql_only  # SQLite has one writer at a time by design
async def test_api_writers_of_one_partner_moving_dates_never_fail(api: Api) -> None:
    """Each mutation locks its customer and changes one subscription or line, so API writers
    of one customer take turns; a quantity change keeps the spans' dates, but a renewal or an
    auto-renew switch moves them, and two customers' refreshes then met over the partner's day
    rows in different orders: on 0031 this failed in 5 of 5 runs, mutations answering
    INTERNAL_SERVER_ERROR on "deadlock detected"."""
    # given: six customers of one partner, two subscriptions in force each
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    owned: dict[int, list[int]] = {}
    for k in range(6):
        customer = await f.customer(partner, f"Customer {k}")
        owned[k] = [
            await f.subscription(
                customer,
                start=NOW - (20 + 37 * n + 11 * k) * DAY,
                end=NOW + (30 + 41 * n + 7 * k) * DAY,
                auto_renew=(n + k) % 2 == 0,
                lines=[("MEETINGS", 10, 5, 3), ("CALLING", 40, 4, 1)],
            )
            for n in range(2)
        ]
    failures: list[Any] = []

    async def writer(k: int) -> None:
        rnd = random.Random(k)
        for n in range(10):
            sub = to_global_id("Subscription", rnd.choice(owned[k]))
            document, values = [
                (RENEW, {"termMonths": rnd.randint(1, 3)}),
                (AUTO_RENEW, {"autoRenew": rnd.random() < 0.5}),
                (QUANTITY, {"product": "MEETINGS", "purchased": rnd.choice((5, 20, 400))}),
            ][n % 3]
            body = await post_graphql(
                api, document, {"input": {"subscriptionId": sub, **values}}, as_="full@acme.example"
            )
            if body.get("errors"):
                failures.append(body["errors"])

    # when
    await asyncio.gather(*(writer(k) for k in range(6)))

    # then: no mutation failed (a user error is an answer, not a failure), figures exact
    assert failures == []
    await lt.check(api.engine, [partner], NOW, ("MEETINGS", "CALLING"))
    await lt.check_rollups(api.engine)


async def _open_write(api: Api, line: int, held: asyncio.Event, release: asyncio.Event) -> None:
    """Change a licence line and keep the transaction open until ``release``."""
    async with api.engine.begin() as conn:
        await conn.execute(
            text("UPDATE license_line SET purchased = purchased + 1 WHERE id = :l"), {"l": line}
        )
        held.set()
        await release.wait()


async def _timed_write(api: Api, line: int, lock_timeout: str) -> tuple[float, str | None]:
    """Change a licence line under ``lock_timeout``: the seconds it took, and the error."""
    started = time.perf_counter()
    try:
        async with api.engine.begin() as conn:
            await conn.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
            await conn.execute(
                text("UPDATE license_line SET purchased = purchased + 2 WHERE id = :l"),
                {"l": line},
            )
    except DBAPIError as e:
        return time.perf_counter() - started, str(e)
    return time.perf_counter() - started, None


async def _queued(conn: Any, partner: int) -> bool:
    """Whether a transaction waits for ``partner``'s write lock."""
    found = await conn.scalar(
        text(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = :k AND objid = :p AND objsubid = 2"
        ),
        {"k": PARTNER_WRITE_LOCK, "p": partner},
    )
    return bool(found)


@postgresql_only  # SQLite has one writer at a time by design
async def test_a_partners_writer_waits_for_its_own_partner_only(api: Api) -> None:
    # given: two partners, each with two subscriptions of different customers
    f = Factory(api.engine)
    lines: dict[int, list[int]] = {}
    for p, domain in enumerate(("acme.example", "globex.example")):
        partner = await f.partner(f"Partner {p}", domain)
        lines[partner] = []
        for n in range(2):
            customer = await f.customer(partner, f"Customer {p}-{n}")
            sub = await f.subscription(customer, lines=[("MEETINGS", 10, 5 + n, 3)])
            async with api.engine.connect() as conn:
                line = await conn.scalar(
                    text("SELECT id FROM license_line WHERE subscription_id = :s"), {"s": sub}
                )
            lines[partner].append(int(line))
    a, b = lines
    held, release = asyncio.Event(), asyncio.Event()

    # when: A's transaction changed a line of A and stays open
    holder = asyncio.create_task(_open_write(api, lines[a][0], held, release))
    await held.wait()
    try:
        # then: B's writer does not wait (no shared row, another key)
        seconds, error = await _timed_write(api, lines[b][0], "2s")
        assert error is None and seconds < 1.0, (seconds, error)
        # and a second writer of A, of another line of another customer, waits for A's lock
        waiting = asyncio.create_task(_timed_write(api, lines[a][1], "10s"))
        queued_for = 0.0
        async with api.engine.connect() as conn:
            while not await _queued(conn, a):
                assert not waiting.done(), await waiting  # it must not get through
                assert queued_for < 5.0
                await asyncio.sleep(0.05)
                queued_for += 0.05
        await asyncio.sleep(0.3)
        assert not waiting.done()
        release.set()
        await holder
        seconds, error = await waiting
        assert error is None, error  # served once A committed
        assert seconds > 0.3, seconds
    finally:
        release.set()
        await asyncio.gather(holder, return_exceptions=True)
    async with api.engine.connect() as conn:
        purchased = (
            await conn.execute(
                text("SELECT id, purchased FROM license_line WHERE id IN :l").bindparams(
                    bindparam("l", expanding=True)
                ),
                {"l": [*lines[a], *lines[b]]},
            )
        ).all()
    assert dict(purchased) == {lines[a][0]: 11, lines[a][1]: 12, lines[b][0]: 12, lines[b][1]: 10}
    await lt.check(api.engine, [a, b], NOW, ("MEETINGS",))


@postgresql_only
async def test_every_table_feeding_partner_rollups_takes_the_lock_before_its_rollups(
    api: Api,
) -> None:
    """Statement triggers of one event fire in the order of their names: on each table whose
    writes move a partner's rollups, the lock's trigger is the first, for every event."""
    async with api.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.relname, t.tgname, t.tgtype FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
                    'ORDER BY c.relname, t.tgname COLLATE "C"'
                )
            )
        ).all()
    triggers: dict[str, list[tuple[str, int]]] = {}
    for table, name, kind in rows:
        triggers.setdefault(table, []).append((name, int(kind)))
    # tgtype bits: 4 INSERT, 8 DELETE, 16 UPDATE (row-level 1 and BEFORE 2 unset here)
    for table in LOCKED_TABLES:
        for event in (4, 8, 16):
            names = [n for n, kind in triggers[table] if kind & event and not kind & 3]
            assert names and names[0].startswith("a0_partner_write_lock"), (table, event, names)
    # and the tables with maintaining triggers left are the rollups, written only from those
    # (or the deployment-wide histogram, with its own fold lock): a new source must be added
    maintained = {t for t, ts in triggers.items() if any(k & 28 for _, k in ts)}
    assert maintained - set(LOCKED_TABLES) == {
        "license_kpi_day",
        "license_kpi_span",
        "license_product_total",
        "license_ratio_count",
    }


async def _lock_triggers(api_engine: Any) -> tuple[int, int]:
    """The lock's triggers and functions in the database (none on SQLite)."""
    if api_engine.dialect.name != "postgresql":
        return 0, 0
    async with api_engine.connect() as conn:
        triggers = await conn.scalar(
            text("SELECT COUNT(*) FROM pg_trigger WHERE tgname LIKE 'a0_partner_write_lock%'")
        )
        functions = await conn.scalar(
            text("SELECT COUNT(*) FROM pg_proc WHERE proname = 'partner_write_lock'")
        )
    return int(triggers or 0), int(functions or 0)


async def test_migration_0032_downgrades_and_upgrades_again(backend: str, tmp_path: Path) -> None:
    await _require_backend(backend)
    # given: a database at head with a partner's licences
    db = await make_database(backend, "partner_hub_test_m0032", str(tmp_path))
    try:
        f = Factory(db.engine)
        partner = await f.partner()
        sub = await f.subscription(await f.customer(partner, "Customer"))
        postgresql = backend == "postgresql"
        assert await _lock_triggers(db.engine) == ((15, 1) if postgresql else (0, 0))

        # when: down to 0031 (the lock goes), a write, and up again (the lock is back)
        await _alembic(db.engine, "downgrade", "0031_rollup_guards")
        assert await _lock_triggers(db.engine) == (0, 0)
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE license_line SET purchased = 30 WHERE subscription_id = :s"),
                {"s": sub},
            )
        await _alembic(db.engine, "upgrade", "head")
        assert await _lock_triggers(db.engine) == ((15, 1) if postgresql else (0, 0))

        # then: writes go on, and the figures are the reference's
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE license_line SET assigned = 12 WHERE subscription_id = :s"),
                {"s": sub},
            )
            if postgresql:  # the write took its partner's lock, held to the commit
                held = await conn.scalar(
                    text(
                        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND pid = pg_backend_pid() AND classid = :k AND objid = :p"
                    ),
                    {"k": PARTNER_WRITE_LOCK, "p": partner},
                )
                assert held == 1
        await lt.check(db.engine, [partner], NOW, ("MEETINGS",))
    finally:
        await db.dispose()
