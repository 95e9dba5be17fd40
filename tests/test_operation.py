"""``graph.operation.Schema.execute`` answers exactly what Strawberry's ``Schema.execute`` does.

Every request runs the guards' steps (``graph.extensions.Guards``) directly, without Strawberry's
hook machinery. Each case here is sent twice over HTTP, once that way and once through
Strawberry's own ``execute`` (with the same extension), and the two answers must be the same:
status, media type, the whole body (request ids and the budget left aside), what was spent.
The cases cover every way out of an operation: data, a parse, validation or variable error, an
operation that cannot be chosen, a refusal by bounds or cost, an error while executing, an
exception in a step before or after execution (masked by the view), a mutation.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, NoReturn

import pytest
import strawberry
from strawberry.extensions import MaskErrors

from graph import cost as cost_module
from graph.cost import CostMeter
from graph.extensions import Guards
from graph.operation import Schema
from graph.schema import build_schema
from graph.transport import GRAPHQL_RESPONSE
from graph.types.admins import Partner
from tests.conftest import Api, api_over
from tests.helpers import token_for

FULL = "full@acme.example"
READ_ONLY = "readonly@acme.example"


@contextmanager
def strawberrys_execute() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Schema, "execute", strawberry.Schema.execute)
        yield


@contextmanager
def counted_steps() -> Iterator[list[str]]:
    """The lean path's own steps as they run (to know which path answered)."""
    seen: list[str] = []
    original = Schema._prepare

    def prepare(self: Schema, *args: Any) -> Any:
        seen.append("prepare")
        return original(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Schema, "_prepare", prepare)
        yield seen


def _scrubbed(value: Any) -> Any:
    """The body without what differs between two requests by design: request ids, the budget
    left and the wait it implies."""
    if isinstance(value, dict):
        return {
            key: _scrubbed(item)
            for key, item in value.items()
            if key not in ("requestId", "currentlyAvailable", "retryAfterSeconds")
        }
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, str) and "request id" in value:
        return value.split(" (request id")[0]
    return value


async def _send(api: Api, payload: dict[str, Any], email: str, accept: str) -> dict[str, Any]:
    token = await token_for(api, email)
    response = await api.client.post(
        "/graphql",
        json=payload,
        headers={"Authorization": f"Bearer {token}", "Accept": accept},
    )
    assert response.status_code < 500 or accept == GRAPHQL_RESPONSE, response.text
    return {
        "status": response.status_code,
        "media": response.headers["content-type"],
        "body": _scrubbed(response.json()),
        "limit": response.headers.get("ratelimit-limit"),
    }


async def both(
    api: Api, payload: dict[str, Any], email: str = FULL, accept: str = "application/json"
) -> dict[str, Any]:
    """The answer through the lean path; asserts Strawberry's is the same."""
    with counted_steps() as steps:
        lean = await _send(api, payload, email, accept)
    assert steps, "the lean path did not run"
    with strawberrys_execute(), counted_steps() as steps:
        stock = await _send(api, payload, email, accept)
    assert not steps, "Strawberry's execute called the lean path's steps"
    assert lean == stock
    return lean


def test_the_app_schema_takes_the_lean_path() -> None:
    schema = build_schema()
    assert isinstance(schema, Schema)
    assert isinstance(schema._guards, partial) and schema._guards.func is Guards


async def test_a_schema_with_other_extensions_keeps_strawberrys_execute() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def ping(self) -> str:
            return "pong"

    plain = Schema(query=Query)
    guarded_and_more = Schema(query=Query, extensions=[build_schema().extensions[0], MaskErrors])
    assert plain._guards is None and guarded_and_more._guards is None
    with counted_steps() as steps:
        assert (await plain.execute("{ ping }")).data == {"ping": "pong"}
        assert (await guarded_and_more.execute("{ ping }")).data == {"ping": "pong"}
    assert not steps


