"""Assigning partner administrators to customers through HTTP (issue 5)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from db.models import Admin
from tests.conftest import Api
from tests.helpers import data_of, post_graphql
from tests.test_tags import (
    FULL,
    FULL2,
    OTHER,
    PARTNER,
    ROLE_EMAILS,
    SALES,
    World,
    assert_each_forbidden,
    assert_each_refused,
    audit_count,
    audit_since,
    build_world,
    gid,
    mutate,
    ok,
    policy_scope,
)

PAYLOAD = "customer { id partnerAdmins { admin { email } role } } userErrors { field message code }"
ASSIGN = f"""
mutation Assign($input: AssignmentInput!) {{
  assignPartnerAdmin(input: $input) {{ {PAYLOAD} }}
}}
"""
UNASSIGN = f"""
mutation Unassign($input: AssignmentInput!) {{
  unassignPartnerAdmin(input: $input) {{ {PAYLOAD} }}
}}
"""
DIRECTORY = "query Directory { customers(first: 100) { totalCount nodes { id } } }"
CUSTOMER = "query Customer($id: ID!) { customer(id: $id) { id name } }"


def pair(customer: int, admin: int) -> dict[str, Any]:
    return {"customerId": gid("Customer", customer), "adminId": gid("Admin", admin)}


async def visible_ids(api: Api, email: str) -> list[str]:
    data = data_of(await post_graphql(api, DIRECTORY, as_=email))["customers"]
    return [c["id"] for c in data["nodes"]]


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def test_assign_then_unassign_a_partner_admin(api: Api, world: World) -> None:
    # given: partner@ sees only the customer it is assigned to
    target = gid("Customer", world.unassigned)
    assert await visible_ids(api, PARTNER) == [gid("Customer", world.assigned)]
    count = await audit_count(api)
    # when
    payload = ok(await mutate(api, ASSIGN, pair(world.unassigned, world.admins[PARTNER]), as_=FULL))
    # then: the tab lists it, with its role, and the admin now sees the customer
    assert payload["customer"]["id"] == target
    assert payload["customer"]["partnerAdmins"] == [
        {"admin": {"email": PARTNER}, "role": "PARTNER_ADMIN"}
    ]
    assert target in await visible_ids(api, PARTNER)
    customer = data_of(await post_graphql(api, CUSTOMER, {"id": target}, as_=PARTNER))["customer"]
    assert customer == {"id": target, "name": "Unassigned Co"}
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "assignPartnerAdmin",
        "customer",
        target,
    )
    assert entry["before"] is None
    assert entry["after"] == {"adminId": gid("Admin", world.admins[PARTNER])}
    assert entry["adminId"] == gid("Admin", world.admins[FULL])
    # when: another full admin takes it back
    count = await audit_count(api)
    payload = ok(
        await mutate(api, UNASSIGN, pair(world.unassigned, world.admins[PARTNER]), as_=FULL2)
    )
    # then
    assert payload["customer"]["partnerAdmins"] == []
    assert await visible_ids(api, PARTNER) == [gid("Customer", world.assigned)]
    assert data_of(await post_graphql(api, CUSTOMER, {"id": target}, as_=PARTNER)) == {
        "customer": None
    }
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectId"]) == ("unassignPartnerAdmin", target)
    assert entry["before"] == {"adminId": gid("Admin", world.admins[PARTNER])}
    assert entry["after"] is None


async def test_assignment_refuses_each_broken_rule_and_writes_nothing(
    api: Api, world: World
) -> None:
    # given: a deactivated admin
    inactive = await world.factory.admin(world.acme, "gone@acme.example", "PARTNER_ADMIN")
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.id == inactive).values(active=False))  # type: ignore[arg-type]
    partner = world.admins[PARTNER]
    both: list[tuple[dict[str, Any], str]] = [
        (pair(world.foreign, partner), "NOT_FOUND"),  # another partner's customer
        (pair(world.assigned, world.admins[OTHER]), "NOT_FOUND"),  # another partner's admin
        (pair(999_999, partner), "NOT_FOUND"),
        (pair(world.assigned, 999_999), "NOT_FOUND"),
        ({**pair(world.assigned, partner), "customerId": "nope"}, "INVALID_ID"),
        ({**pair(world.assigned, partner), "adminId": gid("Customer", 1)}, "INVALID_ID"),
    ]
    cases = [
        *[(ASSIGN, input, code) for input, code in both],
        *[(UNASSIGN, input, code) for input, code in both],
        (ASSIGN, pair(world.assigned, partner), "ALREADY_ASSIGNED"),
        (ASSIGN, pair(world.unassigned, inactive), "ADMIN_INACTIVE"),
        (UNASSIGN, pair(world.unassigned, partner), "NOT_ASSIGNED"),
    ]
    # when / then
    await assert_each_refused(api, cases)


async def test_assignment_mutations_by_role_follow_the_default_policy(
    api: Api, world: World
) -> None:
    """assignment/manage: FULL_ADMIN only (DESIGN.md: only a full admin assigns admins)."""
    sales = world.admins[SALES]
    for role, email in ROLE_EMAILS.items():
        scope = policy_scope(role, "assignment", "manage")
        if scope is None:
            # when / then: refused on its own customer as on any other
            calls = [
                (ASSIGN, pair(world.unassigned, sales)),
                (ASSIGN, pair(world.assigned, world.admins[FULL])),
                (UNASSIGN, pair(world.assigned, sales)),
            ]
            await assert_each_forbidden(api, calls, as_=email)
            continue
        assert scope == "all"
        ok(await mutate(api, ASSIGN, pair(world.unassigned, sales), as_=email))
        ok(await mutate(api, UNASSIGN, pair(world.unassigned, sales), as_=email))
    assert [policy_scope(r, "assignment", "manage") for r in ROLE_EMAILS] == [
        "all",
        None,
        None,
        None,
    ]
