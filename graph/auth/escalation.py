"""No escalation (DESIGN.md section 4): a caller gives away only what it holds itself.

A permission is (object, action) with the widest scope held; ``assigned`` is narrower than
``all``. A caller may not create an admin with, move an admin to, or grant a role holding a
permission the caller lacks; may not define or widen a role beyond its own permissions; and may
not change, deactivate or take a role from an admin holding a permission the caller lacks (a
limited admin manager demoting the partner's full admin). Each refusal is ``FORBIDDEN``.

Decisions read the policy lines of the mutation's own transaction, taken after
``lock_partner``, and the caller's row as it is now (a caller demoted or deactivated a moment
ago holds only what it holds now), never the request's cached enforcer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import admin_management as adm
from db.queries import policies as pq
from db.queries.policies import PolicyLine
from graph.auth import policy_admin as pa
from graph.auth.permissions import Act, Obj, ScopeKind, admin_subject, domain_of
from graph.errors import forbidden

Permissions = dict[tuple[str, str], ScopeKind]


def role_permissions(
    lines: Iterable[PolicyLine], partner_id: int, roles: Iterable[str]
) -> Permissions:
    """The widest scope per (object, action) that any of ``roles`` holds in this partner."""
    held = set(roles)
    permissions: Permissions = {}
    for rule in pa.effective_rules(lines, partner_id):
        if rule.role in held and rule.scope in pa.SCOPES:
            key = (rule.object, rule.action)
            if permissions.get(key) is not ScopeKind.ALL:
                permissions[key] = ScopeKind(rule.scope)
    return permissions


def admin_roles(lines: Sequence[PolicyLine], partner_id: int, admin: Any) -> list[str]:
    """An admin's primary role and the roles granted to it (``g`` lines)."""
    subject, domain = admin_subject(admin.id), domain_of(partner_id)
    granted = [
        line[2] for line in lines if line[0] == "g" and line[1] == subject and line[3] == domain
    ]
    return [admin.role, *granted]


def covers(have: ScopeKind | None, want: ScopeKind) -> bool:
    return have is ScopeKind.ALL or have is want


def lacking(have: Permissions, wanted: Permissions) -> list[str]:
    """The permissions of ``wanted`` that ``have`` does not cover, as 'object action scope'."""
    return sorted(
        f"{obj} {act} {scope.value}"
        for (obj, act), scope in wanted.items()
        if not covers(have.get((obj, act)), scope)
    )


@dataclass(frozen=True, slots=True)
class Guard:
    """What the calling admin holds, read inside the mutation's transaction."""

    lines: list[PolicyLine]
    partner_id: int
    held: Permissions

    @classmethod
    async def load(cls, session: AsyncSession, *, partner_id: int, admin_id: int) -> Guard:
        lines, _ = await pq.load_policies(session)
        caller = await adm.admin_row(session, partner_id=partner_id, admin_id=admin_id)
        active = caller is not None and caller.active
        roles = admin_roles(lines, partner_id, caller) if active else []
        return cls(lines, partner_id, role_permissions(lines, partner_id, roles))

    def require(self, obj: Obj, act: Act) -> None:
        if (obj.value, act.value) not in self.held:
            raise forbidden(f"Your role may not {act.value} {obj.value} objects.")

    def may_give(self, role: str) -> None:
        """Refuse a role holding a permission the caller lacks (create, move to, grant)."""
        if lacking(self.held, role_permissions(self.lines, self.partner_id, [role])):
            raise forbidden(
                f"The role {role} holds permissions your roles lack: you may only give roles "
                "within your own permissions."
            )

    def may_manage(self, admin: Any) -> None:
        """Refuse to change an admin holding a permission the caller lacks."""
        roles = admin_roles(self.lines, self.partner_id, admin)
        if lacking(self.held, role_permissions(self.lines, self.partner_id, roles)):
            raise forbidden(
                "This admin holds permissions your roles lack: you may only change admins "
                "within your own permissions."
            )

    def may_hold(self, rules: Iterable[tuple[str, str, str]], what: str) -> None:
        """Refuse rules (object, action, scope) the caller does not hold itself."""
        wanted: Permissions = {}
        for obj, act, scope in rules:
            kind = ScopeKind(scope)
            if wanted.get((obj, act)) is not ScopeKind.ALL:
                wanted[(obj, act)] = kind
        if lacking(self.held, wanted):
            raise forbidden(
                f"{what} would hold permissions your roles lack: you may only give "
                "permissions you hold."
            )

    def may_change_role(self, role: str) -> None:
        """Refuse to change a role (its rules) unless the caller could give that role."""
        if lacking(self.held, role_permissions(self.lines, self.partner_id, [role])):
            raise forbidden(
                f"The role {role} holds permissions your roles lack: you may only change "
                "roles within your own permissions."
            )
