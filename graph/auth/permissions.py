"""The one door: may this caller do ``action`` to a kind of object, and over which customers?

Every list, single lookup, loader, mutation, export and analytics figure asks ``require`` or
``scope_or_none`` (mutations through ``graph.mutations.run_mutation``). Casbin decides *whether*
a role may act on a kind of object and with which scope (``all`` or ``assigned``); the returned
``db.scope.Scope`` applies that scope in SQL. This module holds the only issuer of scopes
(``db.scope.scope_issuer``), so a query function that takes ``scope=`` cannot be handed access
nobody decided; ``tests/test_one_door.py`` fails when graph/ calls one that takes none.
Decisions are cached per (role, partner, object, action) until the policy version changes,
because PyCasbin's ``enforce`` scans its rules linearly (hundreds of microseconds even here).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import casbin

from db.queries.admins import Principal
from db.queries.customer_children import subscriptions_by_ids
from db.queries.customers import customers_by_ids
from db.queries.policies import PolicyLine
from db.scope import Scope, scope_issuer
from graph.errors import forbidden

if TYPE_CHECKING:
    from graph.context import Context

# The only maker of scopes in the process (see db.scope): held here, never exported.
_issue = scope_issuer()

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
    WEBHOOK = "webhook"


class Act(StrEnum):
    READ = "read"
    WRITE = "write"
    MANAGE = "manage"


class ScopeKind(StrEnum):
    ALL = "all"
    ASSIGNED = "assigned"


BUILT_IN_ROLES = {
    "FULL_ADMIN": "Sees all customers; changes everything of its partner, including admins, "
    "assignments and role policies.",
    "PARTNER_ADMIN": "Sees the customers it provisioned or was assigned; manages their tags, "
    "trials and subscriptions; creates customers through trials.",
    "READ_ONLY_ADMIN": "Sees all customers; changes nothing.",
    "SALES_ADMIN": "Sees the customers it provisioned or was assigned; starts trials for new "
    "or its customers; nothing else.",
}


def domain_of(partner_id: int) -> str:
    return f"partner:{partner_id}"


def admin_subject(admin_id: int) -> str:
    return f"admin:{admin_id}"


def build_enforcer(lines: list[PolicyLine]) -> casbin.Enforcer:
    enforcer = casbin.Enforcer(str(MODEL_PATH))
    for line in lines:
        ptype, values = line[0], list(line[1:])
        if ptype.startswith("g"):
            enforcer.add_named_grouping_policy(ptype, values)
        else:
            enforcer.add_named_policy(ptype, values)
    return enforcer


class Authorizer:
    """Casbin enforcer plus a decision cache, shared by every request of the process."""

    def __init__(self, lines: list[PolicyLine] | None = None, version: str = "0") -> None:
        self.replace_policies(lines or [], version)

    def replace_policies(self, lines: list[PolicyLine], version: str) -> None:
        self._enforcer = build_enforcer(lines)
        self._lines = list(lines)
        self._cache: dict[tuple[str, int, str, str], ScopeKind | None] = {}
        self._grants: dict[tuple[int, int], list[str]] = {}
        self._scopes: dict[tuple[str, int, int, Obj, Act], Scope | None] = {}
        # What callers work out from these policies' scopes alone (``graph.detail``'s plans),
        # by their own keys: forgotten with the policies.
        self.derived: dict[Any, Any] = {}
        self.version = version

    @property
    def lines(self) -> list[PolicyLine]:
        return list(self._lines)

    def granted_roles(self, admin_id: int, partner_id: int) -> list[str]:
        """Roles granted to an admin besides its primary role (``g`` lines)."""
        key = (admin_id, partner_id)
        if key not in self._grants:
            subject, domain = admin_subject(admin_id), domain_of(partner_id)
            self._grants[key] = sorted(
                line[2]
                for line in self._lines
                if line[0] == "g" and line[1] == subject and line[3] == domain
            )
        return self._grants[key]

    def roles_of(self, principal: Principal) -> list[str]:
        extra = self.granted_roles(principal.admin_id, principal.partner_id)
        return [principal.role, *[r for r in extra if r != principal.role]]

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

    def widest(self, roles: list[str], partner_id: int, obj: Obj, act: Act) -> ScopeKind | None:
        decisions = {self.decide(role, partner_id, obj, act) for role in roles}
        if ScopeKind.ALL in decisions:
            return ScopeKind.ALL
        return ScopeKind.ASSIGNED if ScopeKind.ASSIGNED in decisions else None

    def scope(self, principal: Principal, obj: Obj, act: Act) -> Scope | None:
        """The principal's scope for ``act`` on ``obj``, or None. Kept per (role, admin,
        partner, obj, act) until the policies are replaced: a request asks it up to 40 times
        (the customer detail: 21), each a set of decisions and a new ``Scope``; a ``Scope`` is
        immutable and compares by value, so sharing one changes nothing for its users."""
        key = (principal.role, principal.admin_id, principal.partner_id, obj, act)
        try:
            return self._scopes[key]
        except KeyError:
            pass
        found = self._decide_scope(principal, obj, act)
        if len(self._scopes) >= _MAX_SCOPES:
            self._scopes.clear()
        self._scopes[key] = found
        return found

    def _decide_scope(self, principal: Principal, obj: Obj, act: Act) -> Scope | None:
        decided = self.widest(self.roles_of(principal), principal.partner_id, obj, act)
        if decided is None:
            return None
        if decided is ScopeKind.ALL:
            return _issue(principal.partner_id)
        return _issue(principal.partner_id, principal.admin_id)


_MAX_SCOPES = 65536


def system_scope(partner_id: int) -> Scope:
    """The explicit system identity of the command line (``partner-hub admin create``,
    ``ingest calls``): the operator of the deployment acts on all of one partner. Only the CLI
    calls this; ``tests/test_one_door.py`` fails when anything else in graph/ does."""
    return _issue(partner_id)


def scope_or_none(ctx: Context, obj: Obj, act: Act) -> Scope | None:
    """The caller's scope for ``act`` on ``obj``; None when refused (single lookups: not found)."""
    return ctx.services.authorizer.scope(ctx.principal, obj, act)


