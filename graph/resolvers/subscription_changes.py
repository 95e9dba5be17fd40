"""The work of each subscription change, inside ``run_mutation``'s transaction.

Each reads the subscription through the caller's ``subscription write`` scope with its customer
locked (``locked_subscription``), decides, writes the subscription or licence line, one order
(and an invoice when the change costs something), refreshes the customer's status spans and
records the audit entry, all in the one transaction. A subscription the caller may not change,
another partner's and an unknown one are the same ``NOT_FOUND``. Asking for what already holds
writes nothing (no order, no audit entry) and answers the subscription with ``order: null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from db import billing
from db.enums import OrderAction, OrderStatus, SubscriptionKind, SubscriptionState
from db.queries import orders
from db.queries import subscription_changes as sc
from db.queries.trials import add_months
from db.status import StatusRules
from graph.ids import to_global_id
from graph.mutations import Change, input_pk, user_error
from graph.types.customers import Order, Subscription
from graph.types.subscriptions import (
    CancelSubscriptionInput,
    ChangeLicenseQuantityInput,
    CompleteOrderSetupInput,
    RenewSubscriptionInput,
    SetAutoRenewInput,
    SubscriptionChangePayload,
)

MAX_LICENSES = 100_000
MAX_RENEWAL_MONTHS = 36
MAX_INVOICE_CENTS = 2**31 - 1
FIELD = "subscriptionId"


def _rules(c: Change) -> StatusRules:
    return StatusRules(c.ctx.settings.expiring_soon_days, c.ctx.settings.inactivity_days)


async def _subscription(c: Change, raw_id: str) -> Any:
    pk = input_pk(raw_id, "Subscription", FIELD)
    sub = await sc.locked_subscription(c.session, scope=c.scope, pk=pk)
    if sub is None:
        raise user_error("NOT_FOUND", "No such subscription.", FIELD)
    return sub


def _view(row: Any) -> dict[str, Any]:
    return {
        "state": row.state,
        "startDate": row.start_date,
        "endDate": row.end_date,
        "autoRenew": bool(row.auto_renew),
        "renewalDate": row.renewal_date,
    }


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _payload(row: Any, order: Any | None) -> SubscriptionChangePayload:
    return SubscriptionChangePayload(
        subscription=Subscription.from_row(row),
        order=Order.from_row(order) if order is not None else None,
        user_errors=[],
    )


async def _finish(
    c: Change,
    before: Any,
    after: Any,
    action: OrderAction,
    description: str,
    **audited: Any,
) -> SubscriptionChangePayload:
    """The order of a change, the customer's statuses, the audit entry, the payload."""
    order = await orders.place_order(
        c.session,
        partner_id=c.scope.partner_id,
        subscription_id=before.id,
        action=action,
        description=description,
        now=c.ctx.now,
    )
    await sc.refresh(
        c.session,
        scope=c.scope,
        subscription=before,
        rules=_rules(c),
        now=c.ctx.now,
        change=action.value,
    )
    c.record(
        "subscription",
        to_global_id("Subscription", before.id),
        before=_view(before),
        after={**_view(after), "orderNumber": order.order_number, **audited},
    )
    return _payload(after, order)


async def _invoice(c: Change, sub: Any, amount_cents: int, field: str) -> str:
    if amount_cents > MAX_INVOICE_CENTS:
        # Invoice.amountCents is a GraphQL Int (and a 32-bit column): bill it in parts.
        raise user_error(
            "INVOICE_AMOUNT_TOO_LARGE",
            f"The invoice would be {amount_cents:,} cents, above the {MAX_INVOICE_CENTS:,} one "
            "invoice may hold: make the change in smaller steps.",
            field,
        )
    currency = await orders.billing_currency(
        c.session,
        partner_id=c.scope.partner_id,
        subscription_id=sub.id,
        default=c.ctx.settings.billing_currency,
    )
    return await orders.issue_invoice(
        c.session,
        partner_id=c.scope.partner_id,
        subscription_id=sub.id,
        amount_cents=amount_cents,
        currency=currency,
        now=c.ctx.now,
    )


async def invoice_first_year(c: Change, sub: Any, field: str) -> tuple[str, int]:
    """Invoice a new subscription a year in advance (or its whole term when shorter), like
    every subscription: the invoice number and the months billed."""
    months = min(sub.term_months or 12, 12)
    return await _invoice(c, sub, await _term_cents(c, sub, months), field), months


async def _term_cents(c: Change, sub: Any, months: int) -> int:
    lines = await sc.license_lines(c.session, scope=c.scope, subscription=sub)
    prices = c.ctx.settings.license_prices_cents
    return billing.term_cents([(ln.product, ln.purchased) for ln in lines], prices, months)


# --- completeOrderSetup ----------------------------------------------------------------------


