"""Which plans PostgreSQL keeps for the read workloads' prepared statements (issue 17).

    .venv/bin/python -m bench.plans [--customers 100000] [--runs 12]

PostgreSQL plans a prepared statement's first five executions with their parameters (custom
plans), then keeps its generic plan unless that is estimated dearer than the custom ones; a
statement whose generic plan never wins is planned anew at every execution (0.5-0.9 ms of the
database's CPU for a directory or walked page here). What tips it is not obvious (a LIMIT
written into the text made the directory page's generic plan win and the walked page's lose:
``db.engine.written_limit``), so this runs each workload ``runs`` times in process on one pooled
connection and prints, per statement, ``generic_plans`` and ``custom_plans`` from
``pg_prepared_statements``: a statement run every request should show ``custom 5`` (only
statements run at least ``runs // 2`` times are printed). Like ``bench.profile`` it signs in
(one API token row) on the benchmark database, which ``dataset`` makes when missing.
"""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import text

from bench.common import app_client, dataset, token_for
from bench.profile import EMAIL, payload_for

WORKLOADS = ("directory_page", "filtered_page", "customer_detail")


async def plans(url: str, workload: str, runs: int) -> list[tuple[int, int, str]]:
    headers = {"Authorization": f"Bearer {await token_for(url, EMAIL)}"}
    app, client = app_client(
        url, response_cache_seconds=0, database_pool_size=1, database_pool_overflow=0
    )
    try:
        payload = await payload_for(workload, client, headers)
        for _ in range(runs):
            response = await client.post("/graphql", json=payload, headers=headers)
            assert not response.json().get("errors"), response.text[:300]
        async with app.state.hub.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements"
                    " WHERE generic_plans + custom_plans >= :runs ORDER BY statement"
                ),
                {"runs": runs // 2},
            )
            return [(int(g), int(c), " ".join(s.split())[:110]) for g, c, s in rows]
    finally:
        await client.aclose()
        await app.state.hub.engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    url = await dataset("postgresql", args.customers)
    for workload in WORKLOADS:
        print(workload)
        for generic, custom, statement in await plans(url, workload, args.runs):
            print(f"  generic {generic:3d}  custom {custom:3d}  {statement}")


if __name__ == "__main__":
    asyncio.run(main())
