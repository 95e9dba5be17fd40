"""License analytics (DESIGN.md section 3): top KPIs, the distribution trend and the five
license sections of a product, every figure aggregated in SQL within the caller's scope."""

from __future__ import annotations

from db.queries.analytics.common import KPI_PRODUCTS, USAGE_WEEKS, Medians, Section
from db.queries.analytics.kpis import (
    LicenseKpiCounts,
    LicenseWeekTotals,
    distribution_trend,
    license_kpis,
)
from db.queries.analytics.measures import (
    SIZE_BANDS,
    band_label,
    closed_weeks,
    one_decimal,
    percent,
)
from db.queries.analytics.medians import MediansMemo, low_allocation_medians
from db.queries.analytics.partner import (
    LOW_KPI,
    TOP_KPIS,
    partner_figures,
    section_kpi,
    summary_of,
    top_counts,
)
from db.queries.analytics.rows import LicenseRow, RowPage
from db.queries.analytics.sections import (
    COLUMNS,
    RowColumn,
    UnknownColumn,
    key_types,
    section_page,
)
from db.queries.analytics.summaries import (
    SHARED_SUMMARY,
    SectionSummary,
    section_summaries,
    section_summary,
)

__all__ = [
    "COLUMNS",
    "KPI_PRODUCTS",
    "LOW_KPI",
    "SHARED_SUMMARY",
    "SIZE_BANDS",
    "TOP_KPIS",
    "USAGE_WEEKS",
    "LicenseKpiCounts",
    "LicenseRow",
    "LicenseWeekTotals",
    "Medians",
    "MediansMemo",
    "RowColumn",
    "RowPage",
    "Section",
    "SectionSummary",
    "UnknownColumn",
    "band_label",
    "closed_weeks",
    "distribution_trend",
    "key_types",
    "license_kpis",
    "low_allocation_medians",
    "one_decimal",
    "partner_figures",
    "percent",
    "section_kpi",
    "section_page",
    "section_summaries",
    "section_summary",
    "summary_of",
    "top_counts",
]
