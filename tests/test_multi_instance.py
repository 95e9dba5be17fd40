"""Several API instances over one database honour a policy change, or a deactivation, made
through any one of them from their next request on (DESIGN.md section 4: "every API instance
honours a change at once"; issue 4: within 1 second).

In-process: two apps (each with its own enforcer) over one database, on both backends. Over real
HTTP: two ``partner-hub serve`` processes on one fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import httpx
import pytest

from db.engine import create_engine, session_factory
from db.migrate import migrate
from db.queries.admins import issue_token
from tests.authz_support import AuthzFactory, gid, mutation_document, user_error_codes
from tests.conftest import NOW, Api, api_over
from tests.databases import (
    PG_ADMIN_URL,
    pg_dsn,
    postgres_unreachable_reason,
    recreate_pg_database,
)
from tests.helpers import assert_forbidden, data_of, error_codes, post_graphql

FULL, RO, SALES = "full@acme.example", "readonly@acme.example", "sales@acme.example"
WITHIN = 1.0  # seconds

ADD_RULE = mutation_document("addPolicyRule", "PolicyRuleChangeInput", "rule { role }")
REMOVE_RULE = mutation_document("removePolicyRule", "PolicyRuleChangeInput", "rule { role }")
GRANT = mutation_document("grantRole", "GrantRoleInput", "admin { roles }")
DEACTIVATE = mutation_document("deactivateAdmin", "DeactivateAdminInput", "admin { active }")
CREATE_TAG = mutation_document("createTag", "CreateTagInput", "tag { id }")
VIEWER = "query { viewer { email roles } }"
TAG_WRITE = {"input": {"role": "READ_ONLY_ADMIN", "object": "tag", "action": "write"}}


async def acme(api: Api) -> dict[str, int]:
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    return {
        email: await f.admin(partner, email, role)
        for email, role in ((FULL, "FULL_ADMIN"), (RO, "READ_ONLY_ADMIN"), (SALES, "SALES_ADMIN"))
    }


@asynccontextmanager
async def second_instance(api: Api) -> AsyncIterator[Api]:
    """Another app over the same database: its own enforcer and policy version."""
    async with api_over(api.db) as other:
        other.tokens = api.tokens  # the same admins, the same tokens
        yield other


async def test_a_policy_change_through_one_instance_is_enforced_by_another(api: Api) -> None:
    # given: both instances have served the read-only admin (their enforcers are loaded)
    await acme(api)
    async with second_instance(api) as two:
        assert_forbidden(await post_graphql(api, CREATE_TAG, {"input": {"name": "a"}}, as_=RO))
        assert_forbidden(await post_graphql(two, CREATE_TAG, {"input": {"name": "b"}}, as_=RO))

        # when: instance 1 grants tag writing
        added = await post_graphql(api, ADD_RULE, TAG_WRITE, as_=FULL)
        changed_at = time.monotonic()
        assert data_of(added)["addPolicyRule"]["userErrors"] == []

        # then: instance 2 enforces it on its next request
        body = await post_graphql(two, CREATE_TAG, {"input": {"name": "granted"}}, as_=RO)
        assert time.monotonic() - changed_at < WITHIN
        assert data_of(body)["createTag"]["userErrors"] == []

        # when: instance 2 withdraws it; then instance 1 refuses at once
        removed = await post_graphql(two, REMOVE_RULE, TAG_WRITE, as_=FULL)
        changed_at = time.monotonic()
        assert data_of(removed)["removePolicyRule"]["userErrors"] == []
        assert_forbidden(await post_graphql(api, CREATE_TAG, {"input": {"name": "c"}}, as_=RO))
        assert time.monotonic() - changed_at < WITHIN


async def test_a_grant_and_a_deactivation_through_one_instance_reach_another(api: Api) -> None:
    # given
    pks = await acme(api)
    async with second_instance(api) as two:
        assert data_of(await post_graphql(two, VIEWER, as_=SALES))["viewer"]["roles"] == [
            "SALES_ADMIN"
        ]

        # when: instance 1 grants the sales admin the read-only role
        grant = {"input": {"adminId": gid("Admin", pks[SALES]), "role": "READ_ONLY_ADMIN"}}
        assert (
            data_of(await post_graphql(api, GRANT, grant, as_=FULL))["grantRole"]["userErrors"]
            == []
        )

        # then
        viewer = data_of(await post_graphql(two, VIEWER, as_=SALES))["viewer"]
        assert viewer["roles"] == ["SALES_ADMIN", "READ_ONLY_ADMIN"]

        # when: instance 1 deactivates the sales admin
        deactivated = await post_graphql(
            api, DEACTIVATE, {"input": {"id": gid("Admin", pks[SALES])}}, as_=FULL
        )
        changed_at = time.monotonic()
        assert data_of(deactivated)["deactivateAdmin"]["admin"] == {"active": False}

        # then: instance 2 refuses its token on the next request
        refused = await post_graphql(two, VIEWER, as_=SALES, expect_status=401)
        assert time.monotonic() - changed_at < WITHIN
        assert error_codes(refused) == ["UNAUTHENTICATED"]


# --- two real `partner-hub serve` processes ---------------------------------------------------


def log_file(path: Path) -> BinaryIO:
    """Where a server writes its output (read it when a test fails)."""
    return path.open("wb")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_up(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    for _ in range(120):  # up to ~30 s on a busy machine
        if process.returncode is not None:
            raise AssertionError(f"partner-hub serve exited with {process.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise AssertionError("partner-hub serve did not answer /healthz within 30 s")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(pg_dsn(PG_ADMIN_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Http:
    """A loopback client of one `serve` process."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, token: str, query: str, variables: Any = None) -> httpx.Response:
        return await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )


