"""Data versions: counters every committed write moves, read with each request's token.

Responses may be cached (``graph.response_cache``) under the data version they were computed
at; a cache is only correct if *every* write moves the version of every caller who may see it,
whoever makes it: a mutation, the CLI, an ingest, a seed, a test's factory or an operator's SQL
through the engine. So the versions are kept below all of them, on the engine: a connection that
sent a write statement bumps a version in the same transaction, just before it commits.

There is one version per partner (``partner_data_version``) and one global epoch
(``app_meta['data_version']``); the version of a caller is ``"<global>.<partner's>"``
(``caller_data_version``). A transaction moves its partners' rows when it declared them
(``writes_for``: the mutation path declares the caller's partner, an ingest the partners of its
records) and the global epoch when it did not: a write whose partner is not known (a seed, a
factory, an operator's SQL, anything that forgot) conservatively invalidates every partner's
cached responses. Forgetting to declare therefore costs cache hits, never correctness;
declaring asserts that the transaction writes only those partners' data (the mutation path
writes through its caller's ``Scope``, which names the partner: the one door).

Some partner rows feed figures every partner sees: the low-allocation medians are computed over
the in-force subscriptions of the whole deployment (``db.queries.analytics.medians``), so a
trial another partner starts changes which of this partner's subscriptions are flagged. A
transaction that writes ``subscription`` or ``license_line`` (``SHARED_WRITE``) therefore also
moves its partners' ``shared_version``; the deployment's *shared version* is their sum (read
with the token, one small scan: a row per partner that ever wrote). It moves on every such
commit, atomically with the data, and no writer waits on another partner's row for it. A
response that read deployment-wide figures (``note_shared_read``, called by the one function
that reads them) is valid only at the shared version it was computed at; any other response
does not depend on it, so another partner's trial leaves it cached (``graph.response_cache``).
An undeclared shared write moves the global epoch, as any undeclared write does.

Partners' writes never wait on a shared row: each moves its own partner's row (PostgreSQL locks
it for the instant of the commit; SQLite serialises writers anyway). The bump is the last
statement of the writing transaction, so the rows it locks are the last locks taken, in partner
order: concurrent writers queue there for the instant of their commit and cannot deadlock on
them. It goes through the DBAPI cursor, outside SQLAlchemy's execution events, so it does not
mark the connection dirty again. Writes that bypass SQL statements (PostgreSQL ``COPY`` in bulk
loads) call ``mark_written`` themselves.

Audit entries alone (a refused mutation writes only its refusal's entry) move no version: no
cached response depends on them, because the one reader of the audit log marks its responses
uncacheable (``graph.context.Context.no_store``). The SQLite write lock of ``begin_write``
(``WRITE_LOCK``) changes nothing and is not a write either.

A reader never sees new data under an old version: the bump becomes visible atomically with
the data, and a request reads the version (with its token, ``authenticate_token``) before it
reads any data.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from db.driver_query import never_awaits

if TYPE_CHECKING:
    from db.queries.admins import Principal

DATA_VERSION_KEY = "data_version"
PARTNER_VERSION_TABLE = "partner_data_version"
WRITE_LOCK = "UPDATE app_meta SET value = value WHERE key = 'write_lock'"
_DIRTY = "partner_hub_written"
_PARTNERS = "partner_hub_partners"
_SHARED = "partner_hub_shared"
# Writes of the tables deployment-wide figures are read from (the low-allocation medians), in
# any position of a write statement (a writable CTE, SQLite's ``INSERT OR REPLACE``/``REPLACE
# INTO``/``UPDATE OR ...``, PostgreSQL's ``ONLY``, a schema, quotes, comments, ``TRUNCATE``):
# a declared transaction writing them must move the shared version whatever its SQL looks like.
_GAP = r"(?:\s|/\*.*?\*/|--[^\n]*\n)+"
SHARED_WRITE = re.compile(
    rf"(?:\b(?:INTO|UPDATE(?:{_GAP}OR{_GAP}\w+)?|DELETE{_GAP}FROM)(?:{_GAP}ONLY)?{_GAP}"
    rf"(?:\"?\w+\"?\.)?\"?|\bTRUNCATE\b.*)\b(?:subscription|license_line)\b(?![_$])",
    re.IGNORECASE | re.DOTALL,
)
# SQLite's ``REPLACE INTO`` (which a WITH clause may open) is an insert: REPLACE is a write
# unless it is the string function (followed by its parenthesis).
_MODIFIES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|REPLACE(?!\s*\())\b", re.IGNORECASE)
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "SHOW", "SAVEPOINT", "RELEASE", "BEGIN", "ANALYZE")
_AUDIT_ONLY = ("INSERT INTO AUDIT_LOG ",)  # what a refusal writes (graph.mutations)
_BUMP = (
    "INSERT INTO app_meta (key, value) VALUES ('data_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(app_meta.value AS BIGINT) + 1 AS TEXT)"
)


def _partner_bump(partners: Iterable[int], shared: bool) -> str:
    # Integers only (``writes_for`` converts), inlined: the DBAPI paramstyles differ.
    step = 1 if shared else 0
    rows = ", ".join(f"({int(p)}, 1, {step})" for p in sorted(partners))
    moved = f"version = {PARTNER_VERSION_TABLE}.version + 1"
    if shared:
        moved += f", shared_version = {PARTNER_VERSION_TABLE}.shared_version + 1"
    return (
        f"INSERT INTO {PARTNER_VERSION_TABLE} (partner_id, version, shared_version) VALUES {rows} "
        f"ON CONFLICT (partner_id) DO UPDATE SET {moved}"
    )


def is_write(statement: str) -> bool:
    """Whether a statement may change data: anything that is not known to only read. A
    statement opening with common table expressions writes only through a data-modifying
    keyword (PostgreSQL's writable CTEs, SQLite's ``WITH ... INSERT``); one without is a read
    (the analytics' section and figures statements)."""
    head = statement.lstrip()[:9].upper()
    if head.startswith(("WITH", "EXPLAIN")):
        # PostgreSQL's EXPLAIN ANALYZE runs the statement it explains.
        return _modifies(statement)
    return not head.startswith(_READS)


@lru_cache(maxsize=1024)
def _modifies(statement: str) -> bool:
    # Per statement text: the analytics' statements are built once and run on every request,
    # and searching 14 kB of SQL took ~0.2 ms (their compiled text is the same string object,
    # whose hash Python keeps).
    return _MODIFIES.search(statement) is not None


@lru_cache(maxsize=1024)
def _shared_writes(statement: str) -> bool:
    # Searched once per text (the statements of a writing transaction repeat); the tables'
    # names first (a bulk insert's 64 kB of VALUES took the search ~1.7 ms, the names ~30 µs).
    lowered = statement.lower()
    if "subscription" not in lowered and "license_line" not in lowered:
        return False
    return SHARED_WRITE.search(statement) is not None


def moves_version(statement: str) -> bool:
    """Whether a statement may change data a cached response can depend on: a write other than
    an audit entry or the SQLite write lock."""
    if not is_write(statement):
        return False
    stripped = statement.strip()
    if stripped == WRITE_LOCK:
        return False
    return not stripped[:32].upper().startswith(_AUDIT_ONLY)


@never_awaits
def _on_execute(
    conn: Connection, _cursor: Any, statement: str, params: Any, *_: Any
) -> tuple[str, Any]:
    # (``retval=True``: kept as it is, known by ``db.driver_query`` as never awaiting)
    info = conn.info
    if not info.get(_SHARED):
        if not info.get(_DIRTY):
            if not moves_version(statement):
                return statement, params
            info[_DIRTY] = True
        if _shared_writes(statement):
            info[_SHARED] = True
    return statement, params


def _on_begin(conn: Connection) -> None:
    # A declaration is for one transaction: one left by a transaction that ended without the
    # events seeing it (a pool reset) must not narrow the next one's bump.
    conn.info.pop(_PARTNERS, None)
    conn.info.pop(_SHARED, None)


def _on_commit(conn: Connection) -> None:
    partners: set[int] | None = conn.info.pop(_PARTNERS, None)
    shared = bool(conn.info.pop(_SHARED, False))
    if conn.info.pop(_DIRTY, False):
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_partner_bump(partners, shared) if partners else _BUMP)
        finally:
            cursor.close()


