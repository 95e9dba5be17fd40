"""Relationships rendered by PostgreSQL as the response's JSON (``graph.render``, issue 17).

Every document here is answered twice, rendering on and off (``graph.render.RENDER``), and the
two answers must be the same bytes (each orjson's own writing of what it holds), with the same
``actualQueryCost`` (a rendered part's objects are counted by its statement): every field of
every renderable type (instants with and without microseconds, nulls, global ids, computed
counts, enum names), aliases, ``__typename``, fragments, merged fields, every role's reach (a
relationship refused answered empty, one read only for assigned customers left to the
loaders), and selections that must not be rendered (directives, a resolver field, a
relationship under two names). On PostgreSQL the rendered path is checked to be taken (no API
object made for a rendered relationship); on SQLite nothing is rendered and the answers are the
same too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select, update

from db.models import (
    Admin,
    Customer,
    CustomerTag,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    Tag,
)
from graph import render
from graph.types import common
from graph.types import customers as customer_types
from graph.types import tags as tag_types
from tests.conftest import NOW, Api, instance_beside
from tests.helpers import data_of, post_graphql, token_for
from tests.test_n_plus_one import FULL, build_customers
from tests.test_role_matrix_nested import ROLES, build_world, caller_email

EVERY_FIELD = """
  __typename id name
  statuses products
  tags { __typename id name description createdAt }
  subscriptions {
    __typename id subscriptionId kind state startDate endDate autoRenew renewalDate
    licenses { __typename product licenseType purchased assigned used available overage }
    invoices { __typename invoiceNumber issuedAt dueAt amountCents currency status }
    orders { __typename orderNumber placedAt action description status }
    tags { __typename id name description createdAt }
  }
  trials { id subscriptionId endDate licenses { product available } tags { name } }
  partnerAdmins {
    __typename role assignedAt
    admin { __typename id email name role active createdAt }
  }
