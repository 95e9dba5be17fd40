"""Webhooks: endpoints a partner registers, and the deliveries of events to them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry

from db.webhooks.events import TEST_EVENT, WebhookEventName
from graph.ids import to_global_id
from graph.mutations import UserError
from graph.pagination import PageInfo
from graph.types.common import Node

__all__ = [
    "CreateWebhookEndpointInput",
    "CreateWebhookEndpointPayload",
    "DeleteWebhookEndpointInput",
    "DeleteWebhookEndpointPayload",
    "RedeliverWebhookInput",
    "RedeliverWebhookPayload",
    "RotateWebhookSecretInput",
    "RotateWebhookSecretPayload",
    "SendTestWebhookInput",
    "SendTestWebhookPayload",
    "UpdateWebhookEndpointInput",
    "UpdateWebhookEndpointPayload",
    "WebhookDelivery",
    "WebhookDeliveryConnection",
    "WebhookDeliveryEdge",
    "WebhookDeliveryFilter",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "WebhookEventName",
]

strawberry.enum(
    WebhookEventName,
    name="WebhookEvent",
    description="An event an endpoint can subscribe to. On the wire its `type` is "
    "customer.status_changed, subscription.changed, trial.started, trial.extended, "
    "trial.converted, order.created, customer.tags_changed or helpdesk_case.updated.",
)


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@strawberry.type(
    description="A URL of the partner's systems that receives its events, signed per the "
    "Standard Webhooks specification."
)
class WebhookEndpoint(Node):
    url: str = strawberry.field(description="Where events are POSTed (https).")
    description: str = strawberry.field(description="What it is for (0-500 characters).")
    events: list[WebhookEventName] = strawberry.field(description="The events it receives.")
    active: bool = strawberry.field(
        description="False when turned off, or disabled after failing for 24 hours."
    )
    created_at: datetime = strawberry.field(description="When it was registered.")
    disabled_reason: str | None = strawberry.field(
        description="Why deliveries were stopped, when they were."
    )

    @classmethod
    def from_row(cls, row: Any) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", row.id)),
            url=row.url,
            description=row.description,
            events=[WebhookEventName(e) for e in row.events.split(",") if e],
            active=bool(row.active),
            created_at=row.created_at,
            disabled_reason=row.disabled_reason,
        )


@strawberry.type(description="One event sent (or to be sent) to one endpoint.")
class WebhookDelivery(Node):
    event_id: str = strawberry.field(
        description="The message id, sent as `webhook-id`: the same on every retry and "
        "redelivery, so receivers can deduplicate."
    )
    event: WebhookEventName | None = strawberry.field(
        description="The event; null for a test message (sendTestWebhook)."
    )
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint it goes to.")
    status: WebhookDeliveryStatus = strawberry.field(
        description="PENDING (to be sent or retried), SUCCEEDED (a 2xx answer), FAILED "
        "(retries gave up after 24 hours)."
    )
    attempts: int = strawberry.field(description="Attempts made so far.")
    last_attempt_at: datetime | None = strawberry.field(description="When it was last tried.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When it will be tried next, while PENDING."
    )
    response_status: int | None = strawberry.field(
        description="HTTP status of the last answer; null when there was none (timeout, "
        "refused connection, forbidden address)."
    )
    response_body: str | None = strawberry.field(
        description="The start of the last answer (at most 1 KB)."
    )
    error: str | None = strawberry.field(description="Why the last attempt had no answer.")
    payload: str = strawberry.field(
        description="The JSON body exactly as signed and sent: {type, timestamp, data}."
    )

    @classmethod
    def from_row(cls, row: Any) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", row.id)),
            event_id=row.message_id,
            event=None if row.event == TEST_EVENT else WebhookEventName(row.event),
            endpoint_id=strawberry.ID(to_global_id("WebhookEndpoint", row.endpoint_id)),
            status=WebhookDeliveryStatus(row.status),
            attempts=row.attempts,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at,
            response_status=row.response_status,
            response_body=row.response_body,
            error=row.error,
            payload=row.body,
        )


@strawberry.type(description="A webhook delivery in a list, with its cursor.")
class WebhookDeliveryEdge:
    node: WebhookDelivery = strawberry.field(description="The delivery.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after it.")


@strawberry.type(description="A keyset page of webhook deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="Deliveries with cursors.")
    nodes: list[WebhookDelivery] = strawberry.field(description="Deliveries of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Deliveries matching the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.input(description="Delivery filters; fields combine with AND.")
class WebhookDeliveryFilter:
    endpoint_id: strawberry.ID | None = strawberry.field(
        default=None, description="To this endpoint."
    )
    event: WebhookEventName | None = strawberry.field(default=None, description="Of this event.")
    status: WebhookDeliveryStatus | None = strawberry.field(
        default=None, description="In this status."
    )


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https URL (at most 2,000 characters).")
    events: list[WebhookEventName] = strawberry.field(description="At least one event.")
    description: str = strawberry.field(default="", description="What it is for.")


@strawberry.input(description="Changes to an endpoint; omitted fields stay as they are.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")
    url: str | None = strawberry.field(default=None, description="A new URL.")
    events: list[WebhookEventName] | None = strawberry.field(
        default=None, description="The new set of events."
    )
    description: str | None = strawberry.field(default=None, description="A new description.")
    active: bool | None = strawberry.field(
        default=None,
        description="Turn deliveries off, or on again (which clears the disabled reason).",
    )


@strawberry.input(description="The endpoint to delete (its deliveries go with it).")
class DeleteWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")


@strawberry.input(description="The endpoint whose signing secret is replaced.")
class RotateWebhookSecretInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")


@strawberry.input(description="The delivery to send again.")
class RedeliverWebhookInput:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery.")


@strawberry.input(description="The endpoint to send a test message to.")
class SendTestWebhookInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint.")


@strawberry.type(description="Result of createWebhookEndpoint.")
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(description="The new endpoint.")
    secret: str | None = strawberry.field(
        description="Its signing secret (whsec_...): shown this once, keep it."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of updateWebhookEndpoint.")
class UpdateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of deleteWebhookEndpoint.")
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = strawberry.field(description="The deleted endpoint's ID.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of rotateWebhookSecret.")
class RotateWebhookSecretPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint.")
    secret: str | None = strawberry.field(
        description="The new signing secret (whsec_...): shown this once; the old one stops "
        "signing at once."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of redeliverWebhook.")
class RedeliverWebhookPayload:
    delivery: WebhookDelivery | None = strawberry.field(
        description="The new delivery of the same message (same eventId), PENDING."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of sendTestWebhook.")
class SendTestWebhookPayload:
    delivery: WebhookDelivery | None = strawberry.field(
        description="The test delivery (type webhook.test), PENDING until the delivery loop "
        "sends it."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")
