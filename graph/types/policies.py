"""Roles, policy rules and the audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry

from graph.mutations import UserError
from graph.pagination import PageInfo
from graph.types.admins import Admin


@strawberry.type(description="What a role may do to a kind of object, and over which customers.")
class PolicyRule:
    role: str = strawberry.field(description="Role the rule belongs to.")
    object: str = strawberry.field(
        description="Kind of object: customer, subscription, trial, tag, assignment, admin, "
        "policy, audit, helpdesk, analytics or webhook."
    )
    action: str = strawberry.field(description="read, write or manage.")
    scope: str = strawberry.field(
        description="all: every customer of the partner; assigned: only customers the admin "
        "was assigned or provisioned."
    )
    built_in: bool = strawberry.field(
        description="Part of the default policy every partner starts from."
    )


@strawberry.type(description="A role: built in, or defined by the partner.")
class Role:
    name: str = strawberry.field(description="Role name (upper case).")
    description: str = strawberry.field(description="What the role is for.")
    built_in: bool = strawberry.field(description="One of the four default roles.")
    rules: list[PolicyRule] = strawberry.field(description="What the role may do (at most 200).")


@strawberry.input(description="One rule of a role.")
class PolicyRuleInput:
    object: str = strawberry.field(description="Kind of object, e.g. tag.")
    action: str = strawberry.field(description="read, write or manage.")
    scope: str = strawberry.field(default="all", description="all or assigned.")


@strawberry.input(description="Give an admin a role (in addition to its primary role).")
class GrantRoleInput:
    admin_id: strawberry.ID = strawberry.field(description="The admin.")
    role: str = strawberry.field(description="Built-in or custom role name.")


@strawberry.input(description="Take a granted role away from an admin.")
class RevokeRoleInput:
    admin_id: strawberry.ID = strawberry.field(description="The admin.")
    role: str = strawberry.field(description="A role granted to the admin.")


@strawberry.input(description="Define a custom role of the partner.")
class CreateRoleInput:
    name: str = strawberry.field(description="Upper case, 3-64 of A-Z, 0-9 and _.")
    description: str = strawberry.field(default="", description="What the role is for.")
    rules: list[PolicyRuleInput] = strawberry.field(description="What the role may do.")


@strawberry.input(description="A rule to add to, or remove from, a role for this partner.")
class PolicyRuleChangeInput:
    role: str = strawberry.field(description="Built-in or custom role name.")
    object: str = strawberry.field(description="Kind of object, e.g. tag.")
    action: str = strawberry.field(description="read, write or manage.")
    scope: str = strawberry.field(default="all", description="all or assigned.")


@strawberry.type(description="Result of grantRole.")
class GrantRolePayload:
    admin: Admin | None = strawberry.field(description="The admin, with its roles.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of revokeRole.")
class RevokeRolePayload:
    admin: Admin | None = strawberry.field(description="The admin, with its roles.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of createRole.")
class CreateRolePayload:
    role: Role | None = strawberry.field(description="The new role.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of addPolicyRule / removePolicyRule.")
class PolicyRulePayload:
    rule: PolicyRule | None = strawberry.field(description="The rule added or removed.")
    role: Role | None = strawberry.field(description="The role after the change.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="One audited change.")
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="Entry id.")
    admin_id: strawberry.ID | None = strawberry.field(
        description="Global ID of the admin; null when the system made the change (the "
        "command line, e.g. `partner-hub admin create`)."
    )
    operation: str = strawberry.field(description="The mutation, e.g. createTag.")
    object_type: str = strawberry.field(description="Kind of object changed.")
    object_id: str | None = strawberry.field(description="Global ID (or key) of the object.")
    before: strawberry.scalars.JSON | None = strawberry.field(description="State before.")
    after: strawberry.scalars.JSON | None = strawberry.field(description="State after.")
    created_at: datetime = strawberry.field(description="When it happened.")


@strawberry.type(description="An audit entry with its cursor (Relay).")
class AuditEdge:
    node: AuditEntry = strawberry.field(description="The entry.")
    cursor: str = strawberry.field(description="Pass as `after` (or `before`) to page from here.")


@strawberry.type(description="A page of audit entries, newest first.")
class AuditConnection:
    nodes: list[AuditEntry] = strawberry.field(description="Entries of this page.")
    edges: list[AuditEdge] = strawberry.field(description="Entries with their cursors.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Entries matching the filter.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.input(description="Audit log filter; fields combine with AND.")
class AuditFilter:
    admin_id: strawberry.ID | None = strawberry.field(
        default=None, description="Changes made by this admin (its `id`)."
    )
    operation: str | None = strawberry.field(
        default=None, description="Changes by this mutation, e.g. createTag."
    )
    object_id: str | None = strawberry.field(
        default=None, description="Changes to this object (its global `id`)."
    )
    since: datetime | None = strawberry.field(
        default=None, description="Changes at or after this instant."
    )
    until: datetime | None = strawberry.field(
        default=None, description="Changes before this instant."
    )
