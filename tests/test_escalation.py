"""No escalation (issue 14, finding 1; DESIGN.md section 4): a caller never creates an admin
with, moves an admin to, grants, or defines a role holding a permission it lacks; only
``policy manage`` changes an admin's role; and a limited caller never changes, demotes or
deactivates an admin holding more than it does. Each refusal is FORBIDDEN and writes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db.models import Partner
from tests.authz_support import (
    CREATE_ADMIN,
    AuthzFactory,
    Snapshot,
    changed_tables,
    create_admin,
    create_role,
    gid,
    mutation_document,
    snapshot,
)
from tests.conftest import Api
from tests.helpers import data_of, error_codes, post_graphql, token_for

FULL, RO, OTHER_FULL = "full@acme.example", "readonly@acme.example", "full@globex.example"
MALLORY = "mallory@acme.example"  # admin read all + admin manage all, nothing else
KEEPER = "keeper@acme.example"  # policies and admins, nothing else

ADMIN = "admin { id email name role roles active }"
UPDATE_ADMIN = mutation_document("updateAdmin", "UpdateAdminInput", ADMIN)
DEACTIVATE_ADMIN = mutation_document("deactivateAdmin", "DeactivateAdminInput", ADMIN)
GRANT = mutation_document("grantRole", "GrantRoleInput", "admin { id role roles }")
REVOKE = mutation_document("revokeRole", "RevokeRoleInput", "admin { id role roles }")
ROLE = "role { name rules { object action scope } }"
CREATE_ROLE = mutation_document("createRole", "CreateRoleInput", ROLE)
ADD_RULE = mutation_document("addPolicyRule", "PolicyRuleChangeInput", ROLE)
REMOVE_RULE = mutation_document("removePolicyRule", "PolicyRuleChangeInput", ROLE)
VIEWER = "query { viewer { id email name role roles } }"
ADMINS = "query { admins(first: 50) { nodes { email name role roles active } } }"

ADMIN_MANAGER = [("admin", "read", "all"), ("admin", "manage", "all")]
POLICY_KEEPER = [*ADMIN_MANAGER, ("policy", "read", "all"), ("policy", "manage", "all")]


async def acme(api: Api) -> dict[str, str]:
    """Acme with a full and a read-only admin, Globex with a full admin; Acme's custom roles
    ADMIN_MANAGER (finding 1's role) and POLICY_KEEPER, with one admin each. Global IDs."""
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    ids = {
        FULL: gid("Admin", await f.admin(partner, FULL, "FULL_ADMIN", name="Fiona Full")),
        RO: gid("Admin", await f.admin(partner, RO, "READ_ONLY_ADMIN")),
        OTHER_FULL: gid("Admin", await f.admin(globex, OTHER_FULL, "FULL_ADMIN")),
    }
    for name, rules in (("ADMIN_MANAGER", ADMIN_MANAGER), ("POLICY_KEEPER", POLICY_KEEPER)):
        assert data_of(await create_role(api, FULL, name, rules))["createRole"]["role"]
    ids[MALLORY] = await create_admin(api, FULL, MALLORY, "ADMIN_MANAGER", "Mallory")
    ids[KEEPER] = await create_admin(api, FULL, KEEPER, "POLICY_KEEPER", "Kim Keeper")
    return ids


async def refused(api: Api, document: str, variables: dict[str, Any], as_: str) -> None:
    """The mutation is FORBIDDEN (no payload) and no table but the audit log changed."""
    await token_for(api, as_)  # its token exists before the snapshot
    before: Snapshot = await snapshot(api.engine)
    body = await post_graphql(api, document, variables, as_=as_)
    assert error_codes(body) == ["FORBIDDEN"], (variables, body)
    assert body["data"] is None
    # a refusal may be audited (issue 14: every refusal of a mutation is); nothing else moves
    assert set(changed_tables(before, await snapshot(api.engine))) <= {"audit_log"}, variables


def admin_input(email: str, role: str) -> dict[str, Any]:
    return {"input": {"email": email, "name": "New One", "role": role}}


def rule(role: str, obj: str, action: str, scope: str = "all") -> dict[str, Any]:
    return {"input": {"role": role, "object": obj, "action": action, "scope": scope}}


def role_input(name: str, rules: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "input": {
            "name": name,
            "description": "",
            "rules": [{"object": o, "action": a, "scope": s} for o, a, s in rules],
        }
    }


async def test_finding_1_an_admin_manager_cannot_make_itself_or_anyone_a_full_admin(
    api: Api,
) -> None:
    # given: finding 1's custom role (admin read all + admin manage all)
    ids = await acme(api)
    me, fiona = ids[MALLORY], ids[FULL]

    # when / then: promoting itself, the attack as reported
    await refused(api, UPDATE_ADMIN, {"input": {"id": me, "role": "FULL_ADMIN"}}, MALLORY)
    # creating a full admin, or any role holding what it lacks (customer read, ...)
    await refused(api, CREATE_ADMIN, admin_input("sneaky@acme.example", "FULL_ADMIN"), MALLORY)
    await refused(api, CREATE_ADMIN, admin_input("ro@acme.example", "READ_ONLY_ADMIN"), MALLORY)
    await refused(api, CREATE_ADMIN, admin_input("keeper2@acme.example", "POLICY_KEEPER"), MALLORY)
    # demoting, renaming or deactivating the partner's full admin
    await refused(api, UPDATE_ADMIN, {"input": {"id": fiona, "role": "SALES_ADMIN"}}, MALLORY)
    await refused(api, UPDATE_ADMIN, {"input": {"id": fiona, "role": "ADMIN_MANAGER"}}, MALLORY)
    await refused(api, UPDATE_ADMIN, {"input": {"id": fiona, "name": "Ex Admin"}}, MALLORY)
    await refused(api, DEACTIVATE_ADMIN, {"input": {"id": fiona}}, MALLORY)
    # nor a read-only admin, who reads customers Mallory cannot
    await refused(api, DEACTIVATE_ADMIN, {"input": {"id": ids[RO]}}, MALLORY)

    # then: Fiona is still Acme's full admin, and Mallory what it was
    assert data_of(await post_graphql(api, VIEWER, as_=FULL))["viewer"]["role"] == "FULL_ADMIN"
    mallory = data_of(await post_graphql(api, VIEWER, as_=MALLORY))["viewer"]
    assert (mallory["role"], mallory["roles"]) == ("ADMIN_MANAGER", ["ADMIN_MANAGER"])


async def test_an_admin_manager_still_manages_admins_within_its_own_permissions(
    api: Api,
) -> None:
    # given
    ids = await acme(api)

    # when: it renames itself, creates an admin of its own role and deactivates that one
    renamed = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": ids[MALLORY], "name": "Mal"}}, as_=MALLORY
    )
    created = await post_graphql(
        api, CREATE_ADMIN, admin_input("peer@acme.example", "ADMIN_MANAGER"), as_=MALLORY
    )
    peer = data_of(created)["createAdmin"]["admin"]
    deactivated = await post_graphql(
        api, DEACTIVATE_ADMIN, {"input": {"id": peer["id"]}}, as_=MALLORY
    )

    # then
    assert data_of(renamed)["updateAdmin"]["admin"]["name"] == "Mal"
    assert (peer["email"], peer["role"]) == ("peer@acme.example", "ADMIN_MANAGER")
    assert data_of(deactivated)["deactivateAdmin"]["admin"]["active"] is False
    # but without `policy manage` it changes no admin's role, not even to a narrower one
    await create_role(api, FULL, "ADMIN_READER", [("admin", "read", "all")])
    other = await create_admin(api, FULL, "other@acme.example", "ADMIN_MANAGER")
    await refused(api, UPDATE_ADMIN, {"input": {"id": other, "role": "ADMIN_READER"}}, MALLORY)


