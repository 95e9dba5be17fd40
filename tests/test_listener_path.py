"""Statement listeners on the driver's path (``db.driver_query``): called without SQLAlchemy's
greenlet only when every one of them is known never to await and the token check's guard surely
lets the statement through; any other listener still runs in the greenlet, where it may await."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.util.concurrency import await_only

import db.driver_query as driver_query
from tests.conftest import Api
from tests.helpers import data_of, post_graphql

FULL = "full@acme.example"
DETAIL = "query D($id: ID!) { customer(id: $id) { name tags { name } subscriptions { kind } } }"


async def detail(api: Api) -> dict[str, Any]:
    """A customer's detail (one statement on the driver's path), its token and document seen
    before."""
    page = await post_graphql(api, "{ customers(first: 1) { nodes { id } } }", as_=FULL)
    first = data_of(page)["customers"]["nodes"][0]["id"]
    # once before: a document this process has not seen yet is not known to be a query, and
    # runs in a transaction (SQLAlchemy's path, ``graph.endpoint``)
    await post_graphql(api, DETAIL, {"id": first}, as_=FULL)
    return {"query": DETAIL, "variables": {"id": first}}


@contextmanager
def spawns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """The statements ``DriverQuery`` ran with their listeners in SQLAlchemy's greenlet
    (``spawned``) and without it (``direct``)."""
    seen: dict[str, list[str]] = {"spawned": [], "direct": []}
    spawn, told = driver_query.greenlet_spawn, driver_query._told

    async def spawned(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is driver_query._with_events:
            seen["spawned"].append(args[1])
        return await spawn(fn, *args, **kwargs)

    async def direct(sync: Any, sql: str, *args: Any) -> Any:
        seen["direct"].append(sql)
        return await told(sync, sql, *args)

    monkeypatch.setattr(driver_query, "greenlet_spawn", spawned)
    monkeypatch.setattr(driver_query, "_told", direct)
    yield seen


async def test_known_listeners_run_without_a_greenlet_and_still_see_every_statement(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = await detail(uncached_demo_api)  # the token seen: the next one is provisional
    with spawns(monkeypatch) as paths, uncached_demo_api.counter.counting() as statements:
        body = await post_graphql(uncached_demo_api, DETAIL, payload["variables"], as_=FULL)
    assert data_of(body)["customer"]["name"]
    assert paths["direct"], "no statement took the driver's path without a greenlet"
    assert not paths["spawned"], f"known listeners ran in a greenlet: {paths['spawned']}"
    assert set(paths["direct"]) <= set(statements), "the counter missed a direct statement"


async def test_an_unknown_listener_runs_in_the_greenlet_and_may_await(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    awaited: list[str] = []

    def awaiting(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        await_only(asyncio.sleep(0))  # fails outside SQLAlchemy's greenlet
        awaited.append(statement)

    payload = await detail(uncached_demo_api)
    sync = uncached_demo_api.engine.sync_engine
    event.listen(sync, "before_cursor_execute", awaiting)
    try:
        with spawns(monkeypatch) as paths, uncached_demo_api.counter.counting() as statements:
            body = await post_graphql(uncached_demo_api, DETAIL, payload["variables"], as_=FULL)
    finally:
        event.remove(sync, "before_cursor_execute", awaiting)
    assert data_of(body)["customer"]["name"]
    assert awaited == statements, "the awaiting listener missed a statement"
    assert paths["spawned"] and not paths["direct"], paths


async def test_an_after_cursor_listener_keeps_the_greenlet(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    after: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        await_only(asyncio.sleep(0))
        after.append(statement)

    payload = await detail(uncached_demo_api)
    sync = uncached_demo_api.engine.sync_engine
    event.listen(sync, "after_cursor_execute", record)
    try:
        with uncached_demo_api.counter.counting() as statements:
            body = await post_graphql(uncached_demo_api, DETAIL, payload["variables"], as_=FULL)
    finally:
        event.remove(sync, "after_cursor_execute", record)
    assert data_of(body)["customer"]["name"]
    assert statements and after == statements


def test_the_listeners_the_app_installs_are_known_never_to_await(uncached_demo_api: Api) -> None:
    listeners = list(uncached_demo_api.engine.sync_engine.dispatch.before_cursor_execute)
    assert listeners
    assert all(fn in driver_query._NEVER_AWAIT for fn in listeners), listeners
    assert not list(uncached_demo_api.engine.sync_engine.dispatch.after_cursor_execute)
