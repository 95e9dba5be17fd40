"""The role matrix: every role x every root field and mutation, from ONE table (``MATRIX``).

Each row is a minimal valid operation on one root field (or one kind of ``node``), a function
that prepares what it needs and returns its variables, and the expected outcome for each role,
written out from ``policies/default_policy.csv``:

- ``A`` allowed: no error, the field did its work; on customer-bound fields it reaches a
  customer *not* assigned to the caller too; an allowed mutation writes an audit entry.
- ``S`` scoped: works on a customer assigned to the caller; a customer not assigned to it is
  invisible (lists leave it out and count without it, lookups return null, mutations answer a
  ``NOT_FOUND`` user error) and nothing is written.
- ``F`` forbidden: a ``FORBIDDEN`` GraphQL error, no data, nothing written.
- ``H`` hidden: a single-object lookup the role may not read answers null, exactly like a
  missing object (DESIGN.md section 4: a denied read never leaks that the object exists).

The custom role is created through ``createRole`` with two rules, customer read (assigned) and
tag write (assigned), and given to an admin through ``createAdmin``.

``test_every_root_field_and_mutation_has_a_row`` introspects the live schema, so a field added
without a row in the matrix fails the suite and is named in the failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlparse

import graphql
import pytest
from sqlalchemy import func, select, update

from db.engine import session_factory
from db.models import AuditLog, CustomerAssignment, Partner
from db.queries.policies import add_policy_line
from graph.ids import from_global_id
from graph.mutations import REFUSAL
from graph.schema import build_schema
from tests.authz_support import (
    AuthzFactory,
    changed_tables,
    create_admin,
    create_role,
    gid,
    mutation_document,
    snapshot,
)
from tests.conftest import NOW, Api
from tests.helpers import error_codes, post_graphql, token_for

A, S, F, H = "allowed", "scoped", "forbidden", "hidden"

CUSTOM_ROLE = "TAG_CURATOR"
CUSTOM_RULES = [("customer", "read", "assigned"), ("tag", "write", "assigned")]
# Two more custom roles that allow a kind and deny what hangs from it: every customer but
# nothing below them; admin read and manage without policy manage (so it changes no role).
CUSTOMER_VIEWER, ADMIN_MANAGER = "CUSTOMER_VIEWER", "ADMIN_MANAGER"
SUB_KIND_RULES = {
    CUSTOMER_VIEWER: [("customer", "read", "all")],
    ADMIN_MANAGER: [("admin", "read", "all"), ("admin", "manage", "all")],
}
ROLES = (
    "FULL_ADMIN",
    "PARTNER_ADMIN",
    "READ_ONLY_ADMIN",
    "SALES_ADMIN",
    CUSTOM_ROLE,
    CUSTOMER_VIEWER,
    ADMIN_MANAGER,
)
EMAILS = {
    "FULL_ADMIN": "full@acme.example",
    "PARTNER_ADMIN": "partner@acme.example",
    "READ_ONLY_ADMIN": "readonly@acme.example",
    "SALES_ADMIN": "sales@acme.example",
    CUSTOM_ROLE: "curator@acme.example",
    CUSTOMER_VIEWER: "viewer@acme.example",
    ADMIN_MANAGER: "manager@acme.example",
}
SPARE = "spare@acme.example"  # a partner admin that admin and assignment mutations act upon


class Target(StrEnum):
    MINE = "a customer assigned to the caller"
    THEIRS = "a customer not assigned to the caller"


@dataclass
class World:
    """One partner with an admin per role; ``prepare`` functions add what a row needs."""

    api: Api
    f: AuthzFactory
    partner: int
    admins: dict[str, int]  # email -> pk
    caller: str = "FULL_ADMIN"
    target: str | None = None  # global ID of the object a row's call is about
    baseline: int | None = None  # a figure the caller read before the row added its target
    serial: int = 0

    @property
    def caller_pk(self) -> int:
        return self.admins[EMAILS[self.caller]]

    def n(self) -> int:
        self.serial += 1
        return self.serial

    async def customer(self, target: Target) -> int:
        pk = await self.f.customer(self.partner, f"Customer {self.n():03d}")
        if target is Target.MINE:
            await self.f.assign(pk, self.caller_pk)
        self.target = gid("Customer", pk)
        return pk

    async def subscription(self, target: Target) -> int:
        pk = await self.f.subscription(await self.customer(target))
        self.target = gid("Subscription", pk)
        return pk

    async def trial(self, target: Target) -> int:
        pk = await self.f.trial(await self.customer(target))
        self.target = gid("Subscription", pk)
        return pk

    async def tag(self) -> int:
        pk = await self.f.tag(self.partner, f"Tag {self.n():03d}")
        self.target = gid("Tag", pk)
        return pk

    async def case(self) -> int:
        pk = await self.f.helpdesk_case(self.partner, self.admins[EMAILS["FULL_ADMIN"]])
        self.target = gid("HelpdeskCase", pk)
        return pk

    async def set_setup_state(self, state: str) -> None:
        async with self.f.engine.begin() as conn:
            await conn.execute(
                update(Partner).where(Partner.id == self.partner).values(setup_state=state)  # type: ignore[arg-type]
            )

    async def grant(self, admin_pk: int, role: str) -> None:
        async with session_factory(self.f.engine)() as session:
            line = ("g", f"admin:{admin_pk}", role, f"partner:{self.partner}")
            await add_policy_line(session, line=line)
            await session.commit()

    async def assigned_to_caller(self) -> set[str]:
        async with self.f.engine.connect() as conn:
            rows = await conn.execute(
                select(CustomerAssignment.customer_id).where(
                    CustomerAssignment.admin_id == self.caller_pk  # type: ignore[arg-type]
                )
            )
            return {gid("Customer", r[0]) for r in rows}


Prepare = Callable[[World, Target], Awaitable[dict[str, Any]]]
Expect = tuple[str, str, str, str, str, str, str]
Probe = Callable[[Any, World], Awaitable[str]]


@dataclass(frozen=True)
class Row:
    label: str  # "Query.customers", or "Query.node(Tag)" when a field has several rows
    document: str
    prepare: Prepare
    expect: Expect  # FULL_ADMIN, PARTNER_ADMIN, READ_ONLY_ADMIN, SALES_ADMIN, custom role
    probe: Probe | None = None
    audited: bool = True

    @property
    def root(self) -> str:
        return self.label.split(".")[0]

    @property
    def field(self) -> str:
        return self.label.split(".")[1].split("(")[0]

    @property
    def key(self) -> str:
        return f"{self.root}.{self.field}"

    def outcome(self, role: str) -> str:
        return self.expect[ROLES.index(role)]


# --- prepare functions: create what the call needs, return its variables ---------------------


def nothing() -> Prepare:
    async def prepare(w: World, t: Target) -> dict[str, Any]:
        return {}

    return prepare


async def customer_vars(w: World, t: Target) -> dict[str, Any]:
    return {"id": gid("Customer", await w.customer(t))}


async def listed_customer(w: World, t: Target) -> dict[str, Any]:
    await w.customer(t)
    return {}


async def subscription_vars(w: World, t: Target) -> dict[str, Any]:
    return {"id": gid("Subscription", await w.subscription(t))}


async def tag_vars(w: World, t: Target) -> dict[str, Any]:
    return {"id": gid("Tag", await w.tag())}


async def listed_tag(w: World, t: Target) -> dict[str, Any]:
    await w.tag()
    return {}


async def spare_admin_vars(w: World, t: Target) -> dict[str, Any]:
    w.target = gid("Admin", w.admins[SPARE])
    return {"id": w.target}


async def case_vars(w: World, t: Target) -> dict[str, Any]:
    return {"id": gid("HelpdeskCase", await w.case())}


async def listed_case(w: World, t: Target) -> dict[str, Any]:
    await w.case()
    return {}


async def partner_vars(w: World, t: Target) -> dict[str, Any]:
    return {"id": gid("Partner", w.partner)}


async def new_admin_input(w: World, t: Target) -> dict[str, Any]:
    email = f"new{w.n()}@acme.example"
    return {"input": {"email": email, "name": "New Admin", "role": "READ_ONLY_ADMIN"}}


async def rename_spare(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"id": gid("Admin", w.admins[SPARE]), "name": f"Spare {w.n()}"}}


async def promote_self(w: World, t: Target) -> dict[str, Any]:
    # Finding 1 of issue 14: an admin manager moved itself to FULL_ADMIN.
    return {"input": {"id": gid("Admin", w.caller_pk), "role": "FULL_ADMIN"}}


async def fresh_admin(w: World, t: Target) -> dict[str, Any]:
    pk = await w.f.admin(w.partner, f"leaver{w.n()}@acme.example", "PARTNER_ADMIN")
    return {"input": {"id": gid("Admin", pk)}}


def _assignment(w: World, customer: int) -> dict[str, Any]:
    spare = gid("Admin", w.admins[SPARE])
    return {"input": {"customerId": gid("Customer", customer), "adminId": spare}}


async def assignment(w: World, t: Target) -> dict[str, Any]:
    return _assignment(w, await w.customer(t))


async def existing_assignment(w: World, t: Target) -> dict[str, Any]:
    customer = await w.customer(t)
    await w.f.assign(customer, w.admins[SPARE])
    return _assignment(w, customer)


async def new_case(w: World, t: Target) -> dict[str, Any]:
    return {
        "input": {
            "product": "CALLING",
            "subject": "Calls drop",
            "description": "Every call drops after a minute.",
            "severity": "LOW",
        }
    }


async def case_comment(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"caseId": gid("HelpdeskCase", await w.case()), "body": "More detail."}}


async def case_close(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"caseId": gid("HelpdeskCase", await w.case()), "resolution": "Fixed."}}


async def launch_customer(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"customerId": gid("Customer", await w.customer(t))}}


async def launch_token(w: World, t: Target) -> dict[str, Any]:
    body = await post_graphql(w.api, LAUNCH_MY_ORG, as_=EMAILS["FULL_ADMIN"])
    url = body["data"]["launchMyOrganization"]["url"]
    return {"input": {"token": parse_qs(urlparse(url).query)["token"][0]}}


async def customer_launch_token(w: World, t: Target) -> dict[str, Any]:
    customer = gid("Customer", await w.customer(t))
    launch = (
        "mutation L($input: LaunchCustomerInput!) "
        "{ launchCustomerOrganization(input: $input) { url } }"
    )
    body = await post_graphql(
        w.api, launch, {"input": {"customerId": customer}}, as_=EMAILS["FULL_ADMIN"]
    )
    url = body["data"]["launchCustomerOrganization"]["url"]
    return {"input": {"token": parse_qs(urlparse(url).query)["token"][0]}}


async def terms_not_accepted(w: World, t: Target) -> dict[str, Any]:
    await w.set_setup_state("NOT_STARTED")
    return {}


async def terms_accepted(w: World, t: Target) -> dict[str, Any]:
    await w.set_setup_state("TERMS_ACCEPTED")
    return {}


async def grant_spare(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"adminId": gid("Admin", w.admins[SPARE]), "role": "SALES_ADMIN"}}


async def granted_spare(w: World, t: Target) -> dict[str, Any]:
    await w.grant(w.admins[SPARE], "READ_ONLY_ADMIN")
    return {"input": {"adminId": gid("Admin", w.admins[SPARE]), "role": "READ_ONLY_ADMIN"}}


async def new_role(w: World, t: Target) -> dict[str, Any]:
    rules = [{"object": "tag", "action": "read", "scope": "all"}]
    return {"input": {"name": f"VIEWER_{w.n()}", "description": "Sees tags.", "rules": rules}}


async def added_rule(w: World, t: Target) -> dict[str, Any]:
    # Changes what SALES_ADMIN may do: no row of the FULL_ADMIN test depends on it.
    rule = {"role": "SALES_ADMIN", "object": "helpdesk", "action": "read", "scope": "all"}
    return {"input": rule}


async def removed_rule(w: World, t: Target) -> dict[str, Any]:
    rule = {"role": "READ_ONLY_ADMIN", "object": "helpdesk", "action": "read", "scope": "all"}
    return {"input": rule}


async def new_tag(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"name": f"New tag {w.n()}", "description": "From the matrix."}}


async def rename_tag(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"id": gid("Tag", await w.tag()), "name": f"Renamed {w.n()}"}}


async def drop_tag(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"id": gid("Tag", await w.tag())}}


async def tag_customer(w: World, t: Target) -> dict[str, Any]:
    tag = await w.tag()
    customer = await w.customer(t)
    return {"input": {"customerIds": [gid("Customer", customer)], "tagIds": [gid("Tag", tag)]}}


async def untag_customer(w: World, t: Target) -> dict[str, Any]:
    tag = await w.tag()
    customer = await w.customer(t)
    await w.f.tag_customer(w.partner, customer, tag)
    return {"input": {"customerIds": [gid("Customer", customer)], "tagIds": [gid("Tag", tag)]}}


async def tag_subscription(w: World, t: Target) -> dict[str, Any]:
    tag = await w.tag()
    sub = await w.subscription(t)
    return {"input": {"subscriptionIds": [gid("Subscription", sub)], "tagIds": [gid("Tag", tag)]}}


async def untag_subscription(w: World, t: Target) -> dict[str, Any]:
    tag = await w.tag()
    sub = await w.subscription(t)
    await w.f.tag_subscription(w.partner, sub, tag)
    return {"input": {"subscriptionIds": [gid("Subscription", sub)], "tagIds": [gid("Tag", tag)]}}


async def trial_for_customer(w: World, t: Target) -> dict[str, Any]:
    customer = await w.customer(t)
    products = [{"product": "MESSAGING", "licenses": 5}]
    return {
        "input": {"customerId": gid("Customer", customer), "products": products, "durationDays": 30}
    }


async def trial_extension(w: World, t: Target) -> dict[str, Any]:
    return {"input": {"trialId": gid("Subscription", await w.trial(t)), "days": 30}}


async def trial_conversion(w: World, t: Target) -> dict[str, Any]:
    trial = await w.trial(t)
    return {"input": {"trialId": gid("Subscription", trial), "autoRenew": True, "termMonths": 12}}


def counted(document: str, *path: str) -> tuple[Prepare, Probe]:
    """A figure that counts customers: read it as the caller, add a target customer with an
    in-force MEETINGS and CALLING subscription that started 10 days ago, read it again. The
    target was counted when the figure grew by one ("ok"), not when it stayed ("hidden")."""

    def figure(data: Any) -> int:
        for key in path:
            data = data[key]
        return int(data)

    async def prepare(w: World, t: Target) -> dict[str, Any]:
        before = await post_graphql(w.api, document, as_=EMAILS[w.caller])
        w.baseline = None if before.get("errors") else figure(before["data"])
        customer = await w.customer(t)
        lines = [("MEETINGS", 10, 5, 3), ("CALLING", 10, 5, 3)]
        start, end = NOW - timedelta(days=10), NOW + timedelta(days=355)
        await w.f.subscription(customer, start=start, end=end, lines=lines)
        return {}

    async def probe(value: Any, w: World) -> str:
        assert w.baseline is not None
        grew = figure({path[0]: value}) - w.baseline
        return {1: "ok", 0: "hidden"}.get(grew, f"counted {grew} new customers instead of 1")

    return prepare, probe


async def call_record(w: World, t: Target) -> dict[str, Any]:
    customer = await w.customer(t)
    record = {
        "callId": f"call-{w.n()}",
        "customerId": gid("Customer", customer),
        "userId": "user-1",
        "startedAt": (NOW - timedelta(days=5)).isoformat(),
        "durationSeconds": 120,
        "direction": "OUTBOUND",
        "endpointType": "DESK_PHONE",
        "packetLossPercent": 0.5,
        "jitterMs": 10.0,
        "latencyMs": 80.0,
    }
    return {"input": {"records": [record]}}


# --- probes: "ok" (the call reached its object), "hidden" (it did not), or what went wrong ----


def listed(*, by_assignment: bool) -> Probe:
    """A connection: is the target in it? ``totalCount`` must count exactly what is listed, and
    a list scoped by assignment must hold nothing but the caller's customers."""

    async def probe(value: Any, w: World) -> str:
        ids = {n["id"] for n in value["nodes"]}
        if value["totalCount"] != len(ids):
            return f"totalCount {value['totalCount']} for {len(ids)} listed"
        if w.target in ids:
            return "ok"
        if by_assignment and not ids <= await w.assigned_to_caller():
            return f"listed customers not assigned to the caller: {sorted(ids)}"
        return "hidden"

    return probe


