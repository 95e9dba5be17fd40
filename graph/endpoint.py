"""The GraphQL endpoint: ``/graphql`` from a checked envelope to the HTTP answer.

A request is authenticated before any resolver and runs in one session (a query on PostgreSQL
outside a transaction); a GET without a query serves GraphiQL, one with a query runs a persisted
read with its caching headers; the response cache answers what it holds; the view runs
``schema.execute`` and shapes the answer (masked errors, ``data`` left out when nothing executed,
media type, status and rate-limit headers). Apart from the application (``graph.app``), which
only routes requests here and runs the process's lifespan.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
from graphql import GraphQLError
from graphql import OperationType as Operation
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from db.engine import read_from_one_snapshot, request_connection
from db.queries.admins import Principal
from db.token_check import PrincipalChanged, TokenCheck
from db.versioning import recording_shared_reads
from graph.context import new_context
from graph.documents import known_operation
from graph.errors import ErrorCode
from graph.extensions import EXECUTED, document_cache, unexpected_error
from graph.graphiql import graphiql_page
from graph.hub import UNKNOWN_TOKEN, PartnerHub, unauthorized
from graph.persisted import (
    PersistedQueries,
    cache_headers,
    entity_tag,
    get_payload,
    matches,
    refuse_get_mutation,
)
from graph.response_cache import cached_response, request_key
from graph.schema import build_schema
from graph.transport import (
    GRAPHQL_RESPONSE,
    TRIM_AFTER_BYTES,
    Refused,
    negotiate,
    read_body,
    refusal,
    release_memory,
    request_data,
)
from graph.view import BODY_BYTES, CACHE_KEY, CODES, ETAG, MEDIA, SHARED_READS, GraphQLView

AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class GraphQLEndpoint:
    """Checks the envelope and authenticates POSTs (before any resolver), opens the request's
    session, answers from the response cache or runs the view."""

    def __init__(self, hub: PartnerHub) -> None:
        self.hub = hub
        self.documents = document_cache(hub.settings)
        self.view = GraphQLView(
            build_schema(hub.settings),
            hub.response_cache,
        )
        self.persisted = PersistedQueries(hub.settings, self.documents)
        # ETags change with the code's answers too: the schema stands for them.
        self.build = hashlib.sha256(self.view.schema.as_str().encode()).hexdigest()[:16]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state = scope.setdefault("state", {})
        media = state[MEDIA] = negotiate(request.headers.get("accept"))
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            try:
                response = await self._handle(request, state)
            except Refused as refused:
                response = refusal(refused, media, state.get("request_id"))
                state[CODES] = [refused.code.value]
            except ClientDisconnect:
                return
            except (Exception, asyncio.CancelledError) as exc:
                # Whatever escapes (a bug, a ``CancelledError`` of work the request started).
                task = asyncio.current_task()
                if started or (task is not None and task.cancelling()):
                    raise  # a response is under way, or the request itself is being cancelled
                # Never a bare text/plain 500: the same masked, coded error as inside GraphQL.
                cause = exc if isinstance(exc, Exception) else RuntimeError(type(exc).__name__)
                cause.__traceback__ = exc.__traceback__
                error = GraphQLError(str(exc), original_error=cause)
                committed = getattr(state.get("ph_context"), "committed", False)
                masked = unexpected_error(error, state.get("request_id"), committed)
                body = orjson.dumps({"errors": [masked.formatted]})
                # application/json answers every well-formed request 200 (GraphQL over HTTP);
                # the newer media type may tell a server failure by its status (503: busy).
                busy = (masked.extensions or {}).get("code") == ErrorCode.DATABASE_BUSY
                status = (503 if busy else 500) if media == GRAPHQL_RESPONSE else 200
                response = Response(body, status_code=status, media_type=media)
            if response is not None:
                await response(scope, receive, tracked)
        finally:
            # The request's objects (context, an error's traceback) go with the scope's state; a
            # large body is then collected and its pages handed back once this call has
            # returned (graph/transport.py).
            state.pop("ph_context", None)
            size = state.pop(BODY_BYTES, 0)
            if size >= TRIM_AFTER_BYTES:
                asyncio.get_running_loop().call_soon(release_memory, size)

    async def _handle(self, request: Request, state: dict[str, Any]) -> Response:
        if request.method not in ("GET", "HEAD", "POST"):
            # The route takes every method so that this refusal is coded like the others (the
            # router's own is a bare text/plain 405); PUT is not a GET that could run a read.
            raise Refused(
                405,
                ErrorCode.METHOD_NOT_ALLOWED,
                "Send GraphQL operations with POST (persisted reads with GET).",
                Allow="GET, POST",
            )
        get = request.method != "POST"
        if get and not ({"query", "extensions"} & request.query_params.keys()):
            # GraphiQL from the package (graph/graphiql.py), not Strawberry's page, which loads
            # its scripts from a CDN; a GET runs persisted reads only (graph/persisted.py).
            return self._get(request)
        # A GET runs persisted reads only (graph/persisted.py): anything else is 405 first.
        payload = get_payload(request.query_params) if get else {}
        services = await self.hub.start()
        if request.headers.get("authorization") is None:
            return unauthorized("Missing Authorization: Bearer <token> header.")
        if not get:
            # Bounded and checked before a pool connection is taken for the token.
            body = await read_body(
                request.receive, request.headers, services.settings.max_body_bytes
            )
            state[BODY_BYTES] = len(body)
            payload = request_data(request.headers.get("content-type"), body)
        # A query whose token this process has seen runs as the principal last seen with it,
        # its lookup riding along its first statement (``db.token_check``); when the lookup
        # answers another principal the request is answered again, as it always was.
        response = await self._in_session(request, state, payload, get, provisional=True)
        if isinstance(response, TokenCheck):
            # The lookup that rode along answered: the request runs as that answer (read
            # during this request, as a lookup of its own would have been), or is a 401.
            if response.fresh is None:
                return unauthorized(UNKNOWN_TOKEN)
            # (and whether it executed: a rerun refused before executing has no ``data``)
            for key in (CACHE_KEY, SHARED_READS, CODES, EXECUTED, "ph_context"):
                state.pop(key, None)
            response = await self._in_session(request, state, payload, get, response.fresh)
            assert not isinstance(response, TokenCheck)
        return response

    async def _in_session(
        self,
        request: Request,
        state: dict[str, Any],
        payload: dict[str, Any],
        get: bool,
        provisional: bool | Principal,
    ) -> Response | TokenCheck:
        """The answer; or the check of a provisional run that turned out not to be the
        token's (``provisional``: whether the request may run provisionally, or the principal
        it runs as, looked up already)."""
        services = self.hub.services
        assert services is not None
        # One session for the whole request, token lookup included (one connection; a
        # query's on PostgreSQL kept between queries, ``db.query_lane``).
        operation = None if get else known_operation(payload, self.documents)
        query = operation == Operation.QUERY and not services.settings.is_sqlite
        async with self.hub.request_session(query) as session:
            connection = None  # taken by the token lookup once the header is checked
            check = None
            if services.settings.is_sqlite:
                # Not for a document known to be a mutation: it would roll the snapshot back
                # before it writes (as an unknown one does, ``graph.mutations``).
                if operation != Operation.MUTATION:
                    read_from_one_snapshot(session)
            elif query:
                # A query on PostgreSQL runs its statements outside a transaction: at READ
                # COMMITTED each statement takes its own snapshot either way, so BEGIN and
                # ROLLBACK were two round trips that changed nothing (issue 17). A mutation,
                # and anything not surely a query, keeps its transaction. (One snapshot here
                # would cost them back: ``read_from_one_snapshot``.)
                if provisional is True:
                    check = self.hub.provisional(request, session)
                connection = await request_connection(session, AUTOCOMMIT)
            outcome: Principal
            if isinstance(provisional, Principal):
                outcome = provisional
            elif check is None:
                found = await self.hub.authenticate(request, session, connection)
                if isinstance(found, Response):
                    return found
                outcome = found
            else:
                outcome = check.expected
                check.connection = connection
            try:
                response = await self._answer(request, state, session, outcome, payload, get, check)
            except PrincipalChanged:
                assert check is not None
                return check
            except Exception:
                # A refusal computed as the provisional principal stands only if it is the
                # token's (a revoked token is a 401, not a 429).
                if check is None or await check.settle():
                    raise
                return check
            # Nothing provisional is answered before the lookup has said it is the token's.
            if check is not None and not await check.settle():
                return check
            return response

    async def _answer(
        self,
        request: Request,
        state: dict[str, Any],
        session: AsyncSession,
        outcome: Principal,
        payload: dict[str, Any],
        get: bool,
        check: TokenCheck | None,
    ) -> Response:
        services = self.hub.services
        assert services is not None
        await self.hub.sync_policies(outcome.policy_version, session)
        resolved = await self.persisted.resolve(payload, session, state[MEDIA])
        tag = None
        if get:
            refuse_get_mutation(resolved, self.documents)
            tag = state[ETAG] = entity_tag(
                outcome,
                resolved,
                services.clock.now(),
                services.settings.etag_window_seconds,
                self.build,
            )
            if matches(request.headers.get("if-none-match"), tag):
                return Response(status_code=304, headers=cache_headers(tag))
        cache = self.hub.response_cache
        if cache is not None:
            clock = services.clock
            now = clock.now() if clock.pinned else None
            key = request_key(outcome, resolved, now, self.documents.parse)
            entry = cache.get(key, outcome.shared_version) if key is not None else None
            if entry is not None:
                if check is not None and not await check.settle():
                    raise PrincipalChanged("the token's principal changed")
                hit = await cached_response(services, outcome, entry, state[MEDIA], state)
                if hit is not None:
                    if tag is not None:
                        hit.headers.update(cache_headers(tag))
                    return hit
            state[CACHE_KEY] = key
        context = new_context(services, outcome, session, state.get("request_id", "-"))
        context.request = request  # its scope's state records that execution started
        context.token_check = check
        state["ph_context"] = context
        try:
            with recording_shared_reads() as reads:
                # what the response depends on, for the response cache (``respond``)
                state[SHARED_READS] = (reads, outcome.shared_version)
                response = await self.view.respond(resolved, context, state)
        finally:
            await context.settle()
            context.close()
        # Written once the session is closed: a client slow to read its answer (or not reading
        # it) holds no pool connection meanwhile, nor an admission turn (graph/admission.py).
        return response

    def _get(self, request: Request) -> Response:
        accept = request.headers.get("accept", "")
        if "query" not in request.query_params and ("text/html" in accept or "*/*" in accept):
            return graphiql_page()
        raise Refused(
            405,
            ErrorCode.METHOD_NOT_ALLOWED,
            "Send GraphQL operations with POST (and a bearer token).",
            Allow="GET, POST",
        )
