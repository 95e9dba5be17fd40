"""The calling customer tables of a week, keyset-paged: usage, quality and call queues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Row, and_, case, cast, func, select, tuple_, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.queries.calls.common import CUSTOMER, WEEK, WEEKLY, C, W, licensed_users
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
    from_: Any
    conditions: tuple[Any, ...]
    key: Any  # the sort value; the customer id breaks ties
    descending: bool

    @property
    def key_types(self) -> tuple[str, str]:
        return ("str" if self.key is C.name_key else "int", "int")


def _ratio_key(part: Any, whole: Any, scale: int = RATIO_SCALE) -> Any:
    return case((whole > 0, cast(part, BigInteger) * scale // whole), else_=0)


def usage_table(
    scope: Scope, *, week: datetime, now: datetime, order: CustomerUsageOrder
) -> CustomerTable:
    """Customers with Calling: an in-force CALLING line, or calls in the week."""
    cur = WEEKLY.alias("cur")
    prev = WEEKLY.alias("prev")
    licensed = licensed_users(scope, now)
    calls = func.coalesce(cur.c.calls, 0)
    seconds = func.coalesce(cur.c.duration_seconds, 0)
    active = func.coalesce(cur.c.active_users, 0)
    prev_calls = func.coalesce(prev.c.calls, 0)
    keys = {
        "CALLS": calls,
        "MINUTES": seconds,
        "ACTIVE_USERS": active,
        "CALLS_CHANGE": calls - prev_calls,
        "NAME": C.name_key,
    }
    # Driven by the customers with Calling (calls in the week, or a licence in force), not by
    # every customer of the partner: the cost follows the Calling customers only.
    with_calls = select(W.customer_id.label("customer_id")).where(
        W.partner_id == scope.partner_id, W.week_start == week
    )
    calling = union(with_calls, select(licensed.c.customer_id)).subquery("calling")
    from_ = (
        calling.join(CUSTOMER, C.id == calling.c.customer_id)
        .outerjoin(cur, and_(cur.c.customer_id == C.id, cur.c.week_start == week))
        .outerjoin(prev, and_(prev.c.customer_id == C.id, prev.c.week_start == week - WEEK))
        .outerjoin(licensed, licensed.c.customer_id == C.id)
    )
    return CustomerTable(
        columns=(
            calls.label("calls"),
            seconds.label("duration_seconds"),
            active.label("active_users"),
            func.coalesce(licensed.c.licensed, 0).label("licensed_users"),
            prev_calls.label("previous_calls"),
            func.coalesce(prev.c.duration_seconds, 0).label("previous_duration_seconds"),
            func.coalesce(prev.c.active_users, 0).label("previous_active_users"),
        ),
        from_=from_,
        conditions=(scope.customers(),),
        key=keys[order.value.rsplit("_", 1)[0]],
        descending=order.value.endswith("_DESC"),
    )


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
        from_=CUSTOMER.join(WEEKLY, and_(W.customer_id == C.id, W.week_start == week)),
        conditions=(scope.customers(), W.calls > 0),
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
        from_=CUSTOMER.join(WEEKLY, and_(W.customer_id == C.id, W.week_start == week)),
        conditions=(scope.customers(), W.queue_calls > 0),
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
    ``first`` before it, nearest first."""
    keys = [table.key, C.id]
    descending = table.descending != backward
    conditions = list(table.conditions)
    if after is not None:
        row_key, cursor_key = tuple_(*keys), tuple_(*after)
        conditions.append(row_key < cursor_key if descending else row_key > cursor_key)
    stmt: Select[Any] = (
        select(*CUSTOMER_COLUMNS, *table.columns, *[k.label(f"k{i}") for i, k in enumerate(keys)])
        .select_from(table.from_)
        .where(and_(*conditions))
        .order_by(*[k.desc() if descending else k.asc() for k in keys])
        .limit(first + 1)
    )
    rows = (await session.execute(stmt)).all()
    return Page(
        rows=rows[:first],
        keys=[(row[-2], row[-1]) for row in rows[:first]],
        has_next=len(rows) > first,
    )


async def table_count(session: AsyncSession, table: CustomerTable) -> int:
    stmt = select(func.count()).select_from(table.from_).where(and_(*table.conditions))
    return int((await session.execute(stmt)).scalar_one())
