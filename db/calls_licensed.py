"""Calling licences kept up to date (issue 16): "licensed users" without reading every licence.

- ``calling_licence_span``: per customer, the stretches of time in which it has CALLING license
  lines on ACTIVE subscriptions in force (start <= t < end, DESIGN.md section 2), one row per
  stretch between two consecutive starts or ends of those subscriptions, with ``licensed`` the
  licenses assigned on them. A customer's spans never overlap, so at any ``now`` it has at most
  one span holding ``now``: its licensed users are that span's ``licensed``, and "the customer
  has an in-force CALLING line" is "it has such a span".
- ``calling_licence_day``: per partner and day (days since 1970-01-01 UTC), the signed edges of
  the partner's spans: +1 customer and +licensed at a span's start, the opposite at its end.

Database triggers on ``subscription`` and ``license_line`` keep both right in the same
transaction as the rows they summarise, for every writer (the API, the seeders, an operator's
SQL): migration ``0022_calling_licence_spans`` creates them (row triggers on SQLite; statement
triggers with transition tables on PostgreSQL), rewriting the spans of the customers a statement
touched. Nothing here depends on the clock. The partner's customers with a span holding ``now``,
and their licensed users, are

    sum over days before today's + the spans starting in [today 00:00, now]
                                  - the spans ending in [today 00:00, now]

(as ``db.directory_counts`` counts statuses): one row per day with an edge, two index ranges
over today's few spans; exact at any ``now``, with no job.

This module does not import ``db.models``; ``db.models`` imports it at its end so the tables
share its metadata.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from db.types import UTCDateTime

__all__ = [
    "CALLING_LICENCE_DAY",
    "CALLING_LICENCE_SPAN",
    "LicensedTotals",
    "day_number",
    "in_force",
    "licensed_totals",
]

CALLING_LICENCE_SPAN = Table(
    "calling_licence_span",
    SQLModel.metadata,
    Column("customer_id", Integer, primary_key=True, autoincrement=False),
    Column("valid_from", UTCDateTime(), primary_key=True),
    Column("valid_to", UTCDateTime(), nullable=False),
    Column("partner_id", Integer, nullable=False),
    Column("licensed", BigInteger, nullable=False),
    Index(
        "ix_calling_licence_span_walk",
        "partner_id",
        "customer_id",
        "valid_from",
        "valid_to",
        "licensed",
    ),
    Index("ix_calling_licence_span_from", "partner_id", "valid_from"),
    Index("ix_calling_licence_span_to", "partner_id", "valid_to"),
)

CALLING_LICENCE_DAY = Table(
    "calling_licence_day",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("customers", BigInteger, nullable=False),
    Column("licensed", BigInteger, nullable=False),
)

SP = CALLING_LICENCE_SPAN.c
_EPOCH = date(1970, 1, 1)


def day_number(moment: datetime) -> int:
    """The day bucket of ``moment`` (UTC): days since 1970-01-01, as the triggers compute it."""
    return (moment.astimezone(UTC).date() - _EPOCH).days


def in_force(span: Any, now: datetime) -> Any:
    """The span (columns ``span``) holds ``now``."""
    return and_(span.valid_from <= now, span.valid_to > now)


class LicensedTotals:
    """Customers of a partner with an in-force CALLING line at ``now``, and their licenses."""

    __slots__ = ("customers", "licensed")

    def __init__(self, customers: int, licensed: int) -> None:
        self.customers = customers
        self.licensed = licensed


async def licensed_totals(session: AsyncSession, partner_id: int, now: datetime) -> LicensedTotals:
    """The partner's licensed customers and users at ``now``, in one statement that reads no
    more rows for 100,000 customers than for 1,000."""
    d = CALLING_LICENCE_DAY.c
    today = now.astimezone(UTC)
    midnight = datetime.combine(today.date(), time(), UTC)
    mine = SP.partner_id == partner_id

    def edges(column: Any, value: Any) -> Any:
        return select(value).where(mine, column >= midnight, column <= today).scalar_subquery()

    days = (
        select(
            func.coalesce(func.sum(d.customers), 0).label("customers"),
            func.coalesce(func.sum(d.licensed), 0).label("licensed"),
        )
        .where(d.partner_id == partner_id, d.day < day_number(today))
        .subquery("days")
    )
    licensed = func.coalesce(func.sum(SP.licensed), 0)
    row = (
        await session.execute(
            select(
                days.c.customers
                + edges(SP.valid_from, func.count())
                - edges(SP.valid_to, func.count()),
                days.c.licensed + edges(SP.valid_from, licensed) - edges(SP.valid_to, licensed),
            ).select_from(days)
        )
    ).one()
    return LicensedTotals(int(row[0]), int(row[1]))
