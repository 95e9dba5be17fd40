"""The database's contention refusals are coded DATABASE_BUSY, write nothing and log one line.

A deployment may set ``lock_timeout`` or ``statement_timeout`` (on its role or database), and
SQLite gives up after its busy timeout: a mutation then meets a lock held too long by another
transaction. That used to reach the client as an uncoded INTERNAL_SERVER_ERROR with a traceback
in the log; it is the database's contention, not a fault of the server or of the request, so it
is coded ``DATABASE_BUSY`` (``extensions.retryable``), the mutation's transaction is rolled back,
and the log has one warning line without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

from db.engine import create_engine
from graph.errors import CONTENTION_STATES, contention
from graph.ids import to_global_id
from tests.conftest import Api, api_over
from tests.databases import Database
from tests.helpers import Factory, post_graphql

FULL = "full@acme.example"
ATTACH = "mutation M($input: CustomerTagsInput!) { addTagsToCustomers(input: $input) { changed } }"
WAIT_MS = 300


@asynccontextmanager
async def impatient_api(
    db: Database, setting: str = "lock_timeout", **overrides: Any
) -> AsyncIterator[Api]:
    """The app over ``db`` (settings ``overrides``) with an engine of its own whose connections
    give up after ``WAIT_MS``: on PostgreSQL the ``setting`` (``lock_timeout``, as a
    deployment may set it, or ``statement_timeout``), on SQLite its busy timeout."""
    engine = create_engine(db.url)

    def impatient(dbapi_connection: Any, _record: Any) -> None:
        if db.backend == "postgresql":
            dbapi_connection.run_async(lambda conn: conn.execute(f"SET {setting} = '{WAIT_MS}ms'"))
        else:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={WAIT_MS}")
            cursor.close()

    event.listen(engine.sync_engine, "connect", impatient)
    try:
        own = Database(backend=db.backend, url=db.url, engine=engine)
        async with api_over(own, **overrides) as api:
            yield api
    finally:
        await engine.dispose()


@asynccontextmanager
async def holding_writes(db: Database, customer: int) -> AsyncIterator[None]:
    """Another transaction holds what a write to ``customer``'s tags needs: on PostgreSQL the
    customer's row FOR UPDATE (a new link's foreign key check takes KEY SHARE on it), on SQLite
    the database's write lock."""
    async with db.engine.connect() as conn:
        if db.backend == "postgresql":
            await conn.execute(
                text("SELECT id FROM customer WHERE id = :c FOR UPDATE"), {"c": customer}
            )
        else:
            await conn.execute(
                text("UPDATE customer SET name = name WHERE id = :c"), {"c": customer}
            )
        try:
            yield
        finally:
            await conn.rollback()


async def test_a_mutation_waiting_past_the_lock_timeout_is_database_busy(
    fresh_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await fresh_database.empty()
    f = Factory(fresh_database.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    customer = await f.customer(partner, "Busy Customer")
    async with fresh_database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tag (partner_id, name, name_key, created_at) "
                "VALUES (:p, 'Gold', 'gold', CURRENT_TIMESTAMP)"
            ),
            {"p": partner},
        )
        tag = (
            await conn.execute(text("SELECT id FROM tag WHERE partner_id = :p"), {"p": partner})
        ).scalar_one()
    variables = {
        "input": {
            "customerIds": [to_global_id("Customer", customer)],
            "tagIds": [to_global_id("Tag", tag)],
        }
    }
    async with impatient_api(fresh_database) as api:
        await post_graphql(api, "{ viewer { id } }", as_=FULL)  # the token, before the lock
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="partner_hub.errors"):
            async with holding_writes(fresh_database, customer):
                body = await post_graphql(api, ATTACH, variables, as_=FULL)
        assert body.get("data") in (None, {"addTagsToCustomers": None}), body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "DATABASE_BUSY", error
        assert error["extensions"]["retryable"] is True
        assert "Internal server error" not in error["message"]
        busy = [r for r in caplog.records if "database busy" in r.getMessage()]
        assert len(busy) == 1 and busy[0].exc_info is None, caplog.records
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        async with fresh_database.engine.connect() as conn:
            linked = await conn.scalar(
                text("SELECT count(*) FROM customer_tag WHERE customer_id = :c"), {"c": customer}
            )
        assert linked == 0  # nothing written
        # Once the lock is free the same request succeeds.
        body = await post_graphql(api, ATTACH, variables, as_=FULL)
        assert body["data"]["addTagsToCustomers"]["changed"] == 1, body


class _Driver(Exception):
    def __init__(self, sqlstate: str | None = None, sqlite: str | None = None) -> None:
        super().__init__("driver")
        self.sqlstate = sqlstate
        self.sqlite_errorname = sqlite


class _Wrapped(Exception):
    def __init__(self, orig: Exception) -> None:
        super().__init__("wrapped")
        self.orig = orig


@pytest.mark.parametrize("state", sorted(CONTENTION_STATES))
def test_contention_states_are_recognised_through_causes(state: str) -> None:
    wrapped = _Wrapped(_Driver(state))
    assert contention(wrapped)
    outer = RuntimeError("outer")
    outer.__cause__ = wrapped
    assert contention(outer)


@pytest.mark.parametrize(
    "driver",
    [_Driver("23505"), _Driver("42P01"), _Driver(None), _Driver(sqlite="SQLITE_CONSTRAINT")],
)
def test_other_database_errors_stay_unexpected(driver: _Driver) -> None:
    assert not contention(_Wrapped(driver))
    assert not contention(ValueError("x"))
    assert contention(_Wrapped(_Driver(sqlite="SQLITE_BUSY")))


def test_a_cycle_of_causes_ends() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert not contention(a)
