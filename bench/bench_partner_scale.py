"""Issue 16 (calling, counts, caches, mixed load): each goal as a ratio measured in one run.

    .venv/bin/python -m bench.bench_partner_scale [--backends sqlite,postgresql]
        [--sizes 1000,100000] [--runs 30] [--seconds 20] [--skip-load]

Data: the shared synthetic data sets (``bench.common.dataset``: ``seed --customers N``, one
partner) with, added once, 1,000 Calling customers and 1,000,000 call records over nine weeks
(``bench.calling_data``, through the ingestion path). Measured, per backend:

1. ``callingAnalytics`` with every sub-field (``bench/queries/calling_dashboard.graphql``)
   against the directory page (workload 1, ``directory_page.graphql``), response cache off,
   in process, the sizes and documents taking turns request by request: ratio to the directory
   page at each size (goal <= 3) and of the largest size to the smallest (goal <= 1.5).
2. The directory's ``totalCount`` (``directory_page_total.graphql``) unfiltered and with one
   status, against the same page without it, at the largest size (goal <= 1.5).
3. Partner A's warm hit rate (response cache on, in process) while a second partner B writes
   every 20th request (a tag attached and detached in turn): goal >= 95 %.
4. Workload 5 (bench_peers' mix of workloads 1-4 with a write every 20th request) against the
   read-only directory page, throughput with wrk, 8 connections, over HTTP, cold server (cache
   off), at the largest size: goal >= 50 %.

Writes ``bench/results/<date>-partner-scale-<backend>.{json,md}`` and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import date
from typing import Any

import httpx
from sqlalchemy import insert, select

from bench.bench_peers import PORT, Subjects, versions
from bench.calling_data import ensure_calls
from bench.common import NOW, RESULTS, app_client, dataset, machine, query, token_for
from bench.load import mixed, run_wrk
from bench.peers import UNLIMITED_COST_PER_MINUTE, partner_hub_server
from db.engine import create_engine
from db.models import Admin, Customer, Partner, Tag

EMAIL = "full@synth1.example"
B_EMAIL = "full@bench-b.example"
TAG_B = "mutation M($input: CustomerTagsInput!) { addTagsToCustomers(input: $input) { changed } }"
UNTAG_B = (
    "mutation M($input: CustomerTagsInput!) { removeTagsFromCustomers(input: $input) { changed } }"
)


def documents(tag: str | None = None) -> dict[str, dict[str, Any]]:
    status = {"statuses": ["ACTIVE"]}
    return {
        "directory": {"query": query("directory_page"), "variables": {"first": 50}},
        "directory_total": {"query": query("directory_page_total"), "variables": {"first": 50}},
        "status": {
            "query": query("directory_page"),
            "variables": {"first": 50, "filter": status},
        },
        "status_total": {
            "query": query("directory_page_total"),
            "variables": {"first": 50, "filter": status},
        },
        "calling": {"query": query("calling_dashboard"), "variables": {"first": 10}},
    }


async def _post(client: httpx.AsyncClient, body: dict[str, Any], token: str) -> httpx.Response:
    response = await client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    payload = response.json()
    assert response.status_code == 200 and not payload.get("errors"), payload
    return response


async def latencies(urls: dict[int, str], runs: int) -> dict[str, dict[int, float]]:
    """Goals 1 and 2: medians (ms) per document and size, cache off, in turns."""
    clients, tokens = {}, {}
    for size, url in urls.items():
        tokens[size] = await token_for(url, EMAIL)
        # No rate limit: --runs above 30 would spend more than a token's budget a minute.
        clients[size] = app_client(
            url, response_cache_seconds=0, cost_per_minute=UNLIMITED_COST_PER_MINUTE
        )
    docs = documents()
    samples: dict[str, dict[int, list[float]]] = {d: {s: [] for s in urls} for d in docs}
    pairs = [(d, s) for d in docs for s in urls]
    try:
        for round_ in range(runs + 3):
            shift = round_ % len(pairs)
            for name, size in pairs[shift:] + pairs[:shift]:
                _, client = clients[size]
                started = time.perf_counter()
                await _post(client, docs[name], tokens[size])
                if round_ >= 3:
                    samples[name][size].append((time.perf_counter() - started) * 1000)
    finally:
        for app, client in clients.values():
            await client.aclose()
            await app.state.hub.engine.dispose()
    return {d: {s: statistics.median(v) for s, v in per.items()} for d, per in samples.items()}


async def partner_b(url: str) -> tuple[str, str, str]:
    """A second partner with a full admin, a customer and a tag (made once): (token, customer
    global id, tag global id)."""
    from graph.ids import to_global_id

    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as conn:
            found = await conn.scalar(select(Partner.id).where(Partner.domain == "bench-b.example"))
            if found is None:
                found = (
                    await conn.execute(
                        insert(Partner).values(
                            name="Bench Partner B",
                            domain="bench-b.example",
                            setup_state="COMPLETE",
                            created_at=NOW,
                        )
                    )
                ).inserted_primary_key[0]
                await conn.execute(
                    insert(Admin).values(
                        partner_id=found,
                        email=B_EMAIL,
                        name="B",
                        role="FULL_ADMIN",
                        active=True,
                        created_at=NOW,
                    )
                )
                await conn.execute(
                    insert(Customer).values(
                        partner_id=found,
                        external_id="B-1",
                        name="B customer",
                        name_key="b customer",
                        created_at=NOW,
                        managed_by="EXTERNAL_ADMIN",
                    )
                )
                await conn.execute(
                    insert(Tag).values(partner_id=found, name="b", name_key="b", created_at=NOW)
                )
            customer = await conn.scalar(select(Customer.id).where(Customer.partner_id == found))
            tag = await conn.scalar(select(Tag.id).where(Tag.partner_id == found))
    finally:
        await engine.dispose()
    token = await token_for(url, B_EMAIL)
    return token, to_global_id("Customer", int(customer or 0)), to_global_id("Tag", int(tag or 0))


async def hit_rate(url: str, cycles: int) -> dict[str, Any]:
    """Goal 3: partner A reads (3 documents in turn), partner B writes every 20th request."""
    b_token, b_customer, b_tag = await partner_b(url)
    a_token = await token_for(url, EMAIL)
    docs = documents()
    reads = [docs["directory"], docs["status"], docs["calling"]]
    tagging = {"input": {"customerIds": [b_customer], "tagIds": [b_tag]}}
    writes = [
        {"query": TAG_B, "variables": tagging},
        {"query": UNTAG_B, "variables": tagging},
    ]
    # The response cache on (its defaults); no rate limit (hits spend cost too).
    app, client = app_client(url, cost_per_minute=UNLIMITED_COST_PER_MINUTE)
    hits = misses = 0
    try:
        for body in reads:  # warm
            await _post(client, body, a_token)
        for cycle in range(cycles):
            for body in mixed(reads, writes):
                is_write = body in writes
                response = await _post(client, body, b_token if is_write else a_token)
                if not is_write:
                    hit = response.headers.get("x-partner-hub-cache") == "hit"
                    hits, misses = hits + hit, misses + (not hit)
            del cycle
    finally:
        await client.aclose()
        await app.state.hub.engine.dispose()
    return {"a_reads": hits + misses, "a_hits": hits, "hit_rate": hits / max(1, hits + misses)}


async def throughput(url: str, seconds: int) -> dict[str, Any]:
    """Goal 4: read-only directory and workload 5, 8 connections, one cold server."""
    token = await token_for(url, EMAIL)
    subjects = Subjects(url, token)
    await subjects.load()
    cold = {"PARTNER_HUB_RESPONSE_CACHE_SECONDS": "0"}
    workers = os.cpu_count() or 1
    out: dict[str, Any] = {}
    async with partner_hub_server(url, PORT + 30, workers, cold) as base:
        for name, bodies in (
            ("directory", [subjects.ours("directory")]),
            ("mixed", subjects.ours("mixed")["bodies"]),
        ):
            run = await run_wrk(f"{base}/graphql", bodies, token, 8, seconds)
            out[name] = run
            print(f"    wrk {name}: {json.dumps(run)[:300]}", flush=True)
    return out


def _rps(run: dict[str, Any]) -> float:
    for key in ("requests_per_s", "rps", "requests_per_second"):
        if key in run:
            return float(run[key])
    return float(run.get("requests", 0)) / max(1e-9, float(run.get("duration_s", 1)))


async def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    urls = {}
    for size in sizes:
        urls[size] = await dataset(backend, size)
        print(f"  {backend} {size:,}: {await ensure_calls(urls[size])}", flush=True)
    largest = urls[sizes[-1]]
    report: dict[str, Any] = {"backend": backend, "sizes": sizes}
    report["latency_ms"] = await latencies(urls, args.runs)
    print(f"  latency {report['latency_ms']}", flush=True)
    report["hit_rate"] = await hit_rate(largest, args.cycles)
    print(f"  hit rate {report['hit_rate']}", flush=True)
    if not args.skip_load:
        report["load"] = await throughput(largest, args.seconds)
    return report


def markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, ""]
    lines += [
        "| backend | goal | measured | ratio | goal |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for r in results:
        b, lat, (small, large) = r["backend"], r["latency_ms"], (r["sizes"][0], r["sizes"][-1])
        for size in (small, large):
            c, d = lat["calling"][size], lat["directory"][size]
            lines.append(
                f"| {b} | callingAnalytics / directory page, {size:,} customers "
                f"| {c:.1f} / {d:.1f} ms | {c / d:.2f}x | <= 3x |"
            )
        c1, c2 = lat["calling"][small], lat["calling"][large]
        lines.append(
            f"| {b} | callingAnalytics {large:,} / {small:,} customers | {c2:.1f} / {c1:.1f} ms "
            f"| {c2 / c1:.2f}x | <= 1.5x |"
        )
        for name, label in (("directory", "unfiltered"), ("status", "one status")):
            t, p = lat[f"{name}_total"][large], lat[name][large]
            lines.append(
                f"| {b} | directory with / without totalCount, {label}, {large:,} "
                f"| {t:.1f} / {p:.1f} ms | {t / p:.2f}x | <= 1.5x |"
            )
        h = r["hit_rate"]
        lines.append(
            f"| {b} | partner A warm hit rate, partner B writing every 20th request "
            f"| {h['a_hits']} / {h['a_reads']} | {100 * h['hit_rate']:.1f} % | >= 95 % |"
        )
        if "load" in r:
            m, d = _rps(r["load"]["mixed"]), _rps(r["load"]["directory"])
            lines.append(
                f"| {b} | workload 5 / read-only directory, 8 connections, cold, {large:,} "
                f"| {m:.1f} / {d:.1f} req/s | {100 * m / d:.0f} % | >= 50 % |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    results = [await bench_backend(b, args) for b in args.backends.split(",")]
    header = f"Issue 16 goals, in one run per backend ({machine()}; {json.dumps(versions())})"
    table = markdown(results, header)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = date.today().isoformat()
    (RESULTS / f"{stamp}-partner-scale.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{stamp}-partner-scale.md").write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
