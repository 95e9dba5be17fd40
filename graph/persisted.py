"""Persisted queries: Apollo's automatic persisted queries (APQ), GET reads by hash with ETags, and
a registered-only mode.

The protocol (Apollo's ``extensions.persistedQuery``): a client sends
``{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": H}}}`` without ``query``; an
unknown H answers ``PERSISTED_QUERY_NOT_FOUND`` (message ``PersistedQueryNotFound``, the one
Apollo's link looks for), and the client sends the document with its hash once, which registers
it. A hash that is not the SHA-256 of the document sent with it is
``PERSISTED_QUERY_HASH_MISMATCH``; nothing is stored and nothing runs.

Where documents come from, by ``PARTNER_HUB_PERSISTED_QUERIES``:

- ``auto`` (default): ordinary documents, plus APQ. What clients register lives in this process,
  within ``PARTNER_HUB_PERSISTED_CACHE_MB`` (LRU): any authenticated caller may register, so it
  must not grow without bound nor write to the database. Another instance that does not know a
  hash answers ``PERSISTED_QUERY_NOT_FOUND`` and the client registers it there: the protocol
  is made for that. Documents registered with the CLI are known to every instance.
- ``registered``: only documents registered with ``partner-hub persisted register FILE...`` run,
  sent by hash or in full; anything else is ``PERSISTED_QUERY_NOT_ALLOWED`` and clients cannot
  register (the way production front ends lock an API down: introspection too must then be
  registered to run).
- ``off``: the extension is ignored; documents are sent in full.

A persisted read may be a GET (``/graphql?extensions=...&variables=...&operationName=...``):
browsers and CDNs can then revalidate. Such a response carries ``Cache-Control: private,
no-cache`` (stored by the browser only, revalidated before each use) and an ``ETag`` that digests
what the answer depends on, as the response cache's key does (``graph.response_cache``): the
admin, the policy version, the data version, the document, operation and variables, the build,
and the time window (``PARTNER_HUB_ETAG_WINDOW_SECONDS``: statuses move with the clock without a
write, so an ETag lives at most that long). A request whose ``If-None-Match`` names it gets 304
and nothing runs. Mutations are never sent with GET (405).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from graphql import GraphQLError, OperationType
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.admins import Principal
from db.queries.persisted import registered_document
from db.settings import Settings
from graph.cost import selected_operation
from graph.documents import ByteLRU, DocumentCache
from graph.errors import ErrorCode
from graph.transport import GRAPHQL_RESPONSE, Refused

HASH = re.compile(r"[0-9a-f]{64}")
EXTENSION = "persistedQuery"
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"  # what Apollo's persisted-queries link matches


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


def persisted_extension(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The request's ``extensions.persistedQuery``, checked for its shape; None when absent."""
    extensions = payload.get("extensions")
    if not isinstance(extensions, Mapping) or EXTENSION not in extensions:
        return None
    persisted = extensions[EXTENSION]
    if not isinstance(persisted, Mapping):
        raise Refused(400, ErrorCode.BAD_REQUEST, "`extensions.persistedQuery` must be an object.")
    version = persisted.get("version")
    if type(version) is not int or version != 1:  # not true, nor 1.0: the integer 1
        raise Refused(
            400, ErrorCode.BAD_REQUEST, "Only version 1 of `extensions.persistedQuery` is known."
        )
    if not isinstance(persisted.get("sha256Hash"), str):
        raise Refused(
            400, ErrorCode.BAD_REQUEST, "`extensions.persistedQuery.sha256Hash` must be a string."
        )
    return persisted


def _refused(media: str, status: int, code: ErrorCode, message: str) -> Refused:
    # application/json answers every well-formed request 200 (GraphQL over HTTP), which is
    # also what Apollo's link expects before it sends the document; the newer media type
    # tells by the status that nothing ran.
    return Refused(status if media == GRAPHQL_RESPONSE else 200, code, message)


