"""Webhook endpoints through the API: bad input (coded userErrors, nothing written), outbound
safety at registration, secrets, tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from db.webhook_models import WebhookEndpoint
from db.webhooks.events import global_id
from db.webhooks.secrets import seal, unseal
from graph.ids import to_global_id
from tests.authz_support import AuthzFactory, assert_nothing_written, snapshot
from tests.conftest import Api, api_over
from tests.databases import Database
from tests.helpers import data_of, post_graphql
from tests.webhook_support import (
    CREATE,
    DELIVERIES,
    HOOK_SETTINGS,
    SECRET_KEY,
    create_endpoint,
    deliveries,
    drain,
    receiver,
    worker,
)

FULL = "full@acme.example"
OTHER = "full@globex.example"


@pytest.fixture
async def strict_api(fresh_database: Database) -> AsyncIterator[Api]:
    """The production defaults: https only, public addresses only."""
    await fresh_database.empty()
    async with api_over(fresh_database) as value:
        yield value


@pytest.fixture
async def hooks_api(fresh_database: Database) -> AsyncIterator[Api]:
    await fresh_database.empty()
    async with api_over(fresh_database, **HOOK_SETTINGS) as value:
        yield value


async def two_partners(api: Api) -> AuthzFactory:
    f = AuthzFactory(api.engine)
    acme = await f.partner()
    await f.admin(acme, FULL, "FULL_ADMIN")
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(globex, OTHER, "FULL_ADMIN")
    for admin in (FULL, OTHER):  # tokens issued and the app started before any snapshot
        await post_graphql(api, "{ webhookEndpoints { id } }", as_=admin)
    return f


async def create_codes(api: Api, url: str, events: list[str] | None = None) -> list[str]:
    variables = {"input": {"url": url, "events": ["ORDER_CREATED"] if events is None else events}}
    body = await post_graphql(api, CREATE, variables, as_=FULL)
    payload = data_of(body)["createWebhookEndpoint"]
    assert payload["endpoint"] is None and payload["secret"] is None
    return [e["code"] for e in payload["userErrors"]]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "INVALID_URL"),  # http without the setting
        ("ftp://hooks.example.com/x", "INVALID_URL"),
        ("javascript:alert(1)", "INVALID_URL"),
        ("https://", "INVALID_URL"),
        ("https://user:pw@hooks.example.com/", "INVALID_URL"),
        ("https://hooks.example.com/" + "a" * 2000, "URL_TOO_LONG"),
        ("https://127.0.0.1/hook", "FORBIDDEN_ADDRESS"),
        ("https://localhost:8443/hook", "FORBIDDEN_ADDRESS"),
        ("https://169.254.169.254/latest/meta-data/", "FORBIDDEN_ADDRESS"),
        ("https://10.1.2.3/hook", "FORBIDDEN_ADDRESS"),
        ("https://192.168.0.10/hook", "FORBIDDEN_ADDRESS"),
        ("https://100.64.0.1/hook", "FORBIDDEN_ADDRESS"),
        ("https://[::1]/hook", "FORBIDDEN_ADDRESS"),
        ("https://[::ffff:127.0.0.1]/hook", "FORBIDDEN_ADDRESS"),
        ("https://[fd00:ec2::254]/hook", "FORBIDDEN_ADDRESS"),
        ("https://0.0.0.0/hook", "FORBIDDEN_ADDRESS"),
        ("https://no-such-host.invalid/hook", "UNRESOLVABLE_HOST"),
    ],
)
async def test_unsafe_urls_are_refused_and_nothing_is_written(
    strict_api: Api, url: str, code: str
) -> None:
    # given
    await two_partners(strict_api)
    before = await snapshot(strict_api.engine)

    # when
    codes = await create_codes(strict_api, url)

    # then
    assert codes == [code]
    await assert_nothing_written(strict_api, before, url)


async def test_bad_events_and_descriptions_are_refused(hooks_api: Api) -> None:
    await two_partners(hooks_api)
    before = await snapshot(hooks_api.engine)
    assert await create_codes(hooks_api, "http://127.0.0.1:9/", []) == ["EVENTS_REQUIRED"]
    body = await post_graphql(
        hooks_api,
        CREATE,
        {"input": {"url": "http://127.0.0.1:9/", "events": ["NOT_AN_EVENT"]}},
        as_=FULL,
    )
    # An unknown event is not a value of the WebhookEvent enum: refused before execution, coded.
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    variables = {
        "input": {"url": "ftp://x", "events": [], "description": "d" * 501},
    }
    body = await post_graphql(hooks_api, CREATE, variables, as_=FULL)
    codes = [e["code"] for e in data_of(body)["createWebhookEndpoint"]["userErrors"]]
    assert codes == ["INVALID_URL", "EVENTS_REQUIRED", "DESCRIPTION_TOO_LONG"]
    await assert_nothing_written(hooks_api, before)


async def test_at_most_twenty_endpoints_per_partner(hooks_api: Api) -> None:
    await two_partners(hooks_api)
    for i in range(20):
        await create_endpoint(hooks_api, FULL, f"http://127.0.0.1:9/{i}", ["ORDER_CREATED"])
    before = await snapshot(hooks_api.engine)
    assert await create_codes(hooks_api, "http://127.0.0.1:9/21") == ["TOO_MANY_ENDPOINTS"]
    await assert_nothing_written(hooks_api, before)
    # Another partner has its own twenty.
    body = await post_graphql(
        hooks_api,
        CREATE,
        {"input": {"url": "http://127.0.0.1:9/", "events": ["ORDER_CREATED"]}},
        as_=OTHER,
    )
    assert data_of(body)["createWebhookEndpoint"]["userErrors"] == []


async def test_the_secret_is_shown_once_stored_sealed_and_rotates(hooks_api: Api) -> None:
    # given
    await two_partners(hooks_api)
    endpoint, secret = await create_endpoint(
        hooks_api, FULL, "http://127.0.0.1:9/", ["ORDER_CREATED"]
    )

    # then: a Standard Webhooks secret, not stored in the clear, never readable again
    assert secret.startswith("whsec_")
    Webhook(secret)  # the package accepts it
    async with hooks_api.engine.connect() as conn:
        (stored,) = (await conn.execute(select(WebhookEndpoint.secret))).one()  # type: ignore[call-overload]
    assert secret not in stored and secret[6:] not in stored
    assert unseal(stored, SECRET_KEY) == secret
    with pytest.raises(ValueError):
        unseal(stored, b"another service secret")
    with pytest.raises(ValueError):
        unseal(stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB"), SECRET_KEY)
    assert unseal(seal("whsec_x", SECRET_KEY), SECRET_KEY) == "whsec_x"

    # when: rotated
    rotate = (
        "mutation R($input: RotateWebhookSecretInput!) { rotateWebhookSecret(input: $input) "
        "{ endpoint { id } secret userErrors { code } } }"
    )
    body = await post_graphql(hooks_api, rotate, {"input": {"id": endpoint}}, as_=FULL)
    new = data_of(body)["rotateWebhookSecret"]["secret"]

    # then
    assert new.startswith("whsec_") and new != secret
    audit = "{ auditLog(first: 10) { nodes { operation after } } }"
    entries = data_of(await post_graphql(hooks_api, audit, as_=FULL))["auditLog"]["nodes"]
    assert all(secret not in (e["after"] or "") and new not in (e["after"] or "") for e in entries)


async def test_a_rotated_secret_signs_the_next_delivery(hooks_api: Api) -> None:
    f = await two_partners(hooks_api)
    async with receiver() as r:
        endpoint, _ = await create_endpoint(hooks_api, FULL, r.url, ["ORDER_CREATED"])
        rotate = (
            "mutation R($input: RotateWebhookSecretInput!) { rotateWebhookSecret(input: $input) "
            "{ secret userErrors { code } } }"
        )
        body = await post_graphql(hooks_api, rotate, {"input": {"id": endpoint}}, as_=FULL)
        r.secret = data_of(body)["rotateWebhookSecret"]["secret"]
        test = (
            "mutation T($input: SendTestWebhookInput!) { sendTestWebhook(input: $input) "
            "{ delivery { id } userErrors { code } } }"
        )
        await post_graphql(hooks_api, test, {"input": {"endpointId": endpoint}}, as_=FULL)
        await drain(worker(hooks_api))
    assert len(r.ok()) == 1 and f is not None


# --- tenant isolation --------------------------------------------------------------------------

MUTATIONS: dict[str, tuple[str, str]] = {
    "updateWebhookEndpoint": ("UpdateWebhookEndpointInput", "endpoint { id }"),
    "deleteWebhookEndpoint": ("DeleteWebhookEndpointInput", "deletedId"),
    "rotateWebhookSecret": ("RotateWebhookSecretInput", "secret"),
    "sendTestWebhook": ("SendTestWebhookInput", "delivery { id }"),
    "redeliverWebhook": ("RedeliverWebhookInput", "delivery { id }"),
}


def _mutation(name: str) -> str:
    input_type, selection = MUTATIONS[name]
    return (
        f"mutation M($input: {input_type}!) {{ {name}(input: $input) "
        f"{{ {selection} userErrors {{ field code }} }} }}"
    )


def _input(name: str, endpoint: str, delivery: str) -> dict[str, Any]:
    if name == "sendTestWebhook":
        return {"endpointId": endpoint}
    if name == "redeliverWebhook":
        return {"deliveryId": delivery}
    if name == "updateWebhookEndpoint":
        return {"id": endpoint, "description": "mine now"}
    return {"id": endpoint}


async def test_another_partners_endpoints_and_deliveries_are_unknown(hooks_api: Api) -> None:
    # given: Acme's endpoint with a delivery; Globex with its own endpoint
    api = hooks_api
    f = await two_partners(api)
    acme_endpoint, _ = await create_endpoint(api, FULL, "http://127.0.0.1:9/a", ["ORDER_CREATED"])
    test = _mutation("sendTestWebhook")
    body = await post_graphql(api, test, {"input": {"endpointId": acme_endpoint}}, as_=FULL)
    acme_delivery = data_of(body)["sendTestWebhook"]["delivery"]["id"]
    await create_endpoint(api, OTHER, "http://127.0.0.1:9/g", ["ORDER_CREATED"])
    unknown_endpoint = to_global_id("WebhookEndpoint", 999_999)
    unknown_delivery = to_global_id("WebhookDelivery", 999_999)
    before = await snapshot(api.engine)

    # when / then: Globex sees none of Acme's, and Acme's ids answer as unknown ones do
    listed = data_of(await post_graphql(api, "{ webhookEndpoints { id url } }", as_=OTHER))
    assert [e["url"] for e in listed["webhookEndpoints"]] == ["http://127.0.0.1:9/g"]
    assert await deliveries(api, OTHER) == []
    for node in (acme_endpoint, acme_delivery):
        body = await post_graphql(
            api, "query N($id: ID!) { node(id: $id) { id } }", {"id": node}, as_=OTHER
        )
        assert data_of(body)["node"] is None
    body = await post_graphql(
        api, DELIVERIES, {"first": 10, "filter": {"endpointId": acme_endpoint}}, as_=OTHER
    )
    assert data_of(body)["webhookDeliveries"]["totalCount"] == 0
    for name in MUTATIONS:
        theirs = await post_graphql(
            api, _mutation(name), {"input": _input(name, acme_endpoint, acme_delivery)}, as_=OTHER
        )
        unknown = await post_graphql(
            api,
            _mutation(name),
            {"input": _input(name, unknown_endpoint, unknown_delivery)},
            as_=OTHER,
        )
        assert data_of(theirs)[name]["userErrors"] == data_of(unknown)[name]["userErrors"]
        assert [e["code"] for e in data_of(theirs)[name]["userErrors"]] == ["NOT_FOUND"], name
    await assert_nothing_written(api, before)
    assert f is not None


async def test_an_endpoint_receives_only_its_partners_events(hooks_api: Api) -> None:
    api = hooks_api
    f = await two_partners(api)
    globex = 2
    other_customer = await f.customer(globex, "Globex customer")
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        start = """mutation S($input: StartTrialInput!) { startTrial(input: $input) {
          trial { id } userErrors { code } } }"""
        body = await post_graphql(
            api,
            start,
            {
                "input": {
                    "customerId": to_global_id("Customer", other_customer),
                    "products": [{"product": "CALLING", "licenses": 1}],
                    "durationDays": 10,
                }
            },
            as_=OTHER,
        )
        assert data_of(body)["startTrial"]["userErrors"] == []
        await drain(worker(api))
    assert r.received == []
    assert global_id("Customer", other_customer) == to_global_id("Customer", other_customer)


async def test_webhooks_listen_verifies_and_prints() -> None:
    # given: the receiver of `partner-hub webhooks listen`, and a message signed as we send it
    import io
    from datetime import UTC, datetime

    import httpx

    from db.webhooks.secrets import new_secret
    from graph.cli import build_parser
    from graph.webhooks.listen import receiver_app
    from graph.webhooks.sender import signed_headers

    secret = new_secret()
    out = io.StringIO()
    app = receiver_app(secret, out)
    body = b'{"type":"webhook.test","timestamp":"2026-11-26T00:00:00Z","data":{"test":true}}'
    headers = signed_headers(secret, "msg_1", body, datetime.now(UTC))
    args = build_parser().parse_args(["webhooks", "listen", "--port", "9911", "--secret", secret])
    assert args.port == 9911 and args.secret == secret

    # when
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        good = await c.post("/", content=body, headers=headers)
        bad = await c.post("/", content=body + b" ", headers=headers)

    # then
    assert (good.status_code, bad.status_code) == (204, 400)
    printed = out.getvalue()
    assert "webhook.test msg_1" in printed and "REFUSED msg_1" in printed
