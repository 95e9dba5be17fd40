"""Admin management: create, update, deactivate, each within the caller's own permissions."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from db.queries import admin_management as adm
from db.queries import policies as pq
from graph import admin_ops as ops
from graph.auth import policy_admin as pa
from graph.auth.escalation import Guard
from graph.auth.permissions import Act, Obj
from graph.context import Context, Info
from graph.ids import to_global_id
from graph.mutations import Change, UserError, run_mutation, user_error
from graph.resolvers.policies import _target_admin
from graph.types.admins import (
    Admin,
    CreateAdminInput,
    DeactivateAdminInput,
    UpdateAdminInput,
)


@strawberry.type(description="Result of an admin mutation.")
class AdminPayload:
    admin: Admin | None = strawberry.field(description="The admin after the change.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


async def _guard(ctx: Context, session: Any) -> Guard:
    return await Guard.load(
        session, partner_id=ctx.principal.partner_id, admin_id=ctx.principal.admin_id
    )


async def _still_managed(ctx: Context, session: Any, admins: list[tuple[int, str]]) -> None:
    lines, _ = await pq.load_policies(session)
    if not pa.keeps_a_manager(lines, ctx.principal.partner_id, admins):
        raise user_error(
            "LAST_FULL_ADMIN",
            "This would leave the partner without an active admin able to manage admins "
            "and policies.",
        )


async def _create(c: Change, input: CreateAdminInput) -> AdminPayload:
    actor = ops.Actor(partner_id=c.scope.partner_id, admin_id=c.ctx.principal.admin_id)
    admin = await ops.create_admin(
        c.session,
        c.audit,
        actor,
        email=input.email,
        name=input.name,
        role=input.role,
        now=c.ctx.now,
    )
    return AdminPayload(admin=Admin.from_row(admin), user_errors=[])


async def _update(c: Change, input: UpdateAdminInput) -> AdminPayload:
    ctx, session, scope = c.ctx, c.session, c.scope
    await adm.lock_partner(session, partner_id=scope.partner_id)
    row = await _target_admin(ctx, session, input.id)
    guard = await _guard(ctx, session)
    guard.may_manage(row)  # a limited manager never touches a wider admin
    values: dict[str, Any] = {}
    if input.name is not None:
        values["name"] = ops.checked_name(input.name)
    if input.role is not None and input.role != row.role:
        # only `policy manage` changes roles, and never to a wider one than its own
        guard.require(Obj.POLICY, Act.MANAGE)
        await ops.known_role(session, scope.partner_id, input.role)
        guard.may_give(input.role)
        values["role"] = input.role
        admins = await adm.active_admin_roles(session, partner_id=scope.partner_id)
        await _still_managed(
            ctx, session, [(i, input.role if i == row.id else r) for i, r in admins]
        )
    if c.record_update("admin", to_global_id("Admin", row.id), row, values):
        await adm.update_admin(session, admin_id=row.id, values=values)
    updated = await adm.admin_row(session, partner_id=scope.partner_id, admin_id=row.id)
    return AdminPayload(admin=Admin.from_row(updated), user_errors=[])


async def _deactivate(c: Change, input: DeactivateAdminInput) -> AdminPayload:
    ctx, session, scope = c.ctx, c.session, c.scope
    await adm.lock_partner(session, partner_id=scope.partner_id)
    row = await _target_admin(ctx, session, input.id)
    (await _guard(ctx, session)).may_manage(row)
    if not row.active:
        raise user_error("ALREADY_DEACTIVATED", "The admin is already inactive.", "id")
    admins = await adm.active_admin_roles(session, partner_id=scope.partner_id)
    await _still_managed(ctx, session, [(i, r) for i, r in admins if i != row.id])
    await adm.deactivate_admin(session, admin_id=row.id, now=ctx.now)
    c.record(
        "admin", to_global_id("Admin", row.id), before={"active": True}, after={"active": False}
    )
    updated = await adm.admin_row(session, partner_id=scope.partner_id, admin_id=row.id)
    return AdminPayload(admin=Admin.from_row(updated), user_errors=[])


def _refused(errors: list[UserError]) -> AdminPayload:
    return AdminPayload(admin=None, user_errors=errors)


@strawberry.type
class AdminMutations:
    @strawberry.mutation(description="Create an administrator of the partner.")
    async def create_admin(
        self,
        info: Info,
        input: Annotated[
            CreateAdminInput,
            strawberry.argument(
                description="The new administrator: sign-in email, name and primary role."
            ),
        ],
    ) -> AdminPayload:
        return await run_mutation(
            info.context,
            operation="createAdmin",
            obj=Obj.ADMIN,
            act=Act.MANAGE,
            work=lambda c: _create(c, input),
            refused=_refused,
        )

    @strawberry.mutation(description="Rename an administrator or change its primary role.")
    async def update_admin(
        self,
        info: Info,
        input: Annotated[
            UpdateAdminInput,
            strawberry.argument(
                description="The administrator and its new name, primary role, or both."
            ),
        ],
    ) -> AdminPayload:
        return await run_mutation(
            info.context,
            operation="updateAdmin",
            obj=Obj.ADMIN,
            act=Act.MANAGE,
            work=lambda c: _update(c, input),
            refused=_refused,
        )

    @strawberry.mutation(description="Deactivate an administrator; its tokens stop at once.")
    async def deactivate_admin(
        self,
        info: Info,
        input: Annotated[
            DeactivateAdminInput,
            strawberry.argument(description="The administrator to deactivate, by its `id`."),
        ],
    ) -> AdminPayload:
        return await run_mutation(
            info.context,
            operation="deactivateAdmin",
            obj=Obj.ADMIN,
            act=Act.MANAGE,
            work=lambda c: _deactivate(c, input),
            refused=_refused,
        )
