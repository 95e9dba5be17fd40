"""One door, checked on the source: graph/ reaches partner data only with the caller's access.

Every async function of ``db.queries`` and ``db.ingest`` reads or writes the database. A call to
one from ``graph/`` (resolvers, types, loaders, the export, the CLI) passes the caller's access:

- ``scope=`` — a ``db.scope.Scope``, which only ``graph.auth`` can issue (tested below), or
- ``partner_id=<...scope>.partner_id`` — the partner of such a scope, for partner-wide kinds.

Anything else is named in the failure, unless ``ALLOWED`` lists that exact call site (the
function, the file and the ``def`` it is in) with the reason it needs no access decision.
A new resolver that calls a query function without access fails here and names itself.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import graphql
import pytest
from sqlalchemy import func, select

import db.ingest
import db.queries
from db.engine import session_factory
from db.models import AuditLog, Tag
from db.queries.admins import Principal
from db.queries.policies import read_policy_csv
from db.queries.tags import create_tag
from db.scope import ForgedScope, Scope, scope_issuer
from graph.auth.permissions import DEFAULT_POLICY_PATH, Act, Authorizer, Obj, system_scope
from graph.context import Context
from graph.errors import ApiError, ErrorCode
from graph.mutations import REFUSAL, Change, run_mutation, user_error
from graph.schema import build_schema
from tests.conftest import NOW, Api
from tests.helpers import Factory

ROOT = Path(__file__).resolve().parents[1]
GRAPH = ROOT / "graph"


class Call(NamedTuple):
    function: str  # db.queries.tags.update_tag
    path: str  # graph/resolvers/tags.py
    within: str  # the enclosing def, "<module>" at top level
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.within}(): {self.function}"


def data_functions() -> dict[str, inspect.Signature]:
    """Every public async function of db.queries and db.ingest, by qualified name."""
    found: dict[str, inspect.Signature] = {}
    for package in (db.queries, db.ingest):
        names = [package.__name__]
        names += [i.name for i in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
        for module in map(importlib.import_module, names):
            for name, value in vars(module).items():
                if name.startswith("_") or not inspect.iscoroutinefunction(value):
                    continue
                found[f"{value.__module__}.{value.__qualname__}"] = inspect.signature(value)
                found.setdefault(f"{module.__name__}.{name}", inspect.signature(value))
    return found


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name, for ``import a.b as c`` and ``from a import b as c``."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def _with_access(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "scope":
            return True
        value = keyword.value
        if (
            keyword.arg == "partner_id"
            and isinstance(value, ast.Attribute)
            and value.attr == "partner_id"
            and _names_scope(value.value)
        ):
            return True
    return False


def _names_scope(node: ast.expr) -> bool:
    """``scope``, ``planned_scope``, ``change.scope``: an expression naming a Scope."""
    if isinstance(node, ast.Name):
        return node.id.endswith("scope")
    return isinstance(node, ast.Attribute) and node.attr == "scope"


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, names: dict[str, str], functions: set[str]) -> None:
        self.path, self.names, self.functions = path, names, functions
        self.within = ["<module>"]
        self.calls: list[Call] = []

    def _def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.within.append(node.name)
        self.generic_visit(node)
        self.within.pop()

    visit_FunctionDef = _def
    visit_AsyncFunctionDef = _def

    def visit_Call(self, node: ast.Call) -> None:
        target = _dotted(node.func, self.names)
        if target in self.functions:
            if not _with_access(node):
                self.calls.append(Call(target, self.path, self.within[-1], node.lineno))
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        self.generic_visit(node)

    def _reference(self, node: ast.Name | ast.Attribute) -> None:
        # A query function handed over uncalled (``fetch=q.tags_by_ids``) would dodge the
        # check at its call: it counts as a call without access.
        target = _dotted(node, self.names)
        if target in self.functions and isinstance(node.ctx, ast.Load):
            self.calls.append(Call(target, self.path, self.within[-1], node.lineno))
            return
        self.generic_visit(node)

    visit_Name = _reference
    visit_Attribute = _reference


def graph_sources() -> list[Path]:
    return sorted(GRAPH.rglob("*.py"))


def unguarded_calls() -> list[Call]:
    """Calls from graph/ to a data function without the caller's access, in source order."""
    functions = set(data_functions())
    calls: list[Call] = []
    for path in graph_sources():
        tree = ast.parse(path.read_text(), str(path))
        finder = _Finder(str(path.relative_to(ROOT)), _imports(tree), functions)
        finder.visit(tree)
        calls.extend(finder.calls)
    return calls


