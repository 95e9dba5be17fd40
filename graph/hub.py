"""Process-wide state of the API (``PartnerHub``: engine, sessions, services, the response
cache) and the request's authentication by bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse

from db.engine import POOL_SIZES, LanePool, create_engine, optimize, session_factory
from db.ingest import ensure_quality_thresholds, thresholds_from
from db.queries.admins import Principal, authenticate_token, hash_token
from db.queries.analytics.medians import MediansMemo
from db.queries.meta import get_or_create_secret
from db.queries.policies import load_policies, read_policy_csv, seed_policies
from db.query_lane import QueryLane
from db.settings import Settings
from db.status import StatusRules, ensure_status_rules
from db.token_check import PrincipalMemo, TokenCheck, attach
from graph.auth.permissions import DEFAULT_POLICY_PATH, Authorizer
from graph.context import Services, clock_from
from graph.cost_store import budget_for
from graph.errors import ErrorCode
from graph.response_cache import ResponseCache

# Servers starting together on a new database race to create its first rows: start again.
STARTUP_ATTEMPTS = 3


class PartnerHub:
    """Process-wide state: engine, sessions, services; started once, lazily or by lifespan."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine or create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_overflow,
            sqlite_cache_mb=settings.sqlite_cache_mb,
        )
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        # Queries on PostgreSQL run on connections kept between them (db/query_lane.py), as
        # many as the pool's size (a checkout that would wait takes one back: db.engine.LanePool).
        kept = settings.database_kept_connections
        if kept is None:
            kept = settings.database_pool_size or POOL_SIZES["postgresql"][0]
        # Only over a pool that takes kept connections back when a checkout would wait
        # (db.engine.create_engine's, on PostgreSQL): over another, one could wait its timeout.
        self.lane = (
            QueryLane(self.engine, kept)
            if kept and isinstance(self.engine.pool, LanePool)
            else None
        )
        self.services: Services | None = None
        self._lock = asyncio.Lock()
        # The principal last seen with each token: what a query runs as provisionally.
        self.principals = PrincipalMemo()
        self.response_cache = (
            ResponseCache(
                settings.response_cache_seconds,
                settings.response_cache_mb * 2**20,
                max_entries=settings.response_cache_entries,
            )
            if settings.response_cache_seconds > 0
            else None
        )

    def status_rules(self) -> StatusRules:
        return StatusRules(
            expiring_soon_days=self.settings.expiring_soon_days,
            inactivity_days=self.settings.inactivity_days,
        )

    async def start(self) -> Services:
        if self.services is not None:
            return self.services
        async with self._lock:
            if self.services is None:
                for attempt in range(1, STARTUP_ATTEMPTS + 1):
                    try:
                        self.services = await self._start()
                        break
                    except IntegrityError:
                        # Another process started on the same new database at the same moment
                        # (two servers, or a server's workers) and created the same first rows
                        # (the secret, the policies, the rules' fingerprints) first: they are
                        # there now, so starting again reads them.
                        if attempt == STARTUP_ATTEMPTS:
                            raise
                        await asyncio.sleep(0.05 * attempt)
        assert self.services is not None
        return self.services

    async def _start(self) -> Services:
        async with self.sessions() as session:
            secret = self.settings.secret_key or await get_or_create_secret(session)
            if await seed_policies(session, lines=read_policy_csv(DEFAULT_POLICY_PATH)):
                await session.commit()
            policies, version = await load_policies(session)
            await ensure_status_rules(session, self.status_rules())
        async with self.engine.begin() as connection:
            # Poor-call counts are stored: a threshold change rebuilds them.
            await ensure_quality_thresholds(connection, thresholds_from(self.settings))
        await optimize(self.engine)
        return Services(
            settings=self.settings,
            clock=clock_from(self.settings),
            secret=secret.encode(),
            authorizer=Authorizer(policies, version),
            limiter=budget_for(self.settings, secret.encode()),
            medians=MediansMemo() if self.settings.medians_memo else None,
        )

    def provisional(self, request: Request, session: AsyncSession) -> TokenCheck | None:
        """A check for a query to run as the principal last seen with its token (its lookup
        then rides along its first statement, ``db.token_check``), attached to ``session``;
        None when this process has not seen the token valid (or runs no provisional queries)."""
        if not self.settings.provisional_queries:
            return None
        token = bearer_token(request)
        if token is None:
            return None
        token_hash = hash_token(token)
        expected = self.principals.get(token_hash)
        if expected is None:
            return None
        check = TokenCheck(token_hash, expected, self.principals)
        attach(session, check)
        return check

    async def authenticate(
        self, request: Request, session: AsyncSession, connection: AsyncConnection | None = None
    ) -> Principal | JSONResponse:
        """``authenticate``, remembering the principal for the token's later queries."""
        outcome = await authenticate(request, session, connection)
        token = bearer_token(request)
        if token is not None:
            found = None if isinstance(outcome, JSONResponse) else outcome
            self.principals.put(hash_token(token), found)
        return outcome

    async def sync_policies(self, version: str, session: AsyncSession) -> None:
        """Reload the enforcer when the database's policy version moved (another instance, or
        a mutation of this one, changed a policy); read with the request's ``session``: a
        second connection per request could wait forever on a pool that requests like this one
        hold entirely (SQLite's pool has 4 connections and no overflow)."""
        services = await self.start()
        authorizer = services.authorizer
        if not _newer(version, authorizer.version):
            return
        async with self._lock:
            if _newer(version, authorizer.version):
                lines, current = await load_policies(session)
                # Never backwards: on SQLite the request reads the snapshot its token lookup
                # opened, which a change this process has loaded since may postdate; loading
                # it would hand the older policies to the requests already on the newer ones.
                if _newer(current, authorizer.version):
                    authorizer.replace_policies(lines, current)

    @asynccontextmanager
    async def request_session(self, query: bool) -> AsyncIterator[AsyncSession]:
        """The request's session: for a query on PostgreSQL, bound to an ``AUTOCOMMIT``
        connection of the lane (``db.query_lane``; closed only if a statement of the ORM began
        its transaction there, else there is nothing to close); else one of ``sessions``."""
        if not query or self.lane is None:
            async with self.sessions() as session:
                yield session
            return
        async with self.lane.connection() as connection:
            session = self.sessions(bind=connection)
            try:
                yield session
            finally:
                if session.sync_session.in_transaction():
                    await session.close()

    async def stop(self) -> None:
        if self.lane is not None:
            await self.lane.close()
        if self.services is not None:
            await self.services.limiter.close()
        if self._own_engine:
            await self.engine.dispose()


def _newer(version: str, than: str) -> bool:
    """Whether policy ``version`` is later than ``than`` (``db.queries.policies`` counts them
    up from 0; any other text is simply a different version)."""
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return version != than


UNKNOWN_TOKEN = "Unknown, revoked or deactivated token."


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": ErrorCode.UNAUTHENTICATED}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="partner-hub"'},
    )


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when malformed."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256 or " " in token:
        return None
    return token


async def authenticate(
    request: Request, session: AsyncSession, connection: AsyncConnection | None = None
) -> Principal | JSONResponse:
    """The caller behind the bearer token (read with the request's own session, on its
    ``connection`` when given), or the 401."""
    if request.headers.get("authorization") is None:
        return unauthorized("Missing Authorization: Bearer <token> header.")
    token = bearer_token(request)
    if token is None:
        return unauthorized("Malformed Authorization header: expected 'Bearer <token>'.")
    principal = await authenticate_token(session, token=token, connection=connection)
    if principal is None:
        return unauthorized(UNKNOWN_TOKEN)
    return principal
