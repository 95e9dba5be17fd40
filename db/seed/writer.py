"""Bulk writing for the seed generators.

Primary keys are allocated in Python from ``max(id) + 1`` so that children reference their parents
without a round trip. Rows are compiled and bound by SQLAlchemy's own column types but sent in
bulk: multi-row ``INSERT``s on SQLite, ``COPY`` on PostgreSQL, whose id sequences are then moved
past the explicit ids. Everything runs in one transaction (``bulk_connection``).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from itertools import chain
from operator import itemgetter
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.models import (
    Admin,
    AppMeta,
    AuditLog,
    Customer,
    CustomerAssignment,
    CustomerProduct,
    CustomerStatusSpan,
    CustomerTag,
    HelpdeskCase,
    HelpdeskComment,
    Invoice,
    LicenseLine,
    LicenseSnapshot,
    Order,
    Partner,
    PartnerCounter,
    Subscription,
    SubscriptionTag,
    Tag,
)
from db.status import STATUS_RULES_KEY, StatusRules
from db.versioning import mark_written

Row = dict[str, Any]


def table_of(model: Any) -> Table:
    """The Core table of a SQLModel class."""
    table: Table = model.__table__
    return table


# Parents before children, so foreign keys hold after every statement.
INSERT_ORDER: tuple[Table, ...] = tuple(
    table_of(m)
    for m in (
        Partner,
        Admin,
        Tag,
        Customer,
        CustomerAssignment,
        CustomerTag,
        Subscription,
        SubscriptionTag,
        LicenseLine,
        LicenseSnapshot,
        Invoice,
        Order,
        CustomerStatusSpan,
        CustomerProduct,
        HelpdeskCase,
        HelpdeskComment,
        PartnerCounter,
        AuditLog,
    )
)
# Tables whose integer ``id`` the generators assign themselves.
ID_TABLES: tuple[str, ...] = (
    "partner",
    "admin",
    "tag",
    "customer",
    "subscription",
    "license_line",
    "license_snapshot",
    "invoice",
    "subscription_order",
    "customer_status_span",
    "helpdesk_case",
    "helpdesk_comment",
    "audit_log",
)
# Bound parameters per SQLite statement (SQLITE_MAX_VARIABLE_NUMBER; 999 before 3.32).
SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


class Ids:
    """The next free primary key of every table in ``ID_TABLES``."""

    def __init__(self, start: dict[str, int]) -> None:
        self.next = dict(start)

    @classmethod
    async def load(cls, conn: AsyncConnection) -> Ids:
        start = {}
        for name in ID_TABLES:
            table = _table_by_name(name)
            highest = (await conn.execute(select(func.max(table.c.id)))).scalar()
            start[name] = int(highest or 0) + 1
        return cls(start)

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def _table_by_name(name: str) -> Table:
    for table in INSERT_ORDER:
        if table.name == name:
            return table
    raise KeyError(name)


# Snapshots are three quarters of all rows: they are kept as tuples in this column order, with
# ``week_start`` already converted by ``datetime_binder``, and go to the driver untouched.
SNAPSHOT_COLUMNS = (
    "id",
    "partner_id",
    "license_line_id",
    "subscription_id",
    "product",
    "week_start",
    "purchased",
    "assigned",
    "used",
)


class Batch:
    """Rows waiting to be inserted: dicts by table name, and snapshot tuples."""

    def __init__(self) -> None:
        self.rows: defaultdict[str, list[Row]] = defaultdict(list)
        self.snapshots: list[tuple[Any, ...]] = []

    def add(self, table: str, row: Row) -> None:
        self.rows[table].append(row)

    def count(self, table: str) -> int:
        if table == "license_snapshot":
            return len(self.snapshots)
        return len(self.rows.get(table, ()))


def datetime_binder(conn: AsyncConnection) -> Callable[[datetime], Any]:
    """How the connection's dialect stores a ``UTCDateTime`` value (for pre-converted rows)."""
    column = table_of(LicenseSnapshot).c.week_start
    process = column.type._cached_bind_processor(conn.dialect)
    return process if process is not None else (lambda value: value)