# --- the call sites that need no access decision, each with its reason -----------------------

STARTUP = "start-up or authentication: runs before there is a caller to decide for"
CLI = "the command line: the operator's system identity (graph.auth.permissions.system_scope)"
MACHINERY = (
    "the mutation machinery: the write lock, the caller's own partner declared for its data "
    "version, and audit entries of that partner (partner and admin from the authenticated "
    "principal)"
)
LOCK = "a row lock on customers already found through the scope; it reads nothing back"
OWN = "the caller's own partner or admin row, which every authenticated admin may read"
PUBLIC = "resources and deployment-wide medians: the same for every partner, no partner data"
TABLE = "the calling table object is built from the scope (usage_table(scope, ...))"
FOUND = "keyed by a helpdesk case just read through the helpdesk scope"
LAUNCH = (
    "a launch token's row, found by its signed unguessable id, then held to the caller's partner "
    "and to the launch rights of caller and launcher (graph.auth.launch_rights) before any use"
)
ACTOR = (
    "createAdmin's one operation for the API and the CLI (graph.admin_ops): the partner and "
    "admin of its Actor, checked by escalation.Guard inside the transaction, or the system"
)
GUARD = "the escalation check itself: the policy lines and the calling admin's own row"
TARGET = "keyed by an admin just read in the partner of the admin-manage scope (_target_admin)"
TAG_ROW = "keyed by a tag just locked in the partner of the tag-write scope (_tag_to_change)"
PERSISTED = (
    "deployment-wide persisted documents (code, content-addressed), not partner data: what a "
    "document returns is decided per caller when it runs"
)
KEPT = (
    "the kept low-allocation spans' reference (db.low_reference): rebuilt for the whole "
    "deployment by the operator's command or serve's periodic job, no caller; no figure changes"
)
POLICY = (
    "the partner's roles and policy lines (lines name their partner's domain), read for the "
    "policy queries or changed under run_mutation's policy-manage check and escalation.Guard"
)

