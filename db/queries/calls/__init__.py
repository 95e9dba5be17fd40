"""Calling analytics (DESIGN.md section 3, "Calling"): SQL over the calling aggregates.

Every figure is a sum over the per-customer aggregate rows of ``call_weekly_aggregate`` and the
tables of ``db.calls_models`` (kept by ``db.ingest``), restricted to the caller's ``Scope``; raw
call records are never read here. Users are counted per customer (a user id names a user of one
customer organization), so "active users" of several customers is the sum of theirs.

"Licensed users" of a customer are the licenses assigned on the CALLING lines of its in-force
subscriptions at the clock's now (DESIGN.md section 2), the same figure for every week shown;
"licensed users without calls" in a week is, per customer, licensed users minus the users who
made calls that week, floored at 0, summed over customers.
"""

from __future__ import annotations

from db.queries.calls.common import (
    WEEK,
    last_closed_week,
    licensed_now,
    licensed_of,
    licensed_totals,
    minutes,
    percent,
    ratio_tenths,
    week_start,
)
from db.queries.calls.customer_usage import QuietRows, usage_table
from db.queries.calls.figures import (
    DayUsage,
    QualityWeek,
    QueueTotals,
    Usage,
    VolumeWeek,
    WeekSums,
    feature_usage,
    quality_by_endpoint,
    quality_by_week,
    queue_totals,
    usage,
    users_by_volume,
    week_sums,
    weeks_ending,
)
from db.queries.calls.tables import (
    CustomerQualityOrder,
    CustomerTable,
    CustomerUsageOrder,
    Page,
    QueueCustomerOrder,
    quality_table,
    queue_table,
    table_count,
    table_page,
)

__all__ = [
    "WEEK",
    "CustomerQualityOrder",
    "CustomerTable",
    "CustomerUsageOrder",
    "DayUsage",
    "Page",
    "QualityWeek",
    "QueueCustomerOrder",
    "QueueTotals",
    "QuietRows",
    "Usage",
    "VolumeWeek",
    "WeekSums",
    "feature_usage",
    "last_closed_week",
    "licensed_now",
    "licensed_of",
    "licensed_totals",
    "minutes",
    "percent",
    "quality_by_endpoint",
    "quality_by_week",
    "quality_table",
    "queue_table",
    "queue_totals",
    "ratio_tenths",
    "table_count",
    "table_page",
    "usage",
    "usage_table",
    "users_by_volume",
    "week_start",
    "week_sums",
    "weeks_ending",
]
