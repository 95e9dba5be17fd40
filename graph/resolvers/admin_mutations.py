"""Admin management (full admins): create, update, deactivate."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy.exc import IntegrityError

from db.queries import admin_management as adm
from db.queries import policies as pq
from db.queries.admins import create_admin
from graph.auth import policy_admin as pa
from graph.auth.permissions import BUILT_IN_ROLES, Act, Obj, require
from graph.context import Context, Info
from graph.ids import to_global_id
from graph.mutations import EMAIL, UserError, UserErrors, transaction, user_error
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


def _public(row: Any) -> dict[str, Any]:
    return {"email": row.email, "name": row.name, "role": row.role, "active": row.active}


async def _known_role(ctx: Context, session: Any, role: str) -> None:
    custom = await pq.custom_roles(session, partner_id=ctx.principal.partner_id)
    if role not in BUILT_IN_ROLES and role not in {r.name for r in custom}:
        raise user_error("UNKNOWN_ROLE", f"No role named {role!r}.", "role")


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
        email = input.email.strip().lower()
        name = input.name.strip()
        try:
            if not EMAIL.match(email) or len(email) > 254:
                raise user_error("INVALID_EMAIL", "Not a valid email address.", "email")
            if not 1 <= len(name) <= 200:
                raise user_error("INVALID_NAME", "A name is 1-200 characters.", "name")
            try:
                async with transaction(ctx) as (session, audit):
                    await adm.lock_partner(session, partner_id=ctx.principal.partner_id)
                    await _known_role(ctx, session, input.role)
                    if await adm.email_taken(session, email=email):
                        raise user_error("EMAIL_TAKEN", "An admin with this email exists.", "email")
                    admin = await create_admin(
                        session,
                        partner_id=ctx.principal.partner_id,
                        email=email,
                        name=name,
                        role=input.role,
                        now=ctx.now,
                    )
                    assert admin.id is not None
                    audit.record(
                        "createAdmin",
                        "admin",
                        to_global_id("Admin", admin.id),
                        after=_public(admin),
                    )
            except IntegrityError:
                # the email was taken (by any partner) between the check and the insert
                raise user_error(
                    "EMAIL_TAKEN", "An admin with this email exists.", "email"
                ) from None
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
                values: dict[str, Any] = {}
                if input.name is not None:
                    name = input.name.strip()
                    if not 1 <= len(name) <= 200:
                        raise user_error("INVALID_NAME", "A name is 1-200 characters.", "name")
                    values["name"] = name
                if input.role is not None and input.role != row.role:
                    await _known_role(ctx, session, input.role)
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
