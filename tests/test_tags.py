"""Tag mutations through HTTP (issue 5): rules, all-or-nothing bulk calls, roles and the audit.

The module also holds the small helpers the other partner-action test modules share
(``test_trials``, ``test_assignments``, ``test_launch``, ``test_concurrency``): a world of two
partners and one admin per default role, a snapshot of every table to prove that a refused
mutation wrote nothing, the audit entries a call added, and what ``policies/default_policy.csv``
grants each role.
"""

from __future__ import annotations

import base64
import csv
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, inspect, select
from sqlmodel import SQLModel

from db.engine import session_factory
from db.models import (
    Admin,
    AuditLog,
    Customer,
    CustomerAssignment,
    CustomerTag,
    LicenseLine,
    Partner,
    Subscription,
    SubscriptionTag,
    Tag,
)
from db.queries.admins import issue_token
from db.status import refresh_status_spans
from graph.mutations import REFUSAL
from tests.authz_support import NOT_DATA, refusal_trace
from tests.conftest import NOW, Api, api_over
from tests.helpers import RULES, Factory, assert_forbidden, data_of, post_graphql, token_for

FULL = "full@acme.example"
FULL2 = "full2@acme.example"
PARTNER = "partner@acme.example"
READ_ONLY = "readonly@acme.example"
SALES = "sales@acme.example"
OTHER = "full@globex.example"
ROLE_OF = {
    FULL: "FULL_ADMIN",
    FULL2: "FULL_ADMIN",
    PARTNER: "PARTNER_ADMIN",
    READ_ONLY: "READ_ONLY_ADMIN",
    SALES: "SALES_ADMIN",
}
# one admin per default role, in the order of DESIGN.md's roles table
ROLE_EMAILS = {
    "FULL_ADMIN": FULL,
    "PARTNER_ADMIN": PARTNER,
    "READ_ONLY_ADMIN": READ_ONLY,
    "SALES_ADMIN": SALES,
}
POLICY_CSV = Path(__file__).resolve().parents[1] / "policies" / "default_policy.csv"

# --- shared helpers ------------------------------------------------------------------------------


def gid(type_name: str, pk: int) -> str:
    """The Relay global ID of a row (base64url of ``Type:pk``, unpadded)."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def policy_scope(role: str, obj: str, act: str) -> str | None:
    """What the default policy file grants ``role`` for ``act`` on ``obj``: all, assigned, None."""
    granted: set[str] = set()
    with POLICY_CSV.open() as handle:
        for row in csv.reader(line for line in handle if not line.lstrip().startswith("#")):
            cells = [c.strip() for c in row]
            if cells[:5] == ["p", role, "*", obj, act] and cells[6:] == ["allow"]:
                granted.add(cells[5])
    return "all" if "all" in granted else ("assigned" if granted else None)


@dataclass
class World:
    """Acme (five admins, one per default role plus a second full admin) and Globex."""

    acme: int
    globex: int
    admins: dict[str, int]
    assigned: int  # an Acme customer assigned to partner@ and sales@
    unassigned: int  # an Acme customer nobody is assigned to
    foreign: int  # a Globex customer
    assigned_sub: int
    unassigned_sub: int
    foreign_sub: int
    factory: Factory


async def build_world(api: Api) -> World:
    """The world in one transaction (the Factory commits every row on its own: slower)."""
    async with session_factory(api.engine)() as session:

        async def add(table: Any, **values: Any) -> int:
            result = await session.execute(insert(table).values(**values))
            return int(result.inserted_primary_key[0])  # type: ignore[attr-defined]

        acme, globex = [
            await add(Partner, name=name, domain=domain, setup_state="NOT_STARTED", created_at=NOW)
            for name, domain in (
                ("Acme Partners", "acme.example"),
                ("Globex Reseller", "globex.example"),
            )
        ]
        admins = {}
        for email, role in {**ROLE_OF, OTHER: "FULL_ADMIN"}.items():
            partner = globex if email == OTHER else acme
            admins[email] = await add(
                Admin,
                partner_id=partner,
                email=email,
                name=email,
                role=role,
                active=True,
                created_at=NOW,
            )
            api.tokens[email] = await issue_token(session, admin_id=admins[email], now=NOW)
        customers, subs = [], []
        for n, (partner, name) in enumerate(
            [(acme, "Assigned Co"), (acme, "Unassigned Co"), (globex, "Globex Customer")]
        ):
            customers.append(
                await add(
                    Customer,
                    partner_id=partner,
                    external_id=f"WORLD-{n}",
                    name=name,
                    name_key=name.lower(),
                    created_at=NOW - timedelta(days=300),
                    managed_by="EXTERNAL_ADMIN",
                    last_admin_sign_in_at=NOW - timedelta(days=1),
                )
            )
            subs.append(
                await add(
                    Subscription,
                    partner_id=partner,
                    customer_id=customers[-1],
                    subscription_id=f"Sub9{n:05d}",
                    kind="PAID",
                    state="ACTIVE",
                    start_date=NOW - timedelta(days=100),
                    end_date=NOW + timedelta(days=265),
                    auto_renew=True,
                    renewal_date=NOW + timedelta(days=265),
                    created_at=NOW - timedelta(days=100),
                )
            )
            await add(
                LicenseLine,
                partner_id=partner,
                subscription_id=subs[-1],
                product="MEETINGS",
                license_type="Standard",
                purchased=10,
                assigned=5,
                used=3,
            )
        for email in (PARTNER, SALES):
            await add(
                CustomerAssignment,
                customer_id=customers[0],
                admin_id=admins[email],
                partner_id=acme,
                assigned_at=NOW,
            )
        await refresh_status_spans(session, customers, RULES)
        await session.commit()
    await warm_up(api)
    return World(
        acme=acme,
        globex=globex,
        admins=admins,
        assigned=customers[0],
        unassigned=customers[1],
        foreign=customers[2],
        assigned_sub=subs[0],
        unassigned_sub=subs[1],
        foreign_sub=subs[2],
        factory=Factory(api.engine),
    )


async def warm_up(api: Api) -> None:
    """Issue every admin's token and start the app, so snapshots only see the mutations."""
    for email in [*ROLE_OF, OTHER]:
        await token_for(api, email)
    data_of(await post_graphql(api, "query { viewer { id } }", as_=FULL))


