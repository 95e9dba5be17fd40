"""Help resources: ``quickLinks``, ``featuredResources`` and the ``resources`` catalogue.

Resources are global help content, the same for every partner: any authenticated administrator
may read them, so no policy object guards them (authentication happens before any resolver).
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from db.queries import resources as q
from graph.context import Context, Info
from graph.errors import ErrorCode, bad_input
from graph.pagination import CursorCodec, fingerprint, paging
from graph.types.arguments import After, Before, First, Last
from graph.types.resources import (
    Resource,
    ResourceConnection,
    ResourceEdge,
    ResourceFilter,
)

LIST_NAME = "resources"


def resource_query(
    ctx: Context, search: str | None, filter: ResourceFilter | None
) -> q.ResourceQuery:
    """Validate the catalogue arguments; SEARCH_TOO_LONG past the configured length."""
    if search is not None and len(search) > ctx.settings.max_search_length:
        raise bad_input(
            f"`search` is limited to {ctx.settings.max_search_length} characters.",
            ErrorCode.SEARCH_TOO_LONG,
            argument="search",
        )
    terms = q.search_terms(search)
    if filter is None:
        return q.ResourceQuery(terms=terms)

    def values(items: list[Any] | None) -> tuple[str, ...] | None:
        return tuple(sorted({str(i) for i in items})) if items is not None else None

    return q.ResourceQuery(
        terms=terms,
        types=values(filter.types),
        products=values(filter.products),
        audiences=values(filter.audiences),
    )


@strawberry.type
class ResourceQueries:
    @strawberry.field(
        description='Links popular with partners ("Quick links"), most popular first (at most '
        "max_page_size, 100 by default). Help "
        "resources are the same for every partner; any administrator may read them."
    )
    async def quick_links(self, info: Info) -> list[Resource]:
        async with info.context.db() as session:
            rows = await q.quick_links(session, limit=info.context.settings.max_page_size)
        return [Resource.from_row(r) for r in rows]

    @strawberry.field(
        description='Resources we want to show ("Featured resources"), most popular first (at '
        "most max_page_size, 100 by default). "
        "Any administrator may read them."
    )
    async def featured_resources(self, info: Info) -> list[Resource]:
        async with info.context.db() as session:
            rows = await q.featured_resources(session, limit=info.context.settings.max_page_size)
        return [Resource.from_row(r) for r in rows]

    @strawberry.field(
        description="All resources, searched and filtered, keyset-paged (`first` 1-100). "
        "`search` (up to 200 characters) is full text over title, summary and body: every word "
        "must match (as a word prefix, English stemming; common words such as 'the' or 'how' "
        "are ignored, and punctuation or operators are treated as spaces); results come most "
        "relevant first, a word in the title counting most. With nothing searchable the list "
        "is ordered by popularity, then title. Any administrator may read resources."
    )
    async def resources(
        self,
        info: Info,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Words that must all match title, summary or body (as word "
                "prefixes); up to 200 characters (longer: SEARCH_TOO_LONG)."
            ),
        ] = None,
        filter: Annotated[
            ResourceFilter | None,
            strawberry.argument(description="Only resources matching every condition given."),
        ] = None,
        first: First = 20,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> ResourceConnection:
        ctx = info.context
        paged = paging(info, first, after, last, before, ctx.settings.max_page_size)
        query = resource_query(ctx, search, filter)
        codec = CursorCodec(ctx.services.secret)
        fp = fingerprint(repr(query))
        after_key = (
            codec.decode(paged.cursor, LIST_NAME, fp, q.key_types(query))
            if paged.cursor is not None
            else None
        )

        async def count() -> int:
            async with ctx.db() as session:
                return await q.count_resources(session, query=query)

        async with ctx.db() as session:
            page = await q.resources_page(
                session, query=query, first=paged.size, after=after_key, backward=paged.backward
            )
        nodes = [Resource.from_row(r) for r in paged.arrange(page.rows)]
        cursors = [codec.encode(LIST_NAME, fp, key) for key in paged.arrange(page.keys)]
        return ResourceConnection(
            edges=[ResourceEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)],
            nodes=nodes,
            page_info=paged.page_info(cursors, page.has_next),
            count=count,
        )