async def in_list(value: Any, w: World) -> str:
    return "ok" if any(item.get("id") == w.target for item in value) else "hidden"


# --- the table -------------------------------------------------------------------------------

ERRORS = "userErrors { field message code }"
LAUNCH_MY_ORG = f"mutation {{ launchMyOrganization {{ url expiresAt setupRequired {ERRORS} }} }}"
NODE = "query Node($id: ID!) { node(id: $id) { __typename id } }"
CUSTOMER = "query Customer($id: ID!) { customer(id: $id) { id name } }"
CASE = "query Case($id: ID!) { helpdeskCase(id: $id) { id subject } }"
CUSTOMERS = "query { customers(first: 100) { totalCount nodes { id } } }"
CASES = "query { helpdeskCases(first: 100) { totalCount nodes { id } } }"
ADMINS = "query { admins(first: 100) { totalCount nodes { id roles } } }"
ROLES_ = "query { roles { name builtIn rules { object action scope } } }"
RULES = "query { policyRules { role object action scope builtIn } }"
AUDIT = "query { auditLog(first: 5) { totalCount nodes { id operation } } }"
RESOURCES = "query { resources(first: 5) { totalCount nodes { slug } } }"
KPIS = "query { licenseKpis { totalCustomers } }"
LICENSES = (
    "query { licenseAnalytics(product: MEETINGS) { recentlyAdded { kpis { newCustomers } } } }"
)
CALLING = "query { callingAnalytics { customersUsage(first: 5) { totalCount } } }"
KPIS_PREPARE, KPIS_PROBE = counted(KPIS, "licenseKpis", "totalCustomers")
LICENSES_PREPARE, LICENSES_PROBE = counted(
    LICENSES, "licenseAnalytics", "recentlyAdded", "kpis", "newCustomers"
)
CALLING_PREPARE, CALLING_PROBE = counted(
    CALLING, "callingAnalytics", "customersUsage", "totalCount"
)