"""
SHAPES = [
    EVERY_FIELD,
    # aliases, fields merged from fragments, a field selected twice
    """
    t: tags { n: name, name, name }
    subs: subscriptions { ...S end: endDate licenses { ...L } }
    partnerAdmins { who: admin { e: email } admin { name e: email } }
    ... on Customer { statuses statuses }
    """,
    # a relationship under two response names is not rendered, and still right
    "a: tags { name } b: tags { id } subscriptions { id }",
    # a resolver below (Admin.roles, Admin.partner): not rendered
    "partnerAdmins { admin { roles partner { name } } } tags { name }",
]
FRAGMENTS = """
fragment S on Subscription { kind startDate licenses { used } }
fragment L on LicenseLine { product overage }
"""


@pytest.fixture
async def uncached(api: Api) -> AsyncIterator[Api]:
    """``api`` without its response cache: each answer is made, rendered or not."""
    async with instance_beside(api, response_cache_seconds=0) as value:
        yield value


def _page(node: str) -> str:
    return (
        "query P($first: Int, $filter: CustomerFilter) { customers(first: $first, filter:"
        " $filter) { nodes {" + node + "} } }" + (FRAGMENTS if "..." in node else "")
    )


def _detail(node: str) -> str:
    return (
        "query D($id: ID!) { customer(id: $id) {"
        + node
        + "} }"
        + (FRAGMENTS if "...S" in node else "")
    )


async def raw_answer(
    api: Api, document: str, variables: dict[str, Any], as_: str = FULL
) -> tuple[bytes, dict[str, Any]]:
    """The response's bytes but for its extensions (``data`` and ``errors`` as sent), and its
    ``extensions.cost`` ({} when none). The response must be orjson's own writing of what it
    holds, byte for byte (a rendered part is written as PostgreSQL wrote it: no whitespace)."""
    token = await token_for(api, as_)
    response = await api.client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    raw = response.content
    body = orjson.loads(raw)
    assert orjson.dumps(body) == raw, raw[:300]
    extensions = body.pop("extensions", {})
    return orjson.dumps(body), extensions.get("cost", {})


async def answers(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    document: str,
    variables: dict[str, Any],
    **as_: Any,
) -> list[bytes]:
    """The answer's bytes (its extensions aside: the rate limit's budget moves between the two)
    with rendering off, then on (as the full admin unless ``as_``); its ``actualQueryCost`` is
    the same both ways (a rendered part's objects are counted by its statement)."""
    found, costs = [], []
    for on in (False, True):
        monkeypatch.setattr(render, "RENDER", on)
        body, cost = await raw_answer(api, document, variables, as_.get("as_", FULL))
        found.append(body)
        costs.append((cost.get("requestedQueryCost"), cost.get("actualQueryCost")))
    assert costs[0] == costs[1], (document, costs)
    return found


async def same_both_ways(
    api: Api, monkeypatch: pytest.MonkeyPatch, document: str, variables: dict[str, Any]
) -> bytes:
    """The full admin's answer, without errors and the same with rendering on and off."""
    plain, rendered = await answers(api, monkeypatch, document, variables)
    assert b'"errors"' not in plain, plain[:300]
    assert rendered == plain, document
    return rendered


@pytest.fixture
def made_objects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class of every customer and tag API object made (``graph.types.common.made``)."""
    made: list[str] = []

    def counted(cls: Any, values: dict[str, Any]) -> Any:
        made.append(cls.__name__)
        return common.made(cls, values)

    monkeypatch.setattr(customer_types, "made", counted)
    monkeypatch.setattr(tag_types, "made", counted)
    return made


async def _both(
    api: Api, monkeypatch: pytest.MonkeyPatch, document: str, variables: dict[str, Any], **as_: Any
) -> bytes:
    """The answer's JSON, the same with rendering on and off."""
    plain, rendered = await answers(api, monkeypatch, document, variables, **as_)
    assert plain == rendered, (document, variables)
    return rendered


async def _odd_values(api: Api) -> None:
    """Instants with microseconds (written by the clock, not by the bulk build), a tag's
    description, an order's description with quotes and non-ASCII, a null renewal date."""
    async with api.engine.begin() as conn:
        micro = timedelta(microseconds=123_450)
        await conn.execute(update(Subscription).values(start_date=NOW - timedelta(days=9) + micro))
        await conn.execute(
            update(Tag).where(Tag.name == "gold").values(description='Gold "A" — ñ\\n\t')
        )
        await conn.execute(update(Tag).values(created_at=NOW + timedelta(microseconds=1)))
        await conn.execute(update(Invoice).values(due_at=NOW + timedelta(microseconds=999_999)))
        await conn.execute(update(Order).values(description='Añadir "1" línea\n'))
        await conn.execute(update(Admin).values(created_at=NOW + timedelta(microseconds=500_000)))


@pytest.mark.parametrize("shape", range(len(SHAPES)))
async def test_every_field_renders_as_the_api_objects_would(
    uncached: Api, monkeypatch: pytest.MonkeyPatch, shape: int
) -> None:
    api = uncached
    await build_customers(api, 6)
    await _odd_values(api)
    node = SHAPES[shape]
    page = orjson.loads(await _both(api, monkeypatch, _page(node), {"first": 6}, as_=FULL))
    nodes = page["data"]["customers"]["nodes"]
    assert len(nodes) == 6
    if shape == 0:
        flat = orjson.dumps(nodes).decode()
        assert ".12345+00:00" not in flat and ".123450+00:00" in flat  # as isoformat writes
        assert ":00.000001+00:00" in flat and '"renewalDate":null' in flat
        assert '"available":0,"overage":2' in flat  # purchased 10, assigned 12
    for found in nodes[:2]:
        if "id" in found:
            await _both(api, monkeypatch, _detail(node), {"id": found["id"]}, as_=FULL)
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL))["tags"]
    gold = next(t["id"] for t in tags if t["name"] == "gold")
    await _both(api, monkeypatch, _page(node), {"first": 3, "filter": {"tagIds": [gold]}}, as_=FULL)


