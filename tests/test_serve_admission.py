"""Admission control (graph/admission.py, ``PARTNER_HUB_SERVE_MAX_CONCURRENT``): at most N
GraphQL requests of a process run at once, the others wait their turn once their body has
arrived; a waiting request whose client left never runs; nothing leaks a turn.

Black-box through the ASGI app, called the way a server calls it, so that a test holds a
request at its first ``send`` (a client reading its answer slowly) and decides when a client
disconnects; and through ``partner-hub serve`` for the settings it refuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from db.settings import Settings
from graph.admission import DEFAULT_MAX_CONCURRENT
from graph.app import create_app
from tests.authz_support import AuthzFactory
from tests.conftest import Api, make_settings
from tests.helpers import token_for
from tests.serve_support import COMMAND, Serve, database_with_token, free_port
from tests.test_serve_processes import partial_request, response_of

FULL = "full@acme.example"
BODY = orjson.dumps({"query": "query { viewer { email } }"})
SETTLE = 0.2  # long enough for every runnable request to reach its first send


@dataclass
class Call:
    """One request through the ASGI app: what it sent, and gates a test opens."""

    task: asyncio.Task[None] | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # running, or answering
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets a held request go on
    leave: asyncio.Event = field(default_factory=asyncio.Event)  # the client disconnects

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    def data(self) -> Any:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return orjson.loads(body)["data"]


def scope_of(token: str, path: str = "/graphql", length: int = len(BODY)) -> dict[str, Any]:
    """A request as a server hands it to the app: POST ``BODY`` to /graphql (declaring
    ``length`` bytes), else a GET."""
    post = path == "/graphql"
    headers = [(b"host", b"test"), (b"authorization", f"Bearer {token}".encode())]
    if post:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if post else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }


HOLD = b"x-test-hold"
_HELD: dict[bytes, Call] = {}


def hold_gate(app: Starlette) -> None:
    """A request started with ``held`` stops inside its turn, as a slow resolver would, until
    ``release`` (its ``answered`` is set when it gets there). Installed between admission and
    the endpoint (``app.graphql`` is the request log around the admission)."""
    admitted = app.graphql.app  # type: ignore[attr-defined]
    inner = admitted.app

    async def gated(scope: dict[str, Any], receive: Any, send: Any) -> None:
        key = next((v for k, v in scope["headers"] if k == HOLD), None)
        if key is not None:
            found = _HELD.pop(key)
            found.answered.set()
            await found.release.wait()
        await inner(scope, receive, send)

    admitted.app = gated


def held_scope(found: Call, scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` for a request ``hold_gate`` holds."""
    key = str(id(found)).encode()
    _HELD[key] = found
    return {**scope, "headers": [*scope["headers"], (HOLD, key)]}


def started(
    app: Starlette, scope: dict[str, Any], *, held: bool = False, body: bytes = BODY
) -> Call:
    """Start ``scope``'s request: ``body``, then a disconnect on ``leave``; ``held``: it waits
    for ``release`` once it has its turn (``hold_gate``)."""
    found = Call()
    if held:
        scope = held_scope(found, scope)
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await found.leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        found.sent.append(message)
        found.answered.set()

    found.task = asyncio.ensure_future(app(scope, receive, send))
    return found


def call(
    app: Starlette, token: str, *, held: bool = False, path: str = "/graphql", length: int = 0
) -> Call:
    """``started`` for a POST of ``BODY`` to /graphql (else a GET of ``path``); ``length``: the
    body size it declares instead of its own."""
    post = path == "/graphql"
    scope = scope_of(token, path, length or len(BODY))
    return started(app, scope, held=held, body=BODY if post else b"")


@pytest.fixture
async def token(api: Api) -> str:
    f = AuthzFactory(api.engine)
    await f.admin(await f.partner(), FULL, "FULL_ADMIN")
    return await token_for(api, FULL)


@pytest.fixture
async def app_with(api: Api, token: str) -> AsyncIterator[Any]:
    """``app_with(limit)``: an app over the test's database with that limit (None: unset),
    started and warm."""
    apps: list[Starlette] = []

    async def make(limit: int | None) -> Starlette:
        app = create_app(make_settings(api.db, serve_max_concurrent=limit), engine=api.engine)
        hold_gate(app)
        apps.append(app)
        first = call(app, token)
        await asyncio.wait_for(first.task, 10)  # type: ignore[arg-type]
        assert first.status == 200
        return app

    yield make
    for app in apps:
        await app.state.hub.stop()


async def finished(*calls: Call) -> None:
    await asyncio.wait_for(asyncio.gather(*(c.task for c in calls)), 10)  # type: ignore[arg-type]


