"""Inputs and the payload of subscription management (order set-up, licences, renewal...).

In every input ``subscriptionId`` is the subscription's global ``id`` (``Subscription.id``).
"""

from __future__ import annotations

import strawberry

from graph.mutations import UserError
from graph.types.common import Product
from graph.types.customers import Order, Subscription


@strawberry.input(description="Set up a PROVISIONING subscription.")
class CompleteOrderSetupInput:
    subscription_id: strawberry.ID = strawberry.field(description="The subscription.")


@strawberry.input(description="Set the purchased count of one licence line.")
class ChangeLicenseQuantityInput:
    subscription_id: strawberry.ID = strawberry.field(description="A paid subscription in force.")
    product: Product = strawberry.field(description="The product of the licence line.")
    purchased: int = strawberry.field(description="The new purchased count, 1-100,000.")
    license_type: str | None = strawberry.field(
        default=None,
        description="The licence type of the line (e.g. Common Area), needed only when the "
        "subscription has several lines of the product.",
    )


@strawberry.input(description="Turn automatic renewal on or off.")
class SetAutoRenewInput:
    subscription_id: strawberry.ID = strawberry.field(description="A paid subscription in force.")
    auto_renew: bool = strawberry.field(description="Renew automatically at the end of the term.")


@strawberry.input(description="Extend a subscription in force.")
class RenewSubscriptionInput:
    subscription_id: strawberry.ID = strawberry.field(description="A paid subscription in force.")
    term_months: int = strawberry.field(description="Months added to its end date, 1-36.")


@strawberry.input(description="Cancel a subscription.")
class CancelSubscriptionInput:
    subscription_id: strawberry.ID = strawberry.field(description="The subscription.")
    at_term_end: bool = strawberry.field(
        default=True,
        description="True: auto-renew is turned off and the subscription stays in force until "
        "its end date. False: it is CANCELLED now.",
    )


@strawberry.type(
    description="Result of a subscription change (completeOrderSetup, changeLicenseQuantity, "
    "setAutoRenew, renewSubscription, cancelSubscription)."
)
class SubscriptionChangePayload:
    subscription: Subscription | None = strawberry.field(
        description="The subscription after the change (null when refused)."
    )
    order: Order | None = strawberry.field(
        description="The order the change wrote; null when refused, or when the input asked "
        "for what already held (nothing was written)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")
