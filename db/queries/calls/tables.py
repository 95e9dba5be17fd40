"""The calling customer tables of a week, keyset-paged: usage, quality and call queues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    and_,
    case,
    cast,
    func,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.queries.calls.common import (
    CUSTOMER,
    WEEKLY,
    C,
    W,
    scoped,
)
from db.queries.customers import CUSTOMER_COLUMNS
from db.scope import Scope

RATIO_SCALE = 1_000_000  # sort keys of ratios: parts per million, integers (cursor-safe)


class CustomerUsageOrder(StrEnum):
    CALLS_DESC = "CALLS_DESC"
    CALLS_ASC = "CALLS_ASC"
    MINUTES_DESC = "MINUTES_DESC"
    MINUTES_ASC = "MINUTES_ASC"
    ACTIVE_USERS_DESC = "ACTIVE_USERS_DESC"
    ACTIVE_USERS_ASC = "ACTIVE_USERS_ASC"
    CALLS_CHANGE_DESC = "CALLS_CHANGE_DESC"
    CALLS_CHANGE_ASC = "CALLS_CHANGE_ASC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class CustomerQualityOrder(StrEnum):
    POOR_PERCENT_DESC = "POOR_PERCENT_DESC"
    POOR_PERCENT_ASC = "POOR_PERCENT_ASC"
    POOR_CALLS_DESC = "POOR_CALLS_DESC"
    TOTAL_CALLS_DESC = "TOTAL_CALLS_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class QueueCustomerOrder(StrEnum):
    ABANDONED_RATE_DESC = "ABANDONED_RATE_DESC"
    ABANDONED_RATE_ASC = "ABANDONED_RATE_ASC"
    QUEUE_CALLS_DESC = "QUEUE_CALLS_DESC"
    AVERAGE_TIME_TO_ANSWER_DESC = "AVERAGE_TIME_TO_ANSWER_DESC"
    AVERAGE_WAIT_BEFORE_ABANDON_DESC = "AVERAGE_WAIT_BEFORE_ABANDON_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


@dataclass(frozen=True, slots=True)
class CustomerTable:
    """One customer table of one week: its rows' select, conditions and sort keys."""

    columns: tuple[Any, ...]
    from_: Any  # joins ``customer`` only when the key needs it (a name)
    id: Any  # the customer id column of ``from_``
    conditions: tuple[Any, ...]
    key: Any  # the sort value; the customer id breaks ties
    descending: bool
    # More rows, disjoint from these, whose own select stops after a page (the usage table's
    # licensed customers without recent calls: ``db.queries.calls.customer_usage.QuietRows``).
    quiet: Any = None

    @property
    def key_types(self) -> tuple[str, str]:
        return ("str" if self.key is C.name_key else "int", "int")


def keyed_from(from_: Any, id_: Any, key: Any) -> Any:
    """``from_``, joined to ``customer`` when the sort key is its name."""
    return from_.join(CUSTOMER, C.id == id_) if key is C.name_key else from_


