"""The pool hands out the connection returned last (LIFO), so requests one after another keep
using one warm connection.

A connection's prepared statements and PostgreSQL's plans for them are its own: PostgreSQL plans
a prepared statement's first five executions with their parameters (0.4-0.9 ms each for the
page and detail statements) before keeping a generic plan. SQLAlchemy's pool is FIFO by
default: a server that had opened 10 connections under load rotated through all of them
afterwards, and sequential requests (a front end's page loads, the benchmark's latency runs)
met a cold connection for 50 requests per worker (issue 17: the detail's median, measured first
after the load of other workloads, 7.5 ms FIFO against 6.0 ms LIFO in one run). Under load every
connection is busy either way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from tests.conftest import api_over
from tests.databases import Database
from tests.helpers import Factory, post_graphql

FULL = "full@acme.example"
PAGE = "{ customers(first: 5) { nodes { id name statuses tags { name } } } }"


async def test_sequential_requests_take_the_connection_returned_last(
    fresh_database: Database,
) -> None:
    # What a mutation, and a query on SQLite or with no kept connections, checks out (queries
    # on PostgreSQL keep theirs between them, LIFO too: tests/test_query_lane.py).
    await fresh_database.empty()
    async with api_over(fresh_database, database_kept_connections=0) as api:
        await _returned_last(api)


async def _returned_last(api: Any) -> None:
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    for n in range(3):
        await f.customer(partner, f"Customer {n}")
    await post_graphql(api, PAGE, as_=FULL)

    taken: list[int] = []

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        taken.append(id(dbapi_connection))

    # Two connections in the pool: one held here while a request takes (and returns) another,
    # then this one returned last.
    async with api.engine.connect() as held:
        await held.exec_driver_sql("SELECT 1")
        event.listen(api.engine.sync_engine, "checkout", checkout)
        try:
            body = await post_graphql(api, PAGE, as_=FULL)
            assert "errors" not in body, body
            during = set(taken)
            held_id = id((await held.get_raw_connection()).dbapi_connection)
        finally:
            event.remove(api.engine.sync_engine, "checkout", checkout)
    assert held_id not in during  # the request ran on the pool's other connection

    taken.clear()
    event.listen(api.engine.sync_engine, "checkout", checkout)
    try:
        for _ in range(4):
            body = await post_graphql(api, PAGE, as_=FULL)
            assert "errors" not in body, body
    finally:
        event.remove(api.engine.sync_engine, "checkout", checkout)
    # FIFO would have alternated between the two; LIFO keeps the one returned last.
    assert taken and set(taken) == {held_id}, (taken, held_id, during)
