"""Tenant isolation: nothing of partner A is reachable with a token of partner B.

A foreign object behaves exactly like a missing one: lookups answer the same body as for an ID
that does not exist, filters naming it match nothing, mutations answer ``FORBIDDEN`` or the same
``NOT_FOUND`` user error as for a missing ID and write nothing (every table is compared), cursors
do not carry a list across partners, and the CSV export holds only the caller's customers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from graph.ids import from_global_id
from tests.authz_support import (
    AuthzFactory,
    changed_tables,
    gid,
    mutation_document,
    snapshot,
    user_error_codes,
    without_cost,
)
from tests.conftest import NOW, Api
from tests.helpers import data_of, error_codes, post_graphql, token_for

A_FULL, A_PARTNER = "full@acme.example", "partner@acme.example"
B_FULL, B_PARTNER = "full@globex.example", "partner@globex.example"
MISSING = 999_999

NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Customer { name }
    ... on Subscription { subscriptionId }
    ... on Tag { name }
    ... on Admin { email }
    ... on Partner { name }
  }
}
"""
CUSTOMER = "query Customer($id: ID!) { customer(id: $id) { id name } }"
HELPDESK_CASE = "query Case($id: ID!) { helpdeskCase(id: $id) { id subject } }"
CUSTOMERS = """
query Customers($first: Int!, $after: String, $filter: CustomerFilter) {
  customers(first: $first, after: $after, filter: $filter) {
    totalCount nodes { id name } pageInfo { endCursor hasNextPage }
  }
}
"""
HELPDESK_CASES = """
query Cases($first: Int!, $after: String, $filter: HelpdeskCaseFilter) {
  helpdeskCases(first: $first, after: $after, filter: $filter) {
    totalCount nodes { id subject } pageInfo { endCursor }
  }
}
"""
ADMINS = """
query Admins($first: Int!, $after: String) {
  admins(first: $first, after: $after) { totalCount nodes { id email } pageInfo { endCursor } }
}
"""
AUDIT_LOG = """
query Audit($first: Int!, $after: String) {
  auditLog(first: $first, after: $after) {
    totalCount nodes { id operation objectId } pageInfo { endCursor }
  }
}
"""
RECENT = """
query Recent($first: Int!, $after: String) {
  licenseAnalytics(product: MEETINGS) {
    recentlyAdded {
      rows(first: $first, after: $after) { nodes { customerName } pageInfo { endCursor } }
    }
  }
}
"""
OPEN_CASE = """
mutation Open($input: OpenHelpdeskCaseInput!) {
  openHelpdeskCase(input: $input) { case { id } userErrors { code } }
}
"""


@dataclass
class Side:
    """One partner's objects, as global IDs."""

    partner: str
    full: str
    partner_admin: str
    customer: str
    other_customer: str
    subscription: str
    trial: str
    tag: str
    case: str
    names: list[str]

    def ids(self) -> list[str]:
        return [
            self.partner,
            self.full,
            self.partner_admin,
            self.customer,
            self.other_customer,
            self.subscription,
            self.trial,
            self.tag,
            self.case,
        ]


async def build_partner(
    api: Api,
    f: AuthzFactory,
    name: str,
    domain: str,
    prefix: str,
) -> Side:
    partner = await f.partner(name, domain)
    full = await f.admin(partner, f"full@{domain}", "FULL_ADMIN")
    partner_admin = await f.admin(partner, f"partner@{domain}", "PARTNER_ADMIN")
    names = [f"{prefix} Alpha", f"{prefix} Beta"]
    customer = await f.customer(partner, names[0])
    other = await f.customer(partner, names[1])
    await f.assign(customer, partner_admin)
    subscription = await f.subscription(customer)
    trial = await f.trial(other)
    tag = await f.tag(partner, f"{prefix}-vip")
    await f.tag_customer(partner, customer, tag)
    await f.tag_subscription(partner, subscription, tag)
    body = await post_graphql(
        api,
        OPEN_CASE,
        {
            "input": {
                "product": "CALLING",
                "subject": f"{prefix} calls drop",
                "description": "Calls drop after a minute.",
                "severity": "HIGH",
                "customerId": gid("Customer", customer),
            }
        },
        as_=f"full@{domain}",
    )
    case = data_of(body)["openHelpdeskCase"]["case"]["id"]
    return Side(
        partner=gid("Partner", partner),
        full=gid("Admin", full),
        partner_admin=gid("Admin", partner_admin),
        customer=gid("Customer", customer),
        other_customer=gid("Customer", other),
        subscription=gid("Subscription", subscription),
        trial=gid("Subscription", trial),
        tag=gid("Tag", tag),
        case=case,
        names=names,
    )


