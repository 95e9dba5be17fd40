"""The customer directory and a customer's detail tabs, through HTTP (issue 3).

A small, hand-built directory whose every attribute is spelled out in ``DIRECTORY`` below; the
expected answers are computed from that description (filters: any value of a list, all fields
together), never from the code under test.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import (
    Customer,
    CustomerTag,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    SubscriptionTag,
    Tag,
)
from db.queries import customer_walks
from db.status import refresh_status_spans
from tests.conftest import NOW, Api
from tests.helpers import RULES, Factory, data_of, error_codes, name_key_of, post_graphql

DAY = timedelta(days=1)
FULL = "full@acme.example"
OTHER = "full@globex.example"

# --- small builders the shared Factory does not have ---------------------------------------------


async def add_tag(api: Api, partner_id: int, name: str) -> int:
    async with api.engine.begin() as conn:
        result = await conn.execute(
            insert(Tag).values(
                partner_id=partner_id, name=name, name_key=name.lower(), created_at=NOW
            )
        )
        return int(result.inserted_primary_key[0])


async def tag_customer(api: Api, partner_id: int, customer_id: int, tag_id: int) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(CustomerTag).values(
                customer_id=customer_id,
                tag_id=tag_id,
                partner_id=partner_id,
                created_at=NOW,
                name_key=name_key_of(customer_id),
            )
        )


async def tag_subscription(api: Api, partner_id: int, subscription_id: int, tag_id: int) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(SubscriptionTag).values(
                subscription_id=subscription_id,
                tag_id=tag_id,
                partner_id=partner_id,
                created_at=NOW,
            )
        )


async def add_invoice(
    api: Api, partner_id: int, subscription_id: int, number: str, issued_at: datetime
) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(Invoice).values(
                partner_id=partner_id,
                subscription_id=subscription_id,
                invoice_number=number,
                issued_at=issued_at,
                due_at=issued_at + 30 * DAY,
                amount_cents=12_345,
                currency="EUR",
                status="PAID",
            )
        )


async def add_order(
    api: Api, partner_id: int, subscription_id: int, number: str, placed_at: datetime
) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(Order).values(
                partner_id=partner_id,
                subscription_id=subscription_id,
                order_number=number,
                placed_at=placed_at,
                action="NEW",
                description=f"Order {number}",
                status="COMPLETED",
            )
        )


def global_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


# --- the directory -------------------------------------------------------------------------------


@dataclass
class Planned:
    name: str
    managed_by: str = "EXTERNAL_ADMIN"
    created_days_ago: int = 100
    last_sign_in: datetime | None = NOW - DAY
    # (kind, state, start offset days, end offset days, auto_renew, products)
    subs: list[tuple[str, str, int, int, bool, tuple[str, ...]]] = field(default_factory=list)
    tags: tuple[str, ...] = ()
    # What DESIGN.md says of this customer, worked out by hand:
    products: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    nearest_end_days: int | None = None  # soonest end of an in-force subscription

    @property
    def trial_in_force(self) -> bool:
        return "TRIAL" in self.statuses

    @property
    def paid_in_force(self) -> bool:
        return "ACTIVE" in self.statuses


def fs(*values: str) -> frozenset[str]:
    return frozenset(values)


DIRECTORY = [
    Planned(
        "Alpha Bank",
        created_days_ago=300,
        subs=[("PAID", "ACTIVE", -100, 100, True, ("MEETINGS", "CALLING"))],
        tags=("gold",),
        products=fs("MEETINGS", "CALLING"),
        statuses=fs("ACTIVE"),
        nearest_end_days=100,
    ),
    Planned(
        "beta Labs",
        managed_by="PARTNER_ORG",
        created_days_ago=200,
        subs=[("TRIAL", "ACTIVE", -10, 20, False, ("MEETINGS",))],
        tags=("gold", "east"),
        products=fs("MEETINGS"),
        statuses=fs("TRIAL"),
        nearest_end_days=20,
    ),
    Planned(
        "Gamma_Corp",
        created_days_ago=200,  # same instant as beta Labs: the id breaks the tie
        subs=[
            ("PAID", "ACTIVE", -30, 50, True, ("CALLING",)),
            ("TRIAL", "ACTIVE", -5, 10, False, ("MESSAGING",)),
        ],
        tags=("east",),
        products=fs("CALLING", "MESSAGING"),
        statuses=fs("ACTIVE", "TRIAL"),
        nearest_end_days=10,
    ),
    Planned(
        "Delta 100% Foods",
        created_days_ago=150,
        subs=[("PAID", "SUSPENDED", -30, 300, True, ("CONTACT_CENTER",))],
        products=fs("CONTACT_CENTER"),
        statuses=fs("SUSPENDED"),
    ),
    Planned(
        "epsilon",
        managed_by="PARTNER_ORG",
        created_days_ago=100,
        subs=[("PAID", "EXPIRED", -400, -35, False, ("MEETINGS",))],
        tags=("west",),
        statuses=fs("EXPIRED"),
    ),
    Planned("Zeta", created_days_ago=50, last_sign_in=None, statuses=fs("NO_RECENT_ACTIVITY")),
    Planned(
        "ALPHA annex",
        created_days_ago=10,
        subs=[("PAID", "ACTIVE", -300, 5, False, ("REAL_TIME_TRANSLATION",))],
        products=fs("REAL_TIME_TRANSLATION"),
        statuses=fs("ACTIVE", "EXPIRING_SOON"),
        nearest_end_days=5,
    ),
    Planned(
        "Omega_Partners",
        managed_by="PARTNER_ORG",
        created_days_ago=5,
        subs=[("PAID", "PROVISIONING", 1, 366, True, ("CALLING",))],
        tags=("west",),
        products=fs("CALLING"),
        statuses=fs("READY_FOR_ORDER_SETUP"),
    ),
    Planned(
        "Pizza Co",
        created_days_ago=3,
        subs=[("PAID", "ACTIVE", -1, 100, True, ("MEETINGS",))],  # ends with Alpha Bank
        products=fs("MEETINGS"),
        statuses=fs("ACTIVE"),
        nearest_end_days=100,
    ),
    Planned(
        "Ärzte Ölwerk",
        created_days_ago=1,
        subs=[("PAID", "ACTIVE", -1, 60, True, ("MEETINGS",))],
        tags=("gold",),
        products=fs("MEETINGS"),
        statuses=fs("ACTIVE"),
        nearest_end_days=60,
    ),
]

# Another partner whose data must never show: names that match the searches, a tag named alike.
FOREIGN = [
    Planned(
        "Alpha Other",
        subs=[("PAID", "ACTIVE", -10, 30, True, ("MEETINGS",))],
        tags=("gold",),
    ),
    Planned("Gamma_ 100% Foreign", subs=[("TRIAL", "ACTIVE", -1, 3, False, ("CALLING",))]),
]


@dataclass
class Built:
    partner_id: int
    other_partner_id: int
    ids: dict[str, int]  # customer name -> pk (creation order = id order)
    tag_ids: dict[str, str]  # tag name -> global id (our partner)
    foreign_tag_ids: dict[str, str]
    factory: Factory


async def insert_customer(
    conn: AsyncConnection,
    partner_id: int,
    name: str,
    *,
    external_id: str,
    managed_by: str = "EXTERNAL_ADMIN",
    created_at: datetime = NOW - 100 * DAY,
    last_sign_in: datetime | None = NOW - DAY,
    subs: Sequence[dict[str, Any]] = (),
) -> tuple[int, list[int]]:
    """One customer and its subscriptions, inside the caller's transaction (statuses are left to
    ``refresh``). Each sub: kind, state, start, end, auto_renew, lines of
    (product, purchased, assigned, used)."""
    result = await conn.execute(
        insert(Customer).values(
            partner_id=partner_id,
            external_id=external_id,
            name=name,
            name_key=name.lower(),
            created_at=created_at,
            managed_by=managed_by,
            last_admin_sign_in_at=last_sign_in,
        )
    )
    customer_id = int(result.inserted_primary_key[0])
    sub_ids = []
    for k, sub in enumerate(subs):
        result = await conn.execute(
            insert(Subscription).values(
                partner_id=partner_id,
                customer_id=customer_id,
                subscription_id=f"{'Trial' if sub['kind'] == 'TRIAL' else 'Sub'}-{external_id}-{k}",
                kind=sub["kind"],
                state=sub["state"],
                start_date=sub["start"],
                end_date=sub["end"],
                auto_renew=sub["auto_renew"],
                renewal_date=sub["end"] if sub["auto_renew"] else None,
                created_at=sub["start"],
            )
        )
        sub_id = int(result.inserted_primary_key[0])
        sub_ids.append(sub_id)
        if sub["lines"]:
            await conn.execute(
                insert(LicenseLine),
                [
                    {
                        "partner_id": partner_id,
                        "subscription_id": sub_id,
                        "product": product,
                        "license_type": "Standard",
                        "purchased": purchased,
                        "assigned": assigned,
                        "used": used,
                    }
                    for product, purchased, assigned, used in sub["lines"]
                ],
            )
    return customer_id, sub_ids


async def refresh(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Recompute the stored statuses and products of ``ids`` (as every write path does)."""
    await refresh_status_spans(conn, list(ids), RULES)


