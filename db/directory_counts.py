"""Maintained directory counts (issue 16): the directory's ``totalCount`` without counting.

- ``partner_customer_count``: per partner, its number of customers.
- ``status_span_day``: per partner, status and day (an integer, days since 1970-01-01 UTC), how
  many ``customer_status_span`` rows start that day (``valid_from``) and how many end that day
  (``valid_to``).

Database triggers keep both right in the same transaction as the rows they count, for every
writer (the API, the status refresh, the seeders, an operator's SQL): migration
``0020_directory_counts`` creates them (row triggers on SQLite, statement triggers with
transition tables on PostgreSQL).

Nothing here depends on the clock. The spans of one status of one customer never overlap
(``db.status.compute_spans`` merges them), so the customers holding a status at ``now`` are the
spans with ``valid_from <= now < valid_to``:

    #(valid_from <= now) - #(valid_to <= now)
    = sum over days before today's of (starts - ends)
      + #spans with valid_from in [today 00:00, now] - #spans with valid_to in [today 00:00, now]

The sum reads one row per day that has a span edge (a few thousand); the two corrections are
range counts on ``ix_status_span_from`` and ``ix_status_span_now`` over today's few spans. It is
exact at any ``now``, with no job. (Empty spans, ``valid_from == valid_to``, count 0 both ways.)

This module does not import ``db.models``; ``db.models`` imports it at its end so the tables
share its metadata.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import Column, Integer, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

__all__ = [
    "PARTNER_CUSTOMER_COUNT",
    "STATUS_SPAN_DAY",
    "customer_count",
    "day_number",
    "status_count",
]

PARTNER_CUSTOMER_COUNT = Table(
    "partner_customer_count",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("customers", Integer, nullable=False),
)

STATUS_SPAN_DAY = Table(
    "status_span_day",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("status", String(32), primary_key=True),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("starts", Integer, nullable=False),
    Column("ends", Integer, nullable=False),
)

_EPOCH = date(1970, 1, 1)


def day_number(moment: datetime) -> int:
    """The day bucket of ``moment`` (UTC): days since 1970-01-01, as the triggers compute it."""
    return (moment.astimezone(UTC).date() - _EPOCH).days


async def customer_count(session: AsyncSession, partner_id: int) -> int:
    """The partner's customers, from ``partner_customer_count``."""
    t = PARTNER_CUSTOMER_COUNT.c
    found = await session.scalar(select(t.customers).where(t.partner_id == partner_id))
    return int(found or 0)


async def status_count(session: AsyncSession, partner_id: int, status: str, now: datetime) -> int:
    """Customers of the partner for whom ``status`` holds at ``now``, in one statement."""
    # Imported here: db.models imports this module at its end.
    from db.models import CustomerStatusSpan

    span = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]
    d = STATUS_SPAN_DAY.c
    today = now.astimezone(UTC)
    midnight = datetime.combine(today.date(), time(), UTC)
    before = (
        select(func.coalesce(func.sum(d.starts - d.ends), 0))
        .where(d.partner_id == partner_id, d.status == status, d.day < day_number(today))
        .scalar_subquery()
    )
    mine = (span.partner_id == partner_id, span.status == status)
    started = (
        select(func.count())
        .where(*mine, span.valid_from >= midnight, span.valid_from <= today)
        .scalar_subquery()
    )
    ended = (
        select(func.count())
        .where(*mine, span.valid_to >= midnight, span.valid_to <= today)
        .scalar_subquery()
    )
    return int((await session.execute(select(before + started - ended))).scalar_one())
