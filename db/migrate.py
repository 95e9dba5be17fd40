"""Bring a database to the newest schema with Alembic (used by ``serve``, ``seed`` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Tables a migration rewrote on PostgreSQL (a STORED generated column added, say) name
# themselves in ``context.config.attributes[VACUUM_AFTER]``: a rewritten table has no visibility
# map until a VACUUM, and autovacuum may not come for long (a rewrite leaves no dead rows), so
# every index-only scan of it reads the table too (the low-allocation KPIs at 100,000 customers:
# 19.6 ms instead of 8.2 ms). ``migrate`` vacuums them once the upgrade has committed (VACUUM
# cannot run in its transaction); ``alembic upgrade`` run by hand leaves that to the operator.
VACUUM_AFTER = "vacuum_after"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the database behind ``engine`` to head, in one transaction (then vacuum what
    it rewrote, see ``VACUUM_AFTER``)."""
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))

    def _upgrade(connection: object) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
    rewritten = sorted(config.attributes.get(VACUUM_AFTER, ()))
    if rewritten and engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in rewritten:
                await autocommit.execute(text(f"VACUUM (ANALYZE) {table}"))