_TABLES: dict[Any, list[Any]] = {}  # per engine: its tables that exist in the database


async def snapshot(api: Api) -> dict[str, list[str]]:
    """Every row of every table, to compare before and after a call that must write nothing."""
    async with api.engine.connect() as conn:
        if api.engine not in _TABLES:
            existing = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            _TABLES[api.engine] = [
                t
                for t in SQLModel.metadata.sorted_tables
                if t.name in existing and t.name not in NOT_DATA
            ]
        return {
            table.name: sorted(
                repr(tuple(r))
                for r in await conn.execute(select(table))
                if not refusal_trace(table.name, r._mapping)
            )
            for table in _TABLES[api.engine]
        }


async def count_rows(api: Api, table: Any, *conditions: Any) -> int:
    async with api.engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(*conditions)
        return int((await conn.execute(stmt)).scalar_one())


AUDIT = """
query Audit($first: Int!) {
  auditLog(first: $first) {
    totalCount
    nodes { operation objectType objectId adminId before after }
  }
}
"""


async def audit_count(api: Api, as_: str = FULL) -> int:
    """How many audit entries the partner of ``as_`` has (read from the table: it is quicker)."""
    # The entries of refused mutations (graph.mutations.audit_refusal) are not counted.
    partner = select(Admin.partner_id).where(Admin.email == as_).scalar_subquery()  # type: ignore[arg-type]
    return await count_rows(
        api,
        AuditLog,
        AuditLog.partner_id == partner,  # type: ignore[arg-type]
        AuditLog.object_type != REFUSAL,  # type: ignore[arg-type]
    )


async def audit_since(api: Api, count: int, as_: str = FULL) -> list[dict[str, Any]]:
    """The entries written after the log held ``count`` entries, oldest first."""
    log = data_of(await post_graphql(api, AUDIT, {"first": 30}, as_=as_))["auditLog"]
    changes = [node for node in log["nodes"] if node["objectType"] != REFUSAL]
    added = await audit_count(api, as_) - count
    assert 0 <= added <= 10, added
    return list(reversed(changes[:added]))


async def mutate(
    api: Api, document: str, input: dict[str, Any] | None, *, as_: str
) -> dict[str, Any]:
    """Run a one-field mutation and return its payload (it must not fail as a GraphQL error)."""
    body = await post_graphql(api, document, {} if input is None else {"input": input}, as_=as_)
    data = data_of(body)
    assert len(data) == 1, data
    payload: dict[str, Any] = next(iter(data.values()))
    return payload


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