ALLOWED: dict[str, list[str]] = {
    PERSISTED: [
        "graph/persisted.py _registered_text persisted.registered_document",
        "graph/cli_persisted.py cmd_persisted_register persisted.register",
        "graph/cli_persisted.py cmd_persisted_list persisted.registered",
    ],
    STARTUP: [
        "graph/hub.py _start meta.get_or_create_secret",
        "graph/hub.py _start policies.seed_policies",
        "graph/hub.py _start policies.load_policies",
        "graph/hub.py _start ingest.ensure_quality_thresholds",
        "graph/hub.py sync_policies policies.load_policies",
        "graph/hub.py authenticate admins.authenticate_token",
        # the request's connection, for its token lookup first; it reads nothing itself
        "graph/endpoint.py _in_session engine.request_connection",
        "graph/context.py reload_principal admins.principal_of_token",
    ],
    CLI: [
        "graph/admin_ops.py system_transaction writes.begin_write",
        "graph/admin_ops.py system_transaction audit.write_audit",
        "graph/cli.py _audit_token audit.write_audit",
        "graph/cli.py cmd_token_issue admins.admin_by_email",
        "graph/cli.py cmd_token_issue admins.issue_token",
        "graph/cli.py cmd_token_revoke admins.active_token_owner",
        "graph/cli.py cmd_token_revoke admins.revoke_token",
        "graph/cli.py cmd_admin_create admins.partner_by_name",
        "graph/cli_ingest.py audit_load writes.begin_write",
        "graph/cli_ingest.py audit_load audit.write_audit",
        "graph/cli_ingest.py cmd_ingest_calls ingest.ensure_quality_thresholds",
        "graph/cli_ingest.py cmd_ingest_calls ingest.ingest_stream",
    ],
    KEPT: [
        "graph/cli_analytics.py rebase writes.begin_write",
        "graph/low_rebase.py rebase_turn writes.begin_write",
    ],
    MACHINERY: [
        "graph/mutations.py transaction writes.begin_write",
        "graph/mutations.py transaction audit.write_audit",
        "graph/mutations.py audit_refusal writes.begin_write",
        "graph/mutations.py audit_refusal audit.write_audit",
        "graph/mutations.py transaction writes.writes_for",
        "graph/mutations.py audit_refusal writes.writes_for",
    ],
    LOCK: [
        "graph/resolvers/assignments.py _change writes.lock_customers",
        "graph/resolvers/tags.py _customer_tags writes.lock_customers",
        "graph/resolvers/tags.py _subscription_tags writes.lock_customers",
        "graph/resolvers/trials.py _locked_trial writes.lock_customers",
        "graph/resolvers/trials.py _start writes.lock_customers",
    ],
    OWN: [
        "graph/loaders.py batch admins.partners_by_ids",
        "graph/resolvers/admins.py viewer own_rows.admin_row",
        "graph/resolvers/admins.py partner own_rows.partner_row",
        "graph/resolvers/nodes.py node own_rows.partner_row",
    ],
    PUBLIC: [
        "graph/resolvers/section_source.py _load_medians analytics.low_allocation_medians",
        "graph/resolvers/resources.py quick_links resources.quick_links",
        "graph/resolvers/resources.py featured_resources resources.featured_resources",
        "graph/resolvers/resources.py count resources.count_resources",
        "graph/resolvers/resources.py resources resources.resources_page",
    ],
    TABLE: [
        "graph/resolvers/calling.py _page calls.table_page",
        "graph/resolvers/calling.py count calls.table_count",
    ],
    FOUND: [
        "graph/resolvers/helpdesk.py _comment helpdesk.add_helpdesk_comment",
        "graph/resolvers/helpdesk.py _close helpdesk.add_helpdesk_comment",
        "graph/types/helpdesk.py comments_by_case_id helpdesk.comments_by_case_ids",
    ],
    ACTOR: [
        "graph/admin_ops.py known_role policies.custom_roles",
        "graph/admin_ops.py create_admin admin_management.lock_partner",
        "graph/admin_ops.py create_admin admin_management.email_taken",
        "graph/admin_ops.py create_admin admins.create_admin",
    ],
    GUARD: [
        "graph/auth/escalation.py load policies.load_policies",
        "graph/auth/escalation.py load admin_management.admin_row",
        "graph/resolvers/admin_mutations.py _still_managed policies.load_policies",
    ],
    TARGET: [
        "graph/resolvers/admin_mutations.py _update admin_management.update_admin",
        "graph/resolvers/admin_mutations.py _deactivate admin_management.deactivate_admin",
    ],
    POLICY: [
        "graph/resolvers/policies.py _roles policies.custom_roles",
        "graph/resolvers/policies.py _role_names policies.custom_roles",
        "graph/resolvers/policies.py _apply_change admin_management.active_admin_roles",
        "graph/resolvers/policies.py _apply_change policies.remove_policy_line",
        "graph/resolvers/policies.py _apply_change policies.add_policy_line",
        "graph/resolvers/policies.py _reload_policies policies.load_policies",
        "graph/resolvers/policies.py _target_admin admin_management.admin_row",
        "graph/resolvers/policies.py _create_role policies.load_policies",
    ],
    TAG_ROW: [
        "graph/resolvers/tags.py _update tags.update_tag",
        "graph/resolvers/tags.py _delete tags.delete_tag",
    ],
    LAUNCH: [
        "graph/resolvers/launch.py verify_launch_token launch.launch_row",
        "graph/resolvers/launch.py verify_launch_token admins.admin_rows_by_ids",
        "graph/resolvers/launch.py verify_launch_token launch.use_launch",
        "graph/resolvers/launch.py verify_launch_token launch.organization_name",
    ],
}


def _site(call: Call) -> str:
    """``path def function``, the function without ``db.queries.`` (``db.`` for db.ingest)."""
    function = call.function.removeprefix("db.queries.").removeprefix("db.")
    return f"{call.path} {call.within} {function}"


def allowed_sites() -> dict[str, str]:
    return {site: reason for reason, sites in ALLOWED.items() for site in sites}


