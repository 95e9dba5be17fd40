"""Session 20's attack on the connections kept between PostgreSQL queries (``db.query_lane``,
``db.engine.LanePool``): nothing of one request reaches the next on the same connection (its
caller, its token check, its transaction or session state); a request that did not end well,
a connection lost under the lane (a restart, a silent failover) or a client gone while the lane
pings fails no other request and leaks no connection; concurrent queries and mutations on a
small pool all answer; the hub's stop leaves nothing checked out; mutations and unknown
documents never run on a kept connection."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text, update

import db.engine
import db.query_lane
from db.driver_query import RIDER
from db.engine import create_engine
from db.models import Admin
from tests.conftest import Api, StatementCounter, app_client, make_settings, postgresql_only
from tests.databases import Database
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_attack_session7 import EVERY_READ
from tests.test_attack_session13 import blocked_pid
from tests.test_query_lane import (
    CREATE,
    FULL,
    OTHER,
    PAGE,
    acme,
    connections_used,
    driver,
    hub_of,
    kept,
    revoke,
    small_pool,
    warm,
    warmed,
)

BETA = "admin@beta.example"
AUDIT = "{ auditLog(first: 5) { nodes { operation } } }"


def kept_now(api: Api) -> list[Any]:
    return kept(api) if hub_of(api).lane is not None else []


async def on(connection: Any, api: Api, request: Any) -> Any:
    """``request`` (awaited), checked to have run every statement on ``connection``."""
    with connections_used(api) as (ran, _taken, _began):
        outcome = await request
    assert ran and set(ran) == {id(driver(connection))}, "not on the kept connection"
    return outcome


def pid_of(connection: Any) -> int:
    return int(driver(connection)._connection.get_server_pid())


async def names(api: Api, token: str) -> list[str]:
    body = await post_graphql(api, PAGE, token=token)
    return sorted(node["name"] for node in data_of(body)["customers"]["nodes"])


async def with_beta(api: Api) -> None:
    f = Factory(api.engine)
    beta = await f.partner("Beta", "beta.example")
    await f.admin(beta, BETA, "FULL_ADMIN")
    for n in range(2):
        await f.customer(beta, f"Beta customer {n}")


ACME = [f"Acme customer {n}" for n in range(3)]
BETAS = [f"Beta customer {n}" for n in range(2)]


@postgresql_only
async def test_two_partners_alternating_on_one_kept_connection_see_only_their_own(
    uncached_api: Api,
) -> None:
    # given: two partners' tokens, both seen (their queries run provisionally)
    api = uncached_api
    await acme(api)
    await with_beta(api)
    acme_token, beta_token = await token_for(api, FULL), await token_for(api, BETA)
    for _ in range(2):
        assert await names(api, acme_token) == ACME
        assert await names(api, beta_token) == BETAS
    (connection,) = kept(api)
    # when: they alternate, request after request
    with connections_used(api) as (ran, _taken, _began):
        for _ in range(3):
            assert await names(api, acme_token) == ACME
            assert await names(api, beta_token) == BETAS
    # then: all of it on the one kept connection, left as it came out
    assert set(ran) == {id(driver(connection))}
    assert kept(api) == [connection]
    assert connection.sync_connection.get_execution_options().get(RIDER) is None


async def set_role(api: Api, email: str, role: str) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.email == email).values(role=role))


@postgresql_only
@pytest.mark.parametrize("previous", ["verified", "changed", "refused"])
@pytest.mark.parametrize("change", ["revoke", "deactivate", "role"])
async def test_a_change_between_requests_is_honoured_by_the_next_on_the_same_connection(
    uncached_api: Api, previous: str, change: str
) -> None:
    """Whatever the previous request's provisional check ended as on the kept connection
    (verified, changed and rerun, refused with a 401), the next request there, of a token
    changed in between, runs as the token is now."""
    api = uncached_api
    await acme(api)
    token, other = await token_for(api, FULL), await token_for(api, OTHER)
    await warm(api, token)
    await warm(api, other)
    (connection,) = kept(api)
    # given: the other admin's request on the connection, its check ending as ``previous``
    if previous == "verified":
        assert await on(connection, api, names(api, other)) == ACME
    elif previous == "changed":  # its principal changed: the run is thrown away, rerun
        await set_role(api, OTHER, "SALES_ADMIN")
        assert await on(connection, api, names(api, other)) == []
    else:
        await revoke(api, other)
        await on(connection, api, post_graphql(api, PAGE, token=other, expect_status=401))
    # when: the token changes, then queries
    if change == "revoke":
        await revoke(api, token)
    elif change == "deactivate":
        async with api.engine.begin() as conn:
            await conn.execute(update(Admin).where(Admin.email == FULL).values(active=False))
    else:
        await set_role(api, FULL, "SALES_ADMIN")  # reads only its assigned customers
    # then
    if change == "role":
        assert await on(connection, api, names(api, token)) == []
    else:
        body = await on(connection, api, post_graphql(api, PAGE, token=token, expect_status=401))
        assert error_codes(body) == ["UNAUTHENTICATED"] and "data" not in body
    assert kept(api) == [connection]


@postgresql_only
@pytest.mark.parametrize("ending", ["cancelled", "terminated", "statement_cancelled"])
@pytest.mark.parametrize("document", [PAGE, AUDIT])
async def test_a_request_ended_in_flight_leaves_no_broken_connection_kept(
    uncached_api: Api, ending: str, document: str
) -> None:
    """Its statement blocked on a lock, the request is cancelled (a client gone), its backend
    terminated, or its statement cancelled by the server: the next requests all answer, and
    nothing is kept that is not as it came out of the pool."""
    api = uncached_api
    await acme(api)
    token = await token_for(api, FULL)
    await warm(api, token)
    for _ in range(2):  # the document known as a query: it runs on the kept connection
        data_of(await post_graphql(api, document, token=token))
    assert len(kept(api)) == 1
    locker = create_engine(api.db.url, pool=False)
    try:
        async with locker.connect() as conn:
            await conn.execute(text("LOCK TABLE customer, audit_log IN ACCESS EXCLUSIVE MODE"))
            task = asyncio.ensure_future(
                api.client.post(
                    "/graphql",
                    json={"query": document},
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            pid = await blocked_pid(conn)
            if ending == "cancelled":
                task.cancel()
                await asyncio.wait([task])
            elif ending == "terminated":
                await conn.execute(text(f"SELECT pg_terminate_backend({pid})"))
                response = await asyncio.wait_for(task, 5)
                assert response.status_code == 200
                assert "INTERNAL_SERVER_ERROR" in str(response.json()["errors"])
            else:
                await conn.execute(text(f"SELECT pg_cancel_backend({pid})"))
            await conn.rollback()
            if ending == "statement_cancelled":
                response = await asyncio.wait_for(task, 5)
                assert response.status_code == 200  # answered (data or a coded error)
    finally:
        await locker.dispose()
    assert pid not in [pid_of(c) for c in kept(api)] or ending == "statement_cancelled"
    for _ in range(3):
        data_of(await asyncio.wait_for(post_graphql(api, document, token=token), 5))
    (connection,) = kept(api)
    sync = connection.sync_connection
    assert not sync.in_transaction() and not sync.invalidated
    assert sync.get_execution_options() == {"isolation_level": "AUTOCOMMIT", RIDER: None}
    assert api.engine.pool.checkedout() == 1  # the kept one; nothing leaked


DOCUMENTS = [
    (EVERY_READ, {"n": 5}),
    ("{ auditLog(first: 5) { nodes { operation } } tags { name } policyRules { role } }", {}),
    ('{ node(id: "Q3VzdG9tZXI6MQ==") { id } customer(id: "Q3VzdG9tZXI6MQ==") { name } }', {}),
    ('{ customer(id: "not an id") { id } }', {}),  # a coded error
    ("{ customers(first: -1) { totalCount } }", {}),  # refused in the resolver
    ("{ viewer { email partner { name } } admins(first: 2) { nodes { email } } }", {}),
]


async def wire_state(api: Api) -> list[tuple[Any, ...]]:
    """Each kept connection as PostgreSQL sees it: its state, transaction ids, locks, settings
    of its session, temporary tables."""
    found = []
    for connection in kept(api):
        raw = driver(connection)._connection
        pid = raw.get_server_pid()
        async with api.engine.connect() as conn:
            activity = (
                await conn.execute(
                    text(
                        "SELECT state, backend_xid IS NULL, backend_xmin IS NULL,"
                        " (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid)"
                        " FROM pg_stat_activity a WHERE pid = :pid"
                    ),
                    {"pid": pid},
                )
            ).one()
        settings = await raw.fetch("SELECT name FROM pg_settings WHERE source = 'session'")
        temporary = await raw.fetchval("SELECT count(*) FROM pg_class WHERE relpersistence = 't'")
        found.append((*activity, [r[0] for r in settings], temporary))
    return found


@postgresql_only
async def test_every_kind_of_query_leaves_its_kept_connection_as_it_came(
    uncached_api: Api,
) -> None:
    api = uncached_api
    token, connection = await warmed(api)
    for document, variables in DOCUMENTS:
        for _ in range(3):  # unknown, then known as a query (a kept connection), provisional
            body = await post_graphql(api, document, variables, token=token)
        assert "data" in body, (document, body)
        assert kept(api) == [connection], document
        sync = connection.sync_connection
        assert not sync.in_transaction(), document
        assert sync.get_execution_options() == {"isolation_level": "AUTOCOMMIT", RIDER: None}
        # idle (not "idle in transaction"), no transaction, no lock, no SET, no temp table
        assert await wire_state(api) == [("idle", True, True, 0, [], 0)], document


class SilentProxy:
    """A TCP proxy to PostgreSQL whose ``cut`` drops every connection it carries silently (a
    failover, a middlebox that forgot them): the server's side ends, the client hears
    nothing until it next sends, which is answered with a reset."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.dead: list[tuple[Any, Any]] = []
        self.tasks: set[asyncio.Future[Any]] = set()

    async def start(self, port: int) -> int:
        self.port = port
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, client_r: Any, client_w: Any) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        pair = (client_w, server_w)
        self.pairs.append(pair)

        async def pump(reader: Any, writer: Any, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if pair in self.dead:
                        if from_client:
                            raw = client_w.get_extra_info("socket")
                            raw.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                            )
                            client_w.transport.abort()
                        return
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                if pair not in self.dead:
                    writer.close()

        for pumping in (pump(client_r, server_w, True), pump(server_r, client_w, False)):
            self.tasks.add(asyncio.ensure_future(pumping))

    def cut(self) -> None:
        self.dead = list(self.pairs)
        for _client_w, server_w in self.dead:
            server_w.close()

    async def close(self) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client_w, _server_w in self.pairs:
            client_w.transport.abort()


