"""Session 11's attacks: GraphQL requests without Strawberry's view and past Starlette's stack
(``PartnerHubApp``), admission control, the shared budget's batches.

Found: once ``PartnerHubApp`` sent ``/graphql`` straight to the endpoint, admission control
(added to the app's middleware) was on the router's way only, so no GraphQL request ever
waited; behind a root path the router's way was taken but admission saw ``/api/graphql`` and
let it through too. The other attacks here keep what held before (checked side by side with
the session's starting commit): an exception, a client leaving mid-body or a cancellation
never leaks a turn, and refusals keep their coded answers while requests wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import orjson
import pytest
from starlette.applications import Starlette

from graph import hub as hub_module
from tests.test_serve_admission import (
    BODY,
    FULL,
    SETTLE,
    Call,
    app_with,
    finished,
    scope_of,
    started,
    token,
)

__all__ = ["app_with", "token"]  # fixtures, used by name


App = Callable[[int], Awaitable[Starlette]]


def behind(root: str, scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` as a server mounted under ``root`` hands it over (Starlette 1.x: the path
    keeps the root path)."""
    path = root + scope["path"]
    return {**scope, "root_path": root, "path": path, "raw_path": path.encode()}


def body_of(found: Call) -> Any:
    return orjson.loads(
        b"".join(m.get("body", b"") for m in found.sent if m["type"] == "http.response.body")
    )


@pytest.mark.parametrize("root", ["", "/api"])
async def test_graphql_waits_its_turn_on_both_ways_to_the_endpoint(
    app_with: App, token: str, root: str
) -> None:
    # given: a limit of one, its turn held by a client reading its answer slowly
    app = await app_with(1)
    first = started(app, behind(root, scope_of(token)), held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    # when: another GraphQL request arrives (straight to the endpoint, or behind a root path
    # through the router)
    second = started(app, behind(root, scope_of(token)))
    await asyncio.sleep(SETTLE)
    # then: it waits (before the fix it ran at once: admission was not on its way)
    assert second.sent == []
    first.release.set()
    await finished(first, second)
    assert [first.status, second.status] == [200, 200]
    assert body_of(second)["data"] == {"viewer": {"email": FULL}}


async def test_an_exception_escaping_the_endpoint_is_coded_and_gives_its_turn_back(
    app_with: App, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a limit of one, and the token lookup failing unexpectedly
    app = await app_with(1)

    async def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(hub_module, "authenticate_token", broken)
    # (a lookup of its own: not one riding along a provisional query's statement)
    monkeypatch.setattr(hub_module.PartnerHub, "provisional", lambda *_: None)
    # when
    failed = started(app, scope_of(token))
    await finished(failed)
    # then: the masked, coded JSON answer (never a text/plain 500), with the request id header
    assert failed.status == 200
    start = next(m for m in failed.sent if m["type"] == "http.response.start")
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    request_id = headers[b"x-request-id"].decode()
    (error,) = body_of(failed)["errors"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert "secret" not in error["message"]
    # and the turn is free again
    monkeypatch.undo()
    after = started(app, scope_of(token))
    await finished(after)
    assert after.status == 200


async def test_clients_leaving_mid_body_or_cancelled_while_running_leak_no_turn(
    app_with: App, token: str
) -> None:
    app = await app_with(1)
    # given: a client that sends half its body and disconnects
    parts = iter(
        [
            {"type": "http.request", "body": BODY[:5], "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(parts)

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope_of(token), receive, send), 10)
    assert sent == []
    # given: a request cancelled while it runs (held at its first send)
    running = started(app, scope_of(token), held=True)
    await asyncio.wait_for(running.answered.wait(), 10)
    assert running.task is not None
    running.task.cancel()
    await asyncio.wait((running.task,))
    # then: requests after them run, one after the other, to their end
    later = [started(app, scope_of(token)) for _ in range(3)]
    await finished(*later)
    assert [c.status for c in later] == [200, 200, 200]


async def test_refusals_answer_the_same_while_others_wait(app_with: App, token: str) -> None:
    # given: a limit of one, its turn held
    app = await app_with(1)
    first = started(app, scope_of(token), held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    # when: a body declared too large (refused before any turn), a PUT and a bad token (which
    # wait their turn like any GraphQL request)
    too_large = started(app, scope_of(token, length=10**9))
    await finished(too_large)
    put = started(app, {**scope_of(token), "method": "PUT"})
    headers = [(k, v) for k, v in scope_of(token)["headers"] if k != b"authorization"]
    bad = started(app, {**scope_of(token), "headers": [*headers, (b"authorization", b"Bearer x")]})
    await asyncio.sleep(SETTLE)
    assert put.sent == [] and bad.sent == []
    first.release.set()
    await finished(first, put, bad)
    # then: each keeps its coded answer
    assert too_large.status == 413
    assert body_of(too_large)["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert put.status == 405
    assert body_of(put)["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert bad.status == 401
    assert first.status == 200


async def test_a_second_content_length_does_not_skip_the_queue(app_with: App, token: str) -> None:
    # given: a limit of one, its turn held
    app = await app_with(1)
    first = started(app, scope_of(token), held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    # when: a request declares its true size, then a huge one (servers mostly refuse this;
    # the endpoint reads the first, admission read the last and let it past the queue)
    scope = scope_of(token)
    scope["headers"] = [*scope["headers"], (b"content-length", b"%d" % 10**9)]
    sneaky = started(app, scope)
    await asyncio.sleep(SETTLE)
    # then: it waits its turn like any other
    assert sneaky.sent == []
    first.release.set()
    await finished(first, sneaky)
    assert [first.status, sneaky.status] == [200, 200]
