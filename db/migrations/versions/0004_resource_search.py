"""full-text search over help resources

SQLite: ``resource_fts``, an FTS5 external-content table over title, summary and body (porter
stemming, diacritics folded), kept in step with ``resource`` by insert/update/delete triggers.
PostgreSQL: ``resource.search_vector``, a stored generated ``tsvector`` (English configuration;
title weighted A, summary B, body C) with a GIN index. ``db.queries.resources.search_ranking`` is
the one reader of both.

Neither object is part of the SQLModel metadata: ``resource`` rows are written through the model
as usual and the database maintains the index.

Revision ID: 0004_resource_search
Revises: 0003_calling
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_resource_search"
down_revision: str | None = "0003_calling"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FTS_COLUMNS = "title, summary, body"

SQLITE_UPGRADE = [
    f"""
    CREATE VIRTUAL TABLE resource_fts USING fts5(
        {_FTS_COLUMNS},
        content='resource',
        content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )
    """,
    f"""
    CREATE TRIGGER resource_fts_after_insert AFTER INSERT ON resource BEGIN
        INSERT INTO resource_fts(rowid, {_FTS_COLUMNS})
        VALUES (new.id, new.title, new.summary, new.body);
    END
    """,
    f"""
    CREATE TRIGGER resource_fts_after_delete AFTER DELETE ON resource BEGIN
        INSERT INTO resource_fts(resource_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.id, old.title, old.summary, old.body);
    END
    """,
    f"""
    CREATE TRIGGER resource_fts_after_update AFTER UPDATE ON resource BEGIN
        INSERT INTO resource_fts(resource_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.id, old.title, old.summary, old.body);
        INSERT INTO resource_fts(rowid, {_FTS_COLUMNS})
        VALUES (new.id, new.title, new.summary, new.body);
    END
    """,
    # Index the rows that exist already.
    "INSERT INTO resource_fts(resource_fts) VALUES ('rebuild')",
]

SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS resource_fts_after_update",
    "DROP TRIGGER IF EXISTS resource_fts_after_delete",
    "DROP TRIGGER IF EXISTS resource_fts_after_insert",
    "DROP TABLE IF EXISTS resource_fts",
]

POSTGRESQL_UPGRADE = [
    """
    ALTER TABLE resource ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(summary, '')), 'B')
        || setweight(to_tsvector('english'::regconfig, coalesce(body, '')), 'C')
    ) STORED
    """,
    "CREATE INDEX ix_resource_search_vector ON resource USING gin (search_vector)",
]

POSTGRESQL_DOWNGRADE = [
    "DROP INDEX IF EXISTS ix_resource_search_vector",
    "ALTER TABLE resource DROP COLUMN IF EXISTS search_vector",
]


def _run(statements: Sequence[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_UPGRADE)
    elif dialect == "postgresql":
        _run(POSTGRESQL_UPGRADE)
    else:
        raise NotImplementedError(f"no resource search index for {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_DOWNGRADE)
    elif dialect == "postgresql":
        _run(POSTGRESQL_DOWNGRADE)
