"""Launch links and the own-organization setup wizard through HTTP (issue 5).

A launch link carries a signed token: 5 minutes, single use, bound to the admin, its role and
the organization. The receiving console checks it with ``verifyLaunchToken``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import NOW, Api, api_over
from tests.helpers import data_of, post_graphql
from tests.test_tags import (
    FULL,
    OTHER,
    PARTNER,
    ROLE_EMAILS,
    World,
    assert_each_forbidden,
    assert_each_refused,
    assert_refused,
    audit_count,
    audit_since,
    build_world,
    gid,
    mutate,
    ok,
    policy_scope,
    warm_up,
)

ERRORS = "userErrors { field message code }"
LAUNCH = f"""
mutation Launch($input: LaunchCustomerInput!) {{
  launchCustomerOrganization(input: $input) {{ url expiresAt setupRequired {ERRORS} }}
}}
"""
LAUNCH_MINE = (
    f"mutation LaunchMine {{ launchMyOrganization {{ url expiresAt setupRequired {ERRORS} }} }}"
)
VERIFY = f"""
mutation Verify($input: VerifyLaunchTokenInput!) {{
  verifyLaunchToken(input: $input) {{
    grant {{ adminEmail role organizationType organizationId organizationName }}
    {ERRORS}
  }}
}}
"""
SETUP_FIELDS = f"partner {{ id ownOrganization {{ setupState termsAcceptedAt }} }} {ERRORS}"
ACCEPT_TERMS = f"mutation AcceptTerms {{ acceptTerms {{ {SETUP_FIELDS} }} }}"
COMPLETE_SETUP = f"mutation CompleteSetup {{ completeOrganizationSetup {{ {SETUP_FIELDS} }} }}"
SETUP_STATE = "query Setup { partner { ownOrganization { setupState termsAcceptedAt } } }"
UPDATE_ADMIN = f"""
mutation UpdateAdmin($input: UpdateAdminInput!) {{ updateAdmin(input: $input) {{ {ERRORS} }} }}
"""
DEACTIVATE_ADMIN = f"""
mutation Deactivate($input: DeactivateAdminInput!) {{
  deactivateAdmin(input: $input) {{ {ERRORS} }}
}}
"""


def token_of(url: str, console_url: str) -> str:
    assert url.startswith(console_url + "?"), url
    (token,) = parse_qs(urlsplit(url).query)["token"]
    return token


def flip(text: str, index: int) -> str:
    """``text`` with one base64url character changed."""
    new = "A" if text[index] != "A" else "B"
    return text[:index] + new + text[index + 1 :]


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def launch(api: Api, customer: int, *, as_: str = FULL) -> tuple[str, dict[str, Any]]:
    payload = ok(await mutate(api, LAUNCH, {"customerId": gid("Customer", customer)}, as_=as_))
    return token_of(payload["url"], api.settings.console_url), payload


async def verify(api: Api, token: str, *, as_: str = FULL) -> dict[str, Any]:
    return await mutate(api, VERIFY, {"token": token}, as_=as_)


@asynccontextmanager
async def app_at(api: Api, now: datetime) -> AsyncIterator[Api]:
    """A second API instance over the same database whose clock reads ``now``."""
    async with api_over(api.db, now=now) as other:
        await warm_up(other)
        yield other


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


# --- launchCustomerOrganization and verifyLaunchToken -----------------------------------------


async def test_a_launch_token_is_accepted_once(api: Api, world: World) -> None:
    # given
    count = await audit_count(api)
    # when
    token, payload = await launch(api, world.unassigned)
    # then: a 5-minute link, audited
    assert datetime.fromisoformat(payload["expiresAt"]) == NOW + timedelta(minutes=5)
    assert payload["setupRequired"] is False
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "launchCustomerOrganization",
        "customer",
        gid("Customer", world.unassigned),
    )
    assert entry["adminId"] == gid("Admin", world.admins[FULL])
    assert entry["after"]["role"] == "FULL_ADMIN"
    # when: the console checks it
    count = await audit_count(api)
    first = ok(await verify(api, token))
    # then: who, with which role, where
    assert first["grant"] == {
        "adminEmail": FULL,
        "role": "FULL_ADMIN",
        "organizationType": "CUSTOMER",
        "organizationId": gid("Customer", world.unassigned),
        "organizationName": "Unassigned Co",
    }
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "verifyLaunchToken",
        "customer",
        gid("Customer", world.unassigned),
    )
    assert entry["after"] == {"adminEmail": FULL, "role": "FULL_ADMIN"}
    # when / then: never twice
    second = await assert_refused(api, VERIFY, {"token": token}, "LAUNCH_TOKEN_USED")
    assert second["grant"] is None


async def test_a_tampered_launch_token_is_refused(api: Api, world: World) -> None:
    # given
    token, _ = await launch(api, world.assigned)
    payload, signature = token.split(".")
    claims = json.loads(b64decode(payload))
    forged = dict(claims, org=f"CUSTOMER:{world.unassigned}")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    promoted = dict(claims, role="FULL_ADMIN", adm=world.admins[FULL])
    promoted_payload = base64.urlsafe_b64encode(json.dumps(promoted).encode()).decode().rstrip("=")
    tampered = [
        f"{flip(payload, 0)}.{signature}",
        f"{flip(payload, len(payload) // 2)}.{signature}",
        f"{payload}.{flip(signature, len(signature) - 1)}",
        f"{payload}.{flip(signature, 0)}",
        f"{forged_payload}.{signature}",
        f"{promoted_payload}.{signature}",
        f"{payload}.",
        payload,
        "",
        "not a token at all",
    ]
    # when / then
    await assert_each_refused(
        api, [(VERIFY, {"token": bad}, "LAUNCH_TOKEN_INVALID") for bad in tampered]
    )
    # then: the genuine token was not used up by the attempts
    assert ok(await verify(api, token))["grant"]["organizationName"] == "Assigned Co"


async def test_an_expired_launch_token_is_refused(api: Api, world: World) -> None:
    # given: a token issued at NOW (valid 5 minutes)
    token, _ = await launch(api, world.assigned)
    # when / then: 6 minutes later, on another API instance, it has expired
    async with app_at(api, NOW + timedelta(minutes=6)) as later:
        await assert_refused(later, VERIFY, {"token": token}, "LAUNCH_TOKEN_EXPIRED")
        # then: that instance's own fresh tokens are fine
        fresh, _ = await launch(later, world.unassigned)
        assert ok(await verify(later, fresh))["grant"]["organizationName"] == "Unassigned Co"
    # then: back at NOW the token was not used up by the refusal
    assert ok(await verify(api, token))["grant"]["organizationName"] == "Assigned Co"


async def test_a_token_is_bound_to_the_admin_and_its_role(api: Api, world: World) -> None:
    # given: partner@ launched, then lost its role; partner2@ launched, then was deactivated
    second = await world.factory.admin(world.acme, "partner2@acme.example", "PARTNER_ADMIN")
    await world.factory.assign(world.assigned, second)
    demoted, _ = await launch(api, world.assigned, as_=PARTNER)
    gone, _ = await launch(api, world.assigned, as_="partner2@acme.example")
    change = {"id": gid("Admin", world.admins[PARTNER]), "role": "READ_ONLY_ADMIN"}
    ok(await mutate(api, UPDATE_ADMIN, change, as_=FULL))
    ok(await mutate(api, DEACTIVATE_ADMIN, {"id": gid("Admin", second)}, as_=FULL))
    # when / then
    await assert_each_refused(
        api, [(VERIFY, {"token": token}, "LAUNCH_TOKEN_INVALID") for token in (demoted, gone)]
    )


async def test_launch_by_role_follows_the_default_policy(api: Api, world: World) -> None:
    """Only admins who may manage (customer/write) the customer get a link."""
    for role, email in ROLE_EMAILS.items():
        scope = policy_scope(role, "customer", "write")
        mine = {"customerId": gid("Customer", world.assigned)}
        theirs = {"customerId": gid("Customer", world.unassigned)}
        if scope is None:
            # when / then: FORBIDDEN, nothing issued, nothing audited
            await assert_each_forbidden(api, [(LAUNCH, mine), (LAUNCH, theirs)], as_=email)
            # then: nor may they use a launch token (issue 14: verifying is a launch right too)
            await assert_each_forbidden(api, [(VERIFY, {"token": "x.y"})], as_=email)
            continue
        count = await audit_count(api)
        token, _ = await launch(api, world.assigned, as_=email)
        (entry,) = await audit_since(api, count)
        assert (entry["operation"], entry["adminId"]) == (
            "launchCustomerOrganization",
            gid("Admin", world.admins[email]),
        )
        assert entry["after"]["role"] == role
        grant = ok(await verify(api, token, as_=email))["grant"]
        assert (grant["adminEmail"], grant["role"]) == (email, role)
        if scope == "all":
            await launch(api, world.unassigned, as_=email)
        else:
            await assert_refused(api, LAUNCH, theirs, "NOT_FOUND", as_=email)
    assert [policy_scope(r, "customer", "write") for r in ROLE_EMAILS] == [
        "all",
        "assigned",
        None,
        None,
    ]
    # another partner's customer does not exist for Acme; bad IDs are refused
    await assert_refused(api, LAUNCH, {"customerId": gid("Customer", world.foreign)}, "NOT_FOUND")
    await assert_refused(api, LAUNCH, {"customerId": gid("Customer", 999_999)}, "NOT_FOUND")
    await assert_refused(api, LAUNCH, {"customerId": "???"}, "INVALID_ID")
    await assert_refused(api, LAUNCH, {"customerId": gid("Tag", 1)}, "INVALID_ID")


# --- launchMyOrganization and the first-time setup ---------------------------------------------


async def test_own_organization_setup_wizard(api: Api, world: World) -> None:
    # given: only admins who manage the partner's admins (admin/manage) run its own organization
    for role, email in ROLE_EMAILS.items():
        if policy_scope(role, "admin", "manage") is None:
            calls = [(d, None) for d in (LAUNCH_MINE, ACCEPT_TERMS, COMPLETE_SETUP)]
            await assert_each_forbidden(api, calls, as_=email)
    assert [policy_scope(r, "admin", "manage") for r in ROLE_EMAILS] == ["all", None, None, None]
    setup = data_of(await post_graphql(api, SETUP_STATE, as_=FULL))["partner"]["ownOrganization"]
    assert setup == {"setupState": "NOT_STARTED", "termsAcceptedAt": None}
    count = await audit_count(api)
    # when
    payload = ok(await mutate(api, LAUNCH_MINE, None, as_=FULL))
    # then: a link into the partner's own organization, audited; the setup is not done
    assert payload["setupRequired"] is True
    assert datetime.fromisoformat(payload["expiresAt"]) == NOW + timedelta(minutes=5)
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "launchMyOrganization",
        "partner",
        gid("Partner", world.acme),
    )
    grant = ok(await verify(api, token_of(payload["url"], api.settings.console_url)))["grant"]
    assert grant == {
        "adminEmail": FULL,
        "role": "FULL_ADMIN",
        "organizationType": "PARTNER",
        "organizationId": gid("Partner", world.acme),
        "organizationName": "Acme Partners",
    }
    # when / then: "Start" before accepting the terms is out of order
    await assert_refused(api, COMPLETE_SETUP, None, "INVALID_SETUP_STATE")
    # when
    count = await audit_count(api)
    accepted = ok(await mutate(api, ACCEPT_TERMS, None, as_=FULL))
    # then
    own = accepted["partner"]["ownOrganization"]
    assert own["setupState"] == "TERMS_ACCEPTED"
    assert datetime.fromisoformat(own["termsAcceptedAt"]) == NOW
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectId"]) == ("acceptTerms", gid("Partner", world.acme))
    assert (entry["before"], entry["after"]) == (
        {"setupState": "NOT_STARTED"},
        {"setupState": "TERMS_ACCEPTED"},
    )
    await assert_refused(api, ACCEPT_TERMS, None, "INVALID_SETUP_STATE")
    assert ok(await mutate(api, LAUNCH_MINE, None, as_=FULL))["setupRequired"] is True
    # when
    count = await audit_count(api)
    ready = ok(await mutate(api, COMPLETE_SETUP, None, as_=FULL))
    # then
    assert ready["partner"]["ownOrganization"]["setupState"] == "READY"
    (entry,) = await audit_since(api, count)
    assert entry["operation"] == "completeOrganizationSetup"
    assert (entry["before"], entry["after"]) == (
        {"setupState": "TERMS_ACCEPTED"},
        {"setupState": "READY"},
    )
    assert ok(await mutate(api, LAUNCH_MINE, None, as_=FULL))["setupRequired"] is False
    await assert_refused(api, ACCEPT_TERMS, None, "INVALID_SETUP_STATE")
    await assert_refused(api, COMPLETE_SETUP, None, "INVALID_SETUP_STATE")
    # then: another partner's wizard is its own
    other = data_of(await post_graphql(api, SETUP_STATE, as_=OTHER))["partner"]["ownOrganization"]
    assert other["setupState"] == "NOT_STARTED"