def _on_rollback(conn: Connection) -> None:
    # An invalidated connection (its transaction failed) refuses even ``info``; its flag then
    # stays and costs at most one extra bump later, which only invalidates cached responses.
    with contextlib.suppress(SQLAlchemyError):
        conn.info.pop(_DIRTY, None)
        conn.info.pop(_PARTNERS, None)
        conn.info.pop(_SHARED, None)


def track_writes(engine: AsyncEngine) -> None:
    """Make every committed write through ``engine`` move a data version."""
    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", _on_execute, retval=True)
    event.listen(sync, "begin", _on_begin)
    event.listen(sync, "commit", _on_commit)
    event.listen(sync, "rollback", _on_rollback)


def _sync(conn: AsyncConnection | Connection) -> Connection:
    sync = conn.sync_connection if isinstance(conn, AsyncConnection) else conn
    assert sync is not None
    return sync


def mark_written(conn: AsyncConnection | Connection) -> None:
    """For writes SQLAlchemy does not see (``COPY``): bump the version when ``conn`` commits."""
    _sync(conn).info[_DIRTY] = True


async def writes_pending(session: AsyncSession) -> bool:
    """Whether the current transaction of ``session`` wrote and has not committed yet (what it
    reads then is not what its versions say)."""
    return bool(_sync(await session.connection()).info.get(_DIRTY))


