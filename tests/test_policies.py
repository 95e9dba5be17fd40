"""Policy administration at run time: rules, custom roles and grants change who may do what,
for one partner only, from the next request on; bad input is refused with a code and no write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from db.models import CustomRole
from graph.cost_model import MAX_ROLES
from tests.authz_support import (
    AuthzFactory,
    changed_tables,
    create_role,
    gid,
    mutation_document,
    snapshot,
    user_error_codes,
)
from tests.conftest import NOW, Api
from tests.helpers import assert_forbidden, data_of, error_codes, post_graphql

A_FULL, A_RO, A_SALES, A_PARTNER = (
    "full@acme.example",
    "readonly@acme.example",
    "sales@acme.example",
    "partner@acme.example",
)
B_FULL, B_RO, B_SALES = "full@globex.example", "readonly@globex.example", "sales@globex.example"

ROLE = "role { name builtIn rules { object action scope builtIn } }"
RULE_CHANGE = "PolicyRuleChangeInput"
ADD_RULE = mutation_document(
    "addPolicyRule", RULE_CHANGE, f"rule {{ role object action scope builtIn }} {ROLE}"
)
REMOVE_RULE = mutation_document(
    "removePolicyRule", RULE_CHANGE, f"rule {{ role object action scope }} {ROLE}"
)
GRANT = mutation_document("grantRole", "GrantRoleInput", "admin { id role roles }")
REVOKE = mutation_document("revokeRole", "RevokeRoleInput", "admin { id role roles }")
CREATE_ROLE = mutation_document("createRole", "CreateRoleInput", ROLE)
CREATE_TAG = mutation_document("createTag", "CreateTagInput", "tag { id name }")
START_TRIAL = mutation_document(
    "startTrial", "StartTrialInput", "trial { id kind } customer { id }"
)
TAG_CUSTOMERS = mutation_document("addTagsToCustomers", "CustomerTagsInput", "changed")
POLICY_RULES = "query { policyRules { role object action scope builtIn } }"
ROLES = "query { roles { name builtIn description rules { object action scope builtIn } } }"
AUDIT_LOG = "query { auditLog(first: 5) { totalCount nodes { operation } } }"
VIEWER = "query { viewer { id role roles } }"


async def two_partners(api: Api) -> dict[str, int]:
    """Acme and Globex, each with an admin of every built-in role; the admins' pks by email."""
    f = AuthzFactory(api.engine)
    pks: dict[str, int] = {}
    for name, domain in (("Acme Partners", "acme.example"), ("Globex Reseller", "globex.example")):
        partner = await f.partner(name, domain)
        pks[domain] = partner
        for prefix, role in (
            ("full", "FULL_ADMIN"),
            ("partner", "PARTNER_ADMIN"),
            ("readonly", "READ_ONLY_ADMIN"),
            ("sales", "SALES_ADMIN"),
        ):
            pks[f"{prefix}@{domain}"] = await f.admin(partner, f"{prefix}@{domain}", role)
    return pks


def rule(role: str, obj: str, action: str, scope: str = "all") -> dict[str, Any]:
    return {"input": {"role": role, "object": obj, "action": action, "scope": scope}}


async def create_tag(api: Api, as_: str, name: str) -> dict[str, Any]:
    return await post_graphql(api, CREATE_TAG, {"input": {"name": name}}, as_=as_)


def new_customer_trial(name: str) -> dict[str, Any]:
    return {
        "input": {
            "newCustomer": {"name": name, "adminEmail": f"it@{name.lower()}.example"},
            "products": [{"product": "MEETINGS", "licenses": 10}],
            "durationDays": 30,
        }
    }


def rules_of(body: dict[str, Any], role: str) -> set[tuple[str, str, str]]:
    return {
        (r["object"], r["action"], r["scope"])
        for r in data_of(body)["policyRules"]
        if r["role"] == role
    }