def _ratio_key(part: Any, whole: Any, scale: int = RATIO_SCALE) -> Any:
    return case((whole > 0, cast(part, BigInteger) * scale // whole), else_=0)


def quality_table(scope: Scope, *, week: datetime, order: CustomerQualityOrder) -> CustomerTable:
    """Customers with calls in the week."""
    keys = {
        "POOR_PERCENT": _ratio_key(W.poor_calls, W.calls),
        "POOR_CALLS": W.poor_calls,
        "TOTAL_CALLS": W.calls,
        "NAME": C.name_key,
    }
    return CustomerTable(
        columns=(W.calls.label("total_calls"), W.poor_calls.label("poor_calls")),
        from_=keyed_from(WEEKLY, W.customer_id, keys[order.value.rsplit("_", 1)[0]]),
        id=W.customer_id,
        conditions=(scoped(W, scope), W.week_start == week, W.calls > 0),
        key=keys[order.value.rsplit("_", 1)[0]],
        descending=order.value.endswith("_DESC"),
    )


def queue_table(scope: Scope, *, week: datetime, order: QueueCustomerOrder) -> CustomerTable:
    """Customers with queue calls in the week."""
    keys = {
        "ABANDONED_RATE": _ratio_key(W.abandoned_calls, W.queue_calls),
        "QUEUE_CALLS": W.queue_calls,
        "AVERAGE_TIME_TO_ANSWER": _ratio_key(W.answered_wait_seconds, W.answered_calls, 1000),
        "AVERAGE_WAIT_BEFORE_ABANDON": _ratio_key(
            W.abandoned_wait_seconds, W.abandoned_calls, 1000
        ),
        "NAME": C.name_key,
    }
    return CustomerTable(
        columns=(
            W.queue_calls.label("queue_calls"),
            W.answered_calls.label("answered_calls"),
            W.abandoned_calls.label("abandoned_calls"),
            W.answered_wait_seconds.label("answered_wait_seconds"),
            W.abandoned_wait_seconds.label("abandoned_wait_seconds"),
        ),
        from_=keyed_from(WEEKLY, W.customer_id, keys[order.value.rsplit("_", 1)[0]]),
        id=W.customer_id,
        conditions=(scoped(W, scope), W.week_start == week, W.queue_calls > 0),
        key=keys[order.value.rsplit("_", 1)[0]],
        descending=order.value.endswith("_DESC"),
    )


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    keys: list[tuple[Any, ...]]
    has_next: bool


async def table_page(
    session: AsyncSession,
    table: CustomerTable,
    *,
    first: int,
    after: tuple[Any, ...] | None,
    backward: bool = False,
) -> Page:
    """``first`` rows after the ``after`` key (sort value, customer id); ``backward``: the
    ``first`` before it, nearest first. The rows are found and cut to the page on the tables'
    own columns; only the page's rows then join ``customer`` (by key)."""
    keys = [table.key, table.id]
    descending = table.descending != backward
    conditions = list(table.conditions)
    if after is not None:
        row_key, cursor_key = tuple_(*keys), tuple_(*after)
        conditions.append(row_key < cursor_key if descending else row_key > cursor_key)
    found: Select[Any] = (
        select(
            table.id.label("customer_id"),
            *table.columns,
            *[k.label(f"k{i}") for i, k in enumerate(keys)],
        )
        .select_from(table.from_)
        .where(and_(*conditions))
        .order_by(*[k.desc() if descending else k.asc() for k in keys])
        .limit(first + 1)
    )
    quiet = (
        table.quiet.select(first=first, after=after, descending=descending)
        if table.quiet is not None
        else None
    )
    if quiet is not None:
        # Both parts stop after the page; the database merges them in its own collation.
        parts = union_all(select(found.subquery()), select(quiet.subquery())).subquery("parts")
        found = (
            select(parts)
            .order_by(*[k.desc() if descending else k.asc() for k in (parts.c.k0, parts.c.k1)])
            .limit(first + 1)
        )
    page = found.subquery("page")
    names = [c.name for c in table.columns]
    stmt = (
        select(*CUSTOMER_COLUMNS, *[page.c[n] for n in names], page.c.k0, page.c.k1)
        .select_from(page.join(CUSTOMER, C.id == page.c.customer_id))
        .order_by(*[k.desc() if descending else k.asc() for k in (page.c.k0, page.c.k1)])
    )
    rows: list[Any] = list((await session.execute(stmt)).all())
    return Page(
        rows=rows[:first],
        keys=[(row[-2], row[-1]) for row in rows[:first]],
        has_next=len(rows) > first,
    )


async def table_count(session: AsyncSession, table: CustomerTable) -> int:
    """The rows of a table without ``quiet`` rows (``QuietRows.count`` counts the others)."""
    if table.quiet is not None:
        raise ValueError("a table with quiet rows is counted by QuietRows.count")
    stmt = select(func.count()).select_from(table.from_).where(and_(*table.conditions))
    return int((await session.execute(stmt)).scalar_one())
