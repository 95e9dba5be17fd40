"""Connections kept between PostgreSQL queries (``db.query_lane``): one warm connection for
requests one after another, nothing of a request left on it for the next (its token check above
all), a failed or cancelled request's connection never kept, a connection the server closed
replaced, at most ``keep`` kept, all of them back in the pool when the hub stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text, update

import db.query_lane
from db.driver_query import RIDER
from db.models import ApiToken
from db.queries.admins import hash_token
from tests.conftest import NOW, Api, api_over, postgresql_only
from tests.databases import Database
from tests.helpers import Factory, data_of, post_graphql, token_for

FULL = "full@acme.example"
OTHER = "other@acme.example"
PAGE = "{ customers(first: 5) { nodes { id name statuses tags { name } } } }"
# Read through the ORM session (which begins its transaction on the kept connection).
ORM_READ = "{ auditLog(first: 5) { nodes { operation } } }"


def hub_of(api: Api) -> Any:
    return api.client._transport.app.state.hub  # type: ignore[attr-defined]


def kept(api: Api) -> list[Any]:
    """The lane's idle connections (the one given back last, last)."""
    return [connection for connection, _baseline, _since in hub_of(api).lane._idle]


def driver(connection: Any) -> Any:
    return connection.sync_connection.connection.dbapi_connection


@contextmanager
def connections_used(api: Api) -> Iterator[tuple[list[int], list[int], list[int]]]:
    """The driver connections statements ran on, those checked out of the pool, and those a
    transaction began on."""
    ran: list[int] = []
    taken: list[int] = []
    began: list[int] = []

    def on_statement(conn: Any, *_: Any) -> None:
        ran.append(id(conn.connection.dbapi_connection))

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        taken.append(id(dbapi_connection))

    def on_begin(conn: Any) -> None:
        began.append(id(conn.connection.dbapi_connection))

    sync = api.engine.sync_engine
    listeners = [
        ("before_cursor_execute", on_statement),
        ("checkout", on_checkout),
        ("begin", on_begin),
    ]
    for name, listener in listeners:
        event.listen(sync, name, listener)
    try:
        yield ran, taken, began
    finally:
        for name, listener in listeners:
            event.remove(sync, name, listener)


async def acme(api: Api) -> None:
    f = Factory(api.engine)
    partner = await f.partner("Acme")
    await f.admin(partner, FULL, "FULL_ADMIN")
    await f.admin(partner, OTHER, "FULL_ADMIN")
    for n in range(3):
        await f.customer(partner, f"Acme customer {n}")


async def revoke(api: Api, token: str) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(
            update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(revoked_at=NOW)
        )


async def warm(api: Api, token: str) -> None:
    """The page twice: its document is known as a query (``graph.documents.known_operation``)
    once it has run, and only a query known as such takes a kept connection."""
    for _ in range(2):
        assert len(data_of(await post_graphql(api, PAGE, token=token))["customers"]["nodes"]) == 3


async def warmed(api: Api) -> tuple[str, Any]:
    """Acme, FULL's token, and the connection the lane keeps once the page ran twice."""
    await acme(api)
    token = await token_for(api, FULL)
    await warm(api, token)
    (connection,) = kept(api)
    return token, connection


@asynccontextmanager
async def lane_api(db: Database, **overrides: Any) -> AsyncIterator[Api]:
    await db.empty()
    async with api_over(db, response_cache_seconds=0, **overrides) as api:
        await acme(api)
        yield api


@postgresql_only
async def test_queries_one_after_another_run_on_one_kept_connection(uncached_api: Api) -> None:
    api = uncached_api
    _token, first = await warmed(api)
    with connections_used(api) as (ran, taken, began):
        for _ in range(4):
            assert len(data_of(await post_graphql(api, PAGE, as_=FULL))["customers"]["nodes"]) == 3
    assert ran and set(ran) == {id(driver(first))}
    assert taken == [] and began == []  # no pool checkout, no transaction
    assert kept(api) == [first]


