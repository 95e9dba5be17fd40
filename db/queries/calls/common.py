"""What the calling figures and tables share: weeks, rounding, scope, licensed users."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.calls_licensed import CALLING_LICENCE_SPAN, LicensedTotals, in_force
from db.calls_licensed import licensed_totals as partner_licensed_totals
from db.calls_models import CALL_WEEKLY_DETAIL
from db.calls_partner import CALL_PARTNER_WEEK
from db.models import CallWeeklyAggregate, Customer
from db.scope import Scope

WEEK = timedelta(days=7)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


WEEKLY = _table(CallWeeklyAggregate)
CUSTOMER = _table(Customer)
W = WEEKLY.c
DETAIL = CALL_WEEKLY_DETAIL
D = DETAIL.c
PW = CALL_PARTNER_WEEK.c
C = CUSTOMER.c
SPAN = CALLING_LICENCE_SPAN


# --- weeks and rounding ----------------------------------------------------------------------


def week_start(day: date | datetime) -> datetime:
    """Sunday 00:00 UTC of the week holding ``day`` (a date is taken as a UTC date)."""
    if isinstance(day, datetime):
        day = day.astimezone(UTC).date()
    sunday = day - timedelta(days=(day.weekday() + 1) % 7)  # weekday(): Monday 0, Sunday 6
    return datetime(sunday.year, sunday.month, sunday.day, tzinfo=UTC)


def last_closed_week(now: datetime) -> datetime:
    """Start of "last week": the latest week that closed at or before ``now``."""
    return week_start(now) - WEEK


def minutes(seconds: int) -> float:
    """``seconds`` / 60 rounded half up to one decimal (exact: integer arithmetic)."""
    return ((seconds + 3) // 6) / 10


def ratio_tenths(part: int, whole: int, scale: int = 1) -> float:
    """``scale * part / whole`` rounded half up to one decimal; 0 when ``whole`` is 0."""
    if whole <= 0:
        return 0.0
    return ((20 * scale * part + whole) // (2 * whole)) / 10


def percent(part: int, whole: int) -> float:
    return ratio_tenths(part, whole, 100)


# --- scope -----------------------------------------------------------------------------------


def scoped(columns: Any, scope: Scope) -> ColumnElement[bool]:
    """Rows of the caller's partner whose customer the caller may see (an aggregate row carries
    its customer's partner: a whole-partner scope needs no look at the customers)."""
    if whole_partner(scope):
        return columns.partner_id == scope.partner_id
    return and_(columns.partner_id == scope.partner_id, scope.customers(columns.customer_id))


def whole_partner(scope: Scope) -> bool:
    """Whether ``scope`` sees every customer of its partner: partner-wide figures then read
    ``call_partner_week`` (one row per week) instead of summing customer rows."""
    return scope.assigned_admin_id is None


def licensed_now(scope: Scope, now: datetime, name: str = "licensed") -> Any:
    """``calling_licence_span`` rows holding ``now`` of the customers ``scope`` sees (at most one
    per customer): ``customer_id`` and ``licensed``, the assigned CALLING licenses of its
    in-force subscriptions (ACTIVE, start <= now < end)."""
    span = SPAN.alias(name)
    visible = () if whole_partner(scope) else (scope.customers(span.c.customer_id),)
    return span, and_(span.c.partner_id == scope.partner_id, in_force(span.c, now), *visible)


def licensed_of(customer_id: Any, scope: Scope, now: datetime) -> Any:
    """The licensed users of the customer ``customer_id`` (a column) at ``now``, NULL when it
    has no in-force CALLING line: a scalar subquery, so that each customer is one index probe
    (a join let PostgreSQL hash every span of the partner)."""
    span, held = licensed_now(scope, now, "held")
    return select(span.c.licensed).where(span.c.customer_id == customer_id, held).scalar_subquery()


async def licensed_totals(session: AsyncSession, *, scope: Scope, now: datetime) -> LicensedTotals:
    """Customers ``scope`` sees with an in-force CALLING line at ``now``, and their licenses:
    from the partner's day edges (flat in the partner's size) for a whole-partner scope, else
    summed over the visible customers' spans."""
    if whole_partner(scope):
        return await partner_licensed_totals(session, scope.partner_id, now)
    span, where = licensed_now(scope, now)
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(span.c.licensed), 0)).where(where)
        )
    ).one()
    return LicensedTotals(int(row[0]), int(row[1]))
