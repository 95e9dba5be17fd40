"""Webhooks: endpoints (``webhook manage``), deliveries (``webhook read``).

Webhook objects are partner-wide: an endpoint receives the events of every customer of the
partner, so both rights need the ``all`` scope; a role holding them only for its assigned
customers is refused (reads answer as for a role without them).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from db.scope import Scope
from db.webhooks import endpoints as q
from db.webhooks.endpoints import DeliveryQuery
from graph.auth.permissions import Act, Obj, scope_or_none
from graph.context import Context, Info
from graph.errors import forbidden
from graph.ids import pk_of
from graph.pagination import CursorCodec, PageInfo, check_page_size, fingerprint
from graph.types.webhooks import (
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookDeliveryFilter,
    WebhookEndpoint,
)

LIST_NAME = "webhookDeliveries"
DESCRIPTION_MAX = 500


def webhook_scope(ctx: Context, act: Act) -> Scope | None:
    """The caller's partner-wide scope for ``act`` on webhooks; None when refused."""
    scope = scope_or_none(ctx, Obj.WEBHOOK, act)
    return scope if scope is not None and scope.assigned_admin_id is None else None


def _read(ctx: Context) -> Scope:
    scope = webhook_scope(ctx, Act.READ)
    if scope is None:
        raise forbidden("Your role may not read webhook objects.")
    return scope


async def webhook_endpoint_node(ctx: Context, pk: int) -> WebhookEndpoint | None:
    scope = webhook_scope(ctx, Act.READ)
    if scope is None:
        return None
    async with ctx.db() as session:
        rows = await q.endpoints_by_ids(session, partner_id=scope.partner_id, ids=[pk])
    return WebhookEndpoint.from_row(rows[pk]) if pk in rows else None


async def webhook_delivery_node(ctx: Context, pk: int) -> WebhookDelivery | None:
    scope = webhook_scope(ctx, Act.READ)
    if scope is None:
        return None
    async with ctx.db() as session:
        rows = await q.deliveries_by_ids(session, partner_id=scope.partner_id, ids=[pk])
    return WebhookDelivery.from_row(rows[pk]) if pk in rows else None


def _delivery_query(f: WebhookDeliveryFilter | None) -> DeliveryQuery:
    if f is None:
        return DeliveryQuery()
    return DeliveryQuery(
        endpoint_id=pk_of(f.endpoint_id, "WebhookEndpoint", "filter.endpointId")
        if f.endpoint_id
        else None,
        event=f.event.value if f.event is not None else None,
        status=f.status.value if f.status is not None else None,
    )


@strawberry.type
class WebhookQueries:
    @strawberry.field(
        description="The partner's webhook endpoints (at most 20), oldest first. Needs the "
        "webhook read permission."
    )
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        ctx = info.context
        scope = _read(ctx)
        async with ctx.db() as session:
            rows = await q.endpoints_of_partner(session, partner_id=scope.partner_id)
        # At most the setting's number (the bound the query cost prices the list by).
        return [WebhookEndpoint.from_row(r) for r in rows[: ctx.settings.max_webhook_endpoints]]

    @strawberry.field(
        description="Deliveries of the partner's events to its endpoints, newest first, "
        "filtered and keyset-paged (`first` 1-100). Needs the webhook read permission."
    )
    async def webhook_deliveries(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description="Page size, 1-100 (default 20).")
        ] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(description="endCursor of the previous page of this query."),
        ] = None,
        filter: Annotated[
            WebhookDeliveryFilter | None,
            strawberry.argument(description="Only deliveries matching this."),
        ] = None,
    ) -> WebhookDeliveryConnection:
        ctx = info.context
        scope = _read(ctx)
        check_page_size(first, ctx.settings.max_page_size)
        query = _delivery_query(filter)
        codec = CursorCodec(ctx.services.secret)
        fp = fingerprint(scope.partner_id, repr(query))
        before_id = codec.decode(after, LIST_NAME, fp, ("int",))[0] if after else None

        async def count() -> int:
            async with ctx.db() as session:
                return await q.count_deliveries(session, partner_id=scope.partner_id, query=query)

        async with ctx.db() as session:
            rows, has_next = await q.deliveries_page(
                session, partner_id=scope.partner_id, query=query, first=first, before_id=before_id
            )
        nodes = [WebhookDelivery.from_row(r) for r in rows]
        cursors = [codec.encode(LIST_NAME, fp, (r.id,)) for r in rows]
        return WebhookDeliveryConnection(
            edges=[
                WebhookDeliveryEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)
            ],
            nodes=nodes,
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=after is not None,
                start_cursor=cursors[0] if cursors else None,
                end_cursor=cursors[-1] if cursors else None,
            ),
            count=count,
        )
