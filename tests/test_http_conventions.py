"""GraphQL over HTTP conventions, and error codes given where errors are made (issue 15, 7 and 9).

Throttled requests get 429 with ``Retry-After`` and ``RateLimit-*`` headers; an error before
execution leaves ``data`` out; ``application/graphql-response+json`` is honoured (400 when
nothing executed); the envelope's refusals are JSON with a code; every error's code comes from
the step that made it, and anything uncoded is masked as ``INTERNAL_SERVER_ERROR``.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Any, NoReturn

import httpx
import pytest

from graph import cost as cost_module
from graph import hub as hub_module
from graph.types.admins import Partner
from tests.conftest import Api, api_over
from tests.helpers import Factory, data_of, error_codes, token_for

EMAIL = "full@acme.example"
PAGE = "query Page($first: Int!) { customers(first: $first) { nodes { id name } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


async def given_admin(api: Api) -> dict[str, str]:
    factory = Factory(api.engine)
    partner = await factory.partner()
    await factory.admin(partner, EMAIL, "FULL_ADMIN")
    for i in range(3):
        await factory.customer(partner, f"Customer {i}")
    return {"Authorization": f"Bearer {await token_for(api, EMAIL)}"}


async def post(
    api: Api,
    headers: dict[str, str],
    query: str,
    variables: dict[str, Any] | None = None,
    **extra: str,
) -> httpx.Response:
    return await api.client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={**headers, **extra},
    )


async def test_a_throttled_request_is_429_with_retry_after_and_rate_limit_headers(
    api: Api,
) -> None:
    # given: a budget of 150 cost points a minute, and a page costing more than half of it
    headers = await given_admin(api)
    async with api_over(api.db, cost_per_minute=150, response_cache_seconds=0) as limited:
        # when
        first = await post(limited, headers, PAGE, {"first": 100})
        second = await post(limited, headers, PAGE, {"first": 100})

        # then: the first spent budget and says so in the headers
        assert first.status_code == 200
        cost = first.json()["extensions"]["cost"]["requestedQueryCost"]
        assert 75 < cost <= 150
        assert first.headers["ratelimit-limit"] == "150"
        assert first.headers["ratelimit-remaining"] == str(150 - cost)
        assert int(first.headers["ratelimit-reset"]) == math.ceil(cost / 2.5)
        # and the second is refused as HTTP expects it
        assert second.status_code == 429, second.text
        body = second.json()
        assert error_codes(body) == ["RATE_LIMITED"] and "data" not in body
        wait = body["errors"][0]["extensions"]["retryAfterSeconds"]
        assert second.headers["retry-after"] == str(math.ceil(wait))
        assert int(second.headers["retry-after"]) >= 1
        assert int(second.headers["ratelimit-remaining"]) < cost


PRE_EXECUTION = [
    ("{ viewer { ", None, "GRAPHQL_PARSE_FAILED"),
    ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED"),
    ("query($f: Int!) { customers(first: $f) { totalCount } }", {"f": "x"}, "BAD_USER_INPUT"),
    ("query($f: Int!) { customers(first: $f) { totalCount } }", {}, "BAD_USER_INPUT"),
    (
        # a nullable variable with a default, used where a value is required, given null
        'query($id: ID = "x") { node(id: $id) { id } }',
        {"id": None},
        "BAD_USER_INPUT",
    ),
    (
        "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(31)) + " }",
        None,
        "QUERY_TOO_COMPLEX",
    ),
    ("{ customers(first: 100) { nodes { subscriptions { licenses { product } } } } }", None, None),
    ("query A { viewer { id } } query B { viewer { id } }", None, "OPERATION_RESOLUTION_FAILURE"),
]


@pytest.mark.parametrize(("document", "variables", "code"), PRE_EXECUTION)
async def test_errors_before_execution_leave_data_out_and_are_400_for_graphql_response_json(
    api: Api, document: str, variables: dict[str, Any] | None, code: str | None
) -> None:
    # given
    headers = await given_admin(api)
    if code is None:  # the cost limit: made reachable with a small maximum
        async with api_over(api.db, max_query_cost=100) as small:
            await check_pre_execution(small, headers, document, variables, "QUERY_TOO_COSTLY")
        return
    await check_pre_execution(api, headers, document, variables, code)


async def check_pre_execution(
    api: Api, headers: dict[str, str], document: str, variables: Any, code: str
) -> None:
    # when: once as application/json, once as application/graphql-response+json
    plain = await post(api, headers, document, variables)
    typed = await post(api, headers, document, variables, Accept=GRAPHQL_RESPONSE)

    # then
    assert plain.status_code == 200, plain.text
    assert plain.headers["content-type"].startswith("application/json")
    assert typed.status_code == 400, typed.text
    assert typed.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    for response in (plain, typed):
        body = response.json()
        assert "data" not in body, body
        assert error_codes(body) and set(error_codes(body)) == {code}, body


async def test_executed_responses_keep_data_and_are_200_in_both_media_types(api: Api) -> None:
    # given
    headers = await given_admin(api)

    # when: one succeeds, one fails inside a resolver (during execution)
    ok = await post(api, headers, PAGE, {"first": 2}, Accept=GRAPHQL_RESPONSE)
    failing = await post(api, headers, PAGE, {"first": 0}, Accept=GRAPHQL_RESPONSE)

    # then
    assert ok.status_code == 200 and ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert len(data_of(ok.json())["customers"]["nodes"]) == 2
    assert failing.status_code == 200
    body = failing.json()
    assert "data" in body and body["data"] is None
    assert error_codes(body) == ["INVALID_PAGE_SIZE"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'[{"query": "{ viewer { id } }"}]', "application/json", 400, "BATCHING_NOT_SUPPORTED"),
        (b"{ viewer { id } }", "application/graphql", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"query=%7B%7D", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"query": "{ viewer { id } }"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"query": ', "application/json", 400, "BAD_REQUEST"),
        (b'"{ viewer { id } }"', "application/json", 400, "BAD_REQUEST"),
        (b'{"query": 42}', "application/json", 400, "BAD_REQUEST"),
        (b'{"variables": {}}', "application/json", 400, "BAD_REQUEST"),
        (
            b'{"query": "{ viewer { id } }", "variables": [1]}',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        (
            b'{"query": "{ viewer { id } }", "operationName": 1}',
            "application/json",
            400,
            "BAD_REQUEST",
        ),
    ],
)
async def test_malformed_envelopes_get_a_coded_json_error_and_a_4xx(
    api: Api, content: bytes, content_type: str, status: int, code: str
) -> None:
    # given
    headers = await given_admin(api)

    # when
    response = await api.client.post(
        "/graphql", content=content, headers={**headers, "Content-Type": content_type}
    )

    # then
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert error_codes(body) == [code] and "data" not in body


async def test_get_with_a_query_is_refused_with_a_code(api: Api) -> None:
    response = await api.client.get("/graphql", params={"query": "{ viewer { id } }"})
    assert response.status_code == 405
    assert error_codes(response.json()) == ["METHOD_NOT_ALLOWED"]


async def test_an_unknown_field_named_like_a_limit_is_a_validation_error(api: Api) -> None:
    # given: messages that mention "tokens", "aliases found" or "depth" used to be guessed limits
    headers = await given_admin(api)

    # when
    responses = [
        await post(api, headers, "{ viewer { tokens } }"),
        await post(api, headers, "{ viewer { aliasesFound tokenLimit } }"),
        await post(api, headers, "{ viewer { id } } fragment F on Nope { x }"),
    ]

    # then
    for response in responses:
        codes = error_codes(response.json())
        assert codes and set(codes) == {"GRAPHQL_VALIDATION_FAILED"}, response.text


async def test_limits_carry_their_code_from_the_step_that_refuses(api: Api) -> None:
    # given
    headers = await given_admin(api)
    many_tokens = "{ viewer { " + " ".join(["id"] * 4100) + " } }"
    commented = "{ viewer { id\n" + "#\n" * 4100 + "} }"
    too_long = "{ viewer { id } }\n#" + "x" * 70_000

    # when / then
    for document in (many_tokens, commented, too_long):
        body = (await post(api, headers, document)).json()
        assert error_codes(body) == ["QUERY_TOO_COMPLEX"], body["errors"][0]["message"]
        assert "data" not in body
    async with api_over(api.db, max_query_depth=2) as shallow:
        deep = "{ viewer { partner { ownOrganization { setupState } } } }"
        body = (await post(shallow, headers, deep)).json()
        assert error_codes(body) == ["QUERY_TOO_COMPLEX"] and "data" not in body, body


async def test_an_output_coercion_failure_is_an_internal_error_masked(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the partner's name comes back as something that is not a string
    headers = await given_admin(api)
    original = Partner.from_row

    def broken(row: Any) -> Partner:
        return dataclasses.replace(original(row), name=object())  # type: ignore[arg-type]

    monkeypatch.setattr(Partner, "from_row", broken)

    # when
    response = await post(api, headers, "{ partner { name } }", **{"X-Request-ID": "trace-7"})

    # then
    body = response.json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"], body
    assert body["errors"][0]["extensions"]["requestId"] == "trace-7"
    assert "object" not in body["errors"][0]["message"]
    assert "data" in body  # it failed while executing


async def test_an_exception_before_execution_is_masked_not_leaked(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the cost walk (an extension, before execution) fails unexpectedly
    headers = await given_admin(api)

    def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(cost_module, "query_cost", broken)

    # when: a document no earlier request priced (the cost module caches prices)
    response = await post(api, headers, f"query Unpriced{uuid.uuid4().hex} {{ viewer {{ id }} }}")

    # then
    assert response.status_code == 200
    assert "secret detail" not in response.text and "RuntimeError" not in response.text
    body = response.json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert body["errors"][0]["extensions"]["requestId"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("trace-42.a_b", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ('{"json": 1}', False),
        ("é-accent", False),
    ],
)
async def test_a_client_request_id_is_kept_only_when_short_and_plain(
    api: Api, incoming: str, kept: bool
) -> None:
    # given
    headers = await given_admin(api)

    # when
    response = await api.client.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={**headers, "X-Request-ID": incoming.encode()},  # type: ignore[dict-item]
    )

    # then
    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == incoming
    else:
        assert echoed != incoming and len(echoed) == 32 and echoed.isalnum()


async def test_cache_hits_keep_the_media_type_and_rate_limit_headers_per_caller(api: Api) -> None:
    # given: two partners' admins asking the same document
    headers = await given_admin(api)
    factory = Factory(api.engine)
    other = await factory.partner("Globex Reseller", "globex.example")
    await factory.admin(other, "full@globex.example", "FULL_ADMIN")
    await factory.customer(other, "Globex customer")
    other_headers = {"Authorization": f"Bearer {await token_for(api, 'full@globex.example')}"}

    # when
    miss = await post(api, headers, PAGE, {"first": 5}, Accept=GRAPHQL_RESPONSE)
    hit = await post(api, headers, PAGE, {"first": 5}, Accept=GRAPHQL_RESPONSE)
    theirs = await post(api, other_headers, PAGE, {"first": 5})

    # then
    assert (miss.headers["x-partner-hub-cache"], hit.headers["x-partner-hub-cache"]) == (
        "miss",
        "hit",
    )
    assert hit.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert hit.headers["ratelimit-limit"] == str(api.settings.cost_per_minute)
    assert 0 <= int(hit.headers["ratelimit-remaining"]) < api.settings.cost_per_minute
    assert hit.json()["data"] == miss.json()["data"]
    assert theirs.headers["x-partner-hub-cache"] == "miss"
    names = [n["name"] for n in data_of(theirs.json())["customers"]["nodes"]]
    assert names == ["Globex customer"]


async def test_an_exception_outside_graphql_is_a_coded_json_500(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the token lookup itself fails unexpectedly
    headers = await given_admin(api)

    async def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(hub_module, "authenticate_token", broken)

    # when
    response = await post(api, headers, "{ viewer { id } }", Accept=GRAPHQL_RESPONSE)

    # then: not Starlette's text/plain page
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "secret detail" not in response.text
    body = response.json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"] and "data" not in body
    assert body["errors"][0]["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_an_exception_outside_graphql_is_a_coded_200_for_application_json(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the token lookup itself fails unexpectedly
    headers = await given_admin(api)

    async def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(hub_module, "authenticate_token", broken)

    # when
    response = await post(api, headers, "{ viewer { id } }", Accept="application/json")

    # then: never a 500 for the classic media type, and still coded and masked
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "secret detail" not in response.text
    assert error_codes(response.json()) == ["INTERNAL_SERVER_ERROR"]