@asynccontextmanager
async def through_proxy(db: Database, **overrides: Any) -> AsyncIterator[tuple[Api, SilentProxy]]:
    """The app over ``db`` on an engine of its own connecting through a ``SilentProxy``."""
    await db.empty()
    proxy = SilentProxy()
    port = await proxy.start(int(db.url.rsplit(":", 1)[1].split("/", 1)[0]))
    host, _, rest = db.url.rpartition(":")
    url = f"{host}:{port}/{rest.split('/', 1)[1]}"
    pool = {k: overrides.pop(k) for k in ("pool_size", "max_overflow") if k in overrides}
    engine = create_engine(url, **pool)
    proxied = Database(db.backend, url, engine)
    settings = make_settings(proxied, response_cache_seconds=0, **overrides)
    counter = StatementCounter(engine)
    try:
        async with app_client(settings, engine) as (_, client):
            api = Api(db=proxied, settings=settings, client=client, counter=counter)
            await acme(api)
            yield api, proxy
    finally:
        counter.close()
        await engine.dispose()
        await proxy.close()


@postgresql_only
@pytest.mark.parametrize("keep", [0, None])
async def test_connections_lost_silently_fail_one_request_as_with_the_pool(
    fresh_database: Database, keep: int | None
) -> None:
    """Every connection lost without a word (a failover): the pool hands the dead one's
    replacement to the next request, so one request fails. The lane handed out its other
    kept ones, each failing one more request (five of six here); it now pings them first."""
    async with through_proxy(fresh_database, database_kept_connections=keep) as (api, proxy):
        token = await token_for(api, FULL)
        await warm(api, token)
        await asyncio.gather(*(post_graphql(api, PAGE, token=token) for _ in range(6)))
        assert len(kept_now(api)) >= (0 if keep == 0 else 3)
        proxy.cut()
        await asyncio.sleep(0.05)
        failed = []
        for _ in range(8):
            body = await post_graphql(api, PAGE, token=token)
            failed.append(bool(body.get("errors")))
        assert failed[1:] == [False] * 7, failed
        assert all(not c.sync_connection.invalidated for c in kept_now(api))


