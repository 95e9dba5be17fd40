"""Building blocks of the license analytics (DESIGN.md section 3): the in-force subscription set
per product and its sums over license lines, the low-allocation medians and flag, and the
snapshot aggregates of a set of subscriptions.

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
    or_,
    select,
    true,
)

from db.enums import Product, SubscriptionKind, SubscriptionState
from db.models import Customer, LicenseLine, LicenseSnapshot, Subscription
from db.queries.analytics.measures import closed_weeks, size_band_sql
from db.scope import Scope

S = Subscription.__table__.c  # type: ignore[attr-defined]
L = LicenseLine.__table__.c  # type: ignore[attr-defined]
LS = LicenseSnapshot.__table__.c  # type: ignore[attr-defined]
C = Customer.__table__.c  # type: ignore[attr-defined]

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


def in_force(now: datetime) -> Any:
    """DESIGN.md section 2: state ACTIVE and start <= now < end."""
    return and_(
        S.state == SubscriptionState.ACTIVE.value,
        S.start_date <= now,
        S.end_date > now,
    )


def scoped(scope: Scope, partner_id: Any, customer_id: Any) -> list[Any]:
    """Rows (with denormalised partner and customer columns) of the customers the caller may
    see. A scope over all customers is the partner itself: its partner column says it, and
    ``scope.customers`` is only needed (and costs a subquery) for an ``assigned`` scope."""
    conditions = [partner_id == scope.partner_id]
    if scope.assigned_admin_id is not None:
        conditions.append(scope.customers(customer_id))
    return conditions


def visible(scope: Scope) -> list[Any]:
    """Subscriptions of the customers the caller may see (the scope, applied in SQL).

    Every query here reads license lines first (by their partner and product index) and joins
    subscriptions by primary key; ``partner_id + 0`` keeps the planner from walking the
    subscriptions' partner index instead, which on SQLite is several times slower.
    """
    return scoped(scope, S.partner_id + 0, S.customer_id)


def section_conditions(section: Section, now: datetime, columns: Any = S) -> list[Any]:
    """What singles a subscription out for a section, beyond being in force with the product;
    on the subscription table or on ``columns`` of a CTE carrying the same names."""
    c = columns
    if section is Section.RECENTLY_ADDED:
        return [c.start_date > now - WINDOW]
    if section is Section.ABOUT_TO_EXPIRE:
        return [c.auto_renew == false(), c.end_date <= now + WINDOW]
    if section is Section.ABOUT_TO_RENEW:
        return [c.auto_renew == true(), c.renewal_date > now, c.renewal_date <= now + WINDOW]
    return []


def product_lines(
    name: str, products: Sequence[str], scope: Scope | None, *, per_line: bool = False
) -> Any:
    """License lines of ``products`` (of the scope's partner, or of everyone when ``scope`` is
    None), summed per subscription and product unless ``per_line``.

    Lines are read first, by their own (partner, product) index, and subscriptions joined by
    primary key afterwards: on SQLite that is several times faster than walking in-force
    subscriptions and probing their lines.
    """
    partner = [L.partner_id == scope.partner_id] if scope is not None else []
    if per_line:
        return (
            select(L.subscription_id, L.product, L.license_type, L.purchased, L.assigned, L.used)
            .where(L.product.in_(list(products)), L.assigned > L.purchased, *partner)
            .subquery(name)
        )
    over = L.assigned > L.purchased
    available = case((L.purchased > L.assigned, L.purchased - L.assigned), else_=0)
    return (
        select(
            L.subscription_id,
            L.product,
            func.sum(L.purchased).label("purchased"),
            func.sum(L.assigned).label("assigned"),
            func.sum(L.used).label("used"),
            func.sum(available).label("available"),
            func.sum(case((over, 1), else_=0)).label("lines_over"),
            # the same sums over the overage lines alone
            func.sum(case((over, L.purchased), else_=0)).label("over_purchased"),
            func.sum(case((over, L.assigned), else_=0)).label("over_assigned"),
            func.sum(case((over, L.used), else_=0)).label("over_used"),
        )
        .where(L.product.in_(list(products)), *partner)
        .group_by(L.subscription_id, L.product)
        .subquery(name)
    )


SUBSCRIPTION_COLUMNS = (
    S.id.label("sub_pk"),
    S.partner_id,
    S.customer_id,
    S.subscription_id.label("ref"),
    S.kind,
    S.state,
    S.start_date,
    S.end_date,
    S.renewal_date,
    S.auto_renew,
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
    by_subscription: bool = False,
) -> CTE:
    """One row per in-force subscription of the caller's customers and product of
    ``products``: the subscription's columns and its sums over the product's lines.

    Given the band ``medians``, rows also carry their size ``band`` and a ``low`` flag (1 when
    flagged low, see ``low_allocation_flag``); ``only_low`` keeps the flagged rows alone.
    ``by_subscription`` walks the subscriptions first: right when ``conditions`` bound an
    indexed date of the partner's subscriptions to a narrow range (end or renewal within 90
    days), where reading every line of the product first would be the slower way.
    """
    if by_subscription:
        over = case((L.assigned > L.purchased, 1), else_=0)
        available = case((L.purchased > L.assigned, L.purchased - L.assigned), else_=0)
        return (
            select(
                *SUBSCRIPTION_COLUMNS,
                L.product,
                func.sum(L.purchased).label("purchased"),
                func.sum(L.assigned).label("assigned"),
                func.sum(L.used).label("used"),
                func.sum(available).label("available"),
                func.sum(over).label("lines_over"),
            )
            .select_from(
                Subscription.__table__.join(LicenseLine.__table__, L.subscription_id == S.id)  # type: ignore[attr-defined]
            )
            .where(
                L.product.in_(list(products)),
                in_force(now),
                *scoped(scope, S.partner_id, S.customer_id),
                *conditions,
            )
            # PostgreSQL accepts the other subscription columns: they depend on its primary key.
            .group_by(S.id, L.product)
            .cte(name)
        )
    lines = product_lines(f"{name}_lines", products, scope)
    x = lines.c
    columns: list[Any] = [*SUBSCRIPTION_COLUMNS, *[c for c in x if c.key != "subscription_id"]]
    where = [in_force(now), *visible(scope), *conditions]
    if medians is not None:
        flag = low_allocation_flag(x.product, x.purchased, x.assigned, now, medians)
        columns.append(size_band_sql(x.purchased).label("band"))
        columns.append(case((flag, 1), else_=0).label("low"))
        if only_low:
            where.append(flag)
    return (
        select(*columns)
        .select_from(lines.join(Subscription.__table__, S.id == x.subscription_id))  # type: ignore[attr-defined]
        .where(*where)
        .cte(name)
    )


def low_allocation_flag(
    product: Any, purchased: Any, assigned: Any, now: datetime, medians: Medians
) -> Any:
    """An in-force subscription (per product; the columns are its sums over the product's
    lines) is flagged low when it started at least 30 days ago and its allocation ratio
    assigned / purchased is below half the median of its size band (``band_medians``)."""
    if not medians:
        return false()
    band = size_band_sql(purchased)
    median = case(
        *[
            (and_(product == p, band == b), literal(value, Float))
            for (p, b), value in sorted(medians.items())
        ],
        else_=None,
    )
    ratio = cast(assigned, Float) / cast(purchased, Float)
    return and_(
        S.start_date <= now - LOW_ALLOCATION_MIN_AGE,
        purchased > 0,
        # ratio < median / 2, written without a division (doubling is exact)
        ratio * 2 < median,
    )


def band_medians(name: str, products: Sequence[str], now: datetime) -> CTE:
    """Median allocation ratio per (product, size band) over *every* in-force subscription of
    the deployment having the product with purchased > 0 (aggregates of all partners).

    The ratio of a subscription is assigned / purchased summed over its product lines; its band
    comes from purchased. The median is the middle ratio of the band sorted by ratio, or the mean
    of the two middle ones: row_number and count per band pick them, which SQLite and PostgreSQL
    compute alike (SQLite has no percentile function).
    """
    totals = product_lines(f"{name}_totals", products, None)
    t = totals.c
    ratios = (
        select(
            t.product,
            size_band_sql(t.purchased).label("band"),
            (cast(t.assigned, Float) / cast(t.purchased, Float)).label("ratio"),
        )
        .select_from(totals.join(Subscription.__table__, S.id == t.subscription_id))  # type: ignore[attr-defined]
        .where(t.purchased > 0, in_force(now))
        .subquery(f"{name}_ratios")
    )
    r = ratios.c
    band = [r.product, r.band]
    ranked = select(
        *r,
        func.row_number().over(partition_by=band, order_by=r.ratio).label("rn"),
        func.count().over(partition_by=band).label("n"),
    ).subquery(f"{name}_ranked")
    k = ranked.c
    cte = (
        select(
            k.product,
            k.band,
            ((func.min(k.ratio) + func.max(k.ratio)) * 0.5).label("median"),
        )
        .where(or_(k.rn == (k.n + 1) // 2, k.rn == (k.n + 2) // 2))
        .group_by(k.product, k.band)
        .cte(name)
    )
    return cte


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
