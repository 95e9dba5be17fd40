"""A query of a token seen before runs as its last principal, the token's lookup riding along
its first statement (db/token_check.py, issue 17): one round trip fewer on PostgreSQL, and every
change of the token's principal still honoured by the very next request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from db.engine import session_factory
from db.models import Admin, ApiToken
from db.queries.admins import issue_token
from db.seed import seed_resources
from db.seed.resources import catalogue
from tests.conftest import NOW, Api, api_over
from tests.helpers import Factory, data_of, post_graphql, token_for

PAGE = "{ customers(first: 5) { nodes { id name tags { name } } } }"
DETAIL = "query($id: ID!) { customer(id: $id) { name subscriptions { subscriptionId } } }"
# its first statement is not a driver query
AUDIT = "{ auditLog(first: 5) { nodes { operation } } }"


async def post(
    api: Api, query: str, variables: dict[str, Any] | None = None, *, token: str
) -> httpx.Response:
    body = {"query": query, "variables": variables or {}}
    headers = {"Authorization": f"Bearer {token}"}
    return await api.client.post("/graphql", json=body, headers=headers)


def answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return data_of(response.json())


async def another_token(api: Api, admin: int) -> str:
    async with session_factory(api.engine)() as session:
        token = await issue_token(session, admin_id=admin, now=NOW)
        await session.commit()
    return token


LOOKUP_ALONE = "SELECT admin.id, admin.partner_id, admin.email"


CARRIED = "partner_hub_token_check"  # the label of the lookup's column in a statement


def checked(statements: list[str]) -> int:
    """Statements carrying the token's lookup (as one more column)."""
    return sum("api_token.token_hash" in sql and CARRIED in sql for sql in statements)


def lookups(statements: list[str]) -> int:
    """Token lookups run alone (the viewer's own row starts as they do, without api_token)."""
    return sum(
        sql.startswith(LOOKUP_ALONE) and "api_token.token_hash" in sql and CARRIED not in sql
        for sql in statements
    )


async def given_partner(api: Api) -> dict[str, Any]:
    f = Factory(api.engine)
    partner = await f.partner("Acme Partners", "acme.example")
    admin = await f.admin(partner, "full@acme.example", "FULL_ADMIN", name="Fiona Full")
    customer = await f.customer(partner, "Alpha")
    await f.subscription(customer)
    token = await token_for(api, "full@acme.example")
    page = data_of(await post_graphql(api, PAGE, token=token))["customers"]["nodes"]
    return {"partner": partner, "admin": admin, "token": token, "id": page[0]["id"]}


async def test_a_seen_tokens_query_runs_no_lookup_of_its_own(uncached_api: Api) -> None:
    # given: a token seen once
    api = uncached_api
    seen = await given_partner(api)
    # (and the documents known: a document seen for the first time is not known to be a query)
    for document, variables in ((PAGE, None), (DETAIL, {"id": seen["id"]}), (AUDIT, None)):
        answer(await post(api, document, variables, token=seen["token"]))

    # when
    with api.counter.counting() as page_statements:
        page = await post(api, PAGE, token=seen["token"])
    with api.counter.counting() as detail_statements:
        detail = await post(api, DETAIL, {"id": seen["id"]}, token=seen["token"])
    with api.counter.counting() as audit_statements:
        answer(await post(api, AUDIT, token=seen["token"]))
    with api.counter.counting() as bare_statements:
        bare = await post(api, "{ __typename }", token=seen["token"])

    # then: on PostgreSQL the lookup rode along the page's and the detail's statements; a query
    # whose first statement does not carry it (the audit log), or that runs none, looks it up alone
    # first
    assert answer(page)["customers"]["nodes"][0]["name"] == "Alpha"
    assert answer(detail)["customer"]["subscriptions"]
    assert answer(bare) == {"__typename": "Query"}
    if api.db.backend == "postgresql":
        assert (checked(page_statements), lookups(page_statements)) == (1, 0)
        assert (checked(detail_statements), lookups(detail_statements)) == (1, 0)
        assert (checked(audit_statements), lookups(audit_statements)) == (0, 1)
        assert audit_statements[0].startswith(LOOKUP_ALONE)  # before the audit log's
    else:
        for statements in (page_statements, detail_statements, audit_statements):
            assert (checked(statements), lookups(statements)) == (0, 1)
    assert lookups(bare_statements) == 1


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("{ viewer { id name email role } }", "viewer"),
        ("{ partner { id name domain } }", "partner"),
        ("{ tags { id name } }", "tags"),
        ("{ quickLinks { slug title url } }", "quickLinks"),
        ("{ featuredResources { slug title } }", "featuredResources"),
        ("{ roles { name builtIn } }", "roles"),
        ("{ admins(first: 5) { nodes { name email } } }", "admins"),
    ],
)
async def test_an_apps_first_query_carries_the_lookup(
    uncached_api: Api, document: str, field: str
) -> None:
    """``viewer``, ``partner``, ``tags``, ``roles``, ``admins`` and the help page's lists (an app
    shell's first query, a filter bar's, the help, roles and admins pages') read on the driver
    connection: on PostgreSQL the token's lookup rides along, one statement in all (they took two:
    the lookup alone, then the rows)."""
    # given
    api = uncached_api
    seen = await given_partner(api)
    if field == "tags":  # (the lookup rides along a row: a statement without any asks again)
        create = 'mutation { createTag(input: {name: "Gold"}) { tag { id } } }'
        assert answer(await post(api, create, token=seen["token"]))["createTag"]["tag"]
    if field in ("quickLinks", "featuredResources"):
        assert await seed_resources(api.engine, now=NOW) == len(catalogue())
    if field == "roles":
        rule = '{object: "audit", action: "read", scope: "all"}'
        create = (
            'mutation { createRole(input: {name: "AUDITOR", rules: [' + rule + "]}) "
            "{ role { name } } }"
        )
        assert answer(await post(api, create, token=seen["token"]))["createRole"]["role"]
    first = answer(await post(api, document, token=seen["token"]))

    # when
    with api.counter.counting() as statements:
        again = await post(api, document, token=seen["token"])

    # then: the same answer, from the caller's own rows
    assert answer(again) == first
    if field == "viewer":
        assert first["viewer"]["name"] == "Fiona Full"
        assert first["viewer"]["role"] == "FULL_ADMIN"
    elif field == "partner":
        assert first["partner"]["name"] == "Acme Partners"
    elif field == "tags":
        assert [tag["name"] for tag in first["tags"]] == ["Gold"]
    elif field == "roles":
        assert [r["name"] for r in first["roles"] if not r["builtIn"]] == ["AUDITOR"]
    elif field == "admins":
        assert [a["name"] for a in first["admins"]["nodes"]] == ["Fiona Full"]
    else:
        flag = "quick_link" if field == "quickLinks" else "featured"
        assert {r["slug"] for r in first[field]} == {e["slug"] for e in catalogue() if e[flag]}
    if api.db.backend == "postgresql":
        assert (checked(statements), lookups(statements), len(statements)) == (1, 0, 1)
    else:
        assert (checked(statements), lookups(statements), len(statements)) == (0, 1, 2)


