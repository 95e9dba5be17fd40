"""License analytics (DESIGN.md section 3): ``licenseKpis`` and ``licenseAnalytics(product)``
(the section objects; what they resolve from is ``graph.resolvers.section_source``).

Both root fields pass the one door (``require(ctx, Obj.ANALYTICS, Act.READ)``) and keep the
returned scope; every section below resolves from it with one ``db.queries.analytics`` call per
figure set. The section objects live here rather than in ``graph.types`` because they are
nothing but resolvers: a section's KPIs and its rows' ``totalCount`` come from one statement.
For a scope over the whole partner, ``licenseKpis`` and every section's KPIs (low allocation's
included) are one statement per request (``graph.resolvers.license_figures``); for an assigned
scope, four of the five sections share one and low allocation has its own. The deployment-wide
low-allocation medians are fetched once per request for every figure that needs them. Nothing
is cached across requests.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from db.queries import analytics as q
from db.scope import Scope
from graph.auth.permissions import Act, Obj, require
from graph.context import Info
from graph.errors import ErrorCode, bad_input
from graph.pagination import paging
from graph.resolvers.license_figures import figures
from graph.resolvers.section_source import (
    AFTER,
    DEFAULT_PAGE,
    FIRST,
    MAX_WEEKS,
    ORDER,
    SectionSource,
    SharedSummaries,
    request_medians,
    section_counter,
    section_edges,
)
from graph.types.analytics import (
    AnalyticsProduct,
    ExpiringColumn,
    ExpiringConnection,
    ExpiringEdge,
    ExpiringKpis,
    ExpiringOrder,
    ExpiringRow,
    LicenseKpis,
    LicenseWeek,
    LowAllocationColumn,
    LowAllocationConnection,
    LowAllocationEdge,
    LowAllocationKpis,
    LowAllocationOrder,
    LowAllocationRow,
    OverageColumn,
    OverageConnection,
    OverageEdge,
    OverageKpis,
    OverageOrder,
    OverageRow,
    RecentlyAddedColumn,
    RecentlyAddedConnection,
    RecentlyAddedEdge,
    RecentlyAddedKpis,
    RecentlyAddedOrder,
    RecentlyAddedRow,
    RenewingColumn,
    RenewingConnection,
    RenewingEdge,
    RenewingKpis,
    RenewingOrder,
    RenewingRow,
    SortDirection,
)
from graph.types.arguments import Before, Last
from graph.types.common import NULL_WHEN_REFUSED

SECTION_SCOPE = (
    "Rows are subscriptions of the caller's customers, in force (state ACTIVE, start <= now < "
    "end) and having a license line of the selected product; their figures are sums over "
    "those lines."
)


@strawberry.type(
    description="In-force subscriptions and trials that started within the last 90 days "
    "(start > now - 90 days). " + SECTION_SCOPE
)
class RecentlyAddedSection:
    source: strawberry.Private[SectionSource]

    @strawberry.field(description="KPIs over every row of the section.")
    async def kpis(self, info: Info) -> RecentlyAddedKpis:
        s = await self.source.summary(info.context)
        return RecentlyAddedKpis(new_customers=s.customers, total_licenses=s.purchased)

    @strawberry.field(
        description="The rows, keyset-paged (default: newest first)." + NULL_WHEN_REFUSED
    )
    async def rows(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        order_by: Annotated[
            RecentlyAddedOrder | None, strawberry.argument(description=ORDER)
        ] = None,
        last: Last = None,
        before: Before = None,
    ) -> RecentlyAddedConnection | None:
        order = order_by or RecentlyAddedOrder(field=RecentlyAddedColumn.DAYS_SINCE_ADDED)
        ctx = info.context
        rows, cursors, page_info = await self.source.page(
            ctx,
            page_of=paging(info, first, after, last, before, ctx.settings.max_page_size),
            column=order.field,
            direction=order.direction,
        )
        nodes, pairs = section_edges(info, RecentlyAddedRow.from_row, rows, cursors)
        return RecentlyAddedConnection(
            page_info=page_info,
            count=section_counter(self.source, ctx),
            edges=[RecentlyAddedEdge(node=n, cursor=c) for n, c in pairs],
            nodes=nodes,
        )


@strawberry.type(
    description="In-force subscriptions that do not auto-renew and end within 90 days "
    "(now < end <= now + 90 days), trials included. " + SECTION_SCOPE
)
class ExpiringSection:
    source: strawberry.Private[SectionSource]

    @strawberry.field(description="KPIs over every row of the section.")
    async def kpis(self, info: Info) -> ExpiringKpis:
        s = await self.source.summary(info.context)
        return ExpiringKpis(
            expiring_customers=s.customers,
            allocation_percent=q.percent(s.assigned, s.purchased),
            usage_percent=q.percent(s.used, s.purchased),
        )

    @strawberry.field(
        description="The rows, keyset-paged (default: soonest end first)." + NULL_WHEN_REFUSED
    )
    async def rows(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        order_by: Annotated[ExpiringOrder | None, strawberry.argument(description=ORDER)] = None,
        last: Last = None,
        before: Before = None,
    ) -> ExpiringConnection | None:
        order = order_by or ExpiringOrder(field=ExpiringColumn.DAYS_UNTIL_EXPIRY)
        ctx = info.context
        rows, cursors, page_info = await self.source.page(
            ctx,
            page_of=paging(info, first, after, last, before, ctx.settings.max_page_size),
            column=order.field,
            direction=order.direction,
        )
        nodes, pairs = section_edges(info, ExpiringRow.from_row, rows, cursors)
        return ExpiringConnection(
            page_info=page_info,
            count=section_counter(self.source, ctx),
            edges=[ExpiringEdge(node=n, cursor=c) for n, c in pairs],
            nodes=nodes,
        )


@strawberry.type(
    description="In-force auto-renewing subscriptions whose renewal date is within 90 days "
    "(now < renewal <= now + 90 days). " + SECTION_SCOPE
)
class RenewingSection:
    source: strawberry.Private[SectionSource]

    @strawberry.field(description="KPIs over every row of the section.")
    async def kpis(self, info: Info) -> RenewingKpis:
        s = await self.source.summary(info.context)
        return RenewingKpis(
            renewing_customers=s.customers,
            allocation_percent=q.percent(s.assigned, s.purchased),
            usage_percent=q.percent(s.used, s.purchased),
        )

    @strawberry.field(
        description="The rows, keyset-paged (default: soonest renewal first)." + NULL_WHEN_REFUSED
    )
    async def rows(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        order_by: Annotated[RenewingOrder | None, strawberry.argument(description=ORDER)] = None,
        last: Last = None,
        before: Before = None,
    ) -> RenewingConnection | None:
        order = order_by or RenewingOrder(field=RenewingColumn.DAYS_UNTIL_RENEWAL)
        ctx = info.context
        rows, cursors, page_info = await self.source.page(
            ctx,
            page_of=paging(info, first, after, last, before, ctx.settings.max_page_size),
            column=order.field,
            direction=order.direction,
        )
        nodes, pairs = section_edges(info, RenewingRow.from_row, rows, cursors)
        return RenewingConnection(
            page_info=page_info,
            count=section_counter(self.source, ctx),
            edges=[RenewingEdge(node=n, cursor=c) for n, c in pairs],
            nodes=nodes,
        )


@strawberry.type(
    description="In-force subscriptions with low allocation. Each in-force subscription of the "
    "deployment (all partners) having the product, with purchased licenses > 0, has an "
    "allocation ratio assigned / purchased (sums over its product lines) and a size band by "
    "purchased: 1-10, 11-50, 51-250, 251-1000, 1001+. A band's median is the middle ratio of "
    "those subscriptions sorted by ratio (the mean of the two middle ones for an even count). "
    "A subscription of the caller's customers is flagged when it started at least 30 days ago "
    "(start <= now - 30 days) and its ratio is below half its band's median. Only aggregates "
    "of other partners' data take part; none is exposed."
)
class LowAllocationSection:
    source: strawberry.Private[SectionSource]

    @strawberry.field(description="KPIs over every flagged subscription.")
    async def kpis(self, info: Info) -> LowAllocationKpis:
        s = await self.source.summary(info.context)
        return LowAllocationKpis(
            low_allocation_customers=s.customers,
            allocation_percent=q.percent(s.assigned, s.purchased),
            usage_when_assigned_percent=q.percent(s.used, s.assigned),
            unassigned_licenses=s.purchased - s.assigned,
        )

    @strawberry.field(
        description="The rows, keyset-paged (default: lowest allocation first)." + NULL_WHEN_REFUSED
    )
    async def rows(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        order_by: Annotated[
            LowAllocationOrder | None, strawberry.argument(description=ORDER)
        ] = None,
        last: Last = None,
        before: Before = None,
    ) -> LowAllocationConnection | None:
        order = order_by or LowAllocationOrder(field=LowAllocationColumn.ALLOCATION_PERCENT)
        ctx = info.context
        rows, cursors, page_info = await self.source.page(
            ctx,
            page_of=paging(info, first, after, last, before, ctx.settings.max_page_size),
            column=order.field,
            direction=order.direction,
        )
        nodes, pairs = section_edges(info, LowAllocationRow.from_row, rows, cursors)
        return LowAllocationConnection(
            page_info=page_info,
            count=section_counter(self.source, ctx),
            edges=[LowAllocationEdge(node=n, cursor=c) for n, c in pairs],
            nodes=nodes,
        )


@strawberry.type(
    description="License lines of the product with assigned > purchased on in-force "
    "subscriptions of the caller's customers; one row per line."
)
class OverageSection:
    source: strawberry.Private[SectionSource]

    @strawberry.field(description="KPIs over every overage line.")
    async def kpis(self, info: Info) -> OverageKpis:
        s = await self.source.summary(info.context)
        overage = s.assigned - s.purchased
        return OverageKpis(
            overage_customers=s.customers,
            overage_licenses=overage,
            average_overage=q.one_decimal(overage, s.customers),
        )

    @strawberry.field(
        description="The rows, keyset-paged (default: largest overage first)." + NULL_WHEN_REFUSED
    )
    async def rows(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=FIRST)] = DEFAULT_PAGE,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        order_by: Annotated[OverageOrder | None, strawberry.argument(description=ORDER)] = None,
        last: Last = None,
        before: Before = None,
    ) -> OverageConnection | None:
        order = order_by or OverageOrder(field=OverageColumn.OVERAGE, direction=SortDirection.DESC)
        ctx = info.context
        rows, cursors, page_info = await self.source.page(
            ctx,
            page_of=paging(info, first, after, last, before, ctx.settings.max_page_size),
            column=order.field,
            direction=order.direction,
        )
        nodes, pairs = section_edges(info, OverageRow.from_row, rows, cursors)
        return OverageConnection(
            page_info=page_info,
            count=section_counter(self.source, ctx),
            edges=[OverageEdge(node=n, cursor=c) for n, c in pairs],
            nodes=nodes,
        )


@strawberry.type(description="License analytics of one product, within the caller's scope.")
class LicenseAnalytics:
    product: AnalyticsProduct = strawberry.field(description="The selected product.")
    scope: strawberry.Private[Scope]
    summaries: strawberry.Private[SharedSummaries]

    def _source(self, section: q.Section) -> SectionSource:
        return SectionSource(shared=self.summaries, section=section)

    @strawberry.field(
        description="Purchased, assigned and used licenses per week over the last `weeks` "
        "(1-52) weeks that closed at or before now, oldest first." + NULL_WHEN_REFUSED
    )
    async def distribution_trend(
        self,
        info: Info,
        weeks: Annotated[int, strawberry.argument(description="How many weeks, 1-52.")] = 13,
    ) -> list[LicenseWeek] | None:
        if not 1 <= weeks <= MAX_WEEKS:
            raise bad_input(
                f"`weeks` must be between 1 and {MAX_WEEKS}, got {weeks}.",
                ErrorCode.BAD_USER_INPUT,
                argument="weeks",
            )
        ctx = info.context
        async with ctx.db() as session:
            totals = await q.distribution_trend(
                session, scope=self.scope, product=self.product.value, now=ctx.now, weeks=weeks
            )
        return [
            LicenseWeek(
                week_start=t.week_start, purchased=t.purchased, assigned=t.assigned, used=t.used
            )
            for t in totals
        ]

    @strawberry.field(description="Subscriptions and trials added in the last 90 days.")
    def recently_added(self) -> RecentlyAddedSection:
        return RecentlyAddedSection(source=self._source(q.Section.RECENTLY_ADDED))

    @strawberry.field(description="Subscriptions ending within 90 days without auto-renew.")
    def about_to_expire(self) -> ExpiringSection:
        return ExpiringSection(source=self._source(q.Section.ABOUT_TO_EXPIRE))

    @strawberry.field(description="Auto-renewing subscriptions renewing within 90 days.")
    def about_to_renew(self) -> RenewingSection:
        return RenewingSection(source=self._source(q.Section.ABOUT_TO_RENEW))

    @strawberry.field(description="Subscriptions allocating far fewer licenses than their peers.")
    def low_allocation(self) -> LowAllocationSection:
        return LowAllocationSection(source=self._source(q.Section.LOW_ALLOCATION))

    @strawberry.field(description="License lines with more licenses assigned than purchased.")
    def overage(self) -> OverageSection:
        return OverageSection(source=self._source(q.Section.OVERAGE))


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(description="Top license KPIs over the caller's customers (see LicenseKpis).")
    async def license_kpis(self, info: Info) -> LicenseKpis:
        ctx = info.context
        scope = require(ctx, Obj.ANALYTICS, Act.READ)
        if scope.assigned_admin_id is None:
            # The whole partner: with the request's other license figures, one statement.
            asked = figures(
                ctx,
                scope,
                kpis=q.TOP_KPIS,
                low=[q.LOW_KPI],
                medians_of=lambda: request_medians(ctx),
            )
            k = q.top_counts(await asked)
        else:
            medians = await request_medians(ctx)
            async with ctx.db() as session:
                k = await q.license_kpis(session, scope=scope, now=ctx.now, medians=medians)
        return LicenseKpis(
            total_customers=k.total_customers,
            about_to_expire=k.about_to_expire,
            about_to_renew=k.about_to_renew,
            low_allocation=k.low_allocation,
            over_license_limit=k.over_license_limit,
        )

    @strawberry.field(
        description="License analytics of MEETINGS or CALLING over the caller's customers: "
        "the weekly distribution trend and five sections, each with KPIs and sortable rows."
    )
    def license_analytics(
        self,
        info: Info,
        product: Annotated[
            AnalyticsProduct, strawberry.argument(description="MEETINGS or CALLING.")
        ],
    ) -> LicenseAnalytics:
        scope = require(info.context, Obj.ANALYTICS, Act.READ)
        shared = SharedSummaries(scope=scope, product=product.value)
        return LicenseAnalytics(product=product, scope=scope, summaries=shared)
