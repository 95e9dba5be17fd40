"""Attacks on the webhook fields (issue 20) as a hostile admin: a custom role that may read
webhooks but not manage them, NUL bytes and huge lists in the inputs, another partner's
cursors, and many aliases of the lists. Each refusal is coded and writes nothing; no 500."""

from __future__ import annotations

from sqlalchemy import func, select

from db.webhook_models import WebhookEndpoint
from tests.authz_support import create_admin, create_role
from tests.conftest import Api
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_role_matrix_webhooks import URL

FULL, OTHER, READER = "full@acme.example", "full@globex.example", "hooks@acme.example"
CREATE = (
    "mutation C($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) "
    "{ endpoint { id } secret userErrors { code field } } }"
)
TEST = (
    "mutation T($input: SendTestWebhookInput!) { sendTestWebhook(input: $input) "
    "{ delivery { id } userErrors { code } } }"
)
DELIVERIES = (
    "query D($after: String) { webhookDeliveries(first: 1, after: $after) "
    "{ nodes { id } pageInfo { endCursor } } }"
)


async def endpoints(api: Api) -> int:
    async with api.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0)


async def world(api: Api) -> None:
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, FULL, "FULL_ADMIN")
    await f.admin(globex, OTHER, "FULL_ADMIN")
    for email in (FULL, OTHER):
        await token_for(api, email)


async def test_a_role_that_reads_webhooks_cannot_manage_them(api: Api) -> None:
    await world(api)
    body = await create_role(api, FULL, "HOOK_READER", [("webhook", "read", "all")])
    assert body["data"]["createRole"]["userErrors"] == [], body
    await create_admin(api, FULL, READER, "HOOK_READER")
    made = await post_graphql(
        api, CREATE, {"input": {"url": URL, "events": ["ORDER_CREATED"]}}, as_=FULL
    )
    endpoint = data_of(made)["createWebhookEndpoint"]["endpoint"]["id"]
    before = await endpoints(api)

    listed = await post_graphql(api, "{ webhookEndpoints { id } }", as_=READER)
    assert [e["id"] for e in data_of(listed)["webhookEndpoints"]] == [endpoint]
    for document, variables in (
        (CREATE, {"input": {"url": f"{URL}/2", "events": ["ORDER_CREATED"]}}),
        (TEST, {"input": {"endpointId": endpoint}}),
    ):
        refused = await post_graphql(api, document, variables, as_=READER)
        assert error_codes(refused) == ["FORBIDDEN"], refused
    assert await endpoints(api) == before


async def test_nul_bytes_and_huge_lists_are_refused_and_nothing_is_written(api: Api) -> None:
    await world(api)
    for bad in (
        {"url": URL + "/\x00", "events": ["ORDER_CREATED"]},
        {"url": URL, "events": ["ORDER_CREATED"], "description": "CRM\x00"},
        {"url": URL, "events": ["ORDER_CREATED"] * 100_000},
        {"url": URL + "/" + "a" * 1_000_000, "events": ["ORDER_CREATED"]},
    ):
        body = await post_graphql(api, CREATE, {"input": bad}, as_=FULL)
        assert error_codes(body) == ["BAD_USER_INPUT"], str(body)[:300]
    assert await endpoints(api) == 0


async def test_another_partners_delivery_cursor_shows_none_of_its_deliveries(api: Api) -> None:
    await world(api)
    made = await post_graphql(
        api, CREATE, {"input": {"url": URL, "events": ["ORDER_CREATED"]}}, as_=FULL
    )
    endpoint = data_of(made)["createWebhookEndpoint"]["endpoint"]["id"]
    for _ in range(3):
        data_of(await post_graphql(api, TEST, {"input": {"endpointId": endpoint}}, as_=FULL))
    page = data_of(await post_graphql(api, DELIVERIES, as_=FULL))["webhookDeliveries"]
    cursor = page["pageInfo"]["endCursor"]
    theirs = await post_graphql(api, DELIVERIES, {"after": cursor}, as_=OTHER)
    codes = error_codes(theirs)
    assert codes in ([], ["INVALID_CURSOR"]), theirs
    if not codes:
        assert theirs["data"]["webhookDeliveries"]["nodes"] == []


async def test_many_aliases_of_the_lists_are_priced_and_refused(api: Api) -> None:
    await world(api)
    aliases = " ".join(
        f"d{i}: webhookDeliveries(first: 100) {{ nodes {{ id attempts }} }}" for i in range(200)
    )
    response = await api.client.post(
        "/graphql",
        json={"query": "{ " + aliases + " }"},
        headers={"Authorization": f"Bearer {await token_for(api, FULL)}"},
    )
    assert response.status_code < 500
    assert error_codes(response.json()) in (["QUERY_TOO_COMPLEX"], ["QUERY_TOO_COSTLY"]), str(
        response.json()
    )[:300]