def test_graph_reaches_query_functions_only_with_the_callers_access() -> None:
    # given
    allowed = allowed_sites()

    # when
    offending = [call for call in unguarded_calls() if _site(call) not in allowed]

    # then
    assert not offending, (
        "graph/ calls a query function without the caller's access (pass scope=, or "
        "partner_id=scope.partner_id of a Scope from graph.auth; or, when no access decision "
        "applies, list the call site in ALLOWED of tests/test_one_door.py with the reason):\n"
        + "\n".join(f"  {call}" for call in offending)
    )


def test_every_allowed_call_site_still_exists() -> None:
    # given
    present = {_site(call) for call in unguarded_calls()}

    # when
    stale = sorted(set(allowed_sites()) - present)

    # then
    assert not stale, f"ALLOWED names call sites that no longer exist: {stale}"


def test_the_check_finds_a_call_without_access_and_accepts_one_with_it() -> None:
    # given: a resolver module calling query functions three ways
    source = (
        "from db.queries import tags as tq\n"
        "from db.queries.customers import customers_by_ids\n"
        "async def leaky(ctx, session):\n"
        "    await tq.tags_by_ids(session, partner_id=ctx.principal.partner_id, ids=[1])\n"
        "    await customers_by_ids(session, scope=scope, ids=[1])\n"
        "    await tq.tags_of_partner(session, partner_id=change.scope.partner_id)\n"
        "def handed_over():\n"
        "    return tq.update_tag\n"
    )
    tree = ast.parse(source)
    finder = _Finder("graph/resolvers/leaky.py", _imports(tree), set(data_functions()))

    # when
    finder.visit(tree)

    # then
    assert [str(call) for call in finder.calls] == [
        "graph/resolvers/leaky.py:4 in leaky(): db.queries.tags.tags_by_ids",
        "graph/resolvers/leaky.py:8 in handed_over(): db.queries.tags.update_tag",
    ]


def test_only_graph_auth_makes_a_scope() -> None:
    # when / then: built by hand, a second issuer, or changed after issue: refused
    with pytest.raises(ForgedScope):
        Scope(partner_id=1)
    with pytest.raises(ForgedScope):
        Scope(partner_id=1, assigned_admin_id=None, few=False, mint=object())
    with pytest.raises(ForgedScope):
        scope_issuer()
    with pytest.raises(ForgedScope):
        replace(system_scope(1), partner_id=2)
    with pytest.raises(ForgedScope):
        replace(system_scope(1), assigned_admin_id=None, partner_id=1, mint=(object(), 1, None))


def test_an_issued_scope_keeps_working_through_the_query_planner_hint() -> None:
    # given
    scope = system_scope(7)

    # when
    planned = replace(scope, few=True)

    # then
    assert (planned.partner_id, planned.assigned_admin_id, planned.few) == (7, None, True)
    assert planned.key == scope.key == "7:*"


def test_nothing_in_graph_but_graph_auth_builds_or_issues_scopes() -> None:
    # given
    issuers = {"Scope", "scope_issuer", "system_scope"}
    allowed = {("graph/auth/permissions.py", "scope_issuer")}

    # when
    found = []
    for path in graph_sources():
        relative = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(a.name == "_issue" for a in node.names):
                found.append(f"{relative}:{node.lineno} imports the issuer")
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else None
                name = node.func.attr if isinstance(node.func, ast.Attribute) else name
                if name in issuers and (relative, name) not in allowed:
                    if name == "system_scope" and relative.startswith("graph/cli"):
                        continue
                    found.append(f"{relative}:{node.lineno} {name}()")

    # then
    assert not found, f"scopes made outside graph/auth (or system_scope outside the CLI): {found}"


# --- run_mutation: the check and the audit entry cannot be forgotten --------------------------


@dataclass
class _Services:
    authorizer: Authorizer


async def _context(api: Api, role: str) -> tuple[Context, int]:
    """A mutation's context for an admin of ``role`` (what the app builds per request)."""
    f = Factory(api.engine)
    partner = await f.partner()
    admin = await f.admin(partner, "someone@acme.example", role)
    principal = Principal(admin, partner, "someone@acme.example", "Someone", role, 0)
    authorizer = Authorizer(read_policy_csv(DEFAULT_POLICY_PATH))
    session = session_factory(api.engine)()
    services: Any = _Services(authorizer)
    return Context(services, principal, session, "test", NOW), partner


