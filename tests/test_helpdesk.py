"""Partner helpdesk: open, comment on, close, list and read cases, through the one door."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import AuditLog, HelpdeskCase, HelpdeskComment
from graph.ids import to_global_id
from graph.mutations import REFUSAL
from tests.conftest import NOW, Api
from tests.helpers import Factory, assert_forbidden, data_of, error_codes, post_graphql

FULL = "full@acme.example"
PARTNER = "partner@acme.example"
READ_ONLY = "readonly@acme.example"
SALES = "sales@acme.example"
GLOBEX = "full@globex.example"

CASE_FIELDS = """
  id caseNumber product subject description severity state createdAt closedAt
  customer { id name }
  openedBy { id email }
  comments { body createdAt author { email } }
"""

OPEN = f"""
mutation Open($input: OpenHelpdeskCaseInput!) {{
  openHelpdeskCase(input: $input) {{
    case {{ {CASE_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

COMMENT = f"""
mutation Comment($input: AddHelpdeskCaseCommentInput!) {{
  addHelpdeskCaseComment(input: $input) {{
    case {{ {CASE_FIELDS} }}
    comment {{ body createdAt author {{ email }} }}
    userErrors {{ field message code }}
  }}
}}
"""

CLOSE = f"""
mutation Close($input: CloseHelpdeskCaseInput!) {{
  closeHelpdeskCase(input: $input) {{
    case {{ {CASE_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

CASE = f"""
query Case($id: ID!) {{ helpdeskCase(id: $id) {{ {CASE_FIELDS} }} }}
"""

CASES = f"""
query Cases($first: Int!, $after: String, $filter: HelpdeskCaseFilter) {{
  helpdeskCases(first: $first, after: $after, filter: $filter) {{
    totalCount
    nodes {{ {CASE_FIELDS} }}
    edges {{ cursor node {{ id }} }}
    pageInfo {{ hasNextPage hasPreviousPage endCursor }}
  }}
}}
"""

AUDIT = """
query Audit($objectId: String) {
  auditLog(first: 50, filter: {objectId: $objectId}) {
    nodes { operation objectType objectId before after adminId }
  }
}
"""


@pytest.fixture
async def acme(api: Api) -> dict[str, int]:
    """Acme with one admin of each role and two customers (one assigned to the partner admin),
    and Globex, another partner with a full admin and a customer."""
    factory = Factory(api.engine)
    acme = await factory.partner("Acme Partners", "acme.example")
    ids = {
        "partner": acme,
        "full": await factory.admin(acme, FULL, "FULL_ADMIN"),
        "partner_admin": await factory.admin(acme, PARTNER, "PARTNER_ADMIN"),
        "read_only": await factory.admin(acme, READ_ONLY, "READ_ONLY_ADMIN"),
        "sales": await factory.admin(acme, SALES, "SALES_ADMIN"),
        "assigned": await factory.customer(acme, "Assigned Corp"),
        "unassigned": await factory.customer(acme, "Unassigned Corp"),
    }
    await factory.assign(ids["assigned"], ids["partner_admin"])
    globex = await factory.partner("Globex Reseller", "globex.example")
    ids["globex"] = globex
    ids["globex_full"] = await factory.admin(globex, GLOBEX, "FULL_ADMIN")
    ids["globex_customer"] = await factory.customer(globex, "Globex Customer")
    return ids


def case_input(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "product": "CALLING",
        "subject": "Calls drop after 30 seconds",
        "description": "Since Monday every outbound call from the Madrid site drops at 30 s.",
        "severity": "HIGH",
    }
    values.update(overrides)
    return values


def customer_id(pk: int) -> str:
    return to_global_id("Customer", pk)


async def open_case(api: Api, as_: str = FULL, **overrides: Any) -> dict[str, Any]:
    body = await post_graphql(api, OPEN, {"input": case_input(**overrides)}, as_=as_)
    payload: dict[str, Any] = data_of(body)["openHelpdeskCase"]
    assert payload["userErrors"] == [], payload
    case: dict[str, Any] = payload["case"]
    return case


async def row_counts(api: Api) -> tuple[int, int, int]:
    """(cases, comments, audit entries of changes) in the database: a refusal writes only
    the audit entry of the refusal (graph.mutations.audit_refusal), not counted here."""
    async with api.engine.connect() as conn:
        counts = []
        for model in (HelpdeskCase, HelpdeskComment, AuditLog):
            statement = select(func.count()).select_from(model)
            if model is AuditLog:
                statement = statement.where(AuditLog.object_type != REFUSAL)  # type: ignore[arg-type]
            counts.append((await conn.execute(statement)).scalar_one())
    return counts[0], counts[1], counts[2]


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


# --- lifecycle ----------------------------------------------------------------------------------


async def test_a_case_is_opened_commented_on_and_closed(api: Api, acme: dict[str, int]) -> None:
    # given
    opened = await open_case(
        api, subject="  Calls drop after 30 seconds  ", customerId=customer_id(acme["assigned"])
    )

    # when
    commented = data_of(
        await post_graphql(
            api, COMMENT, {"input": {"caseId": opened["id"], "body": " Also on mobile. "}}, as_=FULL
        )
    )["addHelpdeskCaseComment"]
    closed = data_of(
        await post_graphql(
            api,
            CLOSE,
            {"input": {"caseId": opened["id"], "resolution": "Carrier fixed the SIP trunk."}},
            as_=FULL,
        )
    )["closeHelpdeskCase"]
    read = data_of(await post_graphql(api, CASE, {"id": opened["id"]}, as_=READ_ONLY))

    # then
    assert opened["subject"] == "Calls drop after 30 seconds"
    assert opened["caseNumber"].startswith("CS-")
    assert opened["state"] == "OPEN" and opened["closedAt"] is None
    assert opened["product"] == "CALLING" and opened["severity"] == "HIGH"
    assert opened["customer"] == {"id": customer_id(acme["assigned"]), "name": "Assigned Corp"}
    assert opened["openedBy"]["email"] == FULL
    assert opened["comments"] == []
    assert commented["userErrors"] == []
    assert commented["comment"]["body"] == "Also on mobile."
    assert commented["comment"]["author"] == {"email": FULL}
    assert [c["body"] for c in commented["case"]["comments"]] == ["Also on mobile."]
    assert closed["userErrors"] == []
    assert closed["case"]["state"] == "CLOSED"
    assert closed["case"]["closedAt"] == NOW.isoformat()
    case = read["helpdeskCase"]
    assert case["state"] == "CLOSED"
    assert [c["body"] for c in case["comments"]] == [
        "Also on mobile.",
        "Carrier fixed the SIP trunk.",
    ]
    assert await row_counts(api) == (1, 2, 3)


async def test_a_case_without_customer_or_resolution(api: Api, acme: dict[str, int]) -> None:
    # given
    opened = await open_case(api, as_=PARTNER, product="CONTACT_CENTER", severity="CRITICAL")

    # when
    closed = data_of(
        await post_graphql(api, CLOSE, {"input": {"caseId": opened["id"]}}, as_=PARTNER)
    )["closeHelpdeskCase"]

    # then
    assert opened["customer"] is None
    assert opened["openedBy"]["email"] == PARTNER
    assert closed["case"]["state"] == "CLOSED"
    assert closed["case"]["comments"] == []


async def test_cases_are_partner_wide(api: Api, acme: dict[str, int]) -> None:
    # given: the full admin opens a case about a customer the partner admin is not assigned to
    opened = await open_case(api, customerId=customer_id(acme["unassigned"]))

    # when
    as_partner_admin = data_of(await post_graphql(api, CASE, {"id": opened["id"]}, as_=PARTNER))
    commented = data_of(
        await post_graphql(
            api, COMMENT, {"input": {"caseId": opened["id"], "body": "Seen."}}, as_=PARTNER
        )
    )["addHelpdeskCaseComment"]

    # then: the partner admin sees and works the case, but not the customer it cannot see
    assert as_partner_admin["helpdeskCase"]["id"] == opened["id"]
    assert as_partner_admin["helpdeskCase"]["customer"] is None
    assert commented["userErrors"] == []


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"subject": ""}, "SUBJECT_REQUIRED", ["subject"]),
        ({"subject": " \t\n "}, "SUBJECT_REQUIRED", ["subject"]),
        ({"subject": "s" * 201}, "SUBJECT_TOO_LONG", ["subject"]),
        ({"description": ""}, "DESCRIPTION_REQUIRED", ["description"]),
        ({"description": "   "}, "DESCRIPTION_REQUIRED", ["description"]),
        ({"description": "d" * 10_001}, "DESCRIPTION_TOO_LONG", ["description"]),
        ({"customerId": "not-an-id"}, "INVALID_ID", ["customerId"]),
        ({"customerId": to_global_id("Tag", 1)}, "INVALID_ID", ["customerId"]),
        ({"customerId": customer_id(999_999)}, "NOT_FOUND", ["customerId"]),
    ],
)
async def test_an_invalid_case_gets_its_code_and_writes_nothing(
    api: Api, acme: dict[str, int], overrides: dict[str, Any], code: str, field: list[str]
) -> None:
    # given
    before = await row_counts(api)

    # when
    body = await post_graphql(api, OPEN, {"input": case_input(**overrides)}, as_=FULL)

    # then
    payload = data_of(body)["openHelpdeskCase"]
    assert payload["case"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)]
    assert all(e["message"] for e in payload["userErrors"])
    assert await row_counts(api) == before


async def test_the_longest_subject_and_description_are_accepted(
    api: Api, acme: dict[str, int]
) -> None:
    # when
    case = await open_case(api, subject="s" * 200, description="d" * 10_000)

    # then
    assert len(case["subject"]) == 200 and len(case["description"]) == 10_000


async def test_every_problem_of_a_case_is_reported_at_once(api: Api, acme: dict[str, int]) -> None:
    # when
    body = await post_graphql(
        api,
        OPEN,
        {"input": case_input(subject="", description="d" * 10_001, customerId=customer_id(9999))},
        as_=FULL,
    )

    # then
    payload = data_of(body)["openHelpdeskCase"]
    assert codes(payload) == ["SUBJECT_REQUIRED", "DESCRIPTION_TOO_LONG", "NOT_FOUND"]
    assert await row_counts(api) == (0, 0, 0)


@pytest.mark.parametrize(
    ("as_", "customer"),
    [
        (PARTNER, "unassigned"),  # a customer of the partner the partner admin may not see
        (FULL, "globex_customer"),  # another partner's customer
    ],
)
async def test_a_case_about_a_customer_the_caller_cannot_see_is_not_found(
    api: Api, acme: dict[str, int], as_: str, customer: str
) -> None:
    # when
    body = await post_graphql(
        api, OPEN, {"input": case_input(customerId=customer_id(acme[customer]))}, as_=as_
    )

    # then
    payload = data_of(body)["openHelpdeskCase"]
    assert codes(payload) == ["NOT_FOUND"]
    assert await row_counts(api) == (0, 0, 0)


async def test_a_partner_admin_may_name_its_assigned_customer(
    api: Api, acme: dict[str, int]
) -> None:
    # when
    case = await open_case(api, as_=PARTNER, customerId=customer_id(acme["assigned"]))

    # then
    assert case["customer"]["name"] == "Assigned Corp"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "COMMENT_REQUIRED"),
        ("  \n ", "COMMENT_REQUIRED"),
        ("c" * 10_001, "COMMENT_TOO_LONG"),
    ],
)
async def test_an_invalid_comment_gets_its_code_and_writes_nothing(
    api: Api, acme: dict[str, int], body: str, code: str
) -> None:
    # given
    case = await open_case(api)
    before = await row_counts(api)

    # when
    response = await post_graphql(
        api, COMMENT, {"input": {"caseId": case["id"], "body": body}}, as_=FULL
    )

    # then
    payload = data_of(response)["addHelpdeskCaseComment"]
    assert payload["case"] is None and payload["comment"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, ["body"])]
    assert await row_counts(api) == before


async def test_a_closed_case_takes_no_comment_and_cannot_be_closed_again(
    api: Api, acme: dict[str, int]
) -> None:
    # given
    case = await open_case(api)
    data_of(await post_graphql(api, CLOSE, {"input": {"caseId": case["id"]}}, as_=FULL))
    before = await row_counts(api)

    # when
    comment = await post_graphql(
        api, COMMENT, {"input": {"caseId": case["id"], "body": "Still there?"}}, as_=FULL
    )
    close = await post_graphql(
        api, CLOSE, {"input": {"caseId": case["id"], "resolution": "Again."}}, as_=FULL
    )

    # then
    assert codes(data_of(comment)["addHelpdeskCaseComment"]) == ["CASE_CLOSED"]
    assert codes(data_of(close)["closeHelpdeskCase"]) == ["CASE_CLOSED"]
    assert await row_counts(api) == before


async def test_a_resolution_longer_than_10000_characters_is_refused(
    api: Api, acme: dict[str, int]
) -> None:
    # given
    case = await open_case(api)
    before = await row_counts(api)

    # when
    body = await post_graphql(
        api, CLOSE, {"input": {"caseId": case["id"], "resolution": "r" * 10_001}}, as_=FULL
    )

    # then
    payload = data_of(body)["closeHelpdeskCase"]
    assert codes(payload) == ["RESOLUTION_TOO_LONG"]
    assert await row_counts(api) == before
    still_open = data_of(await post_graphql(api, CASE, {"id": case["id"]}, as_=FULL))
    assert still_open["helpdeskCase"]["state"] == "OPEN"


@pytest.mark.parametrize(
    ("mutation", "name", "extra"),
    [
        (COMMENT, "addHelpdeskCaseComment", {"body": "Hello"}),
        (CLOSE, "closeHelpdeskCase", {}),
    ],
)
@pytest.mark.parametrize(
    ("case_id", "code"),
    [
        ("garbage", "INVALID_ID"),
        (to_global_id("Customer", 1), "INVALID_ID"),
        (to_global_id("HelpdeskCase", 999_999), "NOT_FOUND"),
    ],
)
async def test_a_bad_case_id_gets_its_code(
    api: Api,
    acme: dict[str, int],
    mutation: str,
    name: str,
    extra: dict[str, Any],
    case_id: str,
    code: str,
) -> None:
    # given
    await open_case(api)
    before = await row_counts(api)

    # when
    body = await post_graphql(api, mutation, {"input": {"caseId": case_id, **extra}}, as_=FULL)

    # then
    payload = data_of(body)[name]
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, ["caseId"])]
    assert await row_counts(api) == before


# --- authorization ------------------------------------------------------------------------------


@pytest.mark.parametrize("as_", [READ_ONLY, SALES])
async def test_roles_without_helpdesk_write_cannot_open_comment_or_close(
    api: Api, acme: dict[str, int], as_: str
) -> None:
    # given
    case = await open_case(api)
    before = await row_counts(api)

    # when
    opened = await post_graphql(api, OPEN, {"input": case_input()}, as_=as_)
    commented = await post_graphql(
        api, COMMENT, {"input": {"caseId": case["id"], "body": "Hi"}}, as_=as_
    )
    closed = await post_graphql(api, CLOSE, {"input": {"caseId": case["id"]}}, as_=as_)

    # then
    for body in (opened, commented, closed):
        assert_forbidden(body)
        assert body["data"] is None
    assert await row_counts(api) == before


async def test_a_read_only_admin_reads_cases(api: Api, acme: dict[str, int]) -> None:
    # given
    case = await open_case(api)

    # when
    listed = data_of(await post_graphql(api, CASES, {"first": 10}, as_=READ_ONLY))
    read = data_of(await post_graphql(api, CASE, {"id": case["id"]}, as_=READ_ONLY))

    # then
    assert [n["id"] for n in listed["helpdeskCases"]["nodes"]] == [case["id"]]
    assert read["helpdeskCase"]["id"] == case["id"]


async def test_a_sales_admin_cannot_read_cases(api: Api, acme: dict[str, int]) -> None:
    # given: SALES_ADMIN has no helpdesk rule at all in the default policy
    case = await open_case(api)

    # when
    listed = await post_graphql(api, CASES, {"first": 10}, as_=SALES)
    read = await post_graphql(api, CASE, {"id": case["id"]}, as_=SALES)

    # then
    assert_forbidden(listed)
    assert data_of(read)["helpdeskCase"] is None


async def test_another_partners_case_is_invisible(api: Api, acme: dict[str, int]) -> None:
    # given
    theirs = await open_case(api, as_=GLOBEX, customerId=customer_id(acme["globex_customer"]))
    ours = await open_case(api)
    before = await row_counts(api)

    # when
    read = await post_graphql(api, CASE, {"id": theirs["id"]}, as_=FULL)
    listed = await post_graphql(api, CASES, {"first": 10}, as_=FULL)
    commented = await post_graphql(
        api, COMMENT, {"input": {"caseId": theirs["id"], "body": "Mine now"}}, as_=FULL
    )
    closed = await post_graphql(api, CLOSE, {"input": {"caseId": theirs["id"]}}, as_=FULL)

    # then
    assert data_of(read)["helpdeskCase"] is None
    assert [n["id"] for n in data_of(listed)["helpdeskCases"]["nodes"]] == [ours["id"]]
    assert data_of(listed)["helpdeskCases"]["totalCount"] == 1
    assert codes(data_of(commented)["addHelpdeskCaseComment"]) == ["NOT_FOUND"]
    assert codes(data_of(closed)["closeHelpdeskCase"]) == ["NOT_FOUND"]
    assert await row_counts(api) == before


async def test_a_case_read_with_another_kind_of_id_is_invalid(
    api: Api, acme: dict[str, int]
) -> None:
    # when
    body = await post_graphql(api, CASE, {"id": customer_id(acme["assigned"])}, as_=FULL)

    # then
    assert error_codes(body) == ["INVALID_ID"]


# --- audit --------------------------------------------------------------------------------------


async def test_every_helpdesk_mutation_is_audited(api: Api, acme: dict[str, int]) -> None:
    # given
    case = await open_case(api, customerId=customer_id(acme["assigned"]))
    await post_graphql(api, COMMENT, {"input": {"caseId": case["id"], "body": "More"}}, as_=FULL)
    await post_graphql(
        api, CLOSE, {"input": {"caseId": case["id"], "resolution": "Fixed"}}, as_=FULL
    )

    # when
    body = await post_graphql(api, AUDIT, {"objectId": case["id"]}, as_=FULL)

    # then
    entries = list(reversed(data_of(body)["auditLog"]["nodes"]))
    assert [e["operation"] for e in entries] == [
        "openHelpdeskCase",
        "addHelpdeskCaseComment",
        "closeHelpdeskCase",
    ]
    assert {e["objectType"] for e in entries} == {"helpdeskCase"}
    assert {e["adminId"] for e in entries} == {to_global_id("Admin", acme["full"])}
    opened, commented, closed = entries
    assert opened["before"] is None
    assert opened["after"]["subject"] == case["subject"]
    assert opened["after"]["customerId"] == customer_id(acme["assigned"])
    assert opened["after"]["state"] == "OPEN"
    assert commented["after"]["body"] == "More"
    assert closed["before"] == {"state": "OPEN"}
    assert closed["after"]["state"] == "CLOSED"
    assert closed["after"]["resolution"] == "Fixed"


# --- lists --------------------------------------------------------------------------------------


async def test_cases_are_listed_newest_first_and_filtered(api: Api, acme: dict[str, int]) -> None:
    # given
    low = await open_case(api, product="MEETINGS", severity="LOW")
    about = await open_case(
        api, product="CALLING", severity="HIGH", customerId=customer_id(acme["assigned"])
    )
    critical = await open_case(api, product="CONTACT_CENTER", severity="CRITICAL")
    await post_graphql(api, CLOSE, {"input": {"caseId": low["id"]}}, as_=FULL)

    async def ids(filter: dict[str, Any] | None, as_: str = FULL) -> list[str]:
        body = await post_graphql(api, CASES, {"first": 10, "filter": filter}, as_=as_)
        connection = data_of(body)["helpdeskCases"]
        assert connection["totalCount"] == len(connection["nodes"])
        return [n["id"] for n in connection["nodes"]]

    # when / then
    assert await ids(None) == [critical["id"], about["id"], low["id"]]
    assert await ids({"states": ["OPEN"]}) == [critical["id"], about["id"]]
    assert await ids({"states": ["CLOSED"]}) == [low["id"]]
    assert await ids({"products": ["MEETINGS", "CONTACT_CENTER"]}) == [critical["id"], low["id"]]
    assert await ids({"severities": ["HIGH", "CRITICAL"]}) == [critical["id"], about["id"]]
    assert await ids({"states": ["OPEN"], "severities": ["LOW"]}) == []
    assert await ids({"states": []}) == []
    assert await ids({"customerId": customer_id(acme["assigned"])}) == [about["id"]]
    assert await ids({"customerId": customer_id(acme["unassigned"])}) == []
    # a partner admin sees the cases about its assigned customer
    assert await ids({"customerId": customer_id(acme["assigned"])}, as_=PARTNER) == [about["id"]]


async def test_a_customer_filter_with_a_bad_id_is_invalid(api: Api, acme: dict[str, int]) -> None:
    # when
    body = await post_graphql(api, CASES, {"first": 10, "filter": {"customerId": "nope"}}, as_=FULL)

    # then
    assert error_codes(body) == ["INVALID_ID"]


async def test_a_partner_admin_filtering_by_an_unassigned_customer_finds_nothing(
    api: Api, acme: dict[str, int]
) -> None:
    # given
    await open_case(api, customerId=customer_id(acme["unassigned"]))

    # when
    body = await post_graphql(
        api,
        CASES,
        {"first": 10, "filter": {"customerId": customer_id(acme["unassigned"])}},
        as_=PARTNER,
    )

    # then
    assert data_of(body)["helpdeskCases"]["nodes"] == []
    assert data_of(body)["helpdeskCases"]["totalCount"] == 0


async def test_paging_walks_every_case_exactly_once(api: Api, acme: dict[str, int]) -> None:
    # given
    opened = [(await open_case(api, subject=f"Case {i}"))["id"] for i in range(7)]

    # when
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await post_graphql(api, CASES, {"first": 3, "after": after}, as_=FULL)
        connection = data_of(body)["helpdeskCases"]
        seen += [n["id"] for n in connection["nodes"]]
        pages += 1
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert connection["totalCount"] == 7
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    # then
    assert seen == list(reversed(opened))
    assert pages == 3


async def test_a_cursor_of_another_filter_is_refused(api: Api, acme: dict[str, int]) -> None:
    # given
    for _ in range(2):
        await open_case(api)
    first_page = data_of(await post_graphql(api, CASES, {"first": 1}, as_=FULL))
    cursor = first_page["helpdeskCases"]["pageInfo"]["endCursor"]

    # when
    body = await post_graphql(
        api, CASES, {"first": 1, "after": cursor, "filter": {"states": ["OPEN"]}}, as_=FULL
    )

    # then
    assert error_codes(body) == ["INVALID_CURSOR"]


async def test_comments_and_relations_load_with_a_constant_number_of_statements(
    api: Api, acme: dict[str, int]
) -> None:
    # given: 20 cases, each with a customer and two comments by two admins
    for i in range(20):
        case = await open_case(api, subject=f"Case {i}", customerId=customer_id(acme["assigned"]))
        for author in (FULL, PARTNER):
            await post_graphql(
                api,
                COMMENT,
                {"input": {"caseId": case["id"], "body": f"from {author}"}},
                as_=author,
            )

    # when
    with api.counter.counting() as two:
        small = data_of(await post_graphql(api, CASES, {"first": 2}, as_=FULL))
    with api.counter.counting() as twenty:
        large = data_of(await post_graphql(api, CASES, {"first": 20}, as_=FULL))

    # then
    assert len(small["helpdeskCases"]["nodes"]) == 2
    assert len(large["helpdeskCases"]["nodes"]) == 20
    assert all(len(n["comments"]) == 2 for n in large["helpdeskCases"]["nodes"])
    assert all(n["customer"]["name"] == "Assigned Corp" for n in large["helpdeskCases"]["nodes"])
    assert {c["author"]["email"] for c in large["helpdeskCases"]["nodes"][0]["comments"]} == {
        FULL,
        PARTNER,
    }
    assert len(twenty) == len(two), (two, twenty)
    # token lookup, page, count, customers, comments, and admins once per level (who opened
    # the cases, then the comment authors not loaded yet)
    assert len(twenty) == 7, twenty


async def test_two_admins_closing_one_case_at_once_close_it_once(
    api: Api, acme: dict[str, int]
) -> None:
    # given
    case = await open_case(api)
    before = await row_counts(api)

    # when
    results = await asyncio.gather(
        post_graphql(api, CLOSE, {"input": {"caseId": case["id"], "resolution": "A"}}, as_=FULL),
        post_graphql(api, CLOSE, {"input": {"caseId": case["id"], "resolution": "B"}}, as_=PARTNER),
    )

    # then
    payloads = [data_of(r)["closeHelpdeskCase"] for r in results]
    assert sorted(codes(p)[0] if codes(p) else "OK" for p in payloads) == ["CASE_CLOSED", "OK"]
    cases, comments, audits = await row_counts(api)
    assert (cases, comments, audits) == (before[0], before[1] + 1, before[2] + 1)