@postgresql_only
@pytest.mark.parametrize("keep", [0, 1])
async def test_a_kept_connection_handed_to_a_mutation_is_pinged_as_long_idle(
    fresh_database: Database, keep: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool of one: the query's connection kept (or pooled) idle for longer than the ping
    limit, then lost silently. A mutation's checkout takes it back from the lane: the pool
    must see it as idle for that long and ping it (it marked it as returned just now, so a
    mutation ran on a dead connection: an error the pool alone never gave)."""
    overrides = {"pool_size": 1, "max_overflow": 0, "database_kept_connections": keep}
    async with through_proxy(fresh_database, **overrides) as (api, proxy):
        token = await token_for(api, FULL)
        await warm(api, token)
        assert len(kept_now(api)) == keep
        monkeypatch.setattr(db.engine, "PING_IDLE_S", 0.05)
        await asyncio.sleep(0.1)
        proxy.cut()
        await asyncio.sleep(0.05)
        body = await asyncio.wait_for(post_graphql(api, CREATE % "after", token=token), 5)
        assert data_of(body)["createTag"]["tag"]["name"] == "after"


@postgresql_only
async def test_a_restart_while_connections_are_kept_fails_no_request(
    uncached_api: Api,
) -> None:
    """Every backend of the app's database terminated (as a restart does) while the lane keeps
    connections: the next requests all answer, on new connections."""
    api = uncached_api
    await acme(api)
    token = await token_for(api, FULL)
    await warm(api, token)
    await asyncio.gather(*(post_graphql(api, PAGE, token=token) for _ in range(4)))
    before = {pid_of(c) for c in kept(api)}
    assert len(before) > 1
    killer = create_engine(api.db.url, pool=False)
    try:
        async with killer.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await killer.dispose()
    for _ in range(4):
        assert await names(api, token) == ACME
    bodies = await asyncio.gather(*(post_graphql(api, PAGE, token=token) for _ in range(4)))
    assert all(not b.get("errors") for b in bodies), bodies
    assert before.isdisjoint({pid_of(c) for c in kept(api)})


@postgresql_only
async def test_queries_and_mutations_of_two_partners_at_once_on_a_small_pool(
    fresh_database: Database,
) -> None:
    """Two connections, no overflow, a 3 s pool timeout: queries of two partners (provisional)
    and mutations of both, at once. Every one answers well within the timeout, each page is
    its partner's, each tag is created exactly once."""
    async with small_pool(fresh_database, keep=2) as api:
        await with_beta(api)
        acme_token, beta_token = await token_for(api, FULL), await token_for(api, BETA)
        for _ in range(2):
            assert await names(api, acme_token) == ACME
            assert await names(api, beta_token) == BETAS
        requests: list[tuple[str, Any]] = []
        for n in range(40):
            token = acme_token if n % 2 else beta_token
            if n % 5 == 0:
                requests.append(("tag", post_graphql(api, CREATE % f"t{n}", token=token)))
            else:
                requests.append((token, post_graphql(api, PAGE, token=token)))
        bodies = await asyncio.wait_for(asyncio.gather(*(r for _, r in requests)), 2.5)
        for (kind, _), body in zip(requests, bodies, strict=True):
            assert not body.get("errors"), body
            if kind != "tag":
                found = sorted(n["name"] for n in body["data"]["customers"]["nodes"])
                assert found == (ACME if kind == acme_token else BETAS)
        tags: list[str] = []
        for token in (acme_token, beta_token):
            tags += [
                t["name"]
                for t in data_of(await post_graphql(api, "{ tags { name } }", token=token))["tags"]
            ]
        assert sorted(tags) == sorted(f"t{n}" for n in range(0, 40, 5))
        assert api.engine.pool.checkedout() == len(kept(api)) <= 2


@postgresql_only
async def test_the_lane_closed_with_requests_in_flight_leaves_nothing_checked_out(
    uncached_api: Api,
) -> None:
    api = uncached_api
    await acme(api)
    token = await token_for(api, FULL)
    await warm(api, token)
    lane = hub_of(api).lane
    others = api.engine.pool.checkedout() - len(kept(api))  # (none, unless a test leaked one)
    in_flight = [asyncio.ensure_future(names(api, token)) for _ in range(6)]
    await asyncio.sleep(0)
    await lane.close()  # as the hub's ``stop`` does
    assert all(found == ACME for found in await asyncio.gather(*in_flight))
    assert kept(api) == [] and api.engine.pool.checkedout() == others
    assert await names(api, token) == ACME  # served, on a connection given back after
    assert kept(api) == [] and api.engine.pool.checkedout() == others


MIXED = (
    "query Read { customers(first: 5) { nodes { name } } } "
    'mutation Write { createTag(input: {name: "mixed"}) { tag { name } } }'
)


@postgresql_only
async def test_mutations_and_unknown_documents_never_run_on_a_kept_connection(
    uncached_api: Api,
) -> None:
    api = uncached_api
    token, connection = await warmed(api)
    ours = id(driver(connection))
    cases = [
        ("{ customers(first: 1) { totalCount } }", None),  # first seen: not known as a query
        (CREATE % "one", None),
        (MIXED, "Read"),  # the document seen once: known from now on
        (MIXED, "Write"),  # known, naming its mutation
    ]
    for document, name in cases:
        with connections_used(api) as (ran, taken, _began):
            payload = {"query": document, "operationName": name}
            response = await api.client.post(
                "/graphql", json=payload, headers={"Authorization": f"Bearer {token}"}
            )
            assert not response.json().get("errors"), response.text
        assert ran and ours not in ran, document
        assert taken, document  # a checkout of the pool's own
        assert kept(api) == [connection]
    with connections_used(api) as (ran, taken, _began):  # the known query does run there
        data_of(await post_graphql(api, MIXED.split(" mutation")[0], token=token))
        data_of(await post_graphql(api, MIXED.split(" mutation")[0], token=token))
    assert ran[-1] == ours
    tags = data_of(await post_graphql(api, "{ tags { name } }", token=token))["tags"]
    assert sorted(t["name"] for t in tags) == ["mixed", "one"]
