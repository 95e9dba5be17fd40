"""Every committed write moves the data version, whoever makes it; reads and rollbacks do not.

The response cache is only correct if this holds, so it is checked at the engine, for the ways
data is written: ORM sessions, Core statements on a connection, bulk ``executemany`` and
PostgreSQL ``COPY`` (which SQLAlchemy does not see and which calls ``mark_written``).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select, text, update

from db.engine import session_factory
from db.models import AppMeta, Partner, Tag
from db.queries.admins import authenticate_token, issue_token
from db.versioning import DATA_VERSION_KEY, caller_data_version, is_write, mark_written
from tests.conftest import NOW, Api
from tests.helpers import Factory


async def version(api: Api) -> int:
    async with api.engine.connect() as conn:
        value = await conn.scalar(select(AppMeta.value).where(AppMeta.key == DATA_VERSION_KEY))
    return int(value or 0)


@pytest.mark.parametrize(
    ("statement", "writes"),
    [
        ("SELECT 1", False),
        ("  select * from customer", False),
        ("PRAGMA foreign_keys=ON", False),
        ("SAVEPOINT sa_1", False),
        ("INSERT INTO tag VALUES (1)", True),
        ("update customer set name = 'x'", True),
        ("DELETE FROM tag", True),
        ("WITH x AS (SELECT 1) UPDATE tag SET name = 'y'", True),
        ("TRUNCATE stage", True),
    ],
)
def test_statements_that_may_write_are_told_apart(statement: str, writes: bool) -> None:
    assert is_write(statement) is writes


async def test_writes_move_the_version_and_reads_do_not(api: Api) -> None:
    f = Factory(api.engine)
    partner = await f.partner()
    start = await version(api)
    assert start > 0  # the factory's own inserts were writes too

    async with api.engine.begin() as conn:  # a read-only transaction
        await conn.execute(select(Partner.id))
    assert await version(api) == start

    async with session_factory(api.engine)() as session:  # an ORM write
        session.add(Tag(partner_id=partner, name="a", name_key="a", created_at=NOW))
        await session.commit()
    after_orm = await version(api)
    assert after_orm == start + 1

    async with api.engine.begin() as conn:  # Core statements, several in one transaction
        await conn.execute(
            insert(Tag),
            [
                {"partner_id": partner, "name": n, "name_key": n, "created_at": NOW}
                for n in ("b", "c")
            ],
        )
        await conn.execute(update(Tag).where(Tag.name == "b").values(name="bb"))
    assert await version(api) == after_orm + 1  # one bump per transaction

    async with api.engine.connect() as conn:  # a rolled-back write
        await conn.execute(update(Tag).values(name="zz"))
        await conn.rollback()
    assert await version(api) == after_orm + 1


async def test_the_version_rides_with_token_authentication(api: Api) -> None:
    f = Factory(api.engine)
    admin = await f.admin(await f.partner(), "full@acme.example", "FULL_ADMIN")
    async with session_factory(api.engine)() as session:
        token = await issue_token(session, admin_id=admin, now=NOW)
        await session.commit()
    async with session_factory(api.engine)() as session:
        principal = await authenticate_token(session, token=token)
    assert principal is not None
    assert principal.data_version == caller_data_version(principal) == f"{await version(api)}.0"


async def test_a_write_the_engine_cannot_see_is_marked_by_hand(api: Api) -> None:
    f = Factory(api.engine)
    partner = await f.partner()
    start = await version(api)
    async with api.engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        if api.db.backend == "postgresql":
            await conn.execute(text("SELECT 1"))  # the adapter opens the transaction
            await raw.copy_records_to_table(
                "tag",
                records=[(partner, "copied", "copied", NOW)],
                columns=["partner_id", "name", "name_key", "created_at"],
            )
        else:
            await conn.execute(select(Partner.id))
        mark_written(conn)
        await conn.commit()
    assert await version(api) == start + 1
