"""The audit log: one entry per mutation, written in the mutation's own transaction (who, which
operation, on which object, before/after, when), and ``auditLog`` with its filters and pages.

That *every* mutation of the schema writes an entry is checked by the role matrix, which counts
the entries each allowed mutation adds (tests/test_role_matrix.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest

import graph.mutations
from tests.authz_support import AuthzFactory, gid, mutation_document, user_error_codes
from tests.conftest import NOW, Api, instance_beside
from tests.helpers import assert_forbidden, data_of, error_codes, post_graphql, utc

FULL, PARTNER, RO, SALES = (
    "full@acme.example",
    "partner@acme.example",
    "readonly@acme.example",
    "sales@acme.example",
)
OTHER_FULL = "full@globex.example"
T1, T2 = utc(2026, 11, 1, 9), utc(2026, 11, 10, 9)

AUDIT_LOG = """
query Audit($first: Int!, $after: String, $filter: AuditFilter) {
  auditLog(first: $first, after: $after, filter: $filter) {
    totalCount
    nodes { id adminId operation objectType objectId before after createdAt }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""
CREATE_TAG = mutation_document("createTag", "CreateTagInput", "tag { id }")
UPDATE_TAG = mutation_document("updateTag", "UpdateTagInput", "tag { id }")
TAG_CUSTOMERS = mutation_document("addTagsToCustomers", "CustomerTagsInput", "changed")
START_TRIAL = mutation_document(
    "startTrial", "StartTrialInput", "trial { id subscriptionId } customer { id }"
)
UPDATE_ADMIN = mutation_document("updateAdmin", "UpdateAdminInput", "admin { id }")
DEACTIVATE_ADMIN = mutation_document("deactivateAdmin", "DeactivateAdminInput", "admin { id }")
ADD_RULE = mutation_document("addPolicyRule", "PolicyRuleChangeInput", "rule { role }")


async def acme(api: Api) -> dict[str, int]:
    """Acme with an admin of each built-in role and two customers; Globex with a full admin."""
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    pks = {"partner": partner}
    for email, role in (
        (FULL, "FULL_ADMIN"),
        (PARTNER, "PARTNER_ADMIN"),
        (RO, "READ_ONLY_ADMIN"),
        (SALES, "SALES_ADMIN"),
    ):
        pks[email] = await f.admin(partner, email, role)
    pks[OTHER_FULL] = await f.admin(globex, OTHER_FULL, "FULL_ADMIN")
    pks["customer"] = await f.customer(partner, "Initech")
    await f.assign(pks["customer"], pks[PARTNER])
    return pks


async def audit(api: Api, as_: str = FULL, first: int = 50, **filter: Any) -> dict[str, Any]:
    variables = {"first": first, "filter": filter or None}
    return data_of(await post_graphql(api, AUDIT_LOG, variables, as_=as_))["auditLog"]  # type: ignore[no-any-return]


@asynccontextmanager
async def clock_at(api: Api, now: datetime) -> AsyncIterator[Api]:
    """Another app over the same database whose clock reads ``now``."""
    async with instance_beside(api, now=now) as other:
        yield other


async def test_each_mutation_writes_who_what_on_which_object_before_after_and_when(
    api: Api,
) -> None:
    # given
    pks = await acme(api)
    customer = gid("Customer", pks["customer"])
    full, ro = gid("Admin", pks[FULL]), gid("Admin", pks[RO])

    # when: a few mutations of different kinds
    created = await post_graphql(
        api, CREATE_TAG, {"input": {"name": "VIP", "description": "Top"}}, as_=FULL
    )
    tag = data_of(created)["createTag"]["tag"]["id"]
    await post_graphql(api, UPDATE_TAG, {"input": {"id": tag, "name": "Gold"}}, as_=FULL)
    await post_graphql(
        api, TAG_CUSTOMERS, {"input": {"customerIds": [customer], "tagIds": [tag]}}, as_=PARTNER
    )
    trial_input = {
        "customerId": customer,
        "products": [{"product": "CALLING", "licenses": 5}],
        "durationDays": 14,
    }
    trial = data_of(await post_graphql(api, START_TRIAL, {"input": trial_input}, as_=PARTNER))[
        "startTrial"
    ]["trial"]
    await post_graphql(api, UPDATE_ADMIN, {"input": {"id": ro, "name": "Rita"}}, as_=FULL)
    await post_graphql(
        api,
        ADD_RULE,
        {"input": {"role": "SALES_ADMIN", "object": "tag", "action": "write"}},
        as_=FULL,
    )
    await post_graphql(api, DEACTIVATE_ADMIN, {"input": {"id": ro}}, as_=FULL)

    # then: one entry each, newest first
    log = await audit(api)
    entries = [
        (n["operation"], n["objectType"], n["objectId"], n["adminId"], n["before"], n["after"])
        for n in log["nodes"]
    ]
    partner_admin = gid("Admin", pks[PARTNER])
    assert entries == [
        ("deactivateAdmin", "admin", ro, full, {"active": True}, {"active": False}),
        (
            "addPolicyRule",
            "policy",
            "SALES_ADMIN",
            full,
            None,
            {"role": "SALES_ADMIN", "object": "tag", "action": "write", "scope": "all"},
        ),
        ("updateAdmin", "admin", ro, full, {"name": "Readonly"}, {"name": "Rita"}),
        ("startTrial", "subscription", trial["id"], partner_admin, None, log["nodes"][3]["after"]),
        (
            "addTagsToCustomers",
            "customer",
            None,
            partner_admin,
            None,
            {"customerIds": [customer], "tagIds": [tag], "changed": 1},
        ),
        ("updateTag", "tag", tag, full, {"name": "VIP"}, {"name": "Gold"}),
        ("createTag", "tag", tag, full, None, {"name": "VIP", "description": "Top"}),
    ]
    assert log["totalCount"] == 7
    started = log["nodes"][3]["after"]
    assert started["subscriptionId"] == trial["subscriptionId"]
    assert (started["kind"], started["state"], started["products"]) == (
        "TRIAL",
        "ACTIVE",
        {"CALLING": 5},
    )
    assert {n["createdAt"] for n in log["nodes"]} == {NOW.isoformat()}
    ids = [int(n["id"]) for n in log["nodes"]]
    assert ids == sorted(ids, reverse=True)


async def test_a_failed_or_refused_mutation_writes_only_its_refusal(api: Api) -> None:
    # given
    pks = await acme(api)
    await post_graphql(api, CREATE_TAG, {"input": {"name": "VIP"}}, as_=FULL)
    assert (await audit(api))["totalCount"] == 1

    # when: a user error, a refusal, and a rule that does not exist
    taken = await post_graphql(api, CREATE_TAG, {"input": {"name": "vip"}}, as_=FULL)
    refused = await post_graphql(api, CREATE_TAG, {"input": {"name": "Other"}}, as_=RO)
    missing = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": gid("Admin", pks[OTHER_FULL]), "name": "X"}}, as_=FULL
    )

    # then
    assert user_error_codes(taken, "createTag") == ["TAG_NAME_TAKEN"]
    assert_forbidden(refused)
    assert user_error_codes(missing, "updateAdmin") == ["NOT_FOUND"]
    # every refusal is audited (issue 14): an entry of the refusal and its code, nothing else
    entries = [(n["operation"], n["objectType"], n["after"]) for n in (await audit(api))["nodes"]]
    assert entries == [
        ("updateAdmin", "refusal", {"codes": ["NOT_FOUND"]}),
        ("createTag", "refusal", {"codes": ["FORBIDDEN"]}),
        ("createTag", "refusal", {"codes": ["TAG_NAME_TAKEN"]}),
        ("createTag", "tag", {"name": "VIP", "description": None}),
    ]


async def test_the_entry_and_the_change_commit_together(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: writing the audit entry fails
    await acme(api)
    await post_graphql(api, "query { viewer { id } }", as_=FULL)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(graph.mutations, "write_audit", broken)

    # when
    body = await post_graphql(api, CREATE_TAG, {"input": {"name": "VIP"}}, as_=FULL)

    # then: the error is masked, and the tag was not created either
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    monkeypatch.undo()
    assert data_of(await post_graphql(api, "query { tags { name } }", as_=FULL))["tags"] == []
    assert (await audit(api))["totalCount"] == 0


async def test_audit_log_filters(api: Api) -> None:
    # given: entries at three instants, by two admins
    pks = await acme(api)
    async with clock_at(api, T1) as early:
        x = data_of(await post_graphql(early, CREATE_TAG, {"input": {"name": "X"}}, as_=FULL))[
            "createTag"
        ]["tag"]["id"]
    async with clock_at(api, T2) as middle:
        await post_graphql(middle, CREATE_TAG, {"input": {"name": "Y"}}, as_=PARTNER)
    await post_graphql(api, UPDATE_TAG, {"input": {"id": x, "name": "X2"}}, as_=FULL)
    full, partner = gid("Admin", pks[FULL]), gid("Admin", pks[PARTNER])

    def ops(log: dict[str, Any]) -> list[tuple[str, str]]:
        return [(n["operation"], n["createdAt"][:10]) for n in log["nodes"]]

    # when / then
    assert ops(await audit(api)) == [
        ("updateTag", "2026-11-26"),
        ("createTag", "2026-11-10"),
        ("createTag", "2026-11-01"),
    ]
    assert ops(await audit(api, adminId=full)) == [
        ("updateTag", "2026-11-26"),
        ("createTag", "2026-11-01"),
    ]
    assert ops(await audit(api, adminId=partner)) == [("createTag", "2026-11-10")]
    assert ops(await audit(api, operation="createTag")) == [
        ("createTag", "2026-11-10"),
        ("createTag", "2026-11-01"),
    ]
    assert ops(await audit(api, objectId=x)) == [
        ("updateTag", "2026-11-26"),
        ("createTag", "2026-11-01"),
    ]
    assert ops(await audit(api, since=T2.isoformat())) == [
        ("updateTag", "2026-11-26"),
        ("createTag", "2026-11-10"),
    ]
    assert ops(await audit(api, until=T2.isoformat())) == [
        ("createTag", "2026-11-01")
    ]  # until excludes
    assert ops(await audit(api, since=T1.isoformat(), until=NOW.isoformat())) == [
        ("createTag", "2026-11-10"),
        ("createTag", "2026-11-01"),
    ]
    assert ops(await audit(api, adminId=full, operation="createTag")) == [
        ("createTag", "2026-11-01")
    ]
    assert (await audit(api, adminId=full, since=T2.isoformat(), until=NOW.isoformat()))[
        "totalCount"
    ] == 0
    assert (await audit(api, operation="deleteTag"))["totalCount"] == 0
    # another partner's admin filter finds nothing here; that partner sees none of Acme's
    assert (await audit(api, adminId=gid("Admin", pks[OTHER_FULL])))["totalCount"] == 0
    assert (await audit(api, as_=OTHER_FULL))["nodes"] == []
    bad = await post_graphql(
        api, AUDIT_LOG, {"first": 5, "filter": {"adminId": gid("Tag", 1)}}, as_=FULL
    )
    assert error_codes(bad) == ["INVALID_ID"]


async def test_audit_log_pages_newest_first(api: Api) -> None:
    # given: five entries
    await acme(api)
    for name in ("A", "B", "C", "D", "E"):
        await post_graphql(api, CREATE_TAG, {"input": {"name": name}}, as_=FULL)

    # when
    pages, after = [], None
    for _ in range(5):
        body = await post_graphql(api, AUDIT_LOG, {"first": 2, "after": after}, as_=FULL)
        page = data_of(body)["auditLog"]
        pages.append(page)
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break

    # then
    names = [n["after"]["name"] for page in pages for n in page["nodes"]]
    assert names == ["E", "D", "C", "B", "A"]
    assert [len(p["nodes"]) for p in pages] == [2, 2, 1]
    assert {p["totalCount"] for p in pages} == {5}
    assert [p["pageInfo"]["hasPreviousPage"] for p in pages] == [False, True, True]
    # a cursor belongs to its query: another filter, or a forged one, is refused
    other = await post_graphql(
        api,
        AUDIT_LOG,
        {
            "first": 2,
            "after": pages[0]["pageInfo"]["endCursor"],
            "filter": {"operation": "createTag"},
        },
        as_=FULL,
    )
    assert error_codes(other) == ["INVALID_CURSOR"]
    forged = await post_graphql(api, AUDIT_LOG, {"first": 2, "after": "bm90IGEgY3Vyc29y"}, as_=FULL)
    assert error_codes(forged) == ["INVALID_CURSOR"]
    too_many = await post_graphql(api, AUDIT_LOG, {"first": 101}, as_=FULL)
    assert error_codes(too_many) == ["INVALID_PAGE_SIZE"]


async def test_only_full_admins_read_the_audit_log(api: Api) -> None:
    # given
    await acme(api)
    await post_graphql(api, CREATE_TAG, {"input": {"name": "VIP"}}, as_=FULL)

    for caller in (PARTNER, RO, SALES):
        # when
        body = await post_graphql(api, AUDIT_LOG, {"first": 5}, as_=caller)

        # then
        assert_forbidden(body)
        assert body["data"] is None
