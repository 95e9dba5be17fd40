"""Calling analytics (``callingAnalytics``); ingestion (``ingestCallRecords``) lives in
``graph.resolvers.calling_ingest`` and is re-exported here for ``graph.schema``.

The root field authorizes once (``analytics`` read) and carries the caller's ``Scope`` and the
week to every sub-field; each sub-field is one or two aggregate queries in ``db.queries.calls``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import strawberry

from db.calls_licensed import LicensedTotals
from db.enums import CallFeature, EndpointType
from db.queries import calls as q
from db.scope import Scope
from graph.auth.permissions import Act, Obj, require
from graph.context import Context, Info
from graph.errors import bad_input
from graph.pagination import CursorCodec, PageInfo, Paging, fingerprint, paging
from graph.resolvers.calling_ingest import CallingMutations  # re-exported for graph.schema
from graph.types.arguments import After, Before, First, Last, Weeks
from graph.types.calling import (
    CallEndpointQuality,
    CallFeatureUsage,
    CallingCustomerQuality,
    CallingCustomerQualityConnection,
    CallingCustomerQualityEdge,
    CallingCustomerUsage,
    CallingCustomerUsageConnection,
    CallingCustomerUsageEdge,
    CallingUsage,
    CallingUserVolumeWeek,
    CallQuality,
    CallQualityWeek,
    CallQueueCustomer,
    CallQueueCustomerConnection,
    CallQueueCustomerEdge,
    CallQueueKpis,
    queue_figures,
)
from graph.types.common import NULL_WHEN_REFUSED

MAX_TREND_WEEKS = 52
T = TypeVar("T")


def _trend_weeks(weeks: int) -> int:
    if not 1 <= weeks <= MAX_TREND_WEEKS:
        raise bad_input(
            f"`weeks` must be between 1 and {MAX_TREND_WEEKS}, got {weeks}.", argument="weeks"
        )
    return weeks


async def _page(
    ctx: Context,
    *,
    name: str,
    scope: Scope,
    week: datetime,
    order: str,
    table: q.CustomerTable,
    page_of: Paging,
    to_node: Callable[[Any], T],
    count_of: Callable[[], Awaitable[int]] | None = None,
) -> tuple[list[T], list[str], PageInfo, Callable[[], Awaitable[int]]]:
    """One keyset page of a customer table: nodes, cursors, page info and the count."""
    codec = CursorCodec(ctx.services.secret)
    # Not the clock: a cursor stays valid from one request to the next (keyset paging copes
    # with rows that come and go, as licenses are assigned between two pages).
    query_fp = fingerprint(scope.key, week.isoformat(), order)
    after_key = (
        codec.decode(page_of.cursor, name, query_fp, table.key_types)
        if page_of.cursor is not None
        else None
    )
    async with ctx.db() as session:
        page = await q.table_page(
            session, table, first=page_of.size, after=after_key, backward=page_of.backward
        )

    async def count() -> int:
        if count_of is not None:
            return await count_of()
        async with ctx.db() as session:
            return await q.table_count(session, table)

    nodes = [to_node(row) for row in page_of.arrange(page.rows)]
    cursors = [codec.encode(name, query_fp, key) for key in page_of.arrange(page.keys)]
    return nodes, cursors, page_of.page_info(cursors, page.has_next), count


DEFAULT_WEEKS = 8  # the trends' default span: the week's own figures share its statement


async def _sums(info: Info, scope: Scope, weeks: list[datetime]) -> q.WeekSums:
    """The summed aggregates of ``weeks`` for ``scope``: one statement per request and span,
    whichever figures ask for them."""
    ctx = info.context

    async def load() -> q.WeekSums:
        async with ctx.db() as session:
            return await q.week_sums(session, scope=scope, weeks=weeks)

    return await ctx.shared(("calling.week_sums", scope.key, tuple(weeks)), load)


async def _week(info: Info, scope: Scope, week: datetime) -> q.WeekSums:
    return await _sums(info, scope, q.weeks_ending(week, DEFAULT_WEEKS))


async def _licensed(info: Info, scope: Scope) -> LicensedTotals:
    """The scope's licensed customers and users at now, once per request."""
    ctx = info.context

    async def load() -> LicensedTotals:
        async with ctx.db() as session:
            return await q.licensed_totals(session, scope=scope, now=ctx.now)

    return await ctx.shared(("calling.licensed", scope.key, ctx.now), load)


def _quality(total: int, poor: int) -> dict[str, Any]:
    return {"total_calls": total, "poor_calls": poor, "poor_percent": q.percent(poor, total)}


