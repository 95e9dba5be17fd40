"""Role matrix rows of the webhook fields (issue 20), run by the same machinery as
``tests/test_role_matrix.py`` (whose completeness check counts these rows too).

Webhooks are partner-wide: ``webhook read`` (full and read-only admins) and ``webhook manage``
(full admins) with the ``all`` scope. Every other role is refused lists and mutations
(``FORBIDDEN``) and finds no endpoint or delivery by ``node`` (hidden, as a missing one).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import data_of, post_graphql
from tests.test_role_matrix import (
    EMAILS,
    NODE,
    ROLES,
    A,
    F,
    H,
    Row,
    Target,
    World,
    build_world,
    check_cell,
    m,
    q,
)

URL = "https://93.184.215.14/hook"  # a public address literal: no name to resolve


async def endpoint(w: World) -> str:
    create = (
        "mutation C($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) "
        "{ endpoint { id } userErrors { code } } }"
    )
    variables = {"input": {"url": f"{URL}/{w.n()}", "events": ["ORDER_CREATED"]}}
    body = await post_graphql(w.api, create, variables, as_=EMAILS["FULL_ADMIN"])
    payload = data_of(body)["createWebhookEndpoint"]
    assert payload["userErrors"] == [], payload
    return str(payload["endpoint"]["id"])


async def delivery(w: World) -> str:
    test = (
        "mutation T($input: SendTestWebhookInput!) { sendTestWebhook(input: $input) "
        "{ delivery { id } userErrors { code } } }"
    )
    body = await post_graphql(
        w.api, test, {"input": {"endpointId": await endpoint(w)}}, as_=EMAILS["FULL_ADMIN"]
    )
    return str(data_of(body)["sendTestWebhook"]["delivery"]["id"])


async def listed_endpoint(w: World, t: Target) -> dict[str, Any]:
    await endpoint(w)
    return {}


async def endpoint_vars(w: World, t: Target) -> dict[str, Any]:
    w.target = await endpoint(w)
    return {"id": w.target}


async def delivery_vars(w: World, t: Target) -> dict[str, Any]:
    w.target = await delivery(w)
    return {"id": w.target}


async def new_endpoint(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"url": f"{URL}/new{w.n()}", "events": ["TRIAL_STARTED"]}}


async def endpoint_input(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"id": await endpoint(w)}}


async def endpoint_change(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"id": await endpoint(w), "description": f"CRM {w.n()}"}}


async def message_input(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"endpointId": await endpoint(w)}}


async def redelivery(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"deliveryId": await delivery(w)}}


DELIVERIES = "query { webhookDeliveries(first: 5) { totalCount nodes { id } } }"

# fmt: off
# Columns: FULL PARTNER READ_ONLY SALES TAG_CURATOR CUSTOMER_VIEWER ADMIN_MANAGER
WEBHOOK_ROWS: list[Row] = [
    q("webhookEndpoints", "query { webhookEndpoints { id } }", listed_endpoint,
                                                                  (A, F, A, F, F, F, F)),
    q("webhookDeliveries", DELIVERIES, listed_endpoint,           (A, F, A, F, F, F, F)),
    q("node(WebhookEndpoint)", NODE, endpoint_vars,               (A, H, A, H, H, H, H)),
    q("node(WebhookDelivery)", NODE, delivery_vars,               (A, H, A, H, H, H, H)),
    m("createWebhookEndpoint", "CreateWebhookEndpointInput", "endpoint { id } secret",
      new_endpoint,                                               (A, F, F, F, F, F, F)),
    m("updateWebhookEndpoint", "UpdateWebhookEndpointInput", "endpoint { id }", endpoint_change,
                                                                  (A, F, F, F, F, F, F)),
    m("deleteWebhookEndpoint", "DeleteWebhookEndpointInput", "deletedId", endpoint_input,
                                                                  (A, F, F, F, F, F, F)),
    m("rotateWebhookSecret", "RotateWebhookSecretInput", "secret", endpoint_input,
                                                                  (A, F, F, F, F, F, F)),
    m("sendTestWebhook", "SendTestWebhookInput", "delivery { id }", message_input,
                                                                  (A, F, F, F, F, F, F)),
    m("redeliverWebhook", "RedeliverWebhookInput", "delivery { id }", redelivery,
                                                                  (A, F, F, F, F, F, F)),
]
# fmt: on


@pytest.mark.parametrize("role", ROLES)
async def test_webhook_role_matrix(api: Api, role: str) -> None:
    # given
    w = await build_world(api, role)

    # when
    problems = []
    for row in WEBHOOK_ROWS:
        problem = await check_cell(w, row)
        if problem is not None:
            problems.append(f"{row.label} as {role}, expected {row.outcome(role)}: {problem}")

    # then
    assert not problems, "\n".join(problems)


async def test_an_assigned_scope_is_not_enough(api: Api) -> None:
    """A custom role given webhook read and manage for its assigned customers only is refused:
    an endpoint receives every customer's events."""
    from tests.authz_support import create_admin, create_role

    w = await build_world(api, "FULL_ADMIN")
    rules = [("webhook", "read", "assigned"), ("webhook", "manage", "assigned")]
    body = await create_role(api, EMAILS["FULL_ADMIN"], "HOOK_NARROW", rules)
    assert body["data"]["createRole"]["userErrors"] == [], body
    await create_admin(api, EMAILS["FULL_ADMIN"], "narrow@acme.example", "HOOK_NARROW")
    await endpoint(w)
    listed = await post_graphql(api, "query { webhookEndpoints { id } }", as_="narrow@acme.example")
    assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    create = (
        "mutation C($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) "
        "{ endpoint { id } userErrors { code } } }"
    )
    body = await post_graphql(
        api,
        create,
        {"input": {"url": URL, "events": ["ORDER_CREATED"]}},
        as_="narrow@acme.example",
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
