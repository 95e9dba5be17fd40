"""The demo shows every section (issue 19): ``seed --demo`` makes every list and figure of every
view non-empty and plausible for both demo partners.

Each test reads the demo (seeded once per backend by the ``demo_database`` fixture) through the
ASGI app as the partner's FULL_ADMIN, as the front end would, and fails when a section is empty
or implausible: helpdesk cases open and closed with comments, customers in every status and
filter, trials in each state, overage on Meetings and on Calling, active callers in proportion
to the used Calling licences, subscription and trial ids unique across the deployment, converted
trials with an invoice, provisioning subscriptions waiting for their order set-up, the audit log.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from db.enums import CallFeature, CustomerStatus, EndpointType, ManagedBy, Product
from tests.conftest import NOW, Api
from tests.helpers import data_of, post_graphql

PARTNERS = ("acme.example", "globex.example")
LAST_WEEK_END = datetime(2026, 11, 22, tzinfo=UTC)  # "last week" of NOW ends on this Sunday
CUSTOMERS = """
query Customers($after: String) {
  customers(first: 50, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id name statuses products
      tags { name }
      partnerAdmins { role admin { email } }
      subscriptions {
        id subscriptionId kind state startDate endDate autoRenew
        licenses { product purchased assigned used }
        invoices { invoiceNumber status }
        orders { action description status }
      }
      trials { subscriptionId state }
    }
  }
}
"""


async def _customers(api: Api, admin: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        body = await post_graphql(api, CUSTOMERS, {"after": after}, as_=admin)
        page = data_of(body)["customers"]
        out += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            assert len(out) == page["totalCount"]
            return out
        after = page["pageInfo"]["endCursor"]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _in_force(sub: dict[str, Any]) -> bool:
    return sub["state"] == "ACTIVE" and _at(sub["startDate"]) <= NOW < _at(sub["endDate"])


@pytest.fixture
async def demo(demo_api: Api) -> dict[str, list[dict[str, Any]]]:
    """Every customer of each demo partner, as its full admin sees them."""
    return {domain: await _customers(demo_api, f"full@{domain}") for domain in PARTNERS}


async def test_subscriptions_trials_and_orders_of_both_partners(
    demo: dict[str, list[dict[str, Any]]],
) -> None:
    # given: every customer of both partners (the fixture)
    refs: Counter[str] = Counter()
    for domain, customers in demo.items():
        subs = [s for c in customers for s in c["subscriptions"]]
        refs.update(s["subscriptionId"] for s in subs)
        # then: ids as startTrial and convertTrial make them
        for s in subs:
            pattern = r"Sub\d{6}" if s["kind"] == "PAID" else r"Trial-\d{6}"
            assert re.fullmatch(pattern, s["subscriptionId"]), s["subscriptionId"]
        # trials in each state, listed on their customers
        trial_states = {t["state"] for c in customers for t in c["trials"]}
        assert {"ACTIVE", "EXPIRED"} <= trial_states, (domain, trial_states)
        # converted trials: a CONVERSION order naming a trial of the customer, and an invoice
        converted = [
            (c, s)
            for c in customers
            for s in c["subscriptions"]
            if any(o["action"] == "CONVERSION" for o in s["orders"])
        ]
        assert len(converted) >= 3, domain
        for customer, sub in converted:
            assert sub["kind"] == "PAID" and sub["invoices"], sub
            named = {t["subscriptionId"] for t in customer["trials"]}
            order = next(o for o in sub["orders"] if o["action"] == "CONVERSION")
            assert any(ref in order["description"] for ref in named), order
        # provisioning subscriptions to set up, on customers ready for order setup
        ready = [c for c in customers if "READY_FOR_ORDER_SETUP" in c["statuses"]]
        assert len(ready) >= 3, domain
        for c in ready:
            provisioning = [s for s in c["subscriptions"] if s["state"] == "PROVISIONING"]
            assert provisioning and all(s["licenses"] for s in provisioning)
            assert all(o["status"] == "IN_PROGRESS" for s in provisioning for o in s["orders"])
        # overage on both products
        over = {
            x["product"]
            for s in subs
            if _in_force(s)
            for x in s["licenses"]
            if x["assigned"] > x["purchased"]
        }
        assert {"MEETINGS", "CALLING"} <= over, (domain, over)
        # tags and partner admins shown on customers
        assert len({t["name"] for c in customers for t in c["tags"]}) >= 10
        roles = {a["role"] for c in customers for a in c["partnerAdmins"]}
        assert {"PARTNER_ADMIN", "SALES_ADMIN"} <= roles, roles
    # and no subscription or trial id is shared, within or across partners
    assert [ref for ref, n in refs.items() if n > 1] == []


@pytest.mark.parametrize("domain", PARTNERS)
async def test_customer_lists_by_every_status_and_filter(demo_api: Api, domain: str) -> None:
    # given
    admin = f"full@{domain}"
    query = """query($filter: CustomerFilter) {
      customers(first: 1, filter: $filter) { totalCount } }"""
    tags = data_of(await post_graphql(demo_api, "{ tags { id name } }", as_=admin))["tags"]
    filters: list[dict[str, Any]] = [{"statuses": [s.value]} for s in CustomerStatus]
    filters += [{"managedBy": m.value} for m in ManagedBy]
    filters += [{"products": [p.value]} for p in Product]
    filters += [{"subscriptionType": kind} for kind in ("PAID", "TRIAL")]
    filters += [{"tagIds": [t["id"]]} for t in tags]
    # when
    counts = {}
    for f in filters:
        body = await post_graphql(demo_api, query, {"filter": f}, as_=admin)
        counts[str(f)] = data_of(body)["customers"]["totalCount"]
    # then
    assert len(tags) >= 10
    assert [f for f, n in counts.items() if n == 0] == []


LICENSE_ANALYTICS = """
query($product: AnalyticsProduct!) {
  licenseKpis { totalCustomers aboutToExpire aboutToRenew lowAllocation overLicenseLimit }
  licenseAnalytics(product: $product) {
    distributionTrend { weekStart purchased assigned used }
    recentlyAdded { kpis { newCustomers totalLicenses } rows(first: 5) { totalCount } }
    aboutToExpire { kpis { expiringCustomers allocationPercent usagePercent }
                    rows(first: 5) { totalCount } }
    aboutToRenew { kpis { renewingCustomers allocationPercent usagePercent }
                   rows(first: 5) { totalCount } }
    lowAllocation { kpis { lowAllocationCustomers allocationPercent unassignedLicenses }
                    rows(first: 5) { totalCount } }
    overage { kpis { overageCustomers overageLicenses averageOverage }
              rows(first: 5) { totalCount } }
  }
}
"""


@pytest.mark.parametrize("domain", PARTNERS)
@pytest.mark.parametrize("product", ["MEETINGS", "CALLING"])
async def test_license_analytics_sections(demo_api: Api, domain: str, product: str) -> None:
    # when
    body = await post_graphql(
        demo_api, LICENSE_ANALYTICS, {"product": product}, as_=f"full@{domain}"
    )
    # then: every KPI, every week of the trend, every section has something
    data = data_of(body)
    assert all(v > 0 for v in data["licenseKpis"].values()), data["licenseKpis"]
    analytics = data["licenseAnalytics"]
    trend = analytics["distributionTrend"]
    assert len(trend) == 13
    assert all(0 < w["used"] <= w["assigned"] and w["purchased"] > 0 for w in trend), trend
    for name in ("recentlyAdded", "aboutToExpire", "aboutToRenew", "lowAllocation", "overage"):
        section = analytics[name]
        assert section["rows"]["totalCount"] > 0, (product, name)
        assert all(v > 0 for v in section["kpis"].values()), (product, name, section["kpis"])


CALLING_ANALYTICS = """
{
  callingAnalytics {
    complete
    usage { calls minutes activeUsers daily { calls } }
    usersByVolumeTrend { users1To10 users11To50 users51Plus licensedUsersWithoutCalls }
    customersUsage(first: 1) { totalCount }
    quality { totalCalls poorCalls }
    qualityTrend { totalCalls poorCalls }
    qualityByEndpoint { endpointType totalCalls poorCalls }
    customersQuality(first: 5) { totalCount nodes { poorPercent } }
    featureUsage { feature calls }
    callQueue {
      kpis { queueCalls answeredCalls abandonedCalls averageTimeToAnswerSeconds
             averageWaitBeforeAbandonSeconds abandonedRatePercent }
      customers(first: 5) { totalCount }
    }
  }
}
"""


USAGE_ROWS = """
query($after: String) {
  callingAnalytics {
    customersUsage(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { customer { id } calls activeUsers licensedUsers }
    }
  }
}
"""


async def _usage_rows(api: Api, admin: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        body = await post_graphql(api, USAGE_ROWS, {"after": after}, as_=admin)
        page = data_of(body)["callingAnalytics"]["customersUsage"]
        rows += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return rows
        after = page["pageInfo"]["endCursor"]


async def test_calling_analytics_sections_and_callers_follow_used_licences(
    demo_api: Api, demo: dict[str, list[dict[str, Any]]]
) -> None:
    for domain, customers in demo.items():
        # given: the Calling licences used (active in the last week) per customer, on
        # subscriptions that had started by the end of last week
        used = Counter[str]()
        for c in customers:
            for s in c["subscriptions"]:
                if _in_force(s) and _at(s["startDate"]) < LAST_WEEK_END:
                    used[c["id"]] += sum(
                        x["used"] for x in s["licenses"] if x["product"] == "CALLING"
                    )
        # when
        body = await post_graphql(demo_api, CALLING_ANALYTICS, as_=f"full@{domain}")
        # then: every section has data
        calling = data_of(body)["callingAnalytics"]
        assert calling["complete"] and calling["usage"]["calls"] > 1000
        assert sum(d["calls"] > 0 for d in calling["usage"]["daily"]) >= 5
        trend = calling["usersByVolumeTrend"]
        assert len(trend) == 8 and all(all(v > 0 for v in week.values()) for week in trend)
        assert calling["quality"]["poorCalls"] > 0
        assert all(w["totalCalls"] > 0 and w["poorCalls"] > 0 for w in calling["qualityTrend"])
        endpoints = {e["endpointType"]: e["totalCalls"] for e in calling["qualityByEndpoint"]}
        assert set(endpoints) == {e.value for e in EndpointType} and all(endpoints.values())
        assert calling["customersQuality"]["totalCount"] > 0
        features = {f["feature"]: f["calls"] for f in calling["featureUsage"]}
        assert set(features) == {f.value for f in CallFeature} and all(features.values())
        assert all(v > 0 for v in calling["callQueue"]["kpis"].values())
        assert calling["callQueue"]["customers"]["totalCount"] > 0
        # and active callers follow the used Calling licences, in total and per customer
        rows = await _usage_rows(demo_api, f"full@{domain}")
        assert calling["customersUsage"]["totalCount"] == len(rows) > 20
        active = sum(r["activeUsers"] for r in rows)
        assert 0.9 * sum(used.values()) <= active <= 1.05 * sum(used.values())
        assert active == calling["usage"]["activeUsers"]
        for row in rows:
            n = used[row["customer"]["id"]]
            assert row["activeUsers"] <= row["licensedUsers"]
            assert 0.8 * n - 1 <= row["activeUsers"] <= n, (row, n)
        # users by volume: most users are light callers, few licensed users stay silent
        last = trend[-1]
        callers = last["users1To10"] + last["users11To50"] + last["users51Plus"]
        assert callers == active
        assert last["users1To10"] > last["users11To50"] > last["users51Plus"]
        assert last["licensedUsersWithoutCalls"] < callers


HELPDESK = """
query($states: [HelpdeskState!]) {
  helpdeskCases(first: 100, filter: {states: $states}) {
    totalCount
    nodes { caseNumber product severity state closedAt customer { id } openedBy { email }
            comments { body author { email } } }
  }
}
"""


@pytest.mark.parametrize("domain", PARTNERS)
async def test_helpdesk_audit_log_resources_admins_and_roles(demo_api: Api, domain: str) -> None:
    admin = f"full@{domain}"
    # when
    cases = {}
    for state in ("OPEN", "CLOSED"):
        body = await post_graphql(demo_api, HELPDESK, {"states": [state]}, as_=admin)
        cases[state] = data_of(body)["helpdeskCases"]["nodes"]
    # then: cases open and closed, with their conversations
    assert len(cases["OPEN"]) >= 3 and len(cases["CLOSED"]) >= 3
    every = cases["OPEN"] + cases["CLOSED"]
    assert sorted(int(c["caseNumber"][3:]) for c in every) == list(range(1, len(every) + 1))
    assert all(c["closedAt"] for c in cases["CLOSED"])
    assert sum(bool(c["comments"]) for c in every) >= len(every) - 2
    assert all(len(c["comments"]) >= 2 for c in cases["CLOSED"])
    assert all(c["openedBy"]["email"].endswith(domain) for c in every)
    assert sum(c["customer"] is not None for c in every) > len(every) / 2
    assert len({c["product"] for c in every}) >= 4 and len({c["severity"] for c in every}) >= 3

    # when: the other lists of the front end
    body = await post_graphql(
        demo_api,
        """{
          partner { name ownOrganization { setupState } }
          admins(first: 50) { totalCount nodes { email role } }
          auditLog(first: 100) { totalCount nodes { operation objectType adminId createdAt } }
          quickLinks { slug } featuredResources { slug }
          resources(first: 5) { totalCount }
          roles { name } policyRules { role }
        }""",
        as_=admin,
    )
    # then
    data = data_of(body)
    assert {a["role"] for a in data["admins"]["nodes"]} == {
        "FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY_ADMIN", "SALES_ADMIN",
    }  # fmt: skip
    log = data["auditLog"]
    assert log["totalCount"] >= 50
    operations = {e["operation"] for e in log["nodes"]}
    assert {"openHelpdeskCase", "closeHelpdeskCase", "startTrial"} <= operations, operations
    times = [_at(e["createdAt"]) for e in log["nodes"]]
    assert times == sorted(times, reverse=True) and times[0] <= NOW
    assert all(e["adminId"] for e in log["nodes"])
    assert data["quickLinks"] and data["featuredResources"]
    assert data["resources"]["totalCount"] >= 40
    assert data["roles"] and data["policyRules"]
