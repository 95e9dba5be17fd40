"""Partners and their administrators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from graph.ids import to_global_id
from graph.pagination import PageInfo
from graph.types.common import Node, SetupState, made


@strawberry.type(description="The partner's own organization and its first-time setup.")
class OwnOrganization:
    setup_state: SetupState = strawberry.field(description="Progress of the setup wizard.")
    terms_accepted_at: datetime | None = strawberry.field(
        description="When a full admin accepted the terms and conditions."
    )


@strawberry.type(description="A reseller organization; its data is never visible to another.")
class Partner(Node):
    name: str = strawberry.field(description="Display name.")
    domain: str = strawberry.field(description="Email domain of its administrators.")
    terms_accepted_at: datetime | None = strawberry.field(
        description="When the terms and conditions of its own organization were accepted."
    )
    own_organization: OwnOrganization = strawberry.field(
        description='The partner\'s own organization ("Launch my organization").'
    )

    @classmethod
    def from_row(cls, row: Any) -> Partner:
        return cls(
            id=strawberry.ID(to_global_id("Partner", row.id)),
            name=row.name,
            domain=row.domain,
            terms_accepted_at=row.terms_accepted_at,
            own_organization=OwnOrganization(
                setup_state=row.setup_state, terms_accepted_at=row.terms_accepted_at
            ),
        )


@strawberry.type(description="An administrator of a partner.")
class Admin(Node):
    email: str = strawberry.field(description="Sign-in email, lower case.")
    name: str = strawberry.field(description="Display name.")
    role: str = strawberry.field(
        description="Role name: FULL_ADMIN, PARTNER_ADMIN, READ_ONLY_ADMIN, SALES_ADMIN or a "
        "custom role of the partner."
    )
    active: bool = strawberry.field(description="False once deactivated (its tokens stop).")
    created_at: datetime = strawberry.field(description="When the admin was created.")
    pk: strawberry.Private[int]
    partner_id: strawberry.Private[int]

    @strawberry.field(description="Primary role first, then roles granted with grantRole.")
    def roles(self, info: strawberry.Info) -> list[str]:
        granted = info.context.services.authorizer.granted_roles(self.pk, self.partner_id)
        return [self.role, *[r for r in granted if r != self.role]]

    @strawberry.field(description="The partner the administrator belongs to.")
    async def partner(self, info: strawberry.Info) -> Partner:
        row = await info.context.loaders.partner_by_id.load(self.partner_id)
        return Partner.from_row(row)

    @classmethod
    def from_row(cls, row: Any) -> Admin:
        return made(
            cls,
            {
                "id": strawberry.ID(to_global_id("Admin", row.id)),
                "email": row.email,
                "name": row.name,
                "role": row.role,
                "active": row.active,
                "created_at": row.created_at,
                "pk": row.id,
                "partner_id": row.partner_id,
            },
        )


@strawberry.type(description="An admin in a list, with its cursor.")
class AdminEdge:
    node: Admin = strawberry.field(description="The admin.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this admin.")


@strawberry.type(description="A page of the partner's administrators.")
class AdminConnection:
    edges: list[AdminEdge] = strawberry.field(description="Admins with cursors.")
    nodes: list[Admin] = strawberry.field(description="Admins of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Admins of the partner in all.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.input(description="A new administrator of the partner.")
class CreateAdminInput:
    email: str = strawberry.field(description="Sign-in email (unique).")
    name: str = strawberry.field(description="Display name.")
    role: str = strawberry.field(description="Primary role: built-in or custom role name.")


@strawberry.input(description="Changes to an administrator; omitted fields stay.")
class UpdateAdminInput:
    id: strawberry.ID = strawberry.field(description="The admin.")
    name: str | None = strawberry.field(default=None, description="New display name.")
    role: str | None = strawberry.field(default=None, description="New primary role.")


@strawberry.input(description="The administrator to deactivate; its tokens stop working.")
class DeactivateAdminInput:
    id: strawberry.ID = strawberry.field(description="The admin.")
