"""``call_partner_week``: the calling aggregates summed per partner and week.

A partner-wide figure (a full admin's, whose scope is the whole partner) is one row here instead
of a sum over one row per customer with calls, so its cost does not grow with the partner's
customers. The row holds the sums of every column of ``call_weekly_aggregate`` and
``call_weekly_detail`` over the partner's customers for the week: "active users" and the users by
volume are per customer already (a user id names a user of one customer), so their sums are
exact here too.

Kept by the one writer of the customer aggregates, ``db.ingest.aggregates.refresh_aggregates``
(ingestion, the mutation, the seeders, a threshold change), in the same transaction: after the
customer rows of some (customer, week) pairs are rebuilt, the rows of their partners and weeks
are recomputed from the customer rows (never incremented: a second load rewrites the same
numbers). On PostgreSQL the recomputation of a partner holds a transaction-scoped advisory lock
on it, so that two loads of the same partner's customers cannot each sum the other's rows as
they were before (the second waits for the first to commit; READ COMMITTED then shows it the
first one's rows). Migration 0013 builds the rows of existing databases.

Restricted scopes (an admin limited to its assigned customers) keep summing the customer rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, Table, and_, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from db.calls_models import CALL_WEEKLY_DETAIL, DETAIL_COLUMNS
from db.types import UTCDateTime

WEEKLY_SUMS: tuple[str, ...] = (
    "calls",
    "duration_seconds",
    "active_users",
    "poor_calls",
    "queue_calls",
    "answered_calls",
    "abandoned_calls",
    "answered_wait_seconds",
    "abandoned_wait_seconds",
)
PARTNER_COLUMNS = (*WEEKLY_SUMS, *DETAIL_COLUMNS)
LOCK_CLASS = 16_013  # advisory lock namespace (two-key form): (LOCK_CLASS, partner id)
CHUNK = 1000

CALL_PARTNER_WEEK = Table(
    "call_partner_week",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("week_start", UTCDateTime(), primary_key=True),
    *(Column(name, BigInteger, nullable=False) for name in PARTNER_COLUMNS),
)


def partner_sums() -> tuple[Table, Table, list[object]]:
    """The customer tables and the summed columns, in ``PARTNER_COLUMNS`` order."""
    from db.models import CallWeeklyAggregate

    weekly: Table = CallWeeklyAggregate.__table__  # type: ignore[attr-defined]
    detail = CALL_WEEKLY_DETAIL
    sums: list[object] = [func.sum(weekly.c[n]) for n in WEEKLY_SUMS]
    sums += [func.sum(detail.c[n]) for n in DETAIL_COLUMNS]
    return weekly, detail, sums


async def refresh_partner_weeks(
    conn: AsyncConnection, customers: Sequence[int], weeks: Iterable[datetime]
) -> None:
    """Recompute the partner rows of the partners of ``customers`` for ``weeks`` from the
    customer rows (the caller just rebuilt those of ``customers``)."""
    from db.models import Customer

    week_list = sorted(set(weeks))
    if not customers or not week_list:
        return
    cu: Table = Customer.__table__  # type: ignore[attr-defined]
    partners: set[int] = set()
    for i in range(0, len(customers), CHUNK):
        chunk = list(customers[i : i + CHUNK])
        found = await conn.execute(select(cu.c.partner_id).where(cu.c.id.in_(chunk)).distinct())
        partners.update(int(p) for p in found.scalars())
    if not partners:
        return
    ordered = sorted(partners)
    if conn.dialect.name == "postgresql":
        for partner in ordered:  # in partner order: two loads cannot wait on each other in turn
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:k, :p)"), {"k": LOCK_CLASS, "p": partner}
            )
    weekly, detail, sums = partner_sums()
    pw = CALL_PARTNER_WEEK
    await conn.execute(
        delete(pw).where(pw.c.partner_id.in_(ordered), pw.c.week_start.in_(week_list))
    )
    rows = (
        select(weekly.c.partner_id, weekly.c.week_start, *sums)
        .select_from(
            weekly.join(
                detail,
                and_(
                    detail.c.customer_id == weekly.c.customer_id,
                    detail.c.week_start == weekly.c.week_start,
                ),
            )
        )
        .where(weekly.c.partner_id.in_(ordered), weekly.c.week_start.in_(week_list))
        .group_by(weekly.c.partner_id, weekly.c.week_start)
    )
    await conn.execute(
        pw.insert().from_select(["partner_id", "week_start", *PARTNER_COLUMNS], rows)
    )


__all__ = ["CALL_PARTNER_WEEK", "PARTNER_COLUMNS", "WEEKLY_SUMS", "refresh_partner_weeks"]