class Reach(StrEnum):
    """How far a caller's ``act`` on ``obj`` reaches below the parents it already sees."""

    NONE = "none"  # refused: nothing of that kind below any parent
    ALL = "all"  # below every parent the caller sees
    SOME = "some"  # only below some: ``visible_under`` asks the database which


def reach_under(ctx: Context, obj: Obj, act: Act, *, parent: Obj = Obj.CUSTOMER) -> Reach:
    """``visible_under``'s decision before any statement: it needs one only for ``SOME``
    (an ``assigned`` scope for ``obj`` narrower than the caller's scope for the parents)."""
    scope = scope_or_none(ctx, obj, act)
    if scope is None:
        return Reach.NONE
    if scope.assigned_admin_id is None:
        return Reach.ALL
    seen = scope_or_none(ctx, parent, Act.READ)
    if seen is not None and seen.assigned_admin_id == scope.assigned_admin_id:
        return Reach.ALL  # every parent the caller sees is already one of its own
    return Reach.SOME


async def visible_under(
    ctx: Context,
    obj: Obj,
    act: Act,
    parent_pks: Sequence[int],
    *,
    parent: Obj = Obj.CUSTOMER,
) -> set[int] | None:
    """Of ``parent`` objects the caller already sees (customers, or subscriptions), those whose
    ``obj`` (their subscriptions, trials, tags, assignments) it may ``act`` on; None when that
    is all of them.

    Seeing a parent does not imply seeing what hangs from it: a custom role may read
    customers but not subscriptions, or all customers but only its assigned ones'
    subscriptions. Built-in roles need no statement here (their scopes for both are the same)."""
    scope = scope_or_none(ctx, obj, act)
    reach = reach_under(ctx, obj, act, parent=parent)
    if reach is Reach.NONE or scope is None:
        return set()
    if reach is Reach.ALL:
        return None
    async with ctx.db() as session:
        if parent is Obj.SUBSCRIPTION:
            found = await subscriptions_by_ids(session, scope=scope, ids=list(parent_pks))
        else:
            found = await customers_by_ids(session, scope=scope, ids=list(parent_pks))
        return set(found)


def require(ctx: Context, obj: Obj, act: Act) -> Scope:
    """The caller's scope for ``act`` on ``obj``; a refusal raises ``FORBIDDEN``."""
    scope = ctx.services.authorizer.scope(ctx.principal, obj, act)
    if scope is None:
        raise forbidden(f"Your role may not {act.value} {obj.value} objects.")
    return scope
