"""Which customer a record's ``customer_id`` names: a GraphQL global ID or an external id.

A value that decodes as ``Customer:<pk>`` (base64url, unpadded: the ``graph.ids`` format) is
tried as a global ID first; any value is also tried as an external id. External ids are unique
per partner only, so when the command line loads records for every partner an external id that
several partners use is ambiguous and the record is rejected. A resolver bound to one partner
(the mutation) sees that partner's customers only. Answers are cached for the whole load: the
cache grows with the number of distinct customers, not with the number of records.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.ingest.records import RowError
from db.models import Customer

C = Customer.__table__.c  # type: ignore[attr-defined]
CHUNK = 500
MAX_CACHE = 1_000_000


def global_customer_pk(value: str) -> int | None:
    """The primary key inside a Customer global ID, or None when ``value`` is not one."""
    if not 4 <= len(value) <= 60:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    kind, _, pk = raw.partition(":")
    if kind != "Customer" or not pk.isdigit() or pk != str(int(pk)) or int(pk) <= 0:
        return None
    return int(pk)


class CustomerResolver:
    """Maps customer keys to (customer id, partner id), or to the reason none fits."""

    def __init__(self, partner_id: int | None = None) -> None:
        self.partner_id = partner_id
        self._cache: dict[str, tuple[int, int] | RowError] = {}
        # Keys that name a customer: the hot path reads this one directly.
        self.known: dict[str, tuple[int, int]] = {}

    def get(self, key: str) -> tuple[int, int]:
        found = self._cache[key]
        if isinstance(found, RowError):
            raise RowError(found.field, found.code, found.message)
        return found

    async def resolve(self, conn: AsyncConnection, keys: Iterable[str]) -> None:
        """Look up every key not seen yet (a few statements per batch of records)."""
        todo = {k for k in keys if k not in self._cache}
        if not todo:
            return
        if len(self._cache) > MAX_CACHE:
            self._cache.clear()
            self.known.clear()
        by_pk = {pk: key for key in todo if (pk := global_customer_pk(key)) is not None}
        by_pk_found: dict[int, tuple[int, int]] = {}
        pks = list(by_pk)
        for i in range(0, len(pks), CHUNK):
            stmt = select(C.id, C.partner_id).where(C.id.in_(pks[i : i + CHUNK]))
            if self.partner_id is not None:
                stmt = stmt.where(C.partner_id == self.partner_id)
            for customer_id, partner_id in await conn.execute(stmt):
                by_pk_found[customer_id] = (customer_id, partner_id)
        external: dict[str, list[tuple[int, int]]] = {}
        texts = sorted(todo)
        for i in range(0, len(texts), CHUNK):
            stmt = select(C.id, C.partner_id, C.external_id).where(
                C.external_id.in_(texts[i : i + CHUNK])
            )
            if self.partner_id is not None:
                stmt = stmt.where(C.partner_id == self.partner_id)
            for customer_id, partner_id, external_id in await conn.execute(stmt):
                external.setdefault(external_id, []).append((customer_id, partner_id))
        for key in todo:
            pk = global_customer_pk(key)
            matches = external.get(key, [])
            if pk is not None and pk in by_pk_found:
                self._cache[key] = self.known[key] = by_pk_found[pk]
            elif len(matches) == 1:
                self._cache[key] = self.known[key] = matches[0]
            elif matches:
                self._cache[key] = RowError(
                    "customer_id",
                    "AMBIGUOUS_CUSTOMER",
                    f"external id {key[:60]!r} is used by {len(matches)} partners: "
                    "use the customer's ID",
                )
            else:
                self._cache[key] = RowError(
                    "customer_id", "UNKNOWN_CUSTOMER", f"no customer {key[:60]!r}"
                )
