"""Every maintained license figure a request asks of the whole partner, in one statement.

The top KPIs (``licenseKpis``) and the KPIs of each requested product's sections
(``licenseAnalytics``) of a scope over all the partner's customers are read from the same kept
spans and day edges (``db.license_kpis``); the low-allocation figures (a customer count over both
products for the top KPI, the sums of a product's flagged subscriptions for its section) ride
in the same statement as extra rows of the edges' union. A dashboard thus pays one statement
for what took three (top KPIs, four shared section KPIs, low allocation's KPIs).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, bindparam, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.license_kpis import WEIGHTS, KpiFigures, figures_params, figures_statement, read_figures
from db.queries.analytics.common import (
    KPI_PRODUCTS,
    AnyScope,
    BoundMedians,
    BoundScope,
    Medians,
    Section,
    Times,
    low_subscriptions,
)
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


def _low_rows(
    scope: AnyScope,
    now: datetime | Times,
    low: Collection[str],
    medians: Medians,
    halves: Mapping[tuple[str, int], Any] | None = None,
    bounds: Mapping[tuple[str, int], Any] | None = None,
) -> list[Any]:
    """The extra rows of the low-allocation names asked, from one read of the flagged
    subscriptions of the products they need: a one-row aggregate (``low_figures``, conditional
    sums per product) that each name's row then reads, so the top count over both products and
    a product's section sums share one walk of the index ranges."""
    asked = [p for p in KPI_PRODUCTS if low_section_kpi(p) in low]
    products = KPI_PRODUCTS if LOW_KPI in low else asked
    flagged = low_subscriptions(
        "flagged", products, now, scope, medians, thin=True, halves=halves, bounds=bounds
    )
    if flagged is None:
        return []
    # Streamed into the per-customer grouping, not copied into a table first (SQLite
    # materialised it: 1.3 ms of 9 at 100,000 customers).
    flagged = flagged.prefix_with("NOT MATERIALIZED")
    f = flagged.c
    top = LOW_KPI in low
    # Per flagged customer first (one sort of the flagged rows), then over the customers: a
    # customer counts once per product with a flag (``max``) and once in the top count (a
    # row), which replaces a COUNT(DISTINCT) per product (a temp B-tree each on SQLite).
    per: list[Any] = []
    for p in asked:
        mine = f.product == p
        per += [
            func.max(case((mine, 1), else_=0)).label(f"{p}_customers"),
            *[
                func.sum(case((mine, f[n]), else_=0)).label(f"{p}_{n}")
                for n in ("purchased", "assigned", "used")
            ],
            func.sum(case((mine, 1), else_=0)).label(f"{p}_rows"),
        ]
    customers = select(f.customer_id, *per).group_by(f.customer_id).subquery("flagged_customers")
    k = customers.c
    columns = [func.count().label("any_customers")] if top else []
    for p in asked:
        names = ("customers", "purchased", "assigned", "used", "rows")
        columns += [func.coalesce(func.sum(k[f"{p}_{n}"]), 0).label(f"{p}_{n}") for n in names]
    # Read by each name's row: computed once (SQLite would otherwise run it per reader).
    figures = select(*columns).select_from(customers).cte("low_figures").prefix_with("MATERIALIZED")
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
    bands = tuple(sorted(medians)) if low else ()
    statement = _statement(tuple(kpis), tuple(low), BoundScope.shape(scope), bands)
    params = {**Times.params(now), **BoundScope.params(scope), **figures_params(now)}
    params.update(BoundMedians.params(medians, bands))
    figures = await read_figures(session, statement, kpis, params)
    return {name: figures.get(name, KpiFigures()) for name in [*kpis, *low]}


@lru_cache(maxsize=64)
def _statement(
    kpis: tuple[str, ...],
    low: tuple[str, ...],
    shape: tuple[bool, bool],
    bands: tuple[tuple[str, int], ...],
) -> Any:
    """``partner_figures``' statement, built once per shape (the KPIs and low rows asked, the
    scope's shape, the bands with a median) and executed with the instants, the partner and
    the halved medians bound (``half_<product>_<band>``): building it and its cache key took
    ~5 ms of every dashboard request. The partner is bound, never baked (``BoundScope``)."""
    at = Times.bound()
    scope = BoundScope(shape)
    m = BoundMedians.of(bands)
    also = _low_rows(scope, at, low, m.placeholders, m.halves, m.bounds) if low else []
    return figures_statement(
        kpis,
        partner_id=scope.partner_id,
        day=bindparam("day", type_=Integer),
        midnight=bindparam("midnight", type_=at.now.type),
        now=at.now,
        also=also,
    )