async def test_granting_read_only_admins_tag_writing_takes_effect_on_the_next_request(
    api: Api,
) -> None:
    # given: read-only admins may not create tags, in either partner
    await two_partners(api)
    assert_forbidden(await create_tag(api, A_RO, "Before"))

    # when
    added = await post_graphql(api, ADD_RULE, rule("READ_ONLY_ADMIN", "tag", "write"), as_=A_FULL)

    # then: Acme's read-only admin creates tags; Globex's still may not
    payload = data_of(added)["addPolicyRule"]
    assert payload["userErrors"] == []
    assert payload["rule"] == {
        "role": "READ_ONLY_ADMIN",
        "object": "tag",
        "action": "write",
        "scope": "all",
        "builtIn": False,
    }
    assert {"object": "tag", "action": "write", "scope": "all", "builtIn": False} in payload[
        "role"
    ]["rules"]
    created = data_of(await create_tag(api, A_RO, "Granted"))["createTag"]
    assert created["userErrors"] == [] and created["tag"]["name"] == "Granted"
    assert_forbidden(await create_tag(api, B_RO, "Not here"))
    assert ("tag", "write", "all") in rules_of(
        await post_graphql(api, POLICY_RULES, as_=A_FULL), "READ_ONLY_ADMIN"
    )
    assert ("tag", "write", "all") not in rules_of(
        await post_graphql(api, POLICY_RULES, as_=B_FULL), "READ_ONLY_ADMIN"
    )

    # when: the rule is removed again
    removed = await post_graphql(
        api, REMOVE_RULE, rule("READ_ONLY_ADMIN", "tag", "write"), as_=A_FULL
    )

    # then
    assert data_of(removed)["removePolicyRule"]["userErrors"] == []
    assert_forbidden(await create_tag(api, A_RO, "After"))
    assert ("tag", "write", "all") not in rules_of(
        await post_graphql(api, POLICY_RULES, as_=A_FULL), "READ_ONLY_ADMIN"
    )


async def test_removing_a_built_in_rule_affects_only_that_partner(api: Api) -> None:
    # given: sales admins of both partners start trials
    await two_partners(api)
    started = await post_graphql(api, START_TRIAL, new_customer_trial("Initech"), as_=A_SALES)
    assert data_of(started)["startTrial"]["userErrors"] == []

    # when: Acme withdraws the built-in "sales admins write trials of their customers"
    removed = await post_graphql(
        api, REMOVE_RULE, rule("SALES_ADMIN", "trial", "write", "assigned"), as_=A_FULL
    )

    # then
    assert data_of(removed)["removePolicyRule"]["userErrors"] == []
    assert ("trial", "write", "assigned") not in {
        (r["object"], r["action"], r["scope"])
        for r in data_of(removed)["removePolicyRule"]["role"]["rules"]
    }
    assert_forbidden(await post_graphql(api, START_TRIAL, new_customer_trial("Hooli"), as_=A_SALES))
    other = await post_graphql(api, START_TRIAL, new_customer_trial("Umbrella"), as_=B_SALES)
    assert data_of(other)["startTrial"]["userErrors"] == []
    b_rules = await post_graphql(api, POLICY_RULES, as_=B_FULL)
    assert ("trial", "write", "assigned") in rules_of(b_rules, "SALES_ADMIN")

    # when: Acme allows it again
    restored = await post_graphql(
        api, ADD_RULE, rule("SALES_ADMIN", "trial", "write", "assigned"), as_=A_FULL
    )

    # then: it is the built-in rule again
    assert data_of(restored)["addPolicyRule"]["rule"]["builtIn"] is True
    again = await post_graphql(api, START_TRIAL, new_customer_trial("Hooli"), as_=A_SALES)
    assert data_of(again)["startTrial"]["userErrors"] == []


