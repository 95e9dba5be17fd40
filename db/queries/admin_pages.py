"""A page of the partner's admins (the ``admins`` query), keyset-paged by id.

Its four statements (forward or backward, from the start or from a cursor) are built once and run
on the request's driver connection, carrying a provisional request's token lookup
(``DrivenRecords``): one statement on PostgreSQL where a page took two (the lookup alone, then
the page's, built anew each request). Apart from ``db.queries.admins``, which the token lookup
itself imports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.admins import AD as A
from db.queries.customers import DrivenRecords


def _page(after: bool, backward: bool) -> DrivenRecords:
    conditions = [A.partner_id == bindparam("partner_id")]
    if after:
        cursor: Any = bindparam("after_id")
        conditions.append(A.id < cursor if backward else A.id > cursor)
    order = A.id.desc() if backward else A.id.asc()
    stmt = select(*A).where(*conditions).order_by(order).limit(bindparam("limit"))
    return DrivenRecords(stmt)


# (from a cursor, backward) -> the page's statement
_PAGES = {(a, b): _page(a, b) for a in (False, True) for b in (False, True)}


async def admins_page(
    session: AsyncSession,
    *,
    partner_id: int,
    first: int,
    after_id: int | None,
    backward: bool = False,
) -> tuple[list[Any], bool]:
    """Admins of a partner by id (keyset), and whether more follow; ``backward``: the ``first``
    before ``after_id``, nearest first."""
    params: dict[str, Any] = {"partner_id": partner_id, "limit": first + 1}
    if after_id is not None:
        params["after_id"] = after_id
    rows = await _PAGES[(after_id is not None, backward)].read(session, params)
    return rows[:first], len(rows) > first
