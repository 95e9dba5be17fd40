"""Subscription management through HTTP (issue 19): order set-up, licence quantities,
auto-renew, renewal, cancellation; each code, the statuses and KPIs moving in the same
transaction, the orders and invoices, the audit, isolation between partners and bad input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from db.billing import prorated_cents
from db.models import Admin, AuditLog, Invoice, LicenseLine, Order, PartnerCounter
from graph.mutations import REFUSAL
from tests.authz_support import assert_nothing_written, gid, snapshot
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, error_codes, post_graphql

DAY = timedelta(days=1)
FULL, PARTNER, OTHER = "full@acme.example", "partner@acme.example", "full@globex.example"
SUBSCRIPTION = """
  id subscriptionId kind state startDate endDate autoRenew renewalDate
  licenses { product licenseType purchased assigned overage }
  orders { orderNumber action status description }
  invoices { invoiceNumber amountCents currency status issuedAt dueAt }
"""


def document(field: str, input_type: str) -> str:
    return f"""
mutation M($input: {input_type}!) {{
  {field}(input: $input) {{
    subscription {{ {SUBSCRIPTION} }}
    order {{ orderNumber action status description placedAt }}
    userErrors {{ field message code }}
  }}
}}"""


SETUP = document("completeOrderSetup", "CompleteOrderSetupInput")
QUANTITY = document("changeLicenseQuantity", "ChangeLicenseQuantityInput")
AUTO_RENEW = document("setAutoRenew", "SetAutoRenewInput")
RENEW = document("renewSubscription", "RenewSubscriptionInput")
CANCEL = document("cancelSubscription", "CancelSubscriptionInput")
CUSTOMER = "query C($id: ID!) { customer(id: $id) { statuses } }"
KPIS = "query { licenseKpis { totalCustomers aboutToExpire aboutToRenew overLicenseLimit } }"


@dataclass
class World:
    api: Api
    f: Factory
    acme: int
    globex: int

    async def customer(self, partner: int | None = None) -> int:
        name = f"Customer {self.f._next()}"
        return await self.f.customer(partner or self.acme, name)

    async def subscription(self, customer: int | None = None, **kw: Any) -> int:
        return await self.f.subscription(customer or await self.customer(), **kw)


@pytest.fixture
async def w(api: Api) -> World:
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, FULL, "FULL_ADMIN")
    await f.admin(acme, PARTNER, "PARTNER_ADMIN")
    await f.admin(globex, OTHER, "FULL_ADMIN")
    for email in (FULL, PARTNER, OTHER):  # tokens and policies in place before any snapshot
        data_of(await post_graphql(api, "{ viewer { id } }", as_=email))
    return World(api, f, acme, globex)


async def call(api: Api, doc: str, as_: str = FULL, **input: Any) -> dict[str, Any]:
    body = await post_graphql(api, doc, {"input": input}, as_=as_)
    return next(iter(data_of(body).values()))  # type: ignore[no-any-return]


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


def refused(payload: dict[str, Any], code: str, field: str | None = "subscriptionId") -> None:
    assert codes(payload) == [code], payload
    assert payload["userErrors"][0]["field"] == ([field] if field else None), payload
    assert payload["subscription"] is None and payload["order"] is None


async def statuses(api: Api, customer: int) -> list[str]:
    body = await post_graphql(api, CUSTOMER, {"id": gid("Customer", customer)}, as_=FULL)
    return data_of(body)["customer"]["statuses"]  # type: ignore[no-any-return]


async def kpis(api: Api) -> dict[str, int]:
    return data_of(await post_graphql(api, KPIS, as_=FULL))["licenseKpis"]  # type: ignore[no-any-return]


async def count(api: Api, table: Any, *where: Any) -> int:
    async with api.engine.connect() as conn:
        found = await conn.execute(select(func.count()).select_from(table).where(*where))
        return int(found.scalar_one())


async def audits(api: Api, operation: str, refusal: bool = False) -> list[Any]:
    kind = AuditLog.object_type == REFUSAL if refusal else AuditLog.object_type != REFUSAL  # type: ignore[arg-type]
    async with api.engine.connect() as conn:
        rows = await conn.execute(
            select(AuditLog).where(AuditLog.operation == operation, kind).order_by(AuditLog.id)  # type: ignore[arg-type]
        )
        return list(rows)


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# --- completeOrderSetup ----------------------------------------------------------------------


async def test_complete_order_setup_activates_and_leaves_ready_for_order_setup(w: World) -> None:
    # given: a PROVISIONING subscription starting in 5 days, with its order in progress
    customer = await w.customer()
    sub = await w.subscription(
        customer, state="PROVISIONING", start=NOW + 5 * DAY, end=NOW + 370 * DAY
    )
    await w.f._insert(
        Order,
        partner_id=w.acme,
        subscription_id=sub,
        order_number="ORD-ACM-0000001",
        placed_at=NOW - DAY,
        action="NEW",
        description="New subscription",
        status="IN_PROGRESS",
    )
    assert "READY_FOR_ORDER_SETUP" in await statuses(w.api, customer)

    # when
    payload = await call(w.api, SETUP, subscriptionId=gid("Subscription", sub))

    # then: active from now, the earlier order completed, the set-up ordered and invoiced
    assert codes(payload) == []
    s = payload["subscription"]
    assert (s["state"], at(s["startDate"]), at(s["renewalDate"])) == (
        "ACTIVE",
        NOW,
        NOW + 370 * DAY,
    )
    assert payload["order"]["action"] == "ORDER_SETUP" and payload["order"]["status"] == "COMPLETED"
    # the partner's counter starts after the order it already had
    assert payload["order"]["orderNumber"] == "ORD-0000002"
    assert [(o["action"], o["status"]) for o in s["orders"]] == [
        ("ORDER_SETUP", "COMPLETED"),
        ("NEW", "COMPLETED"),
    ]
    (invoice,) = s["invoices"]
    assert invoice["amountCents"] == 12 * 10 * 1500  # a year of 10 Meetings licences
    assert (invoice["status"], invoice["currency"], invoice["invoiceNumber"]) == (
        "OPEN",
        "USD",
        "INV-0000001",
    )
    assert at(invoice["dueAt"]) == NOW + 30 * DAY
    after = await statuses(w.api, customer)
    assert "READY_FOR_ORDER_SETUP" not in after and "ACTIVE" in after
    (entry,) = await audits(w.api, "completeOrderSetup")
    assert entry.object_id == gid("Subscription", sub) and '"PROVISIONING"' in entry.before


async def test_another_provisioning_subscription_keeps_ready_for_order_setup(w: World) -> None:
    # given: two PROVISIONING subscriptions of one customer
    customer = await w.customer()
    first = await w.subscription(customer, state="PROVISIONING")
    await w.subscription(customer, state="PROVISIONING")

    # when
    payload = await call(w.api, SETUP, subscriptionId=gid("Subscription", first))

    # then
    assert codes(payload) == []
    assert "READY_FOR_ORDER_SETUP" in await statuses(w.api, customer)


async def test_only_a_provisioning_subscription_is_set_up(w: World) -> None:
    # given
    sub = await w.subscription()
    before = await snapshot(w.api.engine)

    # when
    payload = await call(w.api, SETUP, subscriptionId=gid("Subscription", sub))

    # then
    refused(payload, "SUBSCRIPTION_NOT_PROVISIONING")
    await assert_nothing_written(w.api, before, "completeOrderSetup of an ACTIVE one")
    assert len(await audits(w.api, "completeOrderSetup", refusal=True)) == 1


# --- changeLicenseQuantity -------------------------------------------------------------------


async def test_clearing_an_overage_moves_status_and_kpi_at_once(w: World) -> None:
    # given: 12 Meetings licences assigned of 10 purchased
    customer = await w.customer()
    sub = await w.subscription(customer, lines=[("MEETINGS", 10, 12, 8)])
    assert "LICENSE_OVERAGE" in await statuses(w.api, customer)
    assert (await kpis(w.api))["overLicenseLimit"] == 1

    # when
    payload = await call(
        w.api, QUANTITY, subscriptionId=gid("Subscription", sub), product="MEETINGS", purchased=12
    )

    # then
    assert codes(payload) == []
    (line,) = payload["subscription"]["licenses"]
    assert (line["purchased"], line["overage"]) == (12, 0)
    assert "LICENSE_OVERAGE" not in await statuses(w.api, customer)
    assert (await kpis(w.api))["overLicenseLimit"] == 0
    order = payload["order"]
    assert order["action"] == "ADD_LICENSES" and "10 -> 12" in order["description"]
    (invoice,) = payload["subscription"]["invoices"]
    end = NOW + 265 * DAY  # the factory's end date
    assert invoice["amountCents"] == prorated_cents(2, 1500, NOW, end)
    assert invoice["amountCents"] == round(2 * 1500 * 12 * 265 / 365)
    (entry,) = await audits(w.api, "changeLicenseQuantity")
    assert '"purchased":{"after":12,"before":10}' in entry.after


async def test_a_decrease_is_not_invoiced_and_stops_at_assigned(w: World) -> None:
    # given: 20 purchased, 12 assigned
    sub = gid("Subscription", await w.subscription(lines=[("MEETINGS", 20, 12, 8)]))

    # when
    down = await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=12)
    below = await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=11)
    same = await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=12)

    # then
    assert codes(down) == [] and down["order"]["action"] == "REMOVE_LICENSES"
    assert down["subscription"]["invoices"] == []
    refused(below, "LICENSE_COUNT_BELOW_ASSIGNED", "purchased")
    assert codes(same) == [] and same["order"] is None  # nothing asked, nothing written
    assert len(same["subscription"]["orders"]) == 1
    assert len(await audits(w.api, "changeLicenseQuantity")) == 1


async def test_an_increase_still_below_assigned_is_allowed(w: World) -> None:
    # given: an overage of 5
    sub = gid("Subscription", await w.subscription(lines=[("CALLING", 10, 15, 8)]))

    # when
    payload = await call(w.api, QUANTITY, subscriptionId=sub, product="CALLING", purchased=12)

    # then: still over, but more licences is never refused
    assert codes(payload) == []
    assert payload["subscription"]["licenses"][0]["overage"] == 3


@pytest.mark.parametrize("purchased", [0, -1, 100_001])
async def test_a_licence_count_outside_1_to_100000_is_refused(w: World, purchased: int) -> None:
    sub = gid("Subscription", await w.subscription())
    payload = await call(
        w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=purchased
    )
    refused(payload, "INVALID_LICENSE_COUNT", "purchased")


async def test_100000_licences_are_allowed(w: World) -> None:
    sub = gid("Subscription", await w.subscription())
    payload = await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=100_000)
    assert codes(payload) == []


async def test_a_product_without_a_line_is_refused(w: World) -> None:
    sub = gid("Subscription", await w.subscription())
    payload = await call(w.api, QUANTITY, subscriptionId=sub, product="CALLING", purchased=5)
    refused(payload, "PRODUCT_NOT_ON_SUBSCRIPTION", "product")


async def test_several_lines_of_a_product_need_the_licence_type(w: World) -> None:
    # given: a Calling line and a Common Area Calling line
    pk = await w.subscription(lines=[("CALLING", 10, 5, 3)])
    await w.f._insert(
        LicenseLine,
        partner_id=w.acme,
        subscription_id=pk,
        product="CALLING",
        license_type="Common Area",
        purchased=4,
        assigned=2,
        used=1,
    )
    sub = gid("Subscription", pk)

    # when
    vague = await call(w.api, QUANTITY, subscriptionId=sub, product="CALLING", purchased=6)
    wrong = await call(
        w.api, QUANTITY, subscriptionId=sub, product="CALLING", purchased=6, licenseType="Basic"
    )
    named = await call(
        w.api,
        QUANTITY,
        subscriptionId=sub,
        product="CALLING",
        purchased=6,
        licenseType="Common Area",
    )

    # then
    refused(vague, "LICENSE_TYPE_REQUIRED", "licenseType")
    refused(wrong, "PRODUCT_NOT_ON_SUBSCRIPTION", "licenseType")
    assert codes(named) == []
    lines = {ln["licenseType"]: ln["purchased"] for ln in named["subscription"]["licenses"]}
    assert lines == {"Common Area": 6, "Standard": 10}


@pytest.mark.parametrize(
    "shape",
    [
        {"state": "EXPIRED"},
        {"state": "CANCELLED"},
        {"state": "SUSPENDED"},
        {"state": "PROVISIONING"},
        {"end": NOW - DAY, "start": NOW - 100 * DAY},  # ACTIVE, but ended
        {"start": NOW + DAY, "end": NOW + 100 * DAY},  # ACTIVE, not started
        {"kind": "TRIAL", "auto_renew": False},
    ],
)
async def test_licences_change_only_on_a_paid_subscription_in_force(
    w: World, shape: dict[str, Any]
) -> None:
    sub = gid("Subscription", await w.subscription(**shape))
    payload = await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=20)
    refused(payload, "SUBSCRIPTION_NOT_ACTIVE")


# --- setAutoRenew ----------------------------------------------------------------------------


async def test_auto_renew_off_makes_expiring_soon_and_about_to_expire(w: World) -> None:
    # given: an auto-renewing subscription ending in 5 days
    customer = await w.customer()
    pk = await w.subscription(customer, end=NOW + 5 * DAY)
    assert "EXPIRING_SOON" not in await statuses(w.api, customer)
    assert (await kpis(w.api))["aboutToRenew"] == 1 and (await kpis(w.api))["aboutToExpire"] == 0

    # when
    off = await call(w.api, AUTO_RENEW, subscriptionId=gid("Subscription", pk), autoRenew=False)

    # then
    assert codes(off) == []
    assert (off["subscription"]["autoRenew"], off["subscription"]["renewalDate"]) == (False, None)
    assert off["order"]["action"] == "AUTO_RENEW_OFF"
    assert "EXPIRING_SOON" in await statuses(w.api, customer)
    figures = await kpis(w.api)
    assert (figures["aboutToRenew"], figures["aboutToExpire"]) == (0, 1)

    # when: on again
    on = await call(w.api, AUTO_RENEW, subscriptionId=gid("Subscription", pk), autoRenew=True)

    # then
    assert on["order"]["action"] == "AUTO_RENEW_ON"
    assert at(on["subscription"]["renewalDate"]) == NOW + 5 * DAY
    assert "EXPIRING_SOON" not in await statuses(w.api, customer)
    assert (await kpis(w.api))["aboutToRenew"] == 1


async def test_auto_renew_as_it_is_writes_nothing(w: World) -> None:
    sub = gid("Subscription", await w.subscription())
    before = await snapshot(w.api.engine)
    payload = await call(w.api, AUTO_RENEW, subscriptionId=sub, autoRenew=True)
    assert codes(payload) == [] and payload["order"] is None
    assert payload["subscription"]["autoRenew"] is True
    await assert_nothing_written(w.api, before, "setAutoRenew to its value")


async def test_auto_renew_codes(w: World) -> None:
    trial = gid("Subscription", await w.subscription(kind="TRIAL", auto_renew=False))
    expired = gid("Subscription", await w.subscription(state="EXPIRED"))
    refused(
        await call(w.api, AUTO_RENEW, subscriptionId=trial, autoRenew=True),
        "SUBSCRIPTION_NOT_RENEWABLE",
    )
    refused(
        await call(w.api, AUTO_RENEW, subscriptionId=expired, autoRenew=False),
        "SUBSCRIPTION_NOT_ACTIVE",
    )


# --- renewSubscription -----------------------------------------------------------------------


async def test_renewal_extends_the_end_with_an_order_and_an_invoice(w: World) -> None:
    # given: a subscription without auto-renew ending in 5 days (EXPIRING_SOON)
    customer = await w.customer()
    lines = [("MEETINGS", 10, 5, 3), ("CALLING", 4, 4, 2)]
    pk = await w.subscription(customer, end=NOW + 5 * DAY, auto_renew=False, lines=lines)
    assert "EXPIRING_SOON" in await statuses(w.api, customer)

    # when
    payload = await call(w.api, RENEW, subscriptionId=gid("Subscription", pk), termMonths=12)

    # then
    assert codes(payload) == []
    s = payload["subscription"]
    assert at(s["endDate"]) == (NOW + 5 * DAY).replace(year=2027) and s["renewalDate"] is None
    assert payload["order"]["action"] == "RENEWAL"
    (invoice,) = s["invoices"]
    assert invoice["amountCents"] == 12 * (10 * 1500 + 4 * 2500)
    assert "EXPIRING_SOON" not in await statuses(w.api, customer)
    assert (await kpis(w.api))["aboutToExpire"] == 0


async def test_renewal_moves_the_renewal_date_of_an_auto_renewing_one(w: World) -> None:
    pk = await w.subscription(end=NOW + 10 * DAY)
    payload = await call(w.api, RENEW, subscriptionId=gid("Subscription", pk), termMonths=1)
    s = payload["subscription"]
    assert at(s["endDate"]) == at(s["renewalDate"]) == NOW + 10 * DAY + 31 * DAY


@pytest.mark.parametrize("months", [0, 37, -12])
async def test_a_renewal_term_outside_1_to_36_is_refused(w: World, months: int) -> None:
    sub = gid("Subscription", await w.subscription())
    refused(
        await call(w.api, RENEW, subscriptionId=sub, termMonths=months),
        "INVALID_TERM",
        "termMonths",
    )


@pytest.mark.parametrize(
    "shape",
    [
        {"kind": "TRIAL", "auto_renew": False},
        {"state": "EXPIRED"},
        {"state": "CANCELLED"},
        {"end": NOW - DAY, "start": NOW - 100 * DAY},
    ],
)
async def test_trials_expired_and_cancelled_are_not_renewable(
    w: World, shape: dict[str, Any]
) -> None:
    sub = gid("Subscription", await w.subscription(**shape))
    refused(
        await call(w.api, RENEW, subscriptionId=sub, termMonths=12), "SUBSCRIPTION_NOT_RENEWABLE"
    )


# --- cancelSubscription ----------------------------------------------------------------------


async def test_cancel_at_term_end_is_the_default(w: World) -> None:
    # given
    customer = await w.customer()
    pk = await w.subscription(customer, end=NOW + 30 * DAY)

    # when
    payload = await call(w.api, CANCEL, subscriptionId=gid("Subscription", pk))

    # then: still in force until its end, no longer renewing
    assert codes(payload) == []
    s = payload["subscription"]
    assert (s["state"], s["autoRenew"], s["renewalDate"]) == ("ACTIVE", False, None)
    assert at(s["endDate"]) == NOW + 30 * DAY
    assert payload["order"]["action"] == "CANCELLATION_AT_TERM_END"
    assert "ACTIVE" in await statuses(w.api, customer)
    assert (await kpis(w.api))["aboutToExpire"] == 1

    # when: again, it already ends with its term
    again = await call(w.api, CANCEL, subscriptionId=gid("Subscription", pk), atTermEnd=True)
    assert codes(again) == [] and again["order"] is None


async def test_cancel_now_ends_it(w: World) -> None:
    # given: the customer's only subscription
    customer = await w.customer()
    pk = await w.subscription(customer)

    # when
    payload = await call(w.api, CANCEL, subscriptionId=gid("Subscription", pk), atTermEnd=False)

    # then
    assert codes(payload) == []
    s = payload["subscription"]
    assert (s["state"], s["autoRenew"], at(s["endDate"])) == ("CANCELLED", False, NOW)
    assert payload["order"]["action"] == "CANCELLATION"
    after = await statuses(w.api, customer)
    assert "ACTIVE" not in after and "EXPIRED" in after
    assert (await kpis(w.api))["totalCustomers"] == 0

    # when: again
    again = await call(w.api, CANCEL, subscriptionId=gid("Subscription", pk), atTermEnd=False)
    refused(again, "SUBSCRIPTION_NOT_ACTIVE")


async def test_cancelling_a_provisioning_order_cancels_its_order(w: World) -> None:
    customer = await w.customer()
    pk = await w.subscription(customer, state="PROVISIONING", start=NOW + 3 * DAY)
    await w.f._insert(
        Order,
        partner_id=w.acme,
        subscription_id=pk,
        order_number="ORD-X",
        placed_at=NOW - DAY,
        action="NEW",
        description="New",
        status="IN_PROGRESS",
    )
    at_end = await call(w.api, CANCEL, subscriptionId=gid("Subscription", pk))
    refused(at_end, "SUBSCRIPTION_NOT_ACTIVE")
    now = await call(w.api, CANCEL, subscriptionId=gid("Subscription", pk), atTermEnd=False)
    assert codes(now) == []
    assert [(o["action"], o["status"]) for o in now["subscription"]["orders"]] == [
        ("CANCELLATION", "COMPLETED"),
        ("NEW", "CANCELLED"),
    ]
    assert "READY_FOR_ORDER_SETUP" not in await statuses(w.api, customer)


# --- every mutation: isolation, ids, numbering, bad input ------------------------------------

CALLS = [
    (SETUP, {}),
    (QUANTITY, {"product": "MEETINGS", "purchased": 20}),
    (AUTO_RENEW, {"autoRenew": False}),
    (RENEW, {"termMonths": 12}),
    (CANCEL, {"atTermEnd": False}),
]


@pytest.mark.parametrize(("doc", "extra"), CALLS)
async def test_another_partners_subscription_is_refused_like_an_unknown_one(
    w: World, doc: str, extra: dict[str, Any]
) -> None:
    # given: a subscription of Globex, and an id nobody has
    theirs = await w.subscription(await w.customer(w.globex), state="PROVISIONING")
    mine = await w.subscription(state="PROVISIONING")
    before = await snapshot(w.api.engine)

    # when
    foreign = await call(w.api, doc, subscriptionId=gid("Subscription", theirs), **extra)
    unknown = await call(w.api, doc, subscriptionId=gid("Subscription", mine + 1000), **extra)

    # then
    assert foreign == unknown
    refused(foreign, "NOT_FOUND")
    await assert_nothing_written(w.api, before, "a change of another partner's subscription")


@pytest.mark.parametrize(("doc", "extra"), CALLS)
async def test_an_id_that_is_not_a_subscription_is_invalid(
    w: World, doc: str, extra: dict[str, Any]
) -> None:
    customer = gid("Customer", await w.customer())
    for raw in (customer, "nope", ""):
        payload = await call(w.api, doc, subscriptionId=raw, **extra)
        refused(payload, "INVALID_ID")


async def test_order_and_invoice_numbers_count_per_partner(w: World) -> None:
    # given: a subscription at each partner
    acme = gid("Subscription", await w.subscription())
    globex = gid("Subscription", await w.subscription(await w.customer(w.globex)))

    # when
    first = await call(w.api, RENEW, subscriptionId=acme, termMonths=1)
    second = await call(w.api, RENEW, subscriptionId=acme, termMonths=1)
    other = await call(w.api, RENEW, subscriptionId=globex, termMonths=1, as_=OTHER)

    # then
    numbers = [p["order"]["orderNumber"] for p in (first, second, other)]
    assert numbers == ["ORD-0000001", "ORD-0000002", "ORD-0000001"]
    invoices = [p["subscription"]["invoices"][0]["invoiceNumber"] for p in (second, other)]
    assert invoices == ["INV-0000002", "INV-0000001"]
    assert await count(w.api, PartnerCounter) == 4


async def test_a_trial_started_now_gets_a_per_partner_order_number(w: World) -> None:
    start = """mutation S($input: StartTrialInput!) { startTrial(input: $input) {
      trial { orders { orderNumber action } } userErrors { code } } }"""
    variables = {
        "input": {
            "customerId": gid("Customer", await w.customer()),
            "products": [{"product": "MEETINGS", "licenses": 5}],
            "durationDays": 30,
        }
    }
    body = await post_graphql(w.api, start, variables, as_=FULL)
    orders = data_of(body)["startTrial"]["trial"]["orders"]
    assert orders == [{"orderNumber": "ORD-0000001", "action": "TRIAL_START"}]


@pytest.mark.parametrize(
    ("doc", "variables", "code"),
    [
        (
            QUANTITY,
            {"input": {"subscriptionId": "x", "product": "NOPE", "purchased": 1}},
            "BAD_USER_INPUT",
        ),
        (
            QUANTITY,
            {"input": {"subscriptionId": "x", "product": "MEETINGS", "purchased": "7"}},
            "BAD_USER_INPUT",
        ),
        (
            QUANTITY,
            {"input": {"subscriptionId": "x", "product": "MEETINGS", "purchased": 2**40}},
            "BAD_USER_INPUT",
        ),
        (RENEW, {"input": {"subscriptionId": "x"}}, "BAD_USER_INPUT"),
        (CANCEL, {}, "BAD_USER_INPUT"),
        (AUTO_RENEW, {"input": {"subscriptionId": "x", "autoRenew": "no"}}, "BAD_USER_INPUT"),
    ],
)
async def test_malformed_input_is_a_coded_error_and_writes_nothing(
    w: World, doc: str, variables: dict[str, Any], code: str
) -> None:
    before = await snapshot(w.api.engine)
    body = await post_graphql(w.api, doc, variables, as_=FULL)
    assert error_codes(body) == [code], body
    assert body.get("data") is None
    await assert_nothing_written(w.api, before, "malformed input")


async def test_invoices_keep_the_currency_the_subscription_is_billed_in(w: World) -> None:
    pk = await w.subscription()
    await w.f._insert(
        Invoice,
        partner_id=w.acme,
        subscription_id=pk,
        invoice_number="INV-GLX-1",
        issued_at=NOW - 90 * DAY,
        due_at=NOW - 60 * DAY,
        amount_cents=100,
        currency="EUR",
        status="PAID",
    )
    payload = await call(w.api, RENEW, subscriptionId=gid("Subscription", pk), termMonths=3)
    newest = payload["subscription"]["invoices"][0]
    assert (newest["currency"], newest["invoiceNumber"]) == ("EUR", "INV-0000002")


async def test_a_partner_admin_changes_only_its_customers(w: World) -> None:
    # given: one customer assigned to partner@, one not
    mine, theirs = await w.customer(), await w.customer()
    async with w.api.engine.connect() as conn:
        pk = (await conn.execute(select(Admin.id).where(Admin.email == PARTNER))).scalar_one()  # type: ignore[arg-type]
    await w.f.assign(mine, pk)
    sub_mine = gid("Subscription", await w.subscription(mine))
    sub_theirs = gid("Subscription", await w.subscription(theirs))

    # when
    ok = await call(w.api, RENEW, as_=PARTNER, subscriptionId=sub_mine, termMonths=1)
    hidden = await call(w.api, RENEW, as_=PARTNER, subscriptionId=sub_theirs, termMonths=1)

    # then
    assert codes(ok) == []
    refused(hidden, "NOT_FOUND")


async def test_seeded_order_counts_are_where_numbering_starts(w: World) -> None:
    # given: three orders the partner already had (a seed, an import)
    pk = await w.subscription()
    for n in range(3):
        await w.f._insert(
            Order,
            partner_id=w.acme,
            subscription_id=pk,
            order_number=f"ORD-ACM-{n}",
            placed_at=NOW - 10 * DAY,
            action="NEW",
            description="seeded",
            status="COMPLETED",
        )
    payload = await call(w.api, AUTO_RENEW, subscriptionId=gid("Subscription", pk), autoRenew=False)
    assert payload["order"]["orderNumber"] == "ORD-0000004"
    async with w.api.engine.begin() as conn:
        await conn.execute(
            insert(Order).values(
                partner_id=w.acme,
                subscription_id=pk,
                order_number="ORD-ACM-9",
                placed_at=NOW,
                action="NEW",
                description="seeded later",
                status="COMPLETED",
            )
        )
    again = await call(w.api, AUTO_RENEW, subscriptionId=gid("Subscription", pk), autoRenew=True)
    assert again["order"]["orderNumber"] == "ORD-0000005"  # the counter, not a recount


SECTIONS = """
query {
  licenseAnalytics(product: MEETINGS) {
    aboutToExpire { kpis { expiringCustomers } }
    aboutToRenew { kpis { renewingCustomers } }
    overage { kpis { overageCustomers overageLicenses } }
  }
}
"""


async def sections(api: Api) -> tuple[int, int, int, int]:
    body = data_of(await post_graphql(api, SECTIONS, as_=FULL))["licenseAnalytics"]
    overage = body["overage"]["kpis"]
    return (
        body["aboutToExpire"]["kpis"]["expiringCustomers"],
        body["aboutToRenew"]["kpis"]["renewingCustomers"],
        overage["overageCustomers"],
        overage["overageLicenses"],
    )


async def test_analytics_sections_move_with_each_change(w: World) -> None:
    # given: an auto-renewing subscription ending in 60 days, 3 licences over
    pk = await w.subscription(end=NOW + 60 * DAY, lines=[("MEETINGS", 10, 13, 8)])
    sub = gid("Subscription", pk)
    assert await sections(w.api) == (0, 1, 1, 3)

    # when / then: each change shows in the next read
    await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=11)
    assert await sections(w.api) == (0, 1, 1, 2)
    await call(w.api, QUANTITY, subscriptionId=sub, product="MEETINGS", purchased=13)
    assert await sections(w.api) == (0, 1, 0, 0)
    await call(w.api, AUTO_RENEW, subscriptionId=sub, autoRenew=False)
    assert await sections(w.api) == (1, 0, 0, 0)
    await call(w.api, RENEW, subscriptionId=sub, termMonths=12)
    assert await sections(w.api) == (0, 0, 0, 0)  # ends in more than 90 days now


async def test_an_invoice_too_large_for_one_invoice_is_refused(w: World) -> None:
    # given: 100,000 Contact Center licences (36 months of them: 32.4 billion cents)
    sub = gid("Subscription", await w.subscription(lines=[("CONTACT_CENTER", 100_000, 10, 5)]))
    before = await snapshot(w.api.engine)

    # when
    payload = await call(w.api, RENEW, subscriptionId=sub, termMonths=36)

    # then
    refused(payload, "INVOICE_AMOUNT_TOO_LARGE", "termMonths")
    await assert_nothing_written(w.api, before, "an invoice above 2**31 - 1 cents")
