"""Session 21's attack on ``graph.operation.Schema.execute`` (the guards' steps run directly):
every way a step can fail (parsing, validation, the operation's start and end, the bounds, the
extensions' results), a client gone mid-execution, concurrent requests, every shape of
``operationName``, several operations with a mutation among them, introspection, directives,
persisted queries by POST and GET, the response cache. Each is sent through the lean path and
through Strawberry's own ``execute`` and must be answered, spent and logged alike: unexpected
errors masked, logged once as one JSON line, ``data`` only once execution started."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn

import httpx
import pytest

import graph.extensions
from graph import cost as cost_module
from graph.cost import CostMeter
from graph.documents import DocumentCache
from graph.extensions import Guards
from graph.operation import Schema
from graph.resolvers import admins as admin_resolvers
from tests.conftest import Api, api_over
from tests.databases import Database
from tests.helpers import error_codes, json_log, token_for
from tests.test_operation import (
    FULL,
    READ_ONLY,
    _scrubbed,
    both,
    counted_steps,
    strawberrys_execute,
)
from tests.test_persisted import apq, sha

VIEWER = "{ viewer { id email role } }"
PROBE = {"query": "{ viewer { id } partner { name } }"}


def _broken(*_: Any, **__: Any) -> NoReturn:
    raise RuntimeError("secret detail")


def error_lines(stream: io.StringIO) -> list[tuple[str, str, bool]]:
    """The error log's lines (each must be one JSON object): level, message, traceback or not."""
    found = []
    for line in stream.getvalue().splitlines():
        entry = json.loads(line)
        if entry["logger"] == "partner_hub.errors":
            found.append((entry["level"], entry["msg"], "Traceback" in entry.get("exc", "")))
    return found


@contextmanager
def lean_steps() -> Iterator[list[str]]:
    """The lean path's steps as they run: its preparation and its answer (either runs on every
    way through it, a step failing before the preparation too)."""
    with counted_steps() as steps, pytest.MonkeyPatch.context() as patch:
        original = Schema._finish

        def finish(self: Schema, *args: Any, **kwargs: Any) -> Any:
            steps.append("finish")
            return original(self, *args, **kwargs)

        patch.setattr(Schema, "_finish", finish)
        yield steps


@asynccontextmanager
async def path(lean: bool) -> AsyncIterator[list[str]]:
    """The lean path (asserted to run) or Strawberry's own ``execute`` (asserted to not)."""
    if lean:
        with lean_steps() as steps:
            yield steps
        assert steps, "the lean path did not run"
    else:
        with strawberrys_execute(), lean_steps() as steps:
            yield steps
        assert not steps, "Strawberry's execute ran the lean path's steps"


async def answer(response: httpx.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "media": response.headers.get("content-type"),
        "body": _scrubbed(response.json()),
        "cache": response.headers.get("x-partner-hub-cache"),
    }


Send = Callable[[Api], Awaitable[Any]]


Patch = tuple[Any, str, Any]


@contextmanager
def spends() -> Iterator[list[int]]:
    """The costs spent from any token's budget, in order (what the limiter allowed)."""
    spent: list[int] = []
    original = cost_module.spend_once

    async def recorded(*args: Any) -> tuple[bool, float, float]:
        allowed, remaining, wait = await original(*args)
        if allowed:
            spent.append(args[3])
        return allowed, remaining, wait

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cost_module, "spend_once", recorded)
        yield spent


async def on_both_paths(
    db: Database, send: Send, patches: tuple[Patch, ...] = (), **settings: Any
) -> dict[str, Any]:
    """``send`` through each path, each on an app of its own (its own response cache), with
    ``patches`` on while it runs: what it answered, spent and logged, and whether the app
    answers a request after it. Asserts both paths alike; returns the lean path's."""
    outcomes = []
    for lean in (True, False):
        async with api_over(db, **{"response_cache_seconds": 0, **settings}) as api:
            token = await token_for(api, FULL)
            with json_log() as stream, spends() as spent, pytest.MonkeyPatch.context() as patch:
                for target, name, value in patches:
                    patch.setattr(target, name, value)
                async with path(lean):
                    sent = await send(api)
                logged = error_lines(stream)
            probe = await api.client.post(
                "/graphql", json=PROBE, headers={"Authorization": f"Bearer {token}"}
            )
            outcomes.append(
                {"sent": sent, "logged": logged, "spent": spent, "probe": probe.status_code}
            )
    lean_outcome, stock_outcome = outcomes
    assert lean_outcome == stock_outcome
    assert lean_outcome["probe"] == 200
    return lean_outcome


def post_as(payload: dict[str, Any], email: str = FULL) -> Send:
    async def send(api: Api) -> dict[str, Any]:
        token = await token_for(api, email)
        response = await api.client.post(
            "/graphql", json=payload, headers={"Authorization": f"Bearer {token}"}
        )
        return await answer(response)

    return send


