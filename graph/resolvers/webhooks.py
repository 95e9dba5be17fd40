"""Webhooks: endpoints (``webhook manage``), deliveries (``webhook read``).

Webhook objects are partner-wide: an endpoint receives the events of every customer of the
partner, so both rights need the ``all`` scope; a role holding them only for its assigned
customers is refused (reads answer as for a role without them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import strawberry

from db.queries.admin_management import lock_partner
from db.scope import Scope
from db.webhooks import endpoints as q
from db.webhooks.endpoints import DeliveryQuery
from db.webhooks.events import TEST_EVENT
from db.webhooks.secrets import new_secret, seal
from graph.auth.permissions import Act, Obj, scope_or_none
from graph.context import Context, Info
from graph.errors import forbidden
from graph.ids import pk_of, to_global_id
from graph.mutations import Change, UserError, UserErrors, input_pk, run_mutation, user_error
from graph.pagination import CursorCodec, PageInfo, check_page_size, fingerprint
from graph.types.webhooks import (
    CreateWebhookEndpointInput,
    CreateWebhookEndpointPayload,
    DeleteWebhookEndpointInput,
    DeleteWebhookEndpointPayload,
    RedeliverWebhookInput,
    RedeliverWebhookPayload,
    RotateWebhookSecretInput,
    RotateWebhookSecretPayload,
    SendTestWebhookInput,
    SendTestWebhookPayload,
    UpdateWebhookEndpointInput,
    UpdateWebhookEndpointPayload,
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookDeliveryFilter,
    WebhookEndpoint,
    WebhookEventName,
)
from graph.webhooks.safety import UnsafeUrl, check_url

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


# --- mutations -------------------------------------------------------------------------------


def _events(events: Sequence[WebhookEventName]) -> list[str]:
    if not events:
        raise user_error("EVENTS_REQUIRED", "Subscribe to at least one event.", "events")
    return sorted({e.value for e in events})


def _description(value: str) -> str:
    text = value.strip()
    if len(text) > DESCRIPTION_MAX:
        raise user_error(
            "DESCRIPTION_TOO_LONG",
            f"A description is at most {DESCRIPTION_MAX} characters.",
            "description",
        )
    return text


async def _url_problem(ctx: Context, url: str | None) -> UserErrors | None:
    """What is wrong with ``url`` (resolved before the transaction, and only for a caller
    allowed to manage webhooks: nobody else makes the server resolve names)."""
    if url is None or webhook_scope(ctx, Act.MANAGE) is None:
        return None
    try:
        await check_url(url.strip(), ctx.settings)
    except UnsafeUrl as e:
        return user_error(e.code, e.message, "url")
    return None


def _raise(*problems: UserErrors | None) -> None:
    errors: list[UserError] = [e for p in problems if p is not None for e in p.errors]
    if errors:
        raise UserErrors(*errors)


def _checked(call: Any) -> UserErrors | None:
    try:
        call()
    except UserErrors as e:
        return e
    return None


def _view(row: Any) -> dict[str, Any]:
    return {
        "url": row.url,
        "description": row.description,
        "events": row.events.split(","),
        "active": bool(row.active),
    }


async def _endpoint(c: Change, raw_id: str, field: str = "id") -> Any:
    pk = input_pk(raw_id, "WebhookEndpoint", field)
    rows = await q.endpoints_by_ids(c.session, partner_id=c.scope.partner_id, ids=[pk], lock=True)
    if pk not in rows:
        raise user_error("NOT_FOUND", "No such webhook endpoint.", field)
    return rows[pk]


async def _create(c: Change, input: CreateWebhookEndpointInput) -> CreateWebhookEndpointPayload:
    ctx, session, partner_id = c.ctx, c.session, c.scope.partner_id
    await lock_partner(session, partner_id=c.scope.partner_id)
    limit = ctx.settings.max_webhook_endpoints
    if await q.count_endpoints(session, partner_id=partner_id) >= limit:
        raise user_error(
            "TOO_MANY_ENDPOINTS", f"A partner has at most {limit} webhook endpoints.", "url"
        )
    secret = new_secret()
    row = await q.create_endpoint(
        session,
        partner_id=partner_id,
        url=input.url.strip(),
        description=_description(input.description),
        events=_events(input.events),
        sealed_secret=seal(secret, ctx.services.secret),
        now=ctx.now,
    )
    c.record("webhookEndpoint", to_global_id("WebhookEndpoint", row.id), after=_view(row))
    return CreateWebhookEndpointPayload(
        endpoint=WebhookEndpoint.from_row(row), secret=secret, user_errors=[]
    )


async def _update(c: Change, input: UpdateWebhookEndpointInput) -> UpdateWebhookEndpointPayload:
    row = await _endpoint(c, input.id)
    values: dict[str, Any] = {}
    if input.url is not None and input.url.strip() != row.url:
        values["url"] = input.url.strip()
    if input.events is not None:
        events = ",".join(_events(input.events))
        if events != row.events:
            values["events"] = events
    if input.description is not None:
        description = _description(input.description)
        if description != row.description:
            values["description"] = description
    if input.active is not None and input.active != bool(row.active):
        values["active"] = input.active
    if input.active and row.disabled_reason is not None:
        values.update(q.reenabled_values())
    gid = to_global_id("WebhookEndpoint", row.id)
    if c.record_update("webhookEndpoint", gid, row, values):
        row = await q.update_endpoint(
            c.session, partner_id=c.scope.partner_id, endpoint_id=row.id, values=values
        )
    return UpdateWebhookEndpointPayload(endpoint=WebhookEndpoint.from_row(row), user_errors=[])


async def _delete(c: Change, input: DeleteWebhookEndpointInput) -> DeleteWebhookEndpointPayload:
    row = await _endpoint(c, input.id)
    await q.delete_endpoint(c.session, partner_id=c.scope.partner_id, endpoint_id=row.id)
    gid = to_global_id("WebhookEndpoint", row.id)
    c.record("webhookEndpoint", gid, before=_view(row))
    return DeleteWebhookEndpointPayload(deleted_id=strawberry.ID(gid), user_errors=[])


async def _rotate(c: Change, input: RotateWebhookSecretInput) -> RotateWebhookSecretPayload:
    row = await _endpoint(c, input.id)
    secret = new_secret()
    row = await q.update_endpoint(
        c.session,
        partner_id=c.scope.partner_id,
        endpoint_id=row.id,
        values={"secret": seal(secret, c.ctx.services.secret)},
    )
    # The audit entry says that the secret changed, never what it is.
    c.record(
        "webhookEndpoint", to_global_id("WebhookEndpoint", row.id), after={"secret": "rotated"}
    )
    return RotateWebhookSecretPayload(
        endpoint=WebhookEndpoint.from_row(row), secret=secret, user_errors=[]
    )


def _usable(row: Any, field: str) -> None:
    if not row.active:
        raise user_error("ENDPOINT_DISABLED", "The endpoint is disabled: enable it first.", field)


async def _redeliver(c: Change, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
    pk = input_pk(input.delivery_id, "WebhookDelivery", "deliveryId")
    session, partner_id = c.session, c.scope.partner_id
    found = await q.deliveries_by_ids(session, partner_id=partner_id, ids=[pk])
    if pk not in found:
        raise user_error("NOT_FOUND", "No such webhook delivery.", "deliveryId")
    delivery = found[pk]
    endpoint = (
        await q.endpoints_by_ids(session, partner_id=partner_id, ids=[delivery.endpoint_id])
    )[delivery.endpoint_id]
    _usable(endpoint, "deliveryId")
    created = await q.redeliver(session, delivery=delivery)
    row = (await q.deliveries_by_ids(session, partner_id=partner_id, ids=[created]))[created]
    c.record(
        "webhookDelivery",
        to_global_id("WebhookDelivery", created),
        after={"redelivers": to_global_id("WebhookDelivery", pk), "eventId": row.message_id},
    )
    return RedeliverWebhookPayload(delivery=WebhookDelivery.from_row(row), user_errors=[])


async def _test(c: Change, input: SendTestWebhookInput) -> SendTestWebhookPayload:
    endpoint = await _endpoint(c, input.endpoint_id, "endpointId")
    _usable(endpoint, "endpointId")
    created = await q.send_test(c.session, endpoint=endpoint, now=c.ctx.now)
    found = await q.deliveries_by_ids(c.session, partner_id=c.scope.partner_id, ids=[created])
    c.record(
        "webhookDelivery",
        to_global_id("WebhookDelivery", created),
        after={"event": TEST_EVENT, "endpointId": to_global_id("WebhookEndpoint", endpoint.id)},
    )
    return SendTestWebhookPayload(delivery=WebhookDelivery.from_row(found[created]), user_errors=[])


def _manage(ctx: Context, operation: str, work: Any, refused: Any, validate: Any = None) -> Any:
    return run_mutation(
        ctx,
        operation=operation,
        obj=Obj.WEBHOOK,
        act=Act.MANAGE,
        whole_partner=True,
        validate=validate,
        work=work,
        refused=refused,
    )


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Register an endpoint for some events; its signing secret is returned "
        "this once. Needs the webhook manage permission."
    )
    async def create_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            CreateWebhookEndpointInput,
            strawberry.argument(description="The URL, the events and an optional description."),
        ],
    ) -> CreateWebhookEndpointPayload:
        ctx = info.context
        url_problem = await _url_problem(ctx, input.url)

        def validate() -> None:
            _raise(
                url_problem,
                _checked(lambda: _events(input.events)),
                _checked(lambda: _description(input.description)),
            )

        return await _manage(
            ctx,
            "createWebhookEndpoint",
            lambda c: _create(c, input),
            lambda errors: CreateWebhookEndpointPayload(
                endpoint=None, secret=None, user_errors=errors
            ),
            validate,
        )

    @strawberry.mutation(
        description="Change an endpoint's URL, events, description, or turn it off or on "
        "again. Needs the webhook manage permission."
    )
    async def update_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            UpdateWebhookEndpointInput,
            strawberry.argument(description="The endpoint and what changes."),
        ],
    ) -> UpdateWebhookEndpointPayload:
        ctx = info.context
        url_problem = await _url_problem(ctx, input.url)

        def validate() -> None:
            _raise(
                url_problem,
                _checked(lambda: _events(input.events)) if input.events is not None else None,
                _checked(lambda: _description(input.description or "")),
            )

        return await _manage(
            ctx,
            "updateWebhookEndpoint",
            lambda c: _update(c, input),
            lambda errors: UpdateWebhookEndpointPayload(endpoint=None, user_errors=errors),
            validate,
        )

    @strawberry.mutation(
        description="Delete an endpoint and its deliveries. Needs the webhook manage permission."
    )
    async def delete_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            DeleteWebhookEndpointInput, strawberry.argument(description="The endpoint to delete.")
        ],
    ) -> DeleteWebhookEndpointPayload:
        return await _manage(
            info.context,
            "deleteWebhookEndpoint",
            lambda c: _delete(c, input),
            lambda errors: DeleteWebhookEndpointPayload(deleted_id=None, user_errors=errors),
        )

    @strawberry.mutation(
        description="Replace an endpoint's signing secret; the new one is returned this once. "
        "Needs the webhook manage permission."
    )
    async def rotate_webhook_secret(
        self,
        info: Info,
        input: Annotated[
            RotateWebhookSecretInput,
            strawberry.argument(description="The endpoint whose secret is replaced."),
        ],
    ) -> RotateWebhookSecretPayload:
        return await _manage(
            info.context,
            "rotateWebhookSecret",
            lambda c: _rotate(c, input),
            lambda errors: RotateWebhookSecretPayload(
                endpoint=None, secret=None, user_errors=errors
            ),
        )

    @strawberry.mutation(
        description="Send a delivered or failed message again (same eventId) to its endpoint. "
        "Needs the webhook manage permission."
    )
    async def redeliver_webhook(
        self,
        info: Info,
        input: Annotated[
            RedeliverWebhookInput, strawberry.argument(description="The delivery to send again.")
        ],
    ) -> RedeliverWebhookPayload:
        return await _manage(
            info.context,
            "redeliverWebhook",
            lambda c: _redeliver(c, input),
            lambda errors: RedeliverWebhookPayload(delivery=None, user_errors=errors),
        )

    @strawberry.mutation(
        description="Queue a webhook.test message to an endpoint. Needs the webhook manage "
        "permission."
    )
    async def send_test_webhook(
        self,
        info: Info,
        input: Annotated[
            SendTestWebhookInput, strawberry.argument(description="The endpoint to test.")
        ],
    ) -> SendTestWebhookPayload:
        return await _manage(
            info.context,
            "sendTestWebhook",
            lambda c: _test(c, input),
            lambda errors: SendTestWebhookPayload(delivery=None, user_errors=errors),
        )
