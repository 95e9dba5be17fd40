"""Profile one workload in-process with pyinstrument (issue 8: before / after of the speed work).

    .venv/bin/python -m bench.profile [--workload directory_page|filtered_page|customer_detail|
        license_dashboard] [--backend postgresql]
        [--customers 100000] [--runs 50] [--html out.html] [--cache]

The response cache is off unless ``--cache`` is given (a cold request is what is to be
profiled). Prints the slowest frames of ``runs`` requests after a warm-up, so a change to the
request path can be judged by what it removed from the profile, not only by a noisy wall-clock
figure.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from bench.common import app_client, dataset, query, token_for

EMAIL = "full@synth1.example"


async def payload_for(workload: str, client: Any, headers: dict[str, str]) -> dict[str, Any]:
    if workload == "customer_detail":
        page = await client.post(
            "/graphql", json={"query": "{ customers(first: 1) { nodes { id } } }"}, headers=headers
        )
        customer = page.json()["data"]["customers"]["nodes"][0]["id"]
        return {"query": query(workload), "variables": {"id": customer}}
    if workload == "license_dashboard":
        return {"query": query(workload), "variables": {"product": "MEETINGS"}}
    if workload == "filtered_page":  # workload 2: bench_peers' filter on the first tag
        tags = await client.post("/graphql", json={"query": "{ tags { id } }"}, headers=headers)
        tag = tags.json()["data"]["tags"][0]["id"]
        flt = {"statuses": ["LICENSE_OVERAGE"], "products": ["CALLING"], "tagIds": [tag]}
        return {"query": query("directory_page"), "variables": {"first": 50, "filter": flt}}
    return {"query": query(workload), "variables": {"first": 50}}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="directory_page")
    parser.add_argument("--backend", default="postgresql")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--html", default="")
    parser.add_argument(
        "--cache", action="store_true", help="keep the response cache on (profiles hits)"
    )
    args = parser.parse_args()
    url = await dataset(args.backend, args.customers)
    headers = {"Authorization": f"Bearer {await token_for(url, EMAIL)}"}
    app, client = app_client(url, **({} if args.cache else {"response_cache_seconds": 0}))
    payload = await payload_for(args.workload, client, headers)
    for _ in range(5):
        response = await client.post("/graphql", json=payload, headers=headers)
        assert not response.json().get("errors"), response.text[:500]
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    with profiler:
        for _ in range(args.runs):
            await client.post("/graphql", json=payload, headers=headers)
    await client.aclose()
    await app.state.hub.engine.dispose()
    if args.html:
        await asyncio.to_thread(Path(args.html).write_text, profiler.output_html())
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    asyncio.run(main())
