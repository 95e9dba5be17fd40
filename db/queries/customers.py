"""The customer row as the directory and the loaders read it: its columns, rows copied into
named tuples, and customers looked up by id within a scope.

The directory's filters are in ``db.queries.customer_filters`` and its keyset pages in
``db.queries.customer_pages``; the customers' children, for the loaders, are in
``db.queries.customer_children``. They all read rows of this shape, which is why it sits beneath
them.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.driver_query import DriverQuery
from db.engine import request_connection
from db.models import Customer, CustomerStatusSpan, Subscription
from db.scope import Scope
from db.token_check import with_token_check

C = Customer.__table__.c  # type: ignore[attr-defined]
S = Subscription.__table__.c  # type: ignore[attr-defined]
SPAN = CustomerStatusSpan.__table__.c  # type: ignore[attr-defined]


CUSTOMER_COLUMNS = (
    C.id,
    C.partner_id,
    C.name,
    C.created_at,
    C.managed_by,
    C.last_admin_sign_in_at,
    C.external_id,
)


# A row copied into a named tuple (``records``): read by column name like a Row, faster.
Record = Any


@lru_cache(maxsize=256)
def _record_type(fields: tuple[str, ...]) -> Any:
    return namedtuple("Record", fields, rename=True)


def records(result: Any) -> list[Any]:
    """A result's rows as named tuples, for rows read by column name.

    A ``Row`` answers ``row.name`` through ``__getattr__`` (about 270 ns a column); a named
    tuple answers through a C descriptor (15 ns) and costs about 200 ns to make, so a row read
    for more than one column is cheaper copied. The directory page reads about 400 rows of 4-10
    columns each: 0.9 ms of its time went to these reads."""
    record = _record_type(tuple(result.keys()))
    new = tuple.__new__
    return [new(record, row) for row in result]


class DrivenRecords:
    """``records`` of a statement built once and run often (a directory page's, a walked
    page's: ``db.queries.customer_pages``), run on the request's driver connection
    (``db.driver_query``): SQLAlchemy's execution and the cache key of the statement's compiled
    form were ~0.2 ms of a page."""

    __slots__ = ("query", "record")

    def __init__(self, statement: Select[Any], *, carries_check: bool = True) -> None:
        # (its checked form carries a provisional request's token lookup: db.token_check)
        checked = with_token_check(statement) if carries_check else None
        self.query = DriverQuery(statement, checked)
        self.record = _record_type(tuple(statement.selected_columns.keys()))

    async def read(self, session: AsyncSession, params: dict[str, Any]) -> list[Record]:
        rows = await self.query.all(await request_connection(session), params)
        new, record = tuple.__new__, self.record
        return [new(record, row) for row in rows]


async def customers_by_ids(
    session: AsyncSession, *, scope: Scope, ids: Sequence[int]
) -> dict[int, Record]:
    stmt = select(*CUSTOMER_COLUMNS).where(scope.customers(), C.id.in_(list(ids)))
    rows = records(await session.execute(stmt))
    return {row.id: row for row in rows}