def q(label: str, document: str, prepare: Prepare, expect: Expect, **kw: Any) -> Row:
    return Row(f"Query.{label}", document, prepare, expect, **kw)


def m(
    field: str,
    input_type: str | None,
    selection: str,
    prepare: Prepare,
    expect: Expect,
    label: str | None = None,
    probe: Probe | None = None,
) -> Row:
    """A mutation row: ``field(input: $input) { selection userErrors }``."""
    if input_type is None:
        document = f"mutation {{ {field} {{ {selection} {ERRORS} }} }}"
    else:
        call = f"{field}(input: $input) {{ {selection} {ERRORS} }}"
        document = f"mutation M($input: {input_type}!) {{ {call} }}"
    return Row(
        f"Mutation.{label or field}",
        document,
        prepare,
        expect,
        probe=probe,
        audited=field not in NOT_AUDITED,
    )


NOT_AUDITED: set[str] = set()


async def invalid_token_is_hidden(value: Any, w: World) -> str:
    """verifyLaunchToken answers a token the caller may not use like a forged one (issue 14)."""
    codes = [e["code"] for e in value["userErrors"]]
    if not codes:
        return "ok"
    return "hidden" if codes == ["LAUNCH_TOKEN_INVALID"] else f"userErrors {codes}"


# Expected outcome per role, in the order FULL_ADMIN, PARTNER_ADMIN, READ_ONLY_ADMIN,
# SALES_ADMIN, TAG_CURATOR (the custom role: customer read assigned, tag write assigned),
# CUSTOMER_VIEWER, ADMIN_MANAGER (SUB_KIND_RULES). ADMIN_MANAGER may change only admins within
# its own permissions (none of the built-in roles'), and neither gives nor changes roles; with
# `admin manage` it may launch its own organization and accept its terms (they need just that).
# fmt: off
MATRIX: list[Row] = [
    q("viewer", "query { viewer { id role roles } }", nothing(),      (A, A, A, A, A, A, A)),
    q("partner", "query { partner { id name } }", nothing(),          (A, A, A, A, A, A, A)),
    q("admins", ADMINS, nothing(),                                    (A, A, A, A, F, F, A)),
    q("customers", CUSTOMERS, listed_customer,                        (A, S, A, S, S, A, F),
      probe=listed(by_assignment=True)),
    q("customer", CUSTOMER, customer_vars,                            (A, S, A, S, S, A, H)),
    q("tags", "query { tags { id name } }", listed_tag,               (A, A, A, A, F, F, F),
      probe=in_list),
    q("helpdeskCases", CASES, listed_case,                            (A, A, A, F, F, F, F),
      probe=listed(by_assignment=False)),
    q("helpdeskCase", CASE, case_vars,                                (A, A, A, H, H, H, H)),
    q("node(Customer)", NODE, customer_vars,                          (A, S, A, S, S, A, H)),
    q("node(Subscription)", NODE, subscription_vars,                  (A, S, A, S, H, H, H)),
    q("node(Tag)", NODE, tag_vars,                                    (A, A, A, A, H, H, H)),
    q("node(Admin)", NODE, spare_admin_vars,                          (A, A, A, A, H, H, A)),
    q("node(HelpdeskCase)", NODE, case_vars,                          (A, A, A, H, H, H, H)),
    q("node(Partner)", NODE, partner_vars,                            (A, A, A, A, A, A, A)),
    q("roles", ROLES_, nothing(),                                     (A, F, F, F, F, F, F)),
    q("policyRules", RULES, nothing(),                                (A, F, F, F, F, F, F)),
    q("auditLog", AUDIT, nothing(),                                   (A, F, F, F, F, F, F)),
    q("quickLinks", "query { quickLinks { slug } }", nothing(),       (A, A, A, A, A, A, A)),
    q("featuredResources", "query { featuredResources { slug } }", nothing(),
                                                                      (A, A, A, A, A, A, A)),
    q("resources", RESOURCES, nothing(),                              (A, A, A, A, A, A, A)),
    q("licenseKpis", KPIS, KPIS_PREPARE,                              (A, S, A, S, F, F, F),
      probe=KPIS_PROBE),
    q("licenseAnalytics", LICENSES, LICENSES_PREPARE,                 (A, S, A, S, F, F, F),
      probe=LICENSES_PROBE),
    q("callingAnalytics", CALLING, CALLING_PREPARE,                   (A, S, A, S, F, F, F),
      probe=CALLING_PROBE),

    m("createAdmin", "CreateAdminInput", "admin { id }", new_admin_input,
                                                                      (A, F, F, F, F, F, F)),
    m("updateAdmin", "UpdateAdminInput", "admin { id }", rename_spare,
                                                                      (A, F, F, F, F, F, F)),
    # A full admin moving itself to its own role changes nothing, so writes no audit entry.
    Row("Mutation.updateAdmin(role)",
        mutation_document("updateAdmin", "UpdateAdminInput", "admin { role }"), promote_self,
        (A, F, F, F, F, F, F), audited=False),
    m("deactivateAdmin", "DeactivateAdminInput", "admin { active }", fresh_admin,
                                                                      (A, F, F, F, F, F, F)),
    m("assignPartnerAdmin", "AssignmentInput", "customer { id }", assignment,
                                                                      (A, F, F, F, F, F, F)),
    m("unassignPartnerAdmin", "AssignmentInput", "customer { id }", existing_assignment,
                                                                      (A, F, F, F, F, F, F)),
    m("openHelpdeskCase", "OpenHelpdeskCaseInput", "case { id }", new_case,
                                                                      (A, A, F, F, F, F, F)),
    m("addHelpdeskCaseComment", "AddHelpdeskCaseCommentInput", "comment { body }", case_comment,
                                                                      (A, A, F, F, F, F, F)),
    m("closeHelpdeskCase", "CloseHelpdeskCaseInput", "case { state }", case_close,
                                                                      (A, A, F, F, F, F, F)),
    m("launchCustomerOrganization", "LaunchCustomerInput", "url", launch_customer,
                                                                      (A, S, F, F, F, F, F)),
    m("launchMyOrganization", None, "url", nothing(),                 (A, F, F, F, F, F, A)),
    # verifying a link needs the right to launch there: customer write over the customer, or
    # admin manage for the partner's own organization; roles with neither: FORBIDDEN
    m("verifyLaunchToken", "VerifyLaunchTokenInput", "grant { role }", customer_launch_token,
      (A, S, F, F, F, F, H), "verifyLaunchToken(Customer)", invalid_token_is_hidden),
    m("verifyLaunchToken", "VerifyLaunchTokenInput", "grant { role }", launch_token,
      (A, H, F, F, F, F, A), "verifyLaunchToken(Partner)", invalid_token_is_hidden),
    m("acceptTerms", None, "partner { id }", terms_not_accepted,      (A, F, F, F, F, F, A)),
    m("completeOrganizationSetup", None, "partner { id }", terms_accepted,
                                                                      (A, F, F, F, F, F, A)),
    m("grantRole", "GrantRoleInput", "admin { roles }", grant_spare,  (A, F, F, F, F, F, F)),
    m("revokeRole", "RevokeRoleInput", "admin { roles }", granted_spare,
                                                                      (A, F, F, F, F, F, F)),
    m("createRole", "CreateRoleInput", "role { name }", new_role,     (A, F, F, F, F, F, F)),
    m("addPolicyRule", "PolicyRuleChangeInput", "rule { role }", added_rule,
                                                                      (A, F, F, F, F, F, F)),
    m("removePolicyRule", "PolicyRuleChangeInput", "rule { role }", removed_rule,
                                                                      (A, F, F, F, F, F, F)),
    m("createTag", "CreateTagInput", "tag { id }", new_tag,           (A, A, F, F, A, F, F)),
    m("updateTag", "UpdateTagInput", "tag { id }", rename_tag,        (A, A, F, F, A, F, F)),
    m("deleteTag", "DeleteTagInput", "deletedTagId", drop_tag,        (A, A, F, F, A, F, F)),
    m("addTagsToCustomers", "CustomerTagsInput", "changed", tag_customer,
                                                                      (A, S, F, F, S, F, F)),
    m("removeTagsFromCustomers", "CustomerTagsInput", "changed", untag_customer,
                                                                      (A, S, F, F, S, F, F)),
    m("addTagsToSubscriptions", "SubscriptionTagsInput", "changed", tag_subscription,
                                                                      (A, S, F, F, H, F, F)),
    m("removeTagsFromSubscriptions", "SubscriptionTagsInput", "changed", untag_subscription,
                                                                      (A, S, F, F, H, F, F)),
    m("startTrial", "StartTrialInput", "trial { id }", trial_for_customer,
                                                                      (A, S, F, S, F, F, F)),
    m("extendTrial", "ExtendTrialInput", "trial { endDate }", trial_extension,
                                                                      (A, S, F, S, F, F, F)),
    m("convertTrial", "ConvertTrialInput", "subscription { id }", trial_conversion,
                                                                      (A, S, F, F, F, F, F)),
    # ingestion needs customer write over *all* customers: full admins only
    m("ingestCallRecords", "IngestCallRecordsInput", "inserted", call_record,
                                                                      (A, F, F, F, F, F, F)),
]
# fmt: on


