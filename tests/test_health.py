"""Operations endpoints: liveness, readiness, and the request id on every response."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from db.settings import Settings
from graph.app import create_app
from tests.conftest import Api, app_client
from tests.helpers import Factory, token_for


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(params=["postgresql", "sqlite"])
async def unreachable_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a database that does not answer (no server; a directory that is missing)."""
    if request.param == "postgresql":
        url = f"postgresql+asyncpg://partner_hub@127.0.0.1:{closed_port()}/nowhere"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('h')}/missing/dir/partner_hub.db"
    async with app_client(Settings(database_url=url, secret_key="test-secret")) as (_, client):
        yield client


async def test_healthz_answers_ok(api: Api) -> None:
    # when
    response = await api.client.get("/healthz")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_the_database_answers(api: Api) -> None:
    # when
    response = await api.client.get("/readyz")

    # then
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


async def test_readyz_is_503_when_the_database_does_not_answer(
    unreachable_client: httpx.AsyncClient,
) -> None:
    # when
    ready = await unreachable_client.get("/readyz")
    alive = await unreachable_client.get("/healthz")

    # then: not ready, but the process itself is alive
    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] == "unavailable"
    assert alive.status_code == 200


async def test_every_response_carries_a_fresh_request_id(api: Api) -> None:
    # given
    factory = Factory(api.engine)
    await factory.admin(await factory.partner(), "full@acme.example", "FULL_ADMIN")
    token = await token_for(api, "full@acme.example")
    query = {"query": "query Me { viewer { id } }"}

    # when
    responses = [
        await api.client.get("/healthz"),
        await api.client.get("/readyz"),
        await api.client.get("/graphql", headers={"Accept": "text/html"}),
        await api.client.post("/graphql", json=query),  # 401
        await api.client.post("/graphql", json=query, headers={"Authorization": f"Bearer {token}"}),
        await api.client.get("/no-such-path"),  # 404
    ]

    # then
    assert [r.status_code for r in responses] == [200, 200, 200, 401, 200, 404]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)  # one id per request


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/graphql")]
)
async def test_an_incoming_request_id_is_echoed(api: Api, method: str, path: str) -> None:
    # when (the POST has no token: a 401 is echoed too)
    body = {"query": "{ __typename }"} if method == "POST" else None
    response = await api.client.request(
        method, path, json=body, headers={"X-Request-ID": "abc-123"}
    )

    # then
    assert response.headers.get_list("x-request-id") == ["abc-123"]


async def test_an_oversized_request_id_is_replaced(api: Api) -> None:
    # given: ids are logged and returned; an unbounded one would be an injection vector
    oversized = "x" * 500

    # when
    response = await api.client.get("/healthz", headers={"X-Request-ID": oversized})

    # then
    assert response.status_code == 200
    assert response.headers["x-request-id"] != oversized
    assert 0 < len(response.headers["x-request-id"]) <= 64


async def test_start_up_moves_what_it_built_out_of_the_collectors_generations(api: Api) -> None:
    """The lifespan freezes the objects that exist once the hub has started (gc.freeze), so
    that requests' collections do not traverse them, and lets young objects accumulate longer
    before a collection (most of a request's die first)."""
    import gc

    from graph.app import GC_THRESHOLDS

    app = create_app(api.settings, engine=api.engine)
    gc.unfreeze()
    before = gc.get_threshold()
    # Another app started earlier in this process may have left its thresholds: start from
    # CPython's defaults, so that the change is the lifespan's.
    gc.set_threshold(700, 10, 10)
    assert gc.get_freeze_count() == 0
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            threshold = gc.get_threshold()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert frozen > 1000
    assert threshold == GC_THRESHOLDS and GC_THRESHOLDS[0] > 700


async def test_start_up_starts_again_when_another_process_wrote_the_first_rows_first(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers (or a server's workers) starting on one new database race to create the same
    first rows; the loser's unique violation makes it start again and read the winner's rows.
    A violation that keeps coming is not hidden."""
    from sqlalchemy.exc import IntegrityError

    import graph.hub

    real = graph.hub.seed_policies
    calls: list[int] = []
    failures = {"left": 1}

    async def racing(session: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if failures["left"]:
            failures["left"] -= 1
            raise IntegrityError("INSERT INTO casbin_rule ...", {}, Exception("duplicate key"))
        return await real(session, **kwargs)

    monkeypatch.setattr(graph.hub, "seed_policies", racing)
    # when
    async with app_client(api.settings, api.engine) as (app, _):
        services = await app.state.hub.start()
    # then
    assert len(calls) == 2
    assert services.authorizer.version
    # when: it never stops
    failures["left"] = 10
    async with app_client(api.settings, api.engine) as (app, _):
        with pytest.raises(IntegrityError):
            await app.state.hub.start()
    assert len(calls) == 2 + graph.hub.STARTUP_ATTEMPTS
