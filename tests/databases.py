"""Test databases: SQLite always, PostgreSQL when reachable (required under CI)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import asyncpg
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from db.engine import create_engine
from db.migrate import migrate

PG_ADMIN_URL = os.environ.get(
    "PARTNER_HUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def postgres_unreachable_reason() -> str | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(pg_dsn(PG_ADMIN_URL)), timeout=5)
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def recreate_pg_database(name: str) -> str:
    """Drop and create database ``name`` next to the admin database; return its URL."""
    conn = await asyncpg.connect(pg_dsn(PG_ADMIN_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@dataclass
class Database:
    backend: str
    url: str
    engine: AsyncEngine

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.backend == "postgresql":
            await drop_pg_database(self.url.rsplit("/", 1)[1])

    async def empty(self) -> None:
        """Delete every row of every table (children first), keeping the schema."""
        metadata: MetaData = SQLModel.metadata
        async with self.engine.begin() as conn:
            existing = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            names = [t.name for t in reversed(metadata.sorted_tables) if t.name in existing]
            if self.backend == "postgresql":
                # DELETE with the triggers (foreign keys, rollups) off, then every sequence back
                # to 1: what TRUNCATE ... RESTART IDENTITY did, without its new files for ~150
                # relations (~200 ms a test, ~2 minutes of the suite on a slow machine).
                deletes = " ".join(f'DELETE FROM "{name}";' for name in names)
                restart = (
                    "PERFORM setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n"
                    " ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = 'public';"
                )
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
                await conn.execute(text(f"DO $$ BEGIN {deletes} {restart} END $$"))
            else:
                for name in names:
                    await conn.execute(text(f"DELETE FROM {name}"))


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(pg_dsn(PG_ADMIN_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def make_database(backend: str, name: str, tmp_dir: str) -> Database:
    """A migrated database; on PostgreSQL its name carries the process id, so that test runs
    side by side never share one."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_dir}/{name}.db"
    else:
        url = await recreate_pg_database(f"{name}_{os.getpid()}")
    engine = create_engine(url)
    await migrate(engine)
    return Database(backend=backend, url=url, engine=engine)
