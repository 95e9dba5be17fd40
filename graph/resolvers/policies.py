"""Policy administration (full admins): roles, rules, grants, and the audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar

import orjson
import strawberry

from db.queries import admin_management as adm
from db.queries import audit as audit_q
from db.queries import policies as pq
from db.queries.policies import PolicyLine
from graph.auth import policy_admin as pa
from graph.auth.escalation import Guard
from graph.auth.permissions import BUILT_IN_ROLES, Act, Obj, require
from graph.context import Context, Info
from graph.cost_model import MAX_POLICY_RULES, MAX_ROLES, MAX_RULES_PER_ROLE
from graph.ids import from_global_id, pk_of, to_global_id
from graph.mutations import Change, UserError, run_mutation, user_error
from graph.pagination import CursorCodec, fingerprint, paging
from graph.types.admins import Admin
from graph.types.arguments import After, Before, First, Last
from graph.types.policies import (
    AuditConnection,
    AuditEdge,
    AuditEntry,
    AuditFilter,
    CreateRoleInput,
    CreateRolePayload,
    GrantRoleInput,
    GrantRolePayload,
    PolicyRule,
    PolicyRuleChangeInput,
    PolicyRulePayload,
    RevokeRoleInput,
    RevokeRolePayload,
    Role,
)


def _rule(rule: pa.Rule) -> PolicyRule:
    return PolicyRule(
        role=rule.role,
        object=rule.object,
        action=rule.action,
        scope=rule.scope,
        built_in=rule.built_in,
    )


async def _roles(
    ctx: Context, lines: Sequence[PolicyLine], session: Any, limit: int | None = None
) -> list[Role]:
    """The built-in roles, then the custom ones by name (the first ``limit`` in all: the custom
    ones read are the first ``limit`` less the built-in ones)."""
    partner_id = ctx.principal.partner_id
    rules = pa.effective_rules(lines, partner_id)
    first = None if limit is None else max(limit - len(BUILT_IN_ROLES), 0)
    custom = await pq.custom_roles(session, partner_id=partner_id, limit=first)
    described = [(name, text, True) for name, text in BUILT_IN_ROLES.items()]
    described += [(row.name, row.description, False) for row in custom]
    return [
        Role(
            name=name,
            description=text,
            built_in=built_in,
            rules=[_rule(r) for r in rules if r.role == name][:MAX_RULES_PER_ROLE],
        )
        for name, text, built_in in described
    ]


async def _role_names(ctx: Context, session: Any) -> set[str]:
    custom = await pq.custom_roles(session, partner_id=ctx.principal.partner_id)
    return set(BUILT_IN_ROLES) | {row.name for row in custom}


def _check_rule(obj: str, action: str, scope: str, *path: str | int) -> pa.Rule:
    problem = pa.rule_problem(obj, action, scope)
    if problem is not None:
        code, message, field = problem
        raise user_error(code, message, *[str(p) for p in path], field)
    return pa.Rule(role="", object=obj, action=action, scope=scope)


async def _apply_change(
    ctx: Context,
    session: Any,
    lines: list[PolicyLine],
    to_insert: Sequence[PolicyLine],
    to_delete: Sequence[PolicyLine],
) -> list[PolicyLine]:
    """Write a policy change unless it would lock the partner out."""
    partner_id = ctx.principal.partner_id
    candidate = pa.apply(lines, to_insert, to_delete)
    admins = await adm.active_admin_roles(session, partner_id=partner_id)
    if not pa.keeps_a_manager(candidate, partner_id, admins):
        raise user_error(
            "WOULD_LOCK_OUT",
            "This change would leave no active admin able to manage policies and admins.",
        )
    for line in to_delete:
        await pq.remove_policy_line(session, line=line)
    for line in to_insert:
        await pq.add_policy_line(session, line=line)
    return candidate


async def _reload_policies(ctx: Context) -> None:
    """Load the committed policy into this process's enforcer now, so the payload (an admin's
    roles, a role's rules) and the next request of this instance already reflect the change;
    other instances reload on their next request when they see the new version."""
    async with ctx.db() as session:
        lines, version = await pq.load_policies(session)
    ctx.services.authorizer.replace_policies(lines, version)


async def _guard(ctx: Context, session: Any) -> Guard:
    """What the caller holds now, in this transaction (no escalation: graph.auth.escalation)."""
    return await Guard.load(
        session, partner_id=ctx.principal.partner_id, admin_id=ctx.principal.admin_id
    )


def _admin_with_roles(row: Any) -> Admin:
    return Admin.from_row(row)


@strawberry.type
class PolicyQueries:
    @strawberry.field(
        description="Built-in and custom roles of the partner with their rules (at most 100)."
    )
    async def roles(self, info: Info) -> list[Role]:
        ctx = info.context
        require(ctx, Obj.POLICY, Act.READ)
        async with ctx.db() as session:
            # The built-in roles, then the first custom ones: the bound the query cost prices.
            return await _roles(ctx, ctx.services.authorizer.lines, session, MAX_ROLES)

    @strawberry.field(description="Every rule in force for the partner, by role (at most 2,000).")
    async def policy_rules(self, info: Info) -> list[PolicyRule]:
        ctx = info.context
        require(ctx, Obj.POLICY, Act.READ)
        lines = ctx.services.authorizer.lines
        rules = pa.effective_rules(lines, ctx.principal.partner_id)
        return [_rule(r) for r in rules[:MAX_POLICY_RULES]]

    @strawberry.field(description="Audited changes of the partner, newest first (full admins).")
    async def audit_log(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        filter: Annotated[
            AuditFilter | None,
            strawberry.argument(
                description="Only entries matching every condition given (admin, operation, "
                "object, time)."
            ),
        ] = None,
        last: Last = None,
        before: Before = None,
    ) -> AuditConnection:
        ctx = info.context
        scope = require(ctx, Obj.AUDIT, Act.READ)
        # Audit entries move no data version (a refusal's must not empty caches): never cached.
        ctx.no_store = True
        page = paging(info, first, after, last, before, ctx.settings.max_page_size)
        f = filter or AuditFilter()
        query = audit_q.AuditQuery(
            admin_id=pk_of(f.admin_id, "Admin", "filter.adminId") if f.admin_id else None,
            operation=f.operation,
            object_id=f.object_id,
            since=f.since,
            until=f.until,
        )
        codec = CursorCodec(ctx.services.secret)
        # The partner is part of what the list means: another partner's cursor is refused.
        fp = fingerprint(scope.partner_id, repr(query))
        cursor_id = (
            codec.decode(page.cursor, "auditLog", fp, ("int",))[0]
            if page.cursor is not None
            else None
        )

        async def count() -> int:  # only when ``totalCount`` is selected
            async with ctx.db() as session:
                return await audit_q.count_audit(session, partner_id=scope.partner_id, query=query)

        async with ctx.db() as session:
            read, more = await audit_q.audit_page(
                session,
                partner_id=scope.partner_id,
                query=query,
                first=page.size,
                before_id=cursor_id,
                backward=page.backward,
            )
        rows = page.arrange(read)
        cursors = [codec.encode("auditLog", fp, (r.id,)) for r in rows]
        nodes = [
            AuditEntry(
                id=strawberry.ID(str(r.id)),
                admin_id=strawberry.ID(to_global_id("Admin", r.admin_id)) if r.admin_id else None,
                operation=r.operation,
                object_type=r.object_type,
                object_id=r.object_id,
                before=orjson.loads(r.before) if r.before else None,
                after=orjson.loads(r.after) if r.after else None,
                created_at=r.created_at,
            )
            for r in rows
        ]
        return AuditConnection(
            nodes=nodes,
            edges=[AuditEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)],
            page_info=page.page_info(cursors, more),
            count=count,
        )


async def _target_admin(ctx: Context, session: Any, admin_id: strawberry.ID) -> Any:
    try:
        type_name, pk = from_global_id(admin_id)
    except Exception:
        raise user_error("INVALID_ID", "adminId is not a valid ID.", "adminId") from None
    row = None
    if type_name == "Admin":
        row = await adm.admin_row(session, partner_id=ctx.principal.partner_id, admin_id=pk)
    if row is None:
        raise user_error("NOT_FOUND", "No such admin.", "adminId")
    return row


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Refused:
    errors: list[UserError]


async def _policy_mutation(
    ctx: Context,
    operation: str,
    work: Callable[[Change], Awaitable[T]],
    refused: Callable[[list[UserError]], R],
    respond: Callable[[T], R],
) -> R:
    """``run_mutation`` for policy changes: once committed, this process reloads the policy
    before the payload is built (an admin's roles, a role's rules)."""
    outcome: T | _Refused = await run_mutation(
        ctx, operation=operation, obj=Obj.POLICY, act=Act.MANAGE, work=work, refused=_Refused
    )
    if isinstance(outcome, _Refused):
        return refused(outcome.errors)
    await _reload_policies(ctx)
    return respond(outcome)


async def _grant(c: Change, input: GrantRoleInput) -> Any:
    ctx, session, scope = c.ctx, c.session, c.scope
    await adm.lock_partner(session, partner_id=scope.partner_id)
    admin = await _target_admin(ctx, session, input.admin_id)
    if input.role not in await _role_names(ctx, session):
        raise user_error("UNKNOWN_ROLE", f"No role named {input.role!r}.", "role")
    guard = await _guard(ctx, session)
    guard.may_manage(admin)
    guard.may_give(input.role)
    lines = guard.lines
    grant = pa.grant_line(admin.id, input.role, scope.partner_id)
    if input.role == admin.role or grant in lines:
        raise user_error("ROLE_ALREADY_GRANTED", "The admin already has this role.", "role")
    await _apply_change(ctx, session, lines, [grant], [])
    c.record("admin", to_global_id("Admin", admin.id), after={"role": input.role})
    return admin


async def _revoke(c: Change, input: RevokeRoleInput) -> Any:
    ctx, session, scope = c.ctx, c.session, c.scope
    await adm.lock_partner(session, partner_id=scope.partner_id)
    admin = await _target_admin(ctx, session, input.admin_id)
    if input.role not in await _role_names(ctx, session):
        raise user_error("UNKNOWN_ROLE", f"No role named {input.role!r}.", "role")
    guard = await _guard(ctx, session)
    guard.may_manage(admin)
    if input.role == admin.role:
        raise user_error(
            "CANNOT_REVOKE_PRIMARY_ROLE",
            "This is the admin's primary role: change it with updateAdmin.",
            "role",
        )
    lines = guard.lines
    grant = pa.grant_line(admin.id, input.role, scope.partner_id)
    if grant not in lines:
        raise user_error("ROLE_NOT_GRANTED", "The admin does not have this role.")
    await _apply_change(ctx, session, lines, [], [grant])
    c.record("admin", to_global_id("Admin", admin.id), before={"role": input.role})
    return admin


async def _create_role(c: Change, input: CreateRoleInput) -> tuple[str, list[Role]]:
    ctx, session, scope = c.ctx, c.session, c.scope
    name = input.name.strip()
    if not pa.ROLE_NAME.match(name):
        raise user_error(
            "INVALID_ROLE_NAME",
            "A role name is 3-64 characters of A-Z, 0-9 and _, starting with a letter.",
            "name",
        )
    if len(input.description) > 500:
        raise user_error("DESCRIPTION_TOO_LONG", "500 characters at most.", "description")
    if not input.rules:
        raise user_error("NO_RULES", "A role needs at least one rule.", "rules")
    rules = {
        _check_rule(r.object, r.action, r.scope, "rules", i) for i, r in enumerate(input.rules)
    }
    await adm.lock_partner(session, partner_id=scope.partner_id)
    if name in await _role_names(ctx, session):
        raise user_error("ROLE_NAME_TAKEN", f"A role {name!r} exists.", "name")
    guard = await _guard(ctx, session)
    guard.may_hold([(r.object, r.action, r.scope) for r in rules], f"The role {name}")
    await pq.create_custom_role(
        session, partner_id=scope.partner_id, name=name, description=input.description, now=ctx.now
    )
    domain = f"partner:{scope.partner_id}"
    new = [
        pa.Rule(name, r.object, r.action, r.scope).line(domain)
        for r in sorted(rules, key=lambda r: (r.object, r.action, r.scope))
    ]
    lines, _ = await pq.load_policies(session)
    candidate = await _apply_change(ctx, session, lines, new, [])
    c.record(
        "role", name, after={"description": input.description, "rules": [list(n) for n in new]}
    )
    return name, await _roles(ctx, candidate, session)


@strawberry.type
class PolicyMutations:
    @strawberry.mutation(description="Grant a role to an admin, besides its primary role.")
    async def grant_role(
        self,
        info: Info,
        input: Annotated[
            GrantRoleInput,
            strawberry.argument(
                description="The administrator and the role to grant (default or custom)."
            ),
        ],
    ) -> GrantRolePayload:
        return await _policy_mutation(
            info.context,
            "grantRole",
            lambda c: _grant(c, input),
            lambda errors: GrantRolePayload(admin=None, user_errors=errors),
            lambda admin: GrantRolePayload(admin=_admin_with_roles(admin), user_errors=[]),
        )

    @strawberry.mutation(description="Take a granted role away from an admin.")
    async def revoke_role(
        self,
        info: Info,
        input: Annotated[
            RevokeRoleInput,
            strawberry.argument(description="The administrator and the granted role to take away."),
        ],
    ) -> RevokeRolePayload:
        return await _policy_mutation(
            info.context,
            "revokeRole",
            lambda c: _revoke(c, input),
            lambda errors: RevokeRolePayload(admin=None, user_errors=errors),
            lambda admin: RevokeRolePayload(admin=_admin_with_roles(admin), user_errors=[]),
        )

    @strawberry.mutation(description="Define a custom role of the partner with its rules.")
    async def create_role(
        self,
        info: Info,
        input: Annotated[
            CreateRoleInput, strawberry.argument(description="The new role's name and its rules.")
        ],
    ) -> CreateRolePayload:
        return await _policy_mutation(
            info.context,
            "createRole",
            lambda c: _create_role(c, input),
            lambda errors: CreateRolePayload(role=None, user_errors=errors),
            lambda made: CreateRolePayload(
                role=next(r for r in made[1] if r.name == made[0]), user_errors=[]
            ),
        )

    @strawberry.mutation(description="Allow a rule for a role, in this partner only.")
    async def add_policy_rule(
        self,
        info: Info,
        input: Annotated[
            PolicyRuleChangeInput,
            strawberry.argument(description="The role and the rule (object, action, scope)."),
        ],
    ) -> PolicyRulePayload:
        return await _change_rule(info.context, input, add=True)

    @strawberry.mutation(description="Withdraw a rule from a role, in this partner only.")
    async def remove_policy_rule(
        self,
        info: Info,
        input: Annotated[
            PolicyRuleChangeInput,
            strawberry.argument(description="The role and the rule (object, action, scope)."),
        ],
    ) -> PolicyRulePayload:
        return await _change_rule(info.context, input, add=False)


async def _rule_change(
    c: Change, input: PolicyRuleChangeInput, *, add: bool
) -> tuple[pa.Rule, list[PolicyLine], list[Role]]:
    ctx, session, scope = c.ctx, c.session, c.scope
    checked = _check_rule(input.object, input.action, input.scope)
    rule = pa.Rule(input.role, checked.object, checked.action, checked.scope)
    await adm.lock_partner(session, partner_id=scope.partner_id)
    if input.role not in await _role_names(ctx, session):
        raise user_error("UNKNOWN_ROLE", f"No role named {input.role!r}.", "role")
    # a caller changes only roles it could give, and adds only what it holds itself
    guard = await _guard(ctx, session)
    guard.may_change_role(rule.role)
    if add:
        guard.may_hold([(rule.object, rule.action, rule.scope)], f"The role {rule.role}")
    lines = guard.lines
    change = (pa.add_rule_lines if add else pa.remove_rule_lines)(lines, scope.partner_id, rule)
    if change is None:
        code, message = (
            ("RULE_EXISTS", "The role already has this rule.")
            if add
            else ("RULE_NOT_FOUND", "The role does not have this rule.")
        )
        raise user_error(code, message)
    candidate = await _apply_change(ctx, session, lines, *change)
    record = {"role": rule.role, "object": rule.object, "action": rule.action, "scope": rule.scope}
    c.record("policy", rule.role, before=None if add else record, after=record if add else None)
    return rule, candidate, await _roles(ctx, candidate, session)


def _rule_payload(done: tuple[pa.Rule, list[PolicyLine], list[Role]]) -> PolicyRulePayload:
    rule, candidate, roles = done
    # A rule of the default policy (domain "*") stays built in, whether this partner allowed
    # it again (its deny line removed) or withdrew it (a deny line added).
    return PolicyRulePayload(
        rule=_rule(replace(rule, built_in=rule.line("*") in candidate)),
        role=next(r for r in roles if r.name == rule.role),
        user_errors=[],
    )


async def _change_rule(
    ctx: Context, input: PolicyRuleChangeInput, *, add: bool
) -> PolicyRulePayload:
    return await _policy_mutation(
        ctx,
        "addPolicyRule" if add else "removePolicyRule",
        lambda c: _rule_change(c, input, add=add),
        lambda errors: PolicyRulePayload(rule=None, role=None, user_errors=errors),
        _rule_payload,
    )
