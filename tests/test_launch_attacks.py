"""Launch tokens as an attacker uses them (issue 14, findings 3 and 4).

A launch token is bound to its partner and its admin: ``verifyLaunchToken`` answers a token of
another partner, one the caller could not launch with itself, or one whose admin has since lost
the customer, exactly like a forged token (``LAUNCH_TOKEN_INVALID``) and does not use it up.
Roles that may launch nowhere (read-only, sales) are refused with ``FORBIDDEN``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.authz_support import mutation_document
from tests.conftest import NOW, Api
from tests.helpers import post_graphql, token_for
from tests.test_assignments import ASSIGN, UNASSIGN, pair
from tests.test_launch import (
    LAUNCH_MINE,
    UPDATE_ADMIN,
    VERIFY,
    app_at,
    flip,
    launch,
    token_of,
    verify,
)
from tests.test_tags import (
    FULL,
    FULL2,
    OTHER,
    PARTNER,
    READ_ONLY,
    SALES,
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
    snapshot,
)

INVALID = "LAUNCH_TOKEN_INVALID"
RULE = "rule { role } userErrors { field message code }"
ADD_RULE = mutation_document("addPolicyRule", "PolicyRuleChangeInput", RULE)
REMOVE_RULE = mutation_document("removePolicyRule", "PolicyRuleChangeInput", RULE)


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def forged_from(token: str) -> str:
    """The token with its signature changed: what a forger holds."""
    payload, signature = token.split(".")
    return f"{payload}.{flip(signature, 0)}"


async def answer(api: Api, token: str, *, as_: str) -> dict[str, Any]:
    """The whole answer to a verification but its cost extension (the caller's throttle
    bucket, which every call drains)."""
    body = await post_graphql(api, VERIFY, {"input": {"token": token}}, as_=as_)
    return {key: value for key, value in body.items() if key != "extensions"}


async def assert_like_forged(api: Api, token: str, *, as_: str) -> None:
    """The caller gets byte for byte the answer to a forged token, and nothing is written."""
    # given
    forged = await answer(api, forged_from(token), as_=as_)
    assert forged == {
        "data": {
            "verifyLaunchToken": {
                "grant": None,
                "userErrors": [
                    {
                        "field": ["token"],
                        "message": "The launch token is not valid.",
                        "code": INVALID,
                    }
                ],
            }
        }
    }
    before = await snapshot(api)
    # when
    body = await answer(api, token, as_=as_)
    # then
    assert body == forged
    assert await snapshot(api) == before, "a refused token was used up or audited"


async def test_another_partners_admin_gets_the_forged_answer_and_the_token_stays_usable(
    api: Api, world: World
) -> None:
    # given: Acme's full admin launched into one of its customers
    token, _ = await launch(api, world.assigned, as_=FULL)
    acme_log, globex_log = await audit_count(api, FULL), await audit_count(api, OTHER)
    # when / then: Globex's full admin learns nothing and uses nothing up
    await assert_like_forged(api, token, as_=OTHER)
    assert await audit_count(api, OTHER) == globex_log
    # then: Acme's own use still works, and its audit entry lands at Acme
    grant = ok(await verify(api, token, as_=FULL))["grant"]
    assert (grant["adminEmail"], grant["organizationName"]) == (FULL, "Assigned Co")
    (entry,) = await audit_since(api, acme_log, as_=FULL)
    assert (entry["operation"], entry["adminId"]) == (
        "verifyLaunchToken",
        gid("Admin", world.admins[FULL]),
    )
    assert await audit_count(api, OTHER) == globex_log
    # then: used up at Acme, still merely "invalid" for Globex (no LAUNCH_TOKEN_USED leak)
    await assert_refused(api, VERIFY, {"token": token}, "LAUNCH_TOKEN_USED", as_=FULL)
    await assert_like_forged(api, token, as_=OTHER)


async def test_another_partners_admin_cannot_use_an_own_organization_token(
    api: Api, world: World
) -> None:
    # given: "Launch my organization" at Acme
    url = ok(await mutate(api, LAUNCH_MINE, None, as_=FULL))["url"]
    token = token_of(url, api.settings.console_url)
    # when / then
    await assert_like_forged(api, token, as_=OTHER)
    # then: it still opens Acme's own organization for Acme
    grant = ok(await verify(api, token, as_=FULL))["grant"]
    assert (grant["organizationType"], grant["organizationId"]) == (
        "PARTNER",
        gid("Partner", world.acme),
    )


async def test_expired_and_used_tokens_keep_their_codes_only_inside_the_partner(
    api: Api, world: World
) -> None:
    # given: one token that will expire, one that gets used
    stale, _ = await launch(api, world.unassigned, as_=FULL)
    used, _ = await launch(api, world.assigned, as_=FULL)
    ok(await verify(api, used, as_=FULL))
    # when / then: another admin of the same partner hears why
    await assert_refused(api, VERIFY, {"token": used}, "LAUNCH_TOKEN_USED", as_=FULL2)
    # when / then: another partner does not
    await assert_like_forged(api, used, as_=OTHER)
    async with app_at(api, NOW + timedelta(minutes=6)) as later:
        await assert_refused(later, VERIFY, {"token": stale}, "LAUNCH_TOKEN_EXPIRED", as_=FULL2)
        await assert_like_forged(later, stale, as_=OTHER)


async def test_roles_that_may_launch_nowhere_cannot_consume_a_token(api: Api, world: World) -> None:
    # given
    token, _ = await launch(api, world.assigned, as_=FULL)
    # when / then: read-only and sales admins of the same partner are refused, nothing written
    for email in (READ_ONLY, SALES):
        await assert_each_forbidden(api, [(VERIFY, {"token": token})], as_=email)
    # then: the token was not used up
    assert ok(await verify(api, token, as_=FULL))["grant"]["adminEmail"] == FULL


async def test_a_caller_who_could_not_launch_there_gets_the_forged_answer(
    api: Api, world: World
) -> None:
    # given: a full admin's links into a customer the partner admin does not manage, into one
    # it manages, and into the partner's own organization
    theirs, _ = await launch(api, world.unassigned, as_=FULL)
    mine, _ = await launch(api, world.assigned, as_=FULL)
    own = token_of(
        ok(await mutate(api, LAUNCH_MINE, None, as_=FULL))["url"], api.settings.console_url
    )
    # when / then: the partner admin cannot use the links it could not have made
    await assert_like_forged(api, theirs, as_=PARTNER)
    await assert_like_forged(api, own, as_=PARTNER)
    # then: on its own customer it can; the grant is still the launching admin's
    count = await audit_count(api)
    grant = ok(await verify(api, mine, as_=PARTNER))["grant"]
    assert (grant["adminEmail"], grant["role"]) == (FULL, "FULL_ADMIN")
    (entry,) = await audit_since(api, count)
    assert entry["adminId"] == gid("Admin", world.admins[PARTNER])
    # then: the refused ones were not used up
    assert ok(await verify(api, theirs, as_=FULL))["grant"]["organizationName"] == "Unassigned Co"
    assert ok(await verify(api, own, as_=FULL))["grant"]["organizationType"] == "PARTNER"


async def test_a_token_stops_working_when_its_admin_loses_the_customer(
    api: Api, world: World
) -> None:
    # given: the partner admin launched into its customer, then a full admin unassigned it
    token, _ = await launch(api, world.assigned, as_=PARTNER)
    assignment = pair(world.assigned, world.admins[PARTNER])
    ok(await mutate(api, UNASSIGN, assignment, as_=FULL))
    # when / then: invalid for the launching admin and for a full admin alike, nothing used up
    await assert_like_forged(api, token, as_=PARTNER)
    await assert_like_forged(api, token, as_=FULL)
    # then: given the customer back, the same (unused) token works again
    ok(await mutate(api, ASSIGN, assignment, as_=FULL))
    grant = ok(await verify(api, token, as_=PARTNER))["grant"]
    assert (grant["adminEmail"], grant["organizationName"]) == (PARTNER, "Assigned Co")


async def test_an_own_organization_token_stops_working_when_its_admin_loses_admin_manage(
    api: Api, world: World
) -> None:
    # given: full2@ launched its own organization, then was made a partner admin
    url = ok(await mutate(api, LAUNCH_MINE, None, as_=FULL2))["url"]
    token = token_of(url, api.settings.console_url)
    change = {"id": gid("Admin", world.admins[FULL2]), "role": "PARTNER_ADMIN"}
    ok(await mutate(api, UPDATE_ADMIN, change, as_=FULL))
    # when / then
    await assert_like_forged(api, token, as_=FULL)


async def test_odd_tokens_get_the_forged_answer(api: Api, world: World) -> None:
    # given: a genuine token, to build odd ones from
    token, _ = await launch(api, world.assigned, as_=FULL)
    payload, signature = token.split(".")
    odd = [
        f"{payload}.{signature[:-1]}é",  # non-ASCII: hmac.compare_digest would raise
        "." * 1024,
        token + "A" * 1024,
    ]
    # when / then
    await assert_each_refused(api, [(VERIFY, {"token": bad}, INVALID) for bad in odd])
    # when / then: a NUL byte or a lone surrogate (which JSON can carry as an escape; httpx
    # cannot encode it) never reaches the resolver: the input check refuses the document
    headers = {
        "Authorization": f"Bearer {await token_for(api, FULL)}",
        "Content-Type": "application/json",
    }
    for bad in (f"{payload}\x00.{signature}", f"{payload}.{signature}\x00", f"{payload}.\ud800"):
        body = json.dumps({"query": VERIFY, "variables": {"input": {"token": bad}}})
        response = await api.client.post("/graphql", content=body.encode(), headers=headers)
        assert response.status_code < 500, response.text
        assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]
    # then: the genuine token is intact
    assert ok(await verify(api, token, as_=FULL))["grant"]["adminEmail"] == FULL


async def test_a_token_stops_working_when_the_policy_takes_the_launch_right_away(
    api: Api, world: World
) -> None:
    # given: the partner admin launched, then Acme withdrew customer write from partner admins
    token, _ = await launch(api, world.assigned, as_=PARTNER)
    rule = {"role": "PARTNER_ADMIN", "object": "customer", "action": "write", "scope": "assigned"}
    ok(await mutate(api, REMOVE_RULE, rule, as_=FULL))
    # when / then: a full admin (who may launch there) still cannot use the partner admin's link
    await assert_like_forged(api, token, as_=FULL)
    # then: given the right back, the unused token works again
    ok(await mutate(api, ADD_RULE, rule, as_=FULL))
    assert ok(await verify(api, token, as_=FULL))["grant"]["adminEmail"] == PARTNER
