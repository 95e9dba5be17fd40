"""Issue 8: Partner Hub against PostGraphile 4 and a naive Strawberry baseline, over real HTTP.

    .venv/bin/python -m bench.bench_peers [--backends postgresql,sqlite]
        [--sizes 1000,10000,100000] [--load-size 100000] [--seconds 30]
        [--concurrency 1,8,32] [--runs 100] [--workers <cores>]

Data: ``seed --customers N --random-seed 1`` (one partner), reused between runs. Workloads are the
documents in ``bench/queries/``: (1) directory page, (2) the same filtered by status, product and
tag, (3) one customer's full detail, (4) the license dashboard for one product, (5) a mix of 1-4
with a tag attach or detach every 20th request. Servers, each
with as many workers as cores: Partner Hub with its response cache off ("cold": every request
executes) and on ("warm", the default), the naive baseline (``bench/naive.py``) and, on
PostgreSQL, PostGraphile 4 over the same database (workloads 1-3, ``bench/queries/postgraphile``).
All servers run side by side on their own ports and take turns, so that the drift of a shared
machine (seen here: the same request 3x slower twenty minutes later) falls on all of them alike.

Measured per server and workload: sequential latency over one keep-alive connection (median, p99)
at every size, and at ``--load-size`` throughput with wrk (``bench/wrk_post.lua``) at each
concurrency for ``--seconds``, with error counts, cache hits and wrk's own CPU. Also the SQL
statements of one request (in-process, counted at the engine) and each server's peak RSS. Results
go to ``bench/results/<date>-<backend>.json`` and ``.md``; the tables give ratios to the peers
measured in the same run, since absolute times drift on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import date
from typing import Any

from sqlalchemy import event, select
from sqlmodel import col

from bench.common import RESULTS, app_client, dataset, machine, query, token_for
from bench.load import interleaved_latency, mixed, run_wrk
from bench.peers import asgi_server, hub_env, partner_hub_server, peak_rss, postgraphile
from bench.peers_report import failed
from db.engine import create_engine
from db.models import Partner
from graph.ids import from_global_id

EMAIL = "full@synth1.example"
PORT = 8791
READS = ("directory", "filtered", "detail", "dashboard")
PEER_WORKLOADS = ("directory", "filtered", "detail")
# Goal 2: workloads 1-3, and workload 2 with a filter that fills the page at every size (workload
# 2's own filter matches 14 customers at 1,000, so its 1,000 -> 100,000 ratio is partly that of
# 14 against 50 customers in the response).
FLAT_WORKLOADS = (*PEER_WORKLOADS, "filtered_full")
ATTACH = "mutation M($input: CustomerTagsInput!) { addTagsToCustomers(input: $input) { changed } }"
DETACH = (
    "mutation M($input: CustomerTagsInput!) { removeTagsFromCustomers(input: $input) { changed } }"
)


class Subjects:
    """The ids every workload needs, looked up once per data set through the API itself."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.customer = self.tag = self.other_tag = ""
        self.partner_pk = 0

    async def load(self) -> None:
        app, client = app_client(self.url, response_cache_seconds=0)
        headers = {"Authorization": f"Bearer {self.token}"}
        body = {"query": "{ customers(first: 1) { nodes { id } } tags { id } }"}
        data = (await client.post("/graphql", json=body, headers=headers)).json()["data"]
        self.customer = data["customers"]["nodes"][0]["id"]
        self.tag, self.other_tag = data["tags"][0]["id"], data["tags"][-1]["id"]
        await client.aclose()
        await app.state.hub.engine.dispose()
        engine = create_engine(self.url, pool=False)
        async with engine.connect() as conn:
            name = "Synthetic Partner 1"
            found = await conn.scalar(select(col(Partner.id)).where(col(Partner.name) == name))
            self.partner_pk = int(found or 0)
        await engine.dispose()

    def ours(self, workload: str) -> dict[str, Any]:
        if workload == "directory":
            return {"query": query("directory_page"), "variables": {"first": 50}}
        if workload == "filtered":
            flt = {"statuses": ["LICENSE_OVERAGE"], "products": ["CALLING"], "tagIds": [self.tag]}
            return {"query": query("directory_page"), "variables": {"first": 50, "filter": flt}}
        if workload == "filtered_full":
            flt = {"statuses": ["ACTIVE"], "products": ["MEETINGS"], "tagIds": [self.tag]}
            return {"query": query("directory_page"), "variables": {"first": 50, "filter": flt}}
        if workload == "detail":
            return {"query": query("customer_detail"), "variables": {"id": self.customer}}
        if workload == "dashboard":
            return {"query": query("license_dashboard"), "variables": {"product": "MEETINGS"}}
        tagging = {"input": {"customerIds": [self.customer], "tagIds": [self.other_tag]}}
        writes = [{"query": ATTACH, "variables": tagging}, {"query": DETACH, "variables": tagging}]
        return {"bodies": mixed([self.ours(w) for w in READS], writes)}

    def postgraphile(self, workload: str) -> dict[str, Any]:
        if workload == "directory":
            document = query("postgraphile/directory_page")
            return {"query": document, "variables": {"partnerId": self.partner_pk, "first": 50}}
        if workload == "filtered":
            tag_pk = from_global_id(self.tag)[1]
            filtered = query("postgraphile/directory_page_filtered")
            return {"query": filtered, "variables": {"tagId": tag_pk, "first": 50}}
        detail = query("postgraphile/customer_detail")
        return {"query": detail, "variables": {"id": from_global_id(self.customer)[1]}}