async def test_a_policy_keeper_gives_and_defines_nothing_beyond_what_it_holds(api: Api) -> None:
    # given: a caller with policy manage and admin manage, and nothing else
    ids = await acme(api)
    me = ids[KEEPER]

    # when / then: moving or granting itself (or others) a wider role
    await refused(api, UPDATE_ADMIN, {"input": {"id": me, "role": "FULL_ADMIN"}}, KEEPER)
    await refused(api, GRANT, {"input": {"adminId": me, "role": "FULL_ADMIN"}}, KEEPER)
    await refused(api, GRANT, {"input": {"adminId": me, "role": "SALES_ADMIN"}}, KEEPER)
    await refused(api, CREATE_ADMIN, admin_input("boss@acme.example", "FULL_ADMIN"), KEEPER)
    # defining a role with, or adding to any role, a permission it lacks
    await refused(api, CREATE_ROLE, role_input("SUPER", [("customer", "read", "all")]), KEEPER)
    await refused(api, ADD_RULE, rule("POLICY_KEEPER", "customer", "write"), KEEPER)
    await refused(api, ADD_RULE, rule("POLICY_KEEPER", "audit", "read"), KEEPER)
    # changing a wider role, even by taking from it, or the admins who hold one
    await refused(api, REMOVE_RULE, rule("FULL_ADMIN", "tag", "write"), KEEPER)
    await refused(api, ADD_RULE, rule("READ_ONLY_ADMIN", "admin", "manage"), KEEPER)
    await refused(api, UPDATE_ADMIN, {"input": {"id": ids[FULL], "role": "POLICY_KEEPER"}}, KEEPER)
    await refused(api, GRANT, {"input": {"adminId": ids[RO], "role": "ADMIN_MANAGER"}}, KEEPER)

    # when: what it holds, it may give
    defined = await post_graphql(
        api, CREATE_ROLE, role_input("ADMIN_READER", [("admin", "read", "all")]), as_=KEEPER
    )
    moved = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": ids[MALLORY], "role": "ADMIN_READER"}}, as_=KEEPER
    )
    granted = await post_graphql(
        api, GRANT, {"input": {"adminId": ids[MALLORY], "role": "ADMIN_MANAGER"}}, as_=KEEPER
    )
    revoked = await post_graphql(
        api, REVOKE, {"input": {"adminId": ids[MALLORY], "role": "ADMIN_MANAGER"}}, as_=KEEPER
    )
    widened = await post_graphql(api, ADD_RULE, rule("ADMIN_READER", "policy", "read"), as_=KEEPER)

    # then
    assert data_of(defined)["createRole"]["userErrors"] == []
    assert data_of(moved)["updateAdmin"]["admin"]["role"] == "ADMIN_READER"
    assert data_of(granted)["grantRole"]["admin"]["roles"] == ["ADMIN_READER", "ADMIN_MANAGER"]
    assert data_of(revoked)["revokeRole"]["admin"]["roles"] == ["ADMIN_READER"]
    assert data_of(widened)["addPolicyRule"]["userErrors"] == []


