"""Shared by the benchmarks: data sets on SQLite and PostgreSQL, an in-process client, timing."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
QUERIES = ROOT / "bench" / "queries"
NOW = datetime(2026, 11, 26, tzinfo=UTC)
PG_BASE = os.environ.get(
    "PARTNER_HUB_BENCH_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432"
)
# Data sets are named ``<prefix>_<customers>``: worktrees benchmarking side by side set their own
# prefix so that each migrates and seeds only its own databases.
PREFIX = os.environ.get("PARTNER_HUB_BENCH_PREFIX", "partner_hub_bench")


def query(name: str) -> str:
    return (QUERIES / f"{name}.graphql").read_text()


def machine() -> str:
    cores = os.cpu_count()
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    return f"{platform.machine()}, {cores} cores, {mem}, Python {platform.python_version()}"


async def pg_database_exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_BASE.replace("+asyncpg", "") + "/test")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def pg_create(name: str) -> None:
    conn = await asyncpg.connect(PG_BASE.replace("+asyncpg", "") + "/test")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _migrated(url: str) -> str:
    """A data set made by an older checkout gets the newest schema (indexes) before use."""
    from db.engine import create_engine
    from db.migrate import migrate

    engine = create_engine(url, pool=False)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    return url


async def dataset(backend: str, customers: int, seed: int = 1) -> str:
    """URL of a database holding ``seed --customers N --random-seed seed`` (made once, reused)."""
    # PARTNER_HUB_BENCH_SUFFIX keeps checkouts with different migrations on their own data sets.
    name = f"{PREFIX}_{customers}{os.environ.get('PARTNER_HUB_BENCH_SUFFIX', '')}"
    if backend == "sqlite":
        DATA.mkdir(parents=True, exist_ok=True)
        path = DATA / f"{name}.db"
        url = f"sqlite+aiosqlite:///{path}"
        if path.exists():
            return await _migrated(url)
    else:
        url = f"{PG_BASE}/{name}"
        if await pg_database_exists(name):
            return await _migrated(url)
        await pg_create(name)
    env = {**os.environ, "PARTNER_HUB_DATABASE_URL": url, "PARTNER_HUB_NOW": NOW.isoformat()}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "graph.cli",
        "seed",
        "--customers",
        str(customers),
        "--random-seed",
        str(seed),
        "--no-progress",
        env=env,
        cwd=ROOT,
    )
    if await process.wait() != 0:
        raise RuntimeError(f"seeding {customers} customers on {backend} failed")
    print(f"  seeded {customers} customers on {backend} in {time.perf_counter() - started:.0f} s")
    return url


async def token_for(url: str, email: str) -> str:
    from db.engine import create_engine, session_factory
    from db.queries.admins import admin_by_email, issue_token

    engine = create_engine(url, pool=False)
    try:
        async with session_factory(engine)() as session:
            admin = await admin_by_email(session, email=email)
            assert admin is not None and admin.id is not None, email
            token = await issue_token(session, admin_id=admin.id, now=NOW)
            await session.commit()
            return token
    finally:
        await engine.dispose()


def app_client(url: str, **settings: Any) -> tuple[Any, httpx.AsyncClient]:
    from db.settings import Settings
    from graph.app import create_app

    app = create_app(Settings(database_url=url, now=NOW, **settings))
    transport = httpx.ASGITransport(app=app)
    return app, httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120)


async def timed(call: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 2),
        "runs": runs,
    }
