"""A cache of whole query responses, correct because it is keyed by everything they depend on.

A response depends on who asks (the admin: their partner, role, assignments and custom role), on
the policies, on the data, on the document, operation and variables, and on "now". The key holds
the admin, the policy version, the data version (``db.versioning``: moved by every committed
write, by anyone, read with the token in the request's first statement), the document, operation
name and canonical variables, and the request's instant when the clock is pinned. Only queries
that succeeded are stored; mutations always execute.

With a real clock, time passes between two requests without any write, and a few values follow
it (a subscription that expires at a given second changes the customer's statuses). An entry
therefore lives at most ``PARTNER_HUB_RESPONSE_CACHE_SECONDS`` (10 s by default; 0 turns the cache
off): writes are seen at once, the passing of time at most that late. The statuses it moves are
defined in days (expiring within 7, inactive for 30), so seconds of lag are below what any
partner can act on; a deployment that wants none sets 0. Entries are kept per process in LRU
order up to ``PARTNER_HUB_RESPONSE_CACHE_MB``. A hit still spends the query's cost from the
token's rate limit, so caching never changes who gets refused.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from graphql import GraphQLError, OperationType, parse

from db.queries.admins import Principal
from graph.cost import selected_operation

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    data: bytes  # the response's ``data``, serialised
    cost: int  # the query's calculated cost, spent again on every hit
    stored_at: float
    actual: int | None = None  # the objects ``data`` holds (its actualQueryCost)


@lru_cache(maxsize=512)
def is_query(document: str, operation_name: str | None) -> bool:
    """Whether the operation the request runs is a query (parsed once per document)."""
    try:
        parsed = parse(document, no_location=True)
    except GraphQLError:
        return False
    operation = selected_operation(parsed, operation_name)
    return operation is not None and operation.operation == OperationType.QUERY


def request_key(principal: Principal, body: bytes, now: datetime | None) -> Key | None:
    """The cache key of a POSTed GraphQL body, or None when it must not be cached."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    document, name = payload.get("query"), payload.get("operationName")
    variables = payload.get("variables") or {}
    if not isinstance(document, str) or not isinstance(variables, dict):
        return None
    if name is not None and not isinstance(name, str):
        return None
    if not is_query(document, name):
        return None
    return (
        principal.admin_id,
        principal.policy_version,
        principal.data_version,
        now,
        document,
        name,
        orjson.dumps(variables, option=orjson.OPT_SORT_KEYS),
    )


class ResponseCache:
    """Responses by key, at most ``ttl_s`` old, at most ``max_bytes`` in all (LRU)."""

    def __init__(
        self, ttl_s: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.stored_at <= self.ttl_s:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry
        if entry is not None:
            self._drop(key)
        self.misses += 1
        return None

    def put(self, key: Key, data: bytes, cost: int, actual: int | None = None) -> None:
        if len(data) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = Entry(data, cost, self._clock(), actual)
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        self._bytes -= len(self._entries.pop(key).data)

    def __len__(self) -> int:
        return len(self._entries)
