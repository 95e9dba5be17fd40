"""The role matrix below the root: every relationship field, the CSV export, the CLI's commands.

``tests/test_role_matrix.py`` covers each root field, mutation and ``node`` type. Here each
relationship field of the objects a caller can reach (a customer's tags, a subscription's
license lines, a case's author...) is read by every role, on a customer assigned to the caller
(MINE) and on one that is not (THEIRS), through both ways the server resolves it:

- with prefetch: ``customer(id:)`` / ``helpdeskCase(id:)`` load the relationship for the page;
- without: ``node(id:)`` resolves it through the per-request loader, one parent at a time.

Each cell is two letters, for MINE then THEIRS: ``S`` shown, ``E`` the parent is shown but the
relationship is empty (or null), ``H`` the parent itself is hidden. Both paths must agree.

Besides the four built-in roles, three custom roles (made through ``createRole``) allow a kind
but deny what hangs from it: ``CUSTOMER_VIEWER`` reads every customer and nothing else;
``NARROW_VIEWER`` reads every customer but only its assigned customers' subscriptions, trials,
tags and assignments; ``ADMIN_MANAGER`` holds admin read and manage, without policy manage.

A relationship field added to one of ``NESTED_TYPES`` without a row here fails the suite, as
does a CLI command without a row in ``CLI_COMMANDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path as FsPath
from typing import Any

import graphql
import pytest
from sqlalchemy import func, insert, select

from db.models import AuditLog, HelpdeskComment, Invoice, Order
from graph.cli import build_parser, main
from graph.ids import from_global_id
from graph.schema import build_schema
from tests.authz_support import AuthzFactory, create_admin, create_role, gid
from tests.conftest import NOW, Api
from tests.helpers import post_graphql, token_for
from tests.test_ingest import record, write_csv

ROLES = (
    "FULL_ADMIN",
    "PARTNER_ADMIN",
    "READ_ONLY_ADMIN",
    "SALES_ADMIN",
    "CUSTOMER_VIEWER",
    "NARROW_VIEWER",
    "ADMIN_MANAGER",
)
CUSTOM_RULES = {
    "CUSTOMER_VIEWER": [("customer", "read", "all")],
    "NARROW_VIEWER": [
        ("customer", "read", "all"),
        ("subscription", "read", "assigned"),
        ("trial", "read", "assigned"),
        ("tag", "read", "assigned"),
        ("assignment", "read", "assigned"),
    ],
    "ADMIN_MANAGER": [("admin", "read", "all"), ("admin", "manage", "all")],
}
FULL = "full@acme.example"
SPARE = "spare@acme.example"


def email(role: str) -> str:
    return f"{role.lower().replace('_', '-')}@acme.example"


@dataclass
class World:
    api: Api
    caller: str
    mine: int  # customer assigned to the caller
    theirs: int  # customer not assigned to the caller
    subs: dict[str, int]  # "mine"/"theirs" -> paid subscription
    cases: dict[str, int]  # "mine"/"theirs" -> helpdesk case about that customer
    spare: int  # another admin of the partner


async def build_world(api: Api, caller: str) -> World:
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    full = await f.admin(partner, FULL, "FULL_ADMIN")
    spare = await f.admin(partner, SPARE, "PARTNER_ADMIN")
    if caller in CUSTOM_RULES:
        body = await create_role(api, FULL, caller, CUSTOM_RULES[caller])
        assert body["data"]["createRole"]["userErrors"] == [], body
        caller_pk = from_global_id(await create_admin(api, FULL, email(caller), caller))[1]
    elif caller == "FULL_ADMIN":
        caller_pk = full
    else:
        caller_pk = await f.admin(partner, email(caller), caller)
    customers: dict[str, int] = {}
    subs: dict[str, int] = {}
    cases: dict[str, int] = {}
    for which in ("mine", "theirs"):
        customer = await f.customer(partner, f"Customer {which}")
        customers[which] = customer
        if which == "mine":
            await f.assign(customer, caller_pk)
        await f.assign(customer, spare)
        sub = await f.subscription(customer)
        subs[which] = sub
        await f.trial(customer)
        tag = await f.tag(partner, f"Tag {which}")
        await f.tag_customer(partner, customer, tag)
        await f.tag_subscription(partner, sub, tag)
        await f.refresh(customer)
        case = await f.helpdesk_case(partner, full, customer_id=customer)
        cases[which] = case
        async with api.engine.begin() as conn:
            await conn.execute(
                insert(Invoice).values(
                    partner_id=partner,
                    subscription_id=sub,
                    invoice_number=f"INV-{which}",
                    issued_at=NOW - timedelta(days=30),
                    due_at=NOW,
                    amount_cents=1000,
                    currency="USD",
                    status="PAID",
                )
            )
            await conn.execute(
                insert(Order).values(
                    partner_id=partner,
                    subscription_id=sub,
                    order_number=f"ORD-{which}",
                    placed_at=NOW - timedelta(days=100),
                    action="NEW",
                    description="New subscription",
                    status="COMPLETED",
                )
            )
            await conn.execute(
                insert(HelpdeskComment).values(
                    case_id=case, admin_id=full, body="Looking into it.", created_at=NOW
                )
            )
    await token_for(api, email(caller) if caller != "FULL_ADMIN" else FULL)
    return World(api, caller, customers["mine"], customers["theirs"], subs, cases, spare)


def caller_email(w: World) -> str:
    return FULL if w.caller == "FULL_ADMIN" else email(w.caller)


# --- rows ----------------------------------------------------------------------------------------

Target = Callable[[World, str], tuple[str, str]]  # (world, "mine"/"theirs") -> (variable, id)
Extract = Callable[[Any], Any]  # the parent object -> the relationship value


@dataclass(frozen=True)
class Path:
    name: str
    document: str  # one variable $id; the parent object is at data[root]
    root: str
    target: Target
    parent: Callable[[Any], Any] = lambda value: value


@dataclass(frozen=True)
class NestedRow:
    label: str  # "Customer.tags"
    paths: tuple[Path, ...]
    extract: Extract
    expect: tuple[str, ...]  # per role in ROLES: two letters, MINE then THEIRS

    def outcome(self, role: str) -> str:
        return self.expect[ROLES.index(role)]


def customer_id(w: World, which: str) -> tuple[str, str]:
    return "id", gid("Customer", w.mine if which == "mine" else w.theirs)


def subscription_id(w: World, which: str) -> tuple[str, str]:
    return "id", gid("Subscription", w.subs[which])


def case_id(w: World, which: str) -> tuple[str, str]:
    return "id", gid("HelpdeskCase", w.cases[which])


def spare_id(w: World, which: str) -> tuple[str, str]:
    return "id", gid("Admin", w.spare)


def on_customer(selection: str) -> tuple[Path, ...]:
    return (
        Path(
            "customer(id:) with prefetch",
            f"query Q($id: ID!) {{ customer(id: $id) {{ id {selection} }} }}",
            "customer",
            customer_id,
        ),
        Path(
            "node(id:) through the loader",
            f"query Q($id: ID!) {{ node(id: $id) {{ ... on Customer {{ id {selection} }} }} }}",
            "node",
            customer_id,
        ),
    )


def paid_subscription(value: Any) -> Any:
    # Newest first: the trial (started 5 days ago) before the paid one (100 days ago).
    return value["subscriptions"][-1] if value and value["subscriptions"] else None


def on_subscription(selection: str) -> tuple[Path, ...]:
    return (
        Path(
            "customer { subscriptions } with prefetch",
            "query Q($id: ID!) { customer(id: $id) { id subscriptions { id "
            f"{selection} }} }} }}",
            "customer",
            customer_id,
            paid_subscription,
        ),
        Path(
            "node(id:) through the loader",
            f"query Q($id: ID!) {{ node(id: $id) {{ ... on Subscription {{ id {selection} }} }} }}",
            "node",
            subscription_id,
        ),
    )


def on_case(selection: str) -> tuple[Path, ...]:
    return (
        Path(
            "helpdeskCase(id:)",
            f"query Q($id: ID!) {{ helpdeskCase(id: $id) {{ id {selection} }} }}",
            "helpdeskCase",
            case_id,
        ),
        Path(
            "node(id:)",
            f"query Q($id: ID!) {{ node(id: $id) {{ ... on HelpdeskCase {{ id {selection} }} }} }}",
            "node",
            case_id,
        ),
    )


def first_assignment(value: Any) -> Any:
    return value["partnerAdmins"][0] if value and value["partnerAdmins"] else None


def first_comment(value: Any) -> Any:
    return value["comments"][0] if value and value["comments"] else None


def field(name: str) -> Extract:
    return lambda parent: parent[name]


# Roles: FULL_ADMIN, PARTNER_ADMIN, READ_ONLY_ADMIN, SALES_ADMIN, CUSTOMER_VIEWER, NARROW_VIEWER,
# ADMIN_MANAGER. Two letters each: on MINE, on THEIRS.
OWN = ("SS", "SH", "SS", "SH", "SS", "SS", "HH")  # the customer's own rule
UNDER = ("SS", "SH", "SS", "SH", "EE", "SE", "HH")  # a kind hanging from the customer
SUB = ("SS", "SH", "SS", "SH", "HH", "SH", "HH")  # below a subscription
CASE = ("SS", "SS", "SS", "HH", "HH", "HH", "HH")  # below a helpdesk case
ASSIGNED = (
    Path(
        "customer { partnerAdmins } with prefetch",
        "query Q($id: ID!) { customer(id: $id) { id partnerAdmins { admin { id } } } }",
        "customer",
        customer_id,
        first_assignment,
    ),
    Path(
        "node(id:) through the loader",
        "query Q($id: ID!) { node(id: $id) { ... on Customer { id partnerAdmins { admin { id } } "
        "} } }",
        "node",
        customer_id,
        first_assignment,
    ),
)
AUTHOR = tuple(
    Path(p.name, p.document, p.root, p.target, first_comment)
    for p in on_case("comments { author { id } }")
)

# fmt: off
NESTED: list[NestedRow] = [
    NestedRow("Customer.statuses", on_customer("statuses"), field("statuses"), OWN),
    NestedRow("Customer.products", on_customer("products"), field("products"), OWN),
    NestedRow("Customer.tags", on_customer("tags { id }"), field("tags"), UNDER),
    NestedRow("Customer.subscriptions", on_customer("subscriptions { id }"),
              field("subscriptions"), UNDER),
    NestedRow("Customer.trials", on_customer("trials { id }"), field("trials"), UNDER),
    NestedRow("Customer.partnerAdmins", on_customer("partnerAdmins { admin { id } }"),
              field("partnerAdmins"), UNDER),
    NestedRow("AssignedAdmin.admin", ASSIGNED, field("admin"),
              ("SS", "SH", "SS", "SH", "HH", "SH", "HH")),
    NestedRow("Subscription.licenses", on_subscription("licenses { product }"),
              field("licenses"), SUB),
    NestedRow("Subscription.invoices", on_subscription("invoices { invoiceNumber }"),
              field("invoices"), SUB),
    NestedRow("Subscription.orders", on_subscription("orders { orderNumber }"),
              field("orders"), SUB),
    NestedRow("Subscription.tags", on_subscription("tags { id }"), field("tags"), SUB),
    NestedRow("Admin.partner", (
        Path("node(id:)", "query Q($id: ID!) { node(id: $id) { ... on Admin { id partner { id } "
             "} } }", "node", spare_id),
    ), field("partner"), ("SS", "SS", "SS", "SS", "HH", "HH", "SS")),
    NestedRow("HelpdeskCase.customer", on_case("customer { id }"), field("customer"),
              ("SS", "SE", "SS", "HH", "HH", "HH", "HH")),
    NestedRow("HelpdeskCase.openedBy", on_case("openedBy { id }"), field("openedBy"), CASE),
    NestedRow("HelpdeskCase.comments", on_case("comments { body }"), field("comments"), CASE),
    NestedRow("HelpdeskComment.author", AUTHOR, field("author"), CASE),
]
# fmt: on

# Types whose relationship fields need a row; Tag has none. Plain values that are not
# relationships (no loader, no rule of their own) are named with the reason.
NESTED_TYPES = {
    "Admin",
    "AssignedAdmin",
    "Customer",
    "HelpdeskCase",
    "HelpdeskComment",
    "Partner",
    "Subscription",
    "Tag",
    # No relationship fields (an endpoint's id is a value): rows in test_role_matrix_webhooks.
    "WebhookDelivery",
    "WebhookEndpoint",
}
NOT_RELATIONSHIPS = {
    "Partner.ownOrganization": "a value of the partner row itself",
    "WebhookEndpoint.events": "a list of enum values of the endpoint row itself",
}


def schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(build_schema().as_str())


def relationship_fields() -> set[str]:
    """Fields of ``NESTED_TYPES`` whose type is an object or a list: what a loader answers."""
    found = set()
    for name in NESTED_TYPES:
        kind = schema().type_map[name]
        assert isinstance(kind, graphql.GraphQLObjectType)
        for field_name, definition in kind.fields.items():
            of, listed = definition.type, False
            while isinstance(of, graphql.GraphQLNonNull | graphql.GraphQLList):
                listed = listed or isinstance(of, graphql.GraphQLList)
                of = of.of_type
            if isinstance(of, graphql.GraphQLObjectType) or (
                listed and not isinstance(of, graphql.GraphQLScalarType)
            ):
                found.add(f"{name}.{field_name}")
    return found - set(NOT_RELATIONSHIPS)


def test_every_relationship_field_has_a_row() -> None:
    # given
    rows = {row.label for row in NESTED}

    # when
    missing = sorted(relationship_fields() - rows)
    stale = sorted(rows - relationship_fields())

    # then
    assert not missing, f"relationship fields without a row in NESTED: {missing}"
    assert not stale, f"rows for fields the schema does not have: {stale}"
    assert all(len(row.expect) == len(ROLES) for row in NESTED)


def test_every_node_type_is_covered() -> None:
    # given
    node = schema().type_map["Node"]
    assert isinstance(node, graphql.GraphQLInterfaceType)

    # when
    implementers = {t.name for t in schema().get_possible_types(node)}

    # then: a new Node type needs its relationships here and a node row in the root matrix
    assert implementers <= NESTED_TYPES, sorted(implementers - NESTED_TYPES)


def _state(parent: Any, extract: Extract) -> str:
    if parent is None:
        return "H"
    value = extract(parent)
    return "S" if value else "E"


async def check_row(w: World, row: NestedRow) -> list[str]:
    expected = row.outcome(w.caller)
    problems = []
    for path in row.paths:
        got = ""
        for which in ("mine", "theirs"):
            name, value = path.target(w, which)
            body = await post_graphql(w.api, path.document, {name: value}, as_=caller_email(w))
            if body.get("errors"):
                problems.append(f"{path.name} on {which}: errors {body['errors']}")
                got += "?"
                continue
            got += _state(path.parent(body["data"][path.root]), row.extract)
        if got != expected:
            problems.append(f"{path.name}: {got} instead of {expected}")
    return problems


@pytest.mark.parametrize("role", ROLES)
async def test_nested_role_matrix(api: Api, role: str) -> None:
    # given
    w = await build_world(api, role)

    # when
    problems = [
        f"{row.label} as {role}: {problem}" for row in NESTED for problem in await check_row(w, row)
    ]

    # then
    assert not problems, "\n".join(problems)


# --- GET /export/customers.csv: the same rows and cells as GraphQL, per role ---------------------

EXPORT_FORBIDDEN = {"ADMIN_MANAGER"}  # no customer read: 403 FORBIDDEN
DIRECTORY = """
query { customers(first: 100) { nodes {
  name statuses products tags { name }
  subscriptions { state startDate endDate licenses { purchased assigned } }
} } }
"""


def expected_cells(node: dict[str, Any]) -> dict[str, str]:
    """The export's cells for one customer, from what the caller reads through GraphQL."""
    readable = bool(node["subscriptions"])
    in_force = [s for s in node["subscriptions"] if s["state"] == "ACTIVE"]
    in_force = [s for s in in_force if s["startDate"] <= NOW.isoformat() < s["endDate"]]
    lines = [line for s in in_force for line in s["licenses"]]
    return {
        "statuses": ";".join(node["statuses"]),
        "products": ";".join(node["products"]),
        "tags": ";".join(t["name"] for t in node["tags"]),
        # every customer here has subscriptions: none listed means none readable, an empty cell
        "licenses_purchased": str(sum(line["purchased"] for line in lines)) if readable else "",
        "licenses_assigned": str(sum(line["assigned"] for line in lines)) if readable else "",
        "has_end": "yes" if in_force else "no",
    }