# --- running one cell ------------------------------------------------------------------------


async def build_world(api: Api, caller: str) -> World:
    """Partner Acme with an admin per built-in role, a spare partner admin, and an admin with
    the custom role made through ``createRole`` and ``createAdmin``."""
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    admins = {EMAILS[r]: await f.admin(partner, EMAILS[r], r) for r in ROLES[:4]}
    admins[SPARE] = await f.admin(partner, SPARE, "PARTNER_ADMIN")
    full = EMAILS["FULL_ADMIN"]
    body = await create_role(api, full, CUSTOM_ROLE, CUSTOM_RULES, "Curates tags of its customers.")
    assert body["data"]["createRole"]["userErrors"] == [], body
    custom = await create_admin(api, full, EMAILS[CUSTOM_ROLE], CUSTOM_ROLE)
    admins[EMAILS[CUSTOM_ROLE]] = from_global_id(custom)[1]
    for role, rules in SUB_KIND_RULES.items():
        body = await create_role(api, full, role, rules)
        assert body["data"]["createRole"]["userErrors"] == [], body
        admins[EMAILS[role]] = from_global_id(await create_admin(api, full, EMAILS[role], role))[1]
    await token_for(api, EMAILS[caller])  # issued now, so no call below writes a token
    return World(api=api, f=f, partner=partner, admins=admins, caller=caller)


