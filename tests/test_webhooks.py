"""Webhooks end to end (issue 20): a real receiver on 127.0.0.1 verifies every request with the
``standardwebhooks`` package; the delivery loop is driven turn by turn (``WebhookWorker``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from db.engine import create_engine, session_factory
from db.models import AuditLog
from db.webhook_models import WebhookDelivery, WebhookOutboxEvent
from db.webhooks.deliveries import claim_due
from db.webhooks.events import global_id
from db.webhooks.outbox import wall_clock
from graph.ids import to_global_id
from tests.authz_support import AuthzFactory
from tests.conftest import NOW, Api, api_over, postgresql_only
from tests.databases import Database
from tests.helpers import data_of, post_graphql
from tests.webhook_support import (
    HOOK_SETTINGS,
    create_endpoint,
    deliveries,
    drain,
    receiver,
    types_of,
    worker,
)

FULL = "full@acme.example"
ALL_EVENTS = [
    "CUSTOMER_STATUS_CHANGED",
    "SUBSCRIPTION_CHANGED",
    "TRIAL_STARTED",
    "TRIAL_EXTENDED",
    "TRIAL_CONVERTED",
    "ORDER_CREATED",
    "CUSTOMER_TAGS_CHANGED",
    "HELPDESK_CASE_UPDATED",
]


@pytest.fixture
async def hooks_api(fresh_database: Database) -> AsyncIterator[Api]:
    await fresh_database.empty()
    async with api_over(fresh_database, **HOOK_SETTINGS) as value:
        yield value


async def acme(api: Api) -> tuple[AuthzFactory, int, int]:
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    admin = await f.admin(partner, FULL, "FULL_ADMIN")
    return f, partner, admin


async def mutate(api: Api, document: str, input: dict[str, Any], as_: str = FULL) -> Any:
    body = await post_graphql(api, document, {"input": input}, as_=as_)
    field = next(iter(data_of(body)))
    payload = data_of(body)[field]
    assert payload["userErrors"] == [], payload
    return payload


START = """mutation S($input: StartTrialInput!) { startTrial(input: $input) {
  trial { id } customer { id } userErrors { code } } }"""
EXTEND = """mutation E($input: ExtendTrialInput!) { extendTrial(input: $input) {
  trial { id } userErrors { code } } }"""
CONVERT = """mutation C($input: ConvertTrialInput!) { convertTrial(input: $input) {
  trial { id } userErrors { code } } }"""
ADD_TAGS = """mutation A($input: CustomerTagsInput!) { addTagsToCustomers(input: $input) {
  changed userErrors { code } } }"""
REMOVE_TAGS = """mutation R($input: CustomerTagsInput!) { removeTagsFromCustomers(input: $input) {
  changed userErrors { code } } }"""
OPEN_CASE = """mutation O($input: OpenHelpdeskCaseInput!) { openHelpdeskCase(input: $input) {
  case { id } userErrors { code } } }"""
COMMENT = """mutation M($input: AddHelpdeskCaseCommentInput!) {
  addHelpdeskCaseComment(input: $input) { comment { body } userErrors { code } } }"""
CLOSE = """mutation X($input: CloseHelpdeskCaseInput!) { closeHelpdeskCase(input: $input) {
  case { id } userErrors { code } } }"""
REDELIVER = """mutation R($input: RedeliverWebhookInput!) { redeliverWebhook(input: $input) {
  delivery { id eventId status } userErrors { field code } } }"""
SEND_TEST = """mutation T($input: SendTestWebhookInput!) { sendTestWebhook(input: $input) {
  delivery { id eventId status event } userErrors { field code } } }"""
UPDATE = """mutation U($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) {
  endpoint { id url events active disabledReason } userErrors { field code } } }"""
ENDPOINTS = "{ webhookEndpoints { id url events active disabledReason } }"


async def start_trial(api: Api, customer: int) -> str:
    payload = await mutate(
        api,
        START,
        {
            "customerId": to_global_id("Customer", customer),
            "products": [{"product": "CALLING", "licenses": 5}],
            "durationDays": 30,
        },
    )
    return str(payload["trial"]["id"])


async def test_every_event_type_reaches_the_endpoint_signed(hooks_api: Api) -> None:
    # given
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    tag = await f.tag(partner, "Gold")
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ALL_EVENTS, "CRM")

        # when: every kind of write
        trial = await start_trial(api, customer)
        await mutate(api, EXTEND, {"trialId": trial, "days": 30})
        await mutate(api, CONVERT, {"trialId": trial, "autoRenew": True, "termMonths": 12})
        tags = {"customerIds": [to_global_id("Customer", customer)], "tagIds": [gid_tag(tag)]}
        await mutate(api, ADD_TAGS, tags)
        await mutate(api, REMOVE_TAGS, tags)
        case = await mutate(
            api,
            OPEN_CASE,
            {
                "product": "CALLING",
                "subject": "Drops",
                "description": "Calls drop.",
                "severity": "LOW",
                "customerId": to_global_id("Customer", customer),
            },
        )
        case_id = case["case"]["id"]
        await mutate(api, COMMENT, {"caseId": case_id, "body": "More."})
        await mutate(api, CLOSE, {"caseId": case_id, "resolution": "Fixed."})
        await drain(worker(api))

    # then
    assert len(r.ok()) == len(r.received), "every request verified with standardwebhooks"
    got = types_of(r.ok())
    assert set(got) == {
        "customer.status_changed",
        "subscription.changed",
        "trial.started",
        "trial.extended",
        "trial.converted",
        "order.created",
        "customer.tags_changed",
        "helpdesk_case.updated",
    }
    customer_gid = global_id("Customer", customer)
    statuses = [x.data for x in r.ok() if x.type == "customer.status_changed"]
    assert statuses[0]["customerId"] == customer_gid
    assert "TRIAL" in statuses[0]["added"]
    assert any("ACTIVE" in s["added"] and "TRIAL" in s["removed"] for s in statuses)
    tag_events = [x.data for x in r.ok() if x.type == "customer.tags_changed"]
    assert [t["added"] for t in tag_events] == [[gid_tag(tag)], []]
    assert [t["removed"] for t in tag_events] == [[], [gid_tag(tag)]]
    changes = [x.data["change"] for x in r.ok() if x.type == "helpdesk_case.updated"]
    assert changes == ["OPENED", "COMMENTED", "CLOSED"]
    # One customer's events arrive in the order they were written.
    ids = [x.headers["webhook-id"] for x in r.ok() if x.data.get("customerId") == customer_gid]
    async with api.engine.connect() as conn:
        written = [
            m
            for (m,) in await conn.execute(
                select(WebhookOutboxEvent.message_id)  # type: ignore[call-overload]
                .where(WebhookOutboxEvent.customer_id == customer)
                .order_by(WebhookOutboxEvent.id)
            )
        ]
    assert ids == written
    first = r.ok()[0]
    assert first.payload is not None and set(first.payload) == {"type", "timestamp", "data"}
    assert first.headers["webhook-signature"].startswith("v1,")
    listed = await deliveries(api, FULL, status="SUCCEEDED")
    assert len(listed) == len(r.ok()) and all(d["responseStatus"] == 200 for d in listed)


def gid_tag(pk: int) -> str:
    return to_global_id("Tag", pk)


async def test_no_endpoint_no_outbox_rows(hooks_api: Api) -> None:
    # given: a partner without endpoints, and one with an endpoint for other events only
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    await create_endpoint(api, FULL, "http://127.0.0.1:9/x", ["HELPDESK_CASE_UPDATED"])

    # when
    await start_trial(api, customer)

    # then
    async with api.engine.connect() as conn:
        events = (await conn.execute(select(func.count()).select_from(WebhookOutboxEvent))).scalar()
    assert events == 0


async def test_retry_after_500_then_200_keeps_the_webhook_id(hooks_api: Api) -> None:
    # given
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver(script=[500]) as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        await start_trial(api, customer)
        w = worker(api)

        # when
        await w.deliver_due()
        pending = await deliveries(api, FULL)
        await drain(w)

    # then
    assert pending[0]["status"] == "PENDING" and pending[0]["attempts"] == 1
    assert pending[0]["responseStatus"] == 500
    assert len(pending[0]["responseBody"]) == 1024, "at most 1 KB of an answer is kept"
    assert [x.headers["webhook-id"] for x in r.received] == [pending[0]["eventId"]] * 2
    done = await deliveries(api, FULL)
    assert done[0]["status"] == "SUCCEEDED" and done[0]["attempts"] == 2


async def test_redelivery_sends_the_same_message_again(hooks_api: Api) -> None:
    # given: a delivered event
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        await start_trial(api, customer)
        w = worker(api)
        await drain(w)
        (first,) = await deliveries(api, FULL)

        # when
        again = await mutate(api, REDELIVER, {"deliveryId": first["id"]})
        await drain(w)

    # then
    assert again["delivery"]["eventId"] == first["eventId"]
    assert again["delivery"]["status"] == "PENDING"
    assert [x.headers["webhook-id"] for x in r.ok()] == [first["eventId"]] * 2
    assert r.ok()[0].body == r.ok()[1].body
    statuses = [d["status"] for d in await deliveries(api, FULL)]
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]


async def test_send_test_webhook(hooks_api: Api) -> None:
    api = hooks_api
    await acme(api)
    async with receiver() as r:
        endpoint, r.secret = await create_endpoint(api, FULL, r.url, ["ORDER_CREATED"])
        payload = await mutate(api, SEND_TEST, {"endpointId": endpoint})
        await drain(worker(api))
    assert payload["delivery"]["event"] is None
    assert types_of(r.ok()) == ["webhook.test"]
    assert r.ok()[0].data["endpointId"] == endpoint


async def test_an_endpoint_failing_for_the_window_is_disabled_and_audited(hooks_api: Api) -> None:
    # given: a receiver that always fails, a 0.4 s "24 hours"
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver(script=[500] * 1000) as r:
        endpoint, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        await start_trial(api, customer)
        w = worker(api, webhook_retry_window_seconds=0.4)

        # when: retries (at most 0.2 s apart) until the window has passed; a drain that stops
        # only after 1 s with nothing due cannot end between two of them
        await drain(w, turns=200, pause=0.05, patience=20)

    # then
    body = await post_graphql(api, ENDPOINTS, as_=FULL)
    (listed,) = data_of(body)["webhookEndpoints"]
    assert listed["active"] is False
    assert "Disabled after failing" in listed["disabledReason"]
    (delivery,) = await deliveries(api, FULL)
    assert delivery["status"] == "FAILED" and delivery["attempts"] >= 2
    async with api.engine.connect() as conn:
        audited = (
            await conn.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.operation == "disableWebhookEndpoint",  # type: ignore[arg-type]
                    AuditLog.object_id == endpoint,  # type: ignore[arg-type]
                )
            )
        ).scalar()
    assert audited == 1
    # Re-enabling clears the reason.
    again = await mutate(api, UPDATE, {"id": endpoint, "active": True})
    assert again["endpoint"]["active"] is True and again["endpoint"]["disabledReason"] is None


async def test_a_killed_server_delivers_after_restart(hooks_api: Api) -> None:
    # given: a server claimed a delivery and died before sending it
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        await start_trial(api, customer)
        async with session_factory(api.engine)() as session:
            claimed = await claim_due(
                session, now=wall_clock(), lease_seconds=0.3, worker="dead", limit=10
            )
        assert len(claimed) == 1
        restarted = worker(api, name="restarted")

        # when: during the lease nothing is claimed; after it, the restarted server delivers
        assert await restarted.deliver_due() == 0
        await asyncio.sleep(0.35)
        await drain(restarted)

    # then
    assert len(r.ok()) == 1
    assert r.ok()[0].headers["webhook-id"] == claimed[0].message_id


async def test_two_servers_deliver_each_event_once_in_order(hooks_api: Api) -> None:
    # given: 3 customers x 4 trials' events on one database, a slow receiver
    api = hooks_api
    f, partner, _ = await acme(api)
    customers = [await f.customer(partner, f"Customer {i}") for i in range(3)]
    async with receiver(delay=0.01) as r:
        _, r.secret = await create_endpoint(
            api, FULL, r.url, ["TRIAL_STARTED", "ORDER_CREATED", "SUBSCRIPTION_CHANGED"]
        )
        for customer in customers:
            for product in ("CALLING", "MEETINGS", "MESSAGING", "CONTACT_CENTER"):
                await mutate(
                    api,
                    START,
                    {
                        "customerId": to_global_id("Customer", customer),
                        "products": [{"product": product, "licenses": 1}],
                        "durationDays": 30,
                    },
                )
        second_engine = create_engine(api.db.url)  # the second server's own pool
        one = worker(api, name="one", webhook_batch=3)
        two = worker(api, name="two", engine=second_engine, webhook_batch=3)

        # when: two servers work at once
        try:
            await asyncio.gather(drain(one), drain(two))
        finally:
            await second_engine.dispose()

    # then
    ids = [x.headers["webhook-id"] for x in r.ok()]
    assert len(ids) == 3 * 4 * 3 and len(set(ids)) == len(ids), "each event delivered once"
    async with api.engine.connect() as conn:
        by_claimer = dict(
            (
                await conn.execute(
                    select(WebhookOutboxEvent.message_id, WebhookOutboxEvent.customer_id)  # type: ignore[call-overload]
                )
            ).all()
        )
        written = [
            m
            for (m,) in await conn.execute(
                select(WebhookOutboxEvent.message_id).order_by(WebhookOutboxEvent.id)  # type: ignore[call-overload]
            )
        ]
    for customer in customers:
        got = [m for m in ids if by_claimer[m] == customer]
        assert got == [m for m in written if by_claimer[m] == customer], "in order per customer"


async def test_time_driven_status_changes_are_emitted_once(hooks_api: Api) -> None:
    # given: a trial ending in 10 days (EXPIRING_SOON from day 3), an endpoint
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    await f.trial(customer)
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["CUSTOMER_STATUS_CHANGED"])
        w = worker(api)
        assert await w.schedule() == 0  # the first run sets the watermark
        w.domain_now = lambda: NOW + timedelta(days=4)

        # when
        first = await w.schedule()
        second = await w.schedule()
        w.domain_now = lambda: NOW + timedelta(days=11)
        third = await w.schedule()
        await drain(w)

    # then
    assert (first, second, third) == (1, 0, 1)
    data = [x.data for x in r.ok()]
    assert data[0]["added"] == ["EXPIRING_SOON"] and data[0]["removed"] == []
    assert set(data[1]["removed"]) == {"EXPIRING_SOON", "TRIAL"}
    assert "EXPIRED" in data[1]["added"]


@postgresql_only  # the advisory lock is PostgreSQL's; SQLite serialises writers
async def test_the_scheduler_runs_on_one_server_at_a_time(hooks_api: Api) -> None:
    api = hooks_api
    w = worker(api)
    await w.schedule()
    async with api.engine.connect() as holder:
        await holder.execute(text("BEGIN"))
        await holder.execute(text("SELECT pg_advisory_xact_lock(7320020)"))
        assert await w.schedule() is None  # another server holds the turn
        await holder.execute(text("ROLLBACK"))
    assert await w.schedule() == 0


async def test_delivery_refuses_a_private_address_unless_allowed(hooks_api: Api) -> None:
    # given: an endpoint on 127.0.0.1, stored while private networks were allowed
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        await start_trial(api, customer)

        # when: a server that does not allow them delivers
        await worker(api, webhook_allow_private_networks=False).deliver_due()

    # then
    assert r.received == []
    (delivery,) = await deliveries(api, FULL)
    assert delivery["status"] == "PENDING" and delivery["error"].startswith("FORBIDDEN_ADDRESS")


async def test_redirects_are_not_followed(hooks_api: Api) -> None:
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver(script=[302]) as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])
        await start_trial(api, customer)
        await worker(api).deliver_due()
    assert len(r.received) == 1
    (delivery,) = await deliveries(api, FULL)
    assert delivery["responseStatus"] == 302 and delivery["status"] == "PENDING"


async def test_events_are_written_with_their_change_or_not_at_all(hooks_api: Api) -> None:
    # given: an endpoint, and a trial start that fails validation after the customer lookup
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    await create_endpoint(api, FULL, "http://127.0.0.1:9/x", ALL_EVENTS)
    await start_trial(api, customer)
    async with api.engine.connect() as conn:
        before = (await conn.execute(select(func.count()).select_from(WebhookDelivery))).scalar()

    # when: the same product again (TRIAL_ALREADY_ACTIVE: rolled back)
    body = await post_graphql(
        api,
        START,
        {
            "input": {
                "customerId": to_global_id("Customer", customer),
                "products": [{"product": "CALLING", "licenses": 5}],
                "durationDays": 30,
            }
        },
        as_=FULL,
    )

    # then
    assert data_of(body)["startTrial"]["userErrors"] == [{"code": "TRIAL_ALREADY_ACTIVE"}]
    async with api.engine.connect() as conn:
        after = (await conn.execute(select(func.count()).select_from(WebhookDelivery))).scalar()
    assert before == after and before and before > 0


@pytest.mark.parametrize("enabled", [True, False])
async def test_serve_delivers_from_its_lifespan_unless_turned_off(
    fresh_database: Database, enabled: bool
) -> None:
    # given: the real app under uvicorn (lifespan on), as `partner-hub serve` runs it
    import socket

    import httpx
    import uvicorn

    from graph.app import create_app
    from tests.conftest import make_settings

    await fresh_database.empty()
    settings = make_settings(
        fresh_database, **HOOK_SETTINGS, webhook_poll_seconds=0.05, webhook_delivery=enabled
    )
    app = create_app(settings, engine=fresh_database.engine)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    api = Api(
        db=fresh_database,
        settings=settings,
        client=httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}"),
        counter=None,  # type: ignore[arg-type]
    )
    try:
        f, partner, _ = await acme(api)
        customer = await f.customer(partner, "Initech")
        async with receiver() as r:
            _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED"])

            # when
            await start_trial(api, customer)
            for _ in range(100):
                if r.received:
                    break
                await asyncio.sleep(0.05)

        # then
        assert len(r.ok()) == (1 if enabled else 0)
    finally:
        await api.client.aclose()
        server.should_exit = True
        await task
        sock.close()


async def test_finished_deliveries_are_forgotten_after_the_retention(hooks_api: Api) -> None:
    from db.webhooks.deliveries import prune

    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    async with receiver() as r:
        _, r.secret = await create_endpoint(api, FULL, r.url, ["TRIAL_STARTED", "ORDER_CREATED"])
        await start_trial(api, customer)
        await drain(worker(api))
    # two more events, not delivered yet
    await start_trial(api, await f.customer(partner, "Hooli"))
    assert len(await deliveries(api, FULL)) == 4  # (a response the cache may keep)

    # when
    async with session_factory(api.engine)() as session:
        removed = await prune(
            session,
            delivered_before=wall_clock() + timedelta(days=1),
            events_before=NOW + timedelta(days=1),
        )

    # then: the two delivered are gone with their events; the pending two stay
    left = await deliveries(api, FULL)
    assert removed == 2 and [d["status"] for d in left] == ["PENDING", "PENDING"]
    async with api.engine.connect() as conn:
        events = (await conn.execute(select(func.count()).select_from(WebhookOutboxEvent))).scalar()
    assert events == 2


async def test_subscription_management_tells_orders_and_changes(hooks_api: Api) -> None:
    # given: a paid subscription that auto-renews (issue 19's mutations write orders)
    api = hooks_api
    f, partner, _ = await acme(api)
    customer = await f.customer(partner, "Initech")
    sub = await f.subscription(customer)
    async with receiver() as r:
        _, r.secret = await create_endpoint(
            api, FULL, r.url, ["ORDER_CREATED", "SUBSCRIPTION_CHANGED", "CUSTOMER_STATUS_CHANGED"]
        )

        # when: auto-renew turned off (the subscription now expires: EXPIRING_SOON later)
        set_auto_renew = (
            "mutation A($input: SetAutoRenewInput!) { setAutoRenew(input: $input) "
            "{ subscription { id } userErrors { code } } }"
        )
        payload = await mutate(
            api,
            set_auto_renew,
            {"subscriptionId": to_global_id("Subscription", sub), "autoRenew": False},
        )
        await drain(worker(api))

    # then
    assert payload["subscription"]["id"] == to_global_id("Subscription", sub)
    got = {x.type: x.data for x in r.ok()}
    assert {"order.created", "subscription.changed"} <= set(got)
    assert got["order.created"]["subscriptionId"] == to_global_id("Subscription", sub)
    assert got["order.created"]["customerId"] == to_global_id("Customer", customer)
    assert got["subscription.changed"]["change"] == got["order.created"]["action"]
