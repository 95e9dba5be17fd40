"""License analytics types: KPIs, the weekly trend, section rows, their connections and orders.

The field descriptions are the definitions (DESIGN.md section 3, made precise): every figure can
be recomputed from the raw subscriptions, license lines and weekly snapshots.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

import strawberry

from db.queries.analytics import LicenseRow, band_label
from graph.ids import to_global_id
from graph.pagination import PageInfo
from graph.types.common import SubscriptionKind

IN_FORCE = "in force (state ACTIVE and start <= now < end)"
PRODUCT_LINES = "the subscription's license lines of the selected product"
PERCENT = "rounded half up to one decimal; 0 when the denominator is 0"


@strawberry.enum(description="A product the license analytics can be switched to.")
class AnalyticsProduct(StrEnum):
    MEETINGS = "MEETINGS"
    CALLING = "CALLING"


@strawberry.enum(description="Sort direction.")
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.type(
    description="Top license KPIs: customer counts over the caller's *relevant* subscriptions, "
    f"i.e. {IN_FORCE} having a MEETINGS or CALLING license line. 'Within 90 days' means now < "
    "date <= now + 90 days. A customer counts once per KPI."
)
class LicenseKpis:
    total_customers: int = strawberry.field(description="Customers with a relevant subscription.")
    about_to_expire: int = strawberry.field(
        description="Customers with a relevant trial, or a relevant paid subscription without "
        "auto-renew, whose end date is within 90 days."
    )
    about_to_renew: int = strawberry.field(
        description="Customers with a relevant auto-renewing subscription whose renewal date is "
        "within 90 days."
    )
    low_allocation: int = strawberry.field(
        description="Customers with a subscription flagged low for MEETINGS or for CALLING "
        "(see `LowAllocationSection`)."
    )
    over_license_limit: int = strawberry.field(
        description="Customers with a MEETINGS or CALLING line of a relevant subscription where "
        "assigned > purchased."
    )


@strawberry.type(
    description="One week (Sunday 00:00 UTC to the next Sunday 00:00 UTC) of the license "
    "distribution trend: sums of the weekly snapshots of every license line of the product on "
    "the subscriptions of the caller's customers, whatever the subscription's state today "
    "(a snapshot records what the line held that week). 0 when the week has no snapshot."
)
class LicenseWeek:
    week_start: datetime = strawberry.field(description="Sunday 00:00 UTC opening the week.")
    purchased: int = strawberry.field(description="Sum of purchased licenses that week.")
    assigned: int = strawberry.field(description="Sum of assigned licenses that week.")
    used: int = strawberry.field(description="Sum of used licenses (active that week).")


# --- KPIs of the sections ------------------------------------------------------------------------


@strawberry.type(description="KPIs of the recently added section.")
class RecentlyAddedKpis:
    new_customers: int = strawberry.field(description="Customers with a row in the section.")
    total_licenses: int = strawberry.field(
        description="Sum of purchased licenses over the product lines of the section's rows."
    )


@strawberry.type(description="KPIs of the about-to-expire section.")
class ExpiringKpis:
    expiring_customers: int = strawberry.field(description="Customers with a row in the section.")
    allocation_percent: float = strawberry.field(
        description=f"100 * sum(assigned) / sum(purchased) over the rows' product lines; {PERCENT}."
    )
    usage_percent: float = strawberry.field(
        description=f"100 * sum(used) / sum(purchased) over the rows' product lines; {PERCENT}."
    )


@strawberry.type(description="KPIs of the about-to-renew section.")
class RenewingKpis:
    renewing_customers: int = strawberry.field(description="Customers with a row in the section.")
    allocation_percent: float = strawberry.field(
        description=f"100 * sum(assigned) / sum(purchased) over the rows' product lines; {PERCENT}."
    )
    usage_percent: float = strawberry.field(
        description=f"100 * sum(used) / sum(purchased) over the rows' product lines; {PERCENT}."
    )


@strawberry.type(description="KPIs of the low-allocation section.")
class LowAllocationKpis:
    low_allocation_customers: int = strawberry.field(
        description="Customers with a flagged subscription."
    )
    allocation_percent: float = strawberry.field(
        description="100 * sum(assigned) / sum(purchased) over the flagged subscriptions' product "
        f"lines; {PERCENT}."
    )
    usage_when_assigned_percent: float = strawberry.field(
        description="100 * sum(used) / sum(assigned) over the flagged subscriptions' product "
        f"lines; {PERCENT}."
    )
    unassigned_licenses: int = strawberry.field(
        description="sum(purchased - assigned) over the flagged subscriptions' product lines."
    )


@strawberry.type(description="KPIs of the overage section.")
class OverageKpis:
    overage_customers: int = strawberry.field(description="Customers with an overage line.")
    overage_licenses: int = strawberry.field(
        description="sum(assigned - purchased) over the overage lines."
    )
    average_overage: float = strawberry.field(
        description="overageLicenses / overageCustomers, rounded half up to one decimal; 0 "
        "without overage customers."
    )


# --- rows ----------------------------------------------------------------------------------------


@strawberry.type(description="Columns every license row has.")
class LicenseRowFields:
    customer_id: strawberry.ID = strawberry.field(
        description="Global ID of the customer (open it with `customer(id:)`)."
    )
    customer_name: str = strawberry.field(description="Name of the customer.")
    subscription_id: str = strawberry.field(
        description="Business identifier of the subscription (e.g. Sub123456, or a trial id)."
    )
    subscription_node_id: strawberry.ID = strawberry.field(
        description="Global ID of the subscription (open it with `node(id:)`)."
    )
    kind: SubscriptionKind = strawberry.field(description="PAID or TRIAL.")
    total_licenses: int = strawberry.field(description=f"Purchased licenses of {PRODUCT_LINES}.")
    assigned: int = strawberry.field(description=f"Assigned licenses of {PRODUCT_LINES}.")
    used: int = strawberry.field(description=f"Used licenses of {PRODUCT_LINES}.")
    available: int = strawberry.field(
        description=f"Sum over {PRODUCT_LINES} of max(purchased - assigned, 0)."
    )
    allocation_percent: float = strawberry.field(
        description=f"100 * assigned / totalLicenses; {PERCENT}."
    )
    usage_percent: float = strawberry.field(description=f"100 * used / totalLicenses; {PERCENT}.")


def _common(row: LicenseRow) -> dict[str, Any]:
    return {
        "customer_id": strawberry.ID(to_global_id("Customer", row.customer_pk)),
        "customer_name": row.customer_name,
        "subscription_id": row.subscription_ref,
        "subscription_node_id": strawberry.ID(to_global_id("Subscription", row.subscription_pk)),
        "kind": row.kind,
        "total_licenses": row.purchased,
        "assigned": row.assigned,
        "used": row.used,
        "available": row.available,
        "allocation_percent": row.allocation_percent,
        "usage_percent": row.usage_percent,
    }


ALLOCATION_CHANGE = (
    "Assigned licenses in last week's snapshot minus the week before's, summed over "
    f"{PRODUCT_LINES} (a missing snapshot counts as 0). Last week is the latest week (Sunday "
    "00:00 UTC to Sunday) that closed at or before now."
)
USAGE_CHANGE = ALLOCATION_CHANGE.replace("Assigned", "Used", 1)
USAGE_3_MONTHS = (
    "Usage over the last 3 months: the highest weekly used count (summed over "
    f"{PRODUCT_LINES}) among the snapshots of the last 13 closed weeks; 0 without snapshots."
)


@strawberry.type(description="A subscription in the recently added section.")
class RecentlyAddedRow(LicenseRowFields):
    start_date: datetime = strawberry.field(description="When the subscription started.")
    days_since_added: int = strawberry.field(
        description="Whole days from the start date to now (rounded down)."
    )
    weekly_allocation_change: int = strawberry.field(description=ALLOCATION_CHANGE)
    weekly_usage_change: int = strawberry.field(description=USAGE_CHANGE)

    @classmethod
    def from_row(cls, row: LicenseRow) -> RecentlyAddedRow:
        return cls(
            **_common(row),
            start_date=row.start_date,
            days_since_added=row.days_since_added,
            weekly_allocation_change=row.weekly_allocation_change,
            weekly_usage_change=row.weekly_usage_change,
        )


@strawberry.type(description="A subscription in the about-to-expire section.")
class ExpiringRow(LicenseRowFields):
    end_date: datetime = strawberry.field(description="When the subscription ends.")
    days_until_expiry: int = strawberry.field(
        description="Days from now to the end date, rounded up (1-90)."
    )
    usage_last_3_months: int = strawberry.field(description=USAGE_3_MONTHS)
    weekly_allocation_change: int = strawberry.field(description=ALLOCATION_CHANGE)
    weekly_usage_change: int = strawberry.field(description=USAGE_CHANGE)

    @classmethod
    def from_row(cls, row: LicenseRow) -> ExpiringRow:
        return cls(
            **_common(row),
            end_date=row.end_date,
            days_until_expiry=row.days_until_expiry,
            usage_last_3_months=row.usage_last_3_months,
            weekly_allocation_change=row.weekly_allocation_change,
            weekly_usage_change=row.weekly_usage_change,
        )


@strawberry.type(description="A subscription in the about-to-renew section.")
class RenewingRow(LicenseRowFields):
    renewal_date: datetime = strawberry.field(description="When the subscription renews.")
    days_until_renewal: int = strawberry.field(
        description="Days from now to the renewal date, rounded up (1-90)."
    )
    usage_last_3_months: int = strawberry.field(description=USAGE_3_MONTHS)
    weekly_allocation_change: int = strawberry.field(description=ALLOCATION_CHANGE)
    weekly_usage_change: int = strawberry.field(description=USAGE_CHANGE)

    @classmethod
    def from_row(cls, row: LicenseRow) -> RenewingRow:
        assert row.renewal_date is not None and row.days_until_renewal is not None
        return cls(
            **_common(row),
            renewal_date=row.renewal_date,
            days_until_renewal=row.days_until_renewal,
            usage_last_3_months=row.usage_last_3_months,
            weekly_allocation_change=row.weekly_allocation_change,
            weekly_usage_change=row.weekly_usage_change,
        )


@strawberry.type(description="A subscription flagged in the low-allocation section.")
class LowAllocationRow(LicenseRowFields):
    start_date: datetime = strawberry.field(description="When the subscription started.")
    months_since_added: int = strawberry.field(
        description="Whole calendar months from the start date to now: the largest m with "
        "start + m months <= now (the day clamped to the month's length)."
    )
    usage_when_assigned_percent: float = strawberry.field(
        description=f"100 * used / assigned; {PERCENT}."
    )
    size_band: str = strawberry.field(
        description="Size band by totalLicenses: 1-10, 11-50, 51-250, 251-1000 or 1001+."
    )
    weekly_allocation_change: int = strawberry.field(description=ALLOCATION_CHANGE)

    @classmethod
    def from_row(cls, row: LicenseRow) -> LowAllocationRow:
        return cls(
            **_common(row),
            start_date=row.start_date,
            months_since_added=row.months_since_added,
            usage_when_assigned_percent=row.usage_when_assigned_percent,
            size_band=band_label(row.size_band),
            weekly_allocation_change=row.weekly_allocation_change,
        )


@strawberry.type(
    description="A license line in overage (assigned > purchased) of an in-force subscription. "
    "Here totalLicenses, assigned, used, available and the percentages are those of this line."
)
class OverageRow(LicenseRowFields):
    license_type: str = strawberry.field(description="License type of the line.")
    overage: int = strawberry.field(description="assigned - purchased.")
    end_date: datetime = strawberry.field(description="When the subscription ends.")
    months_remaining: int = strawberry.field(
        description="Whole calendar months from now to the end date: the largest m with "
        "now + m months <= end (the day clamped to the month's length)."
    )
    auto_renew: bool = strawberry.field(description="The subscription renews automatically.")

    @classmethod
    def from_row(cls, row: LicenseRow) -> OverageRow:
        return cls(
            **_common(row),
            license_type=row.license_type or "",
            overage=row.overage,
            end_date=row.end_date,
            months_remaining=row.months_remaining,
            auto_renew=row.auto_renew,
        )


# --- connections ---------------------------------------------------------------------------------


@strawberry.type(description="Paging of a section's rows.")
class RowPaging:
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Rows of the section over all pages.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type(description="A recently added row with its cursor.")
class RecentlyAddedEdge:
    node: RecentlyAddedRow = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of recently added rows.")
class RecentlyAddedConnection(RowPaging):
    edges: list[RecentlyAddedEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[RecentlyAddedRow] = strawberry.field(description="Rows of this page.")


@strawberry.type(description="An about-to-expire row with its cursor.")
class ExpiringEdge:
    node: ExpiringRow = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of about-to-expire rows.")
class ExpiringConnection(RowPaging):
    edges: list[ExpiringEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[ExpiringRow] = strawberry.field(description="Rows of this page.")


@strawberry.type(description="An about-to-renew row with its cursor.")
class RenewingEdge:
    node: RenewingRow = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of about-to-renew rows.")
class RenewingConnection(RowPaging):
    edges: list[RenewingEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[RenewingRow] = strawberry.field(description="Rows of this page.")


@strawberry.type(description="A low-allocation row with its cursor.")
class LowAllocationEdge:
    node: LowAllocationRow = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of low-allocation rows.")
class LowAllocationConnection(RowPaging):
    edges: list[LowAllocationEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[LowAllocationRow] = strawberry.field(description="Rows of this page.")


@strawberry.type(description="An overage row with its cursor.")
class OverageEdge:
    node: OverageRow = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of overage rows.")
class OverageConnection(RowPaging):
    edges: list[OverageEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[OverageRow] = strawberry.field(description="Rows of this page.")


# --- orders --------------------------------------------------------------------------------------

ORDER_NOTE = (
    "Each value sorts by the row field of the same name (CUSTOMER_NAME case-insensitively). "
    "Columns counted from a date (days/months since or until) sort by that date, which orders "
    "them finer than whole days or months. Equal values are ordered by the subscription's "
    "internal id in the same direction as the underlying value"
)


@strawberry.enum(description=f"A column of RecentlyAddedRow. {ORDER_NOTE}.")
class RecentlyAddedColumn(Enum):
    CUSTOMER_NAME = "CUSTOMER_NAME"
    SUBSCRIPTION_ID = "SUBSCRIPTION_ID"
    DAYS_SINCE_ADDED = "DAYS_SINCE_ADDED"
    TOTAL_LICENSES = "TOTAL_LICENSES"
    ASSIGNED = "ASSIGNED"
    USED = "USED"
    AVAILABLE = "AVAILABLE"
    ALLOCATION_PERCENT = "ALLOCATION_PERCENT"
    USAGE_PERCENT = "USAGE_PERCENT"
    WEEKLY_ALLOCATION_CHANGE = "WEEKLY_ALLOCATION_CHANGE"
    WEEKLY_USAGE_CHANGE = "WEEKLY_USAGE_CHANGE"


@strawberry.enum(description=f"A column of ExpiringRow. {ORDER_NOTE}.")
class ExpiringColumn(Enum):
    CUSTOMER_NAME = "CUSTOMER_NAME"
    SUBSCRIPTION_ID = "SUBSCRIPTION_ID"
    DAYS_UNTIL_EXPIRY = "DAYS_UNTIL_EXPIRY"
    TOTAL_LICENSES = "TOTAL_LICENSES"
    ASSIGNED = "ASSIGNED"
    USED = "USED"
    AVAILABLE = "AVAILABLE"
    ALLOCATION_PERCENT = "ALLOCATION_PERCENT"
    USAGE_PERCENT = "USAGE_PERCENT"
    USAGE_LAST_3_MONTHS = "USAGE_LAST_3_MONTHS"
    WEEKLY_ALLOCATION_CHANGE = "WEEKLY_ALLOCATION_CHANGE"
    WEEKLY_USAGE_CHANGE = "WEEKLY_USAGE_CHANGE"


@strawberry.enum(description=f"A column of RenewingRow. {ORDER_NOTE}.")
class RenewingColumn(Enum):
    CUSTOMER_NAME = "CUSTOMER_NAME"
    SUBSCRIPTION_ID = "SUBSCRIPTION_ID"
    DAYS_UNTIL_RENEWAL = "DAYS_UNTIL_RENEWAL"
    TOTAL_LICENSES = "TOTAL_LICENSES"
    ASSIGNED = "ASSIGNED"
    USED = "USED"
    AVAILABLE = "AVAILABLE"
    ALLOCATION_PERCENT = "ALLOCATION_PERCENT"
    USAGE_PERCENT = "USAGE_PERCENT"
    USAGE_LAST_3_MONTHS = "USAGE_LAST_3_MONTHS"
    WEEKLY_ALLOCATION_CHANGE = "WEEKLY_ALLOCATION_CHANGE"
    WEEKLY_USAGE_CHANGE = "WEEKLY_USAGE_CHANGE"


@strawberry.enum(description=f"A column of LowAllocationRow. {ORDER_NOTE}.")
class LowAllocationColumn(Enum):
    CUSTOMER_NAME = "CUSTOMER_NAME"
    SUBSCRIPTION_ID = "SUBSCRIPTION_ID"
    MONTHS_SINCE_ADDED = "MONTHS_SINCE_ADDED"
    TOTAL_LICENSES = "TOTAL_LICENSES"
    ASSIGNED = "ASSIGNED"
    USED = "USED"
    AVAILABLE = "AVAILABLE"
    ALLOCATION_PERCENT = "ALLOCATION_PERCENT"
    USAGE_PERCENT = "USAGE_PERCENT"
    USAGE_WHEN_ASSIGNED_PERCENT = "USAGE_WHEN_ASSIGNED_PERCENT"
    SIZE_BAND = "SIZE_BAND"
    WEEKLY_ALLOCATION_CHANGE = "WEEKLY_ALLOCATION_CHANGE"


@strawberry.enum(description=f"A column of OverageRow. {ORDER_NOTE}, then by license type.")
class OverageColumn(Enum):
    CUSTOMER_NAME = "CUSTOMER_NAME"
    SUBSCRIPTION_ID = "SUBSCRIPTION_ID"
    LICENSE_TYPE = "LICENSE_TYPE"
    OVERAGE = "OVERAGE"
    MONTHS_REMAINING = "MONTHS_REMAINING"
    AUTO_RENEW = "AUTO_RENEW"
    TOTAL_LICENSES = "TOTAL_LICENSES"
    ASSIGNED = "ASSIGNED"
    USED = "USED"
    AVAILABLE = "AVAILABLE"
    ALLOCATION_PERCENT = "ALLOCATION_PERCENT"
    USAGE_PERCENT = "USAGE_PERCENT"


@strawberry.input(description="Order of the recently added rows.")
class RecentlyAddedOrder:
    field: RecentlyAddedColumn = strawberry.field(description="The column to sort by.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.ASC, description="ASC or DESC."
    )


@strawberry.input(description="Order of the about-to-expire rows.")
class ExpiringOrder:
    field: ExpiringColumn = strawberry.field(description="The column to sort by.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.ASC, description="ASC or DESC."
    )


@strawberry.input(description="Order of the about-to-renew rows.")
class RenewingOrder:
    field: RenewingColumn = strawberry.field(description="The column to sort by.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.ASC, description="ASC or DESC."
    )


@strawberry.input(description="Order of the low-allocation rows.")
class LowAllocationOrder:
    field: LowAllocationColumn = strawberry.field(description="The column to sort by.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.ASC, description="ASC or DESC."
    )


@strawberry.input(description="Order of the overage rows.")
class OverageOrder:
    field: OverageColumn = strawberry.field(description="The column to sort by.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.ASC, description="ASC or DESC."
    )
