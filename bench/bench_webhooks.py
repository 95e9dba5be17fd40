"""Webhooks (issue 20), not a test:

1. deliveries per second from one server's delivery loop to a local receiver (its own
   process), signing each request with ``standardwebhooks``;
2. what a write pays for its outbox: the same tag mutation (add then remove a tag on one
   customer: the customer directory's write) with no endpoint, with an endpoint subscribed to
   another event, and with one subscribed to CUSTOMER_TAGS_CHANGED (an event row and a
   delivery row per call). Rounds alternate the three, through the app in-process.

    .venv/bin/python bench/bench_webhooks.py [--backend sqlite|postgresql] [--events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, event, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    NOW,
    PG_BASE,
    machine,
    pg_create,
)
from db.clock import Clock  # noqa: E402
from db.engine import create_engine, session_factory  # noqa: E402
from db.migrate import migrate  # noqa: E402
from db.models import Admin, Customer, Partner, Tag  # noqa: E402
from db.queries.admins import issue_token  # noqa: E402
from db.settings import Settings  # noqa: E402
from db.webhook_models import WebhookDelivery, WebhookEndpoint, WebhookOutboxEvent  # noqa: E402
from db.webhooks.outbox import write_event  # noqa: E402
from db.webhooks.secrets import new_secret, seal  # noqa: E402
from graph.app import create_app  # noqa: E402
from graph.ids import to_global_id  # noqa: E402
from graph.webhooks.sender import new_client, send  # noqa: E402
from graph.webhooks.worker import WebhookWorker  # noqa: E402

SECRET = b"bench-secret"
TAGS = (
    "mutation T($input: CustomerTagsInput!) { %s(input: $input) { changed userErrors { code } } }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def database(backend: str) -> str:
    if backend == "postgresql":
        await pg_create("partner_hub_bench_webhooks")
        return f"{PG_BASE}/partner_hub_bench_webhooks"
    return f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/webhooks.db"


async def base_rows(engine: Any) -> tuple[int, int, int]:
    async with engine.begin() as conn:

        async def add(table: Any, **values: Any) -> int:
            result = await conn.execute(insert(table).values(**values))
            return int(result.inserted_primary_key[0])

        partner = await add(
            Partner, name="Acme", domain="acme.example", setup_state="DONE", created_at=NOW
        )
        await add(
            Admin,
            partner_id=partner,
            email="full@acme.example",
            name="Full",
            role="FULL_ADMIN",
            active=True,
            created_at=NOW,
        )
        customer = await add(
            Customer,
            partner_id=partner,
            external_id="EXT-1",
            name="Initech",
            name_key="initech",
            created_at=NOW,
            managed_by="EXTERNAL_ADMIN",
            last_admin_sign_in_at=NOW,
        )
        tag = await add(Tag, partner_id=partner, name="Gold", name_key="gold", created_at=NOW)
    return partner, customer, tag


async def endpoint(engine: Any, partner: int, url: str, events: str) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(WebhookEndpoint).values(
                partner_id=partner,
                url=url,
                description="bench",
                events=events,
                secret=seal(new_secret(), SECRET),
                active=True,
                created_at=NOW,
            )
        )
        return int(result.inserted_primary_key[0])


async def clear_hooks(engine: Any) -> None:
    async with engine.begin() as conn:
        for table in (WebhookDelivery, WebhookOutboxEvent, WebhookEndpoint):
            await conn.execute(delete(table))


async def deliveries_per_second(
    engine: Any, settings: Settings, partner: int, n: int
) -> tuple[float, float]:
    port = free_port()
    receiver = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing
        [sys.executable, str(ROOT / "bench" / "webhook_receiver.py"), str(port)]
    )
    try:
        await asyncio.sleep(1.5)
        # The same receiver with bare signed POSTs, 20 at once and no database: the ceiling
        # this machine puts on any sender.
        limit = asyncio.Semaphore(settings.webhook_concurrency)
        sign = new_secret()
        async with new_client() as client:

            async def bare() -> None:
                async with limit:
                    await send(
                        client,
                        settings,
                        url=f"http://127.0.0.1:{port}/",
                        secret=sign,
                        message_id="msg_bare",
                        body="{}",
                    )

            started = time.perf_counter()
            await asyncio.gather(*(bare() for _ in range(n)))
            ceiling = n / (time.perf_counter() - started)
        endpoint_id = await endpoint(engine, partner, f"http://127.0.0.1:{port}/", "ORDER_CREATED")
        async with session_factory(engine)() as session:
            for i in range(n):
                await write_event(
                    session,
                    partner_id=partner,
                    event="ORDER_CREATED",
                    data={"orderNumber": f"ORD-{i}"},
                    endpoint_ids=[endpoint_id],
                    customer_id=None,
                    now=NOW,
                )
            await session.commit()
        worker = WebhookWorker(engine, settings, SECRET, Clock(NOW).now, name="bench")
        started = time.perf_counter()
        done = 0
        while done < n:
            got = await worker.deliver_due()
            if not got:
                break
            done += got
        elapsed = time.perf_counter() - started
        await worker.aclose()
        async with engine.connect() as conn:
            ok = len(
                (
                    await conn.execute(
                        select(WebhookDelivery.id).where(WebhookDelivery.status == "SUCCEEDED")  # type: ignore[call-overload, arg-type]
                    )
                ).all()
            )
        assert ok == n, f"{ok} of {n} delivered"
        return n / elapsed, ceiling
    finally:
        receiver.terminate()
        receiver.wait()


async def mutation_costs(
    engine: Any, settings: Settings, partner: int, customer: int, tag: int, calls: int, rounds: int
) -> dict[str, tuple[float, int]]:
    app = create_app(settings, engine=engine)
    async with session_factory(engine)() as session:
        admin = (await session.execute(select(Admin.id))).scalar_one()  # type: ignore[call-overload]
        token = await issue_token(session, admin_id=admin, now=NOW)
        await session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    variables = {
        "input": {
            "customerIds": [to_global_id("Customer", customer)],
            "tagIds": [to_global_id("Tag", tag)],
        }
    }
    results: dict[str, list[float]] = {"none": [], "other event": [], "subscribed": []}
    statements: dict[str, int] = {}
    counted: list[int] = [0]

    def count(*_: Any) -> None:
        counted[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def one(field: str) -> None:
            r = await client.post(
                "/graphql", json={"query": TAGS % field, "variables": variables}, headers=headers
            )
            assert r.json()["data"][field]["userErrors"] == [], r.text

        for _ in range(5):  # warm up
            await one("addTagsToCustomers")
            await one("removeTagsFromCustomers")
        cases = list(results)
        for r in range(rounds):
            for case in cases[r % 3 :] + cases[: r % 3]:  # each case first in turn
                await clear_hooks(engine)
                if case == "other event":
                    await endpoint(
                        engine, partner, "https://93.184.215.14/", "HELPDESK_CASE_UPDATED"
                    )
                if case == "subscribed":
                    await endpoint(
                        engine, partner, "https://93.184.215.14/", "CUSTOMER_TAGS_CHANGED"
                    )
                counted[0] = 0
                started = time.perf_counter()
                for _ in range(calls):
                    await one("addTagsToCustomers")
                    await one("removeTagsFromCustomers")
                results[case].append((time.perf_counter() - started) * 1000 / (2 * calls))
                statements[case] = counted[0] // (2 * calls)
    event.remove(engine.sync_engine, "before_cursor_execute", count)
    return {case: (statistics.median(values), statements[case]) for case, values in results.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = await database(args.backend)
    engine = create_engine(url)
    await migrate(engine)
    settings = Settings(
        database_url=url,
        now=NOW,
        secret_key=SECRET.decode(),
        webhook_allow_http=True,
        webhook_allow_private_networks=True,
        webhook_batch=100,
        webhook_concurrency=20,
        response_cache_seconds=0,
    )
    partner, customer, tag = await base_rows(engine)
    print(f"machine: {machine()}; backend {args.backend}")
    costs = await mutation_costs(engine, settings, partner, customer, tag, args.calls, args.rounds)
    base = costs["none"][0]
    print(
        "\n| tag mutation (add or remove one tag) | ms per call (median of rounds) | vs none "
        "| SQL statements per call |"
    )
    print("| --- | ---: | ---: | ---: |")
    for case, (ms, n) in costs.items():
        print(f"| endpoint: {case} | {ms:.2f} | {ms / base:.2f}x | {n} |")
    await clear_hooks(engine)
    rate, ceiling = await deliveries_per_second(engine, settings, partner, args.events)
    print(
        f"\ndeliveries/s to a local receiver ({args.events} events, batch 100, 20 at once): "
        f"{rate:.0f}; bare signed POSTs to the same receiver, no database: {ceiling:.0f}/s"
    )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
