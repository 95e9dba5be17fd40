"""A query request on SQLite reads one snapshot (``db.engine.read_from_one_snapshot``): a writer
committing between two of its statements changes nothing in its response. pysqlite opens no
transaction for a SELECT, so before, each statement saw the database as it was when it ran: a
directory page's ``totalCount`` could disagree with its nodes.

PostgreSQL is not covered: its queries run each statement at READ COMMITTED (outside a
transaction once the document is known), and one snapshot would cost two round trips a request
(BEGIN and ROLLBACK): see ``graph.endpoint``.

A writer is made to commit between statements by an engine event: the request's statement
waits (``await_only``, inside SQLAlchemy's greenlet) while the writer runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.util import await_only

from db.versioning import WRITE_LOCK
from tests.conftest import Api, sqlite_only
from tests.helpers import Factory, data_of, post_graphql, token_for
from tests.test_sqlite_driver import trips
from tests.test_tags import CREATE_TAG

__all__ = ["trips"]  # a fixture, used by name

FULL = "full@acme.example"
DIRECTORY = "query Directory { customers(first: 50) { totalCount nodes { name } } }"


@contextmanager
def between_statements(api: Api, work: Callable[[str], Awaitable[None]]) -> Iterator[list[str]]:
    """Run ``work(statement)`` before each of the request's statements from the second on
    (the first is the token lookup, which opens the snapshot); the statements it ran."""
    seen: list[str] = []
    busy = False

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal busy
        if busy:
            return  # ``work``'s own statements
        seen.append(statement)
        if len(seen) > 1:
            busy = True
            try:
                await_only(work(statement))
            finally:
                busy = False

    event.listen(api.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(api.engine.sync_engine, "before_cursor_execute", before)


@sqlite_only
async def test_a_directory_page_and_its_count_come_from_one_snapshot(uncached_api: Api) -> None:
    # given: two customers
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    for name in ("Alpha", "Beta"):
        await f.customer(partner, name)
    token = await token_for(api, FULL)
    await post_graphql(api, "query { viewer { email } }", token=token)  # the app has started
    late = 0

    async def add_customer(_: str) -> None:
        nonlocal late
        late += 1
        await f.customer(partner, f"Late {late}")

    # when: a writer commits a customer before each of the request's statements after the
    # first, the first time the document is seen and once it is known
    for _ in range(2):
        before = late
        with between_statements(api, add_customer) as seen:
            body = await post_graphql(api, DIRECTORY, token=token)
        # then: the page and its count agree with each other, as of the first statement
        connection = data_of(body)["customers"]
        names = [node["name"] for node in connection["nodes"]]
        assert len(seen) >= 3 and late - before == len(seen) - 1  # page and count: 2 writes
        assert connection["totalCount"] == len(names) == 2 + before, connection
        assert names == ["Alpha", "Beta", *(f"Late {n}" for n in range(1, before + 1))]
    # and: the next request sees every write
    after = data_of(await post_graphql(api, DIRECTORY, token=token))["customers"]
    assert after["totalCount"] == len(after["nodes"]) == 2 + late


@sqlite_only
async def test_a_snapshot_holds_no_write_lock_a_mutation_meanwhile_commits(
    uncached_api: Api,
) -> None:
    # given: a query request stopped between two statements, its snapshot open
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    await f.customer(partner, "Alpha")
    token = await token_for(api, FULL)
    await post_graphql(api, DIRECTORY, token=token)  # a known document
    stopped, go_on = asyncio.Event(), asyncio.Event()

    async def wait(_: str) -> None:
        if not stopped.is_set():
            stopped.set()
            await go_on.wait()

    async def mutate_meanwhile() -> dict[str, Any]:
        await asyncio.wait_for(stopped.wait(), 5)
        try:
            # less than the busy timeout (10 s): a lock held by the query would show here
            return await asyncio.wait_for(
                post_graphql(api, CREATE_TAG, {"input": {"name": "Meanwhile"}}, token=token), 5
            )
        finally:
            go_on.set()

    # when: a mutation runs while it is stopped
    with between_statements(api, wait):
        query, mutation = await asyncio.gather(
            post_graphql(api, DIRECTORY, token=token), mutate_meanwhile()
        )

    # then: the mutation committed without waiting for the query; both answered
    assert data_of(mutation)["createTag"]["userErrors"] == []
    assert data_of(query)["customers"]["totalCount"] == 1
    listed = data_of(await post_graphql(api, "query { tags { name } }", token=token))["tags"]
    assert listed == [{"name": "Meanwhile"}]


@sqlite_only
async def test_a_mutation_new_to_the_server_ends_its_snapshot_before_it_writes(
    uncached_api: Api,
) -> None:
    """A document not parsed before may be a mutation: it reads its token in a snapshot too,
    and a writer committing after that must not make its write fail (a write inside a stale
    snapshot is refused at once, ``SQLITE_BUSY_SNAPSHOT``)."""
    # given: a writer committing after the token lookup, before the mutation's first write
    # (then the mutation holds the write lock: a writer would wait for it)
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    token = await token_for(api, FULL)
    await post_graphql(api, "query { viewer { email } }", token=token)  # the app has started

    writes: list[str] = []

    async def add_customer(statement: str) -> None:
        if not writes:
            writes.append(statement)
            await f.customer(partner, "Late")

    # when
    with between_statements(api, add_customer):
        body = await post_graphql(api, CREATE_TAG, {"input": {"name": "New"}}, token=token)

    # then: it wrote, after the writer's commit
    assert data_of(body)["createTag"]["userErrors"] == []
    assert writes == [WRITE_LOCK]
    listed = data_of(await post_graphql(api, DIRECTORY, token=token))["customers"]
    assert listed["nodes"] == [{"name": "Late"}]


@sqlite_only
async def test_the_snapshot_adds_no_trip_to_the_thread(uncached_api: Api, trips: list[Any]) -> None:
    # given: a known query
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    await f.customer(partner, "Alpha")
    token = await token_for(api, FULL)
    await post_graphql(api, DIRECTORY, token=token)
    # when
    trips.clear()
    with api.counter.counting() as statements:
        body = await post_graphql(api, DIRECTORY, token=token)
    # then: one trip a statement (BEGIN rides on the first), none to end the snapshot
    assert data_of(body)["customers"]["totalCount"] == 1
    assert len(statements) == 3 and len(trips) == 3
