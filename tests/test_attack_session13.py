"""Session 13's attack on the driver path (``db.driver_query``): the directory page, a walked
page, the page's relationships and the customer detail run on the request's driver connection
with SQLAlchemy's processors. Pinned here: the same answers as SQLAlchemy's path for every
order, filter and direction that reaches those statements (all four demo roles, an assigned
partner admin among them); a request cancelled while its driver statement is in flight (blocked
in PostgreSQL, queued in SQLite's thread, or inside an engine listener that awaits) leaves its
pooled connection usable and leaks no coroutine; a backend killed under a driver statement
answers a coded error and the next requests recover."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import bindparam, event, select, text
from sqlalchemy.util.concurrency import await_only

from db.driver_query import DriverQuery
from db.engine import create_engine, read_from_one_snapshot, session_factory
from db.models import ApiToken
from db.types import UTCDateTime
from graph.ids import to_global_id
from tests.conftest import Api, postgresql_only, sqlite_only
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for

FIELDS = """
  id name externalId createdAt managedBy lastAdminSignInAt statuses products
  tags { id name }
  subscriptions { id subscriptionId kind state startDate endDate autoRenew renewalDate
    tags { name } invoices { invoiceNumber } licenses { product purchased assigned }
    orders { orderNumber } }
  trials { subscriptionId endDate licenses { product } orders { orderNumber } }
  partnerAdmins { role admin { email name } }
"""
TYPES = {
    "filter": "CustomerFilter",
    "order": "CustomerOrder!",
    "first": "Int!",
    "after": "String",
    "last": "Int",
    "before": "String",
    "search": "String",
}


def page_document(names: list[str]) -> str:
    """The page with only the arguments named (``first`` has a default, ``last`` must not
    meet it)."""
    declared = ", ".join(f"${n}: {TYPES[n]}" for n in names)
    passed = ", ".join(f"{'orderBy' if n == 'order' else n}: ${n}" for n in names)
    return (
        f"query Page({declared}) {{ customers({passed}) {{ totalCount pageInfo {{ hasNextPage"
        " hasPreviousPage startCursor endCursor } edges { cursor node { " + FIELDS + " } } } }"
    )


ONE = "query One($id: ID!) { customer(id: $id) { " + FIELDS + " } }"

# Every shape of page that reaches the driven statements: plain pages in each order, backward,
# walked pages (one status other than ACTIVE, with other filters probed), searched pages.
CASES: list[dict[str, Any]] = [
    {"order": "NAME_ASC", "first": 40},
    {"order": "CREATED_AT_DESC", "first": 9, "filter": {"managedBy": "PARTNER_ORG"}},
    {"order": "END_DATE_ASC", "last": 11},
    {"order": "NAME_ASC", "last": 5, "filter": {"statuses": ["TRIAL"]}},
    {"order": "NAME_DESC", "first": 5, "filter": {"statuses": ["TRIAL"], "products": ["CALLING"]}},
    {"order": "NAME_ASC", "first": 4, "search": "a", "filter": {"subscriptionType": "PAID"}},
]


async def answers(api: Api, email: str, variables: dict[str, Any]) -> list[Any]:
    """Two pages (forward or backward along the cursors) and the detail of a page's first two
    customers, without the cost extension (the budget moves between calls)."""
    backward = bool(variables.get("last"))
    found: list[Any] = []
    cursor = None
    for _ in range(2):
        moved = {**variables, ("before" if backward else "after"): cursor}
        body = await post_graphql(api, page_document(list(moved)), moved, as_=email)
        body.pop("extensions", None)
        found.append(body)
        table = data_of(body)["customers"]
        for edge in table["edges"][:2]:
            one = await post_graphql(api, ONE, {"id": edge["node"]["id"]}, as_=email)
            one.pop("extensions", None)
            found.append(one)
        info = table["pageInfo"]
        if not (info["hasPreviousPage"] if backward else info["hasNextPage"]):
            break
        cursor = info["startCursor"] if backward else info["endCursor"]
    return found


@pytest.mark.parametrize("email", ["full@acme.example", "partner@acme.example"])
async def test_driven_reads_answer_what_sqlalchemys_path_answers(
    uncached_demo_api: Api, email: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the demo data (NULL sign-ins, every status, assigned partner admins)
    api = uncached_demo_api
    driven = [await answers(api, email, case) for case in CASES]

    # when: the same requests with every driver query left to SQLAlchemy
    monkeypatch.setattr(DriverQuery, "_compile", lambda _self, _dialect: None)
    plain = [await answers(api, email, case) for case in CASES]

    # then
    for case, a, b in zip(CASES, driven, plain, strict=True):
        assert a == b, case
    assert any(len(a) > 1 for a in driven), "some pages must have customers"


DIRECTORY = "query { customers(first: 5) { nodes { name subscriptions { subscriptionId } } } }"
DETAIL = "query($id: ID!) { customer(id: $id) { name subscriptions { subscriptionId } } }"


class Read:
    def __init__(self, api: Api, token: str, which: str, customer: int) -> None:
        self.api, self.token = api, token
        self.document, self.variables = (
            (DIRECTORY, {})
            if which == "page"
            else (DETAIL, {"id": to_global_id("Customer", customer)})
        )

    async def post(self) -> Any:
        return await self.api.client.post(
            "/graphql",
            json={"query": self.document, "variables": self.variables},
            headers={"Authorization": f"Bearer {self.token}"},
        )

    async def answer(self) -> Any:
        return await asyncio.wait_for(
            post_graphql(self.api, self.document, self.variables, token=self.token), 5
        )


@pytest.fixture(params=["page", "detail"])
async def read(uncached_api: Api, request: pytest.FixtureRequest) -> AsyncIterator[Read]:
    f = Factory(uncached_api.engine)
    partner = await f.partner()
    await f.admin(partner, "full@acme.example", "FULL_ADMIN", name="Fiona Full")
    customer = await f.customer(partner, "Alpha")
    await f.subscription(customer)
    token = await token_for(uncached_api, "full@acme.example")
    yield Read(uncached_api, token, request.param, customer)


async def blocked_pid(connection: Any) -> int:
    """The request's backend, waiting for the lock on ``customer``."""
    for _ in range(50):
        pids = (
            await connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
        ).scalars()
        found = list(pids)
        if found:
            assert len(found) == 1
            return int(found[0])
        await asyncio.sleep(0.02)
    raise AssertionError("the request's statement never waited for the lock")


