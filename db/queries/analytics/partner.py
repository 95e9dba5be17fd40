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

from sqlalchemy import case, distinct, func, literal, select
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


def _low_rows(scope: Scope, now: datetime, low: Collection[str], medians: Medians) -> list[Any]:
    """The extra rows of the low-allocation names asked, from one read of the flagged
    subscriptions of the products they need: a one-row aggregate (``low_figures``, conditional
    sums per product) that each name's row then reads, so the top count over both products and
    a product's section sums share one walk of the index ranges."""
    asked = [p for p in KPI_PRODUCTS if low_section_kpi(p) in low]
    products = KPI_PRODUCTS if LOW_KPI in low else asked
    flagged = low_subscriptions("flagged", products, now, scope, medians, thin=True)
    if flagged is None:
        return []
    f = flagged.c
    top = LOW_KPI in low
    columns = [func.count(distinct(f.customer_id)).label("any_customers")] if top else []
    for p in asked:
        mine = f.product == p
        columns += [
            func.count(distinct(case((mine, f.customer_id)))).label(f"{p}_customers"),
            *[
                func.coalesce(func.sum(case((mine, f[n]), else_=0)), 0).label(f"{p}_{n}")
                for n in ("purchased", "assigned", "used")
            ],
            func.coalesce(func.sum(case((mine, 1), else_=0)), 0).label(f"{p}_rows"),
        ]
    # Read by each name's row: computed once (SQLite would otherwise run it per reader).
    figures = select(*columns).cte("low_figures").prefix_with("MATERIALIZED")
    g = figures.c
    rows = []
    if top:
        zero = [literal(0)] * 4
        rows.append(_row(LOW_KPI, g.any_customers, *zero).select_from(figures))
    for p in asked:
        names = ("customers", "purchased", "assigned", "used", "rows")
        rows.append(_row(low_section_kpi(p), *[g[f"{p}_{n}"] for n in names]))
    return rows


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
    also = _low_rows(scope, now, low, medians) if low else []
    figures = await kpi_figures(session, partner_id=scope.partner_id, kpis=kpis, now=now, also=also)
    return {name: figures.get(name, KpiFigures()) for name in [*kpis, *low]}