async def audit_entries(w: World, operation: str, *, refusals: bool = False) -> int:
    """The caller's audit entries of ``operation``: of changes, or (``refusals``) of refusals."""
    kind = AuditLog.object_type == REFUSAL if refusals else AuditLog.object_type != REFUSAL  # type: ignore[arg-type]
    async with w.f.engine.connect() as conn:
        count = await conn.execute(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.operation == operation, AuditLog.admin_id == w.caller_pk, kind)  # type: ignore[arg-type]
        )
        return int(count.scalar_one())


async def default_probe(row: Row, value: Any, w: World) -> str:
    if row.root == "Mutation":
        codes = [e["code"] for e in value["userErrors"]]
        if not codes:
            return "ok"
        return "hidden" if codes == ["NOT_FOUND"] else f"userErrors {codes}"
    if value is None:
        return "hidden"
    if w.target is not None and isinstance(value, dict) and value.get("id") not in (None, w.target):
        return f"another object came back: {value['id']} for {w.target}"
    return "ok"


@dataclass
class Result:
    body: dict[str, Any]
    value: Any
    state: str  # the probe's verdict
    changed: list[str] = field(default_factory=list)
    audited: int = 0
    refusals: int = 0  # audit entries of the refusal of this call


async def call(w: World, row: Row, target: Target, *, expect_writes: bool) -> Result:
    """Prepare and send the row's operation as the caller; with ``expect_writes`` count the
    audit entries it adds, otherwise note which tables it changed."""
    w.target = None
    variables = await row.prepare(w, target)
    mutation = row.root == "Mutation"
    before = await snapshot(w.api.engine) if mutation and not expect_writes else {}
    audits = await audit_entries(w, row.field) if mutation and expect_writes else 0
    refusals = await audit_entries(w, row.field, refusals=True) if mutation else 0
    body = await post_graphql(w.api, row.document, variables, as_=EMAILS[w.caller])
    value = (body.get("data") or {}).get(row.field)
    state = "error"
    if not body.get("errors"):
        probe = row.probe
        state = await (probe(value, w) if probe else default_probe(row, value, w))
    result = Result(body=body, value=value, state=state)
    if mutation and expect_writes:
        result.audited = await audit_entries(w, row.field) - audits
    elif mutation:
        result.changed = changed_tables(before, await snapshot(w.api.engine))
    if mutation:
        result.refusals = await audit_entries(w, row.field, refusals=True) - refusals
    return result


