"""Ingestion runs: a streamed file (command line) and a small all-or-nothing batch (mutation)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TextIO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.ingest.aggregates import DEFAULT_THRESHOLDS, QualityThresholds, refresh_aggregates
from db.ingest.customers import CustomerResolver
from db.ingest.reading import InputLine, read_records
from db.ingest.records import ParsedRecord, RowError, parse_values
from db.ingest.store import BulkState, StoredRecord, insert_records
from db.versioning import writes_for

DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 100_000
KEEP_REJECTIONS = 1000
PARSE_SLICE = 500
COMMIT_RECORDS = 100_000
ANALYZE_RECORDS = 50_000
ANALYZE_CUSTOMER_WEEKS = 1_000


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was not loaded: where it was (input line, or list index) and why."""

    line: int
    call_id: str | None
    field: str | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {where}{self.message}"


@dataclass
class IngestReport:
    """What an ingestion did. ``rejections`` keeps the first ``KEEP_REJECTIONS`` in detail."""

    read: int = 0
    valid: int = 0
    inserted: int = 0
    rejected: int = 0
    written: bool = True
    customers: int = 0
    weeks_refreshed: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    # valid records per partner: what each partner's audit entry of a command-line load says
    partners: Counter[int] = field(default_factory=Counter)

    @property
    def duplicates(self) -> int:
        """Valid records whose call id was already stored (or came twice)."""
        return self.valid - self.inserted if self.written else 0


class _Run:
    """Shared by both entry points: parse, resolve customers, build stored rows."""

    def __init__(
        self,
        *,
        now: datetime,
        partner_id: int | None,
        on_reject: Callable[[Rejection], None] | None,
        keep: int,
    ) -> None:
        self.now = now
        self.resolver = CustomerResolver(partner_id)
        self.report = IngestReport()
        self.touched: set[tuple[int, datetime]] = set()
        self._on_reject = on_reject
        self._keep = keep
        self._batch_rejections: list[Rejection] = []

    def reject(self, line: int, call_id: str | None, error: RowError) -> None:
        self._batch_rejections.append(
            Rejection(line, call_id, error.field, error.code, error.message)
        )

    def _flush_rejections(self) -> None:
        """Report the batch's rejections in input order (customers are checked after parsing)."""
        for rejection in sorted(self._batch_rejections, key=lambda r: r.line):
            self.report.rejected += 1
            if len(self.report.rejections) < self._keep:
                self.report.rejections.append(rejection)
            if self._on_reject is not None:
                self._on_reject(rejection)
        self._batch_rejections.clear()

    async def rows(self, conn: AsyncConnection, batch: Sequence[InputLine]) -> list[StoredRecord]:
        """Stored rows of the batch's good records; bad ones are rejected. Parsing yields to the
        event loop every ``PARSE_SLICE`` records so that a write in flight keeps moving."""
        now = self.now
        good: list[tuple[int, ParsedRecord]] = []
        for start in range(0, len(batch), PARSE_SLICE):
            if start:
                await asyncio.sleep(0)
            for line, values in batch[start : start + PARSE_SLICE]:
                if isinstance(values, RowError):
                    self.reject(line, None, values)
                    continue
                try:
                    good.append((line, parse_values(values, now)))
                except RowError as error:
                    self.reject(line, values[0].strip()[:64] if values else None, error)
        self.report.read += len(batch)
        await self.resolver.resolve(conn, {record[1] for _, record in good})
        rows: list[StoredRecord] = []
        known, touched = self.resolver.known, self.touched
        for line, r in good:
            found = known.get(r[1])
            if found is None:
                try:
                    found = self.resolver.get(r[1])
                except RowError as error:
                    self.reject(line, r[0], error)
                    continue
            customer_id, partner_id = found
            rows.append((r[0], partner_id, customer_id, *r[2:]))
            touched.add((customer_id, r[4]))
        self.report.valid += len(rows)
        self.report.partners.update(row[1] for row in rows)
        self._flush_rejections()
        return rows

    async def finish(self, conn: AsyncConnection, thresholds: QualityThresholds) -> None:
        # The aggregates of every partner loaded (in this transaction or an earlier one).
        await writes_for(conn, self.report.partners)
        self.report.customers = len({c for c, _ in self.touched})
        self.report.weeks_refreshed = await refresh_aggregates(conn, self.touched, thresholds)


