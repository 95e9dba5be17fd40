"""The one door: may this caller do ``action`` to a kind of object, and over which customers?

Every list, single lookup, loader, mutation, export and analytics figure asks ``authorize``.
Casbin decides *whether* a role may act on a kind of object and with which scope (``all`` or
``assigned``); the returned ``db.scope.Scope`` applies that scope in SQL. Decisions are cached per
(role, partner, object, action) until the policy changes, because PyCasbin's ``enforce`` scans
its rules linearly (hundreds of microseconds even for this small policy).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import casbin

from db.queries.admins import Principal
from db.queries.policies import PolicyLine
from db.scope import Scope
from graph.errors import forbidden

if TYPE_CHECKING:
    from graph.context import Context

MODEL_PATH = Path(__file__).resolve().parents[2] / "policies" / "model.conf"
DEFAULT_POLICY_PATH = MODEL_PATH.parent / "default_policy.csv"


class Obj(StrEnum):
    CUSTOMER = "customer"
    SUBSCRIPTION = "subscription"
    TRIAL = "trial"
    TAG = "tag"
    ASSIGNMENT = "assignment"
    ADMIN = "admin"
    POLICY = "policy"
    AUDIT = "audit"
    HELPDESK = "helpdesk"
    ANALYTICS = "analytics"


class Act(StrEnum):
    READ = "read"
    WRITE = "write"
    MANAGE = "manage"


class ScopeKind(StrEnum):
    ALL = "all"
    ASSIGNED = "assigned"


def domain_of(partner_id: int) -> str:
    return f"partner:{partner_id}"


class Authorizer:
    """Casbin enforcer plus a decision cache, shared by every request of the process."""

    def __init__(self, lines: list[PolicyLine] | None = None) -> None:
        self._enforcer = casbin.Enforcer(str(MODEL_PATH))
        self._cache: dict[tuple[str, int, str, str], ScopeKind | None] = {}
        self.version: str | None = None
        if lines:
            self.replace_policies(lines)

    def replace_policies(self, lines: list[PolicyLine], version: str | None = None) -> None:
        enforcer = casbin.Enforcer(str(MODEL_PATH))
        for line in lines:
            ptype, values = line[0], list(line[1:])
            if ptype.startswith("g"):
                enforcer.add_named_grouping_policy(ptype, values)
            else:
                enforcer.add_named_policy(ptype, values)
        self._enforcer = enforcer
        self._cache = {}
        self.version = version

    def decide(self, role: str, partner_id: int, obj: Obj, act: Act) -> ScopeKind | None:
        """The widest scope ``role`` has for ``act`` on ``obj`` in this partner, or None."""
        key = (role, partner_id, obj.value, act.value)
        if key not in self._cache:
            domain = domain_of(partner_id)
            result: ScopeKind | None = None
            for scope in (ScopeKind.ALL, ScopeKind.ASSIGNED):
                if self._enforcer.enforce(role, domain, obj.value, act.value, scope.value):
                    result = scope
                    break
            self._cache[key] = result
        return self._cache[key]

    def scope(self, principal: Principal, obj: Obj, act: Act) -> Scope | None:
        decided = self.decide(principal.role, principal.partner_id, obj, act)
        if decided is None:
            return None
        if decided is ScopeKind.ALL:
            return Scope(partner_id=principal.partner_id)
        return Scope(partner_id=principal.partner_id, assigned_admin_id=principal.admin_id)

    def require(self, principal: Principal, obj: Obj, act: Act) -> Scope:
        """Like ``scope`` but a refusal raises ``FORBIDDEN``."""
        scope = self.scope(principal, obj, act)
        if scope is None:
            raise forbidden(f"Your role may not {act.value} {obj.value} objects.")
        return scope


def _ctx_scope(ctx: Context, obj: Obj, act: Act) -> Scope | None:
    return ctx.services.authorizer.scope(ctx.principal, obj, act)


def scope_or_none(ctx: Context, obj: Obj, act: Act) -> Scope | None:
    """The caller's scope for ``act`` on ``obj``; None when refused (single lookups: not found)."""
    return _ctx_scope(ctx, obj, act)


def require(ctx: Context, obj: Obj, act: Act) -> Scope:
    """The caller's scope for ``act`` on ``obj``; a refusal raises ``FORBIDDEN``."""
    scope = _ctx_scope(ctx, obj, act)
    if scope is None:
        raise forbidden(f"Your role may not {act.value} {obj.value} objects.")
    return scope
