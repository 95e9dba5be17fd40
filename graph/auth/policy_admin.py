"""Policy administration rules: what a partner's change to its policy means in Casbin lines.

Built-in rules are shared by every partner (domain ``*``); a partner changes its own policy only:
adding a rule writes an ``allow`` line for its domain, removing a built-in rule writes a ``deny``
line for its domain, removing one of its own rules deletes that line. No change may leave the
partner without an active admin who can manage policies and admins (locked out).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from db.queries.policies import PolicyLine
from graph.auth.permissions import (
    BUILT_IN_ROLES,
    Act,
    Authorizer,
    Obj,
    ScopeKind,
    admin_subject,
    domain_of,
)

ROLE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,63}$")
OBJECTS = {o.value for o in Obj}
ACTIONS = {a.value for a in Act}
SCOPES = {s.value for s in ScopeKind}


@dataclass(frozen=True, slots=True)
class Rule:
    role: str
    object: str
    action: str
    scope: str
    built_in: bool = False

    def line(self, domain: str, effect: str = "allow") -> PolicyLine:
        return ("p", self.role, domain, self.object, self.action, self.scope, effect)


def rule_problem(obj: str, action: str, scope: str) -> tuple[str, str, str] | None:
    """(code, message, field) for a rule naming an unknown object, action or scope."""
    if obj not in OBJECTS:
        return "UNKNOWN_OBJECT", f"Unknown object kind {obj!r}: use {sorted(OBJECTS)}.", "object"
    if action not in ACTIONS:
        return "UNKNOWN_ACTION", f"Unknown action {action!r}: use {sorted(ACTIONS)}.", "action"
    if scope not in SCOPES:
        return "UNKNOWN_SCOPE", f"Unknown scope {scope!r}: use {sorted(SCOPES)}.", "scope"
    return None


def effective_rules(lines: Iterable[PolicyLine], partner_id: int) -> list[Rule]:
    """Every allowed rule of every role in this partner, after its own denies."""
    domain = domain_of(partner_id)
    allowed: dict[tuple[str, str, str, str], bool] = {}
    denied: set[tuple[str, str, str, str]] = set()
    for line in lines:
        if line[0] != "p" or line[2] not in ("*", domain):
            continue
        key = (line[1], line[3], line[4], line[5])
        effect = line[6] if len(line) > 6 else "allow"
        if effect == "deny":
            denied.add(key)
        else:
            allowed[key] = allowed.get(key, False) or line[2] == "*"
    return [
        Rule(*key, built_in=built_in)
        for key, built_in in sorted(allowed.items())
        if key not in denied
    ]


def add_rule_lines(
    lines: Sequence[PolicyLine], partner_id: int, rule: Rule
) -> tuple[list[PolicyLine], list[PolicyLine]] | None:
    """(lines to insert, lines to delete) to allow ``rule`` here; None if it is allowed already."""
    domain = domain_of(partner_id)
    deny = rule.line(domain, "deny")
    current = {(r.role, r.object, r.action, r.scope) for r in effective_rules(lines, partner_id)}
    if (rule.role, rule.object, rule.action, rule.scope) in current:
        return None
    if deny in lines:
        built_in = rule.line("*") in lines
        return ([] if built_in else [rule.line(domain)]), [deny]
    return [rule.line(domain)], []


def remove_rule_lines(
    lines: Sequence[PolicyLine], partner_id: int, rule: Rule
) -> tuple[list[PolicyLine], list[PolicyLine]] | None:
    """(lines to insert, lines to delete) to withdraw ``rule`` here; None if it is not allowed."""
    domain = domain_of(partner_id)
    current = {(r.role, r.object, r.action, r.scope) for r in effective_rules(lines, partner_id)}
    if (rule.role, rule.object, rule.action, rule.scope) not in current:
        return None
    to_delete = [line for line in lines if line == rule.line(domain)]
    to_insert = [rule.line(domain, "deny")] if rule.line("*") in lines else []
    return to_insert, to_delete


def grant_line(admin_id: int, role: str, partner_id: int) -> PolicyLine:
    return ("g", admin_subject(admin_id), role, domain_of(partner_id))


def apply(
    lines: Sequence[PolicyLine], insert: Sequence[PolicyLine], delete: Sequence[PolicyLine]
) -> list[PolicyLine]:
    gone = set(delete)
    return [line for line in lines if line not in gone] + list(insert)


def keeps_a_manager(
    lines: Sequence[PolicyLine], partner_id: int, admins: Iterable[tuple[int, str]]
) -> bool:
    """True when some active admin (id, primary role) may still manage policies and admins."""
    authorizer = Authorizer(list(lines))
    for admin_id, role in admins:
        roles = [role, *authorizer.granted_roles(admin_id, partner_id)]
        if (
            authorizer.widest(roles, partner_id, Obj.POLICY, Act.MANAGE) is ScopeKind.ALL
            and authorizer.widest(roles, partner_id, Obj.ADMIN, Act.MANAGE) is ScopeKind.ALL
        ):
            return True
    return False


def is_built_in(role: str) -> bool:
    return role in BUILT_IN_ROLES