def ok(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def assert_refused(
    api: Api, document: str, input: dict[str, Any] | None, code: str, *, as_: str = FULL
) -> dict[str, Any]:
    """The call answers with exactly one user error ``code`` and writes nothing at all."""
    return (await assert_each_refused(api, [(document, input, code)], as_=as_))[0]


async def assert_each_refused(
    api: Api, cases: list[tuple[str, dict[str, Any] | None, str]], *, as_: str = FULL
) -> list[dict[str, Any]]:
    """Each call answers with its one user error code, and none writes anything at all."""
    # given
    before = await snapshot(api)
    payloads = []
    for document, input, code in cases:
        # when
        payload = await mutate(api, document, input, as_=as_)
        # then
        assert codes(payload) == [code], (input, payload)
        assert payload["userErrors"][0]["message"]
        assert await snapshot(api) == before, f"{code} wrote something"
        payloads.append(payload)
    return payloads


async def assert_each_forbidden(
    api: Api, calls: list[tuple[str, dict[str, Any] | None]], *, as_: str
) -> None:
    """Each call gets a FORBIDDEN GraphQL error and no data, and none writes anything."""
    before = await snapshot(api)
    for document, input in calls:
        body = await post_graphql(api, document, {} if input is None else {"input": input}, as_=as_)
        assert_forbidden(body)
        assert body["data"] is None, body
        assert await snapshot(api) == before, "a refused call wrote something"


async def seed_tags(api: Api, partner_id: int, names: list[str]) -> list[int]:
    async with api.engine.begin() as conn:
        ids = []
        for name in names:
            result = await conn.execute(
                insert(Tag).values(
                    partner_id=partner_id, name=name, name_key=name.lower(), created_at=NOW
                )
            )
            ids.append(int(result.inserted_primary_key[0]))
        return ids


async def add_customers(api: Api, partner_id: int, names: list[str]) -> list[int]:
    """Many customers in one statement (the Factory writes one per transaction)."""
    rows = [
        {
            "partner_id": partner_id,
            "external_id": f"BULK-{name}",
            "name": name,
            "name_key": name.lower(),
            "created_at": NOW,
            "managed_by": "EXTERNAL_ADMIN",
        }
        for name in names
    ]
    async with api.engine.begin() as conn:
        await conn.execute(insert(Customer), rows)
        found = await conn.execute(
            select(Customer.id).where(Customer.external_id.in_([r["external_id"] for r in rows]))  # type: ignore[attr-defined]
        )
        return sorted(int(pk) for pk in found.scalars())


async def link_tags(api: Api, partner_id: int, tag_ids: list[int], *, customer: int) -> None:
    async with api.engine.begin() as conn:
        name_key = (
            await conn.execute(select(Customer.name_key).where(Customer.id == customer))  # type: ignore[arg-type]
        ).scalar_one()
        await conn.execute(
            insert(CustomerTag),
            [
                {
                    "customer_id": customer,
                    "tag_id": t,
                    "partner_id": partner_id,
                    "created_at": NOW,
                    "name_key": name_key,
                }
                for t in tag_ids
            ],
        )


# --- documents -----------------------------------------------------------------------------------

TAG_FIELDS = "tag { id name description } userErrors { field message code }"
CREATE_TAG = (
    f"mutation CreateTag($input: CreateTagInput!) {{ createTag(input: $input) {{ {TAG_FIELDS} }} }}"
)
UPDATE_TAG = (
    f"mutation UpdateTag($input: UpdateTagInput!) {{ updateTag(input: $input) {{ {TAG_FIELDS} }} }}"
)
DELETE_TAG = """
mutation DeleteTag($input: DeleteTagInput!) {
  deleteTag(input: $input) { deletedTagId userErrors { field message code } }
}
"""
CUSTOMER_TAG_FIELDS = "changed customers { id tags { name } } userErrors { field message code }"
ADD_TO_CUSTOMERS = f"""
mutation AddTagsToCustomers($input: CustomerTagsInput!) {{
  addTagsToCustomers(input: $input) {{ {CUSTOMER_TAG_FIELDS} }}
}}
"""
REMOVE_FROM_CUSTOMERS = f"""
mutation RemoveTagsFromCustomers($input: CustomerTagsInput!) {{
  removeTagsFromCustomers(input: $input) {{ {CUSTOMER_TAG_FIELDS} }}
}}
"""
SUB_TAG_FIELDS = "changed subscriptions { id tags { name } } userErrors { field message code }"
ADD_TO_SUBSCRIPTIONS = f"""
mutation AddTagsToSubscriptions($input: SubscriptionTagsInput!) {{
  addTagsToSubscriptions(input: $input) {{ {SUB_TAG_FIELDS} }}
}}
"""
REMOVE_FROM_SUBSCRIPTIONS = f"""
mutation RemoveTagsFromSubscriptions($input: SubscriptionTagsInput!) {{
  removeTagsFromSubscriptions(input: $input) {{ {SUB_TAG_FIELDS} }}
}}
"""
CUSTOMER_TAGS = """
query CustomerTags($id: ID!) {
  customer(id: $id) { id tags { id name } subscriptions { id tags { id name } } }
}
"""
TAGS = "query Tags { tags { id name description } }"


async def tag_names(api: Api, customer: int, as_: str = FULL) -> list[str]:
    data = data_of(
        await post_graphql(api, CUSTOMER_TAGS, {"id": gid("Customer", customer)}, as_=as_)
    )
    return [t["name"] for t in data["customer"]["tags"]]


async def sub_tag_names(api: Api, customer: int, sub: int) -> list[str]:
    data = data_of(
        await post_graphql(api, CUSTOMER_TAGS, {"id": gid("Customer", customer)}, as_=FULL)
    )
    (found,) = [s for s in data["customer"]["subscriptions"] if s["id"] == gid("Subscription", sub)]
    return [t["name"] for t in found["tags"]]


async def create_tag(api: Api, name: str, *, as_: str = FULL) -> str:
    payload = ok(await mutate(api, CREATE_TAG, {"name": name}, as_=as_))
    return str(payload["tag"]["id"])


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


# --- createTag -----------------------------------------------------------------------------------


async def test_create_tag(api: Api, world: World) -> None:
    # given
    count = await audit_count(api)
    name = "x" * 25
    # when
    payload = ok(
        await mutate(api, CREATE_TAG, {"name": f"  {name} ", "description": "Key"}, as_=FULL)
    )
    # then
    tag = payload["tag"]
    assert (tag["name"], tag["description"]) == (name, "Key")
    assert data_of(await post_graphql(api, TAGS, as_=READ_ONLY))["tags"] == [tag]
    (entry,) = await audit_since(api, count)
    assert entry["operation"] == "createTag"
    assert (entry["objectType"], entry["objectId"]) == ("tag", tag["id"])
    assert entry["adminId"] == gid("Admin", world.admins[FULL])
    assert entry["before"] is None
    assert entry["after"] == {"name": name, "description": "Key"}
    # given
    await create_tag(api, "Gold")
    cases = [
        ({"name": ""}, "TAG_NAME_REQUIRED"),
        ({"name": " \t  "}, "TAG_NAME_REQUIRED"),
        ({"name": "  " + "x" * 26 + " "}, "TAG_NAME_TOO_LONG"),
        # 25 characters whose case-insensitive form has 50 ("İ".lower() is two): no 500
        ({"name": "İ" * 25}, "TAG_NAME_TOO_LONG"),
        ({"name": "GOLD"}, "TAG_NAME_TAKEN"),
        ({"name": "  gold "}, "TAG_NAME_TAKEN"),
        ({"name": "Fine", "description": "d" * 501}, "DESCRIPTION_TOO_LONG"),
    ]
    # when / then
    await assert_each_refused(api, [(CREATE_TAG, input, code) for input, code in cases])
    # then: the limits are inclusive, and names are unique per partner only
    ok(await mutate(api, CREATE_TAG, {"name": "Fine", "description": "d" * 500}, as_=FULL))
    ok(await mutate(api, CREATE_TAG, {"name": "gold"}, as_=OTHER))


# --- updateTag -----------------------------------------------------------------------------------


async def test_update_tag(api: Api, world: World) -> None:
    # given
    tag_id = await create_tag(api, "Gold")
    count = await audit_count(api)
    # when
    payload = ok(
        await mutate(
            api, UPDATE_TAG, {"id": tag_id, "name": " Platinum ", "description": "Top"}, as_=FULL
        )
    )
    # then
    assert payload["tag"] == {"id": tag_id, "name": "Platinum", "description": "Top"}
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "updateTag",
        "tag",
        tag_id,
    )
    assert entry["before"] == {"name": "Gold", "description": None}
    assert entry["after"] == {"name": "Platinum", "description": "Top"}
    # when: a change of case of its own name is not taken by itself
    payload = ok(await mutate(api, UPDATE_TAG, {"id": tag_id, "name": "PLATINUM"}, as_=FULL))
    # then
    assert payload["tag"]["name"] == "PLATINUM"
    assert payload["tag"]["description"] == "Top"
    # given
    await create_tag(api, "Silver")
    foreign_tag = await create_tag(api, "Bronze", as_=OTHER)
    cases = [
        ({"id": tag_id, "name": "  "}, "TAG_NAME_REQUIRED"),
        ({"id": tag_id, "name": "y" * 26}, "TAG_NAME_TOO_LONG"),
        ({"id": tag_id, "name": " SILVER "}, "TAG_NAME_TAKEN"),
        ({"id": tag_id, "description": "d" * 501}, "DESCRIPTION_TOO_LONG"),
        ({"id": foreign_tag, "name": "Mine"}, "NOT_FOUND"),
        ({"id": gid("Tag", 999_999), "name": "Ghost"}, "NOT_FOUND"),
        ({"id": "not-an-id", "name": "Mine"}, "INVALID_ID"),
        ({"id": gid("Customer", world.assigned), "name": "Mine"}, "INVALID_ID"),
    ]
    # when / then
    await assert_each_refused(api, [(UPDATE_TAG, input, code) for input, code in cases])