def refusal_unaudited(row: Row, r: Result, target: Target) -> str | None:
    """Every refusal of a mutation writes one audit entry of the refusal (and nothing else)."""
    if row.root != "Mutation":
        return None
    if r.refusals != 1:
        return f"on {target}: {r.refusals} audit entries of the refusal instead of 1"
    return None


async def reached(w: World, row: Row, target: Target) -> str | None:
    r = await call(w, row, target, expect_writes=True)
    if r.body.get("errors"):
        return f"on {target}: errors {error_codes(r.body)}: {r.body['errors'][0]['message']}"
    if r.state != "ok":
        return f"on {target}: {r.state}"
    if row.root == "Mutation" and row.audited and r.audited < 1:
        return f"on {target}: no audit entry for {row.field}"
    if r.refusals:
        return f"on {target}: allowed, but audited as a refusal"
    return None


async def not_reached(w: World, row: Row, target: Target) -> str | None:
    r = await call(w, row, target, expect_writes=False)
    if r.body.get("errors"):
        return f"on {target}: errors {error_codes(r.body)} instead of a null/NOT_FOUND"
    if r.state != "hidden":
        return f"on {target}: {r.state} instead of hidden"
    if r.changed:
        return f"on {target}: hidden, but wrote to {r.changed}"
    return refusal_unaudited(row, r, target)


