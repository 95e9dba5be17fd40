"""Assigning partner administrators to customers (full admins)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from db.queries import admins as aq
from db.queries import assignments as asq
from db.queries import customers as cq
from db.queries.writes import lock_customers
from graph.auth.permissions import Act, Obj, scope_or_none
from graph.context import Context, Info
from graph.ids import to_global_id
from graph.mutations import Change, input_pk, run_mutation, user_error
from graph.types.customers import Customer
from graph.types.trials import AssignmentInput, AssignmentPayload


async def _change(c: Change, input: AssignmentInput, *, assign: bool) -> AssignmentPayload:
    ctx, scope, session = c.ctx, c.scope, c.session
    customer_pk = input_pk(input.customer_id, "Customer", "customerId")
    admin_pk = input_pk(input.admin_id, "Admin", "adminId")
    await lock_customers(session, [customer_pk])
    customers = await cq.customers_by_ids(session, scope=scope, ids=[customer_pk])
    # The parent's rule too: an assignment scope wider than the caller's customer read scope
    # would let it assign itself (or anyone) to customers it cannot see, widening its own view.
    seen = scope_or_none(ctx, Obj.CUSTOMER, Act.READ)
    if customer_pk in customers and seen is not None and seen.key != scope.key:
        customers = await cq.customers_by_ids(session, scope=seen, ids=[customer_pk])
    if customer_pk not in customers or seen is None:
        raise user_error("NOT_FOUND", "No such customer.", "customerId")
    admins: dict[int, Any] = await aq.admin_rows_by_ids(
        session, partner_id=scope.partner_id, ids=[admin_pk]
    )
    if admin_pk not in admins:
        raise user_error("NOT_FOUND", "No such admin.", "adminId")
    assigned = await asq.is_assigned(
        session, scope=scope, customer_id=customer_pk, admin_id=admin_pk
    )
    if assign:
        if assigned:
            raise user_error("ALREADY_ASSIGNED", "The admin is already assigned.")
        if not admins[admin_pk].active:
            raise user_error("ADMIN_INACTIVE", "The admin is deactivated.", "adminId")
        await asq.assign(
            session,
            partner_id=scope.partner_id,
            customer_id=customer_pk,
            admin_id=admin_pk,
            by_admin_id=ctx.principal.admin_id,
            now=ctx.now,
        )
    else:
        if not assigned:
            raise user_error("NOT_ASSIGNED", "The admin is not assigned to it.")
        await asq.unassign(session, scope=scope, customer_id=customer_pk, admin_id=admin_pk)
    record = {"adminId": to_global_id("Admin", admin_pk)}
    c.record(
        "customer",
        to_global_id("Customer", customer_pk),
        before=None if assign else record,
        after=record if assign else None,
    )
    return AssignmentPayload(customer=Customer.from_row(customers[customer_pk]), user_errors=[])


async def _run(ctx: Context, input: AssignmentInput, *, assign: bool) -> AssignmentPayload:
    return await run_mutation(
        ctx,
        operation="assignPartnerAdmin" if assign else "unassignPartnerAdmin",
        obj=Obj.ASSIGNMENT,
        act=Act.MANAGE,
        work=lambda c: _change(c, input, assign=assign),
        refused=lambda errors: AssignmentPayload(customer=None, user_errors=errors),
    )


@strawberry.type
class AssignmentMutations:
    @strawberry.mutation(description="Assign a partner administrator to a customer.")
    async def assign_partner_admin(
        self,
        info: Info,
        input: Annotated[
            AssignmentInput,
            strawberry.argument(description="The customer and the partner administrator."),
        ],
    ) -> AssignmentPayload:
        return await _run(info.context, input, assign=True)

    @strawberry.mutation(description="Remove a partner administrator from a customer.")
    async def unassign_partner_admin(
        self,
        info: Info,
        input: Annotated[
            AssignmentInput,
            strawberry.argument(description="The customer and the partner administrator."),
        ],
    ) -> AssignmentPayload:
        return await _run(info.context, input, assign=False)
