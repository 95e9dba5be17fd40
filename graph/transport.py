"""GraphQL over HTTP: the request envelope, media types, status codes and rate-limit headers.

Follows the GraphQL over HTTP draft: a request accepting ``application/graphql-response+json``
gets that media type and a 4xx when the response has no ``data`` (an error before execution);
with ``application/json`` (or no preference) every well-formed request is answered 200. A body
that is not a well-formed GraphQL request (too large, not JSON, a batch, another content type)
gets a JSON error with a code and a 4xx whatever the media type. A request throttled by the
query-cost rate limit gets 429 with ``Retry-After``; ``RateLimit-Limit``, ``RateLimit-Remaining``
and ``RateLimit-Reset`` (IETF draft, seconds) are sent on every response that spent budget.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import math
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from graph.errors import ErrorCode

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


class Refused(Exception):
    """A request refused before any GraphQL step: its status, code and message."""

    def __init__(self, status: int, code: ErrorCode, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def negotiate(accept: str | None) -> str:
    """The response media type for an ``Accept`` header: ``application/graphql-response+json``
    when the client ranks it at least as high as ``application/json``, else JSON."""
    best: dict[str, float] = {}
    for item in (accept or "").split(","):
        kind, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = kind.lower()
        best[kind] = max(best.get(kind, 0.0), q)
    wanted = best.get(GRAPHQL_RESPONSE, 0.0)
    if wanted > 0 and wanted >= max(best.get(JSON, 0.0), best.get("*/*", 0.0)):
        return GRAPHQL_RESPONSE
    return JSON


def error_body(code: ErrorCode, message: str, **extensions: Any) -> bytes:
    """A GraphQL response with one error and no ``data`` (nothing was executed)."""
    error = {"message": message, "extensions": {"code": code.value, **extensions}}
    return orjson.dumps({"errors": [error]})


def refusal(refused: Refused, media_type: str, request_id: str | None) -> Response:
    extensions = {"requestId": request_id} if request_id else {}
    return Response(
        error_body(refused.code, refused.message, **extensions),
        status_code=refused.status,
        media_type=media_type,
        headers=refused.headers,
    )


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes: from
    ``Content-Length`` before reading, else while reading (chunked bodies)."""
    declared = headers.get("content-length")
    too_large = Refused(
        413,
        ErrorCode.REQUEST_TOO_LARGE,
        f"The request body is larger than {limit} bytes.",
        Connection="close",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def loads(body: bytes | str) -> Any:
    """JSON, with orjson; a lone surrogate escape ("\\ud800", valid JSON but not Unicode) is
    left to the standard library, so that the argument checks refuse it with a code."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except RecursionError:
        # Nested deeper than orjson's 1,024 levels: the standard library recurses until the
        # interpreter's limit; invalid JSON here, never a failure of the server.
        raise ValueError("JSON nested too deeply.") from None


def dumps(payload: Any) -> bytes:
    """JSON of a request made here; a lone surrogate (which orjson refuses) as an escape."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return json.dumps(payload).encode()


def request_data(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The decoded GraphQL request of a POST, checked for its shape; else ``Refused``."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind != JSON:
        raise Refused(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "Send GraphQL requests as application/json.",
            Accept=JSON,
        )
    try:
        payload = loads(body)
    except ValueError:
        raise Refused(400, ErrorCode.BAD_REQUEST, "The body is not valid JSON.") from None
    if isinstance(payload, list):
        raise Refused(
            400,
            ErrorCode.BATCHING_NOT_SUPPORTED,
            "Batched requests (a JSON array) are not supported: send one operation a request.",
        )
    if not isinstance(payload, dict):
        raise Refused(400, ErrorCode.BAD_REQUEST, "The body must be a JSON object.")
    query, name = payload.get("query"), payload.get("operationName")
    variables, extensions = payload.get("variables"), payload.get("extensions")
    persisted = isinstance(extensions, dict) and "persistedQuery" in extensions
    if not (query is None and persisted) and (not isinstance(query, str) or not query):
        # Without ``query`` only a persisted query's hash names the document (graph/persisted.py).
        raise Refused(400, ErrorCode.BAD_REQUEST, "`query` must be a non-empty string.")
    if name is not None and not isinstance(name, str):
        raise Refused(400, ErrorCode.BAD_REQUEST, "`operationName` must be a string or null.")
    if variables is not None and not isinstance(variables, dict):
        raise Refused(400, ErrorCode.BAD_REQUEST, "`variables` must be an object or null.")
    if extensions is not None and not isinstance(extensions, dict):
        raise Refused(400, ErrorCode.BAD_REQUEST, "`extensions` must be an object or null.")
    return payload


def rate_limit_headers(cost: Mapping[str, Any] | None) -> dict[str, str]:
    """``RateLimit-*`` headers from a response's ``extensions.cost`` (empty when it spent none)."""
    throttle = (cost or {}).get("throttleStatus")
    if not isinstance(throttle, Mapping):
        return {}
    limit, remaining = throttle.get("maximumAvailable"), throttle.get("currentlyAvailable")
    rate = throttle.get("restoreRatePerSecond")
    if not isinstance(limit, int | float) or not isinstance(remaining, int | float):
        return {}
    reset = math.ceil((limit - remaining) / rate) if isinstance(rate, int | float) and rate else 0
    return {
        "RateLimit-Limit": str(int(limit)),
        "RateLimit-Remaining": str(max(int(remaining), 0)),
        "RateLimit-Reset": str(max(reset, 0)),
    }


def retry_after(errors: list[Any]) -> str | None:
    """``Retry-After`` (whole seconds, rounded up) when an error is the rate limit's."""
    for error in errors:
        extensions = getattr(error, "extensions", None) or {}
        if extensions.get("code") == ErrorCode.RATE_LIMITED.value:
            wait = extensions.get("retryAfterSeconds")
            return str(max(math.ceil(wait), 1) if isinstance(wait, int | float) else 1)
    return None


def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()
TRIM_AFTER_BYTES = 32 * 1024


def release_memory(body_bytes: int) -> None:
    """After a large body: hand the heap's free pages back to the system (glibc ``malloc_trim``).

    A large document leaves its copies (body, text, comment tokens) freed between blocks that
    live on (cached entries), and glibc keeps such holes mapped: RSS grew by the high-water mark
    of hostile traffic rather than what stays alive. About 1 ms for a heap of 200 MB.

    First the garbage is collected, all generations: an error raised while the document was in
    hand (a refused document, say) keeps it alive through a cycle (exception, traceback, frame),
    and with the young threshold at 100,000 new containers (``graph.app``'s GC settings) such
    cycles piled up for hundreds of requests, one large body each: RSS grew by 1.2 GB for 1,000
    one-megabyte comments. Cycles that outlive a young collection (the request was still running)
    wait for a full one; since start-up froze its objects (``gc.freeze``), a full collection
    scans only what was made since (a few milliseconds with caches full); only large bodies pay it:
    the distinct-document mix of ``bench/bench_memory.py`` grew 80 MB with young collections
    alone, 32 MB with full ones.
    """
    if body_bytes >= TRIM_AFTER_BYTES:
        gc.collect()
        if _TRIM is not None:
            _TRIM(0)
