"""One partner's writes move only its own data version; a write of unknown partner moves all.

The response cache keys a response by the caller's version (``db.versioning``): a mutation of
Globex leaves Acme's cached responses valid, and a refused mutation (its audit entry alone)
leaves everyone's. A write the engine cannot attribute (an operator's SQL, a factory, a seed)
moves the global epoch: every partner's next query executes. A partner's writes of what
deployment-wide figures read (subscriptions, licence lines: the low-allocation medians) move its
own shared version, which only responses that read those figures depend on. On PostgreSQL,
writers of two partners never wait on a shared row, subscriptions included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from db.engine import session_factory
from db.models import AppMeta, Customer, Tag
from db.partner_versions import PARTNER_DATA_VERSION
from db.queries.admins import authenticate_token
from db.queries.analytics.medians import low_allocation_medians
from db.versioning import DATA_VERSION_KEY, caller_data_version, moves_version, writes_for
from tests import test_license_totals as lt
from tests.conftest import NOW, Api, postgresql_only
from tests.helpers import Factory, data_of, post_graphql, token_for
from tests.test_attack_session6 import LOW
from tests.test_ingest import record, run_cli, write_csv
from tests.test_response_cache import FULL, OTHER_FULL, PAGE, post, world
from tests.test_subscriptions import OTHER, QUANTITY, World, gid
from tests.test_subscriptions import w as w
from tests.test_trials import START_TRIAL, for_customer

PV = PARTNER_DATA_VERSION.c
GLOBEX_TAG = 'mutation { createTag(input: {name: "gold"}) { tag { id } } }'
AUDIT = "{ auditLog(first: 10) { nodes { operation objectType } } }"


async def versions(api: Api) -> tuple[int, dict[int, int]]:
    """(global epoch, {partner: version})."""
    async with api.engine.connect() as conn:
        epoch = await conn.scalar(select(AppMeta.value).where(AppMeta.key == DATA_VERSION_KEY))
        rows = (await conn.execute(select(PV.partner_id, PV.version))).all()
    return int(epoch or 0), {int(p): int(v) for p, v in rows}


async def caller_version(api: Api, email: str) -> str:
    token = await token_for(api, email)
    async with api.engine.connect() as conn:
        from sqlalchemy.ext.asyncio import AsyncSession

        principal = await authenticate_token(AsyncSession(bind=conn), token=token)
    assert principal is not None
    return caller_data_version(principal)


def test_audit_entries_and_the_sqlite_write_lock_move_no_version() -> None:
    assert not moves_version("INSERT INTO audit_log (partner_id) VALUES (1)")
    assert not moves_version("UPDATE app_meta SET value = value WHERE key = 'write_lock'")
    assert moves_version("INSERT INTO audit_log_copy SELECT 1")  # another table
    assert moves_version("UPDATE audit_log SET operation = 'x'")  # rewriting history
    assert moves_version("INSERT INTO tag VALUES (1)")
    assert not moves_version("SELECT 1")
    # common table expressions: a write only through a data-modifying keyword
    assert not moves_version("WITH s AS (SELECT 1 AS updated_at) SELECT * FROM s")
    assert moves_version("WITH s AS (SELECT 1) INSERT INTO tag SELECT * FROM s")
    assert moves_version("with d as (delete from tag returning id) select count(*) from d")
    assert moves_version("WITH s AS (SELECT 1)\nUPDATE tag SET name = 'x'")
    assert moves_version("WITH t AS (SELECT id FROM tag FOR UPDATE) SELECT 1")  # conservative
    assert moves_version("WITH s AS (SELECT 1, 'x') REPLACE INTO tag SELECT * FROM s")  # SQLite
    assert moves_version("WITH s AS (SELECT 1)\n  replace\n into tag SELECT * FROM s")
    assert not moves_version("WITH s AS (SELECT replace(name, 'a', 'b') AS n FROM tag) SELECT n")


async def test_a_partners_mutation_keeps_the_other_partners_cache(api: Api) -> None:
    await world(api)
    for email in (FULL, OTHER_FULL):
        await token_for(api, email)  # issuing a token is a write of no declared partner
    for email in (FULL, OTHER_FULL):
        await post(api, PAGE, {"first": 10}, email)
    acme_before = await caller_version(api, FULL)
    globex_before = await caller_version(api, OTHER_FULL)
    epoch, _ = await versions(api)
    data_of(await post_graphql(api, GLOBEX_TAG, as_=OTHER_FULL))
    assert await caller_version(api, FULL) == acme_before
    assert await caller_version(api, OTHER_FULL) != globex_before
    assert (await versions(api))[0] == epoch  # the global epoch did not move
    acme = await post(api, PAGE, {"first": 10}, FULL)
    globex = await post(api, PAGE, {"first": 10}, OTHER_FULL)
    assert acme.headers["x-partner-hub-cache"] == "hit"
    assert globex.headers["x-partner-hub-cache"] == "miss"


async def shared_versions(api: Api) -> dict[int, int]:
    async with api.engine.connect() as conn:
        rows = (await conn.execute(select(PV.partner_id, PV.shared_version))).all()
    return {int(p): int(v) for p, v in rows}


async def test_another_partners_trial_keeps_this_partners_cache_but_not_its_medians(
    api: Api,
) -> None:
    """Globex starts a trial: its subscription moves the deployment's medians, so Acme's
    low-allocation answer is computed again, while Acme's directory page (which reads no
    deployment-wide figure) stays cached; the global epoch does not move."""
    ids = await world(api)
    factory = Factory(api.engine)
    globex_customer = await factory.customer(ids["globex"], "Globex Trial Co")
    for email in (FULL, OTHER_FULL):
        await token_for(api, email)
    assert (await post(api, PAGE, {"first": 10}, FULL)).status_code == 200
    assert (await post(api, LOW, {}, FULL)).status_code == 200
    epoch, before = await versions(api)
    shared_before = await shared_versions(api)
    body = await post_graphql(
        api,
        START_TRIAL,
        {"input": for_customer(globex_customer, ("MEETINGS", 5))},
        as_=OTHER_FULL,
    )
    assert not data_of(body)["startTrial"]["userErrors"], body
    after_epoch, after = await versions(api)
    shared_after = await shared_versions(api)
    assert after_epoch == epoch  # no global row moved
    assert after[ids["globex"]] > before.get(ids["globex"], 0)
    assert after.get(ids["acme"], 0) == before.get(ids["acme"], 0)
    assert shared_after[ids["globex"]] == shared_before.get(ids["globex"], 0) + 1
    assert shared_after.get(ids["acme"], 0) == shared_before.get(ids["acme"], 0)
    page = await post(api, PAGE, {"first": 10}, FULL)
    low = await post(api, LOW, {}, FULL)
    assert page.headers["x-partner-hub-cache"] == "hit"
    assert low.headers["x-partner-hub-cache"] == "miss"
    assert (await post(api, LOW, {}, FULL)).headers["x-partner-hub-cache"] == "hit"


async def test_a_refusal_moves_no_version_and_the_audit_log_is_never_cached(api: Api) -> None:
    await world(api)
    await post(api, PAGE, {"first": 10}, FULL)
    first_log = await post(api, AUDIT, {}, FULL)
    assert first_log.headers["x-partner-hub-cache"] == "miss"
    before = await versions(api)
    # An empty tag name is a user error: refused, audited, nothing else written.
    body = await post_graphql(
        api, 'mutation { createTag(input: {name: ""}) { tag { id } } }', as_=FULL
    )
    assert body["data"]["createTag"]["tag"] is None
    assert await versions(api) == before
    assert (await post(api, PAGE, {"first": 10}, FULL)).headers["x-partner-hub-cache"] == "hit"
    log = await post(api, AUDIT, {}, FULL)
    assert log.headers["x-partner-hub-cache"] == "miss"  # executed again: shows the refusal
    assert {"operation": "createTag", "objectType": "refusal"} in data_of(log.json())["auditLog"][
        "nodes"
    ]


async def test_a_write_of_unknown_partner_moves_every_partner(api: Api) -> None:
    ids = await world(api)
    acme, globex = await caller_version(api, FULL), await caller_version(api, OTHER_FULL)
    async with api.engine.begin() as conn:  # an operator's SQL: no partner declared
        await conn.execute(update(Customer).where(Customer.id == ids["first"]).values(name="Aa"))
    assert await caller_version(api, FULL) != acme
    assert await caller_version(api, OTHER_FULL) != globex


async def test_declared_writes_move_exactly_their_partners(api: Api) -> None:
    f = Factory(api.engine)
    a, b, c = await f.partner(), await f.partner("B", "b.example"), await f.partner("C", "c.ex")
    epoch, start = await versions(api)
    async with api.engine.begin() as conn:
        await writes_for(conn, [a, b])
        for p in (a, b):
            await conn.execute(
                Tag.__table__.insert().values(  # type: ignore[attr-defined]
                    partner_id=p, name=f"t{p}", name_key=f"t{p}", created_at=NOW
                )
            )
    after_epoch, after = await versions(api)
    assert after_epoch == epoch
    assert after.get(a, 0) == start.get(a, 0) + 1 and after.get(b, 0) == start.get(b, 0) + 1
    assert after.get(c, 0) == start.get(c, 0)
    async with api.engine.begin() as conn:  # read-only, declared: nothing moves
        await writes_for(conn, c)
        await conn.execute(select(Tag.id))
    assert await versions(api) == (after_epoch, after)


async def test_a_declaration_lasts_one_transaction(api: Api) -> None:
    f = Factory(api.engine)
    a = await f.partner()
    async with api.engine.connect() as conn:
        await writes_for(conn, a)
        await conn.rollback()
        epoch, _ = await versions(api)
        await conn.execute(text("UPDATE partner SET name = 'Renamed'"))  # undeclared
        await conn.commit()
    assert (await versions(api))[0] == epoch + 1


@pytest.fixture
async def ingest_world(api: Api) -> dict[str, Any]:
    f = Factory(api.engine)
    partner = await f.partner("Acme Partners", "acme.example")
    await f.partner("Globex Reseller", "globex.example")
    await f.customer(partner, "One Corp")  # external id EXT-00001
    return {"partner": partner}


async def test_an_ingest_moves_the_partners_of_its_records(
    api: Api, ingest_world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNER_HUB_NOW", NOW.isoformat())

    def calls(prefix: str) -> Path:
        records = [
            record(f"{prefix}{i}", "EXT-00001", started_at="2026-11-10T08:00:00Z") for i in range(5)
        ]
        return write_csv(tmp_path / f"{prefix}.csv", records)

    await run_cli(api, str(calls("a")))  # the first load also stores the thresholds' fingerprint
    epoch, before = await versions(api)
    await run_cli(api, str(calls("b")))
    after_epoch, after = await versions(api)
    assert after_epoch == epoch
    loaded = ingest_world["partner"]
    assert after[loaded] > before.get(loaded, 0)
    assert {p: v for p, v in after.items() if p != loaded} == {
        p: v for p, v in before.items() if p != loaded
    }


@postgresql_only  # SQLite has one writer at a time by design
@pytest.mark.parametrize("table", ["tag", "subscription"])
async def test_writers_of_two_partners_never_wait_on_a_shared_row(api: Api, table: str) -> None:
    """Partner A's transaction holds every version row a commit could take besides B's own
    (A's version row and the global epoch's row), and, when it wrote a subscription, A's
    write lock (migration 0032); B's write, of a tag or of a subscription (an input of the
    deployment-wide medians), commits without waiting. (tests/test_partner_write_lock.py: a
    second writer of A's does wait on that lock.)

    Here the two subscriptions have different ratios, so only the version rows and the write
    locks are under test; the medians' ratio histogram, where two subscriptions of the same
    ratio would meet, is moved only by the holder of its fold lock, the others appending deltas
    (migration 0027), which the next test covers."""
    f = Factory(api.engine)
    a, b = await f.partner(), await f.partner("B", "b.example")
    subscriptions = {}
    for partner, assigned in ((a, 5), (b, 3)):
        customer = await f.customer(partner, f"Customer {partner}")
        subscriptions[partner] = await f.subscription(
            customer, lines=[("MEETINGS", 10, assigned, assigned)]
        )

    async def write(partner: int, name: str, hold: asyncio.Event | None) -> None:
        async with api.engine.connect() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            await writes_for(conn, partner)
            if table == "tag":
                await conn.execute(
                    Tag.__table__.insert().values(  # type: ignore[attr-defined]
                        partner_id=partner, name=name, name_key=name, created_at=NOW
                    )
                )
            else:
                await conn.execute(
                    text("UPDATE subscription SET auto_renew = NOT auto_renew WHERE id = :s"),
                    {"s": subscriptions[partner]},
                )
            if hold is not None:
                # Lock the partner's version row as a commit's bump does, and the global
                # epoch's row, and keep them.
                await conn.execute(
                    text("UPDATE partner_data_version SET version = version WHERE partner_id = :p"),
                    {"p": partner},
                )
                await conn.execute(
                    text("UPDATE app_meta SET value = value WHERE key = :k"),
                    {"k": DATA_VERSION_KEY},
                )
                hold.set()
                await asyncio.sleep(3)
            await conn.commit()

    async with api.engine.begin() as conn:
        await writes_for(conn, [a, b])
        await conn.execute(text("UPDATE partner SET setup_state = setup_state"))
    async with api.engine.begin() as conn:  # the epoch's row exists
        await conn.execute(text("UPDATE partner SET setup_state = setup_state"))
    held = asyncio.Event()
    holder = asyncio.create_task(write(a, "held", held))
    await held.wait()
    await asyncio.wait_for(write(b, "free", None), 1.5)  # no wait on a row of A's or global
    await holder


async def _histogram(api: Api) -> dict[tuple[str, int, float], int]:
    """The deployment's ratio histogram as the medians read it, its base plus the pending
    deltas: (product, band, ratio) -> n, keys at 0 left out."""
    async with api.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT product, band, ratio, SUM(n) FROM ("
                "SELECT product, band, ratio, n FROM license_ratio_count UNION ALL "
                "SELECT product, band, ratio, n FROM license_ratio_delta) h "
                "GROUP BY product, band, ratio HAVING SUM(n) <> 0"
            )
        )
        return {(p, int(b), float(r)): int(n) for p, b, r, n in rows}


async def _pending(api: Api) -> int:
    async with api.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT COUNT(*) FROM license_ratio_delta")) or 0)


async def _medians_and_reference(api: Api) -> tuple[Any, Any]:
    async with api.engine.connect() as conn:
        reference = lt.ref.medians(await lt.world(conn, 0, NOW))
    async with session_factory(api.engine)() as session:
        return await low_allocation_medians(session, now=NOW), reference


@postgresql_only  # SQLite has one writer at a time by design
@pytest.mark.parametrize("writer", ["sql", "api"])
async def test_two_partners_moving_to_the_same_ratio_never_wait_on_each_other(
    w: World, writer: str
) -> None:
    """Acme and Globex each have a Meetings line of 10 purchased, 5 assigned: the same product,
    size band, ratio and bucket of the medians' histogram. Acme's open transaction raises its
    line to 20 (band 11-50, ratio 0.25), which moves the histogram's base (it got the fold
    lock), and holds its version rows; Globex's change to the same 20 (by SQL, or through
    ``changeLicenseQuantity``) commits meanwhile: it does not get the lock, appends its change
    to the pending deltas and waits on no row (migration 0027). The medians read the base plus
    the deltas: right before and after Acme commits; the next write folds the deltas."""
    subscriptions = {}
    for partner in (w.acme, w.globex):
        customer = await w.customer(partner)
        subscriptions[partner] = await w.subscription(customer, lines=[("MEETINGS", 10, 5, 5)])
    assert await _histogram(w.api) == {("MEETINGS", 1, 0.5): 2}
    raise_to_20 = text("UPDATE license_line SET purchased = 20 WHERE subscription_id = :s")
    held = asyncio.Event()

    async def acme_holds() -> None:
        async with w.api.engine.connect() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            await writes_for(conn, w.acme)
            await conn.execute(raise_to_20, {"s": subscriptions[w.acme]})
            await conn.execute(
                text("UPDATE partner_data_version SET version = version WHERE partner_id = :p"),
                {"p": w.acme},
            )
            await conn.execute(
                text("UPDATE app_meta SET value = value WHERE key = :k"), {"k": DATA_VERSION_KEY}
            )
            held.set()
            await asyncio.sleep(3)
            await conn.commit()

    async def globex_writes() -> None:
        if writer == "api":
            body = await post_graphql(
                w.api,
                QUANTITY,
                {
                    "input": {
                        "subscriptionId": gid("Subscription", subscriptions[w.globex]),
                        "product": "MEETINGS",
                        "purchased": 20,
                    }
                },
                as_=OTHER,
            )
            assert not data_of(body)["changeLicenseQuantity"]["userErrors"], body
            return
        async with w.api.engine.connect() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            await writes_for(conn, w.globex)
            await conn.execute(raise_to_20, {"s": subscriptions[w.globex]})
            await conn.commit()

    async with w.api.engine.begin() as conn:  # both partners' version rows and the epoch's exist
        await writes_for(conn, [w.acme, w.globex])
        await conn.execute(text("UPDATE partner SET setup_state = setup_state"))
    async with w.api.engine.begin() as conn:
        await conn.execute(text("UPDATE partner SET setup_state = setup_state"))
    holder = asyncio.create_task(acme_holds())
    await held.wait()
    await asyncio.wait_for(globex_writes(), 1.5)  # no wait on a histogram row of Acme's
    assert await _histogram(w.api) == {("MEETINGS", 1, 0.5): 1, ("MEETINGS", 2, 0.25): 1}
    assert await _pending(w.api) == 2  # Globex's -1 at 0.5 and +1 at 0.25, not folded
    medians, reference = await _medians_and_reference(w.api)
    assert medians == reference == {("MEETINGS", 1): 0.5, ("MEETINGS", 2): 0.25}
    await holder
    assert await _histogram(w.api) == {("MEETINGS", 2, 0.25): 2}
    medians, reference = await _medians_and_reference(w.api)
    assert medians == reference == {("MEETINGS", 2): 0.25}
    assert await _pending(w.api) == 2  # nobody folded since
    async with w.api.engine.begin() as conn:  # one more write: it gets the lock and folds
        await conn.execute(
            text("UPDATE license_line SET purchased = 40 WHERE subscription_id = :s"),
            {"s": subscriptions[w.acme]},
        )
    assert await _pending(w.api) == 0
    assert await _histogram(w.api) == {("MEETINGS", 2, 0.25): 1, ("MEETINGS", 2, 0.125): 1}
    medians, reference = await _medians_and_reference(w.api)
    assert medians == reference == {("MEETINGS", 2): (0.125 + 0.25) / 2}
