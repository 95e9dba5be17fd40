"""Session 17's attack on DATABASE_BUSY (94cb82f), the LIFO pool (08d79c7) and the caller's own
rows read on the driver connection with the token's lookup riding along (1cd79b0)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.util.concurrency import await_only

from db.engine import RequestSession, create_engine
from graph.ids import to_global_id
from tests.conftest import Api, postgresql_only
from tests.databases import Database
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_database_busy import impatient_api

FULL = "full@acme.example"
OTHER = "full@other.example"
WAIT_MS = 300
ERRORS_LOG = "partner_hub.errors"


async def post(
    api: Api, query: str, variables: dict[str, Any] | None = None, *, token: str
) -> httpx.Response:
    return await api.client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


@asynccontextmanager
async def locked(db: Database, table: str) -> AsyncIterator[None]:
    """Another transaction holds ``table`` ACCESS EXCLUSIVE (a migration's ALTER TABLE)."""
    async with db.engine.connect() as conn:
        await conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await conn.rollback()


async def two_partners(api: Api) -> dict[str, int]:
    f = Factory(api.engine)
    acme = await f.partner("Acme Partners", "acme.example")
    other = await f.partner("Other Partners", "other.example")
    admin = await f.admin(acme, FULL, "FULL_ADMIN", name="Fiona Full")
    other_admin = await f.admin(other, OTHER, "FULL_ADMIN", name="Otto Other")
    return {"acme": acme, "other": other, "admin": admin, "other_admin": other_admin}


ME = "query Me { viewer { id email role } partner { id name } }"


# --- viewer / partner: the caller's own rows --------------------------------------------------


async def test_viewer_and_partner_never_answer_another_partners_rows(
    uncached_api: Api,
) -> None:
    api = uncached_api
    w = await two_partners(api)
    acme, other = await token_for(api, FULL), await token_for(api, OTHER)
    for _ in range(3):  # alternating tokens on the pool's one warm connection (LIFO)
        mine = data_of((await post(api, ME, token=acme)).json())
        theirs = data_of((await post(api, ME, token=other)).json())
        assert mine["viewer"]["id"] == to_global_id("Admin", w["admin"])
        assert mine["partner"] == {
            "id": to_global_id("Partner", w["acme"]),
            "name": "Acme Partners",
        }
        assert theirs["viewer"]["id"] == to_global_id("Admin", w["other_admin"])
        assert theirs["partner"]["name"] == "Other Partners"
    node = "query N($id: ID!) { node(id: $id) { id ... on Partner { name } } }"
    foreign = await post(api, node, {"id": to_global_id("Partner", w["other"])}, token=acme)
    own = await post(api, node, {"id": to_global_id("Partner", w["acme"])}, token=acme)
    assert data_of(foreign.json()) == {"node": None}
    assert data_of(own.json())["node"]["name"] == "Acme Partners"


async def test_viewer_of_an_admin_moved_to_another_partner_answers_the_new_partner_quietly(
    uncached_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The provisional run (PostgreSQL) reads the admin under its old partner: no row, so the
    lookup riding along that statement never answered, and ``viewer`` raised an uncoded error,
    logged as an unexpected error with its traceback, for an answer then thrown away."""
    api = uncached_api
    w = await two_partners(api)
    token = await token_for(api, FULL)
    data_of((await post(api, ME, token=token)).json())  # the token seen (its principal kept)
    async with api.engine.begin() as conn:
        await conn.execute(
            text("UPDATE admin SET partner_id = :p WHERE id = :a"),
            {"p": w["other"], "a": w["admin"]},
        )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=ERRORS_LOG):
        for document in (ME, "{ viewer { id } }", "{ partner { name } }"):
            response = await post(api, document, token=token)
            assert response.status_code == 200, response.text
            data = data_of(response.json())
            if "viewer" in data:
                assert data["viewer"]["id"] == to_global_id("Admin", w["admin"])
            if "partner" in data:
                assert data["partner"]["name"] == "Other Partners"
    assert not errors_logged(caplog), [r.getMessage() for r in caplog.records]


async def test_viewer_of_a_deleted_admin_is_401_without_an_error_logged(
    uncached_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = uncached_api
    w = await two_partners(api)
    token = await token_for(api, FULL)
    data_of((await post(api, "{ viewer { id } }", token=token)).json())
    async with api.engine.begin() as conn:
        await conn.execute(text("DELETE FROM api_token WHERE admin_id = :a"), {"a": w["admin"]})
        await conn.execute(text("DELETE FROM admin WHERE id = :a"), {"a": w["admin"]})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=ERRORS_LOG):
        for document in ("{ viewer { id } }", ME):
            response = await post(api, document, token=token)
            assert response.status_code == 401, response.text
            assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    assert not errors_logged(caplog), [r.getMessage() for r in caplog.records]


async def test_partner_of_a_deleted_partner_is_401_without_an_error_logged(
    uncached_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The partner's deletion takes its admins and tokens with it (ON DELETE CASCADE): the
    provisional ``partner`` read no row, so the lookup riding along it never answered."""
    api = uncached_api
    w = await two_partners(api)
    token = await token_for(api, FULL)
    data_of((await post(api, "{ partner { id } }", token=token)).json())
    node = "query N($id: ID!) { node(id: $id) { id } }"
    data_of((await post(api, node, {"id": to_global_id("Partner", w["acme"])}, token=token)).json())
    async with api.engine.begin() as conn:
        await conn.execute(text("DELETE FROM partner WHERE id = :p"), {"p": w["acme"]})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=ERRORS_LOG):
        for document, variables in (
            ("{ partner { id } }", None),
            (node, {"id": to_global_id("Partner", w["acme"])}),
        ):
            response = await post(api, document, variables, token=token)
            assert response.status_code == 401, response.text
    assert not errors_logged(caplog), [r.getMessage() for r in caplog.records]


async def test_a_deactivated_or_demoted_admins_viewer_is_current(uncached_api: Api) -> None:
    api = uncached_api
    w = await two_partners(api)
    token = await token_for(api, FULL)
    assert data_of((await post(api, ME, token=token)).json())["viewer"]["role"] == "FULL_ADMIN"
    async with api.engine.begin() as conn:
        await conn.execute(
            text("UPDATE admin SET role = 'SALES_ADMIN' WHERE id = :a"), {"a": w["admin"]}
        )
    assert data_of((await post(api, ME, token=token)).json())["viewer"]["role"] == "SALES_ADMIN"
    async with api.engine.begin() as conn:
        await conn.execute(text("UPDATE admin SET active = false WHERE id = :a"), {"a": w["admin"]})
    for document in (ME, "{ partner { id } }"):
        response = await post(api, document, token=token)
        assert response.status_code == 401, response.text
        assert "Acme" not in response.text


async def test_the_setup_mutations_answer_their_own_write(api: Api) -> None:
    """``_set_up`` reads the partner again inside its transaction, after its update (on
    SQLite through the driver connection, on PostgreSQL through SQLAlchemy's path)."""
    w = await two_partners(api)
    fields = "partner { id ownOrganization { setupState termsAcceptedAt } } userErrors { code }"
    accepted = data_of(
        await post_graphql(api, f"mutation {{ acceptTerms {{ {fields} }} }}", as_=FULL)
    )
    organization = accepted["acceptTerms"]["partner"]["ownOrganization"]
    assert organization["setupState"] == "TERMS_ACCEPTED"
    assert organization["termsAcceptedAt"] is not None
    done = data_of(
        await post_graphql(
            api, f"mutation {{ completeOrganizationSetup {{ {fields} }} }}", as_=FULL
        )
    )
    assert done["completeOrganizationSetup"]["partner"]["ownOrganization"]["setupState"] == "READY"
    state = data_of(
        await post_graphql(api, "{ partner { ownOrganization { setupState } } }", as_=FULL)
    )
    assert state["partner"]["ownOrganization"]["setupState"] == "READY"
    other = data_of(
        await post_graphql(api, "{ partner { ownOrganization { setupState } } }", as_=OTHER)
    )
    assert other["partner"]["ownOrganization"]["setupState"] == "NOT_STARTED"
    assert w["acme"] != w["other"]


# --- DATABASE_BUSY ----------------------------------------------------------------------------


@postgresql_only  # table locks and timeouts of PostgreSQL
async def test_a_provisional_lookup_refused_for_contention_is_database_busy(
    fresh_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The token's lookup of a provisional query runs on the driver connection (``run_alone``)
    and raised asyncpg's own error, without SQLAlchemy's wrapper whose ``orig`` ``contention``
    looks at: a lock_timeout there was an uncoded INTERNAL_SERVER_ERROR with a traceback."""
    await fresh_database.empty()
    async with impatient_api(fresh_database) as api:
        await two_partners(api)
        token = await token_for(api, FULL)
        for document in ("{ viewer { id } }", "{ tags { name } }"):
            data_of((await post(api, document, token=token)).json())  # seen, documents known
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=ERRORS_LOG):
            for document in ("{ viewer { id } }", "{ tags { name } }"):
                async with locked(fresh_database, "api_token"):
                    started = time.monotonic()
                    response = await post(api, document, token=token)
                    elapsed = time.monotonic() - started
                body = response.json()
                assert error_codes(body) == ["DATABASE_BUSY"], body
                assert body["errors"][0]["extensions"]["retryable"] is True
                assert "api_token" not in response.text and "SELECT" not in response.text
                # one wait for the lookup and one for settling it at most, not one more each
                assert elapsed < 3 * WAIT_MS / 1000, elapsed
        assert not errors_logged(caplog), [r.getMessage() for r in caplog.records]
        busy = [r for r in caplog.records if "database busy" in r.getMessage()]
        assert len(busy) == 2 and not any(r.exc_info for r in busy)  # one line a request
        # Once the lock is gone the same token answers again.
        assert data_of((await post(api, "{ viewer { id } }", token=token)).json())["viewer"]


@postgresql_only  # table locks and timeouts of PostgreSQL
async def test_a_statement_timeout_fails_its_field_alone_and_leaks_no_sql(
    fresh_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await fresh_database.empty()
    async with impatient_api(fresh_database, "statement_timeout", response_cache_seconds=0) as api:
        w = await two_partners(api)
        customer = await Factory(api.engine).customer(w["acme"], "Secret Customer")
        gid = to_global_id("Customer", customer)
        token = await token_for(api, FULL)
        query = "query Q($id: ID!) { viewer { email } customer(id: $id) { name } }"
        assert data_of((await post(api, query, {"id": gid}, token=token)).json())["customer"]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=ERRORS_LOG):
            async with locked(fresh_database, "customer"):
                response = await post(api, query, {"id": gid}, token=token)
        body = response.json()
        assert response.status_code == 200
        assert body["data"] == {"viewer": {"email": FULL}, "customer": None}, body
        [error] = body["errors"]
        assert error["path"] == ["customer"]
        assert error["extensions"]["code"] == "DATABASE_BUSY"
        for leak in ("SELECT", "customer.", "statement timeout", "canceling", str(customer)):
            assert leak not in error["message"], error
        busy = [r for r in caplog.records if "database busy" in r.getMessage()]
        assert len(busy) == 1 and busy[0].exc_info is None
        assert "SELECT" not in busy[0].getMessage()
        assert not errors_logged(caplog)


async def test_a_busy_mutation_writes_no_audit_entry_nor_refusal(
    fresh_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Both backends: the mutation's transaction (its audit entries with it) is rolled back,
    and no refusal is audited either (the refusal's own transaction would wait as long)."""
    from tests.test_database_busy import holding_writes

    await fresh_database.empty()
    f = Factory(fresh_database.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    customer = await f.customer(partner, "Busy Customer")
    async with impatient_api(fresh_database) as api:
        create = 'mutation { createTag(input: {name: "Gold"}) { tag { id } } }'
        tag = data_of(await post_graphql(api, create, as_=FULL))["createTag"]["tag"]["id"]
        async with fresh_database.engine.connect() as conn:
            audited = await conn.scalar(text("SELECT count(*) FROM audit_log"))
        attach = """mutation($c: ID!, $t: ID!) {
          addTagsToCustomers(input: {customerIds: [$c], tagIds: [$t]}) { changed } }"""
        variables = {"c": to_global_id("Customer", customer), "t": tag}
        with caplog.at_level(logging.INFO, logger=ERRORS_LOG):
            async with holding_writes(fresh_database, customer):
                body = await post_graphql(api, attach, variables, as_=FULL)
        assert error_codes(body) == ["DATABASE_BUSY"], body
        async with fresh_database.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM audit_log")) == audited
            assert await conn.scalar(text("SELECT count(*) FROM customer_tag")) == 0
        assert not errors_logged(caplog)


@postgresql_only  # table locks and timeouts of PostgreSQL
async def test_a_busy_refusal_after_the_commit_does_not_say_nothing_was_written(
    fresh_database: Database,
) -> None:
    """The mutation commits, then reads its caller again (``reload_principal``): a contention
    refusal of that read reached the client as 'nothing was written. Retry the request.' with
    ``retryable: true``, though the write had been committed (a retry writes it twice)."""
    await fresh_database.empty()
    async with impatient_api(fresh_database) as api:
        await two_partners(api)
        token = await token_for(api, FULL)
        create = 'mutation { createTag(input: {name: "Gold"}) { tag { id } userErrors { code } } }'
        async with fresh_database.engine.connect() as locker:
            fired: list[str] = []

            def inserted(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
                if statement.startswith("INSERT INTO tag "):
                    fired.append("inserted")

            def lock_admins(_session: Any) -> None:
                # A migration's ALTER TABLE admin arriving just after the mutation's commit.
                if fired == ["inserted"]:
                    fired.append("locked")
                    await_only(locker.execute(text("LOCK TABLE admin IN ACCESS EXCLUSIVE MODE")))

            event.listen(api.engine.sync_engine, "before_cursor_execute", inserted)
            event.listen(RequestSession, "after_commit", lock_admins)
            try:
                response = await post(api, create, token=token)
            finally:
                event.remove(RequestSession, "after_commit", lock_admins)
                event.remove(api.engine.sync_engine, "before_cursor_execute", inserted)
                await locker.rollback()
        assert fired == ["inserted", "locked"], (fired, response.text)
        async with fresh_database.engine.connect() as conn:
            tags = await conn.scalar(text("SELECT count(*) FROM tag WHERE name = 'Gold'"))
        assert tags == 1  # written
        body = response.json()
        [error] = body["errors"]
        assert error["extensions"]["code"] == "DATABASE_BUSY", body
        assert "nothing was written" not in error["message"], body
        assert error["extensions"]["retryable"] is False, body


def test_raw_driver_errors_and_sqlites_extended_busy_codes_are_contention(tmp_path: Any) -> None:
    import sqlite3

    import asyncpg

    from graph.errors import contention

    assert contention(asyncpg.exceptions.LockNotAvailableError("lock timeout"))
    assert contention(asyncpg.exceptions.QueryCanceledError("statement timeout"))
    assert not contention(asyncpg.exceptions.UniqueViolationError("duplicate"))
    # WAL: a read transaction that then writes after another connection wrote
    path = str(tmp_path / "snap.db")
    a = sqlite3.connect(path, isolation_level=None)
    a.execute("PRAGMA journal_mode=WAL")
    a.execute("CREATE TABLE t (x)")
    a.execute("INSERT INTO t VALUES (1)")
    b = sqlite3.connect(path, isolation_level=None)
    b.execute("BEGIN")
    b.execute("SELECT * FROM t").fetchall()
    a.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(sqlite3.OperationalError) as raised:
        b.execute("INSERT INTO t VALUES (3)")
    a.close()
    b.close()
    assert raised.value.sqlite_errorname == "SQLITE_BUSY_SNAPSHOT"
    assert contention(raised.value)


# --- the LIFO pool ----------------------------------------------------------------------------


@pytest.mark.parametrize("ping_idle_s", [10.0, 0.0])
@postgresql_only  # table locks and timeouts of PostgreSQL
async def test_the_connection_returned_last_killed_by_the_server_is_replaced(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch, ping_idle_s: float
) -> None:
    """LIFO hands the request the connection returned last: one PostgreSQL terminated while
    idle (a restart, ``pg_terminate_backend``) is seen closed, or fails its ping once idle past
    ``PING_IDLE_S``, and is replaced before the request's statements."""
    import asyncio

    import db.engine

    api = uncached_api
    monkeypatch.setattr(db.engine, "PING_IDLE_S", ping_idle_s)
    await two_partners(api)
    token = await token_for(api, FULL)
    for _ in range(2):
        data_of((await post(api, ME, token=token)).json())
    async with api.engine.connect() as conn:
        warm = await conn.scalar(text("SELECT pg_backend_pid()"))  # the one returned last
    killer = create_engine(api.db.url, pool=False)
    try:
        async with killer.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await killer.dispose()
    assert killed >= 1 and warm
    await asyncio.sleep(0.2)  # the loop reads the sockets' end
    for _ in range(3):
        assert data_of((await post(api, ME, token=token)).json())["viewer"]
    async with api.engine.connect() as conn:
        assert await conn.scalar(text("SELECT pg_backend_pid()")) != warm
