"""Every maintained license figure a request asks of the whole partner, in one statement.

The top KPIs (``licenseKpis``) and the KPIs of each requested product's sections
(``licenseAnalytics``) of a scope over all the partner's customers are read from the same kept
spans and day edges (``db.license_kpis``), the low-allocation figures (a customer count over both
products for the top KPI, the sums of a product's flagged subscriptions for its section) too,
kept at the reference thresholds (migration 0033) and corrected to the current medians by
extra rows of the edges' union (``db.queries.analytics.low_kept``). A dashboard thus pays one
statement for what took three (top KPIs, four shared section KPIs, low allocation's KPIs), and
its cost follows the days with an edge, not the partner's flagged subscriptions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, bindparam
from sqlalchemy.ext.asyncio import AsyncSession

from db.license_kpis import KpiFigures, figures_params, figures_statement, read_figures
from db.queries.analytics.common import BoundMedians, BoundScope, Medians, Section, Times
from db.queries.analytics.kpis import LicenseKpiCounts
from db.queries.analytics.low_kept import ANY_LOW, low_corrections, low_kpi
from db.queries.analytics.summaries import KPI_NAMES, SectionSummary
from db.scope import Scope

# The maintained spans of the top KPIs but low allocation (``kpis._partner_kpis``).
TOP_KPIS = ("ANY/TOTAL", "ANY/EXPIRING", "ANY/RENEWING", "ANY/OVER")

# The top low-allocation KPI (customers over both products), kept and corrected
# (``db.queries.analytics.low_kept``).
LOW_KPI = ANY_LOW


def low_section_kpi(product: str) -> str:
    """A product's low-allocation section KPIs, kept and corrected."""
    return low_kpi(product)


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
    also = low_corrections(scope, at, low, m.halves, m.bounds) if low else []
    return figures_statement(
        (*kpis, *low),
        partner_id=scope.partner_id,
        day=bindparam("day", type_=Integer),
        midnight=bindparam("midnight", type_=at.now.type),
        now=at.now,
        also=also,
    )