async def test_directives_leave_the_selection_to_the_ordinary_path(
    uncached: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = uncached
    await build_customers(api, 3)
    document = (
        "query P($v: Boolean!) { customers(first: 3) { nodes { id"
        " tags { name description @include(if: $v) }"
        " subscriptions { ... on Subscription @skip(if: $v) { kind } id } } } }"
    )
    for v in (True, False):
        answer = orjson.loads(await _both(api, monkeypatch, document, {"v": v}, as_=FULL))
        first = answer["data"]["customers"]["nodes"][0]
        assert ("description" in first["tags"][0]) is v
        assert ("kind" in first["subscriptions"][0]) is not v


async def test_postgresql_renders_and_makes_no_api_object_for_it(
    uncached: Api, backend: str, made_objects: list[str]
) -> None:
    api = uncached
    await build_customers(api, 4)
    made = made_objects
    token = await token_for(api, FULL)
    document = _page("id tags { name } subscriptions { licenses { product } }")
    body = await post_graphql(api, document, {"first": 4}, token=token)
    assert len(data_of(body)["customers"]["nodes"]) == 4
    assert "Customer" in made  # the counting is in place
    if backend == "postgresql":
        assert "LicenseLine" not in made and "Tag" not in made
    else:
        assert "LicenseLine" in made and "Tag" in made


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_reads_the_same_rendered_or_not(
    uncached: Api, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    api = uncached
    w = await build_world(api, role)
    who = caller_email(w)
    document = _page(EVERY_FIELD.replace("roles", ""))
    for variables in ({"first": 10}, {"first": 1}):
        plain, rendered = await answers(api, monkeypatch, document, variables, as_=who)
        assert rendered == plain, (role, variables)


async def test_rendered_elements_keep_their_order_against_the_order_written(
    uncached: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL aggregates a rendered part in its subquery's order (no sort inside the
    aggregate, ``customer_render.json_array``): rows written against that order (tags z..a,
    more than a page's cap of them, license lines and subscriptions newest written first)
    still come out in the API's order, the cap keeping the first ones, as the ordinary path
    sorts them."""
    api = uncached
    await build_customers(api, 2)
    async with api.engine.begin() as conn:
        row = (
            await conn.execute(select(Customer.id, Customer.partner_id, Customer.name_key))
        ).first()
        customer, partner, key = row
        sub = (await conn.execute(select(Subscription.id).limit(1))).scalar_one()
        for i in reversed(range(30)):  # written z, y, ..., read in name order
            name = f"{chr(ord('a') + i % 26)}{i:02d}"
            tag = await conn.execute(
                insert(Tag).values(partner_id=partner, name=name, name_key=name, created_at=NOW)
            )
            await conn.execute(
                insert(CustomerTag).values(
                    customer_id=customer,
                    tag_id=tag.inserted_primary_key[0],
                    partner_id=partner,
                    created_at=NOW,
                    name_key=key,
                )
            )
        for product in ("REAL_TIME_TRANSLATION", "MESSAGING", "CONTACT_CENTER"):  # written last
            await conn.execute(
                insert(LicenseLine).values(
                    partner_id=partner,
                    subscription_id=sub,
                    product=product,
                    license_type="ZZ",
                    purchased=1,
                    assigned=0,
                    used=0,
                )
            )
    node = "id tags { name } subscriptions { startDate licenses { product licenseType } }"
    page = orjson.loads(await _both(api, monkeypatch, _page(node), {"first": 2}))
    for found in page["data"]["customers"]["nodes"]:
        names = [tag["name"] for tag in found["tags"]]
        assert names == sorted(names, key=str.lower)
        starts = [s["startDate"] for s in found["subscriptions"]]
        assert starts == sorted(starts, reverse=True)
        for subscription in found["subscriptions"]:
            lines = [(x["product"], x["licenseType"]) for x in subscription["licenses"]]
            assert lines == sorted(lines)
    tagged = max(page["data"]["customers"]["nodes"], key=lambda n: len(n["tags"]))
    assert len(tagged["tags"]) >= 20 and tagged["tags"][0]["name"] == "a00"
    await _both(api, monkeypatch, _detail(node), {"id": tagged["id"]})
