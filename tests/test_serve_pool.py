"""A process's database pool (db/engine.py POOL_SIZES): SQLite keeps 4 connections and no
overflow (issue 17: 15 threads and 64 MB caches each made 32 connections slower than 8 and
the server's RSS reach 2 GB), so no request may need a second connection while it holds one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

import db.engine as engine_module
from db.engine import POOL_SIZES, create_engine
from tests.authz_support import AuthzFactory, mutation_document
from tests.conftest import Api, api_over, postgresql_only
from tests.helpers import data_of, post_graphql, token_for

FULL = "full@acme.example"
ADD_RULE = mutation_document("addPolicyRule", "PolicyRuleChangeInput", "rule { role }")
TAG_WRITE = {"input": {"role": "READ_ONLY_ADMIN", "object": "tag", "action": "write"}}
VIEWER = "query { viewer { email } }"


async def test_many_requests_after_a_policy_change_never_wait_on_the_pool(
    api: Api, backend: str
) -> None:
    # given: two instances over one pool; the other instance has served (its policies loaded)
    f = AuthzFactory(api.engine)
    await f.admin(await f.partner(), FULL, "FULL_ADMIN")
    token = await token_for(api, FULL)
    async with api_over(api.db) as two:
        two.tokens = api.tokens
        await post_graphql(two, VIEWER, token=token)
        # when: a policy change through the first, then more requests than the pool holds at
        # once through the second (each reloads the policies)
        added = await post_graphql(api, ADD_RULE, TAG_WRITE, as_=FULL)
        assert data_of(added)["addPolicyRule"]["userErrors"] == []
        many = 3 * sum(POOL_SIZES[backend])
        bodies = await asyncio.wait_for(
            asyncio.gather(*(post_graphql(two, VIEWER, token=token) for _ in range(many))), 20
        )

        # then: every one served
        assert {data_of(b)["viewer"]["email"] for b in bodies} == {FULL}


@postgresql_only
async def test_a_connection_postgresql_closed_is_replaced_before_a_request_uses_it(
    api: Api, backend: str
) -> None:
    # given: a pooled connection that served, then was ended by the server (as by a restart)
    f = AuthzFactory(api.engine)
    await f.admin(await f.partner(), FULL, "FULL_ADMIN")
    token = await token_for(api, FULL)
    await post_graphql(api, VIEWER, token=token)
    async with api.engine.connect() as connection:
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
    killer = create_engine(api.db.url, pool=False)
    async with killer.connect() as connection:
        assert await connection.scalar(text(f"SELECT pg_terminate_backend({pid})"))
    await killer.dispose()
    await asyncio.sleep(0.2)  # the event loop reads the end of the closed socket

    # when: the next requests check out a connection
    bodies = [await post_graphql(api, VIEWER, token=token) for _ in range(3)]

    # then: none fails; no pooled connection is that one any more
    assert [data_of(b)["viewer"]["email"] for b in bodies] == [FULL] * 3
    async with api.engine.connect() as connection:
        assert await connection.scalar(text("SELECT pg_backend_pid()")) != pid


@postgresql_only
async def test_only_a_connection_idle_for_a_while_is_pinged_on_checkout(
    api: Api, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[int] = []
    adapted = type(await _dbapi_connection(api))
    real_ping = adapted.ping
    monkeypatch.setattr(adapted, "ping", lambda self: (pings.append(1), real_ping(self))[1])
    # when: connections are checked out straight after being returned
    for _ in range(5):
        async with api.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    # then: no ping (pool_pre_ping sent three round trips each time)
    assert pings == []
    # when: a connection has been idle for longer than PING_IDLE_S
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)
    await asyncio.sleep(0.01)
    async with api.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    # then: it was pinged first
    assert pings


async def _dbapi_connection(api: Api) -> Any:
    async with api.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        return raw.dbapi_connection


@postgresql_only
async def test_a_query_runs_outside_a_transaction_a_mutation_inside_one(
    api: Api, backend: str
) -> None:
    """A query's statements on PostgreSQL run without BEGIN and ROLLBACK (at READ COMMITTED each
    takes its own snapshot either way) once its document is known (parsed for an authenticated
    request); a mutation's stay in one transaction."""
    f = AuthzFactory(api.engine)
    await f.admin(await f.partner(), FULL, "FULL_ADMIN")
    token = await token_for(api, FULL)
    await post_graphql(api, VIEWER, token=token)  # the app has started
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement.split()[0], conn.connection.dbapi_connection.autocommit))

    event.listen(api.engine.sync_engine, "before_cursor_execute", record)
    try:
        # when: a query (named among several operations, one of them a mutation)
        several = "mutation M { __typename } query Q { viewer { email } }"
        body = {"query": several, "operationName": "Q"}
        headers = {"Authorization": f"Bearer {token}"}
        response = await api.client.post("/graphql", json=body, headers=headers)
        assert data_of(response.json())["viewer"]["email"] == FULL
        # the first time in a transaction: the document was parsed only after authentication
        first, seen[:] = list(seen), []
        response = await api.client.post("/graphql", json=body, headers=headers)
        assert data_of(response.json())["viewer"]["email"] == FULL
        queried, seen[:] = list(seen), []
        # when: a mutation
        added = await post_graphql(api, ADD_RULE, TAG_WRITE, as_=FULL)
        assert data_of(added)["addPolicyRule"]["userErrors"] == []
        mutated = list(seen)
    finally:
        event.remove(api.engine.sync_engine, "before_cursor_execute", record)
    # then: every statement of the known query in autocommit, none of the mutation's
    assert first and not any(autocommit for _, autocommit in first), first
    assert queried and all(autocommit for _, autocommit in queried), queried
    assert any(kind in ("INSERT", "UPDATE") for kind, _ in mutated), mutated
    assert mutated and not any(autocommit for _, autocommit in mutated), mutated
