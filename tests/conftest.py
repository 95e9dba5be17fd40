"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL is skipped, with the reason printed, only where it is unreachable and ``CI`` is unset;
under CI an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db.driver_query import never_awaits
from db.settings import Settings
from graph.app import create_app
from tests.databases import Database, make_database, postgres_unreachable_reason
from tests.leak_guard import nothing_left_running, record_apps_and_pools  # noqa: F401

NOW = datetime(2026, 11, 26, tzinfo=UTC)
BACKENDS = ["sqlite", "postgresql"]
_pg_reason: dict[str, str | None] = {}


async def _require_backend(backend: str) -> None:
    if backend != "postgresql":
        return
    if "reason" not in _pg_reason:
        _pg_reason["reason"] = await postgres_unreachable_reason()
    reason = _pg_reason["reason"]
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL: {reason}")
        pytest.skip(reason)  # only when PostgreSQL is unreachable and CI is unset


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "partner-hub test backends: sqlite, postgresql "
        "(PostgreSQL skipped only if unreachable and CI unset)"
    ]


# A case that exists on PostgreSQL only (a second connection holding locks, TRUNCATE, advisory
# locks): parametrized on that backend alone rather than skipped on the other.
postgresql_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True, scope="session")
# For a case whose subject is not the database (e.g. a document refused before any SQL).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="session")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class StatementCounter:
    """Counts SQL statements sent through an engine (``before_cursor_execute``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self._active = False
        # Never awaits: statements on the driver's path run as in production, without a greenlet
        # (``db.driver_query.never_awaits``); the bound method is kept to be known by identity.
        self._listener = never_awaits(self._on_execute)
        event.listen(engine.sync_engine, "before_cursor_execute", self._listener, retval=True)

    def _on_execute(
        self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any
    ) -> tuple[str, Any]:
        if self._active:
            self.statements.append(statement)
        return statement, params

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements = []
        self._active = True
        try:
            yield self.statements
        finally:
            self._active = False

    def close(self) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._listener)


@dataclass
class Api:
    """A database, the app over it, an HTTP client and the statement counter."""

    db: Database
    settings: Settings
    client: httpx.AsyncClient
    counter: StatementCounter
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine


def make_settings(db: Database, **overrides: Any) -> Settings:
    return Settings(
        **{"database_url": db.url, "now": NOW, "secret_key": "test-secret", **overrides}
    )


@asynccontextmanager
async def app_client(
    settings: Settings, engine: AsyncEngine | None = None, base_url: str = "http://test"
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """An app and an HTTP client to it (through ASGI, so without its lifespan), the app's hub
    stopped after whatever happens. Tests make their apps here (or run their lifespan): a hub
    left running keeps its cost budget's pool, PostgreSQL connections of its own, and the
    engine it made when given none (``tests.leak_guard`` fails a test that leaks one)."""
    app = create_app(settings, engine=engine)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield app, client
    finally:
        await app.state.hub.stop()


@asynccontextmanager
async def api_over(db: Database, **overrides: Any) -> AsyncIterator[Api]:
    """The app over ``db`` with ``make_settings(db, **overrides)``, and its own counter."""
    settings = make_settings(db, **overrides)
    counter = StatementCounter(db.engine)
    try:
        async with app_client(settings, db.engine) as (_, client):
            yield Api(db=db, settings=settings, client=client, counter=counter)
    finally:
        counter.close()


@asynccontextmanager
async def instance_beside(api: Api, **overrides: Any) -> AsyncIterator[Api]:
    """Another instance over ``api``'s database (its settings but for ``overrides``, e.g. a
    clock), sharing its statement counter and tokens."""
    settings = api.settings.model_copy(update=overrides)
    async with app_client(settings, api.engine) as (_, client):
        yield Api(
            db=api.db, settings=settings, client=client, counter=api.counter, tokens=api.tokens
        )


@pytest.fixture(scope="session")
async def fresh_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    await _require_backend(backend)
    db = await make_database(backend, "partner_hub_test_fresh", str(tmp_path_factory.mktemp("f")))
    yield db
    await db.dispose()


@pytest.fixture
async def api(fresh_database: Database) -> AsyncIterator[Api]:
    """An empty, migrated database and the app over it (each test starts from nothing)."""
    await fresh_database.empty()
    async with api_over(fresh_database) as value:
        yield value


@pytest.fixture(scope="session")
async def demo_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    """The demo data set, seeded once per backend; tests using it must not write."""
    from db.seed import seed_demo
    from db.status import StatusRules

    await _require_backend(backend)
    db = await make_database(backend, "partner_hub_test_demo", str(tmp_path_factory.mktemp("d")))
    await seed_demo(db.engine, now=NOW, rules=StatusRules(7, 30), progress=False)
    yield db
    await db.dispose()


@pytest.fixture
async def demo_api(demo_database: Database) -> AsyncIterator[Api]:
    async with api_over(demo_database) as value:
        yield value


# The response cache is on in every other fixture, so the whole suite also checks that no test
# can observe a stale cached response. Tests that observe execution itself (which path a field
# took, what a resolver loaded) compare two identical requests and need it off.
@pytest.fixture
async def uncached_api(fresh_database: Database) -> AsyncIterator[Api]:
    await fresh_database.empty()
    async with api_over(fresh_database, response_cache_seconds=0) as value:
        yield value


@pytest.fixture
async def uncached_demo_api(demo_database: Database) -> AsyncIterator[Api]:
    async with api_over(demo_database, response_cache_seconds=0) as value:
        yield value
