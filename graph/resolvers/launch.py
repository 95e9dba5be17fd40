"""Launching into an organization's admin console, and the partner's own-organization setup."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import SetupState
from db.queries import admins as aq
from db.queries import launch as lq
from db.queries.admins import Principal
from db.queries.own_rows import partner_row
from db.scope import Scope
from graph.auth.launch import LaunchClaims, new_jti, read_launch, sign_launch
from graph.auth.launch_rights import (
    CUSTOMER,
    PARTNER,
    RIGHTS,
    launch_scope,
    may_launch,
    principal_may_launch,
)
from graph.auth.permissions import Act, Obj
from graph.context import Context, Info
from graph.errors import caller_gone
from graph.ids import to_global_id
from graph.mutations import Change, UserError, UserErrors, input_pk, run_mutation, user_error
from graph.types.admins import Partner
from graph.types.trials import (
    LaunchCustomerInput,
    LaunchGrant,
    LaunchPayload,
    PartnerSetupPayload,
    VerifyLaunchTokenInput,
    VerifyLaunchTokenPayload,
)


async def _issue(c: Change, kind: str, pk: int) -> tuple[str, datetime]:
    ctx = c.ctx
    expires = ctx.now + timedelta(seconds=ctx.settings.launch_token_seconds)
    claims = LaunchClaims(
        jti=new_jti(),
        admin_id=ctx.principal.admin_id,
        role=ctx.principal.role,
        organization_type=kind,
        organization_id=pk,
        expires_at=expires,
    )
    await lq.record_launch(
        c.session,
        jti=claims.jti,
        partner_id=c.scope.partner_id,
        admin_id=claims.admin_id,
        role=claims.role,
        organization_type=kind,
        organization_id=pk,
        issued_at=ctx.now,
        expires_at=expires,
    )
    type_name = "Customer" if kind == CUSTOMER else "Partner"
    c.record(
        type_name.lower(),
        to_global_id(type_name, pk),
        after={"role": claims.role, "expiresAt": expires, "jti": claims.jti},
    )
    token = sign_launch(ctx.services.secret, claims)
    return f"{ctx.settings.console_url}?{urlencode({'token': token})}", expires


def _invalid() -> UserErrors:
    """The one answer for a forged token, another partner's, or one whose admin lost access."""
    return user_error("LAUNCH_TOKEN_INVALID", "The launch token is not valid.", "token")


async def verify_launch_token(
    ctx: Context, session: AsyncSession, token: str
) -> LaunchGrant | UserErrors:
    """Check a token and use it up (single use); a grant or the reason it is refused.

    Nothing tells a token of another partner, or one the caller or the launching admin may not
    (or no longer) launch with, from a forged one: same error, nothing used up."""
    claims = read_launch(ctx.services.secret, token)
    if claims is None:
        return _invalid()
    row = await lq.launch_row(session, jti=claims.jti)
    if (
        row is None
        or row.partner_id != ctx.principal.partner_id
        or (row.admin_id, row.role, row.organization_type, row.organization_id)
        != (claims.admin_id, claims.role, claims.organization_type, claims.organization_id)
    ):
        return _invalid()
    kind, pk, authorizer = row.organization_type, row.organization_id, ctx.services.authorizer
    # The caller must be able to launch there itself (see graph.auth.launch_rights).
    if not await principal_may_launch(session, authorizer, ctx.principal, kind, pk):
        return _invalid()
    admins = await aq.admin_rows_by_ids(session, partner_id=row.partner_id, ids=[row.admin_id])
    admin = admins.get(row.admin_id)
    # Bound to the admin and its role: a deactivated or re-roled admin's link stops working,
    # and so does one whose admin may no longer launch there (unassigned, policy changed).
    if admin is None or not admin.active or admin.role != row.role:
        return _invalid()
    launcher = Principal(
        admin_id=admin.id,
        partner_id=admin.partner_id,
        email=admin.email,
        name=admin.name,
        role=admin.role,
        token_id=0,
    )
    if launcher.admin_id != ctx.principal.admin_id and not await principal_may_launch(
        session, authorizer, launcher, kind, pk
    ):
        return _invalid()
    if claims.expires_at <= ctx.now:
        return user_error("LAUNCH_TOKEN_EXPIRED", "The launch token has expired.", "token")
    if row.used_at is not None or not await lq.use_launch(session, jti=row.jti, now=ctx.now):
        return user_error("LAUNCH_TOKEN_USED", "The launch token was used already.", "token")
    name = await lq.organization_name(session, kind=kind, pk=pk)
    return LaunchGrant(
        admin_email=admin.email,
        role=row.role,
        organization_type=kind,
        organization_id=strawberry.ID(
            to_global_id("Customer" if kind == CUSTOMER else "Partner", pk)
        ),
        organization_name=name,
    )


def _some_launch_scope(ctx: Context) -> Scope | None:
    """The caller's scope for any kind of launch (verifying a link needs one of them)."""
    for kind in RIGHTS:
        scope = launch_scope(ctx.services.authorizer, ctx.principal, kind)
        if scope is not None:
            return scope
    return None


async def _launch_customer(c: Change, input: LaunchCustomerInput) -> LaunchPayload:
    pk = input_pk(input.customer_id, "Customer", "customerId")
    if not await may_launch(c.session, c.scope, CUSTOMER, pk):
        raise user_error("NOT_FOUND", "No such customer.", "customerId")
    url, expires = await _issue(c, CUSTOMER, pk)
    return LaunchPayload(url=url, expires_at=expires, user_errors=[])