async def test_a_custom_role_granted_widens_an_admin_and_revoking_narrows_it_back(
    api: Api,
) -> None:
    # given: a custom role that reads the audit log and the policies
    pks = await two_partners(api)
    body = await create_role(
        api, A_FULL, "AUDITOR", [("audit", "read", "all"), ("policy", "read", "all")], "Audits."
    )
    role = data_of(body)["createRole"]["role"]
    assert role == {
        "name": "AUDITOR",
        "builtIn": False,
        "rules": [
            {"object": "audit", "action": "read", "scope": "all", "builtIn": False},
            {"object": "policy", "action": "read", "scope": "all", "builtIn": False},
        ],
    }
    assert_forbidden(await post_graphql(api, AUDIT_LOG, as_=A_RO))
    grant = {"input": {"adminId": gid("Admin", pks[A_RO]), "role": "AUDITOR"}}

    # when
    granted = await post_graphql(api, GRANT, grant, as_=A_FULL)

    # then
    payload = data_of(granted)["grantRole"]
    assert payload["userErrors"] == []
    assert payload["admin"]["roles"] == ["READ_ONLY_ADMIN", "AUDITOR"]
    assert data_of(await post_graphql(api, VIEWER, as_=A_RO))["viewer"]["roles"] == [
        "READ_ONLY_ADMIN",
        "AUDITOR",
    ]
    assert data_of(await post_graphql(api, AUDIT_LOG, as_=A_RO))["auditLog"]["totalCount"] >= 2
    names = [r["name"] for r in data_of(await post_graphql(api, ROLES, as_=A_RO))["roles"]]
    assert "AUDITOR" in names
    # the role is Acme's: Globex neither lists it nor can grant it
    b_names = [r["name"] for r in data_of(await post_graphql(api, ROLES, as_=B_FULL))["roles"]]
    assert "AUDITOR" not in b_names
    b_grant = {"input": {"adminId": gid("Admin", pks[B_RO]), "role": "AUDITOR"}}
    b_body = await post_graphql(api, GRANT, b_grant, as_=B_FULL)
    assert user_error_codes(b_body, "grantRole") == ["UNKNOWN_ROLE"]

    # when
    revoked = await post_graphql(api, REVOKE, grant, as_=A_FULL)

    # then
    payload = data_of(revoked)["revokeRole"]
    assert payload["userErrors"] == []
    assert payload["admin"]["roles"] == ["READ_ONLY_ADMIN"]
    assert_forbidden(await post_graphql(api, AUDIT_LOG, as_=A_RO))
    assert_forbidden(await post_graphql(api, ROLES, as_=A_RO))


async def test_a_custom_scoped_role_widens_only_over_the_admins_customers(api: Api) -> None:
    # given: a sales admin assigned one of two customers, and a tag
    pks = await two_partners(api)
    f = AuthzFactory(api.engine)
    partner = pks["acme.example"]
    mine = await f.customer(partner, "Mine")
    theirs = await f.customer(partner, "Theirs")
    await f.assign(mine, pks[A_SALES])
    tag = gid("Tag", await f.tag(partner, "vip"))
    await create_role(api, A_FULL, "TAGGER", [("tag", "write", "assigned")])

    def tagging(customer: int) -> dict[str, Any]:
        return {"input": {"customerIds": [gid("Customer", customer)], "tagIds": [tag]}}

    assert_forbidden(await post_graphql(api, TAG_CUSTOMERS, tagging(mine), as_=A_SALES))

    # when
    grant = {"input": {"adminId": gid("Admin", pks[A_SALES]), "role": "TAGGER"}}
    assert (
        data_of(await post_graphql(api, GRANT, grant, as_=A_FULL))["grantRole"]["userErrors"] == []
    )

    # then: its own customer, yes; another one, no such customer
    ok = await post_graphql(api, TAG_CUSTOMERS, tagging(mine), as_=A_SALES)
    assert data_of(ok)["addTagsToCustomers"] == {"changed": 1, "userErrors": []}
    hidden = await post_graphql(api, TAG_CUSTOMERS, tagging(theirs), as_=A_SALES)
    assert user_error_codes(hidden, "addTagsToCustomers") == ["NOT_FOUND"]


