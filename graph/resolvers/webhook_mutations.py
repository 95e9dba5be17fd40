"""Webhook mutations (``webhook manage`` with the ``all`` scope): endpoints, their secrets,
redelivery and test messages, each through ``run_mutation``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import strawberry

from db.queries.admin_management import lock_partner
from db.webhooks import endpoints as q
from db.webhooks.events import TEST_EVENT
from db.webhooks.secrets import new_secret, seal
from graph.auth.permissions import Act, Obj
from graph.context import Context, Info
from graph.ids import to_global_id
from graph.mutations import Change, UserError, UserErrors, input_pk, run_mutation, user_error
from graph.resolvers.webhooks import webhook_scope
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
    WebhookEndpoint,
    WebhookEventName,
)
from graph.webhooks.safety import UnsafeUrl, check_url

DESCRIPTION_MAX = 500


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
