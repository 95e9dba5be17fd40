"""Building blocks of the license analytics (DESIGN.md section 3): the in-force subscription set
per product and its sums over license lines (maintained in ``license_product_total``), the
low-allocation flag, and the snapshot aggregates of a page of subscriptions.

Everything that sums or counts runs in SQL; Python only rounds finished sums and turns the dates
of at most one page of rows into whole days or months.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.sql import Select

from db.enums import Product, SubscriptionKind, SubscriptionState
from db.license_totals import LICENSE_PRODUCT_TOTAL
from db.models import Customer, LicenseLine, LicenseSnapshot, Subscription
from db.queries.analytics.measures import closed_weeks
from db.scope import Scope

S = Subscription.__table__.c  # type: ignore[attr-defined]
L = LicenseLine.__table__.c  # type: ignore[attr-defined]
LS = LicenseSnapshot.__table__.c  # type: ignore[attr-defined]
C = Customer.__table__.c  # type: ignore[attr-defined]
T = LICENSE_PRODUCT_TOTAL.c

WINDOW = timedelta(days=90)  # "about to expire / renew" and "recently added" windows
LOW_ALLOCATION_MIN_AGE = timedelta(days=30)
USAGE_WEEKS = 13  # "usage over the last 3 months": the last 13 weekly snapshots
KPI_PRODUCTS = (Product.MEETINGS.value, Product.CALLING.value)


class Section(StrEnum):
    RECENTLY_ADDED = "RECENTLY_ADDED"
    ABOUT_TO_EXPIRE = "ABOUT_TO_EXPIRE"
    ABOUT_TO_RENEW = "ABOUT_TO_RENEW"
    LOW_ALLOCATION = "LOW_ALLOCATION"
    OVERAGE = "OVERAGE"


# --- the instants and the scope a statement compares with: literal, or bound ------------------


@dataclass(frozen=True, slots=True)
class Times:
    """The instants the section statements compare with: values for a one-off statement
    (``of``), or bind parameters for one built once per shape (``bound``, executed with
    ``params``). The derived instants are computed in Python either way: SQLite has no interval
    arithmetic."""

    now: Any
    window_start: Any  # now - WINDOW
    window_end: Any  # now + WINDOW
    aged: Any  # now - LOW_ALLOCATION_MIN_AGE
    weeks: tuple[Any, ...]  # closed_weeks(now, USAGE_WEEKS)

    @staticmethod
    def of(now: datetime | Times) -> Times:
        if isinstance(now, Times):
            return now
        return Times(
            now,
            now - WINDOW,
            now + WINDOW,
            now - LOW_ALLOCATION_MIN_AGE,
            tuple(closed_weeks(now, USAGE_WEEKS)),
        )

    @staticmethod
    def bound() -> Times:
        t = T.end_date.type
        return Times(
            bindparam("now", type_=t),
            bindparam("window_start", type_=t),
            bindparam("window_end", type_=t),
            bindparam("aged", type_=t),
            tuple(bindparam(f"week_{i}", type_=LS.week_start.type) for i in range(USAGE_WEEKS)),
        )

    @staticmethod
    def params(now: datetime) -> dict[str, Any]:
        values = Times.of(now)
        return {
            "now": now,
            "window_start": values.window_start,
            "window_end": values.window_end,
            "aged": values.aged,
            **{f"week_{i}": week for i, week in enumerate(values.weeks)},
        }


class BoundScope:
    """A scope's shape (all customers, or an assigned admin's, few or many) with its ids bound
    (``partner_id``, ``admin_id``): a statement built once per shape applies it, executed with
    ``params``. It can only stand for a ``Scope`` the door issued, whose ids ``params`` binds."""

    __slots__ = ("assigned_admin_id", "few", "partner_id")

    def __init__(self, shape: tuple[bool, bool]) -> None:
        all_customers, few = shape
        self.partner_id: Any = bindparam("partner_id", type_=Integer)
        self.assigned_admin_id: Any = (
            None if all_customers else bindparam("admin_id", type_=Integer)
        )
        self.few = few

    def customers(self, customer_id: Any = None, *, probe: bool = False) -> Any:
        """``Scope.customers``, on the bound ids."""
        return Scope.customers(self, customer_id, probe=probe)  # type: ignore[arg-type]

    @staticmethod
    def shape(scope: Scope) -> tuple[bool, bool]:
        """(all the partner's customers, few): what a statement built for the scope depends on."""
        return (scope.assigned_admin_id is None, scope.few)

    @staticmethod
    def params(scope: Scope) -> dict[str, Any]:
        return {"partner_id": scope.partner_id, "admin_id": scope.assigned_admin_id}


AnyScope = Scope | BoundScope


# --- the in-force subscription set ----------------------------------------------------------------


def in_force(now: Any, columns: Any = T) -> Any:
    """DESIGN.md section 2: state ACTIVE and start <= now < end."""
    c = columns
    return and_(
        c.state == SubscriptionState.ACTIVE.value,
        c.start_date <= now,
        c.end_date > now,
    )


def scoped(scope: AnyScope, partner_id: Any, customer_id: Any) -> list[Any]:
    """Rows (with denormalised partner and customer columns) of the customers the caller may
    see. A scope over all customers is the partner itself: its partner column says it, and
    ``scope.customers`` is only needed (and costs a subquery) for an ``assigned`` scope."""
    conditions = [partner_id == scope.partner_id]
    if scope.assigned_admin_id is not None:
        conditions.append(scope.customers(customer_id))
    return conditions


def section_conditions(section: Section, now: datetime | Times, columns: Any = T) -> list[Any]:
    """What singles a subscription out for a section, beyond being in force with the product;
    on ``license_product_total`` or on ``columns`` of a CTE carrying the same names."""
    c = columns
    at = Times.of(now)
    if section is Section.RECENTLY_ADDED:
        return [c.start_date > at.window_start]
    if section is Section.ABOUT_TO_EXPIRE:
        return [c.auto_renew == false(), c.end_date <= at.window_end]
    if section is Section.ABOUT_TO_RENEW:
        return [c.auto_renew == true(), c.renewal_date > at.now, c.renewal_date <= at.window_end]
    return []


# The columns of a section's rows: the subscription's (copied into the totals) and its sums.
TOTAL_COLUMNS = (
    T.subscription_id.label("sub_pk"),
    T.partner_id,
    T.customer_id,
    T.kind,
    T.state,
    T.start_date,
    T.end_date,
    T.renewal_date,
    T.auto_renew,
    T.product,
    T.purchased,
    T.assigned,
    T.used,
    T.available,
    T.lines_over,
    T.over_purchased,
    T.over_assigned,
    T.over_used,
)


Medians = dict[tuple[str, int], float]


def product_subscriptions(
    name: str,
    products: Sequence[str],
    now: datetime | Times,
    scope: AnyScope,
    conditions: Sequence[Any],
    *,
    medians: Medians | None = None,
    only_low: bool = False,
) -> CTE:
    """One row per in-force subscription of the caller's customers and product of
    ``products``: the subscription's columns and its sums over the product's lines, read from
    ``license_product_total`` (kept by triggers, see ``db.license_totals``).

    Given the band ``medians``, rows also carry their size ``band`` and a ``low`` flag (1 when
    flagged low, see ``low_allocation_flag``); ``only_low`` keeps the flagged rows alone.
    """
    columns: list[Any] = list(TOTAL_COLUMNS)
    at = Times.of(now)
    where = [
        T.product.in_(list(products)),
        in_force(at.now),
        *scoped(scope, T.partner_id, T.customer_id),
        *conditions,
    ]
    if medians is not None:
        flag = low_allocation_flag(at, medians)
        columns.append(T.band)
        columns.append(case((flag, 1), else_=0).label("low"))
        if only_low:
            where.append(flag)
    # Not materialized: a page cut from it walks an index in its order and stops (SQLite
    # otherwise materializes a CTE read by another CTE).
    return select(*columns).where(*where).cte(name).prefix_with("NOT MATERIALIZED")


# The columns of a flagged row that ``ix_license_product_total_low`` covers: its KPIs and
# every sort key of the section but the joined ones (name, reference, snapshot columns).
THIN_COLUMNS = (
    T.subscription_id.label("sub_pk"),
    T.product,
    T.customer_id,
    T.start_date,
    T.purchased,
    T.assigned,
    T.used,
    T.available,
)


def tenths_bound(half: float) -> int:
    """An upper bound of ``allocation_tenths`` (round(1000 * ratio) half up) over the ratios
    below ``half``: tenths <= floor(1000 * half + 1/2) <= floor(1000 * half) + 1, the extra half
    tenth absorbing the rounding of the double ``half`` and of ``1000 * half``. Only the
    range's end: the flag itself stays ratio < half."""
    return math.floor(half * 1000) + 1


@dataclass(frozen=True)
class BoundMedians:
    """The bands' halved medians and tenths bounds as bind parameters (``half_<product>_<band>``,
    ``tenths_<product>_<band>``), for a statement built once per set of bands; ``params`` gives
    their values for a request's medians. ``placeholders``: what the builders take as medians
    (they read ``halves`` and ``bounds``, never these values)."""

    halves: dict[tuple[str, int], Any]
    bounds: dict[tuple[str, int], Any]
    placeholders: dict[tuple[str, int], float]

    @staticmethod
    def of(bands: Sequence[tuple[str, int]]) -> BoundMedians:
        return BoundMedians(
            {k: bindparam(f"half_{k[0]}_{k[1]}", type_=Float) for k in bands},
            {k: bindparam(f"tenths_{k[0]}_{k[1]}", type_=BigInteger) for k in bands},
            dict.fromkeys(bands, 0.0),
        )

    @staticmethod
    def params(medians: Medians, bands: Sequence[tuple[str, int]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for product, band in bands:
            half = medians[(product, band)] / 2
            values[f"half_{product}_{band}"] = half
            values[f"tenths_{product}_{band}"] = tenths_bound(half)
        return values


def low_parts(
    products: Sequence[str],
    now: datetime | Times,
    scope: AnyScope,
    medians: Medians,
    *,
    thin: bool = False,
    halves: Mapping[tuple[str, int], Any] | None = None,
    bounds: Mapping[tuple[str, int], Any] | None = None,
    extra: Sequence[Any] = (),
    conditions: Sequence[Any] = (),
    up_to_bound: bool = True,
) -> list[Select[Any]]:
    """The parts of ``low_subscriptions``, one a band with a median (see there), in band order;
    each also selects ``extra`` and applies ``conditions`` (on ``license_product_total``):
    a page walks every part in its order and merges them. Without ``up_to_bound`` a part's
    range has no end at the tenths bound (a descending walk from a cursor: SQLite takes one
    upper end of a range, and the cursor's is the one that skips the rows already paged)."""
    if (halves is None) != (bounds is None):
        # Bound halves come with placeholder medians: a bound computed from those would cut
        # every range short.
        raise ValueError("halves and bounds are bound together, or neither")
    at = Times.of(now)
    # The columns and the conditions every band's part shares are built once (clause objects
    # are immutable and may sit in several statements): building them per band showed in the
    # dashboard's profile.
    columns = (
        *(THIN_COLUMNS if thin else TOTAL_COLUMNS),
        T.band,
        literal(1).label("low"),
        *extra,
    )
    common = (
        T.state == SubscriptionState.ACTIVE.value,
        T.purchased > 0,
        T.start_date <= at.aged,
        T.start_date <= at.now,
        T.end_date > at.now,
        *scoped(scope, T.partner_id, T.customer_id),
        *conditions,
    )

    def half(key: tuple[str, int], value: float) -> Any:
        return literal(value / 2, Float) if halves is None else halves[key]

    def bound(key: tuple[str, int], value: float) -> Any:
        if bounds is None:
            return literal(tenths_bound(value / 2), BigInteger)
        return bounds[key]

    return [
        select(*columns).where(
            T.product == product,
            T.band == band,
            *([T.allocation_tenths <= bound((product, band), value)] if up_to_bound else []),
            T.ratio < half((product, band), value),
            *common,
        )
        for (product, band), value in sorted(medians.items())
        if product in products
    ]


def low_subscriptions(
    name: str,
    products: Sequence[str],
    now: datetime | Times,
    scope: AnyScope,
    medians: Medians,
    *,
    thin: bool = False,
    halves: Mapping[tuple[str, int], Any] | None = None,
    bounds: Mapping[tuple[str, int], Any] | None = None,
) -> CTE | None:
    """The in-force subscriptions of ``products`` flagged low (``low_allocation_flag``), as
    ``product_subscriptions`` rows (``thin``: ``THIN_COLUMNS`` only) with ``band`` and
    ``low = 1``; None when no band has a median. One range of
    ``ix_license_product_total_low`` (partner, product, band, state, allocation tenths, ...)
    per band: the ACTIVE rows up to the tenths of half the median (``tenths_bound``), of which
    those with ratio < median / 2 (halving is exact, so this is ratio * 2 < median). The cost
    follows the partner's low-ratio subscriptions, not all of them, and thin rows are read
    from the index alone. ``halves`` and ``bounds`` (bind parameters per band) stand for the
    halved medians and their tenths bounds in a statement built once per shape."""
    parts = low_parts(products, now, scope, medians, thin=thin, halves=halves, bounds=bounds)
    if not parts:
        return None
    return (parts[0] if len(parts) == 1 else union_all(*parts)).cte(name)


def low_allocation_flag(now: datetime | Times, medians: Medians) -> Any:
    """An in-force subscription (per product; the sums over the product's lines) is flagged low
    when it started at least 30 days ago and its allocation ratio assigned / purchased is below
    half the median of its size band (``db.queries.analytics.medians``)."""
    if not medians:
        return false()
    median = case(
        *[
            (and_(T.product == p, T.band == b), literal(value, Float))
            for (p, b), value in sorted(medians.items())
        ],
        else_=None,
    )
    return and_(
        T.start_date <= Times.of(now).aged,
        T.purchased > 0,
        # ratio < median / 2, written without a division (doubling is exact)
        T.ratio * 2 < median,
    )


def snapshot_changes(sub_pks: Any, product: str, now: datetime | Times) -> Any:
    """Per subscription (of ``sub_pks``, a column of a CTE): weekly allocation and usage change
    (last week's snapshot minus the week before's, summed over the product's lines, a missing
    snapshot counting as 0) and the peak weekly ``used`` over the last 13 weeks."""
    weeks = list(Times.of(now).weeks)
    last, before = weeks[-1], weeks[-2]
    weekly = (
        select(
            LS.subscription_id,
            LS.week_start,
            func.sum(LS.assigned).label("assigned"),
            func.sum(LS.used).label("used"),
        )
        .where(
            LS.subscription_id.in_(select(sub_pks)),
            LS.product == product,
            LS.week_start.in_(weeks),
        )
        .group_by(LS.subscription_id, LS.week_start)
        .subquery("weekly")
    )
    w = weekly.c

    def change(column: Any) -> Any:
        now_value = func.sum(case((w.week_start == last, column), else_=0))
        then_value = func.sum(case((w.week_start == before, column), else_=0))
        return now_value - then_value

    # Sums of sums are NUMERIC on PostgreSQL: bring them back to integers.
    return (
        select(
            w.subscription_id,
            cast(change(w.assigned), Integer).label("allocation_change"),
            cast(change(w.used), Integer).label("usage_change"),
            cast(func.max(w.used), Integer).label("peak_used"),
        )
        .group_by(w.subscription_id)
        .subquery("snap")
    )


TRIAL = SubscriptionKind.TRIAL.value
