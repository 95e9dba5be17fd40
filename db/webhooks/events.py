"""The events a partner can subscribe to, and how each is named on the wire."""

from __future__ import annotations

import base64
from enum import StrEnum


class WebhookEventName(StrEnum):
    CUSTOMER_STATUS_CHANGED = "CUSTOMER_STATUS_CHANGED"
    SUBSCRIPTION_CHANGED = "SUBSCRIPTION_CHANGED"
    TRIAL_STARTED = "TRIAL_STARTED"
    TRIAL_EXTENDED = "TRIAL_EXTENDED"
    TRIAL_CONVERTED = "TRIAL_CONVERTED"
    ORDER_CREATED = "ORDER_CREATED"
    CUSTOMER_TAGS_CHANGED = "CUSTOMER_TAGS_CHANGED"
    HELPDESK_CASE_UPDATED = "HELPDESK_CASE_UPDATED"


# The body's ``type``: ``customer.status_changed`` and so on.
WIRE_TYPES: dict[str, str] = {
    WebhookEventName.CUSTOMER_STATUS_CHANGED: "customer.status_changed",
    WebhookEventName.SUBSCRIPTION_CHANGED: "subscription.changed",
    WebhookEventName.TRIAL_STARTED: "trial.started",
    WebhookEventName.TRIAL_EXTENDED: "trial.extended",
    WebhookEventName.TRIAL_CONVERTED: "trial.converted",
    WebhookEventName.ORDER_CREATED: "order.created",
    WebhookEventName.CUSTOMER_TAGS_CHANGED: "customer.tags_changed",
    WebhookEventName.HELPDESK_CASE_UPDATED: "helpdesk_case.updated",
}
# A test message (``sendTestWebhook``): not an event anyone subscribes to.
TEST_EVENT = "TEST"
TEST_TYPE = "webhook.test"


def global_id(type_name: str, pk: int) -> str:
    """The API's global ID of an object (``graph.ids.to_global_id``: base64url of
    ``Type:pk``, unpadded); payloads carry the ids the partner's API calls take."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")
