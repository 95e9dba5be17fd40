"""Authorization cost with 10 vs 100,000 customer assignments (not a test).

DESIGN.md section 4: Casbin decides per role and kind of object, the ``assigned`` scope is an
``EXISTS`` on the assignment table, so a partner admin with 100,000 assigned customers should
cost no more per request than one with ten. This measures the directory page (50 customers,
with statuses, products and tags) through the app in-process, median of ``--runs`` requests:

- ``pa_10``: a PARTNER_ADMIN with 10 assigned customers (its page holds those 10);
- ``pa_100k``: a PARTNER_ADMIN with 100,000 assigned customers;
- ``full``: a FULL_ADMIN over the same customers (no assignment check), the baseline.

Each is measured with and without ``totalCount`` (counting 100,000 visible customers is work
proportional to what the caller sees, for any role). The Casbin decision itself is timed too.

Reading it: "many/10" compares the two partner admins (flat is ~1 on the page of 10, where
both pages hold 10 customers); "many/full" is the price of the assignment check itself.

    .venv/bin/python bench/bench_authz.py [--backend sqlite|postgresql] [--customers 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.engine import create_engine, session_factory  # noqa: E402
from db.migrate import migrate  # noqa: E402
from db.models import Admin, Customer, CustomerAssignment, Partner  # noqa: E402
from db.queries.admins import Principal, issue_token  # noqa: E402
from db.settings import Settings  # noqa: E402
from graph.app import create_app  # noqa: E402
from graph.auth.permissions import Act, Obj  # noqa: E402

NOW = datetime(2026, 11, 26, tzinfo=UTC)
PG_ADMIN = os.environ.get(
    "PARTNER_HUB_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
VARIANTS = [  # label, extra selection, first
    ("directory page (first 50)", "", 50),
    ("page of 10 (first 10)", "", 10),
    ("first 50 + totalCount", "totalCount", 50),
]
PAGE = """
query Directory($first: Int!) {
  customers(first: $first) {
    %s
    nodes { id name managedBy statuses products tags { name } }
    pageInfo { endCursor hasNextPage }
  }
}
"""


PG_NAME = "partner_hub_bench_authz"


async def pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN.replace("+asyncpg", ""))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def database(backend: str, tmp: str) -> str:
    """A fresh database: a file in ``tmp``, or PostgreSQL database ``PG_NAME``."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp}/bench_authz.db"
    await pg_admin(
        f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)', f'CREATE DATABASE "{PG_NAME}"'
    )
    return f"{PG_ADMIN.rpartition('/')[0]}/{PG_NAME}"


