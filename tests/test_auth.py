"""Bearer-token authentication: who gets in, who gets a 401, and how tokens are kept."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import String, Text, select, update
from sqlmodel import SQLModel

from db.engine import session_factory
from db.models import Admin
from db.queries.admins import TOKEN_PREFIX, issue_token, revoke_token
from graph.ids import to_global_id
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql

VIEWER = "query Viewer { viewer { id email name role partner { id name } } }"
INTROSPECTION = "query Introspect { __schema { queryType { name } } }"


async def post_with(api: Api, authorization: str | None, query: str = VIEWER) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await api.client.post(
        "/graphql", json={"query": query, "variables": {}}, headers=headers
    )


async def new_token(api: Api, admin_id: int) -> str:
    async with session_factory(api.engine)() as session:
        token = await issue_token(session, admin_id=admin_id, now=NOW)
        await session.commit()
    return token


async def start_app(api: Api) -> None:
    """The app's first request loads its policies; keep those statements out of the counts."""
    await post_with(api, None)


def assert_unauthenticated(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"]
    assert "data" not in body
    return body


def assert_only_token_lookup(statements: list[str]) -> None:
    """At most the one authentication statement ran: no resolver touched the database."""
    assert len(statements) <= 1, statements
    assert all("api_token" in s for s in statements), statements


@pytest.fixture
async def acme(api: Api) -> dict[str, int]:
    factory = Factory(api.engine)
    partner = await factory.partner("Acme Partners", "acme.example")
    admin = await factory.admin(partner, "full@acme.example", "FULL_ADMIN", name="Fiona Full")
    return {"partner": partner, "admin": admin}


async def test_missing_authorization_header_is_401_before_any_database_work(api: Api) -> None:
    # given
    await start_app(api)

    # when
    with api.counter.counting() as statements:
        response = await post_with(api, None)

    # then
    assert_unauthenticated(response)
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert statements == []


MALFORMED_HEADERS = [
    "{token}",  # no scheme
    "Bearer",  # scheme without a token
    "Bearer ",
    "Basic {token}",  # another scheme, even with a valid token
    "Basic eHl6",
    "Bearer {token} extra",  # a token with spaces
    "Bearer {token}{token} x",
    "Bearer{token}",  # no separator
]


async def test_malformed_authorization_headers_are_401(api: Api, acme: dict[str, int]) -> None:
    # given: a valid token, so only the header's shape can be wrong
    token = await new_token(api, acme["admin"])
    assert (await post_with(api, f"Bearer {token}")).status_code == 200

    for header in MALFORMED_HEADERS:
        # when
        with api.counter.counting() as statements:
            response = await post_with(api, header.format(token=token))

        # then: rejected on its shape, without even a token lookup
        assert response.status_code == 401, header
        assert_unauthenticated(response)
        assert statements == [], header


async def test_unknown_token_is_401_and_no_resolver_runs(api: Api, acme: dict[str, int]) -> None:
    # given: a well-formed token that was never issued
    await new_token(api, acme["admin"])
    await start_app(api)
    unknown = "ph_" + "A" * 43

    # when
    with api.counter.counting() as statements:
        response = await post_with(api, f"Bearer {unknown}")

    # then
    assert_unauthenticated(response)
    assert_only_token_lookup(statements)


async def test_revoked_token_stops_working_at_once(api: Api, acme: dict[str, int]) -> None:
    # given: a token that works, and a second token of the same admin
    token = await new_token(api, acme["admin"])
    other = await new_token(api, acme["admin"])
    assert (await post_with(api, f"Bearer {token}")).status_code == 200

    # when
    async with session_factory(api.engine)() as session:
        assert await revoke_token(session, token=token, now=NOW)
        await session.commit()
    with api.counter.counting() as statements:
        response = await post_with(api, f"Bearer {token}")

    # then: the very next request is refused, before any resolver
    assert_unauthenticated(response)
    assert_only_token_lookup(statements)
    # and only that token was revoked
    assert (await post_with(api, f"Bearer {other}")).status_code == 200


async def test_token_of_a_deactivated_admin_is_401(api: Api, acme: dict[str, int]) -> None:
    # given
    token = await new_token(api, acme["admin"])
    assert (await post_with(api, f"Bearer {token}")).status_code == 200

    # when
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Admin).where(Admin.id == acme["admin"]).values(active=False)  # type: ignore[arg-type]
        )
    with api.counter.counting() as statements:
        response = await post_with(api, f"Bearer {token}")

    # then
    assert_unauthenticated(response)
    assert_only_token_lookup(statements)


