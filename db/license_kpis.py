"""Maintained license KPI spans (issue 16): the dashboard's counts and sums without a pass over
the partner's subscriptions.

Every figure of the top license KPIs and of four sections (recently added, about to expire,
about to renew, overage) holds for a subscription during one interval of ``now`` (DESIGN.md
sections 2 and 3; "within N days" is now < date <= now + N days):

| KPI | a total (subscription, product) of ``license_product_total`` counts while |
| --- | --- |
| ``<P>/RECENT`` | start <= now < min(end, start + 90 days) |
| ``<P>/EXPIRING`` | not auto-renewing: max(start, end - 90 days) <= now < end |
| ``<P>/RENEWING`` | auto-renewing: max(start, renewal - 90 days) <= now < min(end, renewal) |
| ``<P>/OVERAGE`` | a line with assigned > purchased: start <= now < end |
| ``ANY/TOTAL`` | start <= now < end |
| ``ANY/EXPIRING`` | a trial, or not auto-renewing: as ``<P>/EXPIRING`` |
| ``ANY/RENEWING`` | as ``<P>/RENEWING`` |
| ``ANY/OVER`` | as ``<P>/OVERAGE`` |

always with state ACTIVE; ``<P>`` is MEETINGS or CALLING (the section's product), ``ANY`` both
(the top KPIs' *relevant* subscriptions).

- ``license_kpi_span``: per subscription and ``<P>`` KPI, its interval with its sums as weights
  (purchased, assigned, used and rows; for overage those of its overage lines); per customer
  and KPI, the union of its subscriptions' intervals, island by island, with weight
  ``customers = 1`` (a customer counts once however many of its subscriptions qualify).
- ``license_kpi_day``: per partner, KPI and day (days since 1970-01-01 UTC), the spans'
  weights added on their first day and taken back on their end's day.
- ``license_kpi_block``: the day edges summed per block of days, at two levels: ``level`` 5,
  blocks of 32 days (``block = day >> 5``), and ``level`` 10, blocks of 1,024 days
  (``day >> 10``).
- ``license_kpi_edge``: per partner, KPI and instant, the spans' weights added at their start and
  taken back at their end (the day edges at the instant's resolution).

Rows of the last three whose weights are all zero may stay: a sum never minds them.

Triggers of migration ``0021_license_kpi_spans`` rebuild a customer's spans whenever one of its
``license_product_total`` rows changes (which triggers of migration 0012 keep from subscriptions
and license lines), and the day edges with the spans; triggers of ``0029_kpi_day_blocks`` keep
the blocks from the day edges and the instants' edges from the spans; all in the same
transaction, for every writer. On PostgreSQL one partner's writers take turns on these rows
under its write lock (``db.partner_write_lock``, migration 0032): they queue on the lock, never
on these rows.

Nothing here depends on the clock. A span counts at ``now`` when valid_from <= now < valid_to,
so the weights at ``now`` are, exactly as in ``db.directory_counts``:

    sum of day edges before today's
    + spans starting today at or before now - spans ending today at or before now

where the days before today's (``d`` = today's day number) are read as

    level-10 blocks < d >> 10                                 (whole 1,024-day blocks)
    + level-5 blocks from (d >> 10) << 5 up to d >> 5          (at most 31 blocks of 32 days)
    + days from (d >> 5) << 5 up to d                          (at most 31 days)

exactly the days < d, each once, in at most ~62 rows per KPI plus one per 1,024 days of history
(the plain sum read a row per day with an edge: ~1,000-2,100 per KPI on the 100,000-customer
bench, growing with the history and the partner); and today's spans as the instants' edges
from today's midnight up to ``now``: a row per instant with an edge, not per span (on the bench
every date is a midnight, and ~2,300 spans of a dashboard's KPIs start or end at today's). One
statement, by the primary keys. Right at any ``now`` without a job.

This module does not import ``db.models``; ``db.models`` imports it at its end so the tables
share its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    func,
    literal,
    select,
)
from sqlalchemy import union_all as sql_union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from db.directory_counts import day_number
from db.types import UTCDateTime

__all__ = [
    "LICENSE_KPI_BLOCK",
    "LICENSE_KPI_DAY",
    "LICENSE_KPI_EDGE",
    "LICENSE_KPI_SPAN",
    "KpiFigures",
    "day_bounds",
    "figures_params",
    "figures_statement",
    "kpi_figures",
    "read_figures",
]

WEIGHTS = ("customers", "purchased", "assigned", "used", "line_rows")


def _weights() -> list[Column[Any]]:
    return [Column(name, BigInteger, nullable=False) for name in WEIGHTS]


LICENSE_KPI_SPAN = Table(
    "license_kpi_span",
    SQLModel.metadata,
    Column("customer_id", Integer, primary_key=True, autoincrement=False),
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("kpi", String(48), primary_key=True),
    # 0 on a customer's union span.
    Column("subscription_id", Integer, primary_key=True, autoincrement=False),
    Column("valid_from", UTCDateTime(), primary_key=True),
    Column("valid_to", UTCDateTime(), nullable=False),
    *_weights(),
    Index("ix_license_kpi_span_from", "partner_id", "kpi", "valid_from"),
    Index("ix_license_kpi_span_to", "partner_id", "kpi", "valid_to"),
)

LICENSE_KPI_DAY = Table(
    "license_kpi_day",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("kpi", String(48), primary_key=True),
    Column("day", Integer, primary_key=True, autoincrement=False),
    *_weights(),
)

LICENSE_KPI_BLOCK = Table(
    "license_kpi_block",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("kpi", String(48), primary_key=True),
    # A block holds the days whose number >> level is ``block`` (5: 32 days, 10: 1,024 days).
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("block", Integer, primary_key=True, autoincrement=False),
    *_weights(),
)

LICENSE_KPI_EDGE = Table(
    "license_kpi_edge",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("kpi", String(48), primary_key=True),
    Column("at", UTCDateTime(), primary_key=True),
    *_weights(),
)

# The bind parameters (and their values, ``day_bounds``) of the ranges read before today.
BOUNDS = ("day_block10", "day_block5_from", "day_block5", "day_from")


def day_bounds(day: int) -> dict[str, int]:
    """Where the days before ``day`` split: whole level-10 blocks below ``day_block10``,
    level-5 blocks from ``day_block5_from`` below ``day_block5``, days from ``day_from``."""
    return {
        "day_block10": day >> 10,
        "day_block5_from": (day >> 10) << 5,
        "day_block5": day >> 5,
        "day_from": (day >> 5) << 5,
    }


@dataclass(frozen=True, slots=True)
class KpiFigures:
    """What holds at ``now`` for one KPI: distinct customers, and over its subscriptions (or
    overage lines) the sums and the number of rows."""

    customers: int = 0
    purchased: int = 0
    assigned: int = 0
    used: int = 0
    rows: int = 0


def figures_statement(
    kpis: Sequence[str],
    *,
    partner_id: Any,
    day: Any,
    midnight: Any,
    now: Any,
    also: Sequence[Any] = (),
) -> Any:
    """The statement of ``kpi_figures``: (kpi, customers, purchased, assigned, used, line_rows)
    per KPI. ``partner_id``, ``day`` (today's day number), ``midnight`` (today's start) and
    ``now`` may be values or bind parameters: built once per shape with bind parameters, it
    is only bound per request (building it and its cache key took ~3 ms a dashboard).
    Given a bound ``day``, the block bounds are bound too (``figures_params`` has them all)."""
    day_, block, edge = LICENSE_KPI_DAY.c, LICENSE_KPI_BLOCK.c, LICENSE_KPI_EDGE.c
    bound: dict[str, Any]
    if isinstance(day, int):
        bound = dict(day_bounds(day))
    else:
        bound = {name: bindparam(name, type_=Integer) for name in BOUNDS}

    def part(table: Any, *where: Any) -> Any:
        # Summed per KPI in its own index order (no sort): the union then adds a few rows.
        sums = [func.sum(table[w]).label(w) for w in WEIGHTS]
        return (
            select(table.kpi, *sums)
            .where(table.partner_id == partner_id, table.kpi.in_(list(kpis)), *where)
            .group_by(table.kpi)
        )

    parts: list[Any] = []
    if kpis:  # no maintained KPI asked: the ``also`` rows alone, no span or edge read
        # The days before today: whole blocks of 1,024 days, then of 32, then days.
        parts.append(part(block, block.level == 10, block.block < bound["day_block10"]))
        parts.append(
            part(
                block,
                block.level == 5,
                block.block >= bound["day_block5_from"],
                block.block < bound["day_block5"],
            )
        )
        parts.append(part(day_, day_.day >= bound["day_from"], day_.day < day))
        # Today's: the spans' edges from midnight up to now, a row per instant.
        parts.append(part(edge, edge.at >= midnight, edge.at <= now))
    parts.extend(also)
    if not parts:
        return None
    union: Any = parts[0] if len(parts) == 1 else sql_union_all(*parts)
    edges = union.subquery("edges")
    e = edges.c
    return select(e.kpi, *[func.coalesce(func.sum(e[w]), literal(0)) for w in WEIGHTS]).group_by(
        e.kpi
    )


def figures_params(now: datetime) -> dict[str, Any]:
    """The values of ``figures_statement``'s instants at ``now`` (bound as ``day``,
    ``midnight`` and ``now``) and of the block bounds of ``day`` (``day_bounds``)."""
    today = now.astimezone(UTC)
    day = day_number(today)
    return {
        "day": day,
        "midnight": datetime.combine(today.date(), time(), UTC),
        "now": today,
        **day_bounds(day),
    }


async def read_figures(
    session: AsyncSession, statement: Any, kpis: Sequence[str], params: dict[str, Any]
) -> dict[str, KpiFigures]:
    """Run a ``figures_statement``: every KPI of ``kpis`` (zeros when none counts) and every
    name the statement's extra rows answer."""
    if statement is None:
        return {}
    found = {
        kpi: KpiFigures(*(int(v) for v in values))
        for kpi, *values in await session.execute(statement, params)
    }
    return {kpi: found.get(kpi, KpiFigures()) for kpi in kpis} | found


async def kpi_figures(
    session: AsyncSession,
    *,
    partner_id: int,
    kpis: Sequence[str],
    now: datetime,
    also: Sequence[Any] = (),
) -> dict[str, KpiFigures]:
    """The figures of ``kpis`` for the whole partner at ``now``, in one statement; ``also``:
    selects of (kpi, customers, purchased, assigned, used, line_rows) rows to answer in the
    same statement (their kpi names are returned too)."""
    values = figures_params(now)
    statement = figures_statement(
        kpis,
        partner_id=partner_id,
        day=values["day"],
        midnight=values["midnight"],
        now=values["now"],
        also=also,
    )
    return await read_figures(session, statement, kpis, {})
