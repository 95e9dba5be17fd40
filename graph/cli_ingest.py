"""``partner-hub ingest calls FILE``: bulk-load call records (DESIGN.md section 6).

FILE is a CSV file with the contract header or a JSON-lines file (``-`` reads stdin); the first
character tells them apart. Bad records are reported on stderr with their line numbers while
the good ones load; ``--strict`` writes nothing when any record is bad. Loading is idempotent on
the call id within each partner (two partners may use the same id), so a file can be loaded
again (after an interruption, say) without harm.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import session_factory
from db.ingest import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    IngestError,
    IngestReport,
    Rejection,
    ensure_quality_thresholds,
    ingest_stream,
    thresholds_from,
)
from db.queries.audit import write_audit
from db.queries.writes import begin_write
from graph.cli import CliError, _now, _open, _Parser, _settings


def register(subparsers: Any) -> None:
    """Add ``ingest calls`` to the ``partner-hub`` parser."""
    ingest = subparsers.add_parser("ingest", help="bulk-load data")
    ingest_sub = ingest.add_subparsers(dest="ingest_command", required=True, parser_class=_Parser)
    calls = ingest_sub.add_parser(
        "calls",
        help="load call records from CSV (with header) or JSON lines; '-' reads stdin",
        description="Load call records. Idempotent on call_id per partner; bad records are "
        "reported with their line numbers while the good ones load, unless --strict.",
    )
    calls.add_argument("file", help="CSV or JSON-lines file, or '-' for stdin")
    calls.add_argument("--strict", action="store_true", help="write nothing if any record is bad")
    calls.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"records per batch (1-{MAX_BATCH_SIZE}, default {DEFAULT_BATCH_SIZE})",
    )
    calls.add_argument("--no-progress", action="store_true", help="no progress bar")
    calls.set_defaults(func=cmd_ingest_calls)


@contextmanager
def _source(name: str) -> Iterator[tuple[TextIO, int | None]]:
    """The input stream and its size in bytes (None for stdin)."""
    if name == "-":
        yield sys.stdin, None
        return
    path = Path(name)
    if not path.is_file():
        raise CliError(f"no such file: {name}")
    with path.open(encoding="utf-8", newline="") as f:
        yield f, path.stat().st_size


@contextmanager
def _progress(
    source: TextIO, size: int | None, enabled: bool
) -> Iterator[tuple[Callable[[int], None], Callable[[Rejection], None]]]:
    """(on_progress, on_reject): a rich bar on stderr over the bytes read, and the report of
    each rejected record printed above it as it happens."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def report(rejection: Rejection) -> None:
        console.print(f"rejected {rejection}", markup=False)

    if not enabled:
        yield (lambda _n: None), report
        return
    columns: list[Any] = [TextColumn("Ingesting call records"), BarColumn()]
    columns += [DownloadColumn(), TimeElapsedColumn(), TimeRemainingColumn()] if size else []
    columns += [TextColumn("{task.fields[records]:,} records")]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("ingest", total=size, records=0)
        records = 0
        buffer = getattr(source, "buffer", None)

        def advance(n: int) -> None:
            nonlocal records
            records += n
            done = buffer.tell() if size and buffer is not None else None
            bar.update(task, completed=done, records=records)

        yield advance, lambda r: bar.console.print(f"rejected {r}", markup=False)


def summary(report: IngestReport) -> str:
    if not report.written:
        return (
            f"--strict: {report.rejected:,} of {report.read:,} records are invalid; "
            "nothing was written"
        )
    return (
        f"{report.read:,} records read: {report.inserted:,} inserted, "
        f"{report.duplicates:,} duplicates (call id already stored), "
        f"{report.rejected:,} rejected; aggregates recomputed for {report.customers:,} "
        f"customers ({report.weeks_refreshed:,} customer-weeks)"
    )


async def audit_load(engine: AsyncEngine, report: IngestReport, now: datetime) -> None:
    """One ``ingestCallRecords`` entry in each partner's audit log, by the system (no admin),
    with that partner's own count only: a load spans partners, their logs stay apart."""
    async with session_factory(engine)() as session:
        await begin_write(session)
        for partner_id, records in sorted(report.partners.items()):
            await write_audit(
                session,
                partner_id=partner_id,
                admin_id=None,
                operation="ingestCallRecords",
                object_type="call_record",
                object_id=None,
                before=None,
                after={"records": records},
                now=now,
            )
        await session.commit()


async def cmd_ingest_calls(args: argparse.Namespace) -> None:
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise CliError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
    settings = _settings(args)
    thresholds = thresholds_from(settings)
    engine = await _open(settings, create=False)
    try:
        async with engine.begin() as conn:  # stored poor counts follow the current thresholds
            await ensure_quality_thresholds(conn, thresholds)
        now = _now(settings)
        with (
            _source(args.file) as (source, size),
            _progress(source, size, not args.no_progress) as (advance, reject),
        ):
            try:
                report = await ingest_stream(
                    engine,
                    source,
                    now=now,
                    strict=args.strict,
                    batch_size=args.batch_size,
                    thresholds=thresholds,
                    on_progress=advance,
                    on_reject=reject,
                )
            except IngestError as exc:
                raise CliError(str(exc)) from None
            except UnicodeDecodeError:
                raise CliError(
                    "the input is not UTF-8 text (records before the bad bytes were loaded; "
                    "loading the file again after fixing it is safe)"
                ) from None
        if report.written:
            await audit_load(engine, report, now)
    finally:
        await engine.dispose()
    if not report.written:
        raise CliError(summary(report))
    print(summary(report))