async def load(url: str, customers: int) -> tuple[dict[str, str], Principal]:
    """One partner, ``customers`` customers, three admins: bearer tokens by admin key, and the
    100k partner admin as a principal."""
    engine = create_engine(url)
    await migrate(engine)
    started = time.perf_counter()
    async with engine.begin() as conn:
        partner = (
            await conn.execute(
                insert(Partner).values(
                    name="Acme Partners", domain="acme.example", setup_state="READY", created_at=NOW
                )
            )
        ).inserted_primary_key[0]
        admins = {}
        for key, role in (
            ("full", "FULL_ADMIN"),
            ("pa_10", "PARTNER_ADMIN"),
            ("pa_100k", "PARTNER_ADMIN"),
        ):
            admins[key] = (
                await conn.execute(
                    insert(Admin).values(
                        partner_id=partner,
                        email=f"{key}@acme.example",
                        name=key,
                        role=role,
                        active=True,
                        created_at=NOW,
                    )
                )
            ).inserted_primary_key[0]
        chunk = 5_000
        for start in range(0, customers, chunk):
            rows = [
                {
                    "id": i + 1,
                    "partner_id": partner,
                    "external_id": f"EXT-{i:07d}",
                    "name": f"Customer {i * 7919 % customers:07d}",
                    "name_key": f"customer {i * 7919 % customers:07d}",
                    "created_at": NOW - timedelta(minutes=i),
                    "managed_by": "EXTERNAL_ADMIN",
                    "last_admin_sign_in_at": NOW - timedelta(days=i % 60),
                }
                for i in range(start, min(start + chunk, customers))
            ]
            await conn.execute(insert(Customer), rows)
            assigned = [
                {
                    "customer_id": r["id"],
                    "admin_id": admins["pa_100k"],
                    "partner_id": partner,
                    "assigned_at": NOW,
                }
                for r in rows
            ]
            await conn.execute(insert(CustomerAssignment), assigned)
        # ten customers spread over the name order
        ten = [
            {
                "customer_id": 1 + i * (customers // 10),
                "admin_id": admins["pa_10"],
                "partner_id": partner,
                "assigned_at": NOW,
            }
            for i in range(10)
        ]
        await conn.execute(insert(CustomerAssignment), ten)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.exec_driver_sql("COMMIT")
            await conn.exec_driver_sql("ANALYZE")
    else:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    tokens = {}
    async with session_factory(engine)() as session:
        for key, pk in admins.items():
            tokens[key] = await issue_token(session, admin_id=pk, now=NOW)
        await session.commit()
    await engine.dispose()
    principal = Principal(
        admins["pa_100k"], partner, "pa_100k@acme.example", "pa_100k", "PARTNER_ADMIN", 0
    )
    print(
        f"loaded {customers:,} customers and {customers + 10:,} assignments in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return tokens, principal


async def median_ms(
    client: httpx.AsyncClient, token: str, document: str, first: int, runs: int
) -> tuple[float, int]:
    """Median latency (ms) of ``runs`` requests, and how many customers the page held."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {"query": document, "variables": {"first": first}}
    rows = 0
    for _ in range(3):  # warm up: enforcer, caches, connection pool
        response = await client.post("/graphql", json=body, headers=headers)
        data = response.json()
        assert not data.get("errors"), data
        rows = len(data["data"]["customers"]["nodes"])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.post("/graphql", json=body, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = await database(args.backend, tmp)
        tokens, principal = await load(url, args.customers)
        settings = Settings(database_url=url, now=NOW, secret_key="bench", response_cache_seconds=0)
        engine = create_engine(url)
        app = create_app(settings, engine=engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            results: dict[tuple[str, str], tuple[float, int]] = {}
            for label, selection, first in VARIANTS:
                for key in ("pa_10", "pa_100k", "full"):
                    results[(label, key)] = await median_ms(
                        client, tokens[key], PAGE % selection, first, args.runs
                    )
            hub = app.state.hub
            services = await hub.start()
            started = time.perf_counter()
            for _ in range(10_000):
                services.authorizer.scope(principal, Obj.CUSTOMER, Act.READ)
            decision_us = (time.perf_counter() - started) / 10_000 * 1e6
            policy_lines = len(services.authorizer.lines)
        await engine.dispose()
        if args.backend == "postgresql":
            await pg_admin(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')

    many = f"PA {args.customers:,} assigned"
    print(
        f"\nbackend {args.backend}, {os.cpu_count()} cores, median of {args.runs} requests "
        "(ms; customers on the page in brackets)"
    )
    print(
        f"{'':28} {'PA 10 assigned':>16} {many:>22} {'FULL_ADMIN':>14}"
        f" {'many/10':>8} {'many/full':>10}"
    )
    for label, _, _ in VARIANTS:
        small, big, full = (results[(label, k)] for k in ("pa_10", "pa_100k", "full"))
        print(
            f"{label:28} {small[0]:11.1f} ({small[1]:2d}) {big[0]:17.1f} ({big[1]:2d}) "
            f"{full[0]:9.1f} ({full[1]:2d}) {big[0] / small[0]:8.2f} {big[0] / full[0]:10.2f}"
        )
    print(
        f"Casbin decision (cached per role/object/action): {decision_us:.2f} µs; "
        f"{policy_lines} policy lines whatever the number of assignments"
    )


if __name__ == "__main__":
    asyncio.run(main())