@strawberry.type(description="Call queue figures of the week, and per customer.")
class CallQueueAnalytics:
    scope: strawberry.Private[Scope]
    week: strawberry.Private[datetime]

    @strawberry.field(description="Queue KPIs over the customers the caller may see.")
    async def kpis(self, info: Info) -> CallQueueKpis:
        t = q.queue_totals(await _week(info, self.scope, self.week), self.week)
        return CallQueueKpis(
            **queue_figures(
                t.queue_calls,
                t.answered_calls,
                t.abandoned_calls,
                t.answered_wait_seconds,
                t.abandoned_wait_seconds,
            )
        )

    @strawberry.field(
        description="Customers with queue calls in the week (`first` 1-100)." + NULL_WHEN_REFUSED
    )
    async def customers(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        order_by: Annotated[
            q.QueueCustomerOrder,
            strawberry.argument(
                description="Order of the table; ties by customer, same direction."
            ),
        ] = q.QueueCustomerOrder.ABANDONED_RATE_DESC,
        last: Last = None,
        before: Before = None,
    ) -> CallQueueCustomerConnection | None:
        order = q.QueueCustomerOrder(order_by)
        nodes, cursors, page_info, count = await _page(
            info.context,
            name="callQueue.customers",
            scope=self.scope,
            week=self.week,
            order=order.value,
            table=q.queue_table(self.scope, week=self.week, order=order),
            page_of=paging(info, first, after, last, before, info.context.settings.max_page_size),
            to_node=CallQueueCustomer.from_row,
        )
        return CallQueueCustomerConnection(
            edges=[
                CallQueueCustomerEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)
            ],
            nodes=nodes,
            page_info=page_info,
            count=count,
        )


