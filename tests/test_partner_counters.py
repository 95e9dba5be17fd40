"""Per-partner identifiers (issue 14, findings 6 and 7), on SQLite and PostgreSQL.

Call ids are unique within a partner, never across partners: one partner's record neither hides
another's nor tells it that the other has that id. Helpdesk case numbers count per partner, so
each partner's first case is CS-000001 whatever the others did; concurrent openings never share
a number. Migration 0011 keeps the numbers of existing cases and continues each partner from its
highest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, insert, select, text

from db.engine import create_engine
from db.ingest.store import BULK_ROWS
from db.migrate import alembic_config, migrate
from db.models import Admin, CallRecord, Partner, PartnerCounter
from db.types import UTCDateTime
from graph.ids import to_global_id
from tests.conftest import NOW, Api, _require_backend, api_over
from tests.databases import Database, drop_pg_database, recreate_pg_database
from tests.helpers import Factory, data_of, post_graphql
from tests.test_helpdesk import CASES, open_case
from tests.test_ingest import INGEST, gql_record, record, run_cli, write_csv

ACME = "full@acme.example"
GLOBEX = "full@globex.example"
CALLS = "{ callingAnalytics { usage { calls } } }"


@pytest.fixture
async def partners(api: Api) -> dict[str, int]:
    f = Factory(api.engine)
    acme = await f.partner("Acme Partners", "acme.example")
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, ACME, "FULL_ADMIN")
    await f.admin(globex, GLOBEX, "FULL_ADMIN")
    return {
        "acme": acme,
        "globex": globex,
        "acme_customer": await f.customer(acme, "Acme Customer"),  # EXT-00001
        "globex_customer": await f.customer(globex, "Globex Customer"),  # EXT-00002
    }


async def ingest(api: Api, as_: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    body = await post_graphql(api, INGEST, {"input": {"records": records}}, as_=as_)
    payload: dict[str, Any] = data_of(body)["ingestCallRecords"]
    assert payload["userErrors"] == [] and payload["rejected"] == [], payload
    return payload


async def stored_calls(api: Api) -> list[tuple[str, int]]:
    async with api.engine.connect() as conn:
        rows = await conn.execute(
            select(CallRecord.call_id, CallRecord.partner_id).order_by(
                CallRecord.partner_id, CallRecord.call_id
            )
        )
        return [(r[0], r[1]) for r in rows]


# --- finding 6: call ids --------------------------------------------------------------------


async def test_two_partners_ingest_the_same_call_id_and_both_keep_it(
    api: Api, partners: dict[str, int]
) -> None:
    # given: Acme stored call "shared-1" first
    acme_first = await ingest(api, ACME, [gql_record("shared-1", "EXT-00001")])

    # when: Globex ingests a call with the same id for its own customer
    globex_first = await ingest(api, GLOBEX, [gql_record("shared-1", "EXT-00002")])

    # then: both are stored, and neither learns anything about the other
    assert (acme_first["inserted"], acme_first["duplicates"]) == (1, 0)
    assert (globex_first["inserted"], globex_first["duplicates"]) == (1, 0)
    assert await stored_calls(api) == [
        ("shared-1", partners["acme"]),
        ("shared-1", partners["globex"]),
    ]
    for email in (ACME, GLOBEX):
        usage = data_of(await post_graphql(api, CALLS, as_=email))["callingAnalytics"]["usage"]
        assert usage["calls"] == 1, email


async def test_ingestion_stays_idempotent_within_a_partner(
    api: Api, partners: dict[str, int]
) -> None:
    # given
    await ingest(api, ACME, [gql_record("a-1", "EXT-00001")])
    await ingest(api, GLOBEX, [gql_record("a-1", "EXT-00002")])

    # when: each partner sends its record again (twice in one call, too)
    again = await ingest(
        api, GLOBEX, [gql_record("a-1", "EXT-00002"), gql_record("a-1", "EXT-00002")]
    )

    # then: nothing new, counted as duplicates of its own record
    assert (again["inserted"], again["duplicates"]) == (0, 2)
    assert len(await stored_calls(api)) == 2


async def test_the_command_line_stores_one_id_once_per_partner_on_every_write_path(
    api: Api, partners: dict[str, int], tmp_path: Path
) -> None:
    # given: the same ids for both partners, small files (statement path) and files of at
    # least BULK_ROWS records (executemany on SQLite, COPY on PostgreSQL)
    acme, globex = (
        to_global_id("Customer", partners[k]) for k in ("acme_customer", "globex_customer")
    )
    for size in (3, BULK_ROWS + 5):
        ids = [f"call-{size}-{i:04d}" for i in range(size)]
        acme_file = write_csv(tmp_path / f"acme-{size}.csv", [record(i, acme) for i in ids])
        globex_file = write_csv(tmp_path / f"globex-{size}.csv", [record(i, globex) for i in ids])

        # when: Acme's file, then Globex's, then both again
        await run_cli(api, str(acme_file))
        await run_cli(api, str(globex_file))
        before_again = await stored_calls(api)
        await run_cli(api, str(globex_file))
        await run_cli(api, str(acme_file))

        # then: every id is stored once for each partner, and reloading changed nothing
        stored = await stored_calls(api)
        assert stored == before_again
        for partner in ("acme", "globex"):
            mine = sorted(
                c for c, p in stored if p == partners[partner] and c.startswith(f"call-{size}-")
            )
            assert mine == ids, (partner, size)


# --- finding 7: case numbers ----------------------------------------------------------------


async def test_each_partners_first_case_is_cs_000001(api: Api, partners: dict[str, int]) -> None:
    # given: Acme opened two cases
    acme_numbers = [(await open_case(api, ACME))["caseNumber"] for _ in range(2)]

    # when: Globex opens its first and second, then Acme its third
    globex_numbers = [(await open_case(api, GLOBEX))["caseNumber"] for _ in range(2)]
    acme_numbers.append((await open_case(api, ACME))["caseNumber"])

    # then
    assert acme_numbers == ["CS-000001", "CS-000002", "CS-000003"]
    assert globex_numbers == ["CS-000001", "CS-000002"]
    listed = data_of(await post_graphql(api, CASES, {"first": 10}, as_=GLOBEX))
    assert [n["caseNumber"] for n in listed["helpdeskCases"]["nodes"]] == [
        "CS-000002",
        "CS-000001",
    ]


async def test_a_refused_opening_takes_no_number(api: Api, partners: dict[str, int]) -> None:
    # given: an opening refused by validation (nothing written)
    body = await post_graphql(
        api,
        "mutation($input: OpenHelpdeskCaseInput!) { openHelpdeskCase(input: $input) "
        "{ case { id } userErrors { code } } }",
        {"input": {"product": "CALLING", "subject": " ", "description": "x", "severity": "LOW"}},
        as_=GLOBEX,
    )
    assert data_of(body)["openHelpdeskCase"]["userErrors"] == [{"code": "SUBJECT_REQUIRED"}]

    # when
    case = await open_case(api, GLOBEX)

    # then: numbers have no gaps
    assert case["caseNumber"] == "CS-000001"


async def test_concurrent_openings_get_distinct_consecutive_numbers(
    api: Api, partners: dict[str, int]
) -> None:
    # when: both partners open eight cases each, all at the same time
    cases = await asyncio.gather(
        *(open_case(api, email, subject=f"Case {i}") for i in range(8) for email in (ACME, GLOBEX))
    )

    # then: each partner got 1..8, each number once
    expected = [f"CS-{n:06d}" for n in range(1, 9)]
    for k, _email in enumerate((ACME, GLOBEX)):
        assert sorted(c["caseNumber"] for c in cases[k::2]) == expected
    async with api.engine.connect() as conn:
        counters = dict(
            (await conn.execute(select(PartnerCounter.partner_id, PartnerCounter.value))).all()
        )
    assert counters == {partners["acme"]: 8, partners["globex"]: 8}


# --- migration 0011 on existing data --------------------------------------------------------

BEFORE = "0010_status_walk"
OLD_CASE = sa.table(
    "helpdesk_case",
    sa.column("partner_id"),
    sa.column("product"),
    sa.column("subject"),
    sa.column("description"),
    sa.column("severity"),
    sa.column("state"),
    sa.column("created_at", UTCDateTime()),
)


async def _database_at(backend: str, tmp_path: Path, revision: str) -> Database:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/at_{revision}.db"
    else:
        url = await recreate_pg_database(f"partner_hub_test_m0011_{id(tmp_path)}")
    db = Database(backend=backend, url=url, engine=create_engine(url))
    await _run_alembic(db, "upgrade", revision)
    return db


async def test_migration_keeps_existing_numbers_and_continues_per_partner(
    backend: str, tmp_path: Path
) -> None:
    await _require_backend(backend)
    # given: a database at 0010 where cases 1 and 2 are Acme's and 3 is Globex's, and a call
    db = await _database_at(backend, tmp_path, BEFORE)
    try:
        async with db.engine.begin() as conn:
            ids = {}
            for key, name in (("acme", "Acme Partners"), ("globex", "Globex Reseller")):
                result = await conn.execute(
                    insert(Partner).values(
                        name=name, domain=f"{key}.example", setup_state="DONE", created_at=NOW
                    )
                )
                ids[key] = int(result.inserted_primary_key[0])
                await conn.execute(
                    insert(Admin).values(
                        partner_id=ids[key],
                        email=f"full@{key}.example",
                        name="Full",
                        role="FULL_ADMIN",
                        active=True,
                        created_at=NOW,
                    )
                )
            for key in ("acme", "acme", "globex"):
                await conn.execute(
                    insert(OLD_CASE).values(
                        partner_id=ids[key],
                        product="CALLING",
                        subject="Old",
                        description="Old case.",
                        severity="LOW",
                        state="OPEN",
                        created_at=NOW,
                    )
                )
        customer = await Factory(db.engine).customer(ids["globex"], "Globex Customer")
        async with db.engine.begin() as conn:
            await conn.execute(
                insert(CallRecord).values(
                    call_id="old-1",
                    partner_id=ids["globex"],
                    customer_id=customer,
                    user_id="alice",
                    started_at=NOW,
                    week_start=NOW,
                    duration_seconds=60,
                    direction="OUTBOUND",
                    endpoint_type="DESK_PHONE",
                    packet_loss_percent=0.1,
                    jitter_ms=5.0,
                    latency_ms=40.0,
                    features="",
                )
            )

        # when
        await migrate(db.engine)

        # then: existing cases keep their numbers; new ones continue per partner
        async with api_over(db) as api:
            listed = data_of(await post_graphql(api, CASES, {"first": 10}, as_=GLOBEX))
            assert [n["caseNumber"] for n in listed["helpdeskCases"]["nodes"]] == ["CS-000003"]
            assert (await open_case(api, GLOBEX))["caseNumber"] == "CS-000004"
            assert (await open_case(api, ACME))["caseNumber"] == "CS-000003"
            newcomer = await Factory(db.engine).partner("Initech", "initech.example")
            await Factory(db.engine).admin(newcomer, "full@initech.example", "FULL_ADMIN")
            first = await open_case(api, "full@initech.example")
            assert first["caseNumber"] == "CS-000001"
            # the stored call survived, and its id is now Globex's only
            assert await stored_calls(api) == [("old-1", ids["globex"])]
            acme_customer = await Factory(db.engine).customer(ids["acme"], "Acme Customer")
            again = await ingest(
                api, ACME, [gql_record("old-1", to_global_id("Customer", acme_customer))]
            )
            assert (again["inserted"], again["duplicates"]) == (1, 0)
        async with db.engine.connect() as conn:
            unnumbered = await conn.execute(
                select(func.count())
                .select_from(text("helpdesk_case"))
                .where(text("number IS NULL"))
            )
            assert unnumbered.scalar_one() == 0
    finally:
        await db.engine.dispose()
        if backend == "postgresql":
            await drop_pg_database(db.url.rsplit("/", 1)[1])


async def test_migration_0011_downgrades_and_upgrades_again(backend: str, tmp_path: Path) -> None:
    await _require_backend(backend)
    # given
    db = await _database_at(backend, tmp_path, "head")
    try:
        # when
        await _run_alembic(db, "downgrade", BEFORE)
        await _run_alembic(db, "upgrade", "head")

        # then: the schema is the models' again (tests/test_migrations.py compares the rest)
        async with db.engine.connect() as conn:
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in sa.inspect(c).get_indexes("call_record")}
            )
        assert "ux_call_record_partner_call" in indexes
    finally:
        await db.engine.dispose()
        if backend == "postgresql":
            await drop_pg_database(db.url.rsplit("/", 1)[1])


async def _run_alembic(db: Database, action: str, revision: str) -> None:
    def run(connection: object) -> None:
        config = alembic_config(str(db.engine.url.render_as_string(hide_password=False)))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)
