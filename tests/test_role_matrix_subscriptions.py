"""The role matrix of subscription management (issue 19), with the machinery and roles of
``tests/test_role_matrix.py`` (whose coverage check counts these rows too).

By default only ``subscription write`` allows these changes: FULL_ADMIN on every customer (A),
PARTNER_ADMIN on its own (S: another customer's subscription is NOT_FOUND and nothing is
written); READ_ONLY_ADMIN, SALES_ADMIN and the custom roles without the rule get FORBIDDEN and
nothing is written but the audit entry of the refusal. A custom role given the rule through
``createRole`` changes its customers' subscriptions; a caller that lacks the rule cannot give
it (no escalation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from graph.ids import from_global_id
from tests.authz_support import changed_tables, create_admin, create_role, gid, snapshot
from tests.conftest import NOW, Api
from tests.helpers import data_of, error_codes, post_graphql
from tests.test_role_matrix import (
    EMAILS,
    ROLES,
    A,
    F,
    Row,
    S,
    Target,
    World,
    build_world,
    check_cell,
    m,
)

DAY = timedelta(days=1)


async def provisioning(w: World, t: Target) -> dict[str, Any]:
    customer = await w.customer(t)
    pk = await w.f.subscription(
        customer, state="PROVISIONING", start=NOW + 5 * DAY, end=NOW + 370 * DAY
    )
    w.target = gid("Subscription", pk)
    return {"input": {"subscriptionId": w.target}}


async def more_licences(w: World, t: Target) -> dict[str, Any]:
    sub = gid("Subscription", await w.subscription(t))
    return {"input": {"subscriptionId": sub, "product": "MEETINGS", "purchased": 12}}


async def auto_renew_off(w: World, t: Target) -> dict[str, Any]:
    return {
        "input": {
            "subscriptionId": gid("Subscription", await w.subscription(t)),
            "autoRenew": False,
        }
    }


async def renewal(w: World, t: Target) -> dict[str, Any]:
    return {
        "input": {"subscriptionId": gid("Subscription", await w.subscription(t)), "termMonths": 12}
    }


async def cancellation(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"subscriptionId": gid("Subscription", await w.subscription(t))}}


SELECTION = "subscription { id state } order { orderNumber action }"
BY_RULE = (A, S, F, F, F, F, F)  # subscription write: FULL_ADMIN all, PARTNER_ADMIN assigned
# fmt: off
SUBSCRIPTION_MATRIX: list[Row] = [
    m("completeOrderSetup", "CompleteOrderSetupInput", SELECTION, provisioning,       BY_RULE),
    m("changeLicenseQuantity", "ChangeLicenseQuantityInput", SELECTION, more_licences, BY_RULE),
    m("setAutoRenew", "SetAutoRenewInput", SELECTION, auto_renew_off,                 BY_RULE),
    m("renewSubscription", "RenewSubscriptionInput", SELECTION, renewal,              BY_RULE),
    m("cancelSubscription", "CancelSubscriptionInput", SELECTION, cancellation,       BY_RULE),
]
# fmt: on


@pytest.mark.parametrize("role", ROLES)
async def test_subscription_role_matrix(api: Api, role: str) -> None:
    # given
    w = await build_world(api, role)

    # when
    problems = []
    for row in SUBSCRIPTION_MATRIX:
        problem = await check_cell(w, row)
        if problem is not None:
            problems.append(f"{row.label} as {role}, expected {row.outcome(role)}: {problem}")

    # then
    assert not problems, "\n".join(problems)


# --- a custom role with the rule ---------------------------------------------------------------

SUBSCRIPTION_MANAGER = "SUBSCRIPTION_MANAGER"
MANAGER_EMAIL = "subscriptions@acme.example"
MANAGER_RULES = [
    ("customer", "read", "assigned"),
    ("subscription", "read", "assigned"),
    ("subscription", "write", "assigned"),
]


@dataclass
class ManagerWorld(World):
    manager: int = 0

    @property
    def caller_pk(self) -> int:
        return self.manager


async def test_a_custom_role_with_subscription_write_changes_its_customers(api: Api) -> None:
    # given: a role made through createRole with subscription write on assigned customers
    base = await build_world(api, "FULL_ADMIN")
    full = EMAILS["FULL_ADMIN"]
    assert data_of(await create_role(api, full, SUBSCRIPTION_MANAGER, MANAGER_RULES))
    manager = from_global_id(await create_admin(api, full, MANAGER_EMAIL, SUBSCRIPTION_MANAGER))[1]
    w = ManagerWorld(api=api, f=base.f, partner=base.partner, admins=base.admins, manager=manager)
    await post_graphql(api, "{ viewer { id } }", as_=MANAGER_EMAIL)

    for row in SUBSCRIPTION_MATRIX:
        # when: on its customer, and on another
        mine = await post_graphql(
            api, row.document, await row.prepare(w, Target.MINE), as_=MANAGER_EMAIL
        )
        theirs_vars = await row.prepare(w, Target.THEIRS)
        before = await snapshot(api.engine)
        theirs = await post_graphql(api, row.document, theirs_vars, as_=MANAGER_EMAIL)

        # then
        payload = data_of(mine)[row.field]
        assert payload["userErrors"] == [] and payload["order"] is not None, (row.label, payload)
        codes = [e["code"] for e in data_of(theirs)[row.field]["userErrors"]]
        assert codes == ["NOT_FOUND"], (row.label, theirs)
        assert changed_tables(before, await snapshot(api.engine)) == [], row.label


async def test_a_caller_without_subscription_write_cannot_give_it(api: Api) -> None:
    # given: a policy keeper holding customer read, admins and policies, but no subscription
    # rule; a customer viewer; a role holding only subscription write
    await build_world(api, "FULL_ADMIN")
    full, keeper, viewer = EMAILS["FULL_ADMIN"], "keeper@acme.example", "viewer2@acme.example"
    keeper_rules = [
        ("customer", "read", "all"),
        ("admin", "read", "all"),
        ("admin", "manage", "all"),
        ("policy", "read", "all"),
        ("policy", "manage", "all"),
    ]
    assert data_of(await create_role(api, full, "POLICY_KEEPER", keeper_rules))
    assert data_of(await create_role(api, full, "VIEWER_ROLE", [("customer", "read", "all")]))
    assert data_of(
        await create_role(api, full, "SUBS_ONLY", [("subscription", "write", "assigned")])
    )
    await create_admin(api, full, keeper, "POLICY_KEEPER")
    viewer_id = await create_admin(api, full, viewer, "VIEWER_ROLE")
    await post_graphql(api, "{ viewer { id } }", as_=keeper)
    before = await snapshot(api.engine)

    # when: it defines a role with the rule, adds the rule to a role, grants a role with it
    defined = await create_role(api, keeper, "SUBS", [("subscription", "write", "assigned")])
    rule = {"role": "VIEWER_ROLE", "object": "subscription", "action": "write", "scope": "all"}
    added = await post_graphql(api, ADD_RULE, {"input": rule}, as_=keeper)
    grant = {"adminId": viewer_id, "role": "SUBS_ONLY"}
    granted = await post_graphql(api, GRANT, {"input": grant}, as_=keeper)

    # then
    for body in (defined, added, granted):
        assert "FORBIDDEN" in error_codes(body), body
    assert changed_tables(before, await snapshot(api.engine)) == []
    # ...while what it holds it may give
    allowed = await create_role(api, keeper, "READERS", [("customer", "read", "all")])
    assert data_of(allowed)["createRole"]["userErrors"] == []


ADD_RULE = """mutation A($input: PolicyRuleChangeInput!) {
  addPolicyRule(input: $input) { role { name } userErrors { code } }
}"""
GRANT = """mutation G($input: GrantRoleInput!) {
  grantRole(input: $input) { admin { roles } userErrors { code } }
}"""
