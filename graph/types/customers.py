"""Customers, their subscriptions, license lines, invoices and orders."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from db.queries.customer_pages import CustomerOrder as _CustomerOrder
from graph.context import Info
from graph.ids import to_global_id
from graph.pagination import PageInfo
from graph.prefetch import Relation, ahead_or_load
from graph.types.admins import Admin
from graph.types.common import (
    CustomerStatus,
    InvoiceStatus,
    ManagedBy,
    Node,
    OrderAction,
    OrderStatus,
    Product,
    SubscriptionKind,
    SubscriptionState,
    made,
)
from graph.types.tags import Tag

CustomerOrder = _CustomerOrder
strawberry.enum(
    _CustomerOrder,
    description="Order of the customer list. END_DATE_ASC puts the customer whose in-force "
    "subscription ends soonest first (customers with none in force last).",
)


@strawberry.type(description="One product line of a subscription.")
class LicenseLine:
    product: Product = strawberry.field(description="The product.")
    license_type: str = strawberry.field(description="License type, e.g. Enterprise.")
    purchased: int = strawberry.field(description="Licenses bought.")
    assigned: int = strawberry.field(description="Licenses assigned to users.")
    used: int = strawberry.field(description="Assigned licenses active in the last 7 days.")
    available: int = strawberry.field(description="max(purchased - assigned, 0).")
    overage: int = strawberry.field(description="max(assigned - purchased, 0).")

    @classmethod
    def from_row(cls, row: Any) -> LicenseLine:
        return made(
            cls,
            {
                "product": row.product,
                "license_type": row.license_type,
                "purchased": row.purchased,
                "assigned": row.assigned,
                "used": row.used,
                "available": max(row.purchased - row.assigned, 0),
                "overage": max(row.assigned - row.purchased, 0),
            },
        )


@strawberry.type(description="An invoice of a subscription.")
class Invoice:
    invoice_number: str = strawberry.field(description="Invoice number.")
    issued_at: datetime = strawberry.field(description="Issue date.")
    due_at: datetime = strawberry.field(description="Payment due date.")
    amount_cents: int = strawberry.field(description="Amount in cents of `currency`.")
    currency: str = strawberry.field(description="ISO 4217 currency code.")
    status: InvoiceStatus = strawberry.field(description="OPEN, PAID or OVERDUE.")

    @classmethod
    def from_row(cls, row: Any) -> Invoice:
        # The enums' stored names as they are (as Subscription's kind and state): serialised by
        # the enum when selected, so an unknown one is an error at the field that reads it, not
        # of the whole relationship, and not where no document reads it (as when rendered,
        # ``graph.render``).
        return cls(
            invoice_number=row.invoice_number,
            issued_at=row.issued_at,
            due_at=row.due_at,
            amount_cents=row.amount_cents,
            currency=row.currency,
            status=row.status,
        )


@strawberry.type(description="An entry of a subscription's order history.")
class Order:
    order_number: str = strawberry.field(description="Order number, unique within the partner.")
    placed_at: datetime = strawberry.field(description="When the order was placed.")
    action: OrderAction = strawberry.field(description="What the order did.")
    description: str = strawberry.field(description="What was ordered, for people.")
    status: OrderStatus = strawberry.field(description="Order status.")

    @classmethod
    def from_row(cls, row: Any) -> Order:
        # The enums' stored names as they are (``Invoice.from_row``).
        return cls(
            order_number=row.order_number,
            placed_at=row.placed_at,
            action=row.action,
            description=row.description,
            status=row.status,
        )


@strawberry.type(description="A paid subscription or a trial of a customer.")
class Subscription(Node):
    subscription_id: str = strawberry.field(
        description="Business identifier (e.g. Sub123456; a trial carries its trial identifier)."
    )
    kind: SubscriptionKind = strawberry.field(description="PAID or TRIAL.")
    state: SubscriptionState = strawberry.field(description="Lifecycle state.")
    start_date: datetime = strawberry.field(description="Start of the term.")
    end_date: datetime = strawberry.field(description="End of the term (exclusive).")
    auto_renew: bool = strawberry.field(description="Renews automatically at the end.")
    renewal_date: datetime | None = strawberry.field(description="Next automatic renewal.")
    pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> Subscription:
        return made(
            cls,
            {
                "id": strawberry.ID(to_global_id("Subscription", row.id)),
                "subscription_id": row.subscription_id,
                "kind": row.kind,
                "state": row.state,
                "start_date": row.start_date,
                "end_date": row.end_date,
                "auto_renew": row.auto_renew,
                "renewal_date": row.renewal_date,
                "pk": row.id,
                "customer_pk": row.customer_id,
                "ahead": {},
            },
        )

    ahead: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)

    @strawberry.field(description="License lines, by product and license type (at most 10).")
    def licenses(self, info: Info) -> list[LicenseLine]:
        return ahead_or_load(self, info.context, "licenses", SUBSCRIPTION_RELATIONS["licenses"])

    @strawberry.field(description="Invoices, newest first (the latest 10).")
    def invoices(self, info: Info) -> list[Invoice]:
        return ahead_or_load(self, info.context, "invoices", SUBSCRIPTION_RELATIONS["invoices"])

    @strawberry.field(description="Order history, newest first (the latest 10).")
    def orders(self, info: Info) -> list[Order]:
        return ahead_or_load(self, info.context, "orders", SUBSCRIPTION_RELATIONS["orders"])

    @strawberry.field(description="Tags attached to the subscription, by name.")
    def tags(self, info: Info) -> list[Tag]:
        return ahead_or_load(self, info.context, "tags", SUBSCRIPTION_RELATIONS["tags"])


@strawberry.type(description="A partner administrator assigned to a customer.")
class AssignedAdmin:
    admin: Admin = strawberry.field(description="The administrator.")
    role: str = strawberry.field(description="The administrator's role.")
    assigned_at: datetime = strawberry.field(description="When the assignment was made.")


@strawberry.type(description="A customer organization managed by the partner.")
class Customer(Node):
    name: str = strawberry.field(description="Organization name.")
    external_id: str = strawberry.field(description="The partner's own reference for it.")
    created_at: datetime = strawberry.field(description="When the customer was created.")
    managed_by: ManagedBy = strawberry.field(description="How the partner manages it.")
    last_admin_sign_in_at: datetime | None = strawberry.field(
        description="Last sign-in of the customer's own admins to their admin console."
    )
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> Customer:
        return made(
            cls,
            {
                "id": strawberry.ID(to_global_id("Customer", row.id)),
                "name": row.name,
                "external_id": row.external_id,
                "created_at": row.created_at,
                "managed_by": row.managed_by,
                "last_admin_sign_in_at": row.last_admin_sign_in_at,
                "pk": row.id,
                "ahead": {},
            },
        )

    ahead: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)

    @strawberry.field(description="Statuses that hold now (see CustomerStatus), in enum order.")
    def statuses(self, info: Info) -> list[CustomerStatus]:
        return ahead_or_load(self, info.context, "statuses", CUSTOMER_RELATIONS["statuses"])

    @strawberry.field(
        description="Products on the customer's subscriptions that are not expired or cancelled."
    )
    def products(self, info: Info) -> list[Product]:
        return ahead_or_load(self, info.context, "products", CUSTOMER_RELATIONS["products"])

    @strawberry.field(description="Tags attached to the customer, by name.")
    def tags(self, info: Info) -> list[Tag]:
        return ahead_or_load(self, info.context, "tags", CUSTOMER_RELATIONS["tags"])

    @strawberry.field(description="Paid subscriptions and trials, newest first (the latest 10).")
    def subscriptions(self, info: Info) -> list[Subscription]:
        relation = CUSTOMER_RELATIONS["subscriptions"]
        return ahead_or_load(self, info.context, "subscriptions", relation)

    @strawberry.field(description="Trials only (kind TRIAL), newest first (the latest 10).")
    def trials(self, info: Info) -> list[Subscription]:
        return ahead_or_load(self, info.context, "trials", CUSTOMER_RELATIONS["trials"])

    @strawberry.field(description="Partner administrators assigned to this customer (at most 10).")
    def partner_admins(self, info: Info) -> list[AssignedAdmin]:
        relation = CUSTOMER_RELATIONS["partnerAdmins"]
        return ahead_or_load(self, info.context, "partnerAdmins", relation)


def _all(convert: Callable[[Any], Any]) -> Callable[[list[Any]], list[Any]]:
    return lambda rows: [convert(row) for row in rows]


def _assigned_admin(row: Any) -> AssignedAdmin:
    values = {"admin": Admin.from_row(row), "role": row.role, "assigned_at": row.assigned_at}
    return made(AssignedAdmin, values)


# The relationship fields by GraphQL name: the loader of each and how its rows become objects.
SUBSCRIPTION_RELATIONS = {
    "licenses": Relation(
        lambda ls: ls.license_lines_by_subscription_id, _all(LicenseLine.from_row)
    ),
    "invoices": Relation(lambda ls: ls.invoices_by_subscription_id, _all(Invoice.from_row)),
    "orders": Relation(lambda ls: ls.orders_by_subscription_id, _all(Order.from_row)),
    "tags": Relation(lambda ls: ls.tags_by_subscription_id, _all(Tag.from_row)),
}
CUSTOMER_RELATIONS = {
    "statuses": Relation(lambda ls: ls.statuses_by_customer_id, _all(CustomerStatus)),
    "products": Relation(lambda ls: ls.products_by_customer_id, _all(Product)),
    "tags": Relation(lambda ls: ls.tags_by_customer_id, _all(Tag.from_row)),
    "subscriptions": Relation(
        lambda ls: ls.subscriptions_by_customer_id,
        _all(Subscription.from_row),
        SUBSCRIPTION_RELATIONS,
    ),
    "trials": Relation(
        lambda ls: ls.trials_by_customer_id,
        _all(Subscription.from_row),
        SUBSCRIPTION_RELATIONS,
    ),
    "partnerAdmins": Relation(
        lambda ls: ls.assigned_admins_by_customer_id,
        _all(_assigned_admin),
    ),
}


@strawberry.input(
    description="Customer filters: inside one list any value matches; fields combine with AND."
)
class CustomerFilter:
    managed_by: ManagedBy | None = strawberry.field(default=None, description="How it is managed.")
    products: list[Product] | None = strawberry.field(
        default=None, description="Has any of these products."
    )
    statuses: list[CustomerStatus] | None = strawberry.field(
        default=None, description="Any of these statuses holds now."
    )
    subscription_type: SubscriptionKind | None = strawberry.field(
        default=None,
        description="TRIAL: a trial is in force; PAID: a paid subscription is in force.",
    )
    tag_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Carries any of these tags."
    )


@strawberry.type(description="A customer in a list, with its cursor.")
class CustomerEdge:
    node: Customer = strawberry.field(description="The customer.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this customer.")


@strawberry.type(description="A keyset page of customers.")
class CustomerConnection:
    edges: list[CustomerEdge] = strawberry.field(description="Customers with cursors.")
    nodes: list[Customer] = strawberry.field(description="Customers of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Customers matching the filter and search, over all pages.")
    async def total_count(self) -> int:
        return await self.count()