@postgresql_only
@pytest.mark.parametrize("ending", ["cancelled", "terminated"])
async def test_a_driver_statement_ended_in_flight_leaves_the_pool_usable(
    read: Read, ending: str
) -> None:
    # given: a served read (one pooled connection), then the same read blocked in PostgreSQL
    # on its driven statement by a lock on the customers
    expected = data_of(await read.answer())
    locker = create_engine(read.api.db.url, pool=False)
    try:
        async with locker.connect() as connection:
            await connection.execute(text("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE"))
            task = asyncio.ensure_future(read.post())
            pid = await blocked_pid(connection)

            # when: the request is cancelled (a client gone), or its backend is killed
            if ending == "cancelled":
                task.cancel()
                await asyncio.wait([task])
            else:
                await connection.execute(text(f"SELECT pg_terminate_backend({pid})"))
                response = await asyncio.wait_for(task, 5)
            await connection.rollback()
    finally:
        await locker.dispose()

    # then: a killed backend answers a coded error, no traceback
    if ending == "terminated":
        body = response.json()
        assert response.status_code == 200
        assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
        assert "Traceback" not in response.text and "asyncpg" not in response.text
    # and the next reads (on the pool's connection, or its replacement) answer as before
    for _ in range(3):
        assert data_of(await read.answer()) == expected


