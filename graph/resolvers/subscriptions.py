"""Subscription management from Partner Hub: order set-up, licence quantities, auto-renew,
renewal and cancellation (issue 19). Each needs the caller's ``subscription write`` rule (by
default FULL_ADMIN on every customer, PARTNER_ADMIN on its own); the work is in
``graph.resolvers.subscription_changes``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry

from graph.auth.permissions import Act, Obj
from graph.context import Info
from graph.mutations import Change, UserError, run_mutation
from graph.resolvers import subscription_changes as changes
from graph.types.subscriptions import (
    CancelSubscriptionInput,
    ChangeLicenseQuantityInput,
    CompleteOrderSetupInput,
    RenewSubscriptionInput,
    SetAutoRenewInput,
    SubscriptionChangePayload,
)


def _refused(errors: list[UserError]) -> SubscriptionChangePayload:
    return SubscriptionChangePayload(subscription=None, order=None, user_errors=errors)


async def _run(
    info: Info,
    operation: str,
    work: Callable[[Change], Awaitable[SubscriptionChangePayload]],
    validate: Callable[[], Any] | None = None,
) -> SubscriptionChangePayload:
    return await run_mutation(
        info.context,
        operation=operation,
        obj=Obj.SUBSCRIPTION,
        act=Act.WRITE,
        validate=validate,
        work=work,
        refused=_refused,
    )


NOT_FOUND = (
    " NOT_FOUND: no subscription of that id that the caller may change (unknown, another "
    "partner's and out-of-scope ones answer alike); INVALID_ID: not a Subscription id."
)


@strawberry.type
class SubscriptionMutations:
    @strawberry.mutation(
        description="Set up a PROVISIONING subscription: it becomes ACTIVE (its start moves to "
        "now if it was later), its orders in progress are completed, an ORDER_SETUP order is "
        "written and, when it has no invoice yet, its first year (or shorter term) is invoiced. "
        "The customer leaves READY_FOR_ORDER_SETUP unless another subscription is still "
        "provisioning. Codes: SUBSCRIPTION_NOT_PROVISIONING." + NOT_FOUND
    )
    async def complete_order_setup(
        self,
        info: Info,
        input: Annotated[
            CompleteOrderSetupInput,
            strawberry.argument(
                description="The PROVISIONING subscription to set up (its global id)."
            ),
        ],
    ) -> SubscriptionChangePayload:
        return await _run(
            info, "completeOrderSetup", lambda c: changes.complete_order_setup(c, input)
        )

    @strawberry.mutation(
        description="Set the purchased count of one product's licence line on a paid "
        "subscription in force. An increase takes effect at once and invoices the added "
        "licences for the rest of the term (ADD_LICENSES); a decrease (REMOVE_LICENSES) is not "
        "credited and cannot go below the line's assigned count. Raising purchased to the "
        "assigned count clears the overage (LICENSE_OVERAGE, overLicenseLimit) at once. "
        "Codes: INVALID_LICENSE_COUNT (not 1-100,000), PRODUCT_NOT_ON_SUBSCRIPTION, "
        "LICENSE_TYPE_REQUIRED (several lines of the product: give licenseType), "
        "LICENSE_COUNT_BELOW_ASSIGNED, SUBSCRIPTION_NOT_ACTIVE, LICENSE_LINE_CHANGED (the line "
        "was changed by another writer meanwhile: retry), INVOICE_AMOUNT_TOO_LARGE (one "
        "invoice holds at most 2,147,483,647 cents)." + NOT_FOUND
    )
    async def change_license_quantity(
        self,
        info: Info,
        input: Annotated[
            ChangeLicenseQuantityInput,
            strawberry.argument(
                description=(
                    "The subscription (global id), the product of the line, its new "
                    "purchased count 1-100,000 and, when the product has several lines, the "
                    "licence type."
                )
            ),
        ],
    ) -> SubscriptionChangePayload:
        return await _run(
            info,
            "changeLicenseQuantity",
            lambda c: changes.change_license_quantity(c, input),
            lambda: changes.check_license_quantity(input),
        )

    @strawberry.mutation(
        description="Turn automatic renewal of a paid subscription in force on (renewalDate "
        "becomes its end date) or off (renewalDate is cleared: the customer can become "
        "EXPIRING_SOON and moves from about-to-renew to about-to-expire). Codes: "
        "SUBSCRIPTION_NOT_ACTIVE, SUBSCRIPTION_NOT_RENEWABLE (a trial)." + NOT_FOUND
    )
    async def set_auto_renew(
        self,
        info: Info,
        input: Annotated[
            SetAutoRenewInput,
            strawberry.argument(
                description="The subscription (global id) and whether it renews automatically."
            ),
        ],
    ) -> SubscriptionChangePayload:
        return await _run(info, "setAutoRenew", lambda c: changes.set_auto_renew(c, input))

    @strawberry.mutation(
        description="Extend the end date of a paid subscription in force by 1-36 months, "
        "with a RENEWAL order and an invoice for the added months. Codes: INVALID_TERM, "
        "INVOICE_AMOUNT_TOO_LARGE, "
        "SUBSCRIPTION_NOT_RENEWABLE (a trial, an expired, cancelled, provisioning or suspended "
        "one, or one that has ended)." + NOT_FOUND
    )
    async def renew_subscription(
        self,
        info: Info,
        input: Annotated[
            RenewSubscriptionInput,
            strawberry.argument(
                description=(
                    "The subscription (global id) and the months to add to its end date, 1-36."
                )
            ),
        ],
    ) -> SubscriptionChangePayload:
        return await _run(
            info,
            "renewSubscription",
            lambda c: changes.renew_subscription(c, input),
            lambda: changes.check_renewal(input),
        )

    @strawberry.mutation(
        description="Cancel a subscription. atTermEnd (the default) turns auto-renew off and "
        "leaves it in force until its end date (CANCELLATION_AT_TERM_END; nothing to do when "
        "it does not auto-renew); atTermEnd: false makes it CANCELLED now (CANCELLATION; a "
        "PROVISIONING one's orders in progress are cancelled). Codes: SUBSCRIPTION_NOT_ACTIVE "
        "(at term end: not in force; now: already ended)." + NOT_FOUND
    )
    async def cancel_subscription(
        self,
        info: Info,
        input: Annotated[
            CancelSubscriptionInput,
            strawberry.argument(
                description=(
                    "The subscription (global id) and whether it ends at its term end (the "
                    "default) or now."
                )
            ),
        ],
    ) -> SubscriptionChangePayload:
        return await _run(
            info, "cancelSubscription", lambda c: changes.cancel_subscription(c, input)
        )