# --- deleteTag -----------------------------------------------------------------------------------


async def test_delete_tag_detaches_it_everywhere(api: Api, world: World) -> None:
    # given: Gold on two customers and a subscription, Silver stays
    gold, silver = (await create_tag(api, "Gold"), await create_tag(api, "Silver"))
    customers = [gid("Customer", world.assigned), gid("Customer", world.unassigned)]
    ok(
        await mutate(
            api, ADD_TO_CUSTOMERS, {"customerIds": customers, "tagIds": [gold, silver]}, as_=FULL
        )
    )
    subs = {"subscriptionIds": [gid("Subscription", world.assigned_sub)], "tagIds": [gold]}
    ok(await mutate(api, ADD_TO_SUBSCRIPTIONS, subs, as_=FULL))
    count = await audit_count(api)
    # when
    payload = ok(await mutate(api, DELETE_TAG, {"id": gold}, as_=FULL))
    # then
    assert payload["deletedTagId"] == gold
    assert [t["name"] for t in data_of(await post_graphql(api, TAGS, as_=FULL))["tags"]] == [
        "Silver"
    ]
    assert await tag_names(api, world.assigned) == ["Silver"]
    assert await tag_names(api, world.unassigned) == ["Silver"]
    assert await sub_tag_names(api, world.assigned, world.assigned_sub) == []
    assert await count_rows(api, CustomerTag) == 2
    assert await count_rows(api, SubscriptionTag) == 0
    (entry,) = await audit_since(api, count)
    assert (entry["operation"], entry["objectType"], entry["objectId"]) == (
        "deleteTag",
        "tag",
        gold,
    )
    assert entry["before"] == {"name": "Gold", "description": None}
    # when / then: it is gone, and another partner's tag was never there
    await assert_refused(api, DELETE_TAG, {"id": gold}, "NOT_FOUND")
    await assert_refused(
        api, DELETE_TAG, {"id": await create_tag(api, "X", as_=OTHER)}, "NOT_FOUND"
    )
    await assert_refused(api, DELETE_TAG, {"id": "%%%"}, "INVALID_ID")


