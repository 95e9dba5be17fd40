"""Mutations of one document run one after the other, and each sees what the previous left
(issue 15, finding 6): values read before a write (loaders, shared work) are dropped when it
commits or rolls back (``graph.mutations.transaction`` calls ``Context.forget``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import data_of, error_codes, post_graphql
from tests.test_helpdesk import open_case
from tests.test_tags import FULL, PARTNER, World, build_world, create_tag, gid, snapshot

CUSTOMER_TAGS = """
mutation($customers: [ID!]!, $tags: [ID!]!) {
  a: addTagsToCustomers(input: {customerIds: $customers, tagIds: $tags}) {
    changed customers { tags { name } } userErrors { code }
  }
  b: removeTagsFromCustomers(input: {customerIds: $customers, tagIds: $tags}) {
    changed customers { tags { name } } userErrors { code }
  }
  c: addTagsToCustomers(input: {customerIds: $customers, tagIds: $tags}) {
    changed customers { tags { name } } userErrors { code }
  }
}
"""
SUBSCRIPTION_TAGS = """
mutation($subscriptions: [ID!]!, $tags: [ID!]!) {
  a: addTagsToSubscriptions(input: {subscriptionIds: $subscriptions, tagIds: $tags}) {
    changed subscriptions { tags { name } } userErrors { code }
  }
  b: removeTagsFromSubscriptions(input: {subscriptionIds: $subscriptions, tagIds: $tags}) {
    changed subscriptions { tags { name } } userErrors { code }
  }
  c: addTagsToSubscriptions(input: {subscriptionIds: $subscriptions, tagIds: $tags}) {
    changed subscriptions { tags { name } } userErrors { code }
  }
}
"""
ASSIGNMENTS = """
mutation($input: AssignmentInput!) {
  a: assignPartnerAdmin(input: $input) {
    customer { partnerAdmins { admin { email } } } userErrors { code }
  }
  b: unassignPartnerAdmin(input: $input) {
    customer { partnerAdmins { admin { email } } } userErrors { code }
  }
  c: assignPartnerAdmin(input: $input) {
    customer { partnerAdmins { admin { email } } } userErrors { code }
  }
}
"""
# The customer's tags are read before any write (by the first mutation's guard and payload), a
# refused mutation then rolls back, and the last one must still see the state of the first.
AFTER_A_REFUSAL = """
mutation($customers: [ID!]!, $tags: [ID!]!, $unknown: [ID!]!) {
  a: addTagsToCustomers(input: {customerIds: $customers, tagIds: $tags}) {
    changed customers { tags { name } } userErrors { code }
  }
  b: addTagsToCustomers(input: {customerIds: $customers, tagIds: $unknown}) {
    changed customers { tags { name } } userErrors { code }
  }
  c: removeTagsFromCustomers(input: {customerIds: $customers, tagIds: $tags}) {
    changed customers { tags { name } } userErrors { code }
  }
}
"""


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def names(owners: list[dict[str, Any]]) -> list[list[str]]:
    return [sorted(t["name"] for t in owner["tags"]) for owner in owners]


async def test_customer_tag_mutations_see_the_previous_mutations_state(
    api: Api, world: World
) -> None:
    # given
    tag = await create_tag(api, "vip")
    variables = {"customers": [gid("Customer", world.assigned)], "tags": [tag]}
    # when
    data = data_of(await post_graphql(api, CUSTOMER_TAGS, variables, as_=FULL))
    # then
    assert [data[k]["changed"] for k in "abc"] == [1, 1, 1]
    assert names(data["a"]["customers"]) == [["vip"]]
    assert names(data["b"]["customers"]) == [[]]
    assert names(data["c"]["customers"]) == [["vip"]]


async def test_subscription_tag_mutations_see_the_previous_mutations_state(
    api: Api, world: World
) -> None:
    # given
    tag = await create_tag(api, "renewal")
    variables = {"subscriptions": [gid("Subscription", world.assigned_sub)], "tags": [tag]}
    # when
    data = data_of(await post_graphql(api, SUBSCRIPTION_TAGS, variables, as_=FULL))
    # then
    assert [data[k]["changed"] for k in "abc"] == [1, 1, 1]
    assert names(data["a"]["subscriptions"]) == [["renewal"]]
    assert names(data["b"]["subscriptions"]) == [[]]
    assert names(data["c"]["subscriptions"]) == [["renewal"]]


async def test_assign_and_unassign_see_the_previous_mutations_state(api: Api, world: World) -> None:
    # given: nobody is assigned to the customer
    variables = {
        "input": {
            "customerId": gid("Customer", world.unassigned),
            "adminId": gid("Admin", world.admins[PARTNER]),
        }
    }
    # when
    data = data_of(await post_graphql(api, ASSIGNMENTS, variables, as_=FULL))
    # then
    assert [data[k]["userErrors"] for k in "abc"] == [[], [], []]
    admins = [[a["admin"]["email"] for a in data[k]["customer"]["partnerAdmins"]] for k in "abc"]
    assert admins == [[PARTNER], [], [PARTNER]]


async def test_a_refused_mutation_between_two_leaves_the_state_of_the_first(
    api: Api, world: World
) -> None:
    # given
    tag = await create_tag(api, "vip")
    variables = {
        "customers": [gid("Customer", world.assigned)],
        "tags": [tag],
        "unknown": [gid("Tag", 999_999)],
    }
    # when
    data = data_of(await post_graphql(api, AFTER_A_REFUSAL, variables, as_=FULL))
    # then: b wrote nothing and says so; c removes what a added
    assert [e["code"] for e in data["b"]["userErrors"]] == ["NOT_FOUND"]
    assert data["b"]["changed"] == 0
    assert names(data["a"]["customers"]) == [["vip"]]
    assert (data["c"]["changed"], names(data["c"]["customers"])) == (1, [[]])


COMMENTS = """
mutation($case: ID!) {
  a: addHelpdeskCaseComment(input: {caseId: $case, body: "first"}) {
    case { comments { body } } userErrors { code }
  }
  b: addHelpdeskCaseComment(input: {caseId: $case, body: "second"}) {
    case { comments { body } } userErrors { code }
  }
  c: closeHelpdeskCase(input: {caseId: $case, resolution: "done"}) {
    case { state comments { body } } userErrors { code }
  }
}
"""


async def test_helpdesk_comments_see_the_previous_mutations_state(api: Api, world: World) -> None:
    # given
    case = await open_case(api)
    # when
    data = data_of(await post_graphql(api, COMMENTS, {"case": case["id"]}, as_=FULL))
    # then
    bodies = [[c["body"] for c in data[k]["case"]["comments"]] for k in "abc"]
    assert bodies == [["first"], ["first", "second"], ["first", "second", "done"]]
    assert data["c"]["case"]["state"] == "CLOSED"


RENAMED_AUTHOR = """
mutation($case: ID!, $me: ID!) {
  a: addHelpdeskCaseComment(input: {caseId: $case, body: "before"}) {
    comment { author { name } } case { openedBy { name } } userErrors { code }
  }
  b: updateAdmin(input: {id: $me, name: "Renamed Admin"}) { admin { name } userErrors { code } }
  c: addHelpdeskCaseComment(input: {caseId: $case, body: "after"}) {
    comment { author { name } } case { openedBy { name } } userErrors { code }
  }
}
"""


async def test_a_renamed_admin_is_seen_by_the_next_mutations_payload(
    api: Api, world: World
) -> None:
    # given
    case = await open_case(api)
    variables = {"case": case["id"], "me": gid("Admin", world.admins[FULL])}
    # when
    data = data_of(await post_graphql(api, RENAMED_AUTHOR, variables, as_=FULL))
    # then
    assert data["a"]["comment"]["author"]["name"] == FULL
    assert data["b"]["admin"]["name"] == "Renamed Admin"
    assert data["c"]["comment"]["author"]["name"] == "Renamed Admin"
    assert data["c"]["case"]["openedBy"]["name"] == "Renamed Admin"


DEMOTED = """
mutation($me: ID!) {
  a: updateAdmin(input: {id: $me, role: "READ_ONLY_ADMIN"}) { admin { role } userErrors { code } }
  b: createTag(input: {name: "after demotion"}) { tag { name } userErrors { code } }
}
"""
DEACTIVATED = """
mutation($me: ID!) {
  a: deactivateAdmin(input: {id: $me}) { admin { active } userErrors { code } }
  b: createTag(input: {name: "after deactivation"}) { tag { name } userErrors { code } }
}
"""


@pytest.mark.parametrize(
    ("document", "change"),
    [(DEMOTED, "'READ_ONLY_ADMIN'"), (DEACTIVATED, "False")],
    ids=["demoted", "deactivated"],
)
async def test_the_next_mutation_runs_with_the_callers_new_rights(
    api: Api, world: World, document: str, change: str
) -> None:
    # given: a second full admin keeps the partner managed
    before = await snapshot(api)
    # when
    body = await post_graphql(api, document, {"me": gid("Admin", world.admins[FULL])}, as_=FULL)
    # then: the first mutation took effect; the second is refused (its non-null payload nulls
    # the whole response) and writes nothing
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["errors"][0]["path"] == ["b"]
    after = await snapshot(api)
    changed = set(after["admin"]) - set(before["admin"])
    assert len(changed) == 1 and change in changed.pop()
    assert after["tag"] == before["tag"]
