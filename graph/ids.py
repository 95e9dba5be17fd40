"""Opaque Relay global IDs: base64url of ``TypeName:pk``."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from graph.errors import ErrorCode, bad_input

NODE_TYPES = (
    "Customer",
    "Subscription",
    "Tag",
    "Admin",
    "HelpdeskCase",
    "Partner",
    "WebhookEndpoint",
    "WebhookDelivery",
)
# Primary keys are 32-bit INTEGER columns (PostgreSQL rejects a larger bind value outright, SQLite
# past 64 bits): an ID beyond that was never issued, so it is malformed rather than a DB error.
MAX_PK = 2**31 - 1


@lru_cache(maxsize=65_536)
def to_global_id(type_name: str, pk: int) -> str:
    # Every row of a response gets one (a directory page: ~300); the same ids recur from
    # request to request, and a cached one costs a tenth of encoding it.
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, int]:
    """Decode a global ID into (type name, primary key); a malformed one is INVALID_ID."""
    if not isinstance(global_id, str) or not 0 < len(global_id) <= 200:
        raise bad_input("Malformed ID.", ErrorCode.INVALID_ID)
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
        type_name, _, pk = raw.partition(":")
        value = int(pk)
    except (ValueError, binascii.Error, UnicodeError):
        raise bad_input(f"Malformed ID {global_id[:60]!r}.", ErrorCode.INVALID_ID) from None
    if type_name not in NODE_TYPES or not 0 < value <= MAX_PK or str(value) != pk:
        raise bad_input(f"Malformed ID {global_id[:60]!r}.", ErrorCode.INVALID_ID)
    return type_name, value


def pk_of(global_id: str, expected: str, field: str = "id") -> int:
    """The primary key of a global ID that must name an ``expected`` object."""
    type_name, pk = from_global_id(global_id)
    if type_name != expected:
        raise bad_input(
            f"{field} must be the ID of a {expected}, not of a {type_name}.", ErrorCode.INVALID_ID
        )
    return pk