# --- tags on customers ---------------------------------------------------------------------------


async def test_add_and_remove_tags_on_customers(api: Api, world: World) -> None:
    # given
    gold, silver = (await create_tag(api, "Gold"), await create_tag(api, "Silver"))
    customers = [gid("Customer", world.assigned), gid("Customer", world.unassigned)]
    count = await audit_count(api)
    # when
    payload = ok(
        await mutate(
            api, ADD_TO_CUSTOMERS, {"customerIds": customers, "tagIds": [gold, silver]}, as_=FULL
        )
    )
    # then
    assert payload["changed"] == 4
    assert [c["id"] for c in payload["customers"]] == customers
    assert all([t["name"] for t in c["tags"]] == ["Gold", "Silver"] for c in payload["customers"])
    (entry,) = await audit_since(api, count)
    assert entry["operation"] == "addTagsToCustomers"
    assert entry["after"]["customerIds"] == customers
    assert entry["after"]["tagIds"] == [gold, silver]
    assert entry["after"]["changed"] == 4
    # when: attaching again changes nothing
    again = ok(
        await mutate(api, ADD_TO_CUSTOMERS, {"customerIds": customers, "tagIds": [gold]}, as_=FULL)
    )
    # then
    assert again["changed"] == 0
    assert await count_rows(api, CustomerTag) == 4
    async with api.engine.connect() as conn:
        links = await conn.execute(
            select(CustomerTag.name_key, Customer.name_key).join(  # type: ignore[call-overload]
                Customer, Customer.id == CustomerTag.customer_id
            )
        )
        pairs = links.all()
    # each link repeats its customer's name key (a tag's customers are walked in name order)
    assert len(pairs) == 4 and all(link == customer for link, customer in pairs)
    # when
    count = await audit_count(api)
    removed = ok(
        await mutate(
            api, REMOVE_FROM_CUSTOMERS, {"customerIds": customers, "tagIds": [gold]}, as_=FULL
        )
    )
    # then
    assert removed["changed"] == 2
    assert await tag_names(api, world.assigned) == ["Silver"]
    assert await tag_names(api, world.unassigned) == ["Silver"]
    (entry,) = await audit_since(api, count)
    assert entry["operation"] == "removeTagsFromCustomers"
    assert (entry["after"]["customerIds"], entry["after"]["changed"]) == (customers, 2)


