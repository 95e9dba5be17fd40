"""A real HTTP receiver on 127.0.0.1 (uvicorn in the test's event loop) that verifies every
request with the ``standardwebhooks`` package, and helpers for the webhook tests."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from db.clock import Clock
from db.settings import Settings
from graph.webhooks.worker import WebhookWorker
from tests.conftest import NOW, Api
from tests.helpers import data_of, post_graphql

SECRET_KEY = b"test-secret"  # tests.conftest.make_settings


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None  # None when the signature did not verify

    @property
    def type(self) -> str:
        assert self.payload is not None
        return str(self.payload["type"])

    @property
    def data(self) -> dict[str, Any]:
        assert self.payload is not None
        return dict(self.payload["data"])


@dataclass
class Receiver:
    """Answers each request with the next status of ``script`` (then 200), after ``delay``."""

    port: int = 0
    secret: str | None = None
    script: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def ok(self) -> list[Received]:
        return [r for r in self.received if r.payload is not None]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        payload = None
        if self.secret is not None:
            try:
                payload = Webhook(self.secret).verify(body, headers)
            except Exception:
                payload = None
        self.received.append(Received(headers, body, payload))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.script.pop(0) if self.script else 200
        return PlainTextResponse("x" * 5000 if status >= 500 else "ok", status_code=status)


@asynccontextmanager
async def receiver(**kwargs: Any) -> AsyncIterator[Receiver]:
    r = Receiver(**kwargs)
    app = Starlette(routes=[Route("/hooks", r.handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    r.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # uvicorn has no "started" event to await
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield r
    finally:
        server.should_exit = True
        await task
        sock.close()


HOOK_SETTINGS: dict[str, Any] = {
    "webhook_allow_http": True,
    "webhook_allow_private_networks": True,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_delay_seconds": 0.2,
    "webhook_timeout_seconds": 2.0,
}


def worker(
    api: Api, name: str = "w1", engine: AsyncEngine | None = None, **overrides: Any
) -> WebhookWorker:
    """A server's delivery loop over the test's database (``engine``: its own pool, as a
    second server process has)."""
    values = api.settings.model_dump()
    values.update(HOOK_SETTINGS)
    values.update(overrides)
    settings = Settings(**values)
    return WebhookWorker(engine or api.engine, settings, SECRET_KEY, Clock(NOW).now, name=name)


async def drain(w: WebhookWorker, turns: int = 50, pause: float = 0.06, patience: int = 4) -> None:
    """Deliver until nothing is due (retries included) for ``patience`` turns in a row, or
    ``turns`` run out. A test that waits for retries spaced by the retry delay needs patience
    above delay / pause, or a slow turn ends the drain before the next retry is due."""
    idle = 0
    for _ in range(turns):
        if await w.deliver_due():
            idle = 0
            continue
        idle += 1
        if idle >= patience:
            return
        await asyncio.sleep(pause)


CREATE = """
mutation C($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    endpoint { id url description events active createdAt disabledReason }
    secret
    userErrors { field message code }
  }
}
"""
DELIVERIES = """
query D($first: Int!, $filter: WebhookDeliveryFilter) {
  webhookDeliveries(first: $first, filter: $filter) {
    totalCount
    nodes { id eventId event endpointId status attempts lastAttemptAt nextAttemptAt
            responseStatus responseBody error payload }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def create_endpoint(
    api: Api, as_: str, url: str, events: list[str], description: str = ""
) -> tuple[str, str]:
    """(endpoint id, secret) of a new endpoint (it must be accepted)."""
    body = await post_graphql(
        api, CREATE, {"input": {"url": url, "events": events, "description": description}}, as_=as_
    )
    payload = data_of(body)["createWebhookEndpoint"]
    assert payload["userErrors"] == [], payload
    return payload["endpoint"]["id"], payload["secret"]


async def deliveries(api: Api, as_: str, **filter: Any) -> list[dict[str, Any]]:
    body = await post_graphql(api, DELIVERIES, {"first": 100, "filter": filter or None}, as_=as_)
    return list(data_of(body)["webhookDeliveries"]["nodes"])


def types_of(received: list[Received]) -> list[str]:
    return [r.type for r in received]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
