"""A request without an ``Authorization`` header gets its 401 at once with admission on: its body
is not read (nor waited for) and it takes no turn (graph/admission.py). Before, admission read
the body, up to ``max_body_bytes``, before the endpoint looked at the header: a body that never
finished arriving held the 401 back for good."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette

from tests.test_serve_admission import (
    SETTLE,
    Call,
    app_with,
    finished,
    scope_of,
    started,
    token,
)

__all__ = ["app_with", "token"]  # fixtures, used by name

MISSING = "Missing Authorization: Bearer <token> header."


def unauthenticated(token: str, length: int) -> dict[str, Any]:
    """A POST to /graphql declaring ``length`` bytes of body, without an Authorization header."""
    scope = scope_of(token, length=length)
    return {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"authorization"]}


async def never_finishing(app: Starlette, scope: dict[str, Any]) -> tuple[Call, list[int]]:
    """Start ``scope``'s request with a body whose first 1,000 bytes come at once and whose rest
    never does; with the calls its ``receive`` got."""
    found = Call()
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            return {"type": "http.request", "body": b"{" + b" " * 999, "more_body": True}
        await asyncio.Event().wait()  # the rest never arrives
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        found.sent.append(message)

    found.task = asyncio.ensure_future(app(scope, receive, send))
    return found, calls


def answer(found: Call) -> tuple[int | None, dict[bytes, bytes], Any]:
    """Status, headers (but the request id, new every time) and JSON body of an answer."""
    start = next(m for m in found.sent if m["type"] == "http.response.start")
    headers = {k: v for k, v in start["headers"] if k != b"x-request-id"}
    body = b"".join(m.get("body", b"") for m in found.sent if m["type"] == "http.response.body")
    return found.status, headers, orjson.loads(body)


async def test_a_post_without_authorization_gets_its_401_unread_and_without_a_turn(
    app_with: Any, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="partner_hub.access")
    # given: a limit of one, its turn held by a request still running
    app = await app_with(1)
    limit = app.state.hub.settings.max_body_bytes
    first = started(app, scope_of(token), held=True)
    await asyncio.wait_for(first.answered.wait(), 10)

    # when: a POST without Authorization declares the largest body allowed and never sends it
    found, receives = await never_finishing(app, unauthenticated(token, limit))

    # then: it is answered 401 promptly, without a turn and without reading its body
    await asyncio.wait_for(found.task, 5)  # type: ignore[arg-type]
    assert receives == []
    status, headers, body = answer(found)
    assert status == 401
    assert headers[b"www-authenticate"] == b'Bearer realm="partner-hub"'
    assert body == {"errors": [{"message": MISSING, "extensions": {"code": "UNAUTHENTICATED"}}]}
    # and: its answer and log line are the ones admission off gives (where the endpoint has
    # always answered it before reading the body)
    off = await app_with(0)
    plain = started(off, unauthenticated(token, 100))
    await finished(plain)
    assert answer(plain) == (status, headers, body)
    lines = [
        (r.method, r.path, r.status)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "partner_hub.access" and r.status == 401  # type: ignore[attr-defined]
    ]
    assert lines == [("POST", "/graphql", 401)] * 2
    # and: the held request was never disturbed
    first.release.set()
    await finished(first)
    assert first.status == 200


async def test_a_post_with_authorization_still_waits_for_its_body_before_its_turn(
    app_with: Any, token: str
) -> None:
    """The other side: an authenticated request's body is read first, as before (so that a
    slow client holds no turn)."""
    app = await app_with(1)
    found, receives = await never_finishing(app, scope_of(token, length=2000))
    await asyncio.sleep(SETTLE)
    assert found.sent == [] and len(receives) == 2  # reading, not answered
    assert found.task is not None
    found.task.cancel()
