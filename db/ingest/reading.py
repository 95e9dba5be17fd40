"""Reading call records: a CSV file with the contract header, or JSON lines (same keys).

Both become ``(line number, values)`` pairs, the values as the strings the CSV contract carries
in ``CSV_COLUMNS`` order, for ``db.ingest.records.parse_values``. Line numbers are those of the
input: the CSV header is line 1 and blank lines count.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import datetime
from itertools import chain
from typing import Any, TextIO

import orjson

from db.ingest.records import CSV_COLUMNS, QUEUE_COLUMNS, IngestError, RowError


def as_text(value: Any) -> str:
    """A JSON (or GraphQL) value as the string the CSV contract would carry."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ";".join(as_text(v) for v in value)
    return str(value)


def values_of(record: Mapping[str, Any]) -> list[str]:
    """The fields of a mapping in ``CSV_COLUMNS`` order; unknown or missing keys are errors."""
    unknown = [k for k in record if k not in _COLUMN_SET]
    if unknown:
        raise RowError(None, "MALFORMED_ROW", f"unknown field {str(unknown[0])[:40]!r}")
    values = []
    for name in CSV_COLUMNS:
        if name not in record and name not in QUEUE_COLUMNS:
            raise RowError(name, "MALFORMED_ROW", "missing")
        values.append(as_text(record.get(name)))
    return values


_COLUMN_SET = frozenset(CSV_COLUMNS)

# A line of input: its line number and its values, or the error that made it unreadable.
InputLine = tuple[int, list[str] | RowError]


def read_records(source: TextIO) -> Iterator[InputLine]:
    """Records of a CSV file with a header, or of JSON lines; the first character decides.

    Line numbers are those of the input (the CSV header is line 1, blank lines count)."""
    skipped = 0
    first = source.read(1)
    if first == "\ufeff":
        first = source.read(1)
    while first.isspace():
        skipped += first == "\n"
        first = source.read(1)
    if not first:
        raise IngestError("the input is empty: expected a CSV header or JSON lines")
    lines = chain((first + source.readline(),), source)
    if first == "{":
        return _json_lines(lines, skipped)
    return _csv(lines, skipped)


def _csv(lines: Iterator[str], skipped: int) -> Iterator[InputLine]:
    reader = csv.reader(lines, strict=False)
    header = [name.strip() for name in next(reader)]
    if set(header) != _COLUMN_SET or len(header) != len(CSV_COLUMNS):
        missing = [c for c in CSV_COLUMNS if c not in header]
        extra = [c for c in header if c not in _COLUMN_SET]
        raise IngestError(
            "the CSV header must name exactly these columns: "
            + ",".join(CSV_COLUMNS)
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unknown: {', '.join(extra[:5])})" if extra else "")
        )
    return _csv_rows(reader, header, skipped)


def _csv_rows(reader: Any, header: list[str], skipped: int) -> Iterator[InputLine]:
    order = None if tuple(header) == CSV_COLUMNS else [header.index(c) for c in CSV_COLUMNS]
    line = reader.line_num
    for row in reader:
        start, line = line + 1, reader.line_num
        if not row:
            continue
        if order is not None and len(row) == len(order):
            row = [row[i] for i in order]
        yield start + skipped, row


def _json_lines(lines: Iterator[str], skipped: int) -> Iterator[InputLine]:
    for number, text in enumerate(lines, start=1 + skipped):
        if not text.strip():
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield number, RowError(None, "MALFORMED_ROW", f"not JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield number, RowError(None, "MALFORMED_ROW", "a line must hold one JSON object")
            continue
        try:
            yield number, values_of(record)
        except RowError as error:
            yield number, error