async def build_partner(
    api: Api, partner_id: int, plan: Sequence[Planned], prefix: str
) -> tuple[dict[str, int], dict[str, str]]:
    tags: dict[str, int] = {}
    ids: dict[str, int] = {}
    async with api.engine.begin() as conn:
        for n, p in enumerate(plan):
            subs = [
                {
                    "kind": kind,
                    "state": state,
                    "start": NOW + start * DAY,
                    "end": NOW + end * DAY,
                    "auto_renew": auto_renew,
                    "lines": [(product, 10, 5, 2) for product in products],
                }
                for kind, state, start, end, auto_renew, products in p.subs
            ]
            customer, _ = await insert_customer(
                conn,
                partner_id,
                p.name,
                external_id=f"{prefix}-{n:03d}",
                managed_by=p.managed_by,
                created_at=NOW - p.created_days_ago * DAY,
                last_sign_in=p.last_sign_in,
                subs=subs,
            )
            ids[p.name] = customer
            for tag in p.tags:
                if tag not in tags:
                    result = await conn.execute(
                        insert(Tag).values(
                            partner_id=partner_id, name=tag, name_key=tag.lower(), created_at=NOW
                        )
                    )
                    tags[tag] = int(result.inserted_primary_key[0])
                await conn.execute(
                    insert(CustomerTag).values(
                        customer_id=customer,
                        tag_id=tags[tag],
                        partner_id=partner_id,
                        created_at=NOW,
                        name_key=name_key_of(customer),
                    )
                )
        await refresh(conn, list(ids.values()))
    return ids, {name: global_id("Tag", pk) for name, pk in tags.items()}


async def build_directory(api: Api) -> Built:
    f = Factory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, FULL, "FULL_ADMIN")
    await f.admin(globex, OTHER, "FULL_ADMIN")
    ids, tag_ids = await build_partner(api, acme, DIRECTORY, "DIR")
    _, foreign_tag_ids = await build_partner(api, globex, FOREIGN, "FOR")
    assert list(ids.values()) == sorted(ids.values())
    return Built(acme, globex, ids, tag_ids, foreign_tag_ids, f)


async def just_an_admin(api: Api) -> None:
    """A partner with its full admin and nothing else (for tests of bad input)."""
    f = Factory(api.engine)
    await f.admin(await f.partner(), FULL, "FULL_ADMIN")


LIST_QUERY = """
query List(
  $first: Int! = 50, $after: String, $filter: CustomerFilter, $search: String,
  $orderBy: CustomerOrder! = NAME_ASC
) {
  customers(first: $first, after: $after, filter: $filter, search: $search, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name } }
    nodes { id name }
  }
}
"""


async def list_customers(api: Api, as_: str = FULL, **variables: Any) -> dict[str, Any]:
    body = await post_graphql(api, LIST_QUERY, variables, as_=as_)
    connection: dict[str, Any] = data_of(body)["customers"]
    return connection


