"""What every license section resolves from (DESIGN.md section 3): the request's shared
medians, the KPIs the sections share, and ``SectionSource``, which pages a section's rows under
the caller's scope (validated paging, signed keyset cursors, each signed when read) and answers
its KPIs and ``totalCount`` from one statement. ``graph.resolvers.analytics`` builds the GraphQL
section objects on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from db.license_kpis import KpiFigures
from db.queries import analytics as q
from db.scope import Scope
from db.versioning import deployment_version, writes_pending
from graph.context import Context, Info
from graph.errors import bad_input
from graph.pagination import (
    CursorCodec,
    LazyCursors,
    PageInfo,
    Paging,
    fingerprint,
    selects,
)
from graph.resolvers.license_figures import figures
from graph.types.analytics import SortDirection

MAX_WEEKS = 52
DEFAULT_PAGE = 20
FIRST = "Rows per page, 1-100."
AFTER = "The `endCursor` of the previous page."
ORDER = "Column and direction; the default is given in the field description."
T = TypeVar("T")


def request_medians(ctx: Context) -> Awaitable[q.Medians]:
    """The deployment-wide low-allocation band medians at the request's now, fetched on first
    use and shared for the request (``Context.shared``), so that ``licenseKpis`` and the
    low-allocation section share one statement. Await it outside ``ctx.db()``."""
    return ctx.shared("license_analytics_medians", lambda: _load_medians(ctx))


async def _load_medians(ctx: Context) -> q.Medians:
    """Kept between requests (``q.MediansMemo``) unless the request's transaction holds
    uncommitted writes, which the shared version read with its token does not cover."""
    memo = ctx.services.medians
    async with ctx.db() as session:
        if memo is None or await writes_pending(session):
            return await q.low_allocation_medians(session, now=ctx.now)
        version = deployment_version(ctx.principal)
        return await memo.medians(session, now=ctx.now, version=version)


async def section_medians(ctx: Context, section: q.Section) -> q.Medians | None:
    return await request_medians(ctx) if section is q.Section.LOW_ALLOCATION else None


@dataclass
class SharedSummaries:
    """The KPIs of the sections ``q.SHARED_SUMMARY`` of one product: one statement, once per
    request and product (aliases of ``licenseAnalytics`` share it)."""

    scope: Scope
    product: str

    def get(self, ctx: Context) -> Awaitable[dict[q.Section, q.SectionSummary]]:
        key = ("license_analytics_summaries", self.scope.key, self.product)
        return ctx.shared(key, lambda: self._load(ctx))

    async def _load(self, ctx: Context) -> dict[q.Section, q.SectionSummary]:
        async with ctx.db() as session:
            return await q.section_summaries(
                session, scope=self.scope, product=self.product, now=ctx.now
            )


@dataclass
class SectionSource:
    """One section of one product in the caller's scope; its summary is fetched once."""

    shared: SharedSummaries
    section: q.Section

    @property
    def scope(self) -> Scope:
        return self.shared.scope

    @property
    def product(self) -> str:
        return self.shared.product

    def summary(self, ctx: Context) -> Awaitable[q.SectionSummary]:
        key = ("license_analytics_summary", self.scope.key, self.product, self.section)
        if self.scope.assigned_admin_id is None:
            # The whole partner: asked at once (``ctx.shared`` calls ``make`` now), answered
            # with the request's other license figures.
            return ctx.shared(key, lambda: self._ask_summary(ctx))
        return ctx.shared(key, lambda: self._load_summary(ctx))

    def _ask_summary(self, ctx: Context) -> Coroutine[Any, Any, q.SectionSummary]:
        name = q.section_kpi(self.section, self.product)
        low = self.section is q.Section.LOW_ALLOCATION
        asked = figures(
            ctx,
            self.scope,
            kpis=() if low else [name],
            low=[name] if low else (),
            medians_of=lambda: request_medians(ctx),
        )
        return _summary_from(asked, name)

    async def _load_summary(self, ctx: Context) -> q.SectionSummary:
        if self.section in q.SHARED_SUMMARY:
            return (await self.shared.get(ctx))[self.section]
        medians = await section_medians(ctx, self.section)
        async with ctx.db() as session:
            return await q.section_summary(
                session,
                scope=self.scope,
                section=self.section,
                product=self.product,
                now=ctx.now,
                medians=medians,
            )

    async def count(self, ctx: Context) -> int:
        return (await self.summary(ctx)).rows

    async def page(
        self, ctx: Context, *, page_of: Paging, column: Enum, direction: SortDirection
    ) -> tuple[list[q.LicenseRow], LazyCursors, PageInfo]:
        """One page of rows and their cursors (validated paging, signed keyset cursors, each
        signed when read)."""
        try:
            row_column = q.RowColumn(column.value)
            if row_column not in q.COLUMNS[self.section]:
                raise ValueError(row_column)
        except ValueError:
            raise bad_input(f"Unknown column {column.value!r}.", argument="orderBy") from None
        descending = direction is SortDirection.DESC
        codec = CursorCodec(ctx.services.secret)
        list_name = f"licenseAnalytics.{self.section.value}"
        query_fp = fingerprint(self.scope.key, self.product, row_column.value, descending)
        after_key = (
            codec.decode(page_of.cursor, list_name, query_fp, q.key_types(self.section, row_column))
            if page_of.cursor is not None
            else None
        )
        medians = await section_medians(ctx, self.section)
        async with ctx.db() as session:
            page = await q.section_page(
                session,
                scope=self.scope,
                section=self.section,
                product=self.product,
                now=ctx.now,
                column=row_column,
                descending=page_of.descending(descending),
                first=page_of.size,
                after=after_key,
                medians=medians,
            )
        cursors = LazyCursors(codec, list_name, query_fp, page_of.arrange(page.keys))
        return page_of.arrange(page.rows), cursors, page_of.page_info(cursors, page.has_next)


async def _summary_from(asked: Awaitable[dict[str, KpiFigures]], name: str) -> q.SectionSummary:
    return q.summary_of((await asked)[name])


def section_counter(source: SectionSource, ctx: Context) -> Callable[[], Awaitable[int]]:
    return lambda: source.count(ctx)


def section_edges(
    info: Info, make: Callable[[q.LicenseRow], T], rows: list[q.LicenseRow], cursors: LazyCursors
) -> tuple[list[T], list[tuple[T, str]]]:
    """The page's nodes, and its (node, cursor) edges when the document selects ``edges``."""
    nodes = [make(r) for r in rows]
    if not selects(info, "edges"):
        return nodes, []
    return nodes, list(zip(nodes, cursors, strict=True))
