"""Building blocks of the license analytics (DESIGN.md section 3): the in-force subscription set
per product and its sums over license lines (maintained in ``license_product_total``), the
low-allocation flag, and the snapshot aggregates of a page of subscriptions.

Everything that sums or counts runs in SQL; Python only rounds finished sums and turns the dates
of at most one page of rows into whole days or months.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CTE,
    Float,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    select,
    true,
    union_all,
)

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


# --- the in-force subscription set ----------------------------------------------------------------


def in_force(now: datetime, columns: Any = T) -> Any:
    """DESIGN.md section 2: state ACTIVE and start <= now < end."""
    c = columns
    return and_(
        c.state == SubscriptionState.ACTIVE.value,
        c.start_date <= now,
        c.end_date > now,
    )


def scoped(scope: Scope, partner_id: Any, customer_id: Any) -> list[Any]:
    """Rows (with denormalised partner and customer columns) of the customers the caller may
    see. A scope over all customers is the partner itself: its partner column says it, and
    ``scope.customers`` is only needed (and costs a subquery) for an ``assigned`` scope."""
    conditions = [partner_id == scope.partner_id]
    if scope.assigned_admin_id is not None:
        conditions.append(scope.customers(customer_id))
    return conditions


def section_conditions(section: Section, now: datetime, columns: Any = T) -> list[Any]:
    """What singles a subscription out for a section, beyond being in force with the product;
    on ``license_product_total`` or on ``columns`` of a CTE carrying the same names."""
    c = columns
    if section is Section.RECENTLY_ADDED:
        return [c.start_date > now - WINDOW]
    if section is Section.ABOUT_TO_EXPIRE:
        return [c.auto_renew == false(), c.end_date <= now + WINDOW]
    if section is Section.ABOUT_TO_RENEW:
        return [c.auto_renew == true(), c.renewal_date > now, c.renewal_date <= now + WINDOW]
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
    now: datetime,
    scope: Scope,
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
    where = [
        T.product.in_(list(products)),
        in_force(now),
        *scoped(scope, T.partner_id, T.customer_id),
        *conditions,
    ]
    if medians is not None:
        flag = low_allocation_flag(now, medians)
        columns.append(T.band)
        columns.append(case((flag, 1), else_=0).label("low"))
        if only_low:
            where.append(flag)
    # Not materialized: a page cut from it walks an index in its order and stops (SQLite
    # otherwise materializes a CTE read by another CTE).
    return select(*columns).where(*where).cte(name).prefix_with("NOT MATERIALIZED")


# The columns of a flagged row that ``ix_license_product_total_ratio`` covers: its KPIs and
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


def low_subscriptions(
    name: str,
    products: Sequence[str],
    now: datetime,
    scope: Scope,
    medians: Medians,
    *,
    thin: bool = False,
) -> CTE | None:
    """The in-force subscriptions of ``products`` flagged low (``low_allocation_flag``), as
    ``product_subscriptions`` rows (``thin``: ``THIN_COLUMNS`` only) with ``band`` and
    ``low = 1``; None when no band has a median. One range of
    ``ix_license_product_total_ratio`` (partner, product, band, ratio, ...) per band, ratio <
    median / 2 (halving is exact, so this is ratio * 2 < median): the cost follows the
    partner's low-ratio subscriptions, not all of them, and thin rows are read from the index
    alone."""
    # The columns and the conditions every band's part shares are built once (clause objects
    # are immutable and may sit in several statements): building them per band showed in the
    # dashboard's profile.
    columns = (*(THIN_COLUMNS if thin else TOTAL_COLUMNS), T.band, literal(1).label("low"))
    common = (
        T.purchased > 0,
        T.start_date <= now - LOW_ALLOCATION_MIN_AGE,
        # ``state || ''``: not a key of SQLite's pick, the (product, state, start) index
        # that reads every old subscription; the ratio range is the narrow one.
        T.state.concat("") == SubscriptionState.ACTIVE.value,
        T.start_date <= now,
        T.end_date > now,
        *scoped(scope, T.partner_id, T.customer_id),
    )
    parts = [
        select(*columns).where(
            T.product == product, T.band == band, T.ratio < literal(value / 2, Float), *common
        )
        for (product, band), value in sorted(medians.items())
        if product in products
    ]
    if not parts:
        return None
    return (parts[0] if len(parts) == 1 else union_all(*parts)).cte(name)


def low_allocation_flag(now: datetime, medians: Medians) -> Any:
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
        T.start_date <= now - LOW_ALLOCATION_MIN_AGE,
        T.purchased > 0,
        # ratio < median / 2, written without a division (doubling is exact)
        T.ratio * 2 < median,
    )


def snapshot_changes(sub_pks: Any, product: str, now: datetime) -> Any:
    """Per subscription (of ``sub_pks``, a column of a CTE): weekly allocation and usage change
    (last week's snapshot minus the week before's, summed over the product's lines, a missing
    snapshot counting as 0) and the peak weekly ``used`` over the last 13 weeks."""
    weeks = closed_weeks(now, USAGE_WEEKS)
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