def names(connection: dict[str, Any]) -> list[str]:
    return [n["name"] for n in connection["nodes"]]


# --- expected answers, from the description ------------------------------------------------------


def matches(p: Planned, flt: dict[str, Any], search: str | None, tag_names: dict[str, str]) -> bool:
    """OR inside a list, AND across fields; an empty list matches nothing."""
    if "managedBy" in flt and flt["managedBy"] is not None and p.managed_by != flt["managedBy"]:
        return False
    if flt.get("products") is not None and not p.products & set(flt["products"]):
        return False
    if flt.get("statuses") is not None and not p.statuses & set(flt["statuses"]):
        return False
    kind = flt.get("subscriptionType")
    if kind == "TRIAL" and not p.trial_in_force:
        return False
    if kind == "PAID" and not p.paid_in_force:
        return False
    if flt.get("tagIds") is not None and not set(p.tags) & {tag_names[t] for t in flt["tagIds"]}:
        return False
    return not search or search.lower() in p.name.lower()


def ordered(plan: Sequence[Planned], ids: dict[str, int], order: str) -> list[str]:
    far = 10**9
    keys = {
        "NAME_ASC": lambda p: (p.name.lower(), ids[p.name]),
        "NAME_DESC": lambda p: (p.name.lower(), ids[p.name]),
        "CREATED_AT_ASC": lambda p: (-p.created_days_ago, ids[p.name]),
        "CREATED_AT_DESC": lambda p: (-p.created_days_ago, ids[p.name]),
        "END_DATE_ASC": lambda p: (
            far if p.nearest_end_days is None else p.nearest_end_days,
            ids[p.name],
        ),
    }
    result = [p.name for p in sorted(plan, key=keys[order])]
    return result[::-1] if order.endswith("_DESC") else result


def expected(
    built: Built, flt: dict[str, Any], search: str | None = None, order: str = "NAME_ASC"
) -> list[str]:
    tag_names = {gid: name for name, gid in built.tag_ids.items()}
    tag_names.update({gid: "foreign:" + name for name, gid in built.foreign_tag_ids.items()})
    plan = [p for p in DIRECTORY if matches(p, flt, search, tag_names)]
    return ordered(plan, built.ids, order)


# --- filters -------------------------------------------------------------------------------------

# Up to eight lists in one request (each alias included only when asked for): the same resolver
# and SQL as eight requests, at a fraction of the test's running time.
MANY_QUERY = """
fragment Names on CustomerConnection { totalCount nodes { name } }
query Many(
  $f0: CustomerFilter, $s0: String, $o0: CustomerOrder! = NAME_ASC, $i0: Boolean! = false,
  $f1: CustomerFilter, $s1: String, $o1: CustomerOrder! = NAME_ASC, $i1: Boolean! = false,
  $f2: CustomerFilter, $s2: String, $o2: CustomerOrder! = NAME_ASC, $i2: Boolean! = false,
  $f3: CustomerFilter, $s3: String, $o3: CustomerOrder! = NAME_ASC, $i3: Boolean! = false,
  $f4: CustomerFilter, $s4: String, $o4: CustomerOrder! = NAME_ASC, $i4: Boolean! = false,
  $f5: CustomerFilter, $s5: String, $o5: CustomerOrder! = NAME_ASC, $i5: Boolean! = false,
  $f6: CustomerFilter, $s6: String, $o6: CustomerOrder! = NAME_ASC, $i6: Boolean! = false,
  $f7: CustomerFilter, $s7: String, $o7: CustomerOrder! = NAME_ASC, $i7: Boolean! = false
) {
  r0: customers(first: 100, filter: $f0, search: $s0, orderBy: $o0) @include(if: $i0) { ...Names }
  r1: customers(first: 100, filter: $f1, search: $s1, orderBy: $o1) @include(if: $i1) { ...Names }
  r2: customers(first: 100, filter: $f2, search: $s2, orderBy: $o2) @include(if: $i2) { ...Names }
  r3: customers(first: 100, filter: $f3, search: $s3, orderBy: $o3) @include(if: $i3) { ...Names }
  r4: customers(first: 100, filter: $f4, search: $s4, orderBy: $o4) @include(if: $i4) { ...Names }
  r5: customers(first: 100, filter: $f5, search: $s5, orderBy: $o5) @include(if: $i5) { ...Names }
  r6: customers(first: 100, filter: $f6, search: $s6, orderBy: $o6) @include(if: $i6) { ...Names }
  r7: customers(first: 100, filter: $f7, search: $s7, orderBy: $o7) @include(if: $i7) { ...Names }
}
"""


async def many(api: Api, lists: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The connections for each of ``lists`` (``filter``/``search``/``orderBy`` arguments)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(lists), 8):
        chunk = lists[start : start + 8]
        variables: dict[str, Any] = {}
        for i, arguments in enumerate(chunk):
            variables[f"i{i}"] = True
            variables[f"f{i}"] = arguments.get("filter")
            variables[f"s{i}"] = arguments.get("search")
            variables[f"o{i}"] = arguments.get("orderBy", "NAME_ASC")
        data = data_of(await post_graphql(api, MANY_QUERY, variables, as_=FULL))
        results += [data[f"r{i}"] for i in range(len(chunk))]
    return results


