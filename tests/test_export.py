"""`GET /export/customers.csv`: the directory as CSV, agreeing with what the API reports."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

import graph.export
from db.models import Customer
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql, token_for
from tests.test_customers import (
    DAY,
    DIRECTORY,
    FULL,
    OTHER,
    Built,
    build_directory,
    just_an_admin,
)

COLUMNS = [
    "name",
    "external_id",
    "managed_by",
    "statuses",
    "products",
    "tags",
    "nearest_end_date",
    "licenses_purchased",
    "licenses_assigned",
    "created_at",
]

API_QUERY = """
query Rows($first: Int!, $after: String, $filter: CustomerFilter, $search: String,
           $orderBy: CustomerOrder!) {
  customers(first: $first, after: $after, filter: $filter, search: $search, orderBy: $orderBy) {
    pageInfo { hasNextPage endCursor }
    nodes {
      name externalId managedBy statuses products createdAt
      tags { name }
      subscriptions { state startDate endDate licenses { purchased assigned } }
    }
  }
}
"""


async def export(api: Api, params: Any = None, as_: str | None = FULL) -> Any:
    headers = {"Authorization": f"Bearer {await token_for(api, as_)}"} if as_ else {}
    return await api.client.get("/export/customers.csv", params=params, headers=headers)


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def api_rows(
    api: Api,
    flt: dict[str, Any] | None = None,
    search: str | None = None,
    order: str = "NAME_ASC",
    as_: str = FULL,
) -> list[list[str]]:
    """The export's columns worked out from what the GraphQL API returns for the same list."""
    rows: list[list[str]] = []
    after = None
    while True:
        variables = {
            "first": 100,
            "after": after,
            "filter": flt,
            "search": search,
            "orderBy": order,
        }
        connection = data_of(await post_graphql(api, API_QUERY, variables, as_=as_))["customers"]
        for c in connection["nodes"]:
            in_force = [
                s
                for s in c["subscriptions"]
                if s["state"] == "ACTIVE"
                and datetime.fromisoformat(s["startDate"])
                <= NOW
                < datetime.fromisoformat(s["endDate"])
            ]
            ends = [datetime.fromisoformat(s["endDate"]) for s in in_force]
            lines = [ln for s in in_force for ln in s["licenses"]]
            rows.append(
                [
                    c["name"],
                    c["externalId"],
                    c["managedBy"],
                    ";".join(c["statuses"]),
                    ";".join(c["products"]),
                    ";".join(t["name"] for t in c["tags"]),
                    min(ends).isoformat() if ends else "",
                    str(sum(ln["purchased"] for ln in lines)),
                    str(sum(ln["assigned"] for ln in lines)),
                    datetime.fromisoformat(c["createdAt"]).isoformat(),
                ]
            )
        if not connection["pageInfo"]["hasNextPage"]:
            return rows
        after = connection["pageInfo"]["endCursor"]


async def test_export_requires_a_token(api: Api) -> None:
    # given
    await build_directory(api)
    # when
    anonymous = await export(api, as_=None)
    bad = await api.client.get(
        "/export/customers.csv", headers={"Authorization": "Bearer ph_not-a-real-token"}
    )
    # then
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert bad.status_code == 401
    assert "Acme" not in bad.text and "Alpha" not in bad.text


async def test_export_of_the_whole_directory_matches_the_api(api: Api) -> None:
    # given
    await build_directory(api)
    # when
    response = await export(api)
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header, *rows = parse(response.text)
    assert header == COLUMNS
    assert rows == await api_rows(api)
    assert len(rows) == len(DIRECTORY)
    # a row with totals, an end date, statuses, products and tags all filled in
    alpha = next(r for r in rows if r[0] == "Alpha Bank")
    assert alpha[3:9] == [
        "ACTIVE",
        "CALLING;MEETINGS",
        "gold",
        (NOW + 100 * DAY).isoformat(),
        "20",
        "10",
    ]


def _filter_cases(built: Built) -> list[tuple[Any, dict[str, Any], str | None, str]]:
    gold, east = built.tag_ids["gold"], built.tag_ids["east"]
    return [
        ({"statuses": "TRIAL,ACTIVE"}, {"statuses": ["TRIAL", "ACTIVE"]}, None, "NAME_ASC"),
        ([("statuses", "TRIAL"), ("statuses", "ACTIVE")], {"statuses": ["TRIAL", "ACTIVE"]},
         None, "NAME_ASC"),
        ({"products": "CALLING,CONTACT_CENTER"}, {"products": ["CALLING", "CONTACT_CENTER"]},
         None, "NAME_ASC"),
        ({"tagIds": f"{gold},{east}"}, {"tagIds": [gold, east]}, None, "NAME_ASC"),
        ({"search": "ALPHA"}, {}, "ALPHA", "NAME_ASC"),
        ({"search": "_"}, {}, "_", "NAME_ASC"),
        ({"managedBy": "PARTNER_ORG"}, {"managedBy": "PARTNER_ORG"}, None, "NAME_ASC"),
        ({"subscriptionType": "TRIAL"}, {"subscriptionType": "TRIAL"}, None, "NAME_ASC"),
        ({"statuses": "ACTIVE", "products": "MEETINGS", "search": "a", "orderBy": "END_DATE_ASC"},
         {"statuses": ["ACTIVE"], "products": ["MEETINGS"]}, "a", "END_DATE_ASC"),
        ({"orderBy": "CREATED_AT_DESC"}, {}, None, "CREATED_AT_DESC"),
        ({"tagIds": built.foreign_tag_ids["gold"]}, {"tagIds": [built.foreign_tag_ids["gold"]]},
         None, "NAME_ASC"),
    ]  # fmt: skip