async def two_partners(api: Api, f: AuthzFactory | None = None) -> tuple[Side, Side]:
    f = f or AuthzFactory(api.engine)
    a = await build_partner(api, f, "Acme Partners", "acme.example", "Acme")
    b = await build_partner(api, f, "Globex Reseller", "globex.example", "Globex")
    return a, b


def missing(global_id: str) -> str:
    """An ID of the same kind that exists nowhere."""
    return gid(from_global_id(global_id)[0], MISSING)


def same_as_missing(foreign: dict[str, Any], absent: dict[str, Any]) -> None:
    """Identical bodies; of ``extensions.cost`` only the rate-limit balance may differ."""
    assert without_cost(foreign) == without_cost(absent), (foreign, absent)

    def cost(body: dict[str, Any]) -> Any:
        return (body.get("extensions") or {}).get("cost", {}).get("requestedQueryCost")

    assert cost(foreign) == cost(absent)


async def test_foreign_ids_look_up_exactly_like_missing_ones(api: Api) -> None:
    # given
    a, _ = await two_partners(api)
    lookups = [
        (NODE, "node", i)
        for i in (
            a.customer,
            a.other_customer,
            a.subscription,
            a.trial,
            a.tag,
            a.full,
            a.partner_admin,
            a.case,
            a.partner,
        )
    ]
    lookups += [(CUSTOMER, "customer", a.customer), (CUSTOMER, "customer", a.other_customer)]
    lookups += [(HELPDESK_CASE, "helpdeskCase", a.case)]
    # they are real: partner A's full admin finds each one
    for document, field, foreign in lookups:
        assert data_of(await post_graphql(api, document, {"id": foreign}, as_=A_FULL))[field]

    for caller in (B_FULL, B_PARTNER):
        for document, field, foreign in lookups:
            # when
            got = await post_graphql(api, document, {"id": foreign}, as_=caller)
            absent = await post_graphql(api, document, {"id": missing(foreign)}, as_=caller)

            # then
            assert got["data"] == {field: None}, (caller, field, foreign, got)
            same_as_missing(got, absent)


async def test_filters_naming_foreign_objects_match_nothing(api: Api) -> None:
    # given
    a, b = await two_partners(api)
    cases = [
        (CUSTOMERS, "customers", {"first": 50, "filter": {"tagIds": [a.tag]}}, "tagIds"),
        (
            HELPDESK_CASES,
            "helpdeskCases",
            {"first": 50, "filter": {"customerId": a.customer}},
            None,
        ),
    ]
    for document, field, variables, _ in cases:
        # when
        got = await post_graphql(api, document, variables, as_=B_FULL)
        absent_filter = {
            k: ([missing(v[0])] if isinstance(v, list) else missing(v))
            for k, v in variables["filter"].items()
        }
        absent = await post_graphql(
            api, document, {**variables, "filter": absent_filter}, as_=B_FULL
        )

        # then
        assert data_of(got)[field]["nodes"] == []
        assert data_of(got)[field]["totalCount"] == 0
        same_as_missing(got, absent)
    # and B's own tag does find B's customer, so the filter itself works
    own = await post_graphql(
        api, CUSTOMERS, {"first": 50, "filter": {"tagIds": [b.tag]}}, as_=B_FULL
    )
    assert [n["id"] for n in data_of(own)["customers"]["nodes"]] == [b.customer]