def masked_once(outcome: dict[str, Any], executed: bool) -> None:
    body = outcome["sent"]["body"]
    assert outcome["sent"]["status"] == 200
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert ("data" in body) is executed and body.get("data") is None
    assert "secret" not in json.dumps(body)
    assert outcome["logged"] == [("error", "unexpected error: RuntimeError", True)]


# --- a step that fails --------------------------------------------------------------------------


async def test_a_failing_parse_step_is_masked_logged_once_and_spends_nothing(
    demo_database: Database,
) -> None:
    broken = ((DocumentCache, "parse", _broken),)
    outcome = await on_both_paths(demo_database, post_as({"query": VIEWER}), broken)
    masked_once(outcome, executed=False)
    assert outcome["spent"] == []


async def test_a_failing_validation_step_is_masked_logged_once_and_spends_nothing(
    demo_database: Database,
) -> None:
    broken = ((graph.extensions, "variable_errors", _broken),)
    query = f"query V{uuid.uuid4().hex} {{ viewer {{ id }} }}"
    outcome = await on_both_paths(demo_database, post_as({"query": query}), broken)
    masked_once(outcome, executed=False)
    assert outcome["spent"] == []


async def test_a_failing_start_of_the_operation_is_masked_alike(demo_database: Database) -> None:
    broken = ((Guards, "begin_operation", _broken),)
    outcome = await on_both_paths(demo_database, post_as({"query": VIEWER}), broken)
    masked_once(outcome, executed=False)
    assert outcome["spent"] == []


async def test_failing_bounds_refuse_before_anything_is_spent(demo_database: Database) -> None:
    broken = ((graph.extensions, "refuse_out_of_bounds", _broken),)
    outcome = await on_both_paths(demo_database, post_as({"query": VIEWER}), broken)
    masked_once(outcome, executed=False)
    assert outcome["spent"] == []


async def test_a_failing_end_of_the_operation_keeps_data_null_and_the_spend(
    demo_database: Database,
) -> None:
    broken = ((Guards, "end_operation", _broken),)
    outcome = await on_both_paths(demo_database, post_as({"query": VIEWER}), broken)
    masked_once(outcome, executed=True)
    cost = outcome["sent"]["body"]["extensions"]["cost"]
    assert outcome["spent"] == [cost["requestedQueryCost"]] and cost["actualQueryCost"] > 0


async def test_a_failing_cost_report_escapes_execute_alike_and_is_answered_masked(
    demo_database: Database,
) -> None:
    """The report read once the operation is over, outside its handling (as in Strawberry):
    the exception leaves ``execute`` and the endpoint answers it, masked, logged once."""
    calls = {"n": 0}
    original = CostMeter.get_results

    def flaky(self: CostMeter) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("secret detail")
        return original(self)

    def send(api: Api) -> Awaitable[Any]:
        calls["n"] = 0
        return post_as({"query": VIEWER})(api)

    outcome = await on_both_paths(demo_database, send, ((CostMeter, "get_results", flaky),))
    masked_once(outcome, executed=False)
    assert calls["n"] == 1 and len(outcome["spent"]) == 1


# --- timing -------------------------------------------------------------------------------------


async def test_a_client_gone_mid_execution_logs_nothing_and_spends_alike(
    demo_database: Database,
) -> None:
    original = admin_resolvers.admin_row
    started = asyncio.Event()

    async def stuck(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await asyncio.sleep(30)
        return await original(*args, **kwargs)

    async def gone(api: Api) -> str:
        token = await token_for(api, FULL)
        started.clear()
        request = asyncio.ensure_future(
            api.client.post(
                "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
            )
        )
        await asyncio.wait_for(started.wait(), 10)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        return "cancelled"

    outcome = await on_both_paths(demo_database, gone, ((admin_resolvers, "admin_row", stuck),))
    assert outcome["logged"] == [] and len(outcome["spent"]) == 1


async def test_concurrent_requests_each_get_their_own_answer(uncached_demo_api: Api) -> None:
    payloads: list[dict[str, Any]] = [
        {"query": VIEWER},
        {"query": "{ partner { name } }"},
        {"query": "{ viewer { "},
        {"query": "{ nope }"},
        {"query": "query($f: Int!) { customers(first: $f) { totalCount } }", "variables": {"f": 2}},
        {"query": "{ customers(first: 100000) { totalCount } }"},
        {"query": '{ node(id: "bm9wZTox") { id } }'},
        {"query": "query A { viewer { id } } query B { partner { name } }"},
    ] * 2
    with strawberrys_execute():
        alone = [await post_as(p, READ_ONLY)(uncached_demo_api) for p in payloads]
    with counted_steps() as steps:
        together = await asyncio.gather(
            *(post_as(p, READ_ONLY)(uncached_demo_api) for p in payloads)
        )
    assert len(steps) == len(payloads)
    assert list(together) == alone


# --- documents and operation names -------------------------------------------------------------

SEVERAL = "query A { viewer { id } } query B { partner { name } }"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param({}, id="absent"),
        pytest.param({"operationName": None}, id="null"),
        pytest.param({"operationName": ""}, id="empty"),
        pytest.param({"operationName": "B"}, id="second"),
        pytest.param({"operationName": "b"}, id="wrong-case"),
    ],
)
async def test_every_shape_of_operation_name_is_answered_alike(
    uncached_demo_api: Api, name: dict[str, Any]
) -> None:
    for query in (SEVERAL, "query A { viewer { id } }", "{ viewer { id } }"):
        answered = await both(uncached_demo_api, {"query": query, **name}, READ_ONLY)
        assert answered["status"] in (200, 400), answered


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("   ", id="blank"),
        pytest.param("# only a comment", id="comment"),
        pytest.param("fragment F on Query { viewer { id } }", id="no-operation"),
        pytest.param("{ __schema { queryType { name } mutationType { name } } }", id="schema"),
        pytest.param('{ __type(name: "Customer") { name fields { name } } }', id="type"),
        pytest.param("{ __typename viewer { __typename } }", id="typename"),
    ],
)
async def test_empty_and_introspection_documents_are_answered_alike(
    uncached_demo_api: Api, query: str
) -> None:
    answered = await both(uncached_demo_api, {"query": query}, READ_ONLY)
    assert answered["body"].get("data") or answered["body"].get("errors")