async def test_two_serve_processes_on_one_postgresql_database(tmp_path: Path) -> None:
    # given: a fresh PostgreSQL database with Acme's admins and their tokens
    reason = await postgres_unreachable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL: {reason}")
        pytest.skip(reason)  # only when PostgreSQL is unreachable and CI is unset
    name = f"partner_hub_test_serve_{os.getpid()}"
    url = await recreate_pg_database(name)
    engine = create_engine(url)
    await migrate(engine)  # before the servers start, so they do not migrate concurrently
    f = AuthzFactory(engine)
    partner = await f.partner()
    pks = {
        e: await f.admin(partner, e, r) for e, r in ((FULL, "FULL_ADMIN"), (RO, "READ_ONLY_ADMIN"))
    }
    tokens = {}
    async with session_factory(engine)() as session:
        for email, pk in pks.items():
            tokens[email] = await issue_token(session, admin_id=pk, now=NOW)
        await session.commit()
    await engine.dispose()

    command = Path(sys.executable).parent / "partner-hub"
    env = {**os.environ, "PARTNER_HUB_DATABASE_URL": url, "PARTNER_HUB_NOW": NOW.isoformat()}
    processes: list[asyncio.subprocess.Process] = []
    clients: list[httpx.AsyncClient] = []
    try:
        for i in range(2):
            port = free_port()
            log = log_file(tmp_path / f"serve{i}.log")
            processes.append(
                await asyncio.create_subprocess_exec(
                    str(command),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    env=env,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            )
            log.close()
            clients.append(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10)
            )
        for client, process in zip(clients, processes, strict=True):
            await wait_until_up(client, process)
        one, two = Http(clients[0]), Http(clients[1])
        refused = await two.post(tokens[RO], CREATE_TAG, {"input": {"name": "before"}})
        assert error_codes(refused.json()) == ["FORBIDDEN"]

        # when: a policy change through process 1
        added = await one.post(tokens[FULL], ADD_RULE, TAG_WRITE)
        changed_at = time.monotonic()
        assert user_error_codes(added.json(), "addPolicyRule") == []

        # then: process 2 enforces it within the second
        created = await two.post(tokens[RO], CREATE_TAG, {"input": {"name": "granted"}})
        assert time.monotonic() - changed_at < WITHIN
        assert created.status_code == 200
        assert data_of(created.json())["createTag"]["userErrors"] == []

        # when: process 1 deactivates the read-only admin
        deactivated = await one.post(
            tokens[FULL], DEACTIVATE, {"input": {"id": gid("Admin", pks[RO])}}
        )
        changed_at = time.monotonic()
        assert data_of(deactivated.json())["deactivateAdmin"]["admin"] == {"active": False}

        # then: process 2 refuses its token at once
        gone = await two.post(tokens[RO], VIEWER)
        assert time.monotonic() - changed_at < WITHIN
        assert gone.status_code == 401
    finally:
        for client in clients:
            await client.aclose()
        for process in processes:
            await stop(process)
        await drop_pg_database(name)