async def test_an_assigned_scope_is_narrower_than_all(api: Api) -> None:
    # given: a keeper of policies who writes tags of its assigned customers only
    await acme(api)
    await create_role(api, FULL, "SCOPED_KEEPER", [*POLICY_KEEPER, ("tag", "write", "assigned")])
    await create_admin(api, FULL, "scoped@acme.example", "SCOPED_KEEPER")

    # when / then: tag write over all customers is more than it holds
    await refused(
        api,
        CREATE_ROLE,
        role_input("TAGGER", [("tag", "write", "all")]),
        "scoped@acme.example",
    )
    await refused(api, ADD_RULE, rule("SCOPED_KEEPER", "tag", "write"), "scoped@acme.example")
    same = await post_graphql(
        api,
        CREATE_ROLE,
        role_input("TAGGER", [("tag", "write", "assigned")]),
        as_="scoped@acme.example",
    )
    assert data_of(same)["createRole"]["role"]["rules"] == [
        {"object": "tag", "action": "write", "scope": "assigned"}
    ]


async def test_full_admins_keep_every_path(api: Api) -> None:
    # given
    ids = await acme(api)

    # when: a full admin creates a full admin, promotes and demotes, grants and revokes
    fred = await create_admin(api, FULL, "fred@acme.example", "FULL_ADMIN")
    promoted = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": ids[MALLORY], "role": "FULL_ADMIN"}}, as_=FULL
    )
    granted = await post_graphql(
        api, GRANT, {"input": {"adminId": ids[RO], "role": "POLICY_KEEPER"}}, as_=FULL
    )
    revoked = await post_graphql(
        api, REVOKE, {"input": {"adminId": ids[RO], "role": "POLICY_KEEPER"}}, as_=FULL
    )
    added = await post_graphql(api, ADD_RULE, rule("POLICY_KEEPER", "audit", "read"), as_=FULL)
    demoted = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": fred, "role": "READ_ONLY_ADMIN"}}, as_=FULL
    )
    gone = await post_graphql(api, DEACTIVATE_ADMIN, {"input": {"id": ids[KEEPER]}}, as_=FULL)

    # then
    assert data_of(promoted)["updateAdmin"]["admin"]["role"] == "FULL_ADMIN"
    assert data_of(granted)["grantRole"]["admin"]["roles"] == ["READ_ONLY_ADMIN", "POLICY_KEEPER"]
    assert data_of(revoked)["revokeRole"]["admin"]["roles"] == ["READ_ONLY_ADMIN"]
    assert data_of(added)["addPolicyRule"]["userErrors"] == []
    assert data_of(demoted)["updateAdmin"]["admin"]["role"] == "READ_ONLY_ADMIN"
    assert data_of(gone)["deactivateAdmin"]["admin"]["active"] is False
    # the promoted admin may now manage Fiona: it holds all she holds
    renamed = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": ids[FULL], "name": "Fiona F."}}, as_=MALLORY
    )
    assert data_of(renamed)["updateAdmin"]["admin"]["name"] == "Fiona F."
    # and another partner's full admin still reaches none of Acme's admins
    other = await post_graphql(api, DEACTIVATE_ADMIN, {"input": {"id": ids[FULL]}}, as_=OTHER_FULL)
    assert [e["code"] for e in data_of(other)["deactivateAdmin"]["userErrors"]] == ["NOT_FOUND"]