async def test_directives_with_variables_are_answered_alike(uncached_demo_api: Api) -> None:
    query = (
        "query($s: Boolean!, $i: Boolean = false) { viewer { id email @skip(if: $s) "
        "role @include(if: $i) } partner @skip(if: true) { name } }"
    )
    for variables in ({"s": True}, {"s": False, "i": True}, {}, {"s": "yes"}):
        answered = await both(uncached_demo_api, {"query": query, "variables": variables})
        assert answered["status"] == 200


async def test_a_query_chosen_beside_a_mutation_writes_nothing(uncached_demo_api: Api) -> None:
    # a write on the read-only demo data would be a failure of its own: the mutation is never run
    document = (
        "query Q { tags { name } } "
        'mutation M { createTag(input: {name: "never"}) { tag { name } } }'
    )
    for name in ("Q", None):
        answered = await both(uncached_demo_api, {"query": document, "operationName": name})
        assert "never" not in json.dumps(answered["body"])
    tags = await both(uncached_demo_api, {"query": "{ tags { name } }"})
    assert "never" not in json.dumps(tags["body"])


# --- persisted queries and the response cache -------------------------------------------------


async def test_automatic_persisted_queries_are_answered_alike(demo_database: Database) -> None:
    document = f"query P{uuid.uuid4().hex} {{ viewer {{ email }} partner {{ name }} }}"
    digest = sha(document)

    async def send(api: Api) -> list[dict[str, Any]]:
        token = await token_for(api, FULL)
        headers = {"Authorization": f"Bearer {token}"}
        sent = []
        for body in (
            {"extensions": apq(digest)},  # unknown yet
            {"query": document, "extensions": apq("0" * 64)},  # mismatch
            {"query": document, "extensions": apq(digest)},  # registers
            {"extensions": apq(digest)},  # by hash alone
            {"extensions": apq(digest), "operationName": "Other"},
        ):
            response = await api.client.post("/graphql", json=body, headers=headers)
            sent.append(await answer(response))
        return sent

    outcome = await on_both_paths(demo_database, send)
    codes = [error_codes(s["body"]) for s in outcome["sent"]]
    assert codes[0] == ["PERSISTED_QUERY_NOT_FOUND"]
    assert codes[2] == codes[3] == []


async def test_persisted_gets_through_the_response_cache_are_answered_alike(
    demo_database: Database,
) -> None:
    document = f"query G{uuid.uuid4().hex} {{ viewer {{ email }} tags {{ name }} }}"
    digest = sha(document)

    async def send(api: Api) -> list[Any]:
        token = await token_for(api, FULL)
        headers = {"Authorization": f"Bearer {token}"}
        await api.client.post(
            "/graphql", json={"query": document, "extensions": apq(digest)}, headers=headers
        )
        sent: list[Any] = []
        etag = None
        for _ in range(2):
            response = await api.client.get(
                "/graphql",
                params={"extensions": json.dumps(apq(digest))},
                headers=headers,
            )
            sent.append(await answer(response))
            etag = response.headers.get("etag")
        assert etag is not None
        again = await api.client.get(
            "/graphql",
            params={"extensions": json.dumps(apq(digest))},
            headers={**headers, "If-None-Match": etag},
        )
        sent.append(again.status_code)
        return sent

    outcome = await on_both_paths(demo_database, send, response_cache_seconds=30)
    first, second, revalidated = outcome["sent"]
    assert first["status"] == second["status"] == 200
    assert first["body"]["data"]["viewer"]["email"] == FULL
    assert revalidated == 304