async def test_a_role_changed_elsewhere_shows_on_the_next_query(uncached_api: Api) -> None:
    # given: a token seen as FULL_ADMIN
    api = uncached_api
    seen = await given_partner(api)
    assert answer(await post(api, DETAIL, {"id": seen["id"]}, token=seen["token"]))

    # when: its admin becomes a sales admin, who reads only the customers assigned to it
    async with api.engine.begin() as conn:
        role = update(Admin).where(Admin.id == seen["admin"]).values(role="SALES_ADMIN")  # type: ignore[arg-type]
        await conn.execute(role)
    with api.counter.counting() as statements:
        detail = await post(api, DETAIL, {"id": seen["id"]}, token=seen["token"])
    page = await post(api, PAGE, token=seen["token"])

    # then: nothing of the customer (not assigned to it)
    assert answer(detail)["customer"] is None
    assert answer(page)["customers"]["nodes"] == []
    assert "Alpha" not in detail.text + page.text
    if api.db.backend == "postgresql":
        # the detail's provisional run carried the lookup, which answered the new role: it
        # ran again as that role, without a lookup of its own
        assert (checked(statements), lookups(statements), len(statements)) == (1, 0, 2)


async def test_a_revoked_or_deactivated_token_is_401_at_once(uncached_api: Api) -> None:
    # given: two tokens, both seen
    api = uncached_api
    seen = await given_partner(api)
    other = await another_token(api, seen["admin"])
    for token in (seen["token"], other):
        assert answer(await post(api, DETAIL, {"id": seen["id"]}, token=token))

    # when: one is revoked
    async with api.engine.begin() as conn:
        await conn.execute(
            update(ApiToken)
            .where(ApiToken.admin_id == seen["admin"], ApiToken.revoked_at.is_(None))  # type: ignore[arg-type,union-attr]
            .values(revoked_at=NOW)
        )
    with api.counter.counting() as statements:
        detail = await post(api, DETAIL, {"id": seen["id"]}, token=seen["token"])
        bare = await post(api, "{ __typename }", token=other)

    # then: 401 without data, whatever the query ran first
    for response in (detail, bare):
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "Alpha" not in response.text
    assert not any("FROM customer" in sql and "token_check" not in sql for sql in statements)


async def test_a_write_by_another_token_shows_through_the_response_cache(api: Api) -> None:
    # given: a reader whose page is cached, and a writer of the same partner
    seen = await given_partner(api)
    f = Factory(api.engine)
    await f.admin(seen["partner"], "other@acme.example", "FULL_ADMIN")
    writer = await token_for(api, "other@acme.example")
    first = await post(api, PAGE, token=seen["token"])
    assert answer(first)["customers"]["nodes"][0]["name"] == "Alpha"
    again = await post(api, PAGE, token=seen["token"])
    assert again.headers.get("X-Partner-Hub-Cache") in (None, "hit")

    # when: the writer tags the customer
    create = 'mutation { createTag(input: {name: "Gold"}) { tag { id } } }'
    tag = answer(await post(api, create, token=writer))["createTag"]["tag"]["id"]
    attach = """mutation($c: ID!, $t: ID!) {
      addTagsToCustomers(input: {customerIds: [$c], tagIds: [$t]}) { userErrors { code } } }"""
    written = await post(api, attach, {"c": seen["id"], "t": tag}, token=writer)
    page = await post(api, PAGE, token=seen["token"])

    # then: the reader's next page has the tag
    assert answer(written)["addTagsToCustomers"]["userErrors"] == []
    assert answer(page)["customers"]["nodes"][0]["tags"] == [{"name": "Gold"}]


async def test_off_every_query_looks_its_token_up_alone(uncached_api: Api) -> None:
    # given: the setting off
    seen = await given_partner(uncached_api)
    async with api_over(uncached_api.db, provisional_queries=False) as api:
        await post(api, PAGE, token=seen["token"])

        # when
        with api.counter.counting() as statements:
            page = await post(api, PAGE, token=seen["token"])

    # then
    assert answer(page)["customers"]["nodes"][0]["name"] == "Alpha"
    assert (checked(statements), lookups(statements)) == (0, 1)
