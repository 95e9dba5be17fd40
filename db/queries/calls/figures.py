"""The calling figures of a week (and of trends), from the sums of the aggregate rows per week.

One statement (``week_sums``) reads, for the weeks asked, every summed column of the caller's
scope: the partner's ``call_partner_week`` rows for a whole-partner scope (one row per week),
else the sums of the visible customers' ``call_weekly_aggregate`` and ``call_weekly_detail``
rows. Each figure is then plain arithmetic over those sums, so a dashboard asking for every
figure reads them once (``graph.resolvers.calling`` shares them within a request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.calls_licensed import LicensedTotals
from db.calls_models import (
    DAYS,
    day_calls,
    day_seconds,
    endpoint_calls,
    endpoint_poor_calls,
    feature_calls,
)
from db.calls_partner import PARTNER_COLUMNS, partner_sums
from db.enums import CallFeature, EndpointType
from db.queries.calls.common import PW, WEEK, WEEKLY, W, licensed_now, scoped, whole_partner
from db.scope import Scope

Sums = Mapping[str, int]
WeekSums = Mapping[datetime, Sums]
_NONE: dict[str, int] = dict.fromkeys(PARTNER_COLUMNS, 0)


async def week_sums(session: AsyncSession, *, scope: Scope, weeks: Sequence[datetime]) -> WeekSums:
    """Every column of ``call_partner_week`` summed over the customers ``scope`` sees, per week
    of ``weeks`` (a week without calls is absent)."""
    if whole_partner(scope):
        stmt = select(PW.week_start, *[PW[n] for n in PARTNER_COLUMNS]).where(
            PW.partner_id == scope.partner_id, PW.week_start.in_(list(weeks))
        )
    else:
        weekly, detail, sums = partner_sums()
        stmt = (
            select(weekly.c.week_start, *sums)
            .select_from(
                weekly.join(
                    detail,
                    and_(
                        detail.c.customer_id == weekly.c.customer_id,
                        detail.c.week_start == weekly.c.week_start,
                    ),
                )
            )
            .where(scoped(weekly.c, scope), weekly.c.week_start.in_(list(weeks)))
            .group_by(weekly.c.week_start)
        )
    return {
        row[0]: {n: int(v or 0) for n, v in zip(PARTNER_COLUMNS, row[1:], strict=True)}
        for row in await session.execute(stmt)
    }


def _of(sums: WeekSums, week: datetime) -> Sums:
    return sums.get(week, _NONE)


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


def usage(sums: WeekSums, week: datetime) -> Usage:
    """Calls, talk time and active users of the week, and the same per UTC day (all 7 days)."""
    s = _of(sums, week)
    first = week.date()
    daily = [DayUsage(first + timedelta(days=d), s[day_calls(d)], s[day_seconds(d)]) for d in DAYS]
    return Usage(s["calls"], s["duration_seconds"], s["active_users"], daily)


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


async def users_by_volume(
    session: AsyncSession,
    *,
    scope: Scope,
    sums: WeekSums,
    weeks: Sequence[datetime],
    now: datetime,
    licensed: LicensedTotals,
) -> list[VolumeWeek]:
    """Users by calls made per week, and the licensed users without calls (``licensed``: the
    scope's licensed customers and users at ``now``)."""
    # Per week, the sum over licensed customers of max(licensed - active, 0) is all their
    # licences minus, over the customers with calls that week, min(licensed, active): driven by
    # the weeks' aggregate rows (one span probe each), not by every licensed customer times
    # every week.
    span, held = licensed_now(scope, now)
    used = case((span.c.licensed < W.active_users, span.c.licensed), else_=W.active_users)
    rows = await session.execute(
        select(W.week_start, func.sum(used))
        .select_from(WEEKLY.join(span, and_(span.c.customer_id == W.customer_id, held)))
        .where(W.partner_id == scope.partner_id, W.week_start.in_(list(weeks)))
        .group_by(W.week_start)
    )
    without = dict.fromkeys(weeks, licensed.licensed)
    for w, n in rows:
        without[w] = licensed.licensed - int(n or 0)
    out = []
    for w in weeks:
        s = _of(sums, w)
        out.append(
            VolumeWeek(w, s["users_1_to_10"], s["users_11_to_50"], s["users_51_plus"], without[w])
        )
    return out


@dataclass(frozen=True, slots=True)
class QualityWeek:
    week: datetime
    total_calls: int
    poor_calls: int


def quality_by_week(sums: WeekSums, weeks: Sequence[datetime]) -> list[QualityWeek]:
    return [QualityWeek(w, _of(sums, w)["calls"], _of(sums, w)["poor_calls"]) for w in weeks]


def quality_by_endpoint(sums: WeekSums, week: datetime) -> list[tuple[str, int, int]]:
    """(endpoint type, calls, poor calls) for every endpoint type, in ``EndpointType`` order."""
    s = _of(sums, week)
    return [(e.value, s[endpoint_calls(e)], s[endpoint_poor_calls(e)]) for e in EndpointType]


def feature_usage(sums: WeekSums, week: datetime) -> list[tuple[str, int]]:
    """(feature, calls that used it) for every feature, in ``CallFeature`` order."""
    s = _of(sums, week)
    return [(f.value, s[feature_calls(f)]) for f in CallFeature]


@dataclass(frozen=True, slots=True)
class QueueTotals:
    queue_calls: int
    answered_calls: int
    abandoned_calls: int
    answered_wait_seconds: int
    abandoned_wait_seconds: int


def queue_totals(sums: WeekSums, week: datetime) -> QueueTotals:
    s = _of(sums, week)
    return QueueTotals(
        s["queue_calls"],
        s["answered_calls"],
        s["abandoned_calls"],
        s["answered_wait_seconds"],
        s["abandoned_wait_seconds"],
    )