async def test_filters_by_each_field(api: Api) -> None:
    # given
    built = await build_directory(api)
    gold, east, west = (built.tag_ids[t] for t in ("gold", "east", "west"))
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, sorted((p.name for p in DIRECTORY), key=str.lower)),
        ({"managedBy": "PARTNER_ORG"}, ["beta Labs", "epsilon", "Omega_Partners"]),
        ({"managedBy": "EXTERNAL_ADMIN"}, ["ALPHA annex", "Alpha Bank", "Delta 100% Foods",
                                           "Gamma_Corp", "Pizza Co", "Zeta", "Ärzte Ölwerk"]),
        ({"products": ["CALLING"]}, ["Alpha Bank", "Gamma_Corp", "Omega_Partners"]),
        ({"products": ["CONTACT_CENTER", "REAL_TIME_TRANSLATION"]},
         ["ALPHA annex", "Delta 100% Foods"]),
        ({"statuses": ["SUSPENDED", "EXPIRED"]}, ["Delta 100% Foods", "epsilon"]),
        ({"statuses": ["EXPIRING_SOON"]}, ["ALPHA annex"]),
        ({"subscriptionType": "TRIAL"}, ["beta Labs", "Gamma_Corp"]),
        ({"subscriptionType": "PAID"},
         ["ALPHA annex", "Alpha Bank", "Gamma_Corp", "Pizza Co", "Ärzte Ölwerk"]),
        ({"tagIds": [gold]}, ["Alpha Bank", "beta Labs", "Ärzte Ölwerk"]),
        ({"tagIds": [east, west]}, ["beta Labs", "epsilon", "Gamma_Corp", "Omega_Partners"]),
        ({"tagIds": [gold], "products": ["CALLING"]}, ["Alpha Bank"]),
        ({"managedBy": "EXTERNAL_ADMIN", "subscriptionType": "TRIAL"}, ["Gamma_Corp"]),
        ({"products": ["MEETINGS"], "statuses": ["TRIAL"], "tagIds": [east]}, ["beta Labs"]),
        ({"products": []}, []),
        ({"statuses": []}, []),
        ({"tagIds": []}, []),
        ({"statuses": [], "products": ["MEETINGS"]}, []),
    ]  # fmt: skip
    for flt, want in cases:
        assert expected(built, flt) == want, flt  # the hand-written answer and the model agree
    # when
    connections = await many(api, [{"filter": flt} for flt, _ in cases])
    # then
    for (flt, want), connection in zip(cases, connections, strict=True):
        assert names(connection) == want, flt
        assert connection["totalCount"] == len(want), flt


async def test_random_filter_combinations_and_together(api: Api) -> None:
    # given
    built = await build_directory(api)
    rng = random.Random(3)
    tags = list(built.tag_ids.values())
    choices: dict[str, list[Any]] = {
        "managedBy": [None, "EXTERNAL_ADMIN", "PARTNER_ORG"],
        "products": [None, ["MEETINGS"], ["CALLING", "CONTACT_CENTER"], ["MESSAGING"], []],
        "statuses": [None, ["ACTIVE"], ["TRIAL", "SUSPENDED"], ["NO_RECENT_ACTIVITY"], []],
        "subscriptionType": [None, "TRIAL", "PAID"],
        "tagIds": [None, [tags[0]], tags[1:], [built.foreign_tag_ids["gold"]], []],
    }
    lists = [
        {
            "filter": {
                k: v for k, values in choices.items() if (v := rng.choice(values)) is not None
            },
            "search": rng.choice([None, "a", "ALPHA", "_", "o"]),
            "orderBy": rng.choice(ORDERS),
        }
        for _ in range(40)
    ]
    # when
    connections = await many(api, lists)
    # then
    for arguments, connection in zip(lists, connections, strict=True):
        want = expected(built, arguments["filter"], arguments["search"], arguments["orderBy"])
        assert names(connection) == want, arguments
        assert connection["totalCount"] == len(want), arguments


async def test_search_is_a_case_insensitive_substring_with_literal_wildcards(api: Api) -> None:
    # given
    built = await build_directory(api)
    cases = {
        "ALPHA": ["ALPHA annex", "Alpha Bank"],
        "alpha b": ["Alpha Bank"],
        "lAbS": ["beta Labs"],
        "%": ["Delta 100% Foods"],
        "100%": ["Delta 100% Foods"],
        "0% f": ["Delta 100% Foods"],
        "_": ["Gamma_Corp", "Omega_Partners"],
        "a_c": ["Gamma_Corp"],  # as a LIKE wildcard it would also match "Pizza Co"
        "a c": ["Pizza Co"],
        "ärzte ö": ["Ärzte Ölwerk"],
        "ÄRZTE": ["Ärzte Ölwerk"],
        "\\": [],
        "'; --": [],
        "[a]": [],
        "nothing like it": [],
    }
    for search, want in cases.items():
        assert expected(built, {}, search) == want, search
    # when
    connections = await many(api, [{"search": search} for search in cases])
    # then
    for (search, want), connection in zip(cases.items(), connections, strict=True):
        assert names(connection) == want, search
        assert connection["totalCount"] == len(want), search


async def test_search_and_filter_combine(api: Api) -> None:
    # given
    built = await build_directory(api)
    # when
    connection = await list_customers(
        api, search="a", filter={"statuses": ["ACTIVE", "TRIAL"]}, orderBy="NAME_DESC"
    )
    # then
    want = ["Pizza Co", "Gamma_Corp", "beta Labs", "Alpha Bank", "ALPHA annex"]  # no "a" in Ärzte
    assert expected(built, {"statuses": ["ACTIVE", "TRIAL"]}, "a", "NAME_DESC") == want
    assert names(connection) == want
    assert connection["totalCount"] == 5


# --- ordering and keyset paging ------------------------------------------------------------------

ORDERS = ["NAME_ASC", "NAME_DESC", "CREATED_AT_ASC", "CREATED_AT_DESC", "END_DATE_ASC"]


async def test_each_order(api: Api) -> None:
    # given
    built = await build_directory(api)
    hand_written = {
        "NAME_ASC": [
            "ALPHA annex", "Alpha Bank", "beta Labs", "Delta 100% Foods", "epsilon",
            "Gamma_Corp", "Omega_Partners", "Pizza Co", "Zeta", "Ärzte Ölwerk",
        ],
        "CREATED_AT_ASC": [
            "Alpha Bank", "beta Labs", "Gamma_Corp", "Delta 100% Foods", "epsilon",
            "Zeta", "ALPHA annex", "Omega_Partners", "Pizza Co", "Ärzte Ölwerk",
        ],
        "END_DATE_ASC": [
            "ALPHA annex", "Gamma_Corp", "beta Labs", "Ärzte Ölwerk", "Alpha Bank", "Pizza Co",
            "Delta 100% Foods", "epsilon", "Zeta", "Omega_Partners",
        ],
    }  # fmt: skip
    # (beta Labs and Gamma_Corp were created at the same instant, Alpha Bank and Pizza Co end
    # at the same instant: the earlier id goes first, and last when descending)
    hand_written["NAME_DESC"] = hand_written["NAME_ASC"][::-1]
    hand_written["CREATED_AT_DESC"] = hand_written["CREATED_AT_ASC"][::-1]
    for order in ORDERS:
        assert ordered(DIRECTORY, built.ids, order) == hand_written[order]
    # when
    connections = await many(api, [{"orderBy": order} for order in ORDERS])
    # then
    for order, connection in zip(ORDERS, connections, strict=True):
        assert names(connection) == hand_written[order], order