async def test_filters_as_query_string_parameters(api: Api) -> None:
    # given
    built = await build_directory(api)
    for params, flt, search, order in _filter_cases(built):
        # when
        response = await export(api, params)
        # then
        assert response.status_code == 200, params
        header, *rows = parse(response.text)
        assert header == COLUMNS
        assert rows == await api_rows(api, flt, search, order), params
    # a non-empty filter really narrows the list
    response = await export(api, {"statuses": "TRIAL,ACTIVE"})
    assert 0 < len(parse(response.text)) - 1 < len(DIRECTORY)


async def test_another_partner_exports_only_its_own(api: Api) -> None:
    # given
    await build_directory(api)
    # when
    response = await export(api, as_=OTHER)
    # then
    names = [row[0] for row in parse(response.text)[1:]]
    assert names == ["Alpha Other", "Gamma_ 100% Foreign"]
    assert parse(response.text)[1:] == await api_rows(api, as_=OTHER)


async def test_bad_parameters_are_a_400_with_a_code(api: Api) -> None:
    # given
    await just_an_admin(api)
    cases = [
        ({"statuses": "BOGUS"}, "BAD_USER_INPUT"),
        ({"statuses": "ACTIVE,bogus"}, "BAD_USER_INPUT"),
        ({"products": "TELEPATHY"}, "BAD_USER_INPUT"),
        ({"managedBy": "NOBODY"}, "BAD_USER_INPUT"),
        ({"subscriptionType": "FREE"}, "BAD_USER_INPUT"),
        ({"orderBy": "SIZE_DESC"}, "BAD_USER_INPUT"),
        ({"tagIds": "abc"}, "INVALID_ID"),
        ({"search": "x" * 10_000}, "SEARCH_TOO_LONG"),
    ]
    for params, code in cases:
        # when
        response = await export(api, params)
        # then
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert [e["extensions"]["code"] for e in response.json()["errors"]] == [code], params


async def test_streaming_over_several_internal_pages(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: internal pages of 3 rows over a directory of 10, filtered to 8
    built = await build_directory(api)
    monkeypatch.setattr(graph.export, "PAGE", 3)
    flt = {"products": ["MEETINGS", "CALLING", "CONTACT_CENTER", "REAL_TIME_TRANSLATION"]}
    for order in ("NAME_ASC", "END_DATE_ASC", "CREATED_AT_DESC"):
        # when
        with api.counter.counting() as statements:
            response = await export(api, {"products": ",".join(flt["products"]), "orderBy": order})
        # then
        _header, *rows = parse(response.text)
        assert rows == await api_rows(api, flt, None, order), order
        assert len(rows) == 8
        pages = [s for s in statements if "LIMIT" in s.upper() and "customer.name" in s]
        assert len(pages) == 3, order  # 3 + 3 + 2 rows
    assert built.ids


async def test_streaming_more_than_one_default_page(api: Api) -> None:
    # given: 1,201 customers (the export pages by 500), inserted in bulk
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    count = 2 * graph.export.PAGE + 201
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(Customer),
            [
                {
                    "partner_id": partner,
                    "external_id": f"BULK-{i:05d}",
                    "name": f"Bulk Customer {i:05d}",
                    "name_key": f"bulk customer {i:05d}",
                    "created_at": NOW,
                    "managed_by": "EXTERNAL_ADMIN",
                    "last_admin_sign_in_at": None,
                }
                for i in range(count)
            ],
        )
        ids = list((await conn.execute(select(Customer.id))).scalars())
    await f.refresh(*ids)
    # when
    response = await export(api)
    # then
    header, *rows = parse(response.text)
    assert header == COLUMNS
    assert [r[0] for r in rows] == [f"Bulk Customer {i:05d}" for i in range(count)]
    assert {r[3] for r in rows} == {"NO_RECENT_ACTIVITY"}
    assert {r[1] for r in rows} == {f"BULK-{i:05d}" for i in range(count)}
