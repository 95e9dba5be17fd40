"""Benchmark: call-record ingestion and ``callingAnalytics`` latency (issue 7).

    .venv/bin/python -m bench.bench_ingest [--records 1000000] [--small 100000]
        [--backends sqlite,postgresql] [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432]
        [--analytics-runs 30]

For each backend, on a fresh database holding one partner with 1,000 Calling customers:

1. *floor*: the same CSV rows, read with ``csv.reader`` and converted only as far as the column
   types require (customer external id to ids by a preloaded dict, no validation), bulk-inserted
   into the same ``call_record`` table with its indexes: PostgreSQL ``COPY`` through asyncpg's
   ``copy_records_to_table``, SQLite ``executemany`` in one transaction (stdlib ``sqlite3``);
2. *ingest*: ``call_record`` emptied, then the real path (``db.ingest.ingest_stream``, the one
   behind ``partner-hub ingest calls``): validation, customer resolution, idempotent insert and
   the aggregate refresh, all included in the time;
3. both for ``--small`` and for ``--records`` rows, each in its own process, whose peak RSS
   (``VmHWM``) is reported: flat memory means the two sizes peak alike;
4. ``callingAnalytics`` (every sub-field, first 20 rows of each table) for the partner's full
   admin through the ASGI app, ``--analytics-runs`` times after two warm-ups: median and p95.

CSV files go to ``bench/data/`` (git-ignored) and are reused when present.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
NOW = datetime(2026, 11, 26, tzinfo=UTC)
CUSTOMERS = 1000
WEEKS = 8
PARTNER = "Bench Calling Partner"
ADMIN_EMAIL = "full@bench-calling.example"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- data ------------------------------------------------------------------------------------


def external_id(i: int) -> str:
    return f"BENCH-{i:05d}"


def generate_csv(path: Path, records: int, random_seed: int = 11) -> None:
    """``records`` plausible call records over the 8 weeks before NOW for 1,000 customers."""
    from db.ingest import CSV_COLUMNS

    rng = random.Random(random_seed)
    last_sunday = datetime(2026, 11, 22, tzinfo=UTC)
    start = last_sunday - timedelta(weeks=WEEKS)
    span = int((last_sunday - start).total_seconds())
    endpoints = ["DESKTOP_APP"] * 8 + ["MOBILE_APP"] * 5 + ["DESK_PHONE"] * 5 + ["BROWSER", "OTHER"]
    features = ["", "", "", "", "", "", "HOLD", "TRANSFER", "HOLD;TRANSFER", "VOICEMAIL"]
    features += ["FORWARD", "CONFERENCE", "CALL_PARK", "CALL_PICKUP", "HUNT_GROUP"]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for n in range(records):
            customer = rng.randrange(CUSTOMERS)
            started = start + timedelta(seconds=rng.randrange(span))
            poor = rng.random() < 0.06
            queue = rng.random() < 0.15
            answered = queue and rng.random() < 0.85
            writer.writerow(
                (
                    f"bench-{n:09d}",
                    external_id(customer),
                    f"user-{customer}-{int(rng.paretovariate(1.2)) % 60}",
                    started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    int(rng.lognormvariate(4.8, 1.0)) % 7200,
                    rng.choice(("INBOUND", "OUTBOUND", "INTERNAL")),
                    rng.choice(endpoints),
                    round(rng.uniform(5.5, 12) if poor else rng.uniform(0, 2), 2),
                    round(rng.uniform(0, 60), 1),
                    round(rng.uniform(20, 250), 1),
                    "CALL_QUEUE" if queue else rng.choice(features),
                    f"queue-{customer % 7}" if queue else "",
                    int(rng.expovariate(1 / 40)) if queue else "",
                    ("true" if answered else "false") if queue else "",
                    ("false" if answered else "true") if queue else "",
                )
            )
    tmp.replace(path)


def csv_for(records: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"calls_{records}.csv"
    if not path.exists():
        started = time.perf_counter()
        generate_csv(path, records)
        print(f"  generated {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


# --- databases -------------------------------------------------------------------------------


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def fresh_database(backend: str, pg_url: str) -> str:
    from db.engine import create_engine
    from db.migrate import migrate

    if backend == "sqlite":
        path = DATA / "bench_calls.db"
        _remove_sqlite(path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        conn = await asyncpg.connect(f"{pg_url.replace('+asyncpg', '')}/postgres")
        try:
            await conn.execute('DROP DATABASE IF EXISTS "partner_hub_bench_calls" WITH (FORCE)')
            await conn.execute('CREATE DATABASE "partner_hub_bench_calls"')
        finally:
            await conn.close()
        url = f"{pg_url}/partner_hub_bench_calls"
    engine = create_engine(url, pool=False)
    await migrate(engine)
    await _partner_with_calling_customers(engine)
    await engine.dispose()
    return url


async def _partner_with_calling_customers(engine: Any) -> None:
    from sqlalchemy import insert

    from db.models import Admin, Customer, LicenseLine, Partner, Subscription

    async with engine.begin() as conn:
        await conn.execute(
            insert(Partner).values(
                id=1, name=PARTNER, domain="bench-calling.example", setup_state="READY",
                created_at=NOW - timedelta(days=900),
            )
        )  # fmt: skip
        await conn.execute(
            insert(Admin).values(
                id=1, partner_id=1, email=ADMIN_EMAIL, name="Bench Admin", role="FULL_ADMIN",
                active=True, created_at=NOW - timedelta(days=900),
            )
        )  # fmt: skip
        customers, subscriptions, lines = [], [], []
        for i in range(CUSTOMERS):
            customers.append(
                {
                    "id": i + 1,
                    "partner_id": 1,
                    "external_id": external_id(i),
                    "name": f"Bench Customer {i:05d}",
                    "name_key": f"bench customer {i:05d}",
                    "created_at": NOW - timedelta(days=500),
                    "managed_by": "EXTERNAL_ADMIN",
                }
            )
            subscriptions.append(
                {
                    "id": i + 1,
                    "partner_id": 1,
                    "customer_id": i + 1,
                    "subscription_id": f"Sub{i:06d}",
                    "kind": "PAID",
                    "state": "ACTIVE",
                    "start_date": NOW - timedelta(days=200),
                    "end_date": NOW + timedelta(days=165),
                    "auto_renew": True,
                    "renewal_date": NOW + timedelta(days=165),
                    "created_at": NOW - timedelta(days=200),
                }
            )
            lines.append(
                {
                    "id": i + 1,
                    "partner_id": 1,
                    "subscription_id": i + 1,
                    "product": "CALLING",
                    "license_type": "Standard",
                    "purchased": 80,
                    "assigned": 70,
                    "used": 50,
                }
            )
        await conn.execute(insert(Customer), customers)
        await conn.execute(insert(Subscription), subscriptions)
        await conn.execute(insert(LicenseLine), lines)
        if conn.dialect.name == "postgresql":
            from sqlalchemy import text

            for table in ("partner", "admin", "customer", "subscription", "license_line"):
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100000)")
                )
                await conn.execute(text(f"ANALYZE {table}"))


async def empty_call_tables(url: str) -> None:
    from sqlalchemy import text

    from db.engine import create_engine

    engine = create_engine(url, pool=False)
    async with engine.begin() as conn:
        for table in (
            "call_record",
            "call_weekly_aggregate",
            "call_weekly_detail",
        ):
            await conn.execute(text(f"DELETE FROM {table}"))
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    else:
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text("VACUUM ANALYZE call_record")
            )
    await engine.dispose()


# --- the two loads, each run in a child process ------------------------------------------------


async def _floor(url: str, path: Path) -> dict[str, Any]:
    """Bare bulk insert of the CSV's rows: the fastest the database takes them."""
    from db.ingest import RECORD_COLUMNS

    ids = {external_id(i): (i + 1, 1) for i in range(CUSTOMERS)}
    weeks: dict[str, datetime] = {}
    started = time.perf_counter()
    count = 0

    def rows(for_sqlite: bool) -> Any:
        nonlocal count
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            for r in reader:
                at = datetime.fromisoformat(r[3])
                day = r[3][:10]
                week = weeks.get(day)
                if week is None:
                    d = at.date()
                    sunday = d - timedelta(days=(d.weekday() + 1) % 7)
                    week = weeks[day] = datetime(sunday.year, sunday.month, sunday.day, tzinfo=UTC)
                customer_id, partner_id = ids[r[1]]
                queue = bool(r[11])
                count += 1
                started_value: Any = at
                week_value: Any = week
                if for_sqlite:
                    started_value = at.replace(tzinfo=None).isoformat(" ", "microseconds")
                    week_value = week.replace(tzinfo=None).isoformat(" ", "microseconds")
                yield (
                    r[0], partner_id, customer_id, r[2], started_value, week_value, int(r[4]),
                    r[5], r[6], float(r[7]), float(r[8]), float(r[9]), r[10],
                    r[11] or None,
                    int(r[12]) if queue else None,
                    (r[13] == "true") if queue else None,
                    (r[14] == "true") if queue else None,
                )  # fmt: skip

    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        # The pragmas of the service's engine (db.engine): the same table, the same settings.
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("BEGIN")
        placeholders = ", ".join("?" for _ in RECORD_COLUMNS)
        conn.executemany(
            f"INSERT INTO call_record ({', '.join(RECORD_COLUMNS)}) VALUES ({placeholders})",
            rows(True),
        )
        conn.execute("COMMIT")
        conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            async with conn.transaction():
                batch: list[tuple[Any, ...]] = []
                for row in rows(False):
                    batch.append(row)
                    if len(batch) == 10_000:
                        await conn.copy_records_to_table(
                            "call_record", records=batch, columns=list(RECORD_COLUMNS)
                        )
                        batch = []
                if batch:
                    await conn.copy_records_to_table(
                        "call_record", records=batch, columns=list(RECORD_COLUMNS)
                    )
        finally:
            await conn.close()
    seconds = time.perf_counter() - started
    return {"records": count, "seconds": seconds}