async def test_valid_token_authenticates_its_own_admin(api: Api) -> None:
    # given: two partners, so a wrong principal or partner would show
    factory = Factory(api.engine)
    acme = await factory.partner("Acme Partners", "acme.example")
    globex = await factory.partner("Globex Reseller", "globex.example")
    await factory.admin(acme, "full@acme.example", "FULL_ADMIN")
    sales = await factory.admin(globex, "sales@globex.example", "SALES_ADMIN", name="Sam Sales")
    token = await new_token(api, sales)

    # when
    response = await post_with(api, f"Bearer {token}")
    lower_case_scheme = await post_with(api, f"bearer {token}")

    # then
    assert response.status_code == 200, response.text
    assert data_of(response.json())["viewer"] == {
        "id": to_global_id("Admin", sales),
        "email": "sales@globex.example",
        "name": "Sam Sales",
        "role": "SALES_ADMIN",
        "partner": {"id": to_global_id("Partner", globex), "name": "Globex Reseller"},
    }
    assert lower_case_scheme.status_code == 200  # auth schemes are case-insensitive (RFC 9110)


async def test_tokens_are_stored_only_as_sha256_hashes(api: Api, acme: dict[str, int]) -> None:
    # given
    tokens = [await new_token(api, acme["admin"]) for _ in range(3)]

    # when: read every text column of every row of every table
    stored: list[str] = []
    token_hashes: list[str] = []
    async with api.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            text_columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if not text_columns:
                continue
            for row in (await conn.execute(select(*text_columns))).all():
                stored.extend(str(v) for v in row if v is not None)
            if table.name == "api_token":
                token_hashes = list((await conn.execute(select(table.c.token_hash))).scalars())

    # then
    assert sorted(token_hashes) == sorted(hashlib.sha256(t.encode()).hexdigest() for t in tokens)
    for token in tokens:
        assert not any(token in value for value in stored)
        # nor a recognisable part of it (the random body without any prefix)
        assert not any(token[-32:] in value for value in stored)


async def test_tokens_carry_at_least_32_random_bytes(api: Api, acme: dict[str, int]) -> None:
    # given / when
    tokens = [await new_token(api, acme["admin"]) for _ in range(40)]

    # then
    assert len(set(tokens)) == len(tokens)
    random_parts = []
    for token in tokens:
        assert token.isascii() and token.isprintable() and " " not in token
        assert token.startswith(TOKEN_PREFIX)
        body = token.removeprefix(TOKEN_PREFIX)  # the readable prefix carries no entropy
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        assert len(raw) >= 32, token
        random_parts.append(raw)
    # 40 x 32 random bytes cover nearly every byte value; a counter or a timestamp would not
    assert len(set(b"".join(random_parts))) > 200
    # and no two tokens share a long common prefix of their random part
    assert len({raw[:8] for raw in random_parts}) == len(random_parts)


async def test_introspection_works_for_any_authenticated_admin(api: Api) -> None:
    # given: an admin of every default role and one of a role no policy mentions
    factory = Factory(api.engine)
    partner = await factory.partner()
    roles = ["FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY_ADMIN", "SALES_ADMIN", "CUSTOM_AUDITOR"]
    for role in roles:
        await factory.admin(partner, f"{role.lower()}@acme.example", role)

    for role in roles:
        # when
        body = await post_graphql(api, INTROSPECTION, as_=f"{role.lower()}@acme.example")

        # then
        assert data_of(body) == {"__schema": {"queryType": {"name": "Query"}}}, role


async def test_introspection_without_token_is_401(api: Api) -> None:
    # when
    response = await post_with(api, None, INTROSPECTION)

    # then
    assert_unauthenticated(response)


async def test_graphiql_is_served_on_get_without_a_token(api: Api) -> None:
    # when
    response = await api.client.get("/graphql", headers={"Accept": "text/html"})

    # then
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_operations_over_get_are_refused_without_running(
    api: Api, acme: dict[str, int]
) -> None:
    # given: even with a valid token, GET only serves GraphiQL (no queries via GET, no CSRF)
    token = await new_token(api, acme["admin"])

    # when
    response = await api.client.get(
        "/graphql",
        params={"query": VIEWER},
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
    )

    # then
    assert response.status_code == 405, response.text
    assert "data" not in response.json()
