"""Trials through HTTP (issue 5): start, extend, convert; each rule, each role, the audit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Api
from tests.helpers import data_of, post_graphql
from tests.test_tags import (
    FULL,
    OTHER,
    PARTNER,
    ROLE_EMAILS,
    SALES,
    World,
    assert_each_forbidden,
    assert_each_refused,
    assert_refused,
    audit_count,
    audit_since,
    build_world,
    codes,
    gid,
    mutate,
    ok,
    policy_scope,
)

DAY = timedelta(days=1)
ROLE_OF_EMAIL = {email: role for role, email in ROLE_EMAILS.items()}
SUBSCRIPTION_FIELDS = """
  id subscriptionId kind state startDate endDate autoRenew renewalDate
  licenses { product licenseType purchased assigned }
"""
CUSTOMER_FIELDS = "id name statuses partnerAdmins { admin { email } role }"
START_TRIAL = f"""
mutation StartTrial($input: StartTrialInput!) {{
  startTrial(input: $input) {{
    trial {{ {SUBSCRIPTION_FIELDS} }}
    customer {{ {CUSTOMER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""
EXTEND_TRIAL = f"""
mutation ExtendTrial($input: ExtendTrialInput!) {{
  extendTrial(input: $input) {{
    trial {{ {SUBSCRIPTION_FIELDS} }}
    customer {{ {CUSTOMER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""
CONVERT_TRIAL = f"""
mutation ConvertTrial($input: ConvertTrialInput!) {{
  convertTrial(input: $input) {{
    trial {{ {SUBSCRIPTION_FIELDS} }}
    subscription {{ {SUBSCRIPTION_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""
CUSTOMER = f"""
query Customer($id: ID!) {{
  customer(id: $id) {{ {CUSTOMER_FIELDS} trials {{ id state }} subscriptions {{ id kind }} }}
}}
"""
DIRECTORY = "query Directory { customers(first: 100) { totalCount nodes { id name statuses } } }"


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def products(*items: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"product": p, "licenses": n} for p, n in items]


def for_customer(pk: int, *items: tuple[str, int], days: int = 30) -> dict[str, Any]:
    return {"customerId": gid("Customer", pk), "products": products(*items), "durationDays": days}


def for_new(name: str, email: str, *items: tuple[str, int], days: int = 30) -> dict[str, Any]:
    return {
        "newCustomer": {"name": name, "adminEmail": email},
        "products": products(*items),
        "durationDays": days,
    }


async def start(api: Api, input: dict[str, Any], *, as_: str = FULL) -> dict[str, Any]:
    return ok(await mutate(api, START_TRIAL, input, as_=as_))


async def customer(api: Api, pk: int | str, *, as_: str = FULL) -> dict[str, Any] | None:
    id = pk if isinstance(pk, str) else gid("Customer", pk)
    found: dict[str, Any] | None = data_of(await post_graphql(api, CUSTOMER, {"id": id}, as_=as_))[
        "customer"
    ]
    return found


async def seeded_trial(world: World, pk: int, product: str, **kw: Any) -> str:
    """A trial written straight to the database (in force unless ``start``/``end`` say not)."""
    kw.setdefault("start", NOW - 5 * DAY)
    kw.setdefault("end", NOW + 20 * DAY)
    sub = await world.factory.subscription(
        pk, kind="TRIAL", auto_renew=False, lines=[(product, 10, 0, 0)], **kw
    )
    return gid("Subscription", sub)


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


# --- startTrial ----------------------------------------------------------------------------------


async def test_start_trial_for_an_existing_customer(api: Api, world: World) -> None:
    # given
    count = await audit_count(api)
    # when
    payload = await start(api, for_customer(world.unassigned, ("MEETINGS", 10), ("CALLING", 5)))
    # then
    trial = payload["trial"]
    assert (trial["kind"], trial["state"], trial["autoRenew"]) == ("TRIAL", "ACTIVE", False)
    assert (at(trial["startDate"]), at(trial["endDate"])) == (NOW, NOW + 30 * DAY)
    assert trial["renewalDate"] is None
    assert sorted((x["product"], x["purchased"]) for x in trial["licenses"]) == [
        ("CALLING", 5),
        ("MEETINGS", 10),
    ]
    assert payload["customer"]["id"] == gid("Customer", world.unassigned)
    assert "TRIAL" in payload["customer"]["statuses"]
    found = await customer(api, world.unassigned)
    assert found is not None
    assert [t["id"] for t in found["trials"]] == [trial["id"]]
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "startTrial",
        "subscription",
        trial["id"],
    )
    assert entry["after"]["products"] == {"MEETINGS": 10, "CALLING": 5}
    assert entry["after"]["kind"] == "TRIAL"
    # when / then: another product is a second trial; the same one is refused
    await start(api, for_customer(world.unassigned, ("MESSAGING", 1), days=1))
    await assert_refused(
        api,
        START_TRIAL,
        for_customer(world.unassigned, ("CONTACT_CENTER", 3), ("CALLING", 3)),
        "TRIAL_ALREADY_ACTIVE",
    )
    # then: the limits are inclusive (1 and 1000 licenses, 1 and 90 days)
    await start(api, for_customer(world.unassigned, ("CONTACT_CENTER", 1000), days=90))
    await start(api, for_customer(world.assigned, ("CONTACT_CENTER", 1), days=1))
    # given: a MEETINGS trial that has ended and a CALLING one that expired early
    await seeded_trial(world, world.assigned, "MEETINGS", start=NOW - 40 * DAY, end=NOW)
    await seeded_trial(world, world.assigned, "CALLING", state="EXPIRED")
    # when / then: trials no longer in force do not block
    await start(api, for_customer(world.assigned, ("MEETINGS", 5), ("CALLING", 5)))


async def test_start_trial_refuses_each_broken_rule_and_writes_nothing(
    api: Api, world: World
) -> None:
    # given: a MEETINGS trial in force for the assigned customer
    await seeded_trial(world, world.assigned, "MEETINGS")
    good = for_customer(world.unassigned, ("MEETINGS", 10))
    new = for_new("New Org", "admin@new.example", ("MEETINGS", 10))
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "durationDays": 0}, "TRIAL_DURATION_OUT_OF_RANGE"),
        ({**good, "durationDays": 91}, "TRIAL_DURATION_OUT_OF_RANGE"),
        ({**new, "durationDays": -1}, "TRIAL_DURATION_OUT_OF_RANGE"),
        ({**good, "products": products(("MEETINGS", 0))}, "INVALID_LICENSE_COUNT"),
        (
            {**good, "products": products(("CALLING", 5), ("MEETINGS", 1001))},
            "INVALID_LICENSE_COUNT",
        ),
        ({**new, "products": products(("CALLING", -3))}, "INVALID_LICENSE_COUNT"),
        ({**good, "products": products(("CALLING", 5), ("CALLING", 6))}, "DUPLICATE_PRODUCT"),
        ({**good, "products": []}, "PRODUCTS_REQUIRED"),
        ({**new, "products": []}, "PRODUCTS_REQUIRED"),
        ({"products": good["products"], "durationDays": 30}, "CUSTOMER_REQUIRED"),
        ({**good, "newCustomer": new["newCustomer"]}, "CUSTOMER_REQUIRED"),
        ({**new, "newCustomer": {"name": "X", "adminEmail": "no-at-sign"}}, "INVALID_EMAIL"),
        ({**new, "newCustomer": {"name": "X", "adminEmail": "a@b"}}, "INVALID_EMAIL"),
        ({**new, "newCustomer": {"name": "X", "adminEmail": ""}}, "INVALID_EMAIL"),
        (
            {**new, "newCustomer": {"name": "  ", "adminEmail": "a@b.example"}},
            "INVALID_CUSTOMER_NAME",
        ),
        (
            {**new, "newCustomer": {"name": "n" * 201, "adminEmail": "a@b.example"}},
            "INVALID_CUSTOMER_NAME",
        ),
        (  # 200 characters, 400 once lower-cased: refused, not a 500
            {**new, "newCustomer": {"name": "İ" * 200, "adminEmail": "a@b.example"}},
            "INVALID_CUSTOMER_NAME",
        ),
        (for_customer(world.assigned, ("CALLING", 2), ("MEETINGS", 2)), "TRIAL_ALREADY_ACTIVE"),
        (for_customer(world.foreign, ("MEETINGS", 10)), "NOT_FOUND"),
        (for_customer(999_999, ("MEETINGS", 10)), "NOT_FOUND"),
        ({**good, "customerId": "garbage"}, "INVALID_ID"),
        ({**good, "customerId": gid("Tag", 1)}, "INVALID_ID"),
    ]
    # when / then
    await assert_each_refused(api, [(START_TRIAL, input, code) for input, code in cases])


async def test_start_trial_for_a_new_customer_assigns_the_caller(api: Api, world: World) -> None:
    for n, email in enumerate([FULL, PARTNER, SALES]):
        # given
        count = await audit_count(api)
        seen_before = data_of(await post_graphql(api, DIRECTORY, as_=email))["customers"]
        name = f"Brand New Org {n}"
        # when
        payload = await start(
            api, for_new(f"  {name} ", " boss@brand-new.example ", ("MEETINGS", 25)), as_=email
        )
        # then: the customer exists, the caller is assigned to it and sees it in the directory
        created = payload["customer"]
        assert created["name"] == name
        assert created["partnerAdmins"] == [
            {"admin": {"email": email}, "role": ROLE_OF_EMAIL[email]}
        ]
        assert "TRIAL" in created["statuses"]
        seen = data_of(await post_graphql(api, DIRECTORY, as_=email))["customers"]
        assert seen["totalCount"] == seen_before["totalCount"] + 1
        (row,) = [c for c in seen["nodes"] if c["id"] == created["id"]]
        assert "TRIAL" in row["statuses"]
        found = await customer(api, created["id"], as_=email)
        assert found is not None and [t["id"] for t in found["trials"]] == [payload["trial"]["id"]]
        # then: two audit entries, the new customer and its trial
        customer_entry, trial_entry = await audit_since(api, count)
        assert (customer_entry["operation"], customer_entry["objectType"]) == (
            "startTrial",
            "customer",
        )
        assert customer_entry["objectId"] == created["id"]
        assert customer_entry["after"] == {"name": name, "adminEmail": "boss@brand-new.example"}
        assert (trial_entry["operation"], trial_entry["objectType"]) == (
            "startTrial",
            "subscription",
        )
        assert trial_entry["objectId"] == payload["trial"]["id"]
        assert {e["adminId"] for e in (customer_entry, trial_entry)} == {
            gid("Admin", world.admins[email])
        }


# --- extendTrial ---------------------------------------------------------------------------------


async def test_extend_trial_in_30_day_steps_up_to_90_days_from_now(api: Api, world: World) -> None:
    # given: a 5-day trial (expiring soon)
    started = await start(api, for_customer(world.unassigned, ("MEETINGS", 10), days=5))
    trial_id = started["trial"]["id"]
    assert "EXPIRING_SOON" in started["customer"]["statuses"]
    # when / then
    await assert_each_refused(
        api,
        [
            (EXTEND_TRIAL, {"trialId": trial_id, "days": days}, "TRIAL_EXTENSION_INVALID")
            for days in (15, 0, -30, 45)
        ],
    )
    count = await audit_count(api)
    # when: the default step is 30 days
    payload = ok(await mutate(api, EXTEND_TRIAL, {"trialId": trial_id}, as_=FULL))
    # then
    assert at(payload["trial"]["endDate"]) == NOW + 35 * DAY
    assert "EXPIRING_SOON" not in payload["customer"]["statuses"]
    assert "TRIAL" in payload["customer"]["statuses"]
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "extendTrial",
        "subscription",
        trial_id,
    )
    assert at(entry["before"]["endDate"]) == NOW + 5 * DAY
    assert at(entry["after"]["endDate"]) == NOW + 35 * DAY
    # when / then: 35 + 60 days would end 95 days from now; far more is refused as well
    await assert_each_refused(
        api,
        [
            (EXTEND_TRIAL, {"trialId": trial_id, "days": days}, "TRIAL_EXTENSION_TOO_LONG")
            for days in (60, 120, 2_147_483_640)
        ],
    )
    # when: 60 days to a 30-day trial ends exactly 90 days from now
    other = await start(api, for_customer(world.assigned, ("CALLING", 10), days=30))
    longest = ok(
        await mutate(api, EXTEND_TRIAL, {"trialId": other["trial"]["id"], "days": 60}, as_=FULL)
    )
    # then
    assert at(longest["trial"]["endDate"]) == NOW + 90 * DAY
    await assert_refused(
        api, EXTEND_TRIAL, {"trialId": other["trial"]["id"]}, "TRIAL_EXTENSION_TOO_LONG"
    )


async def test_extend_trial_refuses_what_is_not_a_trial_in_force(api: Api, world: World) -> None:
    # given
    ended = await seeded_trial(world, world.assigned, "MEETINGS", start=NOW - 40 * DAY, end=NOW)
    expired = await seeded_trial(world, world.assigned, "CALLING", state="EXPIRED")
    future = await seeded_trial(world, world.assigned, "MESSAGING", start=NOW + DAY)
    foreign = await seeded_trial(world, world.foreign, "MEETINGS")
    cases = [
        (ended, "TRIAL_NOT_ACTIVE"),
        (expired, "TRIAL_NOT_ACTIVE"),
        (future, "TRIAL_NOT_ACTIVE"),
        (gid("Subscription", world.assigned_sub), "NOT_FOUND"),  # a paid subscription
        (foreign, "NOT_FOUND"),
        (gid("Subscription", 999_999), "NOT_FOUND"),
        (gid("Customer", world.assigned), "INVALID_ID"),
        ("!!", "INVALID_ID"),
    ]
    convert = {"autoRenew": True, "termMonths": 12}
    # when / then
    await assert_each_refused(
        api,
        [(EXTEND_TRIAL, {"trialId": trial_id, "days": 30}, code) for trial_id, code in cases]
        + [(CONVERT_TRIAL, {"trialId": trial_id, **convert}, code) for trial_id, code in cases],
    )


# --- convertTrial --------------------------------------------------------------------------------


async def test_convert_trial_into_a_paid_subscription(api: Api, world: World) -> None:
    # given: a new customer whose only subscription is a trial
    started = await start(
        api, for_new("Converts Ltd", "it@converts.example", ("MEETINGS", 40), ("CALLING", 7))
    )
    trial_id, customer_id = started["trial"]["id"], started["customer"]["id"]
    # when / then
    await assert_each_refused(
        api,
        [
            (
                CONVERT_TRIAL,
                {"trialId": trial_id, "autoRenew": True, "termMonths": m},
                "INVALID_TERM",
            )
            for m in (0, 61, -12)
        ],
    )
    count = await audit_count(api)
    # when
    payload = ok(
        await mutate(
            api, CONVERT_TRIAL, {"trialId": trial_id, "autoRenew": True, "termMonths": 12}, as_=FULL
        )
    )
    # then: the trial ended now
    trial, paid = payload["trial"], payload["subscription"]
    assert (trial["id"], trial["kind"], trial["state"]) == (trial_id, "TRIAL", "EXPIRED")
    assert at(trial["endDate"]) == NOW
    # then: a paid subscription with the same licenses runs 12 months and renews then
    assert (paid["kind"], paid["state"], paid["autoRenew"]) == ("PAID", "ACTIVE", True)
    assert paid["subscriptionId"] != trial["subscriptionId"]
    assert at(paid["startDate"]) == NOW
    assert at(paid["endDate"]) == NOW.replace(year=NOW.year + 1)
    assert at(paid["renewalDate"]) == at(paid["endDate"])
    assert sorted((x["product"], x["purchased"]) for x in paid["licenses"]) == [
        ("CALLING", 7),
        ("MEETINGS", 40),
    ]
    # then: billed a year in advance, at the documented prices (db/billing.py), with its order
    billed = data_of(
        await post_graphql(
            api,
            "query($id: ID!) { node(id: $id) { ... on Subscription { "
            "invoices { amountCents status } orders { action } } } }",
            {"id": paid["id"]},
            as_=FULL,
        )
    )["node"]
    assert billed["invoices"] == [{"amountCents": 12 * (40 * 1500 + 7 * 2500), "status": "OPEN"}]
    assert [o["action"] for o in billed["orders"]] == ["CONVERSION"]
    # then: the customer is a paying one, no longer on trial
    found = await customer(api, customer_id)
    assert found is not None
    assert "ACTIVE" in found["statuses"] and "TRIAL" not in found["statuses"]
    assert sorted(s["kind"] for s in found["subscriptions"]) == ["PAID", "TRIAL"]
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "convertTrial",
        "subscription",
        trial_id,
    )
    assert entry["before"]["state"] == "ACTIVE"
    assert entry["after"]["trial"]["state"] == "EXPIRED"
    assert entry["after"]["subscription"]["subscriptionId"] == paid["subscriptionId"]
    # when / then: a converted trial is no longer in force
    again = {"trialId": trial_id, "autoRenew": True, "termMonths": 12}
    await assert_refused(api, CONVERT_TRIAL, again, "TRIAL_NOT_ACTIVE")
    await assert_refused(api, EXTEND_TRIAL, {"trialId": trial_id}, "TRIAL_NOT_ACTIVE")
    # when: without auto-renew there is no renewal date
    second = await start(api, for_customer(world.assigned, ("MESSAGING", 3)))
    manual = ok(
        await mutate(
            api,
            CONVERT_TRIAL,
            {"trialId": second["trial"]["id"], "autoRenew": False, "termMonths": 1},
            as_=FULL,
        )
    )
    # then
    assert manual["subscription"]["autoRenew"] is False
    assert manual["subscription"]["renewalDate"] is None
    assert at(manual["subscription"]["endDate"]) == NOW.replace(month=12)


# --- who may do what -----------------------------------------------------------------------------

NEEDS = {
    "startTrial": [("trial", "write")],
    "extendTrial": [("trial", "write")],
    # a paid subscription comes out of it: subscription/write as well
    "convertTrial": [("trial", "write"), ("subscription", "write")],
}


def expected_scope(role: str, operation: str) -> str | None:
    """The narrowest scope of the rules an operation needs (None: one of them is missing)."""
    scopes = [policy_scope(role, obj, act) for obj, act in NEEDS[operation]]
    if None in scopes:
        return None
    return "assigned" if "assigned" in scopes else "all"


async def test_trial_mutations_by_role_follow_the_default_policy(api: Api, world: World) -> None:
    trial_products = {
        "FULL_ADMIN": "MEETINGS",
        "PARTNER_ADMIN": "CALLING",
        "READ_ONLY_ADMIN": "MESSAGING",
        "SALES_ADMIN": "CONTACT_CENTER",
    }
    for role, email in ROLE_EMAILS.items():
        # given: per role, a customer assigned to partner@ and sales@ and one nobody's
        product = trial_products[role]
        own = await world.factory.customer(world.acme, f"Assigned for {role}")
        for assignee in (PARTNER, SALES):
            await world.factory.assign(own, world.admins[assignee])
        stranger = await world.factory.customer(world.acme, f"Nobody's for {role}")
        mine = await seeded_trial(world, own, product)
        theirs = await seeded_trial(world, stranger, product)
        convert = {"autoRenew": False, "termMonths": 6}
        calls: list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]] = [
            (
                "startTrial",
                START_TRIAL,
                [
                    for_new(f"New for {role}", "x@new.example", (product, 1)),
                    for_customer(own, ("REAL_TIME_TRANSLATION", 1)),
                ],
                for_customer(stranger, ("REAL_TIME_TRANSLATION", 1)),
            ),
            ("extendTrial", EXTEND_TRIAL, [{"trialId": mine}], {"trialId": theirs}),
            (
                "convertTrial",
                CONVERT_TRIAL,
                [{"trialId": mine, **convert}],
                {"trialId": theirs, **convert},
            ),
        ]
        for operation, document, on_mine, on_theirs in calls:
            scope = expected_scope(role, operation)
            if scope is None:
                # then: FORBIDDEN, whatever the customer
                refused = [(document, input) for input in [*on_mine, on_theirs]]
                await assert_each_forbidden(api, refused, as_=email)
                continue
            # then: allowed on its customers (and on new ones), audited
            for input in on_mine:
                count = await audit_count(api)
                assert codes(await mutate(api, document, input, as_=email)) == [], (role, input)
                entries = await audit_since(api, count)
                assert {e["operation"] for e in entries} == {operation}
                assert len(entries) == (2 if "newCustomer" in input else 1)
            if scope == "all":
                ok(await mutate(api, document, on_theirs, as_=email))
            else:  # a customer it is not assigned to does not exist for it
                await assert_refused(api, document, on_theirs, "NOT_FOUND", as_=email)
    # then the policy is what the roles table of DESIGN.md says
    assert [expected_scope(r, "startTrial") for r in ROLE_EMAILS] == [
        "all",
        "assigned",
        None,
        "assigned",
    ]
    assert [expected_scope(r, "convertTrial") for r in ROLE_EMAILS] == [
        "all",
        "assigned",
        None,
        None,
    ]
    # other partners' admins never reach Acme's trials
    acme_trial = await seeded_trial(world, world.assigned, "REAL_TIME_TRANSLATION")
    await assert_refused(api, EXTEND_TRIAL, {"trialId": acme_trial}, "NOT_FOUND", as_=OTHER)
