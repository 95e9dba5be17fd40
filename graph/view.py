"""The view of ``/graphql``: runs a request whose payload is checked, whose caller is
authenticated and whose context is built, and shapes the HTTP answer (``GraphQLView``); the
request-scope keys the endpoint and the view share. Split from ``graph.endpoint``."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from starlette.responses import Response
from strawberry import Schema
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from db.queries.customer_render import RenderedJSON
from db.token_check import PrincipalChanged
from graph.context import Context
from graph.errors import ErrorCode, is_coded
from graph.extensions import EXECUTED, unexpected_error
from graph.persisted import NO_STORE, cache_headers
from graph.response_cache import ResponseCache
from graph.response_json import dumps, encode_json
from graph.transport import GRAPHQL_RESPONSE, JSON, rate_limit_headers, retry_after

CACHE_KEY = "ph_cache_key"
SHARED_READS = "ph_shared_reads"
ETAG = "ph_etag"
CODES = "ph_error_codes"
MEDIA = "ph_media_type"
BODY_BYTES = "ph_body_bytes"

# Strawberry's view let a POST carry any operation type (a subscription fails validation here:
# the schema has none).
POST_OPERATIONS = OperationType.from_http("POST")


class GraphQLView:
    """Runs a request whose payload is decoded and checked (graph/transport.py), whose caller is
    authenticated and whose context is built, and shapes the HTTP answer: unexpected errors
    masked, ``data`` left out when nothing executed, media type, status and rate-limit headers,
    a persisted GET's caching headers, the response cache.

    This was Strawberry's ASGI view (``strawberry.asgi.GraphQL``) until issue 17: it wrapped the
    scope in a request adapter, read the body again through a replayed ``receive`` and decoded
    it a second time, built a sub-response and checked what ``graph.transport`` and
    ``graph.persisted`` had checked already (method, content type, the shape of ``query``,
    ``variables`` and ``extensions``); every request paid for it. What it did beyond that is
    here: the same ``schema.execute`` call and its refusals of the operation itself, the same
    response body, status and headers."""

    def __init__(self, schema: Schema, cache: ResponseCache | None) -> None:
        self.schema = schema
        self.cache = cache

    async def execute(self, payload: dict[str, Any], context: Context) -> ExecutionResult:
        try:
            return await self.schema.execute(
                payload.get("query"),
                variable_values=payload.get("variables"),
                context_value=context,
                operation_name=payload.get("operationName"),
                allowed_operation_types=POST_OPERATIONS,
                operation_extensions=payload.get("extensions"),
            )
        except CannotGetOperationTypeError as exc:
            reason = exc.as_http_error_reason()
        except InvalidOperationTypeError as exc:
            reason = exc.as_http_error_reason("POST")
        except MissingQueryError:
            reason = "No GraphQL query found in the request"
        # Refusals of the operation itself (none or several without a name, a name that is not
        # in the document): before execution, so without data.
        error = GraphQLError(
            reason, extensions={"code": ErrorCode.OPERATION_RESOLUTION_FAILURE.value}
        )
        return ExecutionResult(data=None, errors=[error])

    async def respond(
        self, payload: dict[str, Any], context: Context, state: dict[str, Any]
    ) -> Response:
        result = await self.execute(payload, context)
        check = context.token_check
        if check is not None and not await check.settle():
            raise PrincipalChanged("the token's principal changed")  # nothing of it is kept
        request_id = state.get("request_id")
        if result.errors:
            result.errors = [
                e if is_coded(e) else unexpected_error(e, request_id, context.committed)
                for e in result.errors
            ]
        errors = result.errors or []
        executed = bool(state.get(EXECUTED))
        answer: dict[str, Any] = {}
        if executed:  # GraphQL spec: no data when execution did not start
            answer["data"] = result.data
        if errors:
            answer["errors"] = [e.formatted for e in errors]
        if result.extensions:
            answer["extensions"] = result.extensions
        state[CODES] = [(e.extensions or {}).get("code") for e in errors]
        media = state.get(MEDIA, JSON)
        status = 200
        headers = rate_limit_headers((result.extensions or {}).get("cost"))
        wait = retry_after(errors)
        if wait is not None:
            status = 429
            headers["Retry-After"] = wait
        elif not executed and media == GRAPHQL_RESPONSE:
            status = 400
        tag = state.get(ETAG)
        if tag is not None:  # a persisted GET: only a full answer may be revalidated
            # ... and only one that depends on nothing but the data version (not the audit
            # log, which moves no version: ``Context.no_store``).
            revalidable = not errors and not context.no_store
            headers.update(cache_headers(tag) if revalidable else NO_STORE)
        key = state.get(CACHE_KEY)
        if self.cache is not None and key is not None:
            report = (result.extensions or {}).get("cost", {})
            cost = report.get("requestedQueryCost")
            storable = not context.no_store and not errors and result.data is not None
            if storable and isinstance(cost, int):
                reads, shared_at = state.get(SHARED_READS, (None, None))
                shared = shared_at if reads is not None and reads.read else None
                data = dumps(result.data)
                self.cache.put(key, data, cost, report.get("actualQueryCost"), shared)
                if "data" in answer:  # the response's data is these bytes: written once
                    answer["data"] = RenderedJSON(data, 0)
            headers["X-Partner-Hub-Cache"] = "miss"
        # (given to the constructor: ``MutableHeaders.update`` rescans the raw list per key)
        return Response(encode_json(answer), status_code=status, headers=headers, media_type=media)