async def refused(w: World, row: Row, target: Target) -> str | None:
    r = await call(w, row, target, expect_writes=False)
    if "FORBIDDEN" not in error_codes(r.body):
        return f"on {target}: no FORBIDDEN error ({error_codes(r.body) or r.state})"
    if r.value is not None:
        return f"on {target}: FORBIDDEN, but data came back: {r.value}"
    if r.changed:
        return f"on {target}: FORBIDDEN, but wrote to {r.changed}"
    return refusal_unaudited(row, r, target)


async def check_cell(w: World, row: Row) -> str | None:
    """None when the caller's role meets the row's expectation, else what happened instead."""
    outcome = row.outcome(w.caller)
    if outcome == A:
        return await reached(w, row, Target.THEIRS)
    if outcome == S:
        return await reached(w, row, Target.MINE) or await not_reached(w, row, Target.THEIRS)
    if outcome == F:
        return await refused(w, row, Target.MINE)
    assert outcome == H, outcome
    return await not_reached(w, row, Target.MINE)


# --- tests -----------------------------------------------------------------------------------


def schema_fields() -> set[str]:
    """``Query.x`` and ``Mutation.y`` for every root field of the live schema."""
    schema = graphql.build_schema(build_schema().as_str())
    roots = [schema.query_type, schema.mutation_type]
    return {f"{root.name}.{name}" for root in roots if root is not None for name in root.fields}