async def test_policy_mutations_refuse_bad_input_with_a_code_and_write_nothing(
    api: Api,
) -> None:
    # given
    pks = await two_partners(api)
    await create_role(api, A_FULL, "AUDITOR", [("audit", "read", "all")])
    await create_role(api, B_FULL, "GLOBEX_ONLY", [("audit", "read", "all")])
    a_ro, b_ro, a_full = (gid("Admin", pks[e]) for e in (A_RO, B_RO, A_FULL))
    granted = {"input": {"adminId": a_ro, "role": "AUDITOR"}}
    assert (
        data_of(await post_graphql(api, GRANT, granted, as_=A_FULL))["grantRole"]["userErrors"]
        == []
    )

    def role_input(name: str, rules: list[dict[str, str]] | None = None) -> dict[str, Any]:
        rules = [{"object": "tag", "action": "read"}] if rules is None else rules
        return {"input": {"name": name, "description": "", "rules": rules}}

    cases: list[tuple[str, str, str, dict[str, Any], str]] = [
        ("addPolicyRule", ADD_RULE, "unknown role", rule("NOPE", "tag", "write"), "UNKNOWN_ROLE"),
        (
            "addPolicyRule",
            ADD_RULE,
            "another partner's role",
            rule("GLOBEX_ONLY", "tag", "write"),
            "UNKNOWN_ROLE",
        ),
        (
            "addPolicyRule",
            ADD_RULE,
            "unknown object",
            rule("READ_ONLY_ADMIN", "invoice", "write"),
            "UNKNOWN_OBJECT",
        ),
        (
            "addPolicyRule",
            ADD_RULE,
            "unknown action",
            rule("READ_ONLY_ADMIN", "tag", "delete"),
            "UNKNOWN_ACTION",
        ),
        (
            "addPolicyRule",
            ADD_RULE,
            "unknown scope",
            rule("READ_ONLY_ADMIN", "tag", "write", "some"),
            "UNKNOWN_SCOPE",
        ),
        (
            "addPolicyRule",
            ADD_RULE,
            "a rule in force",
            rule("FULL_ADMIN", "tag", "write"),
            "RULE_EXISTS",
        ),
        (
            "removePolicyRule",
            REMOVE_RULE,
            "unknown role",
            rule("NOPE", "tag", "write"),
            "UNKNOWN_ROLE",
        ),
        (
            "removePolicyRule",
            REMOVE_RULE,
            "a rule not in force",
            rule("READ_ONLY_ADMIN", "tag", "write"),
            "RULE_NOT_FOUND",
        ),
        (
            "removePolicyRule",
            REMOVE_RULE,
            "full admins managing policies",
            rule("FULL_ADMIN", "policy", "manage"),
            "WOULD_LOCK_OUT",
        ),
        (
            "removePolicyRule",
            REMOVE_RULE,
            "full admins managing admins",
            rule("FULL_ADMIN", "admin", "manage"),
            "WOULD_LOCK_OUT",
        ),
        ("createRole", CREATE_ROLE, "lower case name", role_input("auditors"), "INVALID_ROLE_NAME"),
        (
            "createRole",
            CREATE_ROLE,
            "name with a space",
            role_input("TAG EDITOR"),
            "INVALID_ROLE_NAME",
        ),
        ("createRole", CREATE_ROLE, "too short a name", role_input("AB"), "INVALID_ROLE_NAME"),
        ("createRole", CREATE_ROLE, "a built-in name", role_input("FULL_ADMIN"), "ROLE_NAME_TAKEN"),
        (
            "createRole",
            CREATE_ROLE,
            "a custom name taken",
            role_input("AUDITOR"),
            "ROLE_NAME_TAKEN",
        ),
        ("createRole", CREATE_ROLE, "no rules", role_input("EMPTY_ROLE", []), "NO_RULES"),
        (
            "createRole",
            CREATE_ROLE,
            "a rule on an unknown object",
            role_input("BAD_RULES", [{"object": "invoice", "action": "read"}]),
            "UNKNOWN_OBJECT",
        ),
        (
            "createRole",
            CREATE_ROLE,
            "a rule with an unknown action",
            role_input("BAD_RULES", [{"object": "tag", "action": "erase"}]),
            "UNKNOWN_ACTION",
        ),
        (
            "createRole",
            CREATE_ROLE,
            "a rule with an unknown scope",
            role_input("BAD_RULES", [{"object": "tag", "action": "read", "scope": "mine"}]),
            "UNKNOWN_SCOPE",
        ),
        (
            "grantRole",
            GRANT,
            "another partner's admin",
            {"input": {"adminId": b_ro, "role": "AUDITOR"}},
            "NOT_FOUND",
        ),
        (
            "grantRole",
            GRANT,
            "a missing admin",
            {"input": {"adminId": gid("Admin", 999_999), "role": "AUDITOR"}},
            "NOT_FOUND",
        ),
        (
            "grantRole",
            GRANT,
            "not an admin ID",
            {"input": {"adminId": "xyz", "role": "AUDITOR"}},
            "INVALID_ID",
        ),
        (
            "grantRole",
            GRANT,
            "unknown role",
            {"input": {"adminId": a_ro, "role": "NOPE"}},
            "UNKNOWN_ROLE",
        ),
        (
            "grantRole",
            GRANT,
            "another partner's role",
            {"input": {"adminId": a_ro, "role": "GLOBEX_ONLY"}},
            "UNKNOWN_ROLE",
        ),
        (
            "grantRole",
            GRANT,
            "a role it has",
            {"input": {"adminId": a_ro, "role": "AUDITOR"}},
            "ROLE_ALREADY_GRANTED",
        ),
        (
            "grantRole",
            GRANT,
            "its primary role",
            {"input": {"adminId": a_ro, "role": "READ_ONLY_ADMIN"}},
            "ROLE_ALREADY_GRANTED",
        ),
        (
            "revokeRole",
            REVOKE,
            "a primary role",
            {"input": {"adminId": a_full, "role": "FULL_ADMIN"}},
            "CANNOT_REVOKE_PRIMARY_ROLE",
        ),
        (
            "revokeRole",
            REVOKE,
            "a role not granted",
            {"input": {"adminId": a_ro, "role": "SALES_ADMIN"}},
            "ROLE_NOT_GRANTED",
        ),
        (
            "revokeRole",
            REVOKE,
            "another partner's admin",
            {"input": {"adminId": b_ro, "role": "AUDITOR"}},
            "NOT_FOUND",
        ),
        (
            "revokeRole",
            REVOKE,
            "unknown role",
            {"input": {"adminId": a_ro, "role": "NOPE"}},
            "UNKNOWN_ROLE",
        ),
    ]
    before = await snapshot(api.engine)

    problems = []
    for field, document, why, variables, code in cases:
        # when
        body = await post_graphql(api, document, variables, as_=A_FULL)

        # then
        codes = user_error_codes(body, field)
        changed = changed_tables(before, await snapshot(api.engine))
        if body.get("errors") or codes != [code]:
            problems.append(f"{field} with {why}: {code} expected, got {body}")
        elif changed:
            problems.append(f"{field} with {why}: {code}, but wrote to {changed}")
        elif (body["data"][field] or {}).get("role") or (body["data"][field] or {}).get("admin"):
            problems.append(f"{field} with {why}: an object came back with the error")
    assert not problems, "\n".join(problems)