async def complete_order_setup(
    c: Change, input: CompleteOrderSetupInput
) -> SubscriptionChangePayload:
    sub = await _subscription(c, input.subscription_id)
    if sub.state != SubscriptionState.PROVISIONING:
        raise user_error(
            "SUBSCRIPTION_NOT_PROVISIONING",
            f"The subscription is {sub.state}: only a PROVISIONING one is set up.",
            FIELD,
        )
    now = c.ctx.now
    start = min(sub.start_date, now)
    after = await sc.update_subscription(
        c.session,
        scope=c.scope,
        subscription=sub,
        state=SubscriptionState.ACTIVE.value,
        start_date=start,
        renewal_date=sub.end_date if sub.auto_renew else None,
    )
    await orders.settle_orders(
        c.session,
        partner_id=c.scope.partner_id,
        subscription_id=sub.id,
        status=OrderStatus.COMPLETED,
    )
    text = f"Order for {sub.subscription_id} set up: active from {_day(start)}"
    invoice = None
    if not await orders.has_invoice(
        c.session, partner_id=c.scope.partner_id, subscription_id=sub.id
    ):
        invoice, months = await invoice_first_year(c, sub, FIELD)
        text += f", invoice {invoice} for {months} months"
    return await _finish(c, sub, after, OrderAction.ORDER_SETUP, text, invoiceNumber=invoice)


# --- changeLicenseQuantity -------------------------------------------------------------------


def check_license_quantity(input: ChangeLicenseQuantityInput) -> None:
    if not 1 <= input.purchased <= MAX_LICENSES:
        raise user_error(
            "INVALID_LICENSE_COUNT",
            f"A licence line holds 1-{MAX_LICENSES:,} purchased licences.",
            "purchased",
        )


async def _line(c: Change, sub: Any, input: ChangeLicenseQuantityInput) -> Any:
    product = input.product.value
    lines = await sc.license_lines(c.session, scope=c.scope, subscription=sub)
    lines = [ln for ln in lines if ln.product == product]
    if input.license_type is not None:
        lines = [ln for ln in lines if ln.license_type == input.license_type]
    if not lines:
        of_type = f" of type {input.license_type!r}" if input.license_type is not None else ""
        raise user_error(
            "PRODUCT_NOT_ON_SUBSCRIPTION",
            f"The subscription has no {product} licence line{of_type}.",
            "product" if input.license_type is None else "licenseType",
        )
    if len(lines) > 1:
        types = ", ".join(ln.license_type for ln in lines)
        raise user_error(
            "LICENSE_TYPE_REQUIRED",
            f"The subscription has {len(lines)} {product} lines ({types}): name one.",
            "licenseType",
        )
    return lines[0]


async def change_license_quantity(
    c: Change, input: ChangeLicenseQuantityInput
) -> SubscriptionChangePayload:
    sub = await _subscription(c, input.subscription_id)
    now = c.ctx.now
    if not sc.paid_in_force(sub, now):
        raise user_error(
            "SUBSCRIPTION_NOT_ACTIVE",
            "Licences change only on a paid subscription in force (ACTIVE, started, not ended).",
            FIELD,
        )
    line = await _line(c, sub, input)
    old, new = line.purchased, input.purchased
    if new == old:
        c.nothing_changed()
        return _payload(sub, None)
    if new < old and new < line.assigned:
        raise user_error(
            "LICENSE_COUNT_BELOW_ASSIGNED",
            f"{line.assigned} licences of the line are assigned: it cannot go below that.",
            "purchased",
        )
    if not await sc.set_purchased(c.session, scope=c.scope, line=line, purchased=new):
        raise user_error(
            "LICENSE_LINE_CHANGED",
            "The licence line changed during this change: read it again and retry.",
            "purchased",
        )
    what = f"{abs(new - old)} x {line.product} {line.license_type}"
    audited: dict[str, Any] = {
        "product": line.product,
        "licenseType": line.license_type,
        "purchased": {"before": old, "after": new},
    }
    if new > old:
        price = c.ctx.settings.license_prices_cents[line.product]
        amount = billing.prorated_cents(new - old, price, now, sub.end_date)
        invoice = await _invoice(c, sub, amount, "purchased")
        text = (
            f"Added {what} to {sub.subscription_id} ({old} -> {new}); invoice {invoice} until "
            f"{_day(sub.end_date)}"
        )
        audited |= {"invoiceNumber": invoice, "amountCents": amount}
        return await _finish(c, sub, sub, OrderAction.ADD_LICENSES, text, **audited)
    text = f"Removed {what} from {sub.subscription_id} ({old} -> {new})"
    return await _finish(c, sub, sub, OrderAction.REMOVE_LICENSES, text, **audited)


# --- setAutoRenew ----------------------------------------------------------------------------


