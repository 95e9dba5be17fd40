"""Issue 17: what a request costs before it reads anything, against PostGraphile 4, over HTTP.

    .venv/bin/python -m bench.bench_floor [--seconds 8] [--rounds 2] [--concurrency 8,32]
        [--workers 2] [--customers 100000]

The customer detail is where Partner Hub is furthest from PostGraphile's throughput. This bench
puts that gap next to the floors under it, side by side in one run (PostgreSQL, two workers
each, wrk at each concurrency, rounds interleaved server by server):

- ``asgi``: a bare ASGI callable answering every POST with a fixed GraphQL response, served the
  way ``partner-hub serve`` serves the product (``graph.serving``: uvicorn, httptools, asyncio's
  loop): what any server on this stack pays for HTTP alone;
- ``starlette``: the same answer from a Starlette route (the framework's request and response);
- ``ours typename`` / ``ours detail``: Partner Hub (response cache off) with ``{ __typename }``
  (token lookup, the GraphQL pipeline, no data) and with the customer detail;
- ``postgraphile typename`` / ``postgraphile detail``: the same two requests to PostGraphile 4.

Results go to ``bench/results/<date>-floor.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import date
from typing import Any

from bench.bench_peers import EMAIL, Subjects, versions
from bench.common import RESULTS, dataset, machine, token_for
from bench.load import run_wrk
from bench.peers import Endpoint, asgi_server, hub_env, partner_hub_server, postgraphile

PORT = 8871
TYPENAME = {"query": "{ __typename }"}
FIXED = b'{"data":{"__typename":"Query"}}'


def create_bare_app() -> Callable[..., Any]:
    """An ASGI app answering every request with ``FIXED`` (``/readyz`` included)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the body, as a real server must
            message = await receive()
            more = message.get("more_body", False)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"31")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": FIXED})

    return app


def create_starlette_app() -> Any:
    """The same answer from a Starlette route that reads the request's JSON."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def graphql(request: Request) -> Response:
        await request.json() if request.method == "POST" else None
        return Response(FIXED, media_type="application/json")

    return Starlette(routes=[Route("/graphql", graphql, methods=["GET", "POST"])])


Server = Callable[[], AbstractAsyncContextManager[Endpoint]]


@asynccontextmanager
async def _graphql_path(server: AbstractAsyncContextManager[Endpoint]) -> AsyncIterator[Endpoint]:
    async with server as base:
        yield Endpoint(f"{base}/graphql", base.pid)


def subjects_of(url: str, subjects: Subjects, workers: int) -> dict[str, tuple[Server, Any, Any]]:
    """Per row: (server, body, token). Servers sharing a port are started once."""
    database = url.rsplit("/", 1)[1]
    env = hub_env(url, PARTNER_HUB_RESPONSE_CACHE_SECONDS="0", PARTNER_HUB_LOW_REBASE_SECONDS="0")

    def ours() -> AbstractAsyncContextManager[Endpoint]:
        return _graphql_path(partner_hub_server(url, PORT, workers, env))

    def bare() -> AbstractAsyncContextManager[Endpoint]:
        app = "bench.bench_floor:create_bare_app"
        return _graphql_path(asgi_server(app, PORT + 1, workers, {}, "/graphql"))

    def starlette() -> AbstractAsyncContextManager[Endpoint]:
        app = "bench.bench_floor:create_starlette_app"
        return _graphql_path(asgi_server(app, PORT + 2, workers, {}, "/graphql"))

    def graphile() -> AbstractAsyncContextManager[Endpoint]:
        return postgraphile(database, PORT + 3, workers)

    token = subjects.token
    return {
        "asgi": (bare, TYPENAME, None),
        "starlette": (starlette, TYPENAME, None),
        "ours typename": (ours, TYPENAME, token),
        "ours detail": (ours, subjects.ours("detail"), token),
        "postgraphile typename": (graphile, TYPENAME, None),
        "postgraphile detail": (graphile, subjects.postgraphile("detail"), None),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = await dataset("postgresql", args.customers)
    subjects = Subjects(url, await token_for(url, EMAIL))
    await subjects.load()
    rows = subjects_of(url, subjects, args.workers)
    levels = [int(c) for c in args.concurrency.split(",")]
    samples: dict[str, dict[int, list[float]]] = {name: {c: [] for c in levels} for name in rows}
    errors: dict[str, int] = dict.fromkeys(rows, 0)
    async with AsyncExitStack() as stack:
        started: dict[Server, Endpoint] = {}
        for server, _, _ in rows.values():
            if server not in started:
                started[server] = await stack.enter_async_context(server())
        for server, body, token in rows.values():  # warm-up (JIT, plans, pools)
            await run_wrk(started[server], [body], token, max(levels), 2)
        for round_ in range(args.rounds):
            order = list(rows) if round_ % 2 == 0 else list(reversed(rows))
            for c in levels:
                for name in order:
                    server, body, token = rows[name]
                    result = await run_wrk(started[server], [body], token, c, args.seconds)
                    samples[name][c].append(result["requests_per_s"])
                    errors[name] += sum(result["errors"].values())
                    print(f"  round {round_ + 1} c={c} {name:22} {result['requests_per_s']:8.1f}/s")
    table = {
        name: {str(c): round(statistics.median(v), 1) for c, v in per.items()}
        for name, per in samples.items()
    }
    return {
        "machine": machine(),
        "date": date.today().isoformat(),
        "versions": versions(),
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "requests_per_s": table,
        "errors": errors,
    }


def markdown(report: dict[str, Any]) -> str:
    table = report["requests_per_s"]
    levels = list(next(iter(table.values())))
    peer = table["postgraphile detail"]
    lines = [
        f"# Request floors against PostGraphile 4 ({report['date']})",
        "",
        f"{report['machine']}; {report['workers']} workers each; wrk {report['seconds']} s x "
        f"{report['rounds']} rounds (median); versions {json.dumps(report['versions'])}",
        "",
        "| server and request | "
        + " | ".join(f"req/s at {c} | / PostGraphile detail" for c in levels)
        + " | errors |",
        "| --- | " + " | ".join("---: | ---:" for _ in levels) + " | ---: |",
    ]
    for name, per in table.items():
        cells = " | ".join(f"{per[c]:,.1f} | {per[c] / peer[c]:.2f}x" for c in levels)
        lines.append(f"| {name} | {cells} | {report['errors'][name]} |")
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    report = await run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{report['date']}-floor"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