class PersistedQueries:
    """Turns a request's persisted hash into its document, registering where the mode allows."""

    def __init__(self, settings: Settings, documents: DocumentCache) -> None:
        self.mode = settings.persisted_queries
        self.documents = documents
        budget = settings.persisted_cache_mb * 2**20
        # Documents registered by clients (auto mode), and registered ones read from the
        # database: content-addressed, so an entry is right for as long as it is kept.
        self.learned: ByteLRU[str, str] = ByteLRU(10_000, budget)
        self.known: ByteLRU[str, str] = ByteLRU(10_000, budget)

    async def resolve(
        self, payload: dict[str, Any], session: AsyncSession, media: str
    ) -> dict[str, Any]:
        """``payload`` with the document it runs (the caller is authenticated); ``Refused``
        (coded, nothing stored) when the mode or the hash does not allow it."""
        persisted = persisted_extension(payload) if self.mode != "off" else None
        query = payload.get("query")
        if persisted is None:
            if not isinstance(query, str) or not query:
                raise Refused(400, ErrorCode.BAD_REQUEST, "`query` must be a non-empty string.")
            if self.mode == "registered" and await self._registered(session, sha256_hex(query)):
                return payload
            if self.mode == "registered":
                raise self._not_allowed(media)
            return payload
        wanted = str(persisted["sha256Hash"]).lower()
        if query is None:
            found = await self._lookup(session, wanted) if HASH.fullmatch(wanted) else None
            if found is None:
                raise _refused(media, 404, ErrorCode.PERSISTED_QUERY_NOT_FOUND, NOT_FOUND_MESSAGE)
            return {**payload, "query": found}
        if not isinstance(query, str) or not query:
            raise Refused(400, ErrorCode.BAD_REQUEST, "`query` must be a non-empty string.")
        if sha256_hex(query) != wanted:
            raise _refused(
                media,
                400,
                ErrorCode.PERSISTED_QUERY_HASH_MISMATCH,
                "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`.",
            )
        if await self._registered(session, wanted):
            return payload
        if self.mode == "registered":
            raise self._not_allowed(media)
        self._learn(wanted, query)
        return payload

    def _not_allowed(self, media: str) -> Refused:
        return _refused(
            media,
            403,
            ErrorCode.PERSISTED_QUERY_NOT_ALLOWED,
            "This API runs registered documents only (PARTNER_HUB_PERSISTED_QUERIES=registered).",
        )

    async def _lookup(self, session: AsyncSession, sha256: str) -> str | None:
        if self.mode == "auto":
            learned = self.learned.get(sha256)
            if learned is not None:
                return learned
        return await self._registered_text(session, sha256)

    async def _registered(self, session: AsyncSession, sha256: str) -> bool:
        return await self._registered_text(session, sha256) is not None

    async def _registered_text(self, session: AsyncSession, sha256: str) -> str | None:
        text = self.known.get(sha256)
        if text is None:
            text = await registered_document(session, sha256)
            if text is not None:
                self.known.put(sha256, text, 2 * len(text) + 200)
        return text

    def _learn(self, sha256: str, query: str) -> None:
        """Keep a client's document once it parses (a syntax error is reported when it runs)."""
        try:
            self.documents.parse(query)
        except GraphQLError:
            return
        self.learned.put(sha256, query, 2 * len(query) + 200)


# --- GET reads ------------------------------------------------------------------------------


def get_payload(params: Mapping[str, str]) -> dict[str, Any]:
    """The GraphQL request of a GET's query string; only persisted reads are sent with GET."""
    payload: dict[str, Any] = {}
    for name in ("variables", "extensions"):
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Refused(400, ErrorCode.BAD_REQUEST, f"`{name}` is not valid JSON.") from None
        if value is not None and not isinstance(value, dict):
            raise Refused(400, ErrorCode.BAD_REQUEST, f"`{name}` must be a JSON object.")
        payload[name] = value
    for name in ("query", "operationName"):
        if params.get(name):
            payload[name] = params[name]
    if persisted_extension(payload) is None:
        raise Refused(
            405,
            ErrorCode.METHOD_NOT_ALLOWED,
            "GET runs persisted queries only (extensions.persistedQuery); POST other operations.",
            Allow="GET, POST",
        )
    return payload


def refuse_get_mutation(payload: Mapping[str, Any], documents: DocumentCache) -> None:
    """405 for a GET whose operation is not a query (GraphQL over HTTP: GET never writes)."""
    try:
        parsed = documents.parse(str(payload["query"]))
    except GraphQLError:
        return  # reported as usual when it runs
    name = payload.get("operationName")
    operation = selected_operation(parsed, name if isinstance(name, str) else None)
    if operation is not None and operation.operation != OperationType.QUERY:
        raise Refused(
            405,
            ErrorCode.METHOD_NOT_ALLOWED,
            "Mutations are sent with POST.",
            Allow="POST",
        )


def entity_tag(
    principal: Principal,
    payload: Mapping[str, Any],
    now: datetime,
    window_s: int,
    build: str,
) -> str:
    """A weak ETag of everything a persisted read's answer depends on (module docstring)."""
    variables = payload.get("variables") or {}
    parts = [
        build,
        principal.admin_id,
        principal.policy_version,
        principal.data_version,
        principal.shared_version,  # (a persisted read may show deployment-wide figures)
        int(now.timestamp() // window_s),
        sha256_hex(str(payload["query"])),
        payload.get("operationName"),
        variables,
    ]
    try:
        raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate in the variables
        raw = repr(parts).encode()
    return 'W/"' + hashlib.blake2b(raw, digest_size=18).hexdigest() + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (weak comparison, RFC 9110 section 13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(item.strip().removeprefix("W/") == bare for item in if_none_match.split(","))


CACHE_CONTROL = "private, no-cache"
NO_STORE = {"Cache-Control": "no-store"}


def cache_headers(tag: str) -> dict[str, str]:
    """A persisted read's caching headers: the browser's own cache, revalidated before use."""
    return {"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
