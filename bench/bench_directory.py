"""Benchmark: the customer directory page at 1,000 and 100,000 customers (issue 3).

    .venv/bin/python -m bench.bench_directory [--sizes 1000,100000] [--backends sqlite,postgresql]
        [--runs 30]

One synthetic partner (``seed --customers N --partners 1 --random-seed 1``); the full admin asks
for a page of 50 customers with every relationship field
(``bench/queries/directory_page_full.graphql``) unfiltered and filtered by one status, one
product and one tag, through the ASGI app in-process.
Reported: median and p95 latency, SQL statements per request, and the ratio of the largest size
to the smallest (goal: within 1.5x, cost flat in the partner's size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from typing import Any

from sqlalchemy import event

from bench.common import RESULTS, app_client, dataset, machine, query, timed, token_for

EMAIL = "full@synth1.example"


async def measure(backend: str, size: int, runs: int) -> dict[str, Any]:
    url = await dataset(backend, size)
    token = await token_for(url, EMAIL)
    app, client = app_client(url, response_cache_seconds=0)  # every run executes
    headers = {"Authorization": f"Bearer {token}"}
    document = query("directory_page_full")
    tags = await client.post("/graphql", json={"query": "{ tags { id name } }"}, headers=headers)
    tag_id = tags.json()["data"]["tags"][0]["id"]
    workloads = {
        "unfiltered": None,
        "status": {"statuses": ["LICENSE_OVERAGE"]},
        "product": {"products": ["CALLING"]},
        "tag": {"tagIds": [tag_id]},
    }
    engine = app.state.hub.engine
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    out: dict[str, Any] = {}
    for name, flt in workloads.items():
        payload = {"query": document, "variables": {"first": 50, "filter": flt}}

        async def call(payload: dict[str, Any] = payload, name: str = name) -> None:
            response = await client.post("/graphql", json=payload, headers=headers)
            body = response.json()
            assert response.status_code == 200 and not body.get("errors"), body
            assert len(body["data"]["customers"]["nodes"]) > 0, name

        statements.clear()
        await call()
        count = len(statements)
        out[name] = {**await timed(call, runs), "statements": count}
        print(f"  {backend:10} {size:>7} {name:10} {out[name]}")
    await client.aclose()
    await engine.dispose()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"machine": machine(), "date": date.today().isoformat()}
    lines = [
        f"Directory page of 50 with every field, in-process ({results['machine']})",
        "",
        "| backend | workload | "
        + " | ".join(f"{s:,} median ms" for s in sizes)
        + f" | ratio {sizes[-1]:,}/{sizes[0]:,} | SQL statements |",
        "| --- | --- | " + " | ".join("---:" for _ in sizes) + " | ---: | ---: |",
    ]
    for backend in args.backends.split(","):
        per_size = {size: await measure(backend, size, args.runs) for size in sizes}
        results[backend] = per_size
        for workload in per_size[sizes[0]]:
            medians = [per_size[s][workload]["median_ms"] for s in sizes]
            ratio = medians[-1] / medians[0]
            lines.append(
                f"| {backend} | {workload} | "
                + " | ".join(f"{m:.1f}" for m in medians)
                + f" | {ratio:.2f}x | {per_size[sizes[-1]][workload]['statements']} |"
            )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = date.today().isoformat()
    (RESULTS / f"{stamp}-directory.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{stamp}-directory.md").write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