@asynccontextmanager
async def bulk_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction for a bulk load: committed at the end, rolled back on any error.

    On SQLite, foreign-key enforcement is suspended for this connection while it loads (the
    checks cost a fifth of the load time; generators write parents before children and the
    tests run ``PRAGMA foreign_key_check``) and restored before the connection goes back to
    the pool. The pragma only takes effect outside a transaction, hence before any write.
    """
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            yield conn
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            if sqlite and not conn.invalidated:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()


async def write_batch(conn: AsyncConnection, batch: Batch) -> None:
    """Insert every row of ``batch`` in foreign-key order.

    Values go through each column type's bind processor for the connection's dialect (each
    repeated datetime converted once), so rows are stored exactly as an ORM insert would store
    them, without SQLAlchemy's per-row parameter handling: SQLite gets multi-row ``INSERT``s,
    PostgreSQL gets ``COPY``.
    """
    for table in INSERT_ORDER:
        if table.name == "license_snapshot" and batch.snapshots:
            await _insert(conn, table, SNAPSHOT_COLUMNS, batch.snapshots)
        rows = batch.rows.get(table.name)
        if rows:
            columns, convert = _converter(conn.dialect, table, tuple(rows[0]))
            await _insert(conn, table, columns, convert(rows))


async def _insert(
    conn: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    if conn.dialect.name == "postgresql":
        # The adapter has opened the transaction with the statements that came before (at
        # least ``Ids.load``), so COPY runs inside it.
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        mark_written(conn)  # COPY is not a statement the data version sees
        return
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup or columns)
    if order != columns:
        reorder = itemgetter(*(columns.index(key) for key in order))
        rows = [reorder(row) for row in rows]
    # SQLite: many rows per INSERT ... VALUES (...), (...): one statement binds them all in C
    # and runs without the GIL, which beats executemany's per-row round trips.
    head, _, group = str(compiled).rpartition(" VALUES ")
    per = max(1, SQLITE_MAX_VARIABLES // len(columns))
    full = f"{head} VALUES {', '.join([group] * per)}"
    whole = len(rows) - len(rows) % per
    for i in range(0, whole, per):
        await conn.exec_driver_sql(full, tuple(chain.from_iterable(rows[i : i + per])))
    if whole < len(rows):
        # The rest row by row: one more statement text per table, not one per remainder size
        # (the driver caches prepared statements by text).
        await conn.exec_driver_sql(str(compiled), rows[whole:])


def _converter(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[tuple[str, ...], Callable[[list[Row]], list[tuple[Any, ...]]]]:
    """The column order for rows with ``keys`` and a function turning dict rows into tuples
    of database values in that order."""
    getter = itemgetter(*keys)
    processors: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = []
    for index, key in enumerate(keys):
        process = table.c[key].type._cached_bind_processor(dialect)
        if process is not None:
            processors.append((index, process, {}))

    def convert(rows: list[Row]) -> list[tuple[Any, ...]]:
        if len(keys) == 1:
            return [(getter(row),) for row in rows]
        if not processors:
            return [getter(row) for row in rows]
        params = []
        for row in rows:
            values = list(getter(row))
            for index, process, cache in processors:
                value = values[index]
                if value is not None:
                    done = cache.get(value)
                    if done is None:
                        if len(cache) > 100_000:
                            cache.clear()
                        done = cache[value] = process(value)
                    values[index] = done
            params.append(tuple(values))
        return params

    return keys, convert


async def fix_sequences(conn: AsyncConnection) -> None:
    """PostgreSQL: move every id sequence past the ids inserted explicitly."""
    if conn.dialect.name != "postgresql":
        return
    for name in ID_TABLES:
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"(SELECT max(id) FROM {name}))"
            )
        )


async def any_customers(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(table_of(Customer).c.id).limit(1))).first() is not None


async def record_status_rules(
    conn: AsyncConnection, rules: StatusRules, *, had_customers: bool
) -> None:
    """Store the rules the new spans were computed with, so start-up finds nothing to rebuild.

    When customers already existed and the stored rules differ, their spans may follow other
    rules: the key is then removed, which makes ``ensure_status_rules`` rebuild everything.
    """
    meta = table_of(AppMeta)
    stored = (
        await conn.execute(select(meta.c.value).where(meta.c.key == STATUS_RULES_KEY))
    ).scalar()
    if stored == rules.fingerprint:
        return
    if had_customers:
        await conn.execute(delete(meta).where(meta.c.key == STATUS_RULES_KEY))
    elif stored is None:
        await conn.execute(insert(meta).values(key=STATUS_RULES_KEY, value=rules.fingerprint))
    else:
        await conn.execute(
            update(meta).where(meta.c.key == STATUS_RULES_KEY).values(value=rules.fingerprint)
        )


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. A no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