async def test_too_many_tags_and_a_failing_bulk_call_leaves_every_row_as_it_was(
    api: Api, world: World
) -> None:
    # given: three customers with room, the fourth at the limit of 20 tags
    f = world.factory
    roomy = [world.assigned, world.unassigned, await f.customer(world.acme, "Third Co")]
    full = await f.customer(world.acme, "Full Co")
    twenty = await seed_tags(api, world.acme, [f"T{i:02d}" for i in range(20)])
    await link_tags(api, world.acme, twenty, customer=full)
    await link_tags(api, world.acme, twenty[:3], customer=roomy[0])
    new = await create_tag(api, "New")
    ids = [gid("Customer", pk) for pk in [*roomy, full]]
    # when / then
    payload = await assert_refused(
        api, ADD_TO_CUSTOMERS, {"customerIds": ids, "tagIds": [new]}, "TOO_MANY_TAGS"
    )
    assert payload["userErrors"][0]["field"] == ["customerIds", "3"]
    again = {"customerIds": [ids[0], *ids], "tagIds": [new]}  # the error points past the duplicate
    payload = await assert_refused(api, ADD_TO_CUSTOMERS, again, "TOO_MANY_TAGS")
    assert payload["userErrors"][0]["field"] == ["customerIds", "4"]
    assert payload["customers"] == [] and payload["changed"] == 0
    assert await tag_names(api, roomy[1]) == []
    # when: a tag the customer already carries does not count twice
    same = ok(
        await mutate(
            api, ADD_TO_CUSTOMERS, {"customerIds": ids, "tagIds": [gid("Tag", twenty[0])]}, as_=FULL
        )
    )
    # then: only the two customers that did not carry it yet changed
    assert same["changed"] == 2
    assert len(await tag_names(api, full)) == 20
    # when / then: the limit is the setting; with 3, the first customer (3 tags) is full
    one_more = {"customerIds": ids[:1], "tagIds": [new]}
    async with api_over(api.db, max_tags_per_customer=3) as small:
        await warm_up(small)
        await assert_refused(small, ADD_TO_CUSTOMERS, one_more, "TOO_MANY_TAGS")
    assert ok(await mutate(api, ADD_TO_CUSTOMERS, one_more, as_=FULL))["changed"] == 1