@pytest.mark.parametrize("role", ROLES)
async def test_export_shows_each_role_what_graphql_shows_it(api: Api, role: str) -> None:
    # given
    w = await build_world(api, role)
    token = await token_for(api, caller_email(w))

    # when
    response = await api.client.get(
        "/export/customers.csv", headers={"Authorization": f"Bearer {token}"}
    )

    # then
    if role in EXPORT_FORBIDDEN:
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        return
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    body = await post_graphql(api, DIRECTORY, as_=caller_email(w))
    seen = {node["name"]: expected_cells(node) for node in body["data"]["customers"]["nodes"]}
    assert sorted(row["name"] for row in rows) == sorted(seen), "rows differ from GraphQL's"
    for row in rows:
        cells = {key: row[key] for key in seen[row["name"]] if key != "has_end"}
        cells["has_end"] = "yes" if row["nearest_end_date"] else "no"
        assert cells == seen[row["name"]], (role, row["name"])


# --- the command line: every command has a row ---------------------------------------------------

# Each command of ``partner-hub``: how it reaches partner data. The operator runs the CLI with
# the deployment's database URL, so its identity is the system's (no token, no role); commands
# that write partner data are audited under that identity and apply the API's validation.
CLI_COMMANDS = {
    "serve": "runs the API: every request goes through the door",
    "seed": "writes demo or synthetic partners (an operator's act, not a partner's)",
    "token issue": "writes a token for an admin (system identity; the token is the door's key)",
    "token revoke": "revokes a token (system identity)",
    "admin create": "writes an admin of a partner (system identity; the API's email rules)",
    "export-schema": "prints the SDL, reads no data",
    "migrate": "changes the schema, reads no partner data",
    "ingest calls": "writes call records of one partner (system identity)",
    "persisted register": "writes deployment-wide documents (code, not partner data); what a "
    "document returns is decided per caller when it runs",
    "persisted list": "prints the registered documents' hashes, reads no partner data",
    "webhooks listen": "runs a local receiver of webhooks, reads no data",
    "rebase-low-allocation": "rebuilds kept low-allocation spans at the current medians for the "
    "whole deployment (system identity); no figure changes, so no partner-visible write to audit",
}


