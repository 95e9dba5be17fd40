"""Relay ``node(id:)``: any object by global ID, through the same door as every lookup."""

from __future__ import annotations

import strawberry

from db.queries import admins as admin_q
from db.queries import customer_children as kids
from db.queries import customers as customer_q
from db.queries.own_rows import partner_row
from db.queries.tags import tags_by_ids
from graph.auth.permissions import Act, Obj, scope_or_none
from graph.context import Info
from graph.ids import from_global_id
from graph.resolvers.customers import customer_by_pk
from graph.resolvers.helpdesk import helpdesk_case_node
from graph.resolvers.webhooks import webhook_delivery_node, webhook_endpoint_node
from graph.types.admins import Admin, Partner
from graph.types.arguments import NodeId
from graph.types.common import Node
from graph.types.customers import Subscription
from graph.types.tags import Tag


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by global ID; null when it is missing or not visible to the caller."
    )
    async def node(self, info: Info, id: NodeId) -> Node | None:
        ctx = info.context
        type_name, pk = from_global_id(id)
        if type_name == "Customer":
            return await customer_by_pk(ctx, pk)
        if type_name == "Subscription":
            scope = scope_or_none(ctx, Obj.SUBSCRIPTION, Act.READ)
            if scope is None:
                return None
            async with ctx.db() as session:
                subs = await kids.subscriptions_by_ids(session, scope=scope, ids=[pk])
            if pk not in subs:
                return None
            # The parent's rule too: a subscription of a customer the caller cannot see is
            # not found, whatever the caller may do to subscriptions.
            seen = scope_or_none(ctx, Obj.CUSTOMER, Act.READ)
            if seen is None:
                return None
            if seen.assigned_admin_id not in (None, scope.assigned_admin_id):
                customer = subs[pk].customer_id
                async with ctx.db() as session:
                    if not await customer_q.customers_by_ids(session, scope=seen, ids=[customer]):
                        return None
            return Subscription.from_row(subs[pk])
        if type_name == "Tag":
            scope = scope_or_none(ctx, Obj.TAG, Act.READ)
            if scope is None:
                return None
            async with ctx.db() as session:
                tags = await tags_by_ids(session, partner_id=scope.partner_id, ids=[pk])
            return Tag.from_row(tags[pk]) if pk in tags else None
        if type_name == "Admin":
            scope = scope_or_none(ctx, Obj.ADMIN, Act.READ)
            if scope is None:
                return None
            async with ctx.db() as session:
                admins = await admin_q.admin_rows_by_ids(
                    session, partner_id=scope.partner_id, ids=[pk]
                )
            return Admin.from_row(admins[pk]) if pk in admins else None
        if type_name == "HelpdeskCase":
            return await helpdesk_case_node(ctx, pk)
        if type_name == "WebhookEndpoint":
            return await webhook_endpoint_node(ctx, pk)
        if type_name == "WebhookDelivery":
            return await webhook_delivery_node(ctx, pk)
        if type_name == "Partner" and pk == ctx.principal.partner_id:
            async with ctx.db() as session:
                row = await partner_row(session, partner_id=pk)
            # None when deleted (a provisional request then settles its lookup)
            return Partner.from_row(row) if row is not None else None
        return None