async def statements(url: str, subjects: Subjects, naive: bool) -> dict[str, int]:
    """SQL statements of one request per workload, counted at the engine (cache off)."""
    from contextlib import nullcontext

    from bench.naive import patched

    counts: dict[str, int] = {}
    with patched() if naive else nullcontext():
        app, client = app_client(url, response_cache_seconds=0)
        engine = app.state.hub.engine
        seen: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        headers = {"Authorization": f"Bearer {subjects.token}"}
        for workload in READS:
            if naive and workload == "dashboard":
                continue  # no relationship fields: the same statements as Partner Hub
            body = subjects.ours(workload)
            await client.post("/graphql", json=body, headers=headers)  # warm-up
            seen.clear()
            response = await client.post("/graphql", json=body, headers=headers)
            assert not response.json().get("errors"), response.text[:300]
            counts[workload] = len(seen)
        await client.aclose()
        await engine.dispose()
    return counts


Server = Callable[[], AbstractAsyncContextManager[str]]


def servers(backend: str, url: str, workers: int, only: set[str]) -> dict[str, Server]:
    """Every server of the comparison, each on its own port (they run side by side)."""
    cold = {"PARTNER_HUB_RESPONSE_CACHE_SECONDS": "0"}
    found: dict[str, Server] = {
        "ours_cold": lambda: partner_hub_server(url, PORT, workers, cold),
        "ours_warm": lambda: partner_hub_server(url, PORT + 1, workers),
        # The baseline team has no response cache either.
        "naive": lambda: asgi_server(
            "bench.naive:create_naive_app", PORT + 2, workers, hub_env(url, **cold)
        ),
    }
    if backend == "postgresql":
        database = url.rsplit("/", 1)[1]
        found["postgraphile"] = lambda: postgraphile(database, PORT + 3, workers)
    return {name: server for name, server in found.items() if name in only}


def _workloads(name: str) -> tuple[str, ...]:
    return PEER_WORKLOADS if name == "postgraphile" else (*READS, "mixed")


def _request(name: str, base: str, subjects: Subjects, workload: str) -> tuple[str, Any, Any]:
    """URL, body and token of ``workload`` on server ``name``."""
    if name == "postgraphile":
        return base, subjects.postgraphile(workload), None
    return f"{base}/graphql", subjects.ours(workload), subjects.token