async def _ingest(url: str, path: Path) -> dict[str, Any]:
    from db.engine import create_engine
    from db.ingest import ingest_stream

    engine = create_engine(url, pool=False)
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as f:
        report = await ingest_stream(engine, f, now=NOW)
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {
        "records": report.read,
        "inserted": report.inserted,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "seconds": seconds,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that one over
    ``exec`` from the parent, so a child would report at least the parent's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_main(kind: str, url: str, path: str) -> None:
    func = _floor if kind == "floor" else _ingest
    result = asyncio.run(func(url, Path(path)))
    result["max_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def run_child(kind: str, url: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_ingest", "--child", kind, url, str(path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- analytics latency -----------------------------------------------------------------------

ANALYTICS = """
query Calling($week: Date) {
  callingAnalytics(week: $week) {
    weekStart
    usage { calls minutes activeUsers daily { date calls minutes } }
    usersByVolumeTrend(weeks: 8) {
      weekStart users1To10 users11To50 users51Plus licensedUsersWithoutCalls
    }
    customersUsage(first: 20) {
      totalCount
      edges {
        cursor node { customer { name } calls minutes activeUsers licensedUsers callsChange }
      }
    }
    quality { totalCalls poorCalls poorPercent }
    qualityTrend(weeks: 8) { weekStart totalCalls poorCalls poorPercent }
    qualityByEndpoint { endpointType totalCalls poorCalls poorPercent }
    customersQuality(first: 20) {
      totalCount nodes { customer { name } totalCalls poorCalls poorPercent }
    }
    featureUsage { feature calls }
    callQueue {
      kpis { averageTimeToAnswerSeconds averageWaitBeforeAbandonSeconds abandonedRatePercent }
      customers(first: 20) {
        totalCount nodes { customer { name } queueCalls abandonedRatePercent }
      }
    }
  }
}
"""


async def analytics_latency(url: str, runs: int) -> dict[str, float]:
    import httpx

    from db.engine import create_engine, session_factory
    from db.queries.admins import issue_token
    from db.settings import Settings
    from graph.app import create_app

    engine = create_engine(url)
    async with session_factory(engine)() as session:
        token = await issue_token(session, admin_id=1, now=NOW)
        await session.commit()
    settings = Settings(
        database_url=url,
        now=NOW,
        secret_key="bench",
        cost_per_minute=10**9,
        response_cache_seconds=0,
    )
    app = create_app(settings, engine=engine)
    timings = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(runs + 2):
            started = time.perf_counter()
            response = await client.post(
                "/graphql",
                json={"query": ANALYTICS, "variables": {}},
                headers={"Authorization": f"Bearer {token}"},
            )
            elapsed = time.perf_counter() - started
            body = response.json()
            if body.get("errors"):
                raise RuntimeError(body["errors"])
            if i >= 2:
                timings.append(elapsed * 1000)
    await engine.dispose()
    timings.sort()
    return {
        "median_ms": statistics.median(timings),
        "p95_ms": timings[max(0, int(len(timings) * 0.95) - 1)],
        "calls": body["data"]["callingAnalytics"]["usage"]["calls"],
    }


# --- main ------------------------------------------------------------------------------------


def _rate(result: dict[str, Any]) -> float:
    return float(result["records"] / result["seconds"])


async def bench_backend(backend: str, args: argparse.Namespace, files: dict[int, Path]) -> None:
    print(f"\n== {backend} ==", flush=True)
    url = await fresh_database(backend, args.pg_url)
    for size, path in sorted(files.items()):
        await empty_call_tables(url)
        floor = run_child("floor", url, path)
        await empty_call_tables(url)
        ingest = run_child("ingest", url, path)
        ratio = _rate(ingest) / _rate(floor)
        print(
            f"  {size:>9,} records  floor {_rate(floor):>9,.0f}/s ({floor['seconds']:.1f} s, "
            f"RSS {floor['max_rss_mb']:.0f} MB)   ingest {_rate(ingest):>9,.0f}/s "
            f"({ingest['seconds']:.1f} s, RSS {ingest['max_rss_mb']:.0f} MB, "
            f"inserted {ingest['inserted']:,})   ingest/floor {ratio:.2f}",
            flush=True,
        )
    again = run_child("ingest", url, files[max(files)])
    print(
        f"  re-ingest of {max(files):,} (all duplicates): {_rate(again):,.0f}/s "
        f"({again['seconds']:.1f} s, inserted {again['inserted']}, "
        f"duplicates {again['duplicates']:,})",
        flush=True,
    )
    if args.analytics_runs <= 0:
        return
    latency = await analytics_latency(url, args.analytics_runs)
    print(
        f"  callingAnalytics, {CUSTOMERS} Calling customers, {WEEKS} weeks: median "
        f"{latency['median_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms "
        f"(last week: {latency['calls']:,} calls)",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--analytics-runs", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    files = {n: csv_for(n) for n in sorted({args.small, args.records})}
    for backend in args.backends.split(","):
        asyncio.run(bench_backend(backend.strip(), args, files))


if __name__ == "__main__":
    main()
