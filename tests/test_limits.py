"""Query limits stop a document before any resolver runs; unexpected errors are masked."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

import httpx
import pytest

from graph.resolvers import admins as admin_resolvers
from tests.conftest import Api, api_over
from tests.databases import Database
from tests.helpers import Factory, data_of, token_for

EMAIL = "full@acme.example"


@pytest.fixture
async def tight_api(fresh_database: Database) -> AsyncIterator[Api]:
    """The app with small limits from settings, so every limit is reachable with this schema."""
    await fresh_database.empty()
    async with api_over(fresh_database, max_query_depth=2, max_aliases=2, max_tokens=100) as api:
        yield api


async def given_admin(api: Api) -> str:
    factory = Factory(api.engine)
    await factory.admin(await factory.partner(), EMAIL, "FULL_ADMIN")
    return await token_for(api, EMAIL)


async def post(api: Api, token: str, query: str, **headers: str) -> httpx.Response:
    response = await api.client.post(
        "/graphql",
        json={"query": query, "variables": {}},
        headers={"Authorization": f"Bearer {token}", **headers},
    )
    assert response.status_code == 200, response.text
    return response


async def rejected(api: Api, token: str, query: str) -> dict[str, Any]:
    """Post ``query`` (after a warm-up), check it was refused before execution, return the body."""
    data_of((await post(api, token, "query Warm { viewer { id } }")).json())
    with api.counter.counting() as statements:
        body: dict[str, Any] = (await post(api, token, query)).json()
    assert body.get("data") is None, body
    assert body["errors"], body
    # Only the token lookup ran: no resolver reached the database.
    assert len(statements) <= 1 and all("api_token" in s for s in statements), statements
    return body


def aliased_viewers(count: int) -> str:
    return "query Many { " + " ".join(f"v{i}: viewer {{ id }}" for i in range(count)) + " }"


def viewer_ids(count: int) -> str:
    return "query Long { viewer { " + " ".join(["id"] * count) + " } }"


async def test_within_the_limits_resolvers_run_and_are_counted(tight_api: Api) -> None:
    # given: the control case for the tests below: the counter does see resolvers
    token = await given_admin(tight_api)
    data_of((await post(tight_api, token, "query Warm { viewer { id } }")).json())

    # when
    with tight_api.counter.counting() as statements:
        body = (
            await post(
                tight_api, token, "query Deep { a: viewer { partner { name } } b: viewer { id } }"
            )
        ).json()

    # then: depth 2 and 2 aliases are allowed
    assert data_of(body)["a"]["partner"]["name"] == "Acme Partners"
    assert len(statements) > 1


async def test_query_deeper_than_the_limit_is_refused_before_execution(tight_api: Api) -> None:
    # given
    token = await given_admin(tight_api)
    deep = "query Deep { viewer { partner { ownOrganization { setupState } } } }"

    # when
    body = await rejected(tight_api, token, deep)

    # then
    message = body["errors"][0]["message"]
    assert "depth" in message and str(tight_api.settings.max_query_depth) in message, message


async def test_too_many_aliases_are_refused_before_execution(tight_api: Api) -> None:
    # given
    token = await given_admin(tight_api)

    # when
    body = await rejected(tight_api, token, aliased_viewers(3))

    # then
    message = body["errors"][0]["message"]
    assert "alias" in message and f"Allowed: {tight_api.settings.max_aliases}" in message, message


async def test_too_many_tokens_are_refused_before_execution(tight_api: Api) -> None:
    # given
    token = await given_admin(tight_api)

    # when
    body = await rejected(tight_api, token, viewer_ids(120))

    # then
    message = body["errors"][0]["message"]
    assert "tokens" in message and str(tight_api.settings.max_tokens) in message, message


async def test_default_alias_and_token_limits_apply(api: Api) -> None:
    # given: the default settings; exactly at the alias limit is allowed
    token = await given_admin(api)
    max_aliases, max_tokens = api.settings.max_aliases, api.settings.max_tokens
    data_of((await post(api, token, aliased_viewers(max_aliases))).json())

    # when
    too_many_aliases = await rejected(api, token, aliased_viewers(max_aliases + 1))
    too_many_tokens = await rejected(api, token, viewer_ids(max_tokens + 10))

    # then
    assert f"{max_aliases + 1} aliases" in too_many_aliases["errors"][0]["message"]
    assert f"{max_tokens} tokens" in too_many_tokens["errors"][0]["message"]


@pytest.fixture
def error_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.ERROR)
    logger = logging.getLogger("partner_hub.errors")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


async def test_unexpected_exception_is_masked_and_logged_with_the_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, error_log: list[logging.LogRecord]
) -> None:
    # given: the query behind `viewer` fails unexpectedly
    token = await given_admin(api)

    async def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(admin_resolvers, "admin_row", broken)

    # when
    response = await post(api, token, "query Me { viewer { id email } }")

    # then: the client learns nothing of the exception, but gets the request id
    body = response.json()
    error = body["errors"][0]
    assert "secret detail" not in response.text and "RuntimeError" not in response.text
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert error["path"] == ["viewer"]
    assert body["data"] is None
    # and the log has the exception under the same request id
    logged = [
        r for r in error_log if getattr(r, "request_id", None) == error["extensions"]["requestId"]
    ]
    assert logged and logged[0].exc_info is not None
    assert "secret detail" in str(logged[0].exc_info[1])


async def test_masked_error_carries_the_callers_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    token = await given_admin(api)

    async def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(admin_resolvers, "partner_row", broken)

    # when
    response = await post(
        api, token, "query P { partner { name } }", **{"X-Request-ID": "trace-42"}
    )

    # then
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "trace-42"}
    assert "secret detail" not in error["message"]


async def test_expected_errors_are_not_masked(api: Api) -> None:
    # given
    token = await given_admin(api)

    # when
    response = await api.client.post(
        "/graphql",
        json={"query": "query N($id: ID!) { node(id: $id) { id } }", "variables": {"id": "%%%"}},
        headers={"Authorization": f"Bearer {token}"},
    )

    # then: a client mistake keeps its own code and message
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID_ID"
    assert "Malformed ID" in error["message"]