async def test_a_full_admin_cannot_give_a_permission_no_full_admin_holds(api: Api) -> None:
    # given: a partner that withdrew analytics manage from its full admins
    await acme(api)
    withdrawn = await post_graphql(
        api, REMOVE_RULE, rule("FULL_ADMIN", "analytics", "manage"), as_=FULL
    )
    assert data_of(withdrawn)["removePolicyRule"]["userErrors"] == []

    # when / then: no full admin may hand it back to itself or put it in a new role
    await refused(api, ADD_RULE, rule("FULL_ADMIN", "analytics", "manage"), FULL)
    await refused(api, CREATE_ROLE, role_input("LOADER", [("analytics", "manage", "all")]), FULL)


ASSIGN = mutation_document(
    "assignPartnerAdmin",
    "AssignmentInput",
    "customer { id name partnerAdmins { admin { email } } }",
)
SELF_ASSIGNER = "assigner@acme.example"  # assignment manage all, customer read assigned only


async def test_assignment_manage_does_not_reach_customers_the_caller_cannot_see(api: Api) -> None:
    """Assigning itself to every customer would widen a role that reads only its assigned
    customers: the customer must be visible under the caller's customer read rule too."""
    # given
    await acme(api)
    async with api.engine.connect() as conn:
        partner = (
            await conn.execute(select(Partner.id).where(Partner.domain == "acme.example"))
        ).scalar_one()
    hidden = await AuthzFactory(api.engine).customer(partner, "Hidden Co")
    rules = [("customer", "read", "assigned"), ("assignment", "manage", "all")]
    assert data_of(await create_role(api, FULL, "SELF_ASSIGNER", rules))["createRole"]["role"]
    me = await create_admin(api, FULL, SELF_ASSIGNER, "SELF_ASSIGNER", "Sam Assigner")
    variables = {"input": {"customerId": gid("Customer", hidden), "adminId": me}}
    await token_for(api, SELF_ASSIGNER)
    before: Snapshot = await snapshot(api.engine)
    # when
    body = await post_graphql(api, ASSIGN, variables, as_=SELF_ASSIGNER)
    # then: the customer is not there for it, and only the refusal's audit entry is written
    assert [e["code"] for e in data_of(body)["assignPartnerAdmin"]["userErrors"]] == ["NOT_FOUND"]
    assert set(changed_tables(before, await snapshot(api.engine))) <= {"audit_log"}
    # and a full admin still assigns it there
    body = await post_graphql(api, ASSIGN, variables, as_=FULL)
    assert data_of(body)["assignPartnerAdmin"]["customer"]["partnerAdmins"] == [
        {"admin": {"email": SELF_ASSIGNER}}
    ]
