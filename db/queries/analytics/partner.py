"""Every maintained license figure a request asks of the whole partner, in one statement.

The top KPIs (``licenseKpis``) and the KPIs of each requested product's sections
(``licenseAnalytics``) of a scope over all the partner's customers are read from the same kept
spans and day edges (``db.license_kpis``); the low-allocation figures (a customer count over both
products for the top KPI, the sums of a product's flagged subscriptions for its section) ride
in the same statement as extra rows of the edges' union. A dashboard thus pays one statement
for what took three (top KPIs, four shared section KPIs, low allocation's KPIs).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.license_kpis import WEIGHTS, KpiFigures, kpi_figures
from db.queries.analytics.common import KPI_PRODUCTS, Medians, Section, low_subscriptions
from db.queries.analytics.kpis import LicenseKpiCounts
from db.queries.analytics.summaries import KPI_NAMES, SectionSummary
from db.scope import Scope

# The maintained spans of the top KPIs but low allocation (``kpis._partner_kpis``).
TOP_KPIS = ("ANY/TOTAL", "ANY/EXPIRING", "ANY/RENEWING", "ANY/OVER")

# The extra row answering the top low-allocation KPI (customers over both products).
LOW_KPI = "LOW"


def low_section_kpi(product: str) -> str:
    """The extra row answering a product's low-allocation section KPIs."""
    return f"{product}/LOW"


def section_kpi(section: Section, product: str) -> str:
    """The name of a product's section KPIs among ``partner_figures``' answers."""
    if section is Section.LOW_ALLOCATION:
        return low_section_kpi(product)
    return f"{product}/{KPI_NAMES[section]}"


def top_counts(figures: dict[str, KpiFigures]) -> LicenseKpiCounts:
    """``licenseKpis`` from ``partner_figures(kpis=TOP_KPIS, low=[LOW_KPI])``."""
    total, expiring, renewing, over = (figures[n].customers for n in TOP_KPIS)
    return LicenseKpiCounts(total, expiring, renewing, figures[LOW_KPI].customers, over)


def summary_of(f: KpiFigures) -> SectionSummary:
    return SectionSummary(f.customers, f.purchased, f.assigned, f.used, f.rows)


def _row(name: str, *figures: Any) -> Any:
    """An extra row of the edges' union, its columns named as ``kpi_figures`` reads them (it
    may be the union's first or only part)."""
    named = [f.label(w) for f, w in zip(figures, WEIGHTS, strict=True)]
    return select(literal(name).label("kpi"), *named)


async def partner_figures(
    session: AsyncSession,
    *,
    scope: Scope,
    now: datetime,
    kpis: Sequence[str],
    low: Collection[str],
    medians: Medians,
) -> dict[str, KpiFigures]:
    """The figures of the maintained ``kpis`` and of the low-allocation rows ``low``
    (``LOW_KPI`` and/or ``low_section_kpi(product)``) for ``scope``, which must be the whole
    partner; ``medians`` from ``low_allocation_medians`` (unused without ``low``). A low row
    without any band median flags nothing: its figures are zeros."""
    if scope.assigned_admin_id is not None:
        raise ValueError("partner_figures answers a scope over all the partner's customers")
    also: list[Any] = []
    if LOW_KPI in low:
        flagged = low_subscriptions("flagged_any", KPI_PRODUCTS, now, scope, medians, thin=True)
        if flagged is not None:
            zero = [literal(0)] * 4
            also.append(_row(LOW_KPI, func.count(distinct(flagged.c.customer_id)), *zero))
    for product in KPI_PRODUCTS:
        name = low_section_kpi(product)
        if name not in low:
            continue
        rows = low_subscriptions(
            f"flagged_{product.lower()}", [product], now, scope, medians, thin=True
        )
        if rows is None:
            continue
        c = rows.c
        also.append(
            _row(
                name,
                func.count(distinct(c.customer_id)),
                func.coalesce(func.sum(c.purchased), 0),
                func.coalesce(func.sum(c.assigned), 0),
                func.coalesce(func.sum(c.used), 0),
                func.count(),
            )
        )
    figures = await kpi_figures(session, partner_id=scope.partner_id, kpis=kpis, now=now, also=also)
    return {name: figures.get(name, KpiFigures()) for name in [*kpis, *low]}
