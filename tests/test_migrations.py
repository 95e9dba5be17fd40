"""The migrations build exactly the tables and indexes the models declare.

An index added to a model without a migration (or the reverse) would make a fresh database
differ from what the code, the benchmarks and the README describe. The only objects outside the
models are the full-text search ones, which migration 0004 creates per backend in raw SQL.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import db.models  # noqa: F401 - registers every table on SQLModel.metadata
from tests.databases import Database

SEARCH = ("resource_fts", "search_vector", "ix_resource_search_vector")


def _outside_search(diff: Any) -> bool:
    return not any(name in repr(diff) for name in SEARCH)


async def test_the_migrated_schema_matches_the_models(fresh_database: Database) -> None:
    async with fresh_database.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
        )
    assert [d for d in diff if _outside_search(d)] == []
