"""Customers, their subscriptions, license lines, invoices and orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from db.queries.customers import CustomerOrder as _CustomerOrder
from graph.context import Info
from graph.ids import to_global_id
from graph.pagination import PageInfo
from graph.types.admins import Admin
from graph.types.common import (
    CustomerStatus,
    ManagedBy,
    Node,
    Product,
    SubscriptionKind,
    SubscriptionState,
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
        return cls(
            product=row.product,
            license_type=row.license_type,
            purchased=row.purchased,
            assigned=row.assigned,
            used=row.used,
            available=max(row.purchased - row.assigned, 0),
            overage=max(row.assigned - row.purchased, 0),
        )


@strawberry.type(description="An invoice of a subscription.")
class Invoice:
    invoice_number: str = strawberry.field(description="Invoice number.")
    issued_at: datetime = strawberry.field(description="Issue date.")
    due_at: datetime = strawberry.field(description="Payment due date.")
    amount_cents: int = strawberry.field(description="Amount in cents of `currency`.")
    currency: str = strawberry.field(description="ISO 4217 currency code.")
    status: str = strawberry.field(description="PAID, OPEN or OVERDUE.")

    @classmethod
    def from_row(cls, row: Any) -> Invoice:
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
    order_number: str = strawberry.field(description="Order number.")
    placed_at: datetime = strawberry.field(description="When the order was placed.")
    action: str = strawberry.field(description="NEW, RENEWAL, ADD_LICENSES, CONVERSION, ...")
    description: str = strawberry.field(description="What was ordered.")
    status: str = strawberry.field(description="Order status.")

    @classmethod
    def from_row(cls, row: Any) -> Order:
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
        return cls(
            id=strawberry.ID(to_global_id("Subscription", row.id)),
            subscription_id=row.subscription_id,
            kind=row.kind,
            state=row.state,
            start_date=row.start_date,
            end_date=row.end_date,
            auto_renew=row.auto_renew,
            renewal_date=row.renewal_date,
            pk=row.id,
            customer_pk=row.customer_id,
        )

    @strawberry.field(description="License lines, by product and license type.")
    async def licenses(self, info: Info) -> list[LicenseLine]:
        rows = await info.context.loaders.license_lines_by_subscription_id.load(self.pk)
        return [LicenseLine.from_row(r) for r in rows]

    @strawberry.field(description="Invoices, newest first.")
    async def invoices(self, info: Info) -> list[Invoice]:
        rows = await info.context.loaders.invoices_by_subscription_id.load(self.pk)
        return [Invoice.from_row(r) for r in rows]

    @strawberry.field(description="Order history, newest first.")
    async def orders(self, info: Info) -> list[Order]:
        rows = await info.context.loaders.orders_by_subscription_id.load(self.pk)
        return [Order.from_row(r) for r in rows]

    @strawberry.field(description="Tags attached to the subscription, by name.")
    async def tags(self, info: Info) -> list[Tag]:
        rows = await info.context.loaders.tags_by_subscription_id.load(self.pk)
        return [Tag.from_row(r) for r in rows]


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
        return cls(
            id=strawberry.ID(to_global_id("Customer", row.id)),
            name=row.name,
            external_id=row.external_id,
            created_at=row.created_at,
            managed_by=row.managed_by,
            last_admin_sign_in_at=row.last_admin_sign_in_at,
            pk=row.id,
        )

    @strawberry.field(description="Statuses that hold now (see CustomerStatus), in enum order.")
    async def statuses(self, info: Info) -> list[CustomerStatus]:
        rows = await info.context.loaders.statuses_by_customer_id.load(self.pk)
        return [CustomerStatus(s) for s in rows]

    @strawberry.field(
        description="Products on the customer's subscriptions that are not expired or cancelled."
    )
    async def products(self, info: Info) -> list[Product]:
        rows = await info.context.loaders.products_by_customer_id.load(self.pk)
        return [Product(p) for p in rows]

    @strawberry.field(description="Tags attached to the customer, by name.")
    async def tags(self, info: Info) -> list[Tag]:
        rows = await info.context.loaders.tags_by_customer_id.load(self.pk)
        return [Tag.from_row(r) for r in rows]

    @strawberry.field(description="Paid subscriptions and trials, newest first.")
    async def subscriptions(self, info: Info) -> list[Subscription]:
        rows = await info.context.loaders.subscriptions_by_customer_id.load(self.pk)
        return [Subscription.from_row(r) for r in rows]

    @strawberry.field(description="Trials only (kind TRIAL), newest first.")
    async def trials(self, info: Info) -> list[Subscription]:
        rows = await info.context.loaders.trials_by_customer_id.load(self.pk)
        return [Subscription.from_row(r) for r in rows]

    @strawberry.field(description="Partner administrators assigned to this customer.")
    async def partner_admins(self, info: Info) -> list[AssignedAdmin]:
        rows = await info.context.loaders.assigned_admins_by_customer_id.load(self.pk)
        return [
            AssignedAdmin(admin=Admin.from_row(r), role=r.role, assigned_at=r.assigned_at)
            for r in rows
        ]


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