# Six walks at once, one per page size 2..7, each alias dropped once its walk is over.
WALK_QUERY = """
fragment Page on CustomerConnection {
  totalCount
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { cursor node { id name } }
  nodes { id name }
}
query Walk(
  $filter: CustomerFilter, $search: String, $orderBy: CustomerOrder!,
  $a2: String, $a3: String, $a4: String, $a5: String, $a6: String, $a7: String,
  $go2: Boolean!, $go3: Boolean!, $go4: Boolean!, $go5: Boolean!, $go6: Boolean!, $go7: Boolean!
) {
  p2: customers(first: 2, after: $a2, filter: $filter, search: $search, orderBy: $orderBy)
    @include(if: $go2) { ...Page }
  p3: customers(first: 3, after: $a3, filter: $filter, search: $search, orderBy: $orderBy)
    @include(if: $go3) { ...Page }
  p4: customers(first: 4, after: $a4, filter: $filter, search: $search, orderBy: $orderBy)
    @include(if: $go4) { ...Page }
  p5: customers(first: 5, after: $a5, filter: $filter, search: $search, orderBy: $orderBy)
    @include(if: $go5) { ...Page }
  p6: customers(first: 6, after: $a6, filter: $filter, search: $search, orderBy: $orderBy)
    @include(if: $go6) { ...Page }
  p7: customers(first: 7, after: $a7, filter: $filter, search: $search, orderBy: $orderBy)
    @include(if: $go7) { ...Page }
}
"""
SIZES = range(2, 8)


async def walk(
    api: Api, as_: str = FULL, orderBy: str = "NAME_ASC", **arguments: Any
) -> dict[int, tuple[list[str], int]]:
    """Every page of one list for each page size 2..7, checking each page's bookkeeping:
    {size: (names in the order met, number of pages)}."""
    seen: dict[int, list[str]] = {size: [] for size in SIZES}
    pages = dict.fromkeys(SIZES, 0)
    after: dict[int, str | None] = dict.fromkeys(SIZES)
    going = set(SIZES)
    total = None
    while going:
        variables = {"orderBy": orderBy, **arguments}
        for size in SIZES:
            variables[f"a{size}"] = after[size]
            variables[f"go{size}"] = size in going
        data = data_of(await post_graphql(api, WALK_QUERY, variables, as_=as_))
        for size in sorted(going):
            connection = data[f"p{size}"]
            pages[size] += 1
            info, edges = connection["pageInfo"], connection["edges"]
            assert total in (None, connection["totalCount"])
            total = connection["totalCount"]
            assert len(edges) <= size
            assert [e["node"] for e in edges] == connection["nodes"]
            assert info["hasPreviousPage"] is (after[size] is not None)
            assert info["startCursor"] == (edges[0]["cursor"] if edges else None)
            assert info["endCursor"] == (edges[-1]["cursor"] if edges else None)
            seen[size] += names(connection)
            if info["hasNextPage"]:
                assert len(edges) == size
                after[size] = info["endCursor"]
            else:
                going.discard(size)
            assert pages[size] < 100
    for size in SIZES:
        assert len(seen[size]) == total, size
    return {size: (seen[size], pages[size]) for size in SIZES}