async def test_a_change_that_would_lock_the_partner_out_is_refused(api: Api) -> None:
    # given: the read-only admin is also a full admin (granted); the only primary full admin
    # is deactivated, so the grant is all that lets anyone manage Acme
    pks = await two_partners(api)
    ro = gid("Admin", pks[A_RO])
    grant = {"input": {"adminId": ro, "role": "FULL_ADMIN"}}
    assert (
        data_of(await post_graphql(api, GRANT, grant, as_=A_FULL))["grantRole"]["userErrors"] == []
    )
    deactivate = mutation_document("deactivateAdmin", "DeactivateAdminInput", "admin { id }")
    deactivated = await post_graphql(
        api, deactivate, {"input": {"id": gid("Admin", pks[A_FULL])}}, as_=A_RO
    )
    assert data_of(deactivated)["deactivateAdmin"]["userErrors"] == []
    before = await snapshot(api.engine)

    # when: revoking the grant, or withdrawing what full admins may do
    revoke = await post_graphql(api, REVOKE, grant, as_=A_RO)
    withdraw = await post_graphql(
        api, REMOVE_RULE, rule("FULL_ADMIN", "policy", "manage"), as_=A_RO
    )

    # then
    assert user_error_codes(revoke, "revokeRole") == ["WOULD_LOCK_OUT"]
    assert user_error_codes(withdraw, "removePolicyRule") == ["WOULD_LOCK_OUT"]
    assert changed_tables(before, await snapshot(api.engine)) == []
    assert data_of(await post_graphql(api, VIEWER, as_=A_RO))["viewer"]["roles"] == [
        "READ_ONLY_ADMIN",
        "FULL_ADMIN",
    ]