async def test_bulk_tagging_refuses_each_broken_rule_and_writes_nothing(
    api: Api, world: World
) -> None:
    # given
    gold = await create_tag(api, "Gold")
    foreign_tag = await create_tag(api, "Theirs", as_=OTHER)
    many = [world.assigned, world.unassigned]
    many += await add_customers(api, world.acme, [f"Bulk {i:03d}" for i in range(99)])
    hundred_one = [gid("Customer", pk) for pk in many]
    mine = [gid("Customer", world.assigned), gid("Customer", world.unassigned)]
    cases = [
        ({"customerIds": hundred_one, "tagIds": [gold]}, "TOO_MANY_OBJECTS"),
        (
            {"customerIds": mine, "tagIds": [gid("Tag", n) for n in range(1, 102)]},
            "TOO_MANY_OBJECTS",
        ),
        ({"customerIds": [], "tagIds": [gold]}, "NOTHING_TO_TAG"),
        ({"customerIds": mine, "tagIds": []}, "TAGS_REQUIRED"),
        ({"customerIds": [*mine, gid("Customer", world.foreign)], "tagIds": [gold]}, "NOT_FOUND"),
        ({"customerIds": [*mine, gid("Customer", 999_999)], "tagIds": [gold]}, "NOT_FOUND"),
        ({"customerIds": mine, "tagIds": [gold, foreign_tag]}, "NOT_FOUND"),
        ({"customerIds": [*mine, "garbage"], "tagIds": [gold]}, "INVALID_ID"),
        ({"customerIds": [*mine, gold], "tagIds": [gold]}, "INVALID_ID"),
        ({"customerIds": mine, "tagIds": [mine[0]]}, "INVALID_ID"),
    ]
    # when / then
    await assert_each_refused(
        api,
        [
            (d, input, code)
            for d in (ADD_TO_CUSTOMERS, REMOVE_FROM_CUSTOMERS)
            for input, code in cases
        ],
    )
    # then: an error points at the element of the caller's list, duplicates included
    twice = [mine[0], mine[0], gid("Customer", world.foreign)]
    payload = await assert_refused(
        api, ADD_TO_CUSTOMERS, {"customerIds": twice, "tagIds": [gold]}, "NOT_FOUND"
    )
    assert payload["userErrors"][0]["field"] == ["customerIds", "2"]
    input = {"customerIds": mine, "tagIds": [gold, gold, foreign_tag]}
    payload = await assert_refused(api, REMOVE_FROM_CUSTOMERS, input, "NOT_FOUND")
    assert payload["userErrors"][0]["field"] == ["tagIds", "2"]
    # then: 100 customers is the most one call takes
    payload = ok(
        await mutate(
            api, ADD_TO_CUSTOMERS, {"customerIds": hundred_one[:100], "tagIds": [gold]}, as_=FULL
        )
    )
    assert payload["changed"] == 100


# --- tags on subscriptions -----------------------------------------------------------------------


async def test_add_and_remove_tags_on_subscriptions(api: Api, world: World) -> None:
    # given
    gold, silver = (await create_tag(api, "Gold"), await create_tag(api, "Silver"))
    subs = [gid("Subscription", world.assigned_sub), gid("Subscription", world.unassigned_sub)]
    count = await audit_count(api)
    # when
    payload = ok(
        await mutate(
            api, ADD_TO_SUBSCRIPTIONS, {"subscriptionIds": subs, "tagIds": [gold, silver]}, as_=FULL
        )
    )
    # then
    assert payload["changed"] == 4
    assert [s["id"] for s in payload["subscriptions"]] == subs
    assert await sub_tag_names(api, world.assigned, world.assigned_sub) == ["Gold", "Silver"]
    assert await tag_names(api, world.assigned) == []  # the customer itself is not tagged
    (entry,) = await audit_since(api, count)
    assert entry["operation"] == "addTagsToSubscriptions"
    assert (entry["after"]["subscriptionIds"], entry["after"]["changed"]) == (subs, 4)
    # when
    count = await audit_count(api)
    removed = ok(
        await mutate(
            api, REMOVE_FROM_SUBSCRIPTIONS, {"subscriptionIds": subs, "tagIds": [silver]}, as_=FULL
        )
    )
    # then
    assert removed["changed"] == 2
    assert await sub_tag_names(api, world.unassigned, world.unassigned_sub) == ["Gold"]
    (entry,) = await audit_since(api, count)
    assert entry["operation"] == "removeTagsFromSubscriptions"
    # when / then: another partner's subscription, a wrong kind of ID
    for document in (ADD_TO_SUBSCRIPTIONS, REMOVE_FROM_SUBSCRIPTIONS):
        foreign = {
            "subscriptionIds": [*subs, gid("Subscription", world.foreign_sub)],
            "tagIds": [gold],
        }
        await assert_refused(api, document, foreign, "NOT_FOUND")
        wrong = {"subscriptionIds": [gid("Customer", world.assigned)], "tagIds": [gold]}
        await assert_refused(api, document, wrong, "INVALID_ID")