async def test_walking_every_page_yields_each_customer_once_in_order(api: Api) -> None:
    # given
    built = await build_directory(api)
    for order in ORDERS:
        want = ordered(DIRECTORY, built.ids, order)
        # when
        walks = await walk(api, orderBy=order)
        # then
        for size, (seen, pages) in walks.items():
            assert seen == want, (order, size)
            assert pages == -(-len(want) // size), (order, size)


async def test_walking_a_filtered_search(api: Api) -> None:
    # given
    built = await build_directory(api)
    flt = {"products": ["MEETINGS", "CALLING"]}
    for order in ORDERS:
        want = expected(built, flt, "a", order)
        assert len(want) >= 4
        # when
        walks = await walk(api, filter=flt, search="A", orderBy=order)
        # then
        for size, (seen, _) in walks.items():
            assert seen == want, (order, size)


@pytest.mark.parametrize("walk_limit", [1, 2, 2000])
async def test_pages_filtered_by_one_status_or_tag_in_name_order_walk_it(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch, walk_limit: int
) -> None:
    """These pages walk one status's spans (any status but ACTIVE) or else one tag's links in
    name order (db.queries.customer_walks.walk_of: bounded_walk on PostgreSQL, walked_rows on
    SQLite); on PostgreSQL a small walk limit makes every page go on from the walk's boundary
    through the match sets. Either way every page must be what the model says."""
    api = uncached_api
    # given
    built = await build_directory(api)
    gold, east = built.tag_ids["gold"], built.tag_ids["east"]
    monkeypatch.setattr(customer_walks, "WALK_LIMIT", walk_limit)
    tag, span = "customer_tag", "customer_status_span"
    filters: list[tuple[dict[str, Any], str | None]] = [
        ({"tagIds": [gold]}, tag),
        ({"tagIds": [east], "products": ["MEETINGS"]}, tag),
        ({"tagIds": [gold], "statuses": ["ACTIVE", "TRIAL"], "products": ["MEETINGS"]}, tag),
        ({"tagIds": [built.foreign_tag_ids["gold"]]}, tag),
        ({"tagIds": [gold], "statuses": ["ACTIVE"]}, tag),
        ({"tagIds": [gold], "statuses": []}, None),
        ({"statuses": ["ACTIVE"]}, None),
        ({"statuses": ["ACTIVE", "EXPIRED"]}, None),
        ({"statuses": ["TRIAL"]}, span),
        ({"statuses": ["NO_RECENT_ACTIVITY"]}, span),
        ({"statuses": ["EXPIRED"]}, span),
        ({"statuses": ["EXPIRED"], "products": ["MEETINGS", "CALLING"]}, span),
        ({"statuses": ["TRIAL"], "tagIds": [east], "products": ["MEETINGS"]}, span),
        ({"statuses": ["EXPIRING_SOON"], "subscriptionType": "PAID"}, span),
        ({"statuses": ["NO_RECENT_ACTIVITY"], "subscriptionType": "TRIAL"}, span),
        ({"statuses": ["SUSPENDED"], "tagIds": [built.foreign_tag_ids["gold"]]}, span),
    ]
    found = []
    for flt, walked_table in filters:
        for order in ("NAME_ASC", "NAME_DESC"):
            want = expected(built, flt, None, order)
            found.append(len(want))
            # when
            with api.counter.counting() as statements:
                walks = await walk(api, filter=flt, orderBy=order)
            # then
            for size, (seen, _) in walks.items():
                assert seen == want, (flt, order, size)
            walked = {t for t in (tag, span) if any(f"FROM {t} AS walked" in s for s in statements)}
            assert walked == ({walked_table} if walked_table else set()), (flt, order)
    assert sum(n >= 1 for n in found) >= 20, f"{found}"  # the walks had something to find


NODES_ONLY = """
query NodesOnly($after: String) {
  customers(first: 3, after: $after) {
    pageInfo { hasNextPage startCursor endCursor }
    nodes { name }
  }
}
"""


async def test_pages_without_edges_carry_the_same_cursors(api: Api) -> None:
    """Without ``edges`` in the document only the cursors pageInfo shows are made; they are the
    ones the edges would carry, and paging with them walks the same list."""
    # given
    built = await build_directory(api)
    want = ordered(DIRECTORY, built.ids, "NAME_ASC")
    with_edges = await walk(api)
    after: str | None = None
    seen: list[str] = []
    # when
    while True:
        body = await post_graphql(api, NODES_ONLY, {"after": after}, as_=FULL)
        connection = data_of(body)["customers"]
        seen += names(connection)
        info = connection["pageInfo"]
        paired = await post_graphql(
            api,
            "query P($after: String) { customers(first: 3, after: $after) { edges { cursor } } }",
            {"after": after},
            as_=FULL,
        )
        cursors = [e["cursor"] for e in data_of(paired)["customers"]["edges"]]
        # then
        assert (info["startCursor"], info["endCursor"]) == (cursors[0], cursors[-1])
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == want == with_edges[3][0]


async def test_exact_page_boundary_has_no_next_page(api: Api) -> None:
    # given
    await build_directory(api)
    # when
    everything = await list_customers(api, first=10)
    beyond = await list_customers(api, first=9)
    rest = await list_customers(api, first=5, after=beyond["pageInfo"]["endCursor"])
    # then
    assert len(everything["nodes"]) == 10
    assert everything["pageInfo"]["hasNextPage"] is False
    assert everything["pageInfo"]["hasPreviousPage"] is False
    assert beyond["pageInfo"]["hasNextPage"] is True
    assert names(rest) == ["Ärzte Ölwerk"]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True
    assert rest["totalCount"] == 10  # the total of the list, not of the page


async def test_empty_list_page_info(api: Api) -> None:
    # given
    await build_directory(api)
    # when
    connection = await list_customers(api, search="no such customer")
    # then
    assert connection == {
        "totalCount": 0,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
        "nodes": [],
    }


@pytest.mark.parametrize("order", ["NAME_ASC", "END_DATE_ASC", "CREATED_AT_DESC"])
async def test_a_cursor_stays_valid_while_customers_are_added(api: Api, order: str) -> None:
    # given
    built = await build_directory(api)
    f = built.factory
    first_page = await list_customers(api, first=4, orderBy=order)
    seen = names(first_page)
    cursor = first_page["pageInfo"]["endCursor"]
    last_seen = next(p for p in DIRECTORY if p.name == seen[-1])
    # when: a customer sorting before the cursor, one after it, one with the cursor row's key
    before = await f.customer(built.partner_id, "AAA before", created_at=NOW)
    await f.subscription(before, start=NOW - DAY, end=NOW + DAY)
    await f.customer(built.partner_id, "zzz after", created_at=NOW - 999 * DAY)
    tied_name = last_seen.name.upper() if order == "NAME_ASC" else "tied"
    tied = await f.customer(
        built.partner_id, tied_name, created_at=NOW - last_seen.created_days_ago * DAY
    )
    if last_seen.nearest_end_days is not None:
        await f.subscription(tied, start=NOW - DAY, end=NOW + last_seen.nearest_end_days * DAY)
    rest: list[str] = []
    after = cursor
    while after is not None:
        connection = await list_customers(api, first=3, after=after, orderBy=order)
        rest += names(connection)
        info = connection["pageInfo"]
        after = info["endCursor"] if info["hasNextPage"] else None
    # then: exactly what now sorts after the cursor row, the new rows included, nothing twice
    everything = names(await list_customers(api, first=100, orderBy=order))
    assert len(everything) == len(DIRECTORY) + 3
    cut = everything.index(seen[-1])
    assert rest == everything[cut + 1 :]
    assert "zzz after" in rest
    # the tied row has a larger id: after the cursor ascending, before it descending
    if order == "CREATED_AT_DESC":
        assert everything[: cut + 1] == ["AAA before", *seen[:-1], tied_name, seen[-1]]
        assert tied_name not in rest
    else:
        assert everything[: cut + 1] == ["AAA before", *seen]
        assert tied_name in rest


# --- detail tabs ---------------------------------------------------------------------------------

DETAIL_QUERY = """
query Detail($id: ID!) {
  customer(id: $id) {
    id name managedBy createdAt lastAdminSignInAt statuses products
    tags { id name }
    subscriptions {
      id subscriptionId kind state startDate endDate autoRenew renewalDate
      licenses { product licenseType purchased assigned used available }
      invoices { invoiceNumber issuedAt amountCents currency status }
      orders { orderNumber placedAt action status }
      tags { name }
    }
    trials { subscriptionId kind }
    partnerAdmins { role assignedAt admin { id name email } }
  }
}
"""


async def test_customer_detail_tabs(api: Api) -> None:
    # given
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    zed = await f.admin(partner, "zed@acme.example", "PARTNER_ADMIN", name="Zed Partner")
    ann = await f.admin(partner, "ann@acme.example", "SALES_ADMIN", name="Ann Sales")
    await f.admin(partner, "unassigned@acme.example", "PARTNER_ADMIN")
    customer = await f.customer(
        partner, "Initech", managed_by="PARTNER_ORG", created_at=NOW - 500 * DAY
    )
    old = await f.subscription(
        customer, state="EXPIRED", start=NOW - 500 * DAY, end=NOW - 135 * DAY, auto_renew=False
    )
    paid = await f.subscription(
        customer,
        start=NOW - 135 * DAY,
        end=NOW + 230 * DAY,
        lines=[("MEETINGS", 100, 120, 80), ("CALLING", 50, 20, 10)],
    )
    trial = await f.subscription(
        customer, kind="TRIAL", start=NOW - 5 * DAY, end=NOW + 25 * DAY, auto_renew=False,
        lines=[("CONTACT_CENTER", 5, 5, 1)],
    )  # fmt: skip
    vip = await add_tag(api, partner, "VIP")
    emea = await add_tag(api, partner, "emea")
    await tag_customer(api, partner, customer, vip)
    await tag_customer(api, partner, customer, emea)
    await tag_subscription(api, partner, paid, vip)
    await add_invoice(api, partner, paid, "INV-1", NOW - 135 * DAY)
    await add_invoice(api, partner, paid, "INV-2", NOW - 40 * DAY)
    await add_order(api, partner, paid, "ORD-1", NOW - 140 * DAY)
    await add_order(api, partner, paid, "ORD-2", NOW - 20 * DAY)
    await f.assign(customer, zed)
    await f.assign(customer, ann)
    # when
    body = await post_graphql(api, DETAIL_QUERY, {"id": global_id("Customer", customer)}, as_=FULL)
    # then
    c = data_of(body)["customer"]
    assert c["id"] == global_id("Customer", customer)
    assert (c["name"], c["managedBy"]) == ("Initech", "PARTNER_ORG")
    assert datetime.fromisoformat(c["createdAt"]) == NOW - 500 * DAY
    assert datetime.fromisoformat(c["lastAdminSignInAt"]) == NOW - DAY
    assert c["statuses"] == ["TRIAL", "ACTIVE", "LICENSE_OVERAGE"]
    assert sorted(c["products"]) == ["CALLING", "CONTACT_CENTER", "MEETINGS"]
    assert [t["name"] for t in c["tags"]] == ["emea", "VIP"]
    assert {t["id"] for t in c["tags"]} == {global_id("Tag", vip), global_id("Tag", emea)}
    subs = c["subscriptions"]
    assert [s["id"] for s in subs] == [global_id("Subscription", pk) for pk in (trial, paid, old)]
    assert [s["kind"] for s in subs] == ["TRIAL", "PAID", "PAID"]
    assert [s["state"] for s in subs] == ["ACTIVE", "ACTIVE", "EXPIRED"]
    assert datetime.fromisoformat(subs[1]["startDate"]) == NOW - 135 * DAY
    assert datetime.fromisoformat(subs[1]["endDate"]) == NOW + 230 * DAY
    assert subs[1]["autoRenew"] is True
    assert datetime.fromisoformat(subs[1]["renewalDate"]) == NOW + 230 * DAY
    assert subs[2]["renewalDate"] is None
    assert sorted(subs[1]["licenses"], key=lambda ln: ln["product"]) == [
        {"product": "CALLING", "licenseType": "Standard", "purchased": 50, "assigned": 20,
         "used": 10, "available": 30},
        {"product": "MEETINGS", "licenseType": "Standard", "purchased": 100, "assigned": 120,
         "used": 80, "available": 0},
    ]  # fmt: skip
    assert subs[0]["licenses"][0]["available"] == 0  # 5 purchased, 5 assigned
    assert [i["invoiceNumber"] for i in subs[1]["invoices"]] == ["INV-2", "INV-1"]
    assert subs[1]["invoices"][0]["amountCents"] == 12_345
    assert [o["orderNumber"] for o in subs[1]["orders"]] == ["ORD-2", "ORD-1"]
    assert [t["name"] for t in subs[1]["tags"]] == ["VIP"]
    assert subs[0]["invoices"] == subs[0]["orders"] == subs[0]["tags"] == []
    assert c["trials"] == [{"subscriptionId": subs[0]["subscriptionId"], "kind": "TRIAL"}]
    admins = c["partnerAdmins"]
    assert sorted((a["admin"]["name"], a["role"]) for a in admins) == [
        ("Ann Sales", "SALES_ADMIN"),
        ("Zed Partner", "PARTNER_ADMIN"),
    ]
    assert {a["admin"]["id"] for a in admins} == {global_id("Admin", zed), global_id("Admin", ann)}
    assert all(datetime.fromisoformat(a["assignedAt"]) == NOW for a in admins)


async def test_customer_without_anything(api: Api) -> None:
    # given
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    customer = await f.customer(partner, "Bare", last_sign_in=None)
    # when
    body = await post_graphql(api, DETAIL_QUERY, {"id": global_id("Customer", customer)}, as_=FULL)
    # then
    c = data_of(body)["customer"]
    assert c["lastAdminSignInAt"] is None
    assert c["statuses"] == ["NO_RECENT_ACTIVITY"]
    assert c["products"] == c["tags"] == c["subscriptions"] == c["trials"] == []
    assert c["partnerAdmins"] == []


# --- bad input: a clear error with a code, never a 500 -------------------------------------------


async def test_page_size_out_of_range(api: Api) -> None:
    # given
    await just_an_admin(api)
    for first in (0, -1, 101, 1000):
        # when
        body = await post_graphql(api, LIST_QUERY, {"first": first}, as_=FULL)
        # then
        assert error_codes(body) == ["INVALID_PAGE_SIZE"], first
        assert body["data"] is None
    for first in (1, 100):
        assert data_of(await post_graphql(api, LIST_QUERY, {"first": first}, as_=FULL))


async def test_unknown_enum_values_are_validation_errors(api: Api) -> None:
    # given
    await just_an_admin(api)
    bad_variables: list[tuple[dict[str, Any], str]] = [
        ({"filter": {"statuses": ["BOGUS"]}}, "BOGUS"),
        ({"filter": {"products": ["MEETINGS", "TELEPATHY"]}}, "TELEPATHY"),
        ({"filter": {"managedBy": "NOBODY"}}, "NOBODY"),
        ({"filter": {"subscriptionType": "FREE"}}, "FREE"),
        ({"filter": {"colour": "red"}}, "colour"),
        ({"orderBy": "SIZE_DESC"}, "SIZE_DESC"),
        ({"first": "ten"}, "ten"),
    ]
    for variables, culprit in bad_variables:
        # when (post_graphql also checks the HTTP status is 200, not 500)
        body = await post_graphql(api, LIST_QUERY, variables, as_=FULL)
        # then: refused before anything runs, naming the culprit
        assert body.get("data") is None, variables
        assert error_codes(body) == ["BAD_USER_INPUT"], variables
        assert culprit in body["errors"][0]["message"], variables
    # an unknown value written in the document itself
    body = await post_graphql(
        api, "query { customers(orderBy: SIZE_DESC) { totalCount } }", as_=FULL
    )
    assert body.get("data") is None
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "SIZE_DESC" in body["errors"][0]["message"]


async def test_foreign_cursors_are_refused(api: Api) -> None:
    # given
    await build_directory(api)
    page = await list_customers(api, first=2, filter={"products": ["MEETINGS"]}, search="a")
    cursor = page["pageInfo"]["endCursor"]
    same = {"first": 2, "filter": {"products": ["MEETINGS"]}, "search": "a"}
    assert data_of(await post_graphql(api, LIST_QUERY, same | {"after": cursor}, as_=FULL))
    admins = data_of(
        await post_graphql(api, "query { admins(first: 1) { pageInfo { endCursor } } }", as_=FULL)
    )["admins"]["pageInfo"]["endCursor"]
    middle = len(cursor) // 2
    flipped = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    refused: list[dict[str, Any]] = [
        same | {"after": cursor, "orderBy": "NAME_DESC"},  # another order
        same | {"after": cursor, "filter": {"products": ["CALLING"]}},  # another filter
        same | {"after": cursor, "filter": {"products": ["MEETINGS"], "managedBy": "PARTNER_ORG"}},
        same | {"after": cursor, "search": "b"},  # another search
        {"first": 2, "after": cursor},  # no filter at all
        same | {"after": flipped},  # tampered
        same | {"after": cursor[:-3]},  # truncated
        same | {"after": cursor + "AAAA"},
        same | {"after": admins},  # a cursor of another list
        same | {"after": "not a cursor!"},
        same | {"after": ""},
        same | {"after": "x" * 5000},
    ]
    for variables in refused:
        # when
        body = await post_graphql(api, LIST_QUERY, variables, as_=FULL)
        # then
        assert error_codes(body) == ["INVALID_CURSOR"], variables["after"][:40]
    # and a cursor made for another partner's list is not valid here either
    body = await post_graphql(api, LIST_QUERY, same | {"after": cursor}, as_=OTHER)
    assert error_codes(body) == ["INVALID_CURSOR"]


async def test_search_length_is_limited(api: Api) -> None:
    # given
    await just_an_admin(api)
    # when
    too_long = await post_graphql(api, LIST_QUERY, {"search": "a" * 10_000}, as_=FULL)
    just_over = await post_graphql(api, LIST_QUERY, {"search": "a" * 201}, as_=FULL)
    longest = await post_graphql(api, LIST_QUERY, {"search": "a" * 200}, as_=FULL)
    # then
    assert error_codes(too_long) == ["SEARCH_TOO_LONG"]
    assert error_codes(just_over) == ["SEARCH_TOO_LONG"]
    assert data_of(longest)["customers"]["totalCount"] == 0


async def test_malformed_tag_ids_in_the_filter(api: Api) -> None:
    # given
    await just_an_admin(api)
    customer_id = global_id("Customer", 1)
    for bad in ("", "abc", "not base64 !", global_id("Tag", 0), customer_id):
        # when
        body = await post_graphql(api, LIST_QUERY, {"filter": {"tagIds": [bad]}}, as_=FULL)
        # then
        assert error_codes(body) == ["INVALID_ID"], bad


# --- isolation between partners ------------------------------------------------------------------


async def test_another_partners_customers_never_appear(api: Api) -> None:
    # given
    built = await build_directory(api)
    # when
    ours = (await walk(api))[3][0]
    searched = await list_customers(api, search="foreign")
    alpha = await list_customers(api, search="alpha")
    theirs = (await walk(api, as_=OTHER))[3][0]
    # then
    assert sorted(ours) == sorted(p.name for p in DIRECTORY)
    assert searched["totalCount"] == 0
    assert names(alpha) == ["ALPHA annex", "Alpha Bank"]
    assert theirs == ["Alpha Other", "Gamma_ 100% Foreign"]
    assert (await list_customers(api))["totalCount"] == len(built.ids)


async def test_filtering_by_another_partners_tag_matches_nothing(api: Api) -> None:
    # given
    built = await build_directory(api)
    foreign_gold = built.foreign_tag_ids["gold"]
    # when
    only_foreign = await list_customers(api, filter={"tagIds": [foreign_gold]})
    mixed = await list_customers(api, filter={"tagIds": [foreign_gold, built.tag_ids["west"]]})
    their_view = await list_customers(api, as_=OTHER, filter={"tagIds": [foreign_gold]})
    # then
    assert only_foreign["totalCount"] == 0 and only_foreign["nodes"] == []
    assert names(mixed) == ["epsilon", "Omega_Partners"]
    assert names(their_view) == ["Alpha Other"]