def cli_commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                inner = cli_commands(sub, f"{prefix}{name} ")
                found |= inner or {f"{prefix}{name}"}
    return found


def test_every_cli_command_has_a_row() -> None:
    # given
    commands = cli_commands(build_parser())

    # when
    missing = sorted(commands - set(CLI_COMMANDS))
    stale = sorted(set(CLI_COMMANDS) - commands)

    # then
    assert not missing, f"CLI commands without a row in CLI_COMMANDS: {missing}"
    assert not stale, f"rows for CLI commands that do not exist: {stale}"


# Each writing command, run in this process (``graph.cli.main``) as the operator runs it: the
# system identity writes one audit entry (no admin) in the partner it changed.
CLI_WRITES = {
    "admin create": "createAdmin",
    "token issue": "issueToken",
    "token revoke": "revokeToken",
    "ingest calls": "ingestCallRecords",
}


async def _system_entries(api: Api, partner: int, operation: str) -> int:
    async with api.engine.connect() as conn:
        count = await conn.execute(
            select(func.count())
            .select_from(AuditLog)
            .where(
                AuditLog.partner_id == partner,  # type: ignore[arg-type]
                AuditLog.operation == operation,  # type: ignore[arg-type]
                AuditLog.admin_id.is_(None),  # type: ignore[union-attr]
            )
        )
        return int(count.scalar_one())


