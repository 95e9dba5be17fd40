"""The calling figures of a week (and of trends): sums over per-customer aggregate rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.calls_models import (
    DAYS,
    day_calls,
    day_seconds,
    endpoint_calls,
    endpoint_poor_calls,
    feature_calls,
)
from db.enums import CallFeature, EndpointType
from db.queries.calls.common import (
    PW,
    WEEK,
    WEEKLY,
    D,
    W,
    licensed_now,
    licensed_totals,
    whole_partner,
)
from db.queries.calls.common import scoped as _scoped
from db.scope import Scope
from db.types import UTCDateTime


def _source(scope: Scope, columns: Any) -> tuple[Any, Any]:
    """The columns to sum (``W`` or ``D``) and their condition for ``scope``: the partner's
    row of ``call_partner_week`` (same column names) for a whole-partner scope."""
    if whole_partner(scope):
        return PW, PW.partner_id == scope.partner_id
    return columns, _scoped(columns, scope)


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    calls: int
    duration_seconds: int


@dataclass(frozen=True, slots=True)
class Usage:
    calls: int
    duration_seconds: int
    active_users: int
    daily: list[DayUsage]


async def usage(session: AsyncSession, *, scope: Scope, week: datetime) -> Usage:
    """Calls, talk time and active users of the week, and the same per UTC day (all 7 days)."""
    w, where = _source(scope, W)
    totals = (
        await session.execute(
            select(
                func.coalesce(func.sum(w.calls), 0),
                func.coalesce(func.sum(w.duration_seconds), 0),
                func.coalesce(func.sum(w.active_users), 0),
            ).where(where, w.week_start == week)
        )
    ).one()
    d_, where = _source(scope, D)
    per_day = (
        await session.execute(
            select(
                *[func.coalesce(func.sum(d_[day_calls(d)]), 0) for d in DAYS],
                *[func.coalesce(func.sum(d_[day_seconds(d)]), 0) for d in DAYS],
            ).where(where, d_.week_start == week)
        )
    ).one()
    first = week.date()
    daily = [
        DayUsage(first + timedelta(days=d), int(per_day[d]), int(per_day[7 + d])) for d in DAYS
    ]
    return Usage(int(totals[0]), int(totals[1]), int(totals[2]), daily)


def weeks_ending(week: datetime, count: int) -> list[datetime]:
    """``count`` weeks, oldest first, the last being ``week``."""
    return [week - WEEK * k for k in range(count - 1, -1, -1)]


@dataclass(frozen=True, slots=True)
class VolumeWeek:
    week: datetime
    users_1_to_10: int
    users_11_to_50: int
    users_51_plus: int
    licensed_without_calls: int


def _weeks_table(weeks: Sequence[datetime]) -> Any:
    return union_all(
        *[select(literal(w, UTCDateTime()).label("week_start")) for w in weeks]
    ).subquery("weeks")


async def users_by_volume(
    session: AsyncSession, *, scope: Scope, weeks: Sequence[datetime], now: datetime
) -> list[VolumeWeek]:
    d, where = _source(scope, D)
    buckets = {
        w: (int(a), int(b), int(c))
        for w, a, b, c in await session.execute(
            select(
                d.week_start,
                func.sum(d.users_1_to_10),
                func.sum(d.users_11_to_50),
                func.sum(d.users_51_plus),
            )
            .where(where, d.week_start.in_(list(weeks)))
            .group_by(d.week_start)
        )
    }
    # Per week, the sum over licensed customers of max(licensed - active, 0) is all their
    # licences (kept per partner and day) minus, over the customers with calls that week,
    # min(licensed, active): driven by the week's aggregate rows (one span probe each), not by
    # every licensed customer times every week.
    total = (await licensed_totals(session, scope, now)).licensed
    span, held = licensed_now(scope, now)
    used = case((span.c.licensed < W.active_users, span.c.licensed), else_=W.active_users)
    rows = await session.execute(
        select(W.week_start, func.sum(used))
        .select_from(WEEKLY.join(span, and_(span.c.customer_id == W.customer_id, held)))
        .where(W.partner_id == scope.partner_id, W.week_start.in_(list(weeks)))
        .group_by(W.week_start)
    )
    without = {w: total for w in weeks}
    for w, n in rows:
        without[w] = total - int(n or 0)
    out = []
    for w in weeks:
        small, medium, large = buckets.get(w, (0, 0, 0))
        out.append(VolumeWeek(w, small, medium, large, without[w]))
    return out


@dataclass(frozen=True, slots=True)
class QualityWeek:
    week: datetime
    total_calls: int
    poor_calls: int


async def quality_by_week(
    session: AsyncSession, *, scope: Scope, weeks: Sequence[datetime]
) -> list[QualityWeek]:
    w_, where = _source(scope, W)
    found = {
        w: (int(total), int(poor))
        for w, total, poor in await session.execute(
            select(w_.week_start, func.sum(w_.calls), func.sum(w_.poor_calls))
            .where(where, w_.week_start.in_(list(weeks)))
            .group_by(w_.week_start)
        )
    }
    return [QualityWeek(w, *found.get(w, (0, 0))) for w in weeks]


async def quality_by_endpoint(
    session: AsyncSession, *, scope: Scope, week: datetime
) -> list[tuple[str, int, int]]:
    """(endpoint type, calls, poor calls) for every endpoint type, in ``EndpointType`` order."""
    d, where = _source(scope, D)
    row = (
        await session.execute(
            select(
                *[
                    func.coalesce(func.sum(d[name]), 0)
                    for e in EndpointType
                    for name in (endpoint_calls(e), endpoint_poor_calls(e))
                ]
            ).where(where, d.week_start == week)
        )
    ).one()
    return [(e.value, int(row[2 * i]), int(row[2 * i + 1])) for i, e in enumerate(EndpointType)]


async def feature_usage(
    session: AsyncSession, *, scope: Scope, week: datetime
) -> list[tuple[str, int]]:
    """(feature, calls that used it) for every feature, in ``CallFeature`` order."""
    d, where = _source(scope, D)
    row = (
        await session.execute(
            select(*[func.coalesce(func.sum(d[feature_calls(f)]), 0) for f in CallFeature]).where(
                where, d.week_start == week
            )
        )
    ).one()
    return [(f.value, int(n)) for f, n in zip(CallFeature, row, strict=True)]


@dataclass(frozen=True, slots=True)
class QueueTotals:
    queue_calls: int
    answered_calls: int
    abandoned_calls: int
    answered_wait_seconds: int
    abandoned_wait_seconds: int


async def queue_totals(session: AsyncSession, *, scope: Scope, week: datetime) -> QueueTotals:
    w, where = _source(scope, W)
    row = (
        await session.execute(
            select(
                *[
                    func.coalesce(func.sum(column), 0)
                    for column in (
                        w.queue_calls,
                        w.answered_calls,
                        w.abandoned_calls,
                        w.answered_wait_seconds,
                        w.abandoned_wait_seconds,
                    )
                ]
            ).where(where, w.week_start == week)
        )
    ).one()
    return QueueTotals(*(int(v) for v in row))