def _batches(lines: Iterable[InputLine], size: int) -> Iterator[list[InputLine]]:
    iterator = iter(lines)
    while batch := list(islice(iterator, size)):
        yield batch


async def ingest_stream(
    engine: AsyncEngine,
    source: TextIO,
    *,
    now: datetime,
    strict: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    partner_id: int | None = None,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[Rejection], None] | None = None,
    keep: int = KEEP_REJECTIONS,
) -> IngestReport:
    """Load a CSV or JSON-lines stream batch by batch; memory does not grow with its length.

    Without ``strict`` bad records are skipped and the records commit every ``COMMIT_RECORDS``
    or so (on SQLite, committing every batch costs more than the inserts: each commit grows the
    write-ahead log that checkpoints rewrite); the aggregates of every (customer, week) seen are
    recomputed at the end. With ``strict`` the
    whole input is one transaction, rolled back (``written`` False) when any record is bad; the
    rest of the input is still read so every bad record is reported.
    Raises ``IngestError`` when the input as a whole is unreadable (before writing anything).
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch size must be 1-{MAX_BATCH_SIZE}")
    lines = read_records(source)
    run = _Run(now=now, partner_id=partner_id, on_reject=on_reject, keep=keep)
    report = run.report
    # Two connections: customers are looked up on one while the previous batch is written on
    # the other, so parsing batch n+1 overlaps the database's work on batch n.
    async with engine.connect() as conn, engine.connect() as lookup:
        pending: asyncio.Task[int] | None = None
        bulk = BulkState()
        uncommitted = 0

        async def write(rows: list[StoredRecord]) -> int:
            nonlocal uncommitted
            await writes_for(conn, {row[1] for row in rows})
            inserted = await insert_records(conn, rows, bulk)
            uncommitted += len(rows)
            if not strict and uncommitted >= COMMIT_RECORDS:
                await conn.commit()
                uncommitted = 0
            return inserted

        try:
            for batch in _batches(lines, batch_size):
                rows = await run.rows(lookup, batch)
                await lookup.rollback()  # end the read transaction: see customers added meanwhile
                if strict and report.rejected:
                    report.written = False
                if pending is not None:
                    report.inserted += await pending
                    pending = None
                if report.written:
                    pending = asyncio.create_task(write(rows))
                    await asyncio.sleep(0)
                if on_progress is not None:
                    on_progress(len(batch))
            if pending is not None:
                report.inserted += await pending
                pending = None
            if not report.written:
                await conn.rollback()
                report.inserted = 0
                return report
            await run.finish(conn, thresholds)
            await conn.commit()
            await _analyze_after_bulk_load(conn, report)
        except BaseException:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            await conn.rollback()
            raise
    return report


async def _analyze_after_bulk_load(conn: AsyncConnection, report: IngestReport) -> None:
    """PostgreSQL: fresh planner statistics after a big load, instead of waiting for autovacuum
    (until it runs, plans made for nearly empty aggregate tables make analytics crawl)."""
    if conn.dialect.name != "postgresql":
        return
    if report.inserted < ANALYZE_RECORDS and report.weeks_refreshed < ANALYZE_CUSTOMER_WEEKS:
        return
    await conn.execute(text("ANALYZE call_record, call_weekly_aggregate, call_weekly_detail"))
    await conn.commit()


async def ingest_records(
    conn: AsyncConnection,
    records: Sequence[Sequence[str] | RowError],
    *,
    now: datetime,
    partner_id: int,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> IngestReport:
    """All or nothing, inside the caller's transaction: when any record is bad nothing is
    written (``written`` False) and every bad record is reported by its 0-based index."""
    run = _Run(now=now, partner_id=partner_id, on_reject=None, keep=len(records))
    batch: list[InputLine] = [
        (i, values if isinstance(values, RowError) else list(values))
        for i, values in enumerate(records)
    ]
    rows = await run.rows(conn, batch)
    if run.report.rejected:
        run.report.written = False
        return run.report
    run.report.inserted = await insert_records(conn, rows)
    await run.finish(conn, thresholds)
    return run.report
