"""Hostile input gets a coded error and writes nothing (issue 15, finding 4).

Every argument value, literal or variable, nested in input objects and lists, is checked once
before execution (``graph.input_limits``): strings with a NUL byte or longer than
``max_string_input``, lists longer than ``max_list_input``, and dates outside the supported
range are ``BAD_USER_INPUT`` naming the argument's path, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from graph.ids import to_global_id
from tests.conftest import Api
from tests.helpers import data_of, error_codes, post_graphql, token_for
from tests.test_tags import FULL, World, build_world, snapshot

NUL = "a\x00b"

CREATE_TAG = """
mutation($input: CreateTagInput!) { createTag(input: $input) { tag { id } userErrors { code } } }
"""
OPEN_CASE = """
mutation($input: OpenHelpdeskCaseInput!) {
  openHelpdeskCase(input: $input) { case { id } userErrors { code } }
}
"""
CREATE_ROLE = """
mutation($input: CreateRoleInput!) {
  createRole(input: $input) { role { name } userErrors { code } }
}
"""
GRANT_ROLE = """
mutation($input: GrantRoleInput!) { grantRole(input: $input) { userErrors { code } } }
"""
AUDIT = """
query($filter: AuditFilter) { auditLog(first: 5, filter: $filter) { totalCount } }
"""
SEARCH = "query($search: String) { customers(search: $search) { totalCount } }"
RESOURCES = "query($search: String) { resources(search: $search) { totalCount } }"
TAG_FILTER = "query($ids: [ID!]) { customers(filter: {tagIds: $ids}) { totalCount } }"
ADD_TAGS = """
mutation($input: CustomerTagsInput!) {
  addTagsToCustomers(input: $input) { changed userErrors { code } }
}
"""


def refused(body: dict[str, Any], path_fragment: str) -> None:
    """A ``BAD_USER_INPUT`` error naming the argument path, and no data."""
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert path_fragment in body["errors"][0]["message"], body["errors"][0]
    assert body.get("data") is None, body


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def case_input(**fields: Any) -> dict[str, Any]:
    values = {"product": "MEETINGS", "subject": "s", "description": "d", "severity": "LOW"}
    return {**values, **fields}


async def test_a_nul_byte_in_any_string_variable_is_refused_and_writes_nothing(
    api: Api, world: World
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        (SEARCH, {"search": NUL}, "$search"),
        (RESOURCES, {"search": NUL}, "$search"),
        (CREATE_TAG, {"input": {"name": NUL}}, "$input.name"),
        (CREATE_TAG, {"input": {"name": "ok", "description": NUL}}, "$input.description"),
        (OPEN_CASE, {"input": case_input(subject=NUL)}, "$input.subject"),
        (OPEN_CASE, {"input": case_input(description=NUL)}, "$input.description"),
        (AUDIT, {"filter": {"operation": NUL}}, "$filter.operation"),
        (AUDIT, {"filter": {"objectId": NUL}}, "$filter.objectId"),
        (CREATE_ROLE, {"input": {"name": f"R{NUL}", "rules": []}}, "$input.name"),
        (
            CREATE_ROLE,
            {"input": {"name": "AUDITOR", "rules": [{"object": NUL, "action": "read"}]}},
            "$input.rules[0].object",
        ),
        (
            GRANT_ROLE,
            {"input": {"adminId": to_global_id("Admin", 1), "role": NUL}},
            "$input.role",
        ),
    ]
    before = await snapshot(api)
    for document, variables, path in cases:
        refused(await post_graphql(api, document, variables, as_=FULL), path)
    assert await snapshot(api) == before


async def test_a_nul_byte_in_a_literal_is_refused_with_its_argument_path(
    api: Api, world: World
) -> None:
    before = await snapshot(api)
    literal = 'mutation { createTag(input: {name: "x\\u0000y"}) { tag { id } } }'
    for _ in range(2):  # the second time from the check kept for the parsed document
        refused(await post_graphql(api, literal, as_=FULL), "createTag.input.name")
    search = 'query { customers(search: "\\u0000") { totalCount } }'
    refused(await post_graphql(api, search, as_=FULL), "customers.search")
    nested = """
      query { q: helpdeskCases(filter: {customerId: "\\u0000"}) { totalCount } }
    """
    refused(await post_graphql(api, nested, as_=FULL), "helpdeskCases.filter.customerId")
    assert await snapshot(api) == before


async def test_a_nul_byte_in_a_variable_default_is_refused(api: Api, world: World) -> None:
    document = 'query($s: String = "\\u0000") { customers(search: $s) { totalCount } }'
    refused(await post_graphql(api, document, as_=FULL), "$s")


async def test_forty_thousand_ids_are_refused_with_a_short_log_line(
    api: Api, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [to_global_id("Tag", n) for n in range(1, 40_001)]
    before = await snapshot(api)
    with caplog.at_level(logging.DEBUG):
        refused(await post_graphql(api, TAG_FILTER, {"ids": ids}, as_=FULL), "$ids")
        customer = to_global_id("Customer", world.assigned)
        body = await post_graphql(
            api, ADD_TAGS, {"input": {"customerIds": [customer], "tagIds": ids}}, as_=FULL
        )
        refused(body, "$input.tagIds")
    assert await snapshot(api) == before
    assert max((len(r.getMessage()) + len(str(r.__dict__)) for r in caplog.records), default=0) < (
        4000
    )
    assert not [r for r in caplog.records if r.exc_info], "expected errors log no traceback"


async def test_a_list_at_the_limit_still_passes(api: Api, world: World) -> None:
    ids = [to_global_id("Tag", n) for n in range(1, api.settings.max_list_input + 1)]
    body = await post_graphql(api, TAG_FILTER, {"ids": ids}, as_=FULL)
    assert data_of(body)["customers"]["totalCount"] == 0


async def test_an_overlong_string_is_refused_before_any_resolver(api: Api, world: World) -> None:
    huge = "x" * (1 << 20)
    refused(await post_graphql(api, SEARCH, {"search": huge}, as_=FULL), "$search")
    before = await snapshot(api)
    body = await post_graphql(api, OPEN_CASE, {"input": case_input(description=huge)}, as_=FULL)
    refused(body, "$input.description")
    assert await snapshot(api) == before
    limit = api.settings.max_string_input
    ok = await post_graphql(api, SEARCH, {"search": "x" * limit}, as_=FULL)
    assert error_codes(ok) == ["SEARCH_TOO_LONG"]  # the field's own, tighter limit still speaks


CALLING = "query($week: Date) { callingAnalytics(week: $week) { weekStart } }"
TREND = """
query($week: Date, $weeks: Int!) {
  callingAnalytics(week: $week) { weekStart qualityTrend(weeks: $weeks) { weekStart } }
}
"""


@pytest.mark.parametrize("week", ["0001-01-01", "0001-01-08", "1969-12-31", "9999-12-31"])
async def test_dates_outside_the_supported_range_are_refused_at_parse(
    api: Api, world: World, week: str
) -> None:
    refused(await post_graphql(api, CALLING, {"week": week}, as_=FULL), "$week")
    literal = f'query {{ callingAnalytics(week: "{week}") {{ weekStart }} }}'
    body = await post_graphql(api, literal, as_=FULL)
    assert error_codes(body) == ["BAD_USER_INPUT"], body


async def test_a_trend_at_an_early_week_is_a_coded_error(api: Api, world: World) -> None:
    # year 1: the trend's weeks would start before Python's first date (OverflowError before)
    body = await post_graphql(api, TREND, {"week": "0001-02-01", "weeks": 8}, as_=FULL)
    refused(body, "$week")


async def test_the_earliest_supported_week_answers_its_trends(api: Api, world: World) -> None:
    body = await post_graphql(api, TREND, {"week": "1970-01-01", "weeks": 52}, as_=FULL)
    trend = data_of(body)["callingAnalytics"]["qualityTrend"]
    assert len(trend) == 52
    assert trend[-1]["weekStart"] == "1969-12-28"


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"]
)
async def test_date_times_outside_the_supported_range_are_refused(
    api: Api, world: World, at: str
) -> None:
    body = await post_graphql(api, AUDIT, {"filter": {"since": at}}, as_=FULL)
    assert error_codes(body) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query($n: Int!) { customers(first: $n) { totalCount } }", {"n": 2**31}),
        ("query($n: Int!) { customers(first: $n) { totalCount } }", {"n": 10**30}),
        ("query { customers(first: 99999999999) { totalCount } }", {}),
        ("query($n: Int!) { customers(first: $n) { totalCount } }", {"n": -5}),
        ("query($n: Int!) { auditLog(first: $n) { totalCount } }", {"n": -1}),
        ("query($n: Int!) { helpdeskCases(first: $n) { totalCount } }", {"n": 0}),
        ("query($n: Int!) { resources(first: $n) { totalCount } }", {"n": 2**31 - 1}),
        (
            "query($n: Int!) { callingAnalytics { qualityTrend(weeks: $n) { weekStart } } }",
            {"n": -(2**31)},
        ),
        (
            "query($n: Int!) { licenseAnalytics(product: MEETINGS) "
            "{ distributionTrend(weeks: $n) { weekStart } } }",
            {"n": 2**31 - 1},
        ),
    ],
)
async def test_odd_integers_get_a_coded_error(
    api: Api, world: World, document: str, variables: dict[str, Any]
) -> None:
    body = await post_graphql(api, document, variables, as_=FULL)
    codes = error_codes(body)
    assert codes and "INTERNAL_SERVER_ERROR" not in codes, body


async def test_the_supported_date_times_are_accepted_naive_or_with_an_offset(
    api: Api, world: World
) -> None:
    for at in ("1970-01-01T00:00:00Z", "2026-01-01T00:00:00", "9998-12-31T23:59:59+02:00"):
        body = await post_graphql(api, AUDIT, {"filter": {"since": at, "until": at}}, as_=FULL)
        assert data_of(body)["auditLog"]["totalCount"] == 0, at


async def test_the_csv_export_applies_the_same_bounds(api: Api, world: World) -> None:
    token = {"Authorization": f"Bearer {await token_for(api, FULL)}"}
    ids = ",".join(["x"] * (api.settings.max_list_input + 1))  # a URL holds no 40,000 ids
    for params, argument in [
        ({"search": NUL}, "search"),
        ({"tagIds": ids}, "tagIds"),
        ({"tagIds": f"{to_global_id('Tag', 1)},{NUL}"}, "tagIds[1]"),
    ]:
        response = await api.client.get("/export/customers.csv", params=params, headers=token)
        assert response.status_code == 400, response.text
        (error,) = response.json()["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


async def test_a_lone_surrogate_is_refused_like_a_nul_byte(api: Api, world: World) -> None:
    # JSON may escape half a UTF-16 pair ("\ud800"): not text any database driver encodes
    token = {"Authorization": f"Bearer {await token_for(api, FULL)}"}
    before = await snapshot(api)
    for document, variables, path in [
        ("query($s: String) { customers(search: $s) { totalCount } }", '{"s": "\\ud800"}', "$s"),
        (CREATE_TAG.replace("\n", " "), '{"input": {"name": "a\\udfff"}}', "$input.name"),
    ]:
        body = f'{{"query": "{document}", "variables": {variables}}}'.encode()
        response = await api.client.post(
            "/graphql", content=body, headers={**token, "content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        refused(response.json(), path)
    assert await snapshot(api) == before
