"""Attacks on session 6's work (persisted queries, backward paging, per-partner data versions,
the shared budget, the one-statement detail): each test is a regression test of a fix."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Api
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_persisted import VIEWER, apq, get, post, sha, world
from tests.test_trials import START_TRIAL, for_customer

LOW = (
    "query Low { licenseAnalytics(product: MEETINGS) "
    "{ lowAllocation { kpis { lowAllocationCustomers } } } }"
)


async def _low(api: Api, email: str) -> int:
    body = data_of(await post_graphql(api, LOW, as_=email))
    return int(body["licenseAnalytics"]["lowAllocation"]["kpis"]["lowAllocationCustomers"])


async def test_another_partners_trial_moves_what_the_low_allocation_medians_show(
    api: Api,
) -> None:
    """The low-allocation medians are deployment-wide (every partner's in-force subscriptions):
    a trial started by another partner moves them, so it must move every partner's data
    version, or a cached response (or an ETag) of this partner outlives the change."""
    factory = Factory(api.engine)
    acme = await factory.partner()
    globex = await factory.partner("Globex", "globex.example")
    await factory.admin(acme, "full@acme.example", "FULL_ADMIN")
    await factory.admin(globex, "full@globex.example", "FULL_ADMIN")
    ours = await factory.customer(acme, "Ours")
    theirs = await factory.customer(globex, "Theirs")
    others = [await factory.customer(globex, f"Other {n}") for n in range(2)]
    await factory.subscription(ours, lines=[("MEETINGS", 10, 3, 3)])  # ratio 0.3
    await factory.subscription(theirs, lines=[("MEETINGS", 10, 10, 10)])  # ratio 1.0
    for email in ("full@acme.example", "full@globex.example"):
        await token_for(api, email)  # (issuing a token is a write of its own)
    # Band 1-10: median of {0.3, 1.0} = 0.65, and 0.3 < half of it: flagged.
    assert await _low(api, "full@acme.example") == 1
    assert await _low(api, "full@acme.example") == 1  # (served from the response cache)
    for other in others:  # two trials of ratio 0: median of {0, 0, 0.3, 1} = 0.15
        body = await post_graphql(
            api,
            START_TRIAL,
            {"input": for_customer(other, ("MEETINGS", 5))},
            as_="full@globex.example",
        )
        assert not data_of(body)["startTrial"]["userErrors"], body
    assert await _low(api, "full@acme.example") == 0


# --- empty cursors ---------------------------------------------------------------------------

EMPTY_CURSOR_LISTS = {
    "helpdesk": "query($a: String, $b: String, $l: Int) "
    "{ helpdeskCases(after: $a, before: $b, last: $l) { pageInfo { hasNextPage } } }",
    "audit": "query($a: String, $b: String, $l: Int) "
    "{ auditLog(after: $a, before: $b, last: $l) { pageInfo { hasNextPage } } }",
    "analytics": "query($a: String, $b: String, $l: Int) { licenseAnalytics(product: MEETINGS) "
    "{ lowAllocation { rows(after: $a, before: $b, last: $l) { pageInfo { hasNextPage } } } } }",
    "calling": "query($a: String, $b: String, $l: Int) { callingAnalytics "
    "{ customersUsage(after: $a, before: $b, last: $l) { pageInfo { hasNextPage } } } }",
    "customers": "query($a: String, $b: String, $l: Int) "
    "{ customers(after: $a, before: $b, last: $l) { pageInfo { hasNextPage } } }",
    "admins": "query($a: String, $b: String, $l: Int) "
    "{ admins(after: $a, before: $b, last: $l) { pageInfo { hasNextPage } } }",
}


async def test_an_empty_cursor_is_refused_by_every_connection_in_both_directions(
    api: Api,
) -> None:
    """``after: ""`` or ``before: ""`` is not a cursor this API hands out: every connection
    refuses it (INVALID_CURSOR) as the customer directory does, rather than starting over while
    its page info claims rows beyond the page."""
    factory = Factory(api.engine)
    acme = await factory.partner()
    await factory.admin(acme, "full@acme.example", "FULL_ADMIN")
    for name, query in EMPTY_CURSOR_LISTS.items():
        for variables in ({"a": ""}, {"b": ""}, {"b": "", "l": 5}):
            body = await post_graphql(api, query, variables, as_="full@acme.example")
            assert error_codes(body) == ["INVALID_CURSOR"], (name, variables, body)


# --- persisted queries -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [True, 1.0, "1"])
async def test_a_persisted_version_that_is_not_the_integer_1_is_refused(
    api: Api, version: object
) -> None:
    """``true == 1`` and ``1.0 == 1`` in Python: the version check must not take them for the
    protocol's version 1, on POST as on GET."""
    tokens = await world(api)
    token = tokens["full@acme.example"]
    extensions = {"persistedQuery": {"version": version, "sha256Hash": sha(VIEWER)}}
    posted = await post(api, token, {"query": VIEWER, "extensions": extensions})
    assert (posted.status_code, error_codes(posted.json())) == (400, ["BAD_REQUEST"])
    got = await get(api, token, {"extensions": extensions})
    assert (got.status_code, error_codes(got.json())) == (400, ["BAD_REQUEST"])
    # nothing was registered under the hash
    alone = await post(api, token, {"extensions": apq(sha(VIEWER))})
    assert error_codes(alone.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_get_a_coded_405_and_run_nothing(api: Api, method: str) -> None:
    """Only GET (persisted reads, GraphiQL) and POST: any other method is refused with the
    API's coded error and an Allow header, never the router's bare text/plain 405, and a
    persisted hash in its query string runs nothing."""
    tokens = await world(api)
    token = tokens["full@acme.example"]
    registered = await post(api, token, {"query": VIEWER, "extensions": apq(sha(VIEWER))})
    assert registered.json()["data"]["viewer"]
    for params in (
        {},
        {"extensions": json.dumps(apq(sha(VIEWER)))},
    ):
        response = await api.client.request(
            method, "/graphql", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        assert response.headers["content-type"].startswith("application/json")
        assert error_codes(response.json()) == ["METHOD_NOT_ALLOWED"]
    head = await api.client.head("/graphql", headers={"Accept": "text/html"})
    assert head.status_code == 200  # HEAD stays GET's


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"query": ' + "[" * 5000])
async def test_json_nested_beyond_the_parsers_limit_is_a_bad_request(api: Api, body: str) -> None:
    """orjson refuses nesting beyond 1,024 levels; the standard library's fallback (kept for
    lone surrogates) then hit the recursion limit: an INTERNAL_SERVER_ERROR. It is the client's
    invalid JSON: 400 BAD_REQUEST."""
    tokens = await world(api)
    response = await api.client.post(
        "/graphql",
        content=body,
        headers={
            "Authorization": f"Bearer {tokens['full@acme.example']}",
            "Content-Type": "application/json",
        },
    )
    assert (response.status_code, error_codes(response.json())) == (400, ["BAD_REQUEST"])


DEEP = {
    "inline fragments": "query { viewer { "
    + "... on Admin { " * 400
    + "email"
    + " }" * 400
    + " } }",
    "list value": "query { customers(first: 1, filter: {products: "
    + "[" * 500
    + "MEETINGS"
    + "]" * 500
    + "}) { totalCount } }",
}


@pytest.mark.parametrize("document", list(DEEP.values()), ids=list(DEEP))
async def test_a_document_nested_beyond_the_stack_is_too_complex_on_every_path(
    api: Api, document: str
) -> None:
    """A few hundred levels fit in the token limit and exhausted the parser's stack where the
    document is parsed before execution (the response cache's key, a persisted query being
    registered): INTERNAL_SERVER_ERROR. Coded on every path, registering nothing."""
    token = (await world(api))["full@acme.example"]
    for body in ({"query": document}, {"query": document, "extensions": apq(sha(document))}):
        response = await post(api, token, body)
        assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]
    by_hash = await get(api, token, {"extensions": apq(sha(document))})
    assert error_codes(by_hash.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