async def _own_partner(c: Change) -> Any:
    """The caller's partner's row (inside the change's transaction: its own writes too)."""
    row = await partner_row(c.session, partner_id=c.scope.partner_id)
    if row is None:
        raise caller_gone()
    return row


async def _launch_mine(c: Change) -> LaunchPayload:
    partner = await _own_partner(c)
    url, expires = await _issue(c, PARTNER, partner.id)
    return LaunchPayload(
        url=url,
        expires_at=expires,
        setup_required=partner.setup_state != SetupState.READY.value,
        user_errors=[],
    )


async def _verify(c: Change, input: VerifyLaunchTokenInput) -> VerifyLaunchTokenPayload:
    outcome = await verify_launch_token(c.ctx, c.session, input.token)
    if isinstance(outcome, UserErrors):
        raise outcome
    c.record(  # using up a token is a change like any other: audited
        outcome.organization_type.lower(),
        outcome.organization_id,
        after={"adminEmail": outcome.admin_email, "role": outcome.role},
    )
    return VerifyLaunchTokenPayload(grant=outcome, user_errors=[])


def _no_link(errors: list[UserError]) -> LaunchPayload:
    return LaunchPayload(url=None, expires_at=None, user_errors=errors)


@strawberry.type
class LaunchMutations:
    @strawberry.mutation(
        description="A signed link into the customer's admin console: 5 minutes, single use, "
        "bound to the caller, its role and the customer. Only admins who may manage the "
        "customer get one; each launch is audited."
    )
    async def launch_customer_organization(
        self,
        info: Info,
        input: Annotated[
            LaunchCustomerInput,
            strawberry.argument(description="The customer whose admin console to open."),
        ],
    ) -> LaunchPayload:
        obj, act = RIGHTS[CUSTOMER]
        return await run_mutation(
            info.context,
            operation="launchCustomerOrganization",
            obj=obj,
            act=act,
            work=lambda c: _launch_customer(c, input),
            refused=_no_link,
        )

    @strawberry.mutation(
        description="A signed link into the partner's own organization (\"Launch my "
        'organization"); setupRequired tells that the first-time setup is not finished.'
    )
    async def launch_my_organization(self, info: Info) -> LaunchPayload:
        obj, act = RIGHTS[PARTNER]
        return await run_mutation(
            info.context,
            operation="launchMyOrganization",
            obj=obj,
            act=act,
            work=_launch_mine,
            refused=_no_link,
        )

    @strawberry.mutation(
        description="For the receiving admin console: check a launch token and use it up. "
        "Only admins of the token's partner who may launch into that organization themselves "
        "(customer write over the customer; admin manage for the own organization) use it, and "
        "only while the launching admin still may; otherwise, or when tampered, the token is "
        "LAUNCH_TOKEN_INVALID and not used up. Expired or reused tokens are refused."
    )
    async def verify_launch_token(
        self,
        info: Info,
        input: Annotated[
            VerifyLaunchTokenInput,
            strawberry.argument(description="The launch token the admin console received."),
        ],
    ) -> VerifyLaunchTokenPayload:
        ctx = info.context
        obj, act = RIGHTS[CUSTOMER]
        return await run_mutation(
            ctx,
            operation="verifyLaunchToken",
            obj=obj,
            act=act,
            decide=lambda: _some_launch_scope(ctx),
            refusal="Your role may not launch into organizations, nor use launch links.",
            work=lambda c: _verify(c, input),
            refused=lambda errors: VerifyLaunchTokenPayload(grant=None, user_errors=errors),
        )

    @strawberry.mutation(
        description="First-time setup of the partner's own organization, step 1: accept the "
        "terms and conditions (NOT_STARTED -> TERMS_ACCEPTED)."
    )
    async def accept_terms(self, info: Info) -> PartnerSetupPayload:
        return await _setup(info.context, SetupState.NOT_STARTED, SetupState.TERMS_ACCEPTED)

    @strawberry.mutation(
        description='First-time setup, step 2 ("Start"): TERMS_ACCEPTED -> READY; the own '
        "organization can then add users and manage services."
    )
    async def complete_organization_setup(self, info: Info) -> PartnerSetupPayload:
        return await _setup(info.context, SetupState.TERMS_ACCEPTED, SetupState.READY)


async def _set_up(c: Change, expected: SetupState, target: SetupState) -> PartnerSetupPayload:
    partner = await _own_partner(c)
    if partner.setup_state != expected.value:
        raise user_error(
            "INVALID_SETUP_STATE",
            f"The setup is {partner.setup_state}; this step needs {expected.value}.",
        )
    values: dict[str, Any] = {"setup_state": target.value}
    if target is SetupState.TERMS_ACCEPTED:
        values["terms_accepted_at"] = c.ctx.now
    else:
        values["setup_completed_at"] = c.ctx.now
    await lq.set_partner_setup(c.session, partner_id=c.scope.partner_id, values=values)
    c.record(
        "partner",
        to_global_id("Partner", partner.id),
        before={"setupState": partner.setup_state},
        after={"setupState": target.value},
    )
    updated = await _own_partner(c)
    return PartnerSetupPayload(partner=Partner.from_row(updated), user_errors=[])


async def _setup(ctx: Context, expected: SetupState, target: SetupState) -> PartnerSetupPayload:
    return await run_mutation(
        ctx,
        operation="acceptTerms"
        if target is SetupState.TERMS_ACCEPTED
        else "completeOrganizationSetup",
        obj=Obj.ADMIN,
        act=Act.MANAGE,
        work=lambda c: _set_up(c, expected, target),
        refused=lambda errors: PartnerSetupPayload(partner=None, user_errors=errors),
    )
