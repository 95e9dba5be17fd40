"""The customer directory: ``customers``, ``customer`` and ``tags``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import strawberry

from db.queries import customer_filters, customer_pages
from db.queries.tags import tags_of_partner
from db.scope import plan_scope
from graph.auth.permissions import Act, Obj, require
from graph.context import Context, Info
from graph.cost_model import MAX_PARTNER_TAGS
from graph.detail import customer_with_relations, page_plans, page_relations
from graph.errors import ErrorCode, bad_input
from graph.ids import pk_of
from graph.pagination import CursorCodec, Paging, fingerprint, paging
from graph.prefetch import Picked, below, below_each
from graph.types.arguments import After, Before, First, Last
from graph.types.customers import (
    Customer,
    CustomerConnection,
    CustomerEdge,
    CustomerFilter,
    CustomerOrder,
)
from graph.types.tags import Tag


def customer_query(
    ctx: Context, filter: CustomerFilter | None, search: str | None
) -> customer_filters.CustomerQuery:
    """Validate the directory arguments shared by the API and the CSV export."""
    if search is not None:
        if len(search) > ctx.settings.max_search_length:
            raise bad_input(
                f"`search` is limited to {ctx.settings.max_search_length} characters.",
                ErrorCode.SEARCH_TOO_LONG,
                argument="search",
            )
        search = search.strip() or None
    if filter is None:
        return customer_filters.CustomerQuery(search=search)
    tag_ids = None
    if filter.tag_ids is not None:
        tag_ids = tuple(sorted({pk_of(t, "Tag", "filter.tagIds") for t in filter.tag_ids}))
    return customer_filters.CustomerQuery(
        managed_by=filter.managed_by.value if filter.managed_by else None,
        products=tuple(sorted({p.value for p in filter.products}))
        if filter.products is not None
        else None,
        statuses=tuple(sorted({s.value for s in filter.statuses}))
        if filter.statuses is not None
        else None,
        subscription_kind=filter.subscription_type.value if filter.subscription_type else None,
        tag_ids=tag_ids,
        search=search,
    )


async def customers_connection(
    ctx: Context,
    *,
    page_of: Paging,
    filter: CustomerFilter | None,
    search: str | None,
    order_by: Any,
    selection: Sequence[Picked] = (),
    edges: bool = True,
) -> CustomerConnection:
    """A page of customers; the relationships ``selection`` asks for are loaded with it. Without
    ``edges`` (the document does not select them) the connection's edges are left empty."""
    scope = require(ctx, Obj.CUSTOMER, Act.READ)
    query = customer_query(ctx, filter, search)
    order = customer_pages.CustomerOrder(order_by.value)
    codec = CursorCodec(ctx.services.secret)
    query_fp = fingerprint(scope.key, order.value, query.__repr__())
    # An empty string is not a cursor this API hands out: refuse it rather than restart at page 1.
    after_key = (
        codec.decode(page_of.cursor, "customers", query_fp, customer_pages.order_key_types(order))
        if page_of.cursor is not None
        else None
    )

    async with ctx.db() as session:
        scope = await plan_scope(session, scope)

    async def count() -> int:
        async with ctx.db() as session:
            return await customer_filters.count_customers(
                session, scope=scope, query=query, now=ctx.now
            )

    plans = page_plans(ctx, selection)
    async with ctx.db() as session:
        page = await customer_pages.customers_page(
            session,
            scope=scope,
            query=query,
            order=order,
            now=ctx.now,
            first=page_of.size,
            after=after_key,
            backward=page_of.backward,
            parts=plans[0],
        )
    nodes = [Customer.from_row(row) for row in page_of.arrange(page.rows)]
    await page_relations(ctx, scope, nodes, selection, plans, page.details)
    # A cursor is signed (HMAC): only the ones the response can show are made.
    ordered = page_of.arrange(page.keys)
    keys = ordered if edges or len(ordered) < 3 else [ordered[0], ordered[-1]]
    cursors = [codec.encode("customers", query_fp, key) for key in keys]
    return CustomerConnection(
        edges=[CustomerEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)]
        if edges
        else [],
        nodes=nodes,
        page_info=page_of.page_info(cursors, page.has_next),
        count=count,
    )


async def customer_by_pk(
    ctx: Context, pk: int, selection: Sequence[Picked] = ()
) -> Customer | None:
    """The customer and the relationships ``selection`` asks for, in one statement
    (``graph.detail``)."""
    return await customer_with_relations(ctx, pk, selection)


@strawberry.type
class CustomerQueries:
    @strawberry.field(
        description="The partner's customers the caller may see: filtered, searched (name, "
        "case-insensitive substring), ordered and keyset-paged (`first` 1-100)."
    )
    async def customers(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        filter: Annotated[
            CustomerFilter | None,
            strawberry.argument(
                description="Only customers matching every condition given (none: all the "
                "caller may see)."
            ),
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Text the customer's name contains, any case; up to 200 "
                "characters (longer: SEARCH_TOO_LONG); blank means no search."
            ),
        ] = None,
        order_by: Annotated[
            CustomerOrder,
            strawberry.argument(description="Order of the list; ties by internal id."),
        ] = CustomerOrder.NAME_ASC,
        last: Last = None,
        before: Before = None,
    ) -> CustomerConnection:
        ctx = info.context
        return await customers_connection(
            ctx,
            page_of=paging(info, first, after, last, before, ctx.settings.max_page_size),
            filter=filter,
            search=search,
            order_by=order_by,
            selection=below_each(info, ("nodes",), ("edges", "node")),
            edges=any(f.name == "edges" for f in below(info)),
        )

    @strawberry.field(description="One customer by global ID; null when missing or not visible.")
    async def customer(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description="The customer's `id`; the ID of another type is refused (INVALID_ID)."
            ),
        ],
    ) -> Customer | None:
        return await customer_by_pk(info.context, pk_of(id, "Customer"), below(info))

    @strawberry.field(
        description="The partner's tags, by name (the first 500; all admins see tags)."
    )
    async def tags(self, info: Info) -> list[Tag]:
        ctx = info.context
        scope = require(ctx, Obj.TAG, Act.READ)
        async with ctx.db() as session:
            rows = await tags_of_partner(
                session, partner_id=scope.partner_id, limit=MAX_PARTNER_TAGS
            )
        return [Tag.from_row(r) for r in rows]
