"""The data version: a counter every committed write moves, read with each request's token.

Responses may be cached (``graph.response_cache``) under the data version they were computed
at; a cache is only correct if *every* write moves the version, whoever makes it: a mutation,
the CLI, an ingest, a seed or a test's factory. So the version is kept below all of them, on the
engine: a connection that sent a write statement bumps ``app_meta['data_version']`` in the same
transaction, just before it commits. A reader therefore never sees new data under an old
version: the bump becomes visible atomically with the data, and a request reads the version (with
its token, ``authenticate_token``) before it reads any data.

The bump is the last statement of the writing transaction, so the one row it locks is always the
last lock taken: concurrent writers queue there for the instant of their commit and cannot
deadlock on it. It goes through the DBAPI cursor, outside SQLAlchemy's execution events, so it
does not mark the connection dirty again. Writes that bypass SQL statements (PostgreSQL ``COPY``
in bulk loads) call ``mark_written`` themselves.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DATA_VERSION_KEY = "data_version"
_DIRTY = "partner_hub_written"
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "SHOW", "SAVEPOINT", "RELEASE", "BEGIN", "ANALYZE")
_BUMP = (
    "INSERT INTO app_meta (key, value) VALUES ('data_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(app_meta.value AS BIGINT) + 1 AS TEXT)"
)


def is_write(statement: str) -> bool:
    """Whether a statement may change data: anything that is not known to only read."""
    head = statement.lstrip()[:9].upper()
    return not head.startswith(_READS)


def _on_execute(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    if not conn.info.get(_DIRTY) and is_write(statement):
        conn.info[_DIRTY] = True


def _on_commit(conn: Connection) -> None:
    if conn.info.pop(_DIRTY, False):
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_BUMP)
        finally:
            cursor.close()


def _on_rollback(conn: Connection) -> None:
    # An invalidated connection (its transaction failed) refuses even ``info``; its flag then
    # stays and costs at most one extra bump later, which only invalidates cached responses.
    with contextlib.suppress(SQLAlchemyError):
        conn.info.pop(_DIRTY, None)


def track_writes(engine: AsyncEngine) -> None:
    """Make every committed write through ``engine`` move the data version."""
    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", _on_execute)
    event.listen(sync, "commit", _on_commit)
    event.listen(sync, "rollback", _on_rollback)


def mark_written(conn: AsyncConnection | Connection) -> None:
    """For writes SQLAlchemy does not see (``COPY``): bump the version when ``conn`` commits."""
    sync = conn.sync_connection if isinstance(conn, AsyncConnection) else conn
    assert sync is not None
    sync.info[_DIRTY] = True