async def measure(
    backend: str, url: str, subjects: Subjects, *, load: bool, args: argparse.Namespace
) -> dict[str, Any]:
    """All servers up at once; latency interleaved, then wrk runs back to back per workload."""
    only = set(args.servers.split(",")) if load else {"ours_cold"}
    out: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        bases: dict[str, Any] = {}
        rss = {}
        for name, server in servers(backend, url, args.workers, only).items():
            bases[name] = await stack.enter_async_context(server())
            rss[name] = stack.enter_context(peak_rss([bases[name].pid]))
            out[name] = {}
        for workload in (*READS, "mixed"):
            names = [n for n in bases if workload in _workloads(n)]
            targets = {n: _request(n, bases[n], subjects, workload) for n in names}
            if workload != "mixed":
                runs = max(5, args.runs // 20) if workload == "dashboard" else args.runs
                for name, result in (await interleaved_latency(targets, runs)).items():
                    out[name][workload] = {"latency": result}
            if not load:
                continue
            levels = args.concurrency if workload != "dashboard" else [1]
            for c in levels:
                for name in names:
                    target, body, token = targets[name]
                    bodies = body.get("bodies", [body])
                    run = await run_wrk(target, bodies, token, c, args.seconds, timeout_s=60)
                    out[name].setdefault(workload, {}).setdefault("load", {})[str(c)] = run
            for name in names:
                print(f"    {name:12} {workload:10} {_brief(out[name][workload])}", flush=True)
        if load:
            for name in bases:
                if name != "postgraphile":
                    await _untag(f"{bases[name]}/graphql", subjects)
        for name, peak in rss.items():
            out[name]["peak_rss_mb"] = round(peak.mb, 1)
    return out


async def _untag(url: str, subjects: Subjects) -> None:
    """Leave the data set as it was: the mixed workload may stop after an attach."""
    import httpx

    tagging = {"input": {"customerIds": [subjects.customer], "tagIds": [subjects.other_tag]}}
    headers = {"Authorization": f"Bearer {subjects.token}"}
    async with httpx.AsyncClient(timeout=60) as client:
        await client.post(url, json={"query": DETACH, "variables": tagging}, headers=headers)


def _brief(result: dict[str, Any]) -> str:
    parts = []
    if "latency" in result:
        lat = result["latency"]
        parts.append(f"median {lat['median_ms']} ms p99 {lat['p99_ms']} ms err {lat['errors']}")
    for c, run in result.get("load", {}).items():
        errors = failed(run["errors"])
        parts.append(f"c{c} {run['requests_per_s']:.0f}/s err {errors} hits {run['cache_hits']}")
    return "; ".join(parts)


async def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict[str, Any] = {"machine": machine(), "date": date.today().isoformat(), "sizes": {}}
    report["versions"] = versions()
    for size in sizes:
        load = size == args.load_size
        url = await dataset(backend, size)
        token = await token_for(url, EMAIL)
        subjects = Subjects(url, token)
        await subjects.load()
        print(f"== {backend} {size:,} customers", flush=True)
        entry: dict[str, Any] = {
            "statements": {
                "ours": await statements(url, subjects, naive=False),
                "naive": await statements(url, subjects, naive=True),
            },
            "servers": {},
        }
        print(f"    statements {entry['statements']}", flush=True)
        # The flatness check (goal 2) needs only the cold latencies at the other sizes.
        entry["servers"] = await measure(backend, url, subjects, load=load, args=args)
        report["sizes"][str(size)] = entry
        _write(backend, report)
    report["flat"] = await measure_flatness(backend, sizes, args)
    _write(backend, report)
    return report


async def measure_flatness(
    backend: str, sizes: list[int], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Goal 2: Partner Hub (cache off) over every size at once, the sizes taking turns request
    by request, so that the ratios between sizes are not ratios of the machine's drift."""
    cold = {"PARTNER_HUB_RESPONSE_CACHE_SECONDS": "0"}
    async with AsyncExitStack() as stack:
        served: dict[str, tuple[str, Subjects]] = {}
        for offset, size in enumerate(sizes):
            url = await dataset(backend, size)
            subjects = Subjects(url, await token_for(url, EMAIL))
            await subjects.load()
            server = partner_hub_server(url, PORT + 10 + offset, args.workers, cold)
            served[str(size)] = (await stack.enter_async_context(server), subjects)
        flat = {}
        for workload in FLAT_WORKLOADS:
            targets = {
                size: _request("ours_cold", base, subjects, workload)
                for size, (base, subjects) in served.items()
            }
            flat[workload] = await interleaved_latency(targets, args.runs)
            for size, (url, body, token) in targets.items():
                flat[workload][size]["customers"] = await _customers_returned(url, body, token)
            print(f"    flat {workload:10} {flat[workload]}", flush=True)
    return flat


async def _customers_returned(url: str, body: dict[str, Any], token: str) -> int | None:
    """How many customers one response of a directory workload holds (None for others)."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    data = response.json().get("data") or {}
    customers = data.get("customers")
    return len(customers["nodes"]) if customers else None


def run_head(args: argparse.Namespace) -> dict[str, Any]:
    """What every run's report starts with: the machine, the versions, the day, the arguments."""
    return {
        "machine": machine(),
        "versions": versions(),
        "date": date.today().isoformat(),
        "args": vars(args),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    from bench.peers import POSTGRAPHILE_DIR

    found = {p: version(p) for p in ("strawberry-graphql", "graphql-core", "SQLAlchemy", "uvicorn")}
    package = POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "package.json"
    if package.exists():
        found["postgraphile"] = json.loads(package.read_text())["version"]
    found["node"] = os.popen("node --version").read().strip()
    found["wrk"] = os.popen("wrk -v 2>&1").read().split("\n")[0][:40]
    return found


def _write(backend: str, report: dict[str, Any]) -> None:
    from bench.peers_report import markdown

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = report["date"]
    (RESULTS / f"{stamp}-{backend}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{stamp}-{backend}.md").write_text(markdown(backend, report))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--load-size", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--servers", default="ours_cold,ours_warm,naive,postgraphile")
    parser.add_argument(
        "--flat-only",
        action="store_true",
        help="only re-measure goal 2 into today's saved results (the sizes side by side)",
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    for backend in args.backends.split(","):
        if args.flat_only:
            saved = RESULTS / f"{date.today().isoformat()}-{backend}.json"
            report = json.loads(saved.read_text())
            sizes = [int(s) for s in args.sizes.split(",")]
            report["flat"] = await measure_flatness(backend, sizes, args)
            _write(backend, report)
        else:
            report = await bench_backend(backend, args)
        from bench.peers_report import markdown

        print(markdown(backend, report))


if __name__ == "__main__":
    asyncio.run(main())