def _not_a_trial(sub: Any, doing: str) -> None:
    if sub.kind == SubscriptionKind.TRIAL:
        raise user_error(
            "SUBSCRIPTION_NOT_RENEWABLE",
            f"A trial does not renew: convert it to a paid subscription before {doing}.",
            FIELD,
        )


async def set_auto_renew(c: Change, input: SetAutoRenewInput) -> SubscriptionChangePayload:
    sub = await _subscription(c, input.subscription_id)
    _not_a_trial(sub, "changing its renewal")
    if not sc.in_force(sub, c.ctx.now):
        raise user_error(
            "SUBSCRIPTION_NOT_ACTIVE",
            "Auto-renew changes only on a subscription in force (ACTIVE, started, not ended).",
            FIELD,
        )
    if bool(sub.auto_renew) == input.auto_renew:
        c.nothing_changed()
        return _payload(sub, None)
    after = await sc.update_subscription(
        c.session,
        scope=c.scope,
        subscription=sub,
        auto_renew=input.auto_renew,
        renewal_date=sub.end_date if input.auto_renew else None,
    )
    if input.auto_renew:
        action = OrderAction.AUTO_RENEW_ON
        text = f"Auto-renew turned on for {sub.subscription_id}: renews on {_day(sub.end_date)}"
    else:
        action = OrderAction.AUTO_RENEW_OFF
        text = f"Auto-renew turned off for {sub.subscription_id}: ends on {_day(sub.end_date)}"
    return await _finish(c, sub, after, action, text)


# --- renewSubscription -----------------------------------------------------------------------


def check_renewal(input: RenewSubscriptionInput) -> None:
    if not 1 <= input.term_months <= MAX_RENEWAL_MONTHS:
        raise user_error(
            "INVALID_TERM", f"A renewal is 1-{MAX_RENEWAL_MONTHS} months.", "termMonths"
        )


async def renew_subscription(c: Change, input: RenewSubscriptionInput) -> SubscriptionChangePayload:
    sub = await _subscription(c, input.subscription_id)
    _not_a_trial(sub, "renewing it")
    if not sc.paid_in_force(sub, c.ctx.now):
        state = sub.state if sub.state != SubscriptionState.ACTIVE else "not in force"
        raise user_error(
            "SUBSCRIPTION_NOT_RENEWABLE",
            f"The subscription is {state}: only a paid subscription in force is renewed.",
            FIELD,
        )
    months = input.term_months
    end = add_months(sub.end_date, months)
    after = await sc.update_subscription(
        c.session,
        scope=c.scope,
        subscription=sub,
        end_date=end,
        renewal_date=end if sub.auto_renew else None,
    )
    amount = await _term_cents(c, sub, months)
    invoice = await _invoice(c, sub, amount, "termMonths")
    text = f"Renewed {sub.subscription_id} for {months} months, to {_day(end)}; invoice {invoice}"
    audited = {"termMonths": months, "invoiceNumber": invoice, "amountCents": amount}
    return await _finish(c, sub, after, OrderAction.RENEWAL, text, **audited)


# --- cancelSubscription ----------------------------------------------------------------------

_ENDED = (SubscriptionState.EXPIRED, SubscriptionState.CANCELLED)


async def cancel_subscription(
    c: Change, input: CancelSubscriptionInput
) -> SubscriptionChangePayload:
    sub = await _subscription(c, input.subscription_id)
    now = c.ctx.now
    if input.at_term_end:
        if not sc.in_force(sub, now):
            raise user_error(
                "SUBSCRIPTION_NOT_ACTIVE",
                f"The subscription is not in force ({sub.state}): cancel it at its term end only "
                "while in force, or now with atTermEnd: false.",
                FIELD,
            )
        if not sub.auto_renew:
            c.nothing_changed()  # it already ends with its term
            return _payload(sub, None)
        after = await sc.update_subscription(
            c.session, scope=c.scope, subscription=sub, auto_renew=False, renewal_date=None
        )
        end = _day(sub.end_date)
        text = f"{sub.subscription_id} cancelled at its term end: in force until {end}"
        return await _finish(c, sub, after, OrderAction.CANCELLATION_AT_TERM_END, text)
    if sub.state in _ENDED or sub.end_date <= now:
        raise user_error(
            "SUBSCRIPTION_NOT_ACTIVE",
            f"The subscription has already ended ({sub.state}).",
            FIELD,
        )
    after = await sc.update_subscription(
        c.session,
        scope=c.scope,
        subscription=sub,
        state=SubscriptionState.CANCELLED.value,
        end_date=max(now, sub.start_date),
        auto_renew=False,
        renewal_date=None,
    )
    await orders.settle_orders(
        c.session,
        partner_id=c.scope.partner_id,
        subscription_id=sub.id,
        status=OrderStatus.CANCELLED,
    )
    text = f"{sub.subscription_id} cancelled now (was to end on {_day(sub.end_date)})"
    return await _finish(c, sub, after, OrderAction.CANCELLATION, text)
