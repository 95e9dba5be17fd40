"""Admin management: create, update, deactivate, each within the caller's own permissions."""

from __future__ import annotations

from typing import Any

import strawberry

from db.queries import admin_management as adm
from db.queries import policies as pq
from graph import admin_ops as ops
from graph.auth import policy_admin as pa
from graph.auth.escalation import Guard
from graph.auth.permissions import Act, Obj, require
from graph.context import Context, Info
from graph.ids import to_global_id
from graph.mutations import UserError, UserErrors, transaction, user_error
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


@strawberry.type
class AdminMutations:
    @strawberry.mutation(description="Create an administrator of the partner.")
    async def create_admin(self, info: Info, input: CreateAdminInput) -> AdminPayload:
        ctx = info.context
        require(ctx, Obj.ADMIN, Act.MANAGE)
        actor = ops.Actor(partner_id=ctx.principal.partner_id, admin_id=ctx.principal.admin_id)
        try:
            async with transaction(ctx) as (session, audit):
                admin = await ops.create_admin(
                    session,
                    audit,
                    actor,
                    email=input.email,
                    name=input.name,
                    role=input.role,
                    now=ctx.now,
                )
        except UserErrors as e:
            return AdminPayload(admin=None, user_errors=e.errors)
        return AdminPayload(admin=Admin.from_row(admin), user_errors=[])

    @strawberry.mutation(description="Rename an administrator or change its primary role.")
    async def update_admin(self, info: Info, input: UpdateAdminInput) -> AdminPayload:
        ctx = info.context
        require(ctx, Obj.ADMIN, Act.MANAGE)
        try:
            async with transaction(ctx) as (session, audit):
                await adm.lock_partner(session, partner_id=ctx.principal.partner_id)
                row = await _target_admin(ctx, session, input.id)
                guard = await _guard(ctx, session)
                guard.may_manage(row)  # a limited manager never touches a wider admin
                values: dict[str, Any] = {}
                if input.name is not None:
                    values["name"] = ops.checked_name(input.name)
                if input.role is not None and input.role != row.role:
                    # only `policy manage` changes roles, and never to a wider one than its own
                    guard.require(Obj.POLICY, Act.MANAGE)
                    await ops.known_role(session, ctx.principal.partner_id, input.role)
                    guard.may_give(input.role)
                    values["role"] = input.role
                    admins = await adm.active_admin_roles(
                        session, partner_id=ctx.principal.partner_id
                    )
                    await _still_managed(
                        ctx, session, [(i, input.role if i == row.id else r) for i, r in admins]
                    )
                if values:
                    await adm.update_admin(session, admin_id=row.id, values=values)
                    audit.record(
                        "updateAdmin",
                        "admin",
                        to_global_id("Admin", row.id),
                        before={k: getattr(row, k) for k in values},
                        after=values,
                    )
                updated = await adm.admin_row(
                    session, partner_id=ctx.principal.partner_id, admin_id=row.id
                )
        except UserErrors as e:
            return AdminPayload(admin=None, user_errors=e.errors)
        return AdminPayload(admin=Admin.from_row(updated), user_errors=[])

    @strawberry.mutation(description="Deactivate an administrator; its tokens stop at once.")
    async def deactivate_admin(self, info: Info, input: DeactivateAdminInput) -> AdminPayload:
        ctx = info.context
        require(ctx, Obj.ADMIN, Act.MANAGE)
        try:
            async with transaction(ctx) as (session, audit):
                await adm.lock_partner(session, partner_id=ctx.principal.partner_id)
                row = await _target_admin(ctx, session, input.id)
                (await _guard(ctx, session)).may_manage(row)
                if not row.active:
                    raise user_error("ALREADY_DEACTIVATED", "The admin is already inactive.", "id")
                admins = await adm.active_admin_roles(session, partner_id=ctx.principal.partner_id)
                await _still_managed(ctx, session, [(i, r) for i, r in admins if i != row.id])
                await adm.deactivate_admin(session, admin_id=row.id, now=ctx.now)
                audit.record(
                    "deactivateAdmin",
                    "admin",
                    to_global_id("Admin", row.id),
                    before={"active": True},
                    after={"active": False},
                )
                updated = await adm.admin_row(
                    session, partner_id=ctx.principal.partner_id, admin_id=row.id
                )
        except UserErrors as e:
            return AdminPayload(admin=None, user_errors=e.errors)
        return AdminPayload(admin=Admin.from_row(updated), user_errors=[])
