"""Session 14's attack on provisional queries, continued: what runs on the request's connection
once its token's check has failed (nothing but the lookup), mutations and unknown documents
(never provisional), concurrent requests while the principal flips, a backend killed or a
request cancelled under the statement carrying the check, and the principal memo (bounded,
keyed by token hash, no garbage token)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update

from db.engine import create_engine
from db.models import Admin, ApiToken, Tag
from db.queries.admins import hash_token
from db.token_check import PrincipalMemo
from graph.ids import to_global_id
from tests.conftest import NOW, Api, postgresql_only
from tests.helpers import data_of, error_codes, post_graphql, token_for
from tests.test_attack_session13 import blocked_pid
from tests.test_attack_session14 import DETAIL, FULL, PAGE, TAGS, VIEWER, acme
from tests.test_auth import new_token

CREATE = 'mutation Create { createTag(input: {name: "t1"}) { tag { name } } }'
BOTH = PAGE.replace("query Page", "query Read") + " " + CREATE


def hub_of(api: Api) -> Any:
    return api.client._transport.app.state.hub  # type: ignore[attr-defined]


@contextmanager
def executed(api: Api) -> Iterator[list[str]]:
    """The statements the database ran (``after_cursor_execute``: a listener before the check's
    guard sees a statement the guard then stops)."""
    statements: list[str] = []

    def ran(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(api.engine.sync_engine, "after_cursor_execute", ran)
    try:
        yield statements
    finally:
        event.remove(api.engine.sync_engine, "after_cursor_execute", ran)


async def revoke(api: Api) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(update(ApiToken).values(revoked_at=NOW))


async def test_nothing_but_the_lookup_runs_once_the_check_failed(uncached_api: Api) -> None:
    api = uncached_api
    world = await acme(api)
    token = await token_for(api, FULL)
    customer = to_global_id("Customer", world["ids"][0])
    for document, variables in [(TAGS, {}), (DETAIL, {"id": customer}), (PAGE, {})]:
        data_of(await post_graphql(api, document, variables, token=token))
        await revoke(api)
        with executed(api) as statements:
            await post_graphql(api, document, variables, token=token, expect_status=401)
        # the lookup (alone, or riding the request's first read), then nothing; a read that
        # carried it and found no row (no tags) leaves it unanswered: the lookup alone follows
        assert all("api_token" in sql for sql in statements), statements
        assert len(statements) == 1 or (
            len(statements) == 2 and statements[1].startswith("SELECT admin.id")
        ), statements
        async with api.engine.begin() as conn:
            await conn.execute(update(ApiToken).values(revoked_at=None))


@pytest.mark.parametrize(
    ("document", "name"), [(CREATE, None), (BOTH, "Create"), (BOTH, "Read"), (BOTH, None)]
)
async def test_a_revoked_tokens_mutation_writes_nothing(
    api: Api, document: str, name: str | None
) -> None:
    await acme(api)
    token = await token_for(api, FULL)
    for _ in range(2):  # the document is known, the token seen
        await api.client.post(
            "/graphql",
            json={"query": document, "operationName": name},
            headers={"Authorization": f"Bearer {token}"},
        )
    async with api.engine.begin() as conn:
        await conn.execute(text("DELETE FROM tag"))
    await revoke(api)
    response = await api.client.post(
        "/graphql",
        json={"query": document, "operationName": name},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401, response.text
    async with api.engine.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(Tag))).scalar_one() == 0


async def test_concurrent_queries_while_the_principal_flips(uncached_api: Api) -> None:
    api = uncached_api
    world = await acme(api)
    token = await token_for(api, FULL)
    data_of(await post_graphql(api, PAGE, token=token))
    revoked = asyncio.Event()

    async def flip() -> None:
        for role in ("NO_SUCH_ROLE", "FULL_ADMIN", "SALES_ADMIN", "FULL_ADMIN") * 3:
            async with api.engine.begin() as conn:
                await conn.execute(
                    update(Admin).where(Admin.id == world["admin"]).values(role=role)
                )
            await asyncio.sleep(0.005)
        await revoke(api)
        revoked.set()

    async def ask() -> tuple[bool, Any]:
        after = revoked.is_set()
        response = await api.client.post(
            "/graphql", json={"query": PAGE}, headers={"Authorization": f"Bearer {token}"}
        )
        return after, response

    flipper = asyncio.ensure_future(flip())
    answers = []
    while not revoked.is_set():
        answers += await asyncio.gather(*(ask() for _ in range(6)))
    await flipper
    answers += await asyncio.gather(*(ask() for _ in range(6)))
    for after, response in answers:
        assert response.status_code in (200, 401), response.text
        if after:
            assert response.status_code == 401, response.text
        if response.status_code == 200:
            body = response.json()
            assert "INTERNAL_SERVER_ERROR" not in error_codes(body), body
            assert "Beta" not in response.text


async def test_two_partners_tokens_interleaved_read_their_own(uncached_api: Api) -> None:
    api = uncached_api
    world = await acme(api)
    acme_token = await token_for(api, FULL)
    async with api.engine.begin() as conn:
        beta = (
            await conn.execute(
                update(Admin)
                .where(Admin.email == "other@acme.example")
                .values(partner_id=world["beta"])
                .returning(Admin.id)
            )
        ).scalar_one()
    beta_token = await new_token(api, beta)
    tokens = [acme_token, beta_token] * 10
    bodies = await asyncio.gather(*(post_graphql(api, PAGE, token=t) for t in tokens))
    for t, body in zip(tokens, bodies, strict=True):
        names = {n["name"].split()[0] for n in data_of(body)["customers"]["nodes"]}
        assert names == ({"Acme"} if t == acme_token else {"Beta"}), body


async def test_the_memo_is_bounded_and_never_holds_a_garbage_token(api: Api) -> None:
    world = await acme(api)
    hub = hub_of(api)
    hub.principals = PrincipalMemo(size=2)
    for n in range(5):
        await post_graphql(api, VIEWER, token=f"garbage-{n}", expect_status=401)
    assert hub.principals.get(hash_token("garbage-0")) is None
    tokens = [await new_token(api, world["admin"]) for _ in range(3)]
    for token in tokens * 2:
        data_of(await post_graphql(api, PAGE, token=token))
    assert len(hub.principals._seen) <= 2
    assert all(len(key) == 64 and key != t for key in hub.principals._seen for t in tokens)
    await revoke(api)
    for token in tokens:
        await post_graphql(api, PAGE, token=token, expect_status=401)
    assert not hub.principals._seen


@postgresql_only
@pytest.mark.parametrize("ending", ["cancelled", "terminated"])
async def test_the_statement_carrying_the_check_ended_in_flight(
    uncached_api: Api, ending: str
) -> None:
    # given: a seen token whose page blocks in PostgreSQL on a lock on the customers
    api = uncached_api
    await acme(api)
    token = await token_for(api, FULL)
    data_of(await post_graphql(api, PAGE, token=token))
    locker = create_engine(api.db.url, pool=False)
    try:
        async with locker.connect() as connection:
            await connection.execute(text("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE"))
            task = asyncio.ensure_future(
                api.client.post(
                    "/graphql", json={"query": PAGE}, headers={"Authorization": f"Bearer {token}"}
                )
            )
            pid = await blocked_pid(connection)
            # when: the token is revoked meanwhile, and the request cancelled or killed
            await revoke(api)
            if ending == "cancelled":
                task.cancel()
                await asyncio.wait([task])
            else:
                await connection.execute(text(f"SELECT pg_terminate_backend({pid})"))
                response = await asyncio.wait_for(task, 5)
            await connection.rollback()
    finally:
        await locker.dispose()
    # then: never the page, never a traceback; the token is refused next, and the pool serves
    if ending == "terminated":
        assert response.status_code in (200, 401), response.text
        assert "Acme" not in response.text and "Traceback" not in response.text
        assert "data" not in response.json() or response.json()["data"] is None
    await post_graphql(api, PAGE, token=token, expect_status=401)
    other = await token_for(api, "other@acme.example")
    data_of(await post_graphql(api, PAGE, token=other))