async def test_only_full_admins_read_or_change_policies(api: Api) -> None:
    # given
    pks = await two_partners(api)
    callers = (A_PARTNER, A_RO, A_SALES)
    for caller in callers:
        await post_graphql(api, VIEWER, as_=caller)  # policies seeded, tokens issued
    target = gid("Admin", pks[A_SALES])
    operations = [
        (ROLES, None),
        (POLICY_RULES, None),
        (AUDIT_LOG, None),
        (GRANT, {"input": {"adminId": target, "role": "FULL_ADMIN"}}),
        (REVOKE, {"input": {"adminId": target, "role": "FULL_ADMIN"}}),
        (
            CREATE_ROLE,
            {"input": {"name": "SNEAKY", "rules": [{"object": "policy", "action": "manage"}]}},
        ),
        (ADD_RULE, rule("SALES_ADMIN", "policy", "manage")),
        (REMOVE_RULE, rule("FULL_ADMIN", "tag", "write")),
    ]
    before = await snapshot(api.engine)
    for caller in callers:
        for document, variables in operations:
            # when
            body = await post_graphql(api, document, variables, as_=caller)

            # then
            assert error_codes(body) == ["FORBIDDEN"], (caller, document, body)
            assert body["data"] is None
    assert changed_tables(before, await snapshot(api.engine)) == []


NESTED = """
query Nested($id: ID!) {
  customers(first: 10) {
    nodes { name subscriptions { subscriptionId } trials { subscriptionId } tags { name }
            partnerAdmins { admin { email } } }
  }
  customer(id: $id) { name subscriptions { subscriptionId } trials { subscriptionId } }
}
"""


CASES = (
    "{ helpdeskCases(first: 10) { nodes { customer { name subscriptions { subscriptionId } } } } }"
)