def all_rows() -> list[Row]:
    """MATRIX and the rows of domains kept in their own files (same machinery)."""
    from tests.test_role_matrix_subscriptions import SUBSCRIPTION_MATRIX
    from tests.test_role_matrix_webhooks import WEBHOOK_ROWS

    return [*MATRIX, *SUBSCRIPTION_MATRIX, *WEBHOOK_ROWS]


def test_every_root_field_and_mutation_has_a_row() -> None:
    # given: this table, and the tables of other matrix files that use its machinery
    covered = {row.key for row in all_rows()}

    # when
    missing = sorted(schema_fields() - covered)

    # then
    assert not missing, (
        f"{len(missing)} root field(s) without a row in the role matrix: {', '.join(missing)}. "
        "Add a Row to MATRIX in tests/test_role_matrix.py with the outcome for every role."
    )


def test_every_row_names_a_field_of_the_schema() -> None:
    # given
    fields = schema_fields()

    # when
    stale = sorted({row.key for row in all_rows()} - fields)
    labels = [row.label for row in all_rows()]

    # then
    assert not stale, f"rows for fields the schema does not have: {stale}"
    assert len(labels) == len(set(labels)), "a row label appears twice"
    assert all(o in (A, S, F, H) for row in all_rows() for o in row.expect)


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix(api: Api, role: str) -> None:
    # given
    w = await build_world(api, role)

    # when
    problems = []
    for row in MATRIX:
        problem = await check_cell(w, row)
        if problem is not None:
            problems.append(f"{row.label} as {role}, expected {row.outcome(role)}: {problem}")

    # then
    assert not problems, "\n".join(problems)
