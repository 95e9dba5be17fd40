"""The rows of the license sections as Python sees them: one subscription (or overage line)
with its sums and the columns derived from them, and a page of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.queries.analytics.measures import days_until, percent, whole_days, whole_months


@dataclass(frozen=True, slots=True)
class LicenseRow:
    """One row of a section: a subscription with its sums over the product's lines (or, in the
    overage section, one license line), and every column derived from it."""

    subscription_pk: int
    customer_pk: int
    customer_name: str
    subscription_ref: str
    kind: str
    state: str
    start_date: datetime
    end_date: datetime
    renewal_date: datetime | None
    auto_renew: bool
    license_type: str | None
    purchased: int
    assigned: int
    used: int
    available: int
    size_band: int
    weekly_allocation_change: int
    weekly_usage_change: int
    usage_last_3_months: int
    # The instant the row was read at: the columns counted from now (below) are derived on
    # demand, each section's row type asking for its own one or two (~1 ms a dashboard).
    now: datetime

    @property
    def days_since_added(self) -> int:
        return whole_days(self.now - self.start_date)

    @property
    def months_since_added(self) -> int:
        return whole_months(self.start_date, self.now)

    @property
    def days_until_expiry(self) -> int:
        return days_until(self.end_date, self.now)

    @property
    def days_until_renewal(self) -> int | None:
        renewal = self.renewal_date
        return days_until(renewal, self.now) if renewal is not None else None

    @property
    def months_remaining(self) -> int:
        return whole_months(self.now, self.end_date)

    @property
    def allocation_percent(self) -> float:
        return percent(self.assigned, self.purchased)

    @property
    def usage_percent(self) -> float:
        return percent(self.used, self.purchased)

    @property
    def usage_when_assigned_percent(self) -> float:
        return percent(self.used, self.assigned)

    @property
    def overage(self) -> int:
        return max(self.assigned - self.purchased, 0)


@dataclass(frozen=True, slots=True)
class RowPage:
    rows: list[LicenseRow]
    keys: list[tuple[Any, ...]]
    has_next: bool


def license_row(m: Any, now: datetime) -> LicenseRow:
    renewal = m["renewal_date"]
    return LicenseRow(
        subscription_pk=m["sub_pk"],
        customer_pk=m["customer_id"],
        customer_name=m["customer_name"],
        subscription_ref=m["ref"],
        kind=m["kind"],
        state=m["state"],
        start_date=m["start_date"],
        end_date=m["end_date"],
        renewal_date=renewal,
        auto_renew=bool(m["auto_renew"]),
        license_type=m.get("license_type"),
        purchased=int(m["purchased"]),
        assigned=int(m["assigned"]),
        used=int(m["used"]),
        available=int(m["available"]),
        size_band=int(m.get("band") or 0),
        weekly_allocation_change=int(m.get("allocation_change") or 0),
        weekly_usage_change=int(m.get("usage_change") or 0),
        usage_last_3_months=int(m.get("peak_used") or 0),
        now=now,
    )
