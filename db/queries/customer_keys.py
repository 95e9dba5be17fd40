"""The customer directory's orders and keyset: the order keys, the cursor's key types, the
keyset condition and the plain sorted read (``db.queries.customer_pages`` and
``db.queries.customer_walks`` read pages with them)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    and_,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.engine import execute_core
from db.enums import SubscriptionState
from db.queries.customers import CUSTOMER_COLUMNS, C, Record, S, records
from db.types import END_OF_TIME, UTCDateTime


class CustomerOrder(StrEnum):
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    CREATED_AT_DESC = "CREATED_AT_DESC"
    END_DATE_ASC = "END_DATE_ASC"


def nearest_end(now: Any) -> Any:
    """End date of the customer's soonest-ending in-force subscription (open end when none)."""
    sub = (
        select(func.min(S.end_date))
        .where(
            S.customer_id == C.id,
            S.state == SubscriptionState.ACTIVE.value,
            S.start_date <= now,
            S.end_date > now,
        )
        .scalar_subquery()
    )
    return func.coalesce(sub, literal(END_OF_TIME, UTCDateTime()))


def order_keys(order: CustomerOrder, now: Any) -> tuple[list[Any], bool]:
    """Key expressions (the last is always the id) and whether they descend."""
    if order in (CustomerOrder.NAME_ASC, CustomerOrder.NAME_DESC):
        return [C.name_key, C.id], order is CustomerOrder.NAME_DESC
    if order in (CustomerOrder.CREATED_AT_ASC, CustomerOrder.CREATED_AT_DESC):
        return [C.created_at, C.id], order is CustomerOrder.CREATED_AT_DESC
    return [nearest_end(now), C.id], False


def order_key_types(order: CustomerOrder) -> tuple[str, str]:
    """How each key value travels in a cursor ('str', 'datetime' or 'int')."""
    if order in (CustomerOrder.NAME_ASC, CustomerOrder.NAME_DESC):
        return ("str", "int")
    return ("datetime", "int")


def keyset_after(
    keys: Sequence[Any], after: Sequence[Any], descending: bool, inclusive: bool = False
) -> Any:
    """The keyset condition: rows after (or from, ``inclusive``) the key ``after``."""
    row_key, cursor_key = tuple_(*keys), tuple_(*after)
    if descending:
        return row_key <= cursor_key if inclusive else row_key < cursor_key
    return row_key >= cursor_key if inclusive else row_key > cursor_key


async def sorted_rows(
    session: AsyncSession,
    conditions: list[Any],
    keys: list[Any],
    descending: bool,
    limit: int,
    from_: Any = None,
    related: Sequence[Any] = (),
    params: dict[str, Any] | None = None,
) -> list[Record]:
    """The first ``limit`` customers (and their keys, ``k0``..., then the ``related`` columns)
    in ``keys`` order, from ``customer`` or from the join ``from_``."""
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    stmt: Select[Any] = select(*CUSTOMER_COLUMNS, *labelled, *related)
    if from_ is not None:
        stmt = stmt.select_from(from_)
    stmt = (
        stmt.where(and_(*conditions))
        .order_by(*[k.desc() if descending else k.asc() for k in keys])
        .limit(limit)
    )
    return records(await execute_core(session, stmt, params or None))
