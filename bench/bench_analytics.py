"""Benchmark: the full license dashboard through the API vs. its own SQL run bare (the floor).

    .venv/bin/python bench/bench_analytics.py [--backend sqlite|postgresql|both] [--runs 15]

On 100,000 synthetic customers (``partner-hub seed --customers 100000 --random-seed 1``, with
``now`` pinned to 2026-11-26T00:00Z) — the data sets every benchmark shares through
``bench.common.dataset``: ``bench/data/partner_hub_bench_100000.db`` and the PostgreSQL database
``partner_hub_bench_100000``, each created and seeded on first use, then reused — it measures
the median latency of one dashboard request (``licenseKpis`` + every section's KPIs + the first
page of every section's rows + the 13-week trend, one product) through the ASGI app in process
(httpx ``ASGITransport``), and the median time of the very same SQL statements, captured with a
``before_cursor_execute`` listener during one request and replayed with the same parameters on
the driver's own connection (aiosqlite / asyncpg), fetching every row. The ratio API / floor is
the price of the GraphQL layer (goal: <= 1.5).

Not a test: run it by hand (``make bench``); it prints the table for the README and writes it
to ``bench/results/<date>-analytics.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import NOW, RESULTS, dataset, machine, query, token_for  # noqa: E402
from db.engine import create_engine  # noqa: E402
from db.settings import Settings  # noqa: E402
from graph.app import create_app  # noqa: E402

CUSTOMERS = 100_000
EMAIL = "full@synth1.example"

DASHBOARD = query("license_dashboard")


async def prepare(backend: str) -> str:
    """The shared 100,000-customer data set; PostgreSQL's planner statistics refreshed."""
    url = await dataset(backend, CUSTOMERS)
    if backend == "postgresql":
        # A production database has statistics (autovacuum); a fresh bulk load may not yet.
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        await engine.dispose()
    return url


async def bench(backend: str, runs: int, product: str) -> dict[str, Any]:
    url = await prepare(backend)
    engine = create_engine(url)
    settings = Settings(
        database_url=url, now=NOW, secret_key="bench-secret", response_cache_seconds=0
    )
    app = create_app(settings, engine=engine)
    token = await token_for(url, EMAIL)
    headers = {"Authorization": f"Bearer {token}"}
    payload = {"query": DASHBOARD, "variables": {"product": product}}
    captured: list[tuple[str, Any]] = []
    capturing = False

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if capturing:
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def request() -> float:
            started = time.perf_counter()
            response = await client.post("/graphql", json=payload, headers=headers)
            elapsed = time.perf_counter() - started
            body = response.json()
            assert response.status_code == 200 and not body.get("errors"), body
            return elapsed

        for _ in range(3):  # warm-up: app start, caches, the database's own caches
            await request()
        capturing = True
        await request()
        capturing = False
        api_times = [await request() for _ in range(runs)]
    event.remove(engine.sync_engine, "before_cursor_execute", capture)

    floor_times = []
    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        for i in range(runs + 2):
            started = time.perf_counter()
            for statement, parameters in captured:
                if backend == "sqlite":
                    cursor = await raw.execute(statement, parameters)
                    await cursor.fetchall()
                    await cursor.close()
                else:
                    await raw.fetch(statement, *parameters)
            if i >= 2:
                floor_times.append(time.perf_counter() - started)
    await engine.dispose()
    api = statistics.median(api_times) * 1000
    floor = statistics.median(floor_times) * 1000
    return {
        "backend": backend,
        "statements": len(captured),
        "api_ms": api,
        "floor_ms": floor,
        "ratio": api / floor,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--product", choices=("MEETINGS", "CALLING"), default="MEETINGS")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = [await bench(b, args.runs, args.product) for b in backends]
    lines = [
        f"Dashboard ({args.product}), {CUSTOMERS:,} customers, median of {args.runs} runs, "
        f"in-process ({machine()})",
        "",
        "| backend | statements | API (ms) | SQL floor (ms) | API / floor |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {r['backend']} | {r['statements']} | {r['api_ms']:.1f} | {r['floor_ms']:.1f} "
            f"| {r['ratio']:.2f} |"
            for r in results
        ],
    ]
    table = "\n".join(lines)
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = date.today().isoformat()
    (RESULTS / f"{stamp}-analytics.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{stamp}-analytics.md").write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