async def _audit_rows(api: Api) -> list[tuple[str, str, str | None]]:
    async with api.engine.connect() as conn:
        rows = await conn.execute(
            select(AuditLog.operation, AuditLog.object_type, AuditLog.after).order_by(AuditLog.id)  # type: ignore[arg-type]
        )
        return [tuple(r) for r in rows]


async def _tags(api: Api) -> int:
    async with api.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Tag))).scalar_one())


def _create_tag(c: Change) -> Any:
    return create_tag(
        c.session, partner_id=c.scope.partner_id, name="New", description=None, now=c.ctx.now
    )


async def test_a_change_without_an_audit_entry_is_not_committed(api: Api) -> None:
    # given: a mutation whose work forgets its audit entry
    ctx, _ = await _context(api, "FULL_ADMIN")

    async def work(c: Change) -> str:
        await _create_tag(c)
        return "done"

    # when
    with pytest.raises(RuntimeError, match="without an audit entry"):
        await run_mutation(
            ctx, operation="forgetful", obj=Obj.TAG, act=Act.WRITE, work=work, refused=str
        )
    await ctx.session.close()

    # then
    assert await _tags(api) == 0
    assert await _audit_rows(api) == []


async def test_a_refused_change_rolls_back_and_audits_only_the_refusal(api: Api) -> None:
    # given: a mutation that writes, then finds the input wrong
    ctx, _ = await _context(api, "FULL_ADMIN")

    async def work(c: Change) -> str:
        await _create_tag(c)
        c.record("tag", None, after={"name": "New"})
        raise user_error("NAME_TAKEN", "Taken.", "name")

    # when
    answer = await run_mutation(
        ctx,
        operation="createTag",
        obj=Obj.TAG,
        act=Act.WRITE,
        work=work,
        refused=lambda errors: [e.code for e in errors],
    )
    await ctx.session.close()

    # then
    assert answer == ["NAME_TAKEN"]
    assert await _tags(api) == 0
    assert await _audit_rows(api) == [("createTag", REFUSAL, '{"codes":["NAME_TAKEN"]}')]


async def test_a_forbidden_caller_is_audited_and_its_work_never_runs(api: Api) -> None:
    # given
    ctx, _ = await _context(api, "READ_ONLY_ADMIN")
    ran: list[str] = []

    async def work(c: Change) -> str:
        ran.append("work")
        return "done"

    # when
    with pytest.raises(ApiError) as refused:
        await run_mutation(
            ctx,
            operation="createTag",
            obj=Obj.TAG,
            act=Act.WRITE,
            validate=lambda: ran.append("validate"),
            work=work,
            refused=str,
        )
    await ctx.session.close()

    # then
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert ran == []
    assert await _audit_rows(api) == [("createTag", REFUSAL, '{"codes":["FORBIDDEN"]}')]


def _calls_in(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def _is_mutation(node: ast.AST) -> bool:
    if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
        return False
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "mutation":
            return True
    return False


def _reaches(local: dict[str, set[str]], names: set[str], seen: set[str]) -> bool:
    """Whether calling ``names`` reaches ``run_mutation`` through the module's own functions."""
    if "run_mutation" in names:
        return True
    inner = {n for n in names if n in local and n not in seen}
    return any(_reaches(local, local[n], seen | inner) for n in inner)


def test_every_mutation_resolver_goes_through_run_mutation() -> None:
    # given: each @strawberry.mutation of graph/resolvers, and the module's own functions
    offending, mutations = [], 0
    for path in sorted((GRAPH / "resolvers").glob("*.py")):
        tree = ast.parse(path.read_text())
        local = {
            n.name: _calls_in(n)
            for n in ast.walk(tree)
            if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
        }

        # when
        for node in ast.walk(tree):
            mutations += _is_mutation(node)
            if _is_mutation(node) and not _reaches(local, _calls_in(node), set()):
                offending.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")  # type: ignore[attr-defined]

    # then: every Mutation field of the schema has its resolver here
    schema = graphql.build_schema(build_schema().as_str())
    assert schema.mutation_type is not None
    assert mutations == len(schema.mutation_type.fields)
    assert not offending, (
        "mutations that do not go through graph.mutations.run_mutation (authorize, validate, "
        f"change, audit, respond; refusals audited): {offending}"
    )
