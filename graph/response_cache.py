"""A cache of whole query responses, correct because it is keyed by everything they depend on.

A response depends on who asks (the admin: their partner, role, assignments and custom role), on
the policies, on the data, on the document, operation and variables, and on "now". The key holds
the admin, the policy version, the data version (``db.versioning``: moved by every committed
write, by anyone, read with the token in the request's first statement), the document, operation
name and canonical variables, and the request's instant when the clock is pinned. A response
that read deployment-wide figures (the low-allocation medians) also records the shared version
it was computed at, and is a miss at any other. Only queries that succeeded are stored;
mutations always execute.

With a real clock, time passes between two requests without any write, and a few values follow
it (a subscription that expires at a given second changes the customer's statuses). An entry
therefore lives at most ``PARTNER_HUB_RESPONSE_CACHE_SECONDS`` (10 s by default; 0 turns the cache
off): writes are seen at once, the passing of time at most that late. The statuses it moves are
defined in days (expiring within 7, inactive for 30), so seconds of lag are below what any
partner can act on; a deployment that wants none sets 0. Entries are kept per process in LRU
order up to ``PARTNER_HUB_RESPONSE_CACHE_MB`` and ``PARTNER_HUB_RESPONSE_CACHE_ENTRIES``. A hit
still spends the query's cost from the token's rate limit, so caching never changes who gets
refused.

Keys stay small whatever the request: the document, operation name and variables enter them as
one 20-byte digest (BLAKE2b), so a megabyte of comments costs no more than ``{ viewer { id } }``.
The admin, policy version, data version and instant stay outside the digest: even a digest
collision could only return another of the same admin's own answers, never another caller's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from graphql import DocumentNode, GraphQLError, OperationType, parse
from starlette.responses import Response

from db.queries.admins import Principal
from graph.cost import cost_report, selected_operation, spend_once
from graph.documents import digest
from graph.transport import rate_limit_headers

if TYPE_CHECKING:
    from graph.context import Services

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    data: bytes  # the response's ``data``, serialised
    cost: int  # the query's calculated cost, spent again on every hit
    stored_at: float
    actual: int | None = None  # the objects ``data`` holds (its actualQueryCost)
    # The deployment's shared version the response was computed at, when it read
    # deployment-wide figures (``db.versioning``); None when it depends on none.
    shared: str | None = None


Parse = Callable[[str], DocumentNode]


def is_query(document: str, operation_name: str | None, parse_document: Parse) -> bool:
    """Whether the operation the request runs is a query (``parse_document`` caches)."""
    try:
        parsed = parse_document(document)
    except GraphQLError:
        return False
    operation = selected_operation(parsed, operation_name)
    return operation is not None and operation.operation == OperationType.QUERY


def request_key(
    principal: Principal,
    body: bytes | Mapping[str, Any],
    now: datetime | None,
    parse_document: Parse = partial(parse, no_location=True),
) -> Key | None:
    """The cache key of a POSTed GraphQL body (raw or decoded), or None when it must not be
    cached. The app passes its bounded document cache as ``parse_document``."""
    if isinstance(body, bytes):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    else:
        payload = body
    if not isinstance(payload, Mapping):
        return None
    document, name = payload.get("query"), payload.get("operationName")
    variables = payload.get("variables") or {}
    if not isinstance(document, str) or not isinstance(variables, dict):
        return None
    if name is not None and not isinstance(name, str):
        return None
    if not is_query(document, name, parse_document):
        return None
    try:
        canonical = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate: refused by the argument checks
        return None
    return (
        principal.admin_id,
        principal.policy_version,
        principal.data_version,
        now,
        digest(document, name, canonical),
    )


class ResponseCache:
    """Responses by key, at most ``ttl_s`` old, at most ``max_bytes`` of responses and
    ``max_entries`` in all (LRU); keys are of bounded size (a digest stands for the texts)."""

    def __init__(
        self,
        ttl_s: float,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Key, shared: str | None = None) -> Entry | None:
        """The entry under ``key`` unless too old or (when it read deployment-wide figures)
        computed at another shared version than ``shared``, the caller's."""
        entry = self._entries.get(key)
        fresh = entry is not None and self._clock() - entry.stored_at <= self.ttl_s
        if fresh and entry is not None and entry.shared not in (None, shared):
            fresh = False
        if entry is not None and fresh:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry
        if entry is not None:
            self._drop(key)
        self.misses += 1
        return None

    def put(
        self,
        key: Key,
        data: bytes,
        cost: int,
        actual: int | None = None,
        shared: str | None = None,
    ) -> None:
        if len(data) > self.max_bytes:
            return
        # A copy of exactly its length: orjson's output keeps its buffer's spare capacity
        # (measured with tracemalloc: twice the length), which the bound would not see.
        data = bytes(memoryview(data))
        if key in self._entries:
            self._drop(key)
        self._entries[key] = Entry(data, cost, self._clock(), actual, shared)
        self._bytes += len(data)
        while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        self._bytes -= len(self._entries.pop(key).data)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


async def cached_response(
    services: Services,
    principal: Principal,
    entry: Entry,
    media_type: str,
    state: dict[str, Any] | None = None,
) -> Response | None:
    """The response for a cache hit, or None when the token's rate limit refuses its cost (the
    ordinary path then refuses it with the proper error). ``state``: the request's scope state,
    where a provisional run that was thrown away left what it spent (``graph.cost.spend_once``):
    a rerun answered from the cache spent it a second time."""
    limiter, token_id = services.limiter, principal.token_id
    scoped = {} if state is None else state
    allowed, remaining, _ = await spend_once(limiter, scoped, token_id, entry.cost, False)
    if not allowed:
        return None
    report = cost_report(services.settings, entry.cost, remaining, entry.actual)
    extensions = orjson.dumps({"cost": report})
    return Response(
        b'{"data":' + entry.data + b',"extensions":' + extensions + b"}",
        media_type=media_type,
        headers={"X-Partner-Hub-Cache": "hit", **rate_limit_headers(report)},
    )
