"""Section KPIs: the sums over a section's rows. The recently added, about to expire, about to
renew and overage sections share one statement (one pass over the caller's in-force
subscriptions with the product); low allocation takes the band medians and has its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.license_kpis import kpi_figures
from db.queries.analytics.common import (
    Medians,
    Section,
    product_subscriptions,
    section_conditions,
)
from db.queries.analytics.kpis import section_medians
from db.queries.analytics.sections import section_rows
from db.scope import Scope


@dataclass(frozen=True, slots=True)
class SectionSummary:
    """Sums over a section's rows (product lines of its subscriptions, or its overage lines)."""

    customers: int
    purchased: int
    assigned: int
    used: int
    rows: int


async def section_summary(
    session: AsyncSession,
    *,
    scope: Scope,
    section: Section,
    product: str,
    now: datetime,
    medians: Medians | None = None,
) -> SectionSummary:
    """Sums over a section's rows; ``medians`` (low allocation only) from
    ``low_allocation_medians``, fetched here when not given."""
    medians = await section_medians(session, section, product, now, medians)
    rows = section_rows(section, product, now, scope, medians, thin=True)
    stmt = select(
        func.count(distinct(rows.c.customer_id)),
        func.coalesce(func.sum(rows.c.purchased), 0),
        func.coalesce(func.sum(rows.c.assigned), 0),
        func.coalesce(func.sum(rows.c.used), 0),
        func.count(),
    )
    return SectionSummary(*(int(v) for v in (await session.execute(stmt)).one()))


# Sections whose KPIs one statement computes together (low allocation needs the medians).
SHARED_SUMMARY = (
    Section.RECENTLY_ADDED,
    Section.ABOUT_TO_EXPIRE,
    Section.ABOUT_TO_RENEW,
    Section.OVERAGE,
)


async def section_summaries(
    session: AsyncSession, *, scope: Scope, product: str, now: datetime
) -> dict[Section, SectionSummary]:
    """The summaries of the ``SHARED_SUMMARY`` sections in one statement: one pass over the
    caller's in-force subscriptions with the product, each section a condition on them (the
    overage section sums its lines through the per-subscription overage sums)."""
    if scope.assigned_admin_id is None:
        return await _partner_summaries(session, scope.partner_id, product, now)
    subs = product_subscriptions("subs", [product], now, scope, [])
    c = subs.c
    columns: list[Any] = []
    for section in SHARED_SUMMARY[:3]:
        cond = and_(*section_conditions(section, now, c))
        columns += [
            func.count(distinct(case((cond, c.customer_id)))),
            *[func.coalesce(func.sum(case((cond, c[n]), else_=0)), 0) for n in _SUMS],
            func.coalesce(func.sum(case((cond, 1), else_=0)), 0),
        ]
    columns += [
        func.count(distinct(case((c.lines_over > 0, c.customer_id)))),
        *[func.coalesce(func.sum(c[f"over_{n}"]), 0) for n in _SUMS],
        func.coalesce(func.sum(c.lines_over), 0),
    ]
    values = [int(v) for v in (await session.execute(select(*columns))).one()]
    return {
        section: SectionSummary(*values[5 * i : 5 * i + 5])
        for i, section in enumerate(SHARED_SUMMARY)
    }


_SUMS = ("purchased", "assigned", "used")


# The maintained KPI of each shared section (``db.license_kpis``).
KPI_NAMES = {
    Section.RECENTLY_ADDED: "RECENT",
    Section.ABOUT_TO_EXPIRE: "EXPIRING",
    Section.ABOUT_TO_RENEW: "RENEWING",
    Section.OVERAGE: "OVERAGE",
}


async def _partner_summaries(
    session: AsyncSession, partner_id: int, product: str, now: datetime
) -> dict[Section, SectionSummary]:
    """The whole partner's shared summaries, from the maintained spans: one statement whose
    cost follows the days with an edge, not the number of subscriptions."""
    names = {section: f"{product}/{name}" for section, name in KPI_NAMES.items()}
    figures = await kpi_figures(session, partner_id=partner_id, kpis=list(names.values()), now=now)
    return {
        section: SectionSummary(f.customers, f.purchased, f.assigned, f.used, f.rows)
        for section, f in ((s, figures[n]) for s, n in names.items())
    }
