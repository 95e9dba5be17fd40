"""Keyset cursors and Relay page info.

A cursor carries the sort key of the row it points at, the name of the list and ordering it
belongs to, and a fingerprint of the filter; it is signed (HMAC-SHA256 with the service secret),
so a cursor that was tampered with, or that comes from another query, is refused with
``INVALID_CURSOR`` instead of silently paging something else. Cursors stay valid while rows are
added, because they name a key, not an offset.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
import strawberry

from graph.errors import ErrorCode, bad_input


@strawberry.type(description="Where a page sits in its list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More rows follow this page (paging backward: true whenever `before` was "
        "given)."
    )
    has_previous_page: bool = strawberry.field(
        description="Rows precede this page (paging forward: true whenever `after` was given)."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first row; pass as `before` to page backward."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last row; pass as `after`."
    )


def fingerprint(*parts: Any) -> str:
    """A short digest of what a list was asked for (filter, search, ...)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class LazyCursors(Sequence[str]):
    """The cursors of a page's keys, each signed when first read: a page whose document asks
    only ``pageInfo`` signs two (HMAC and JSON per row showed in the dashboard's profile)."""

    __slots__ = ("_codec", "_done", "_fp", "_keys", "_name")

    def __init__(
        self, codec: CursorCodec, list_name: str, query_fp: str, keys: Sequence[tuple[Any, ...]]
    ) -> None:
        self._codec, self._name, self._fp, self._keys = codec, list_name, query_fp, keys
        self._done: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._keys)))]
        position = range(len(self._keys))[index]  # IndexError as a list's
        if position not in self._done:
            key = self._keys[position]
            self._done[position] = self._codec.encode(self._name, self._fp, key)
        return self._done[position]


def selects(info: Any, name: str) -> bool:
    """Whether the document selects ``name`` right below the field being resolved (through
    inline fragments and fragment spreads; aliases count by the field's name)."""
    raw = getattr(info, "_raw_info", info)
    fragments = raw.fragments

    def walk(selection_set: Any) -> bool:
        for node in selection_set.selections if selection_set is not None else ():
            kind = node.kind
            if kind == "field":
                if node.name.value == name:
                    return True
            elif kind == "inline_fragment":
                if walk(node.selection_set):
                    return True
            elif kind == "fragment_spread":
                fragment = fragments.get(node.name.value)
                if fragment is not None and walk(fragment.selection_set):
                    return True
        return False

    return any(walk(node.selection_set) for node in raw.field_nodes)


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]

    def encode(self, list_name: str, query_fp: str, key: tuple[Any, ...]) -> str:
        values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
        payload = orjson.dumps([list_name, query_fp, values])
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(
        self, cursor: str, list_name: str, query_fp: str, types: tuple[str, ...]
    ) -> tuple[Any, ...]:
        """The key inside ``cursor``; INVALID_CURSOR unless it was made for this very query."""
        invalid = bad_input(
            "Invalid cursor: pass an endCursor returned by this same query.",
            ErrorCode.INVALID_CURSOR,
        )
        if not isinstance(cursor, str) or len(cursor) > 2000:
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        signature, payload = raw[:16], raw[16:]
        if len(signature) < 16 or not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        try:
            name, fp, values = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            raise invalid from None
        if name != list_name or fp != query_fp or len(values) != len(types):
            raise invalid
        try:
            return tuple(_restore(v, t) for v, t in zip(values, types, strict=True))
        except (TypeError, ValueError):
            raise invalid from None


def _restore(value: Any, kind: str) -> Any:
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "int":
        if not isinstance(value, int):
            raise TypeError("int expected")
        return value
    if not isinstance(value, str):
        raise TypeError("str expected")
    return value


def check_page_size(first: int, maximum: int) -> int:
    if not 1 <= first <= maximum:
        raise bad_input(
            f"`first` must be between 1 and {maximum}, got {first}.",
            ErrorCode.INVALID_PAGE_SIZE,
            argument="first",
        )
    return first


# --- both directions (Relay cursor connections: first/after forward, last/before backward) ---

T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    """What a connection was asked for: ``size`` rows from ``cursor``, forward or backward.

    A backward page is read in the opposite order from the cursor (the same keyset, the same
    index, walked the other way) and turned around, so that every page lists its rows in the
    connection's order whichever way the client pages."""

    size: int
    cursor: str | None
    backward: bool

    def descending(self, descending: bool) -> bool:
        """The direction to read in, for a list ordered ``descending``."""
        return descending != self.backward

    def arrange(self, items: Sequence[T]) -> list[T]:
        """Rows read in reading order, in the connection's order."""
        return list(reversed(items)) if self.backward else list(items)

    def page_info(self, cursors: Sequence[str], more: bool) -> PageInfo:
        """``more``: rows beyond the page in the reading direction."""
        given = self.cursor is not None
        return PageInfo(
            has_next_page=given if self.backward else more,
            has_previous_page=more if self.backward else given,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


def given_arguments(info: Any) -> set[str]:
    """The arguments the document wrote on the field (a default is not "given")."""
    raw = getattr(info, "_raw_info", info)  # Strawberry's Info wraps graphql-core's
    return {a.name.value for node in raw.field_nodes for a in node.arguments or ()}


def paging(
    info: Any, first: int, after: str | None, last: int | None, before: str | None, maximum: int
) -> Paging:
    """The page asked for; BAD_USER_INPUT when both directions are, INVALID_PAGE_SIZE when the
    size is out of bounds."""
    backward = last is not None or before is not None
    if backward and ("first" in given_arguments(info) or after is not None):
        raise bad_input(
            "Page forward with `first`/`after` or backward with `last`/`before`, not both.",
            argument="last" if last is not None else "before",
        )
    if not backward:
        return Paging(check_page_size(first, maximum), after, False)
    size = first if last is None else last
    if not 1 <= size <= maximum:
        raise bad_input(
            f"`last` must be between 1 and {maximum}, got {size}.",
            ErrorCode.INVALID_PAGE_SIZE,
            argument="last",
        )
    return Paging(size, before, True)