def _mutations(a: Side, b: Side) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(field, document, variables with A's IDs, the same with missing IDs), run by B."""

    def m(
        field: str, input_type: str, selection: str, foreign: dict[str, Any], absent: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        document = mutation_document(field, input_type, selection)
        return field, document, {"input": foreign}, {"input": absent}

    def tags_io(owner: str, owner_ids: list[str], tag_ids: list[str]) -> dict[str, Any]:
        return {owner: owner_ids, "tagIds": tag_ids}

    x = missing
    return [
        m(
            "updateTag",
            "UpdateTagInput",
            "tag { id }",
            {"id": a.tag, "name": "mine now"},
            {"id": x(a.tag), "name": "mine now"},
        ),
        m("deleteTag", "DeleteTagInput", "deletedTagId", {"id": a.tag}, {"id": x(a.tag)}),
        m(
            "addTagsToCustomers",
            "CustomerTagsInput",
            "changed",
            tags_io("customerIds", [b.customer], [a.tag]),
            tags_io("customerIds", [b.customer], [x(a.tag)]),
        ),
        m(
            "addTagsToCustomers",
            "CustomerTagsInput",
            "changed",
            tags_io("customerIds", [a.other_customer], [b.tag]),
            tags_io("customerIds", [x(a.customer)], [b.tag]),
        ),
        m(
            "removeTagsFromCustomers",
            "CustomerTagsInput",
            "changed",
            tags_io("customerIds", [a.customer], [a.tag]),
            tags_io("customerIds", [x(a.customer)], [x(a.tag)]),
        ),
        m(
            "removeTagsFromCustomers",
            "CustomerTagsInput",
            "changed",
            tags_io("customerIds", [a.customer], [b.tag]),
            tags_io("customerIds", [x(a.customer)], [b.tag]),
        ),
        m(
            "addTagsToSubscriptions",
            "SubscriptionTagsInput",
            "changed",
            tags_io("subscriptionIds", [a.trial], [b.tag]),
            tags_io("subscriptionIds", [x(a.trial)], [b.tag]),
        ),
        m(
            "removeTagsFromSubscriptions",
            "SubscriptionTagsInput",
            "changed",
            tags_io("subscriptionIds", [a.subscription], [a.tag]),
            tags_io("subscriptionIds", [x(a.subscription)], [x(a.tag)]),
        ),
        m(
            "startTrial",
            "StartTrialInput",
            "trial { id }",
            {
                "customerId": a.other_customer,
                "products": [{"product": "CALLING", "licenses": 5}],
                "durationDays": 30,
            },
            {
                "customerId": x(a.customer),
                "products": [{"product": "CALLING", "licenses": 5}],
                "durationDays": 30,
            },
        ),
        m(
            "extendTrial",
            "ExtendTrialInput",
            "trial { id }",
            {"trialId": a.trial, "days": 30},
            {"trialId": x(a.trial), "days": 30},
        ),
        m(
            "convertTrial",
            "ConvertTrialInput",
            "subscription { id }",
            {"trialId": a.trial, "autoRenew": True, "termMonths": 12},
            {"trialId": x(a.trial), "autoRenew": True, "termMonths": 12},
        ),
        m(
            "assignPartnerAdmin",
            "AssignmentInput",
            "customer { id }",
            {"customerId": a.other_customer, "adminId": b.partner_admin},
            {"customerId": x(a.customer), "adminId": b.partner_admin},
        ),
        m(
            "assignPartnerAdmin",
            "AssignmentInput",
            "customer { id }",
            {"customerId": b.customer, "adminId": a.partner_admin},
            {"customerId": b.customer, "adminId": x(a.partner_admin)},
        ),
        m(
            "unassignPartnerAdmin",
            "AssignmentInput",
            "customer { id }",
            {"customerId": a.customer, "adminId": a.partner_admin},
            {"customerId": x(a.customer), "adminId": x(a.partner_admin)},
        ),
        m(
            "launchCustomerOrganization",
            "LaunchCustomerInput",
            "url",
            {"customerId": a.customer},
            {"customerId": x(a.customer)},
        ),
        m(
            "grantRole",
            "GrantRoleInput",
            "admin { id }",
            {"adminId": a.partner_admin, "role": "FULL_ADMIN"},
            {"adminId": x(a.partner_admin), "role": "FULL_ADMIN"},
        ),
        m(
            "revokeRole",
            "RevokeRoleInput",
            "admin { id }",
            {"adminId": a.full, "role": "FULL_ADMIN"},
            {"adminId": x(a.full), "role": "FULL_ADMIN"},
        ),
        m(
            "updateAdmin",
            "UpdateAdminInput",
            "admin { id }",
            {"id": a.partner_admin, "role": "READ_ONLY_ADMIN"},
            {"id": x(a.partner_admin), "role": "READ_ONLY_ADMIN"},
        ),
        m(
            "deactivateAdmin",
            "DeactivateAdminInput",
            "admin { id }",
            {"id": a.full},
            {"id": x(a.full)},
        ),
        m(
            "openHelpdeskCase",
            "OpenHelpdeskCaseInput",
            "case { id }",
            {
                "product": "CALLING",
                "subject": "s",
                "description": "d",
                "severity": "LOW",
                "customerId": a.customer,
            },
            {
                "product": "CALLING",
                "subject": "s",
                "description": "d",
                "severity": "LOW",
                "customerId": x(a.customer),
            },
        ),
        m(
            "addHelpdeskCaseComment",
            "AddHelpdeskCaseCommentInput",
            "comment { body }",
            {"caseId": a.case, "body": "hello"},
            {"caseId": x(a.case), "body": "hello"},
        ),
        m(
            "closeHelpdeskCase",
            "CloseHelpdeskCaseInput",
            "case { id }",
            {"caseId": a.case},
            {"caseId": x(a.case)},
        ),
        m(
            "ingestCallRecords",
            "IngestCallRecordsInput",
            "inserted",
            {"records": [call_record(a.customer)]},
            {"records": [call_record(x(a.customer))]},
        ),
    ]


def call_record(customer_id: str) -> dict[str, Any]:
    return {
        "callId": "call-1",
        "customerId": customer_id,
        "userId": "u1",
        "startedAt": "2026-11-20T10:00:00+00:00",
        "durationSeconds": 60,
        "direction": "INBOUND",
        "endpointType": "BROWSER",
        "packetLossPercent": 0.1,
        "jitterMs": 5.0,
        "latencyMs": 40.0,
    }


# How each mutation refuses an object the caller may not reach: FORBIDDEN or NOT_FOUND, except
# call-record ingestion, whose per-record code (shared with the CSV loader) is UNKNOWN_CUSTOMER.
REFUSALS = {"FORBIDDEN", "NOT_FOUND", "UNKNOWN_CUSTOMER"}


def with_ids_masked(body: dict[str, Any], ids: list[str]) -> str:
    """The body as text with the given IDs (which the caller itself sent) masked."""
    text = repr(without_cost(body))
    for value in ids:
        text = text.replace(value, "<id>")
    return text


async def test_mutations_on_foreign_ids_are_refused_and_write_nothing(api: Api) -> None:
    # given
    a, b = await two_partners(api)
    # partner B's full admin: the widest reach; its partner admin meets FORBIDDEN more often
    caller = B_FULL
    await post_graphql(api, "query { viewer { id } }", as_=caller)  # its token is issued first
    before = await snapshot(api.engine)

    sent = [*a.ids(), *(missing(i) for i in a.ids())]
    problems = []
    for field, document, foreign, absent in _mutations(a, b):
        # when
        got = await post_graphql(api, document, foreign, as_=caller)
        changed = changed_tables(before, await snapshot(api.engine))

        # then
        codes = error_codes(got) + user_error_codes(got, field)
        where = f"{field} as {caller} with {foreign['input']}"
        if changed:
            problems.append(f"{where}: wrote to {changed}")
        if not REFUSALS & set(codes):
            problems.append(f"{where}: answered {got}")
        elif "FORBIDDEN" not in codes:
            refused = await post_graphql(api, document, absent, as_=caller)
            if with_ids_masked(got, sent) != with_ids_masked(refused, sent):
                problems.append(f"{where}: {got} differs from a missing ID's {refused}")
    assert not problems, "\n".join(problems)
    assert changed_tables(before, await snapshot(api.engine)) == []


async def test_cursors_do_not_carry_a_list_to_another_partner(api: Api) -> None:
    # given: a page of each of partner A's lists, and its end cursor
    a, _ = await two_partners(api)
    await post_graphql(
        api,
        OPEN_CASE,
        {"input": {"product": "MEETINGS", "subject": "2nd", "description": "d", "severity": "LOW"}},
        as_=A_FULL,
    )
    lists = [
        (CUSTOMERS, "customers"),
        (ADMINS, "admins"),
        (HELPDESK_CASES, "helpdeskCases"),
        (AUDIT_LOG, "auditLog"),
    ]
    a_ids: set[str] = {a.customer, a.other_customer, a.full, a.partner_admin, a.case}
    for document, field in lists:
        page = data_of(await post_graphql(api, document, {"first": 1}, as_=A_FULL))[field]
        cursor = page["pageInfo"]["endCursor"]
        assert cursor, field
        a_ids |= {
            n["id"]
            for n in data_of(await post_graphql(api, document, {"first": 100}, as_=A_FULL))[field][
                "nodes"
            ]
        }

        # when
        body = await post_graphql(api, document, {"first": 100, "after": cursor}, as_=B_FULL)

        # then: refused, or at most partner B's own rows
        if body.get("errors"):
            assert error_codes(body) == ["INVALID_CURSOR"], (field, body)
            assert body["data"] is None
        else:
            ids = {n["id"] for n in body["data"][field]["nodes"]}
            assert not ids & a_ids, (field, ids & a_ids)
    # the customer list binds its cursor to the partner and the caller's scope
    page = data_of(await post_graphql(api, CUSTOMERS, {"first": 1}, as_=A_FULL))["customers"]
    body = await post_graphql(
        api, CUSTOMERS, {"first": 10, "after": page["pageInfo"]["endCursor"]}, as_=B_FULL
    )
    assert error_codes(body) == ["INVALID_CURSOR"]
    # so do the analytics tables
    rows = data_of(await post_graphql(api, RECENT, {"first": 1}, as_=A_FULL))
    cursor = rows["licenseAnalytics"]["recentlyAdded"]["rows"]["pageInfo"]["endCursor"]
    assert cursor
    body = await post_graphql(api, RECENT, {"first": 10, "after": cursor}, as_=B_FULL)
    assert error_codes(body) == ["INVALID_CURSOR"]


async def test_csv_export_holds_only_the_callers_customers(api: Api) -> None:
    # given
    a, b = await two_partners(api)
    token_b = await token_for(api, B_FULL)

    # when
    everything = await api.client.get(
        "/export/customers.csv", headers={"Authorization": f"Bearer {token_b}"}
    )
    by_foreign_tag = await api.client.get(
        "/export/customers.csv",
        params={"tagIds": a.tag},
        headers={"Authorization": f"Bearer {token_b}"},
    )

    # then
    assert everything.status_code == 200
    names = [row[0] for row in csv.reader(io.StringIO(everything.text))][1:]
    assert sorted(names) == sorted(b.names)
    assert not set(names) & set(a.names)
    assert by_foreign_tag.status_code == 200
    assert len(list(csv.reader(io.StringIO(by_foreign_tag.text)))) == 1  # the header only


ANALYTICS = """
query Analytics {
  licenseKpis { totalCustomers aboutToExpire aboutToRenew lowAllocation overLicenseLimit }
  licenseAnalytics(product: MEETINGS) {
    recentlyAdded { kpis { newCustomers totalLicenses } rows(first: 50) { nodes { customerName } } }
    overage { kpis { overageCustomers overageLicenses } }
  }
  callingAnalytics { customersUsage(first: 50) { totalCount } }
}
"""


async def test_analytics_count_nothing_of_another_partner(api: Api) -> None:
    # given: partner B's figures
    f = AuthzFactory(api.engine)
    a, _ = await two_partners(api, f)
    before = data_of(await post_graphql(api, ANALYTICS, as_=B_FULL))

    # when: partner A gets customers that count in every figure above
    acme = from_global_id(a.partner)[1]
    for i in range(3):
        customer = await f.customer(acme, f"Acme New {i}")
        await f.subscription(
            customer,
            start=NOW - timedelta(days=10),
            end=NOW + timedelta(days=30),
            auto_renew=False,
            lines=[("MEETINGS", 10, 15, 5), ("CALLING", 10, 5, 3)],
        )

    # then: partner B's figures have not moved, and none of A's customers is named
    after = data_of(await post_graphql(api, ANALYTICS, as_=B_FULL))
    assert after == before
    names = [n["customerName"] for n in after["licenseAnalytics"]["recentlyAdded"]["rows"]["nodes"]]
    assert not [n for n in names if n.startswith("Acme")]
    # while partner A's own figures did move
    acme_view = data_of(await post_graphql(api, ANALYTICS, as_=A_FULL))
    assert acme_view["licenseKpis"]["totalCustomers"] == before["licenseKpis"]["totalCustomers"] + 3
