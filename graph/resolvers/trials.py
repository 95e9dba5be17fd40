"""Trials: start (existing or new customer), extend in 30-day steps, convert to paid."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import strawberry

from db.enums import SubscriptionKind, SubscriptionState
from db.queries import customer_children as kids
from db.queries import customers as cq
from db.queries import trials as tq
from db.queries.writes import lock_customers
from db.scope import Scope
from db.status import StatusRules
from graph.auth.permissions import Act, Obj
from graph.context import Context, Info
from graph.ids import to_global_id
from graph.mutations import EMAIL, Change, input_pk, run_mutation, user_error
from graph.resolvers.subscription_changes import invoice_first_year
from graph.types.customers import Customer, Subscription
from graph.types.trials import (
    ConvertTrialInput,
    ConvertTrialPayload,
    ExtendTrialInput,
    StartTrialInput,
    TrialPayload,
)

MAX_TRIAL_DAYS = 90
EXTENSION_STEP = 30


def _rules(ctx: Context) -> StatusRules:
    return StatusRules(ctx.settings.expiring_soon_days, ctx.settings.inactivity_days)


def _trial_products(input: StartTrialInput) -> list[tuple[str, int]]:
    if not input.products:
        raise user_error("PRODUCTS_REQUIRED", "A trial needs at least one product.", "products")
    seen: set[str] = set()
    products: list[tuple[str, int]] = []
    for i, item in enumerate(input.products):
        if item.product.value in seen:
            raise user_error(
                "DUPLICATE_PRODUCT", "Each product appears once.", "products", str(i), "product"
            )
        if not 1 <= item.licenses <= 1000:
            raise user_error(
                "INVALID_LICENSE_COUNT",
                "Licenses per product are 1-1000.",
                "products",
                str(i),
                "licenses",
            )
        seen.add(item.product.value)
        products.append((item.product.value, item.licenses))
    return products


async def _visible_customer(session: Any, scope: Scope, pk: int, field: str) -> Any:
    rows = await cq.customers_by_ids(session, scope=scope, ids=[pk])
    if pk not in rows:
        raise user_error("NOT_FOUND", "No such customer.", field)
    return rows[pk]


async def _trial(session: Any, scope: Scope, raw_id: str, ctx: Context) -> Any:
    pk = input_pk(raw_id, "Subscription", "trialId")
    rows = await kids.subscriptions_by_ids(session, scope=scope, ids=[pk])
    if pk not in rows or rows[pk].kind != SubscriptionKind.TRIAL.value:
        raise user_error("NOT_FOUND", "No such trial.", "trialId")
    trial = rows[pk]
    in_force = trial.state == SubscriptionState.ACTIVE.value and (
        trial.start_date <= ctx.now < trial.end_date
    )
    if not in_force:
        raise user_error("TRIAL_NOT_ACTIVE", "The trial is not in force.", "trialId")
    return trial


async def _locked_trial(session: Any, scope: Scope, raw_id: str, ctx: Context) -> Any:
    """The trial in force, read again once its customer is locked: a concurrent extension or
    conversion that committed meanwhile is seen (else both convert it, or both extend it)."""
    trial = await _trial(session, scope, raw_id, ctx)
    await lock_customers(session, [trial.customer_id])
    return await _trial(session, scope, raw_id, ctx)


def _trial_audit(row: Any) -> dict[str, Any]:
    return {
        "subscriptionId": row.subscription_id,
        "kind": row.kind,
        "state": row.state,
        "startDate": row.start_date,
        "endDate": row.end_date,
    }


def _check_start(input: StartTrialInput) -> None:
    if (input.customer_id is None) == (input.new_customer is None):
        raise user_error("CUSTOMER_REQUIRED", "Give exactly one of customerId and newCustomer.")
    _trial_products(input)
    if not 1 <= input.duration_days <= MAX_TRIAL_DAYS:
        raise user_error(
            "TRIAL_DURATION_OUT_OF_RANGE",
            f"A trial lasts 1-{MAX_TRIAL_DAYS} days.",
            "durationDays",
        )
    new = input.new_customer
    if new is not None:
        name = new.name.strip()
        # The case-insensitive key must fit as well ("İ" lower-cases to two characters).
        if not 1 <= len(name) <= 200 or len(name.lower()) > 200:
            raise user_error(
                "INVALID_CUSTOMER_NAME",
                "A customer name is 1-200 characters.",
                "newCustomer",
                "name",
            )
        if not EMAIL.match(new.admin_email.strip()):
            raise user_error("INVALID_EMAIL", "Not a valid email.", "newCustomer", "adminEmail")


async def _start(c: Change, input: StartTrialInput) -> TrialPayload:
    ctx, scope, session = c.ctx, c.scope, c.session
    products = _trial_products(input)
    new = input.new_customer
    if input.customer_id is not None:
        pk = input_pk(input.customer_id, "Customer", "customerId")
        await lock_customers(session, [pk])
        customer = await _visible_customer(session, scope, pk, "customerId")
        busy = await tq.products_in_trial(
            session, scope=scope, customer_id=pk, products=[p for p, _ in products], now=ctx.now
        )
        if busy:
            raise user_error(
                "TRIAL_ALREADY_ACTIVE",
                f"A trial is already in force for {', '.join(busy)}.",
                "products",
            )
    else:
        assert new is not None
        pk = await tq.create_customer(
            session,
            partner_id=scope.partner_id,
            name=new.name.strip(),
            admin_id=ctx.principal.admin_id,
            now=ctx.now,
        )
        customer = (await cq.customers_by_ids(session, scope=scope, ids=[pk]))[pk]
        c.record(
            "customer",
            to_global_id("Customer", pk),
            after={"name": customer.name, "adminEmail": new.admin_email.strip()},
        )
    trial = await tq.start_trial(
        session,
        partner_id=scope.partner_id,
        customer_id=pk,
        products=products,
        duration_days=input.duration_days,
        admin_id=ctx.principal.admin_id,
        now=ctx.now,
        rules=_rules(ctx),
    )
    c.record(
        "subscription",
        to_global_id("Subscription", trial.id),
        after={**_trial_audit(trial), "products": dict(products)},
    )
    return TrialPayload(
        trial=Subscription.from_row(trial), customer=Customer.from_row(customer), user_errors=[]
    )


def _check_extension(input: ExtendTrialInput) -> None:
    if input.days <= 0 or input.days % EXTENSION_STEP:
        raise user_error(
            "TRIAL_EXTENSION_INVALID",
            f"Trials are extended in steps of {EXTENSION_STEP} days.",
            "days",
        )


async def _extend(c: Change, input: ExtendTrialInput) -> TrialPayload:
    ctx, scope, session = c.ctx, c.scope, c.session
    trial = await _locked_trial(session, scope, input.trial_id, ctx)
    latest = ctx.now + timedelta(days=MAX_TRIAL_DAYS)
    # A trial in force ends after now, so more than 90 days never fits (checked first: a huge
    # number of days would overflow the date arithmetic).
    if input.days > MAX_TRIAL_DAYS or trial.end_date + timedelta(input.days) > latest:
        raise user_error(
            "TRIAL_EXTENSION_TOO_LONG",
            f"A trial cannot end more than {MAX_TRIAL_DAYS} days from now.",
            "days",
        )
    new_end = trial.end_date + timedelta(days=input.days)
    updated = await tq.extend_trial(
        session, scope=scope, trial=trial, new_end=new_end, now=ctx.now, rules=_rules(ctx)
    )
    c.record(
        "subscription",
        to_global_id("Subscription", trial.id),
        before={"endDate": trial.end_date},
        after={"endDate": updated.end_date},
    )
    customers = await cq.customers_by_ids(session, scope=scope, ids=[trial.customer_id])
    return TrialPayload(
        trial=Subscription.from_row(updated),
        customer=Customer.from_row(customers[trial.customer_id]),
        user_errors=[],
    )


def _check_conversion(input: ConvertTrialInput) -> None:
    if not 1 <= input.term_months <= 60:
        raise user_error("INVALID_TERM", "A term is 1-60 months.", "termMonths")


async def _convert(c: Change, input: ConvertTrialInput) -> ConvertTrialPayload:
    ctx, scope, session = c.ctx, c.scope, c.session
    trial = await _locked_trial(session, scope, input.trial_id, ctx)
    ended, paid = await tq.convert_trial(
        session,
        scope=scope,
        trial=trial,
        auto_renew=input.auto_renew,
        term_months=input.term_months,
        admin_id=ctx.principal.admin_id,
        now=ctx.now,
        rules=_rules(ctx),
    )
    # The paid subscription is billed from its first day, as one set up from an order is.
    invoice, _ = await invoice_first_year(c, paid, "termMonths")
    c.record(
        "subscription",
        to_global_id("Subscription", trial.id),
        before=_trial_audit(trial),
        after={
            "trial": _trial_audit(ended),
            "subscription": _trial_audit(paid),
            "invoiceNumber": invoice,
        },
    )
    return ConvertTrialPayload(
        trial=Subscription.from_row(ended), subscription=Subscription.from_row(paid), user_errors=[]
    )


@strawberry.type
class TrialMutations:
    @strawberry.mutation(
        description="Start a trial for an existing customer or a new one (the caller is then "
        "assigned to it). Licenses 1-1000 per product; duration 1-90 days; a product cannot "
        "have two trials in force for one customer."
    )
    async def start_trial(
        self,
        info: Info,
        input: Annotated[
            StartTrialInput,
            strawberry.argument(
                description="An existing customer or a new one, the products with their license "
                "counts, and the duration in days."
            ),
        ],
    ) -> TrialPayload:
        return await run_mutation(
            info.context,
            operation="startTrial",
            obj=Obj.TRIAL,
            act=Act.WRITE,
            validate=lambda: _check_start(input),
            work=lambda c: _start(c, input),
            refused=lambda errors: TrialPayload(trial=None, customer=None, user_errors=errors),
        )

    @strawberry.mutation(
        description="Extend a trial in force by a multiple of 30 days, ending at most 90 days "
        "after now."
    )
    async def extend_trial(
        self,
        info: Info,
        input: Annotated[
            ExtendTrialInput,
            strawberry.argument(
                description="The trial in force and the days to add (a multiple of 30)."
            ),
        ],
    ) -> TrialPayload:
        return await run_mutation(
            info.context,
            operation="extendTrial",
            obj=Obj.TRIAL,
            act=Act.WRITE,
            validate=lambda: _check_extension(input),
            work=lambda c: _extend(c, input),
            refused=lambda errors: TrialPayload(trial=None, customer=None, user_errors=errors),
        )

    @strawberry.mutation(
        description="Convert a trial in force into a paid subscription with the same licenses: "
        "the trial ends now and a PAID subscription of termMonths starts."
    )
    async def convert_trial(
        self,
        info: Info,
        input: Annotated[
            ConvertTrialInput,
            strawberry.argument(description="The trial in force and the paid term in months."),
        ],
    ) -> ConvertTrialPayload:
        return await run_mutation(
            info.context,
            operation="convertTrial",
            obj=Obj.SUBSCRIPTION,
            act=Act.WRITE,
            validate=lambda: _check_conversion(input),
            work=lambda c: _convert(c, input),
            refused=lambda errors: ConvertTrialPayload(
                trial=None, subscription=None, user_errors=errors
            ),
        )