async def writes_for(db: AsyncSession | AsyncConnection, partner_ids: int | Iterable[int]) -> None:
    """Declare that the current transaction of ``db`` writes only the data of ``partner_ids``:
    its commit then moves their versions instead of the global epoch. Declarations add up
    within the transaction; call it after the transaction began (``db`` begins one if not)."""
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    if not conn.in_transaction():
        await conn.begin()
    ids = {int(partner_ids)} if isinstance(partner_ids, int) else {int(p) for p in partner_ids}
    info = _sync(conn).info
    info[_PARTNERS] = info.get(_PARTNERS, set()) | ids


def deployment_version(principal: Principal) -> str:
    """What deployment-wide figures depend on, as read with the caller's token:
    ``"<global epoch>:<shared version>"`` (an undeclared write moves the epoch, a declared write
    of licence data its partner's shared version). Equal strings mean equal licence data."""
    epoch = principal.data_version.split(".", 1)[0]
    return f"{epoch}:{principal.shared_version}"


def caller_data_version(principal: Principal) -> str:
    """The data version of the caller's partner as read with its token: ``"<global>.<partner>"``.
    Equal strings mean equal data for every response this caller may get (cached responses,
    HTTP ETags); responses marked ``no_store`` (the audit log) are outside this promise."""
    return principal.data_version


@dataclass(slots=True)
class SharedReads:
    """Whether the request it belongs to read deployment-wide figures."""

    read: bool = False


_SHARED_READS: ContextVar[SharedReads | None] = ContextVar("partner_hub_shared_reads", default=None)


@contextlib.contextmanager
def recording_shared_reads() -> Iterator[SharedReads]:
    """Record, for the code run inside (and the tasks it starts), whether it read
    deployment-wide figures."""
    reads = SharedReads()
    token = _SHARED_READS.set(reads)
    try:
        yield reads
    finally:
        _SHARED_READS.reset(token)


def note_shared_read() -> None:
    """Called by every reader of deployment-wide figures (today the low-allocation medians):
    the current request's response then depends on the shared version."""
    reads = _SHARED_READS.get()
    if reads is not None:
        reads.read = True