@postgresql_only
async def test_a_check_that_failed_stays_with_its_request(uncached_api: Api) -> None:
    """A provisional query whose token was revoked meanwhile: its check fails on the kept
    connection, and the rerun (a 401) and the next caller's query take that connection again.
    Left on it, the failed check would refuse every later statement there."""
    api = uncached_api
    await acme(api)
    token = await token_for(api, FULL)
    other = await token_for(api, OTHER)
    await warm(api, token)  # seen: its next query is provisional
    (connection,) = kept(api)
    await revoke(api, token)
    with connections_used(api) as (ran, _taken, _began):
        await post_graphql(api, PAGE, token=token, expect_status=401)
        body = await post_graphql(api, PAGE, token=other)
    assert len(data_of(body)["customers"]["nodes"]) == 3
    assert set(ran) == {id(driver(connection))}
    assert kept(api) == [connection]
    options = connection.sync_connection.get_execution_options()
    assert options.get(RIDER) is None and options["isolation_level"] == "AUTOCOMMIT"


@postgresql_only
async def test_a_transaction_the_orm_began_ends_with_its_request(uncached_api: Api) -> None:
    api = uncached_api
    await acme(api)
    await warm(api, await token_for(api, FULL))
    data_of(await post_graphql(api, ORM_READ, as_=FULL))  # a document known as a query
    (connection,) = kept(api)
    with connections_used(api) as (ran, _taken, began):
        data_of(await post_graphql(api, ORM_READ, as_=FULL))
    assert began == [id(driver(connection))]  # the ORM's session began on the kept connection
    assert set(ran) == {id(driver(connection))}
    assert kept(api) == [connection]
    assert not connection.sync_connection.in_transaction()


@postgresql_only
@pytest.mark.parametrize("ending", ["failed", "cancelled"])
async def test_a_connection_is_not_kept_after_a_request_that_did_not_end_well(
    uncached_api: Api, ending: str
) -> None:
    api = uncached_api
    lane = hub_of(api).lane
    checked_out = api.engine.pool.checkedout()
    entered = asyncio.Event()

    async def request() -> None:
        async with lane.connection() as connection:
            await connection.exec_driver_sql("SELECT 1")
            entered.set()
            if ending == "failed":
                raise RuntimeError("the request failed")
            await asyncio.sleep(60)

    task = asyncio.ensure_future(request())
    await entered.wait()
    if ending == "cancelled":
        task.cancel()
    with pytest.raises(RuntimeError if ending == "failed" else asyncio.CancelledError):
        await task
    assert kept(api) == []
    assert api.engine.pool.checkedout() == checked_out  # back in the pool, not leaked


@postgresql_only
async def test_a_connection_with_an_option_changed_is_not_kept(uncached_api: Api) -> None:
    api = uncached_api
    lane = hub_of(api).lane
    async with lane.connection() as connection:
        await connection.execution_options(partner_hub_anything="left over")
    assert kept(api) == []
    async with lane.connection() as connection:
        await connection.exec_driver_sql("SELECT 1")
    assert kept(api) == [connection]


@postgresql_only
@pytest.mark.parametrize("idle", [False, True])
async def test_a_connection_the_server_closed_is_replaced(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch, idle: bool
) -> None:
    """Terminated while kept: seen closed (the driver read the end of its socket), or, kept for
    longer than the idle limit, pinged before use; either way the next query runs on another."""
    api = uncached_api
    _token, connection = await warmed(api)
    pid = driver(connection)._connection.get_server_pid()
    async with api.engine.connect() as killer:
        await killer.execute(text(f"SELECT pg_terminate_backend({pid})"))
    if idle:
        monkeypatch.setattr(db.query_lane, "PING_IDLE_S", -1.0)
    else:
        for _ in range(100):  # until the driver has read the end of its socket
            if driver(connection)._connection.is_closed():
                break
            await asyncio.sleep(0.01)
    body = await post_graphql(api, PAGE, as_=FULL)
    assert len(data_of(body)["customers"]["nodes"]) == 3
    (replacement,) = kept(api)
    assert replacement is not connection
    assert driver(replacement)._connection.get_server_pid() != pid


@postgresql_only
async def test_at_most_keep_connections_are_kept_and_stop_gives_them_back(
    fresh_database: Database,
) -> None:
    async with lane_api(fresh_database, database_kept_connections=2) as api:
        token = await token_for(api, FULL)
        data_of(await post_graphql(api, PAGE, token=token))  # known from now on
        checked_out = api.engine.pool.checkedout() - len(kept(api))
        bodies = await asyncio.gather(*(post_graphql(api, PAGE, token=token) for _ in range(8)))
        assert all(len(data_of(b)["customers"]["nodes"]) == 3 for b in bodies)
        assert len(kept(api)) == 2
        assert api.engine.pool.checkedout() == checked_out + 2
        await hub_of(api).lane.close()  # as the hub's ``stop`` does
        assert api.engine.pool.checkedout() == checked_out
        data_of(await post_graphql(api, PAGE, token=token))  # closed: nothing kept any more
        assert kept(api) == [] and api.engine.pool.checkedout() == checked_out