async def cancelled_at_the_statement(
    read: Read, listener: Callable[..., None], sent: list[str]
) -> None:
    """``read``'s request, cancelled once ``listener`` (a ``before_cursor_execute`` listener
    that appends to ``sent`` when it stops the driven statement) has held it 0.2 s."""
    engine = read.api.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        task = asyncio.ensure_future(read.post())
        await asyncio.sleep(0.2)
        assert sent and not task.done()
        task.cancel()
        await asyncio.wait([task])
    finally:
        event.remove(engine, "before_cursor_execute", listener)


@sqlite_only
async def test_a_read_cancelled_while_its_statement_waits_in_sqlites_thread(
    read: Read,
) -> None:
    # given: the request's connection's thread kept busy when the driven statement is sent
    expected = data_of(await read.answer())
    sent: list[str] = []
    holds: list[Any] = []

    def busy_thread(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not sent and statement.lstrip().startswith("SELECT customer.id"):
            sent.append(statement)
            queue = connection.connection.dbapi_connection._connection
            holds.append(asyncio.ensure_future(queue._execute(time.sleep, 0.4)))

    # when
    await cancelled_at_the_statement(read, busy_thread, sent)
    await asyncio.gather(*holds)

    # then: the connection's lock is free and the next reads answer as before
    for _ in range(3):
        assert data_of(await read.answer()) == expected


async def test_a_read_cancelled_inside_an_awaiting_listener_leaks_no_coroutine(
    read: Read,
) -> None:
    # given: an engine listener that awaits (as test_read_snapshot's writer does) when the
    # driven statement is about to run
    expected = data_of(await read.answer())
    sent: list[str] = []

    def waiting(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not sent and statement.lstrip().startswith("SELECT customer.id"):
            sent.append(statement)
            await_only(asyncio.sleep(0.4))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # when: the request is cancelled while the listener waits
        await cancelled_at_the_statement(read, waiting, sent)

        # then: the next reads answer as before
        for _ in range(3):
            assert data_of(await read.answer()) == expected
        gc.collect()

    # and the driver's statement, never sent, was closed (no "never awaited" coroutine)
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == []


async def test_a_disposed_engines_compiled_forms_go_with_it(api: Api) -> None:
    # given: a driver query with processed parameters and columns (closures over the dialect),
    # compiled for the test's engine and for another engine, then disposed of
    created = ApiToken.__table__.c.created_at  # type: ignore[attr-defined]
    query = DriverQuery(select(created).where(created >= bindparam("since", type_=UTCDateTime())))
    other = create_engine(api.db.url)
    dialect = weakref.ref(other.sync_engine.dialect)
    assert query._compile(other.sync_engine.dialect) is not None
    assert query._compile(api.engine.dialect) is not None
    await other.dispose()

    # when
    del other
    gc.collect()

    # then: nothing holds the disposed engine's dialect (the query kept every dialect it was
    # compiled for: ~5 kB an engine a query, the SQL text included), and the test's engine's
    # form is still there
    assert dialect() is None
    assert query._compile(api.engine.dialect) is query._compile(api.engine.dialect)


@sqlite_only
async def test_a_first_statement_cancelled_while_it_waits_leaves_the_snapshot_asked(
    api: Api,
) -> None:
    # given: a request's session that reads from one snapshot, its connection busy (another
    # statement holds the adapter's lock) when its first statement comes
    query = DriverQuery(select(ApiToken.__table__.c.id))  # type: ignore[attr-defined]
    async with session_factory(api.engine)() as session:
        read_from_one_snapshot(session)
        connection = await session.connection()
        assert connection.sync_connection is not None
        adapter = connection.sync_connection.connection.dbapi_connection
        lock = adapter._execute_mutex
        await lock.acquire()
        try:
            waiting = asyncio.ensure_future(query.all(connection, {}))
            await asyncio.sleep(0.05)
            assert not waiting.done()

            # when: it is cancelled before it had the connection
            waiting.cancel()
            await asyncio.wait([waiting])
        finally:
            lock.release()
        await query.all(connection, {})

        # then: the next statement opened the snapshot (a cancelled statement took it away)
        raw = adapter._connection
        assert await raw._execute(lambda: raw._conn.in_transaction)
