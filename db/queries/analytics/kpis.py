"""The top license KPIs and the weekly license distribution trend: one statement each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    distinct,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.license_kpis import kpi_figures
from db.license_totals import LICENSE_WEEK_TOTAL
from db.queries.analytics.common import (
    KPI_PRODUCTS,
    LS,
    TRIAL,
    WINDOW,
    Medians,
    S,
    Section,
    low_subscriptions,
    product_subscriptions,
    scoped,
)
from db.queries.analytics.measures import closed_weeks, week_start_of
from db.queries.analytics.medians import low_allocation_medians
from db.scope import Scope


@dataclass(frozen=True, slots=True)
class LicenseKpiCounts:
    total_customers: int
    about_to_expire: int
    about_to_renew: int
    low_allocation: int
    over_license_limit: int


async def section_medians(
    session: AsyncSession, section: Section, product: str, now: datetime, given: Medians | None
) -> Medians:
    """The band medians of ``product`` a section needs (none but low allocation), taken from
    ``given`` (the request's) or fetched."""
    if section is not Section.LOW_ALLOCATION:
        return {}
    if given is not None:
        return {key: value for key, value in given.items() if key[0] == product}
    return await low_allocation_medians(session, now=now, products=[product])


async def license_kpis(
    session: AsyncSession, *, scope: Scope, now: datetime, medians: Medians | None = None
) -> LicenseKpiCounts:
    """Customer counts over the caller's *relevant* subscriptions: in force, with a Meetings or
    Calling line (DESIGN.md section 3, top KPIs); ``medians`` from ``low_allocation_medians``
    (fetched here when not given)."""
    if medians is None:
        medians = await low_allocation_medians(session, now=now)
    if scope.assigned_admin_id is None:
        return await _partner_kpis(session, scope, now, medians)
    relevant = product_subscriptions("relevant", KPI_PRODUCTS, now, scope, [], medians=medians)
    r = relevant.c
    expiring = and_(or_(r.kind == TRIAL, r.auto_renew == false()), r.end_date <= now + WINDOW)
    renewing = and_(r.auto_renew == true(), r.renewal_date > now, r.renewal_date <= now + WINDOW)

    def customers_where(condition: Any) -> Any:
        return func.count(distinct(case((condition, r.customer_id))))

    stmt = select(
        func.count(distinct(r.customer_id)),
        customers_where(expiring),
        customers_where(renewing),
        customers_where(r.low == 1),
        customers_where(r.lines_over > 0),
    )
    row = (await session.execute(stmt)).one()
    return LicenseKpiCounts(*(int(v or 0) for v in row))


async def _partner_kpis(
    session: AsyncSession, scope: Scope, now: datetime, medians: Medians
) -> LicenseKpiCounts:
    """The whole partner's KPIs in one statement: four from the maintained spans
    (``db.license_kpis``), low allocation from the flagged subscriptions alone."""
    names = ("ANY/TOTAL", "ANY/EXPIRING", "ANY/RENEWING", "ANY/OVER")
    also = []
    flagged = low_subscriptions("flagged", KPI_PRODUCTS, now, scope, medians, thin=True)
    if flagged is not None:
        zero = [literal(0)] * 4
        also.append(
            select(literal("LOW").label("kpi"), func.count(distinct(flagged.c.customer_id)), *zero)
        )
    figures = await kpi_figures(
        session, partner_id=scope.partner_id, kpis=names, now=now, also=also
    )
    total, expiring, renewing, over = (figures[n].customers for n in names)
    low = figures["LOW"].customers if "LOW" in figures else 0
    return LicenseKpiCounts(total, expiring, renewing, low, over)


@dataclass(frozen=True, slots=True)
class LicenseWeekTotals:
    week_start: datetime
    purchased: int
    assigned: int
    used: int


@lru_cache(maxsize=1)
def _partner_trend() -> Any:
    """The whole partner's weekly totals, built once and bound per request (``partner_id``,
    ``product``, ``weeks``: the closed weeks' starts)."""
    W = LICENSE_WEEK_TOTAL.c
    return select(W.week_start, W.purchased, W.assigned, W.used).where(
        W.partner_id == bindparam("partner_id", type_=Integer),
        W.product == bindparam("product", type_=String),
        W.week_start.in_(bindparam("weeks", expanding=True, type_=W.week_start.type)),
    )


async def distribution_trend(
    session: AsyncSession, *, scope: Scope, product: str, now: datetime, weeks: int
) -> list[LicenseWeekTotals]:
    """The last ``weeks`` closed weeks, oldest first: sums of the weekly snapshots of every
    ``product`` line of the subscriptions of the caller's customers (0 for a week without any)."""
    starts = closed_weeks(now, weeks)
    params: dict[str, Any] = {}
    if scope.assigned_admin_id is None:
        # The whole partner: the per-week totals the snapshot triggers keep.
        stmt: Any = _partner_trend()
        params = {"partner_id": scope.partner_id, "product": product, "weeks": starts}
    else:
        # An assigned scope: snapshots carry no customer, so sum those of the subscriptions of
        # the admin's customers (few, by the scope's own index walk).
        mine = select(S.id).where(*scoped(scope, S.partner_id + 0, S.customer_id))
        stmt = (
            select(
                LS.week_start,
                func.sum(LS.purchased),
                func.sum(LS.assigned),
                func.sum(LS.used),
            )
            .where(
                LS.partner_id == scope.partner_id,
                LS.subscription_id.in_(mine),
                LS.product == product,
                LS.week_start.in_(starts),
            )
            .group_by(LS.week_start)
        )
    found: dict[datetime, tuple[int, int, int]] = {}
    for week, purchased, assigned, used in await session.execute(stmt, params):
        found[week_start_of(week)] = (int(purchased or 0), int(assigned or 0), int(used or 0))
    return [LicenseWeekTotals(w, *found.get(w, (0, 0, 0))) for w in starts]
