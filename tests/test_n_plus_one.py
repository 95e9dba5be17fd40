"""A page of 50 customers with every relationship costs the same SQL statements as a page of 2.

Every relationship field resolves through a per-request loader that is one ``WHERE key IN (...)``
statement, so the count is a constant of the query's shape, never of its rows. The exact number
is asserted too, so that an added statement (or a lost loader) shows up here.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select

from db.models import (
    Customer,
    CustomerAssignment,
    CustomerTag,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    SubscriptionTag,
    Tag,
)
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql, with_lookup

FULL = "full@acme.example"
DAY = timedelta(days=1)

PAGE_QUERY = """
query Page($first: Int!, $after: String) {
  customers(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id name createdAt managedBy lastAdminSignInAt
      statuses
      products
      tags { id name }
      subscriptions {
        id subscriptionId kind state startDate endDate autoRenew renewalDate
        licenses { product licenseType purchased assigned used available }
        invoices { invoiceNumber issuedAt amountCents }
        orders { orderNumber placedAt action }
        tags { id name }
      }
      trials { id subscriptionId }
      partnerAdmins { role assignedAt admin { id name email } }
    }
  }
}
"""

# The statements of one request for PAGE_QUERY: the token lookup (on PostgreSQL it rides along
# the page's statement: ``with_lookup``), the page with every
# relationship of its customers (statuses, products, tags, subscriptions, trials, partner
# admins, and the subscriptions' licenses, invoices, orders and tags) as JSON columns
# (db/queries/customer_pages.py; with one loader statement per relationship it was 13, then 4
# with the relationships in a statement of their own), and its count.
EXPECTED_STATEMENTS = 3


async def build_customers(api: Api, n: int) -> None:
    """``n`` customers, each with 2 subscriptions of 2 license lines, an invoice and an order
    each, a subscription tag, 2 customer tags and 2 assigned admins; inserted in bulk."""
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    admins = [
        await f.admin(partner, f"pa{i}@acme.example", "PARTNER_ADMIN", name=f"Partner {i}")
        for i in range(3)
    ]
    async with api.engine.begin() as conn:
        tags = []
        for name in ("gold", "silver", "bronze"):
            result = await conn.execute(
                insert(Tag).values(partner_id=partner, name=name, name_key=name, created_at=NOW)
            )
            tags.append(int(result.inserted_primary_key[0]))
        await conn.execute(
            insert(Customer),
            [
                {
                    "partner_id": partner,
                    "external_id": f"N-{i:03d}",
                    "name": f"Customer {i:03d}",
                    "name_key": f"customer {i:03d}",
                    "created_at": NOW - i * DAY,
                    "managed_by": "EXTERNAL_ADMIN",
                    "last_admin_sign_in_at": NOW - (i % 40) * DAY,
                }
                for i in range(n)
            ],
        )
        customers = list((await conn.execute(select(Customer.id).order_by(Customer.id))).scalars())
        subs: list[dict[str, Any]] = []
        for i, customer in enumerate(customers):
            for k, kind in enumerate(("PAID", "TRIAL")):
                subs.append(
                    {
                        "partner_id": partner,
                        "customer_id": customer,
                        "subscription_id": f"{kind}-{i:03d}-{k}",
                        "kind": kind,
                        "state": "ACTIVE",
                        "start_date": NOW - (10 + k) * DAY,
                        "end_date": NOW + (5 + i % 30) * DAY,
                        "auto_renew": kind == "PAID",
                        "renewal_date": NOW + (5 + i % 30) * DAY if kind == "PAID" else None,
                        "created_at": NOW - 10 * DAY,
                    }
                )
        await conn.execute(insert(Subscription), subs)
        sub_ids = list(
            (await conn.execute(select(Subscription.id).order_by(Subscription.id))).scalars()
        )
        rows: dict[Any, list[dict[str, Any]]] = {
            LicenseLine: [],
            Invoice: [],
            Order: [],
            SubscriptionTag: [],
        }
        for j, sub in enumerate(sub_ids):
            common = {"partner_id": partner, "subscription_id": sub}
            for product, purchased, assigned in (("MEETINGS", 10, 12), ("CALLING", 20, 5)):
                rows[LicenseLine].append(
                    common
                    | {
                        "product": product,
                        "license_type": "Standard",
                        "purchased": purchased,
                        "assigned": assigned,
                        "used": 3,
                    }
                )
            rows[Invoice].append(
                common
                | {
                    "invoice_number": f"INV-{j}",
                    "issued_at": NOW - 9 * DAY,
                    "due_at": NOW + 21 * DAY,
                    "amount_cents": 100 * j,
                    "currency": "EUR",
                    "status": "OPEN",
                }
            )
            rows[Order].append(
                common
                | {
                    "order_number": f"ORD-{j}",
                    "placed_at": NOW - 11 * DAY,
                    "action": "NEW",
                    "description": "New subscription",
                    "status": "COMPLETED",
                }
            )
            rows[SubscriptionTag].append(common | {"tag_id": tags[j % 3], "created_at": NOW})
        for table, values in rows.items():
            await conn.execute(insert(table), values)
        found = await conn.execute(select(Customer.id, Customer.name_key))  # type: ignore[call-overload]
        name_keys = {customer_id: name_key for customer_id, name_key in found}
        await conn.execute(
            insert(CustomerTag),
            [
                {
                    "partner_id": partner,
                    "customer_id": c,
                    "tag_id": t,
                    "created_at": NOW,
                    "name_key": name_keys[c],
                }
                for i, c in enumerate(customers)
                for t in (tags[i % 3], tags[(i + 1) % 3])
            ],
        )
        await conn.execute(
            insert(CustomerAssignment),
            [
                {"partner_id": partner, "customer_id": c, "admin_id": a, "assigned_at": NOW}
                for i, c in enumerate(customers)
                for a in (admins[i % 3], admins[(i + 1) % 3])
            ],
        )
    await f.refresh(*customers)


async def page_statements(
    api: Api, first: int, after: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    with api.counter.counting() as statements:
        body = await post_graphql(api, PAGE_QUERY, {"first": first, "after": after}, as_=FULL)
    return data_of(body)["customers"], list(statements)


def assert_fully_loaded(connection: dict[str, Any], size: int) -> None:
    """The page really carries every relationship, so the count covers them all."""
    nodes = connection["nodes"]
    assert len(nodes) == size
    for node in nodes:
        assert set(node["statuses"]) >= {"TRIAL", "ACTIVE", "LICENSE_OVERAGE"}
        assert node["products"] == ["CALLING", "MEETINGS"]
        assert len(node["tags"]) == 2
        assert len(node["subscriptions"]) == 2
        for sub in node["subscriptions"]:
            assert len(sub["licenses"]) == 2
            assert len(sub["invoices"]) == len(sub["orders"]) == len(sub["tags"]) == 1
        assert len(node["trials"]) == 1
        assert len(node["partnerAdmins"]) == 2
        assert all(a["admin"]["name"].startswith("Partner") for a in node["partnerAdmins"])


async def test_a_page_of_50_costs_the_same_statements_as_a_page_of_2(api: Api) -> None:
    # given
    await build_customers(api, 60)
    await post_graphql(api, "{ viewer { id } }", as_=FULL)  # token issued, services started
    await page_statements(api, 3)  # the document known, as a client repeating it
    # when
    small, small_statements = await page_statements(api, 2)
    large, large_statements = await page_statements(api, 50)
    rest, rest_statements = await page_statements(api, 50, large["pageInfo"]["endCursor"])
    # then
    assert_fully_loaded(small, 2)
    assert_fully_loaded(large, 50)
    assert_fully_loaded(rest, 10)  # the page after a cursor costs the same too
    assert len(rest_statements) == with_lookup(api, EXPECTED_STATEMENTS - 1)
    print(
        f"\n[{api.db.backend}] SQL statements: page of 2 -> {len(small_statements)}, "
        f"page of 50 -> {len(large_statements)}"
    )
    for statement in large_statements:
        print("  ", " ".join(statement.split())[:160])
    assert len(large_statements) == len(small_statements)
    assert len(large_statements) == with_lookup(api, EXPECTED_STATEMENTS - 1)
    # nothing issued once per row: no statement shape repeats within the request
    shapes = Counter(" ".join(s.split()) for s in large_statements)
    assert max(shapes.values()) == 1, shapes.most_common(3)