@postgresql_only
async def test_none_kept_when_turned_off(fresh_database: Database) -> None:
    async with lane_api(fresh_database, database_kept_connections=0) as api:
        assert hub_of(api).lane is None
        with connections_used(api) as (ran, taken, _began):
            data_of(await post_graphql(api, PAGE, as_=FULL))
        assert taken and set(ran) <= set(taken)


@asynccontextmanager
async def small_pool(db: Database, keep: int) -> AsyncIterator[Api]:
    """The app over ``db`` on an engine of its own: 2 connections, no overflow, a checkout that
    waits more than 3 s fails."""
    from db.engine import create_engine
    from tests.conftest import StatementCounter, app_client, make_settings

    await db.empty()
    engine = create_engine(db.url, pool_size=2, max_overflow=0)
    engine.pool._timeout = 3.0  # type: ignore[attr-defined]
    small = Database(db.backend, db.url, engine)
    settings = make_settings(small, response_cache_seconds=0, database_kept_connections=keep)
    counter = StatementCounter(engine)
    try:
        async with app_client(settings, engine) as (_, client):
            api = Api(db=small, settings=settings, client=client, counter=counter)
            await acme(api)
            yield api
    finally:
        counter.close()
        await engine.dispose()


CREATE = 'mutation { createTag(input: {name: "%s"}) { tag { name } } }'


@postgresql_only
async def test_a_checkout_that_would_wait_takes_a_kept_connection_back(
    fresh_database: Database,
) -> None:
    """Both of the pool's connections kept idle by the lane: a mutation (which checks out of
    the pool) gets one at once instead of waiting out the pool's timeout."""
    async with small_pool(fresh_database, keep=2) as api:
        token = await token_for(api, FULL)
        await warm(api, token)
        lane = hub_of(api).lane
        async with lane.connection() as one, lane.connection() as two:  # the pool's two
            await one.exec_driver_sql("SELECT 1")
            await two.exec_driver_sql("SELECT 1")
        assert kept(api) == [two, one] and api.engine.pool.checkedout() == 2
        body = await asyncio.wait_for(post_graphql(api, CREATE % "t1", token=token), 2.5)
        assert data_of(body)["createTag"]["tag"]["name"] == "t1"
        assert kept(api) == [one]  # the least recently used went back to the pool


@postgresql_only
async def test_nobody_waits_behind_kept_connections_under_load(fresh_database: Database) -> None:
    """Queries and mutations at once, far more than the pool's two connections: every one is
    answered (none waits out the pool's 3 s), queries in order behind those who waited."""
    async with small_pool(fresh_database, keep=2) as api:
        token = await token_for(api, FULL)
        await warm(api, token)
        requests = [
            post_graphql(api, CREATE % f"t{n}", token=token)
            if n % 4 == 0
            else post_graphql(api, PAGE, token=token)
            for n in range(48)
        ]
        bodies = await asyncio.gather(*requests)
        assert all("errors" not in body for body in bodies), [b for b in bodies if "errors" in b]
        assert api.engine.pool.checkedout() == len(kept(api)) <= 2


@postgresql_only
async def test_queries_past_the_pools_size_wait_for_a_connection_handed_over(
    fresh_database: Database,
) -> None:
    """Twelve queries at once over a pool of two: the lane opens two at most, and each query
    that finishes hands its connection to the next that waits (no checkout, no check-in)."""
    async with small_pool(fresh_database, keep=2) as api:
        token = await token_for(api, FULL)
        await warm(api, token)
        with connections_used(api) as (ran, taken, _began):
            bodies = await asyncio.gather(
                *(post_graphql(api, PAGE, token=token) for _ in range(12))
            )
        assert all(len(data_of(b)["customers"]["nodes"]) == 3 for b in bodies)
        assert len(taken) <= 1 and len(set(ran)) <= 2  # the one kept, one more opened
        lane = hub_of(api).lane
        assert lane.opened == len(kept(api)) == api.engine.pool.checkedout() <= 2
        assert not lane._waiters


