"""Inputs and payloads of trials, assignments, launch and the own-organization setup."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph.mutations import UserError
from graph.types.admins import Partner
from graph.types.common import Product
from graph.types.customers import Customer, Subscription


@strawberry.input(description="Licenses of one product in a trial.")
class TrialProductInput:
    product: Product = strawberry.field(description="The product.")
    licenses: int = strawberry.field(description="1-1000 licenses.")


@strawberry.input(description="A customer to create along with its trial.")
class NewCustomerInput:
    name: str = strawberry.field(description="Organization name, 1-200 characters.")
    admin_email: str = strawberry.field(description="Email of the customer's first admin.")


@strawberry.input(
    description="Start a trial for an existing customer (customerId) or a new one (newCustomer)."
)
class StartTrialInput:
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="An existing customer's `id` (or give newCustomer)."
    )
    new_customer: NewCustomerInput | None = strawberry.field(
        default=None, description="A customer to create with the trial (or give customerId)."
    )
    products: list[TrialProductInput] = strawberry.field(description="Products and licenses.")
    duration_days: int = strawberry.field(description="1-90 days.")


@strawberry.input(description="Extend a trial in force, in 30-day steps.")
class ExtendTrialInput:
    trial_id: strawberry.ID = strawberry.field(description="The trial (a Subscription ID).")
    days: int = strawberry.field(
        default=30,
        description="A multiple of 30; the new end is at most 90 days after now.",
    )


@strawberry.input(description="Convert a trial in force into a paid subscription.")
class ConvertTrialInput:
    trial_id: strawberry.ID = strawberry.field(description="The trial.")
    auto_renew: bool = strawberry.field(description="Renew automatically at the end.")
    term_months: int = strawberry.field(description="Term of the paid subscription, 1-60.")


@strawberry.type(description="Result of startTrial / extendTrial.")
class TrialPayload:
    trial: Subscription | None = strawberry.field(description="The trial.")
    customer: Customer | None = strawberry.field(description="Its customer.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of convertTrial.")
class ConvertTrialPayload:
    trial: Subscription | None = strawberry.field(description="The trial, now ended.")
    subscription: Subscription | None = strawberry.field(description="The paid subscription.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.input(description="A partner admin and a customer.")
class AssignmentInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer.")
    admin_id: strawberry.ID = strawberry.field(description="The administrator.")


@strawberry.type(description="Result of assignPartnerAdmin / unassignPartnerAdmin.")
class AssignmentPayload:
    customer: Customer | None = strawberry.field(description="The customer after the change.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.input(description="The customer organization to open.")
class LaunchCustomerInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer.")


@strawberry.type(description="A signed, single-use, 5-minute link into an admin console.")
class LaunchPayload:
    url: str | None = strawberry.field(description="Open this link.")
    expires_at: datetime | None = strawberry.field(description="The link stops working then.")
    setup_required: bool = strawberry.field(
        default=False, description="The organization's first-time setup is not finished."
    )
    user_errors: list[UserError] = strawberry.field(description="Why no link was made.")


@strawberry.input(description="A launch token received by an admin console.")
class VerifyLaunchTokenInput:
    token: str = strawberry.field(description="The token from the launch link.")


@strawberry.type(description="Who a valid launch token lets in, and where.")
class LaunchGrant:
    admin_email: str = strawberry.field(description="The admin who launched.")
    role: str = strawberry.field(description="The role it acts with.")
    organization_type: str = strawberry.field(description="CUSTOMER or PARTNER.")
    organization_id: strawberry.ID = strawberry.field(description="Global ID of the organization.")
    organization_name: str = strawberry.field(description="Its name.")


@strawberry.type(description="Result of verifyLaunchToken (the token is used up).")
class VerifyLaunchTokenPayload:
    grant: LaunchGrant | None = strawberry.field(description="Present when the token is valid.")
    user_errors: list[UserError] = strawberry.field(description="Why the token is refused.")


@strawberry.type(description="Result of acceptTerms / completeOrganizationSetup.")
class PartnerSetupPayload:
    partner: Partner | None = strawberry.field(description="The partner after the change.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")