CASES = [
    pytest.param({"query": "{ viewer { id email role } partner { name } }"}, id="data"),
    pytest.param(
        {
            "query": "query P($f: Int) { customers(first: $f) { totalCount nodes { name } } }",
            "variables": {"f": 3},
        },
        id="variables",
    ),
    pytest.param({"query": "{ viewer { "}, id="parse-error"),
    pytest.param({"query": "{ nope }"}, id="validation-error"),
    pytest.param(
        {"query": "query($f: Int!) { customers(first: $f) { totalCount } }", "variables": {}},
        id="missing-variable",
    ),
    pytest.param(
        {"query": "query A { viewer { id } } query B { viewer { id } }"}, id="several-operations"
    ),
    pytest.param(
        {"query": "query A { viewer { id } }", "operationName": "B"}, id="unknown-operation-name"
    ),
    pytest.param({"query": "subscription { viewer { id } }"}, id="subscription"),
    pytest.param({"query": "{ customers(first: 100000) { totalCount } }"}, id="out-of-bounds"),
    pytest.param(
        {"query": "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(31)) + " }"},
        id="too-complex",
    ),
    pytest.param({"query": '{ node(id: "bm9wZTox") { id } }'}, id="executing-error"),
    pytest.param({"query": "{ auditLog(first: 5) { totalCount } }"}, id="field-refused"),
]


@pytest.mark.parametrize("payload", CASES)
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_every_way_out_of_an_operation_is_answered_alike(
    uncached_demo_api: Api, payload: dict[str, Any], accept: str
) -> None:
    answer = await both(uncached_demo_api, payload, READ_ONLY, accept)
    assert answer["body"].get("data") or answer["body"].get("errors"), answer


async def test_a_refusal_by_cost_is_answered_alike(uncached_demo_api: Api) -> None:
    async with api_over(
        uncached_demo_api.db, response_cache_seconds=0, cost_per_minute=100
    ) as small:
        page = {"query": "{ customers(first: 50) { nodes { name tags { name } } } }"}
        answer = await both(small, page)
    assert answer["status"] == 429
    assert [e["extensions"]["code"] for e in answer["body"]["errors"]] == ["RATE_LIMITED"]
    assert answer["body"]["extensions"]["cost"]["requestedQueryCost"] > 100


async def test_an_exception_in_a_step_before_execution_is_masked_alike(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(cost_module, "query_cost", broken)
    answer = await both(
        uncached_demo_api, {"query": f"query U{uuid.uuid4().hex} {{ viewer {{ id }} }}"}
    )
    assert "data" not in answer["body"]
    assert [e["extensions"]["code"] for e in answer["body"]["errors"]] == ["INTERNAL_SERVER_ERROR"]
    assert "secret" not in str(answer)


async def test_an_exception_in_a_step_after_execution_is_masked_alike(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(CostMeter, "after", broken)
    answer = await both(uncached_demo_api, {"query": "{ viewer { id } }"})
    assert "data" in answer["body"] and answer["body"]["data"] is None
    assert [e["extensions"]["code"] for e in answer["body"]["errors"]] == ["INTERNAL_SERVER_ERROR"]
    assert "secret" not in str(answer)


async def test_a_mutation_is_answered_alike(uncached_demo_api: Api) -> None:
    create = "mutation($n: String!) { createTag(input: {name: $n}) { tag { name } } }"
    lean = await _send(
        uncached_demo_api, {"query": create, "variables": {"n": "lean"}}, FULL, "*/*"
    )
    with strawberrys_execute():
        stock = await _send(
            uncached_demo_api, {"query": create, "variables": {"n": "stock"}}, FULL, "*/*"
        )
    assert lean["body"] == {"data": {"createTag": {"tag": {"name": "lean"}}}} | {
        k: v for k, v in lean["body"].items() if k != "data"
    }
    assert stock["body"]["data"] == {"createTag": {"tag": {"name": "stock"}}}
    assert lean["body"].keys() == stock["body"].keys()
    assert lean["body"]["extensions"] == stock["body"]["extensions"]


async def test_an_unexpected_error_while_executing_is_masked_alike(
    uncached_demo_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Partner.from_row

    def broken(row: Any) -> Partner:
        return dataclasses.replace(original(row), name=object())  # type: ignore[arg-type]

    monkeypatch.setattr(Partner, "from_row", broken)
    masked: list[str] = []
    anonymise = Guards.anonymise_error

    def counted(self: Guards, error: Any) -> Any:
        masked.append(error.message)
        return anonymise(self, error)

    monkeypatch.setattr(Guards, "anonymise_error", counted)
    answer = await both(uncached_demo_api, {"query": "{ viewer { id } partner { name } }"})
    # masked where the operation ends, on both paths (not left to the view)
    assert len(masked) == 2, masked
    assert "data" in answer["body"]  # it failed while executing
    assert [e["extensions"]["code"] for e in answer["body"]["errors"]] == ["INTERNAL_SERVER_ERROR"]
    assert "object" not in answer["body"]["errors"][0]["message"]