async def test_with_a_limit_of_one_two_slow_requests_run_one_after_the_other(
    app_with: Any, token: str
) -> None:
    app = await app_with(1)
    # given: a request whose client reads its answer slowly (held at its first send)
    first = call(app, token, held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    # when: a second request arrives meanwhile
    second = call(app, token)
    await asyncio.sleep(SETTLE)
    # then: it has not run
    assert second.sent == []
    # when: the first finishes, then: the second runs, and both are answered
    first.release.set()
    await finished(first, second)
    assert [first.status, second.status] == [200, 200]
    assert first.data() == second.data() == {"viewer": {"email": FULL}}


async def test_a_client_that_never_reads_its_answer_holds_no_turn(
    app_with: Any, token: str
) -> None:
    # given: a limit of one, and a client whose connection takes nothing of its answer (each
    # send waits forever: a full socket buffer)
    app = await app_with(1)
    stuck = Call()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        stuck.sent.append(message)
        await asyncio.Event().wait()

    stuck.task = asyncio.ensure_future(app(scope_of(token), receive, send))
    await asyncio.sleep(SETTLE)
    assert [m["type"] for m in stuck.sent] == ["http.response.start"]

    # when: another request arrives
    other = call(app, token)

    # then: it is answered (before, it waited for the stuck one's turn forever)
    await finished(other)
    assert other.status == 200
    stuck.task.cancel()


async def test_the_default_limit_is_the_backends(app_with: Any, token: str, backend: str) -> None:
    # given: the setting unset; more slow requests than SQLite's default at once
    app = await app_with(None)
    limit = DEFAULT_MAX_CONCURRENT[backend]
    calls = [call(app, token, held=True) for _ in range(5)]
    await asyncio.sleep(SETTLE)
    await asyncio.wait_for(asyncio.gather(*(c.answered.wait() for c in calls[:1])), 10)
    # then: SQLite runs 4 of them at once, PostgreSQL all of them
    running = sum(c.answered.is_set() for c in calls)
    assert running == (limit or len(calls))
    for c in calls:
        c.release.set()
    await finished(*calls)
    assert {c.status for c in calls} == {200}


async def test_a_waiting_request_whose_client_left_never_runs_and_holds_no_turn(
    app_with: Any, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="partner_hub.access")
    app = await app_with(1)
    first = call(app, token, held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    # given: a second request waiting its turn
    gone = call(app, token)
    await asyncio.sleep(SETTLE)
    # when: its client disconnects
    gone.leave.set()
    await finished(gone)
    # then: it ended without running; the first goes on, and a third request runs after it
    assert gone.sent == []
    first.release.set()
    third = call(app, token)
    await finished(first, third)
    assert [first.status, third.status] == [200, 200]
    assert gone.sent == []
    # and: its log line says the client closed the request (499), not a server error (500)
    access = [r for r in caplog.records if r.name == "partner_hub.access"]
    statuses = [getattr(r, "status", None) for r in access]
    assert statuses.count(499) == 1 and 500 not in statuses


async def test_a_waiting_request_cancelled_by_the_shutdown_gives_its_turn_on(
    app_with: Any, token: str
) -> None:
    app = await app_with(1)
    first = call(app, token, held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    cancelled, after = call(app, token), call(app, token)
    await asyncio.sleep(SETTLE)
    # when: the server cancels a waiting request (its grace ended)
    assert cancelled.task is not None
    cancelled.task.cancel()
    # then: it never ran; the one queued after it runs when the first is done
    first.release.set()
    await finished(first, after)
    assert cancelled.task.cancelled() and cancelled.sent == []
    assert [first.status, after.status] == [200, 200]


async def test_a_slow_body_holds_no_turn_and_health_checks_never_wait(
    app_with: Any, token: str
) -> None:
    app = await app_with(1)
    # given: the only turn taken by a request whose client reads slowly
    first = call(app, token, held=True)
    await asyncio.wait_for(first.answered.wait(), 10)
    # then: /healthz answers meanwhile, and a body declared too large is refused as always
    health = call(app, token, path="/healthz")
    too_large = call(app, token, length=10**9)
    await finished(health, too_large)
    assert [health.status, too_large.status] == [200, 413]
    first.release.set()
    await finished(first)
    # given: a client that sends half its body and stalls
    stalled_body = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not stalled_body.is_set():
            stalled_body.set()
            return {"type": "http.request", "body": BODY[:5], "more_body": True}
        await asyncio.Event().wait()  # never more
        raise AssertionError

    async def ignore(_: Any) -> None:
        return None

    slow = asyncio.ensure_future(app(scope_of(token), receive, ignore))
    await stalled_body.wait()
    # then: another request runs to its end meanwhile
    other = call(app, token)
    await finished(other)
    assert other.status == 200
    slow.cancel()


@pytest.mark.parametrize("value", ["-1", "many", "10001"])
def test_a_bad_limit_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PARTNER_HUB_SERVE_MAX_CONCURRENT", value)
    with pytest.raises(ValidationError):
        Settings()


def test_serve_refuses_a_bad_limit_at_start_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PARTNER_HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        "PARTNER_HUB_SERVE_MAX_CONCURRENT": "-1",
    }
    port = str(free_port())
    done = subprocess.run(
        [str(COMMAND), "serve", "--host", "127.0.0.1", "--port", port],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "invalid setting serve_max_concurrent" in done.stderr, done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was created


async def test_sigterm_serves_the_waiting_requests_within_the_grace_and_exits_0(
    tmp_path: Path,
) -> None:
    async with database_with_token("sqlite", tmp_path) as (url, token):
        server = Serve(url, free_port(), tmp_path / "serve.log")
        server.env = {"PARTNER_HUB_SHUTDOWN_GRACE": "5", "PARTNER_HUB_SERVE_MAX_CONCURRENT": "1"}
        server.start()
        try:
            await server.wait_up()
            # given: six requests read by the server up to half their body
            started = [
                await asyncio.to_thread(partial_request, server.port, token) for _ in "123456"
            ]
            # when: their bodies complete (one runs, the others wait their turn) and the server
            # is told to stop at once
            for sock, rest in started:
                sock.sendall(rest)
            server.terminate()
            # then: every one is answered, and the server exits 0
            answers = [await asyncio.to_thread(response_of, sock) for sock, _ in started]
            for sock, _ in started:
                sock.close()
            for answer in answers:
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), answer
                assert orjson.loads(body)["data"]["viewer"]["email"] == FULL
            assert await server.exit_status() == 0
        finally:
            server.kill()