async def test_lists_below_a_customer_follow_their_own_rules(api: Api) -> None:
    """Seeing a customer is not seeing its subscriptions: a role that lost 'subscription read',
    or reads subscriptions of its assigned customers only, gets empty lists elsewhere, on a
    page and in a single customer's detail alike."""
    # given: read-only admins see every customer; one of two is assigned to Acme's
    pks = await two_partners(api)
    f = AuthzFactory(api.engine)
    partner = pks["acme.example"]
    mine, theirs = await f.customer(partner, "Mine"), await f.customer(partner, "Theirs")
    await f.assign(mine, pks[A_RO])
    tag = await f.tag(partner, "vip")
    for c in (mine, theirs):
        await f.subscription(c)
        await f.trial(c)
        await f.tag_customer(partner, c, tag)

    async def nested(as_: str, customer: int) -> dict[str, Any]:
        body = await post_graphql(api, NESTED, {"id": gid("Customer", customer)}, as_=as_)
        data = data_of(body)
        return {"page": {n["name"]: n for n in data["customers"]["nodes"]}, "one": data["customer"]}

    def sub_ids(values: list[dict[str, Any]]) -> list[str]:
        return [v["subscriptionId"] for v in values]

    before = await nested(A_RO, theirs)
    assert all(len(n["subscriptions"]) == 2 for n in before["page"].values())
    assert len(before["one"]["subscriptions"]) == 2

    # when: Acme withdraws "read-only admins read subscriptions"
    removed = await post_graphql(
        api, REMOVE_RULE, rule("READ_ONLY_ADMIN", "subscription", "read", "all"), as_=A_FULL
    )
    assert data_of(removed)["removePolicyRule"]["userErrors"] == []

    # then: customers, trials, tags and assignments still show; subscriptions do not
    after = await nested(A_RO, theirs)
    assert set(after["page"]) == {"Mine", "Theirs"}
    for node in after["page"].values():
        assert node["subscriptions"] == []
        assert len(node["trials"]) == 1 and node["tags"] == [{"name": "vip"}]
    assert after["page"]["Mine"]["partnerAdmins"] == [{"admin": {"email": A_RO}}]
    assert after["one"]["subscriptions"] == [] and len(after["one"]["trials"]) == 1

    # when: they may read the subscriptions of their assigned customers only
    added = await post_graphql(
        api, ADD_RULE, rule("READ_ONLY_ADMIN", "subscription", "read", "assigned"), as_=A_FULL
    )
    assert data_of(added)["addPolicyRule"]["userErrors"] == []

    # then: their assigned customer's subscriptions show, the other's do not
    scoped = await nested(A_RO, theirs)
    assert len(scoped["page"]["Mine"]["subscriptions"]) == 2
    assert scoped["page"]["Theirs"]["subscriptions"] == []
    assert scoped["one"]["subscriptions"] == []
    assert len((await nested(A_RO, mine))["one"]["subscriptions"]) == 2
    # and so do customers reached without a page's prefetch (a helpdesk case's customer): one
    # decision for all of them, whatever their number
    for c in (mine, theirs, mine, theirs):
        await f.helpdesk_case(partner, pks[A_RO], customer_id=c)
    with api.counter.counting() as statements:
        cases = data_of(await post_graphql(api, CASES, as_=A_RO))["helpdeskCases"]["nodes"]
    by_name: dict[str, list[int]] = {}
    for case in cases:
        customer = case["customer"]
        by_name.setdefault(customer["name"], []).append(len(customer["subscriptions"]))
    assert by_name == {"Mine": [2, 2], "Theirs": [0, 0]}
    assert sum("customer_assignment" in s for s in statements) == 1
    # a full admin is untouched
    full = await nested(A_FULL, theirs)
    assert sorted(sub_ids(full["page"]["Theirs"]["subscriptions"])) == sorted(
        sub_ids(before["page"]["Theirs"]["subscriptions"])
    )


async def test_roles_lists_the_built_in_ones_then_the_first_custom_ones_by_name(api: Api) -> None:
    # given: Acme with more custom roles than the answer holds, Globex with one of its own
    pks = await two_partners(api)
    names = [f"ROLE_{n:03d}" for n in reversed(range(MAX_ROLES + 5))]
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(CustomRole),
            [
                {"partner_id": pks[domain], "name": name, "description": "", "created_at": NOW}
                for domain, name in [("globex.example", "AAA_GLOBEX")]
                + [("acme.example", name) for name in names]
            ],
        )

    # when
    roles = data_of(await post_graphql(api, ROLES, as_=A_FULL))["roles"]

    # then: as many as the cost prices, built-in first, then Acme's by name (none of Globex's)
    built_in = [r["name"] for r in roles if r["builtIn"]]
    custom = [r["name"] for r in roles if not r["builtIn"]]
    assert len(roles) == MAX_ROLES
    assert [r["name"] for r in roles[: len(built_in)]] == built_in
    assert custom == sorted(names)[: MAX_ROLES - len(built_in)]