@strawberry.type(
    description="Calling analytics of one week for the customers the caller may see. Weeks run "
    "from Sunday 00:00 UTC to the next Sunday; every figure comes from the weekly aggregates "
    "that call-record ingestion keeps."
)
class CallingAnalytics:
    week_start: date = strawberry.field(description="Sunday the week starts on (UTC).")
    week_end: date = strawberry.field(description="Sunday the week ends on (exclusive).")
    complete: bool = strawberry.field(
        description="The week has closed (its data is complete) at the server's now."
    )
    scope: strawberry.Private[Scope]
    week: strawberry.Private[datetime]

    @strawberry.field(description="Calls, minutes and active users of the week, and per day.")
    async def usage(self, info: Info) -> CallingUsage:
        usage = q.usage(await _week(info, self.scope, self.week), self.week)
        return CallingUsage.of(usage)

    @strawberry.field(
        description="Users by calls made per week (1-10, 11-50, 51+, licensed without calls) "
        "for `weeks` weeks (1-52) ending with this one, oldest first." + NULL_WHEN_REFUSED
    )
    async def users_by_volume_trend(
        self, info: Info, weeks: Weeks = 8
    ) -> list[CallingUserVolumeWeek] | None:
        ctx = info.context
        span = q.weeks_ending(self.week, _trend_weeks(weeks))
        sums = await _sums(info, self.scope, span)
        licensed = await _licensed(info, self.scope)
        async with ctx.db() as session:
            rows = await q.users_by_volume(
                session, scope=self.scope, sums=sums, weeks=span, now=ctx.now, licensed=licensed
            )
        return [CallingUserVolumeWeek.of(r) for r in rows]

    @strawberry.field(
        description="Customers with Calling (an in-force CALLING license line, or calls in the "
        "week) and their usage; keyset-paged (`first` 1-100)." + NULL_WHEN_REFUSED
    )
    async def customers_usage(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        order_by: Annotated[
            q.CustomerUsageOrder,
            strawberry.argument(
                description="Order of the table; ties by customer, same direction."
            ),
        ] = q.CustomerUsageOrder.CALLS_DESC,
        last: Last = None,
        before: Before = None,
    ) -> CallingCustomerUsageConnection | None:
        ctx = info.context
        order = q.CustomerUsageOrder(order_by)
        table = q.usage_table(self.scope, week=self.week, now=ctx.now, order=order)
        quiet: q.QuietRows = table.quiet

        async def count_of() -> int:
            licensed = await _licensed(info, self.scope)  # before the session: it takes one
            async with ctx.db() as session:
                return await quiet.count(session, licensed)

        nodes, cursors, page_info, count = await _page(
            ctx,
            name="callingAnalytics.customersUsage",
            scope=self.scope,
            week=self.week,
            order=order.value,
            table=table,
            page_of=paging(info, first, after, last, before, info.context.settings.max_page_size),
            to_node=CallingCustomerUsage.from_row,
            count_of=count_of,
        )
        return CallingCustomerUsageConnection(
            edges=[
                CallingCustomerUsageEdge(node=n, cursor=c)
                for n, c in zip(nodes, cursors, strict=True)
            ],
            nodes=nodes,
            page_info=page_info,
            count=count,
        )

    @strawberry.field(description="Call quality of the week.")
    async def quality(self, info: Info) -> CallQuality:
        sums = await _week(info, self.scope, self.week)
        (week,) = q.quality_by_week(sums, [self.week])
        return CallQuality(**_quality(week.total_calls, week.poor_calls))

    @strawberry.field(
        description="Call quality for `weeks` weeks (1-52) ending with this one, oldest first."
        + NULL_WHEN_REFUSED
    )
    async def quality_trend(self, info: Info, weeks: Weeks = 8) -> list[CallQualityWeek] | None:
        span = q.weeks_ending(self.week, _trend_weeks(weeks))
        rows = q.quality_by_week(await _sums(info, self.scope, span), span)
        return [
            CallQualityWeek(week_start=r.week.date(), **_quality(r.total_calls, r.poor_calls))
            for r in rows
        ]

    @strawberry.field(description="Call quality per endpoint type (every type, in enum order).")
    async def quality_by_endpoint(self, info: Info) -> list[CallEndpointQuality]:
        rows = q.quality_by_endpoint(await _week(info, self.scope, self.week), self.week)
        return [
            CallEndpointQuality(endpoint_type=EndpointType(endpoint), **_quality(total, poor))
            for endpoint, total, poor in rows
        ]

    @strawberry.field(
        description="Customers with calls in the week and their call quality; keyset-paged "
        "(`first` 1-100)." + NULL_WHEN_REFUSED
    )
    async def customers_quality(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        order_by: Annotated[
            q.CustomerQualityOrder,
            strawberry.argument(
                description="Order of the table; ties by customer, same direction."
            ),
        ] = q.CustomerQualityOrder.POOR_PERCENT_DESC,
        last: Last = None,
        before: Before = None,
    ) -> CallingCustomerQualityConnection | None:
        order = q.CustomerQualityOrder(order_by)
        nodes, cursors, page_info, count = await _page(
            info.context,
            name="callingAnalytics.customersQuality",
            scope=self.scope,
            week=self.week,
            order=order.value,
            table=q.quality_table(self.scope, week=self.week, order=order),
            page_of=paging(info, first, after, last, before, info.context.settings.max_page_size),
            to_node=CallingCustomerQuality.from_row,
        )
        return CallingCustomerQualityConnection(
            edges=[
                CallingCustomerQualityEdge(node=n, cursor=c)
                for n, c in zip(nodes, cursors, strict=True)
            ],
            nodes=nodes,
            page_info=page_info,
            count=count,
        )

    @strawberry.field(
        description="Calls of the week that used each advanced feature (every feature, in enum "
        "order; a call using several features counts for each)."
    )
    async def feature_usage(self, info: Info) -> list[CallFeatureUsage]:
        rows = q.feature_usage(await _week(info, self.scope, self.week), self.week)
        return [CallFeatureUsage(feature=CallFeature(f), calls=n) for f, n in rows]

    @strawberry.field(description="Call queue KPIs and the customers table of the week.")
    def call_queue(self) -> CallQueueAnalytics:
        return CallQueueAnalytics(scope=self.scope, week=self.week)


def analytics_week(ctx: Context, week: date | None) -> datetime:
    """The week asked for (any date: the week holding it), or last week."""
    if week is None:
        return q.last_closed_week(ctx.now)
    start = q.week_start(week)
    if start > ctx.now:
        raise bad_input(
            f"The week of {week.isoformat()} starts after now ({ctx.now.date().isoformat()}).",
            argument="week",
        )
    return start


@strawberry.type
class CallingQueries:
    @strawberry.field(
        description="Calling analytics of a week: `week` is any date of it (normalised to its "
        "Sunday, UTC); omitted, last week, the latest week closed at or before now. A week "
        "starting after now is refused (BAD_USER_INPUT). Scoped like every read: partner "
        "admins see their assigned customers only."
    )
    async def calling_analytics(
        self,
        info: Info,
        week: Annotated[
            date | None,
            strawberry.argument(
                description="Any date of the week wanted (its Sunday-to-Sunday UTC week); "
                "omitted, the latest week closed at or before now."
            ),
        ] = None,
    ) -> CallingAnalytics:
        ctx = info.context
        scope = require(ctx, Obj.ANALYTICS, Act.READ)
        start = analytics_week(ctx, week)
        return CallingAnalytics(
            week_start=start.date(),
            week_end=(start + q.WEEK).date(),
            complete=start + q.WEEK <= ctx.now,
            scope=scope,
            week=start,
        )


__all__ = ["CallingAnalytics", "CallingMutations", "CallingQueries"]