async def test_every_writing_cli_command_is_audited_by_the_system(
    api: Api, tmp_path: FsPath, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: Acme with a full admin and a customer, Globex beside it
    f = AuthzFactory(api.engine)
    acme = await f.partner()
    await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, FULL, "FULL_ADMIN")
    customer = await f.customer(acme, "Customer one")
    calls = write_csv(tmp_path / "calls.csv", [record("cli-1", gid("Customer", customer))])
    base = ["--database-url", api.db.url]
    runs: dict[str, list[str]] = {
        "admin create": ["admin", "create", "--partner", "Acme Partners", "--email",
                         "new@acme.example", "--role", "READ_ONLY_ADMIN"],
        "token issue": ["token", "issue", FULL],
        "ingest calls": ["ingest", "calls", str(calls), "--no-progress"],
    }  # fmt: skip
    assert set(CLI_WRITES) <= set(CLI_COMMANDS), "a writing command without a row"

    # when / then
    problems, issued = [], ""
    for command, operation in CLI_WRITES.items():
        before = await _system_entries(api, acme, operation)
        if command == "token revoke":
            argv = ["token", "revoke", issued.strip().splitlines()[-1]]
        else:
            argv = runs[command]
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*base, *argv])
        out, err = capsys.readouterr()
        if command == "token issue":
            issued = out
        added = await _system_entries(api, acme, operation) - before
        if code != 0 or added != 1:
            problems.append(f"{command}: exit {code}, {added} system audit entries ({err})")
    assert not problems, "\n".join(problems)
