"""The one-statement customer detail (graph.detail) against the loaders, for every built-in
role, roles whose rules were narrowed to assigned customers, and a granted custom role; with
aliases, fragments and directives on the relationships. The detail must show exactly what the
directory page (answered by the loaders) shows for the same customer, and nothing of another
partner."""

from __future__ import annotations

from typing import Any

import pytest

from tests.authz_support import AuthzFactory, create_role, gid
from tests.conftest import Api
from tests.helpers import data_of, post_graphql
from tests.test_policies import (
    A_FULL,
    A_PARTNER,
    A_RO,
    A_SALES,
    ADD_RULE,
    B_FULL,
    GRANT,
    REMOVE_RULE,
    rule,
    two_partners,
)

PLAIN = """name statuses products tags { name } partnerAdmins { admin { email } }
  subscriptions { subscriptionId licenses { product } invoices { __typename }
                  orders { __typename } tags { name } }
  trials { subscriptionId licenses { product } tags { name } }"""
TRICKY = """name ... on Customer { a: subscriptions { subscriptionId licenses { product } } } ...F
  b: subscriptions @skip(if: false) { subscriptionId tags { name } }
  c: trials { ... on Subscription { subscriptionId licenses { product } } }"""
FRAGMENT = (
    " fragment F on Customer { tags { name } partnerAdmins { admin { email } } "
    "trials { tags { name } } }"
)


def document(selection: str) -> str:
    return (
        f"query($id: ID!) {{ customer(id: $id) {{ {selection} }} "
        f"customers(first: 5) {{ nodes {{ id {selection} }} }} }}"
        + FRAGMENT
        * ("...F" in selection)
    )


NARROWING = (
    (REMOVE_RULE, rule("READ_ONLY_ADMIN", "subscription", "read", "all")),
    (ADD_RULE, rule("READ_ONLY_ADMIN", "subscription", "read", "assigned")),
    (REMOVE_RULE, rule("READ_ONLY_ADMIN", "tag", "read", "all")),
    (ADD_RULE, rule("READ_ONLY_ADMIN", "tag", "read", "assigned")),
    (REMOVE_RULE, rule("READ_ONLY_ADMIN", "assignment", "read", "all")),
    (ADD_RULE, rule("READ_ONLY_ADMIN", "assignment", "read", "assigned")),
    (REMOVE_RULE, rule("READ_ONLY_ADMIN", "trial", "read", "all")),
    (ADD_RULE, rule("PARTNER_ADMIN", "subscription", "read", "all")),
)


@pytest.mark.parametrize("selection", [PLAIN, TRICKY], ids=["plain", "aliases-fragments"])
async def test_the_detail_shows_what_the_loaders_show_for_every_role(
    api: Api, selection: str
) -> None:
    pks = await two_partners(api)
    f = AuthzFactory(api.engine)
    acme, globex = pks["acme.example"], pks["globex.example"]
    mine, theirs = await f.customer(acme, "Mine"), await f.customer(acme, "Theirs")
    other = await f.customer(globex, "Other")
    await f.assign(mine, pks[A_RO])
    await f.assign(mine, pks[A_PARTNER])
    await f.assign(theirs, pks[A_SALES])
    tag = await f.tag(acme, "vip")
    for customer in (mine, theirs):
        subscription = await f.subscription(customer)
        await f.trial(customer)
        await f.tag_customer(acme, customer, tag)
        await f.tag_subscription(acme, subscription, tag)
    query = document(selection)

    async def differences(stage: str) -> list[Any]:
        found = []
        for email in (A_FULL, A_RO, A_SALES, A_PARTNER, B_FULL):
            for customer in (mine, theirs, other):
                id = gid("Customer", customer)
                data = data_of(await post_graphql(api, query, {"id": id}, as_=email))
                page = {n.pop("id"): n for n in data["customers"]["nodes"]}
                if data["customer"] != page.get(id):
                    found.append((stage, email, customer, data["customer"], page.get(id)))
        return found

    seen = await differences("built-in roles")
    for document_, variables in NARROWING:
        changed = await post_graphql(api, document_, variables, as_=A_FULL)
        assert not next(iter(data_of(changed).values()))["userErrors"]
        seen += await differences(str(variables["input"]))
    rules = [
        ("customer", "read", "all"),
        ("trial", "read", "assigned"),
        ("tag", "read", "assigned"),
    ]
    assert not data_of(await create_role(api, A_FULL, "LOOKER", rules))["createRole"]["userErrors"]
    for email in (A_SALES, A_RO, A_PARTNER):
        grant = {"input": {"adminId": gid("Admin", pks[email]), "role": "LOOKER"}}
        assert not data_of(await post_graphql(api, GRANT, grant, as_=A_FULL))["grantRole"][
            "userErrors"
        ]
    seen += await differences("granted LOOKER")
    assert seen == []
