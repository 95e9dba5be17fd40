"""Relay `node(id:)` and `customer(id:)`: resolution, malformed IDs, no cross-partner leaks."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

from tests.conftest import Api
from tests.helpers import Factory, data_of, error_codes, post_graphql

FULL = "full@acme.example"
OTHER = "full@globex.example"

NODE_QUERY = """
query Node($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on Customer { name managedBy }
    ... on Subscription { subscriptionId kind }
    ... on Tag { name }
    ... on Admin { email role }
  }
}
"""
CUSTOMER_QUERY = """
query Customer($id: ID!) { customer(id: $id) { __typename id name } }
"""
# Every ID a partner's full admin can see, as the API hands them out.
IDS_QUERY = """
query Ids {
  viewer { id email role }
  tags { id name }
  customers(first: 10) {
    nodes { id name managedBy subscriptions { id subscriptionId kind } }
  }
}
"""


def encoded(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@dataclass
class Objects:
    viewer: dict[str, Any]
    tag: dict[str, Any]
    customer: dict[str, Any]
    subscription: dict[str, Any]


async def build_two_partners(api: Api) -> tuple[Objects, Objects]:
    from tests.test_customers import add_tag, tag_customer

    f = Factory(api.engine)
    seen = []
    for partner_name, domain, email, customer_name, tag_name in (
        ("Acme Partners", "acme.example", FULL, "Acme Customer", "acme-tag"),
        ("Globex Reseller", "globex.example", OTHER, "Globex Customer", "globex-tag"),
    ):
        partner = await f.partner(partner_name, domain)
        await f.admin(partner, email, "FULL_ADMIN")
        customer = await f.customer(partner, customer_name, managed_by="PARTNER_ORG")
        await f.subscription(customer, kind="TRIAL")
        tag = await add_tag(api, partner, tag_name)
        await tag_customer(api, partner, customer, tag)
        data = data_of(await post_graphql(api, IDS_QUERY, as_=email))
        [node] = data["customers"]["nodes"]
        seen.append(
            Objects(
                viewer=data["viewer"],
                tag=data["tags"][0],
                customer=node,
                subscription=node["subscriptions"][0],
            )
        )
    return seen[0], seen[1]


async def test_node_resolves_each_kind_of_object(api: Api) -> None:
    # given
    ours, _ = await build_two_partners(api)
    cases = [
        (ours.customer["id"], {"__typename": "Customer", "name": "Acme Customer",
                               "managedBy": "PARTNER_ORG"}),
        (ours.subscription["id"], {"__typename": "Subscription",
                                   "subscriptionId": ours.subscription["subscriptionId"],
                                   "kind": "TRIAL"}),
        (ours.tag["id"], {"__typename": "Tag", "name": "acme-tag"}),
        (ours.viewer["id"], {"__typename": "Admin", "email": FULL, "role": "FULL_ADMIN"}),
    ]  # fmt: skip
    assert len({gid for gid, _ in cases}) == 4  # four distinct, opaque IDs
    for gid, want in cases:
        # when
        body = await post_graphql(api, NODE_QUERY, {"id": gid}, as_=FULL)
        # then
        assert data_of(body)["node"] == {"id": gid, **want}


async def test_customer_by_id(api: Api) -> None:
    # given
    ours, _ = await build_two_partners(api)
    # when
    body = await post_graphql(api, CUSTOMER_QUERY, {"id": ours.customer["id"]}, as_=FULL)
    # then
    assert data_of(body)["customer"] == {
        "__typename": "Customer",
        "id": ours.customer["id"],
        "name": "Acme Customer",
    }


async def test_customer_by_the_id_of_something_else_is_invalid(api: Api) -> None:
    # given
    ours, _ = await build_two_partners(api)
    for gid in (ours.subscription["id"], ours.tag["id"], ours.viewer["id"]):
        # when
        body = await post_graphql(api, CUSTOMER_QUERY, {"id": gid}, as_=FULL)
        # then
        assert error_codes(body) == ["INVALID_ID"]
        assert body["data"] == {"customer": None}


MALFORMED = [
    "",
    "abc",
    "   ",
    "Customer:1",  # not encoded
    encoded("Nope:1"),
    encoded("Customer:-1"),
    encoded("Customer:0"),
    encoded("Customer:1x"),
    encoded("Customer:01"),
    encoded("Customer: 1"),
    encoded("Customer:"),
    encoded("Customer"),
    encoded(":1"),
    encoded("Customer:99999999999999999999999999"),
    encoded(f"Customer:{2**31}"),  # beyond any primary key
    encoded(f"Customer:{2**63}"),
    base64.urlsafe_b64encode(b"\xff\xfe:1").decode(),
    "x" * 10_000,
]


BOTH_QUERY = """
query Both($id: ID!) {
  node(id: $id) { id }
  customer(id: $id) { id }
}
"""


async def test_malformed_ids_are_a_clear_error(api: Api) -> None:
    # given
    await build_two_partners(api)
    for gid in MALFORMED:
        # when
        body = await post_graphql(api, BOTH_QUERY, {"id": gid}, as_=FULL)
        # then: each field fails on its own, with the code
        assert body["data"] == {"node": None, "customer": None}, gid[:40]
        assert sorted((e["path"][0], e["extensions"]["code"]) for e in body["errors"]) == [
            ("customer", "INVALID_ID"),
            ("node", "INVALID_ID"),
        ], gid[:40]


def without_budget(body: dict[str, Any]) -> dict[str, Any]:
    """The body minus the caller's remaining rate-limit budget, which moves with every request
    and with the wall clock (it says nothing about the object asked for)."""
    body = copy.deepcopy(body)
    throttle = body.get("extensions", {}).get("cost", {}).get("throttleStatus", {})
    throttle.pop("currentlyAvailable", None)
    return body


async def test_another_partners_object_is_exactly_like_a_missing_one(api: Api) -> None:
    # given
    ours, theirs = await build_two_partners(api)
    pairs = [
        (theirs.customer["id"], encoded("Customer:999999")),
        (theirs.subscription["id"], encoded("Subscription:999999")),
        (theirs.tag["id"], encoded("Tag:999999")),
        (theirs.viewer["id"], encoded("Admin:999999")),
        (theirs.viewer["id"], encoded(f"Admin:{2**31 - 1}")),
    ]
    # they are real objects: their own admin sees them
    for gid, _ in pairs:
        assert data_of(await post_graphql(api, NODE_QUERY, {"id": gid}, as_=OTHER))["node"]
    for foreign, missing in pairs:
        # when
        foreign_body = await post_graphql(api, NODE_QUERY, {"id": foreign}, as_=FULL)
        missing_body = await post_graphql(api, NODE_QUERY, {"id": missing}, as_=FULL)
        # then
        assert without_budget(foreign_body) == without_budget(missing_body)
        assert foreign_body["data"] == {"node": None}
        assert "errors" not in foreign_body
    # and through customer(id:)
    foreign_body = await post_graphql(api, CUSTOMER_QUERY, {"id": theirs.customer["id"]}, as_=FULL)
    missing_body = await post_graphql(api, CUSTOMER_QUERY, {"id": pairs[0][1]}, as_=FULL)
    assert without_budget(foreign_body) == without_budget(missing_body)
    assert foreign_body["data"] == {"customer": None}
    # the other partner's IDs do not resolve as ours either way round
    body = await post_graphql(api, NODE_QUERY, {"id": ours.customer["id"]}, as_=OTHER)
    assert body["data"] == {"node": None}


async def test_the_raw_responses_differ_only_by_the_budget(api: Api) -> None:
    # given
    _, theirs = await build_two_partners(api)
    await post_graphql(api, "{ viewer { id } }", as_=FULL)  # issues the token
    headers = {"Authorization": f"Bearer {api.tokens[FULL]}"}
    responses = []
    for gid in (theirs.customer["id"], encoded("Customer:424242")):
        # when
        responses.append(
            await api.client.post(
                "/graphql",
                json={"query": NODE_QUERY, "variables": {"id": gid}},
                headers=headers,
            )
        )
    # then
    foreign, missing = responses
    assert foreign.status_code == missing.status_code == 200
    assert without_budget(foreign.json()) == without_budget(missing.json())
    varying = {"date", "x-request-id", "content-length"}
    assert {k: v for k, v in foreign.headers.items() if k not in varying} == {
        k: v for k, v in missing.headers.items() if k not in varying
    }
