"""Generated documents (``tests/fuzz_support.py``) against the demo data, as each built-in role.

Every generated query is sent twice over HTTP: through the app as it runs (graph/execution.py's
direct paths, graph/operation.py's execute) and with those replaced by stock graphql-core
execution under Strawberry's own ``Schema.execute``. The leg fails on an
HTTP 5xx, an ``INTERNAL_SERVER_ERROR``, an ``actualQueryCost`` above ``requestedQueryCost`` and
any difference between the two answers. Hypothesis runs derandomized (the same documents on every
run) with a modest number of examples. Generated mutations (which change the data, so they are
not compared) run on a small data set of their own and only need a coded answer.

Failures are not shrunk by default: one that depends on timing can take minutes to shrink and
the leg must stay short. ``PH_FUZZ_SHRINK=1`` has Hypothesis minimise the documents it prints.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import strawberry
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.execution import PlainFieldExecutionContext
from graph.operation import Schema
from graph.schema import build_schema
from tests.conftest import Api, api_over
from tests.databases import Database
from tests.fuzz_support import IdPools, documents, seeded_ids, small_world
from tests.helpers import token_for

ROLES = {
    "FULL_ADMIN": "full@acme.example",
    "PARTNER_ADMIN": "partner@acme.example",
    "READ_ONLY_ADMIN": "readonly@acme.example",
    "SALES_ADMIN": "sales@acme.example",
}
SHRINK = os.environ.get("PH_FUZZ_SHRINK") == "1"
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    phases=list(Phase) if SHRINK else [Phase.explicit, Phase.generate],
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
_IDS: dict[str, IdPools] = {}
MUTATIONS = settings(FUZZ, max_examples=12)


@pytest.fixture
async def fuzz_api(demo_database: Database) -> AsyncIterator[Api]:
    """The demo data without the response cache (each document really runs twice) and with a
    rate limit no run of the leg reaches (every document is priced, none is throttled)."""
    async with api_over(
        demo_database, response_cache_seconds=0, cost_per_minute=1_000_000_000
    ) as value:
        yield value


async def ids_of(api: Api) -> IdPools:
    key = str(api.engine.url)
    if key not in _IDS:
        _IDS[key] = await seeded_ids(api.engine)
    return _IDS[key]


async def send(api: Api, token: str, query: str, variables: dict[str, Any]) -> httpx.Response:
    return await api.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )


def checked(response: httpx.Response, what: str) -> dict[str, Any]:
    """The body, after the checks every answer must pass."""
    assert response.status_code < 500, f"{what}: HTTP {response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL_SERVER_ERROR", f"{what}: {error}"
    cost = (body.get("extensions") or {}).get("cost") or {}
    if "actualQueryCost" in cost:  # reported once the cost model's actual cost has landed
        assert cost["actualQueryCost"] <= cost["requestedQueryCost"], f"{what}: {cost}"
    return body


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """Data and errors (in a stable order): what the two executions must agree on."""
    errors = sorted(
        (repr(e.get("path")), e.get("message"), repr(e.get("extensions", {}).get("code")))
        for e in body.get("errors") or []
    )
    return {"data": body.get("data"), "errors": errors}


@pytest.mark.parametrize("role", list(ROLES))
@FUZZ
@given(data=st.data())
async def test_generated_queries_are_answered_alike_by_both_execution_paths(
    fuzz_api: Api, role: str, data: st.DataObject
) -> None:
    schema = build_schema(fuzz_api.settings)._schema
    query, variables = data.draw(documents(schema, await ids_of(fuzz_api)), label="document")
    token = await token_for(fuzz_api, ROLES[role])
    direct = checked(await send(fuzz_api, token, query, variables), "direct")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            PlainFieldExecutionContext,
            "execute_field",
            StrawberryGraphQLCoreExecutionContext.execute_field,
        )
        patch.setattr(Schema, "execute", strawberry.Schema.execute)
        stock = checked(await send(fuzz_api, token, query, variables), "stock")
    assert comparable(direct) == comparable(stock)


@pytest.mark.parametrize("role", list(ROLES))
@MUTATIONS
@given(data=st.data())
async def test_generated_mutations_get_coded_answers(
    mutation_api: tuple[Api, IdPools], role: str, data: st.DataObject
) -> None:
    api, ids = mutation_api
    schema = build_schema(api.settings)._schema
    query, variables = data.draw(documents(schema, ids, root="Mutation"), label="document")
    checked(await send(api, await token_for(api, ROLES[role]), query, variables), "mutation")


@pytest.fixture
async def mutation_api(fresh_database: Database) -> AsyncIterator[tuple[Api, IdPools]]:
    """A small data set of two partners (``small_world``), fresh for each role."""
    await fresh_database.empty()
    await small_world(fresh_database.engine)
    ids = await seeded_ids(fresh_database.engine)
    async with api_over(fresh_database, cost_per_minute=1_000_000_000) as value:
        yield value, ids