@postgresql_only
async def test_a_waiting_query_cancelled_leaves_nothing_behind(fresh_database: Database) -> None:
    """Queries waiting in the lane, cancelled while they wait (a client gone) or just as a
    connection was handed to them: every connection ends kept or closed, the count right."""
    async with small_pool(fresh_database, keep=2) as api:
        lane = hub_of(api).lane
        held = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with lane.connection() as connection:
                await connection.exec_driver_sql("SELECT 1")
                held.set()
                await release.wait()

        holders = [asyncio.ensure_future(hold()) for _ in range(2)]
        await held.wait()
        await asyncio.sleep(0.05)
        assert lane.opened == 2

        async def wait_for_one() -> None:
            async with lane.connection() as connection:
                await connection.exec_driver_sql("SELECT 1")

        waiting = [asyncio.ensure_future(wait_for_one()) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert len(lane._waiters) == 4
        waiting[0].cancel()  # gone while it waits
        release.set()  # both holders hand over: to waiters 1 and 2
        await asyncio.sleep(0)
        waiting[1].cancel()  # handed a connection just now, cancelled before it ran
        results = await asyncio.gather(*holders, *waiting, return_exceptions=True)
        assert [isinstance(r, asyncio.CancelledError) for r in results[2:]] == [
            True,
            True,
            False,
            False,
        ]
        await asyncio.sleep(0.05)  # (a connection closed in the background)
        assert not lane._waiters
        assert lane.opened == len(kept(api)) == api.engine.pool.checkedout() <= 2
        body = await post_graphql(api, PAGE, token=await token_for(api, FULL))
        assert len(data_of(body)["customers"]["nodes"]) == 3


@postgresql_only
@pytest.mark.parametrize(
    ("pool", "overflow", "setting", "keep"),
    [(None, None, None, 10), (4, 0, None, 4), (4, 6, 1, 1), (4, 6, 0, 0)],
)
def test_the_lane_keeps_the_pools_size_unless_told(
    fresh_database: Database, pool: int | None, overflow: int | None, setting: int | None, keep: int
) -> None:
    from db.settings import Settings
    from graph.hub import PartnerHub

    settings = Settings(
        database_url=fresh_database.url,
        database_pool_size=pool,
        database_pool_overflow=overflow,
        database_kept_connections=setting,
    )
    hub = PartnerHub(settings, fresh_database.engine)
    assert (hub.lane.keep if hub.lane is not None else 0) == keep


@postgresql_only
async def test_a_query_cancelled_while_its_kept_connection_is_pinged_loses_nothing(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle past the limit, the kept connection is pinged before use; the query is cancelled
    during the ping (a client gone): the connection is closed, not kept and not lost."""
    from sqlalchemy.util.concurrency import await_only

    api = uncached_api
    await acme(api)
    await warm(api, await token_for(api, FULL))
    lane = hub_of(api).lane
    (connection,) = kept(api)
    checked_out = api.engine.pool.checkedout() - 1
    pinging = asyncio.Event()

    def slow_ping(_sync: Any) -> None:
        pinging.set()
        await_only(asyncio.sleep(30))

    monkeypatch.setattr(db.query_lane, "PING_IDLE_S", -1.0)
    monkeypatch.setattr(db.query_lane, "ping", slow_ping)

    async def query() -> None:
        async with lane.connection():
            pass

    task = asyncio.ensure_future(query())
    await pinging.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*lane._closing)
    assert kept(api) == [] and lane.opened == 0
    assert connection.sync_connection.closed
    assert api.engine.pool.checkedout() == checked_out


@postgresql_only
async def test_no_lane_over_a_pool_that_cannot_take_connections_back(
    fresh_database: Database,
) -> None:
    """An engine made elsewhere (SQLAlchemy's own pool): nothing would give kept connections
    back to a checkout that waits, so none are kept."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from db.settings import Settings
    from graph.hub import PartnerHub

    engine = create_async_engine(fresh_database.url, pool_size=2, max_overflow=0)
    try:
        hub = PartnerHub(Settings(database_url=fresh_database.url), engine)
        assert hub.lane is None
    finally:
        await engine.dispose()
