"""License analytics recomputed in plain Python, straight from DESIGN.md section 3 and the
definitions written in the schema's descriptions.

Shares no code with ``db.queries.analytics``. Inputs are raw data: the caller's customers with
their subscriptions and license lines (as the directory API returns them), the weekly license
snapshots of those subscriptions, and every in-force subscription of the deployment (for the
low-allocation medians).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
NINETY = timedelta(days=90)
BANDS = ((1, 10), (11, 50), (51, 250), (251, 1000), (1001, math.inf))
KPI_PRODUCTS = ("MEETINGS", "CALLING")


@dataclass(frozen=True)
class Line:
    product: str
    license_type: str
    purchased: int
    assigned: int
    used: int


@dataclass(frozen=True)
class Sub:
    pk: int
    customer_pk: int
    customer_gid: str
    customer_name: str
    gid: str
    ref: str
    kind: str
    state: str
    start: datetime
    end: datetime
    auto_renew: bool
    renewal: datetime | None
    lines: tuple[Line, ...]

    def in_force(self, now: datetime) -> bool:
        return self.state == "ACTIVE" and self.start <= now < self.end

    def product_lines(self, product: str) -> list[Line]:
        return [line for line in self.lines if line.product == product]


@dataclass(frozen=True)
class Snapshot:
    subscription_pk: int
    product: str
    week_start: datetime
    purchased: int
    assigned: int
    used: int


@dataclass
class World:
    """What the caller sees, plus the deployment-wide facts the medians need."""

    now: datetime
    subs: list[Sub]  # the caller's customers' subscriptions
    snapshots: list[Snapshot]  # of the caller's customers' subscriptions
    # (product, purchased, assigned) per in-force subscription of the whole deployment
    deployment: list[tuple[str, int, int]]
    _by_sub: dict[int, list[Snapshot]] = field(default_factory=dict)

    def snaps(self, sub_pk: int, product: str) -> list[Snapshot]:
        if not self._by_sub:
            grouped: dict[int, list[Snapshot]] = defaultdict(list)
            for s in self.snapshots:
                grouped[s.subscription_pk].append(s)
            self._by_sub = dict(grouped)
        return [s for s in self._by_sub.get(sub_pk, []) if s.product == product]


def within(date: datetime | None, now: datetime, span: timedelta) -> bool:
    return date is not None and now < date <= now + span


def pct(numerator: int, denominator: int) -> float:
    """Rounded half up to one decimal, from the exact fraction; 0 for a 0 denominator."""
    if denominator == 0:
        return 0.0
    value = Fraction(100 * numerator, denominator)
    return math.floor(value * 10 + Fraction(1, 2)) / 10


def ratio1(numerator: int, denominator: int) -> float:
    if denominator == 0:
        return 0.0
    return math.floor(Fraction(numerator, denominator) * 10 + Fraction(1, 2)) / 10


def last_weeks(now: datetime, n: int) -> list[datetime]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    while day.weekday() != 6:  # back to Sunday
        day -= DAY
    return [day - WEEK * k for k in range(n, 0, -1)]


def months_between(start: datetime, end: datetime) -> int:
    def plus(value: datetime, months: int) -> datetime:
        y, m = divmod(value.month - 1 + months, 12)
        year, month = value.year + y, m + 1
        next_first = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=value.tzinfo)
        last_day = (next_first - DAY).day
        return value.replace(year=year, month=month, day=min(value.day, last_day))

    m = 0
    while plus(start, m + 1) <= end:
        m += 1
    return m


def band_of(purchased: int) -> int:
    return next(i for i, (lo, hi) in enumerate(BANDS, 1) if lo <= purchased <= hi)


def band_name(band: int) -> str:
    lo, hi = BANDS[band - 1]
    return f"{lo}+" if hi == math.inf else f"{lo}-{hi}"


# --- the top KPIs --------------------------------------------------------------------------------


def medians(world: World) -> dict[tuple[str, int], float]:
    ratios: dict[tuple[str, int], list[float]] = defaultdict(list)
    for product, purchased, assigned in world.deployment:
        if purchased > 0:
            ratios[(product, band_of(purchased))].append(assigned / purchased)
    return {key: statistics.median(values) for key, values in ratios.items()}


def low_flagged(world: World, product: str) -> list[Sub]:
    meds = medians(world)
    out = []
    for sub in world.subs:
        lines = sub.product_lines(product)
        if not (sub.in_force(world.now) and lines):
            continue
        purchased = sum(x.purchased for x in lines)
        assigned = sum(x.assigned for x in lines)
        if purchased <= 0 or sub.start > world.now - timedelta(days=30):
            continue
        if assigned / purchased < meds[(product, band_of(purchased))] / 2:
            out.append(sub)
    return out


def license_kpis(world: World) -> dict[str, int]:
    now = world.now
    relevant = [
        s for s in world.subs if s.in_force(now) and any(x.product in KPI_PRODUCTS for x in s.lines)
    ]
    low = {s.customer_pk for p in KPI_PRODUCTS for s in low_flagged(world, p)}
    return {
        "totalCustomers": len({s.customer_pk for s in relevant}),
        "aboutToExpire": len(
            {
                s.customer_pk
                for s in relevant
                if (s.kind == "TRIAL" or not s.auto_renew) and within(s.end, now, NINETY)
            }
        ),
        "aboutToRenew": len(
            {s.customer_pk for s in relevant if s.auto_renew and within(s.renewal, now, NINETY)}
        ),
        "lowAllocation": len(low),
        "overLicenseLimit": len(
            {
                s.customer_pk
                for s in relevant
                for x in s.lines
                if x.product in KPI_PRODUCTS and x.assigned > x.purchased
            }
        ),
    }


# --- a product ------------------------------------------------------------------------------------


def trend(world: World, product: str, weeks: int) -> list[dict[str, Any]]:
    out = []
    for week in last_weeks(world.now, weeks):
        rows = [s for s in world.snapshots if s.product == product and s.week_start == week]
        out.append(
            {
                "weekStart": week,
                "purchased": sum(s.purchased for s in rows),
                "assigned": sum(s.assigned for s in rows),
                "used": sum(s.used for s in rows),
            }
        )
    return out


def _row(world: World, sub: Sub, lines: list[Line], product: str) -> dict[str, Any]:
    """Every column any section shows, plus the hidden sort facts (keys starting with '_')."""
    now = world.now
    purchased = sum(x.purchased for x in lines)
    assigned = sum(x.assigned for x in lines)
    used = sum(x.used for x in lines)
    weeks = last_weeks(now, 13)
    snaps = world.snaps(sub.pk, product)

    def week_sum(week: datetime, attr: str) -> int:
        return sum(getattr(s, attr) for s in snaps if s.week_start == week)

    weekly_used = [week_sum(w, "used") for w in weeks if any(s.week_start == w for s in snaps)]
    days_to_end = math.ceil((sub.end - now) / DAY)
    return {
        "customerId": sub.customer_gid,
        "customerName": sub.customer_name,
        "subscriptionId": sub.ref,
        "subscriptionNodeId": sub.gid,
        "kind": sub.kind,
        "totalLicenses": purchased,
        "assigned": assigned,
        "used": used,
        "available": sum(max(x.purchased - x.assigned, 0) for x in lines),
        "allocationPercent": pct(assigned, purchased),
        "usagePercent": pct(used, purchased),
        "usageWhenAssignedPercent": pct(used, assigned),
        "startDate": sub.start,
        "endDate": sub.end,
        "renewalDate": sub.renewal,
        "daysSinceAdded": math.floor((now - sub.start) / DAY),
        "daysUntilExpiry": days_to_end,
        "daysUntilRenewal": math.ceil((sub.renewal - now) / DAY) if sub.renewal else None,
        "monthsSinceAdded": months_between(sub.start, now),
        "monthsRemaining": months_between(now, sub.end),
        "autoRenew": sub.auto_renew,
        "weeklyAllocationChange": week_sum(weeks[-1], "assigned") - week_sum(weeks[-2], "assigned"),
        "weeklyUsageChange": week_sum(weeks[-1], "used") - week_sum(weeks[-2], "used"),
        "usageLast3Months": max(weekly_used, default=0),
        "_pk": sub.pk,
        "_customer_key": sub.customer_name.lower(),
    }


def sections(world: World, product: str) -> dict[str, dict[str, Any]]:
    """Each section: {'kpis': {...}, 'rows': [row, ...]} (rows unordered)."""
    now = world.now
    in_force = [
        (s, s.product_lines(product))
        for s in world.subs
        if s.in_force(now) and s.product_lines(product)
    ]
    recent = [(s, ls) for s, ls in in_force if s.start > now - NINETY]
    expiring = [(s, ls) for s, ls in in_force if not s.auto_renew and within(s.end, now, NINETY)]
    renewing = [(s, ls) for s, ls in in_force if s.auto_renew and within(s.renewal, now, NINETY)]
    flagged = {s.pk for s in low_flagged(world, product)}
    low = [(s, ls) for s, ls in in_force if s.pk in flagged]
    over = [(s, [x]) for s, ls in in_force for x in ls if x.assigned > x.purchased]

    def totals(group: list[tuple[Sub, list[Line]]]) -> tuple[int, int, int, int]:
        lines = [x for _, ls in group for x in ls]
        return (
            len({s.customer_pk for s, _ in group}),
            sum(x.purchased for x in lines),
            sum(x.assigned for x in lines),
            sum(x.used for x in lines),
        )

    def rows(group: list[tuple[Sub, list[Line]]]) -> list[dict[str, Any]]:
        return [_row(world, s, ls, product) for s, ls in group]

    out: dict[str, dict[str, Any]] = {}
    c, p, a, u = totals(recent)
    out["recentlyAdded"] = {"kpis": {"newCustomers": c, "totalLicenses": p}, "rows": rows(recent)}
    c, p, a, u = totals(expiring)
    out["aboutToExpire"] = {
        "kpis": {"expiringCustomers": c, "allocationPercent": pct(a, p), "usagePercent": pct(u, p)},
        "rows": rows(expiring),
    }
    c, p, a, u = totals(renewing)
    out["aboutToRenew"] = {
        "kpis": {"renewingCustomers": c, "allocationPercent": pct(a, p), "usagePercent": pct(u, p)},
        "rows": rows(renewing),
    }
    c, p, a, u = totals(low)
    low_rows = rows(low)
    for r in low_rows:
        r["sizeBand"] = band_name(band_of(r["totalLicenses"]))
    out["lowAllocation"] = {
        "kpis": {
            "lowAllocationCustomers": c,
            "allocationPercent": pct(a, p),
            "usageWhenAssignedPercent": pct(u, a),
            "unassignedLicenses": p - a,
        },
        "rows": low_rows,
    }
    c, p, a, u = totals(over)
    over_rows = []
    for s, ls in over:
        r = _row(world, s, ls, product)
        r["licenseType"] = ls[0].license_type
        r["overage"] = ls[0].assigned - ls[0].purchased
        over_rows.append(r)
    out["overage"] = {
        "kpis": {
            "overageCustomers": c,
            "overageLicenses": a - p,
            "averageOverage": ratio1(a - p, c),
        },
        "rows": over_rows,
    }
    return out


# --- ordering, as documented on the column enums --------------------------------------------------

# Columns counted from a date sort by the date; "since" runs against it.
DATE_KEYS = {
    "DAYS_SINCE_ADDED": ("startDate", True),
    "MONTHS_SINCE_ADDED": ("startDate", True),
    "DAYS_UNTIL_EXPIRY": ("endDate", False),
    "MONTHS_REMAINING": ("endDate", False),
    "DAYS_UNTIL_RENEWAL": ("renewalDate", False),
}
SIZE_ORDER = {band_name(i): i for i in range(1, 6)}


def camel(column: str) -> str:
    head, *rest = column.lower().split("_")
    return head + "".join(w.title() for w in rest)


def ordered(rows: list[dict[str, Any]], column: str, direction: str) -> list[dict[str, Any]]:
    descending = direction == "DESC"
    if column in DATE_KEYS:
        name, inverted = DATE_KEYS[column]
        value = lambda r: r[name]  # noqa: E731
        descending = descending != inverted
    elif column == "CUSTOMER_NAME":
        value = lambda r: r["_customer_key"]  # noqa: E731
    elif column == "AUTO_RENEW":
        value = lambda r: int(r["autoRenew"])  # noqa: E731
    elif column == "SIZE_BAND":
        value = lambda r: SIZE_ORDER[r["sizeBand"]]  # noqa: E731
    else:
        key = camel(column)
        value = lambda r: r[key]  # noqa: E731
    return sorted(
        rows,
        key=lambda r: (value(r), r["_pk"], r.get("licenseType", "")),
        reverse=descending,
    )