# --- who may do what -----------------------------------------------------------------------------


async def test_tag_mutations_by_role_follow_the_default_policy(api: Api, world: World) -> None:
    """tag/write: FULL_ADMIN all customers, PARTNER_ADMIN its customers, the others nothing."""
    gold = await create_tag(api, "Gold")
    mine = {"customerIds": [gid("Customer", world.assigned)], "tagIds": [gold]}
    theirs = {"customerIds": [gid("Customer", world.unassigned)], "tagIds": [gold]}
    my_sub = {"subscriptionIds": [gid("Subscription", world.assigned_sub)], "tagIds": [gold]}
    their_sub = {"subscriptionIds": [gid("Subscription", world.unassigned_sub)], "tagIds": [gold]}
    for role, email in ROLE_EMAILS.items():
        scope = policy_scope(role, "tag", "write")
        # every admin sees the partner's tags (tag/read: all)
        assert policy_scope(role, "tag", "read") == "all"
        assert gold in [t["id"] for t in data_of(await post_graphql(api, TAGS, as_=email))["tags"]]
        calls = [
            ("createTag", CREATE_TAG, {"name": f"By {role}"}),
            ("updateTag", UPDATE_TAG, {"id": gold, "description": role}),
            ("addTagsToCustomers", ADD_TO_CUSTOMERS, mine),
            ("removeTagsFromCustomers", REMOVE_FROM_CUSTOMERS, mine),
            ("addTagsToSubscriptions", ADD_TO_SUBSCRIPTIONS, my_sub),
            ("removeTagsFromSubscriptions", REMOVE_FROM_SUBSCRIPTIONS, my_sub),
        ]
        if scope is None:
            # then: FORBIDDEN, nothing written
            refused = [(d, i) for _, d, i in calls] + [(DELETE_TAG, {"id": gold})]
            await assert_each_forbidden(api, refused, as_=email)
            continue
        # then: allowed on its customers, one audit entry each
        count = await audit_count(api)
        for _, document, input in calls:
            ok(await mutate(api, document, input, as_=email))
        entries = await audit_since(api, count)
        assert [e["operation"] for e in entries] == [operation for operation, _, _ in calls]
        assert {e["adminId"] for e in entries} == {gid("Admin", world.admins[email])}
        for document, input in [
            (ADD_TO_CUSTOMERS, theirs),
            (REMOVE_FROM_CUSTOMERS, theirs),
            (ADD_TO_SUBSCRIPTIONS, their_sub),
            (REMOVE_FROM_SUBSCRIPTIONS, their_sub),
        ]:
            if scope == "all":
                ok(await mutate(api, document, input, as_=email))
            else:  # a customer it is not assigned to does not exist for it
                await assert_refused(api, document, input, "NOT_FOUND", as_=email)
        doomed = await create_tag(api, f"Doomed {role}", as_=email)
        ok(await mutate(api, DELETE_TAG, {"id": doomed}, as_=email))
    # then the policy is what the roles table of DESIGN.md says
    assert [policy_scope(r, "tag", "write") for r in ROLE_EMAILS] == ["all", "assigned", None, None]


async def test_tags_answers_the_first_500_by_name_and_reads_no_more(api: Api) -> None:
    """``tags`` is the partner's first 500 by name: the statement reads 500 rows, not every tag
    (it read them all and sliced in Python)."""
    # given: 503 tags (written directly: createTag stops no partner at 500)
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    other = await f.partner("Globex", "globex.example")
    names = [f"Tag {n:04d}" for n in range(503)]
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(Tag),
            [
                {"partner_id": p, "name": name, "name_key": name.lower(), "created_at": NOW}
                for p in (partner, other)
                for name in reversed(names)
            ],
        )
    # when
    with api.counter.counting() as statements:
        tags = data_of(await post_graphql(api, "{ tags { name } }", as_=FULL))["tags"]
    # then
    assert [tag["name"] for tag in tags] == names[:500]
    [read] = [sql for sql in statements if "FROM tag" in sql]
    assert "LIMIT" in read
