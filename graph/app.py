"""The Starlette application: its routes (GraphQL, health checks, GraphiQL's assets, the CSV
export), its lifespan (the hub, webhook deliveries, the low rebaser, the collector's settings),
and the short cut that sends ``/graphql`` straight to the endpoint (``graph.endpoint``).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from db.settings import Settings, get_settings
from graph.admission import DEFAULT_MAX_CONCURRENT, Admission
from graph.endpoint import GraphQLEndpoint
from graph.graphiql import PREFIX as GRAPHIQL_ASSETS
from graph.graphiql import serve_asset
from graph.hub import PartnerHub
from graph.logging import RequestLogMiddleware, configure_logging

GC_THRESHOLDS = (100_000, 20, 100)


class PartnerHubApp(Starlette):
    """Starlette's application, but an HTTP request for ``/graphql`` goes to the endpoint with
    its log line only, not through the rest of the stack (issue 17: every request paid for
    each layer). What those layers would do for it, the endpoint does already: it answers
    every exception before a response starts (coded, never Starlette's text/plain 500) and
    raises none that ``ExceptionMiddleware`` handles; the router only matched its path. Other
    paths, WebSockets and the lifespan take the whole stack. A middleware added to the app
    must be added to ``graphql`` too."""

    def __init__(self, graphql: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (Behind a root path the router's own matching is left to decide.)
        if scope["type"] == "http" and scope["path"] == "/graphql" and not scope.get("root_path"):
            scope["app"] = self
            await self.graphql(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> Starlette:
    settings = settings or get_settings()
    hub = PartnerHub(settings, engine)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            async with hub.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        return JSONResponse({"status": "ready"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        services = await hub.start()
        deliveries = None
        if settings.webhook_delivery:
            from graph.webhooks.worker import RunningWorker, WebhookWorker

            deliveries = RunningWorker(
                WebhookWorker(hub.engine, settings, services.secret, services.clock.now)
            )
        rebaser = None
        if settings.low_rebase_seconds:
            from graph.low_rebase import LowRebaser

            rebaser = LowRebaser(hub.engine, settings.low_rebase_seconds, services.clock.now)
        # What exists now (schema, metadata, compiled statements, settings) lives as long as
        # the process: out of the cyclic collector's generations it is no longer traversed by
        # every collection that requests' short-lived objects trigger (about 0.3 ms of a
        # 50-customer page). The gc module documents freeze() for this start-up pattern.
        gc.collect()
        gc.freeze()
        # Requests make many short-lived containers. After 700 of them (the default) a young
        # collection ran; with 16 requests in flight per worker most of what it met was still
        # in use, got promoted and was traversed again by the older collections, which grew
        # with every busy minute. 100,000 lets most of a request's objects die young (a few
        # MB), and the older generations are collected less often. Directory page, PostgreSQL,
        # 100,000 customers, 2 workers, wrk at 32 connections, alternating rounds on fresh
        # servers: 207, 207, 215 -> 222, 222, 230 requests/s.
        gc.set_threshold(*GC_THRESHOLDS)
        yield
        if deliveries is not None:
            await deliveries.stop()
        if rebaser is not None:
            await rebaser.stop()
        await hub.stop()

    from graph.export import export_customers_csv

    limit = settings.serve_max_concurrent
    if limit is None:
        limit = DEFAULT_MAX_CONCURRENT.get(hub.engine.dialect.name, 0)
    # One admission (one count of requests running) in front of the endpoint, on both ways
    # to it: PartnerHubApp's own for /graphql and the router's behind a root path. (Added to
    # the app's middleware it was on the router's way only: /graphql never waited.) Inside the
    # request log: a request's logged duration includes its wait for a turn.
    graphql = Admission(GraphQLEndpoint(hub), limit=limit, max_body_bytes=settings.max_body_bytes)
    app = PartnerHubApp(
        RequestLogMiddleware(graphql),
        routes=[
            Route("/graphql", graphql),  # any method: refusals are coded
            Route("/healthz", healthz),
            Route(GRAPHIQL_ASSETS + "/{digest}/{name:path}", serve_asset, methods=["GET"]),
            Route("/readyz", readyz),
            Route("/export/customers.csv", export_customers_csv(hub)),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RequestLogMiddleware)
    app.state.hub = hub
    return app
