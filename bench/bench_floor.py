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

Each run also records the CPU it cost, per request, read from ``/proc`` around it: the server's
process tree and PostgreSQL's processes (session 20: at 32 connections the detail cost
PostgreSQL ~540 us a request for Partner Hub against ~410 us for PostGraphile, whose server took
~1,600 us against ~950 us: on 2 shared cores the database's share bounds the throughput ratio).

Results go to ``bench/results/<date>-floor.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> tuple[float, dict[int, float]]:
    """CPU seconds so far (user + system) of ``root``'s process tree, and of each of
    PostgreSQL's processes (its server and every backend) by PID, from ``/proc``."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    postgres: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read().split(b"\0", 1)[0]
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / TICK
        if command.startswith(b"postgres"):
            postgres[pid] = times[pid]
    tree = {root}
    grew = True
    while grew:
        grown = {pid for pid, parent in parents.items() if parent in tree}
        grew = not grown <= tree
        tree |= grown
    return sum(times.get(pid, 0.0) for pid in tree), postgres


def database_seconds(before: dict[int, float], after: dict[int, float]) -> float:
    """PostgreSQL's CPU between two readings: of the processes alive at the second (a backend
    that exited meanwhile takes its time with it; one started meanwhile counts whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


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
    # CPU a request, in us: (server, PostgreSQL) per run
    cpu: dict[str, dict[int, list[tuple[float, float]]]] = {
        name: {c: [] for c in levels} for name in rows
    }
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
                    endpoint = started[server]
                    before = cpu_seconds(endpoint.pid)
                    result = await run_wrk(endpoint, [body], token, c, args.seconds)
                    after = cpu_seconds(endpoint.pid)
                    requests = max(1, int(result["requests"]))
                    server_s = after[0] - before[0]
                    database_s = database_seconds(before[1], after[1])
                    cpu[name][c].append((server_s / requests * 1e6, database_s / requests * 1e6))
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
        "cpu_us_per_request": {
            name: {
                str(c): {
                    "server": round(statistics.median(run[0] for run in runs)),
                    "postgresql": round(statistics.median(run[1] for run in runs)),
                }
                for c, runs in per.items()
            }
            for name, per in cpu.items()
        },
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
        + " | ".join(
            f"req/s at {c} | / PostGraphile detail | CPU us/request server + PostgreSQL"
            for c in levels
        )
        + " | errors |",
        "| --- | " + " | ".join("---: | ---: | ---:" for _ in levels) + " | ---: |",
    ]
    cpu = report["cpu_us_per_request"]
    for name, per in table.items():
        cells = " | ".join(
            f"{per[c]:,.1f} | {per[c] / peer[c]:.2f}x | "
            f"{cpu[name][c]['server']:,} + {cpu[name][c]['postgresql']:,}"
            for c in levels
        )
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
