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
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.queries.calls.common import (
    CUSTOMER,
    WEEK,
    WEEKLY,
    C,
    W,
    licensed_now,
    licensed_totals,
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
    from_: Any
    conditions: tuple[Any, ...]
    key: Any  # the sort value; the customer id breaks ties
    descending: bool
    quiet: QuietRows | None = None  # more rows, disjoint from these (the usage table)

    @property
    def key_types(self) -> tuple[str, str]:
        return ("str" if self.key is C.name_key else "int", "int")


def _ratio_key(part: Any, whole: Any, scale: int = RATIO_SCALE) -> Any:
    return case((whole > 0, cast(part, BigInteger) * scale // whole), else_=0)


def usage_table(
    scope: Scope, *, week: datetime, now: datetime, order: CustomerUsageOrder
) -> CustomerTable:
    """Customers with Calling: an in-force CALLING line at ``now``, or calls in the week.

    Two disjoint parts, so that a page reads no more rows for 100,000 customers than for 1,000:
    the customers with calls in the week or the one before (at most the partner's Calling
    customers with calls; every key computed, sorted), and the licensed customers without calls
    in either week, whose numeric keys are all 0 (``QuietRows``: an index walk that stops after
    the page)."""
    cur = WEEKLY.alias("cur")
    prev = WEEKLY.alias("prev")
    span, held = licensed_now(scope, now)
    calls = func.coalesce(cur.c.calls, 0)
    seconds = func.coalesce(cur.c.duration_seconds, 0)
    active = func.coalesce(cur.c.active_users, 0)
    prev_calls = func.coalesce(prev.c.calls, 0)
    name = order.value.rsplit("_", 1)[0]
    keys = {
        "CALLS": calls,
        "MINUTES": seconds,
        "ACTIVE_USERS": active,
        "CALLS_CHANGE": calls - prev_calls,
        "NAME": C.name_key,
    }
    weeks = [week, week - WEEK]
    recent = (
        select(W.customer_id.label("customer_id"))
        .where(W.partner_id == scope.partner_id, W.week_start.in_(weeks))
        .distinct()
        .subquery("recent")
    )
    from_ = (
        recent.join(CUSTOMER, C.id == recent.c.customer_id)
        .outerjoin(cur, and_(cur.c.customer_id == C.id, cur.c.week_start == week))
        .outerjoin(prev, and_(prev.c.customer_id == C.id, prev.c.week_start == week - WEEK))
        .outerjoin(span, and_(span.c.customer_id == C.id, held))
    )
    return CustomerTable(
        columns=(
            calls.label("calls"),
            seconds.label("duration_seconds"),
            active.label("active_users"),
            func.coalesce(span.c.licensed, 0).label("licensed_users"),
            prev_calls.label("previous_calls"),
            func.coalesce(prev.c.duration_seconds, 0).label("previous_duration_seconds"),
            func.coalesce(prev.c.active_users, 0).label("previous_active_users"),
        ),
        from_=from_,
        conditions=(
            scope.customers(),
            or_(cur.c.customer_id.is_not(None), span.c.customer_id.is_not(None)),
        ),
        key=keys[name],
        descending=order.value.endswith("_DESC"),
        quiet=QuietRows(scope=scope, week=week, now=now, by_name=name == "NAME"),
    )


@dataclass(frozen=True, slots=True)
class QuietRows:
    """The usage table's licensed customers without calls in the week or the one before."""

    scope: Scope
    week: datetime
    now: datetime
    by_name: bool

    def select(
        self, *, first: int, after: tuple[Any, ...] | None, descending: bool
    ) -> Select[Any] | None:
        """Their first ``first`` rows after ``after`` in the table's order (None: none)."""
        span, held = licensed_now(self.scope, self.now)
        called = (
            select(literal(1))
            .where(
                W.customer_id == span.c.customer_id,
                W.week_start.in_([self.week, self.week - WEEK]),
            )
            .exists()
        )
        conditions: list[Any] = [held, ~called]
        if self.by_name:
            keys: list[Any] = [C.name_key, C.id]
            if after is not None:
                row_key, cursor_key = tuple_(*keys), tuple_(*after)
                conditions.append(row_key < cursor_key if descending else row_key > cursor_key)
        else:
            # Every numeric key is 0 here: the order is the customer id's.
            keys = [literal(0), span.c.customer_id]
            if after is not None:
                key, customer = after
                if key == 0:
                    conditions.append(
                        span.c.customer_id < customer
                        if descending
                        else span.c.customer_id > customer
                    )
                elif (key < 0) == descending:  # every row of this part is before the cursor
                    return None
        walked = keys if self.by_name else keys[1:]  # a constant orders nothing
        zero = literal(0)
        return (
            select(
                *CUSTOMER_COLUMNS,
                zero.label("calls"),
                zero.label("duration_seconds"),
                zero.label("active_users"),
                span.c.licensed.label("licensed_users"),
                zero.label("previous_calls"),
                zero.label("previous_duration_seconds"),
                zero.label("previous_active_users"),
                *[k.label(f"k{i}") for i, k in enumerate(keys)],
            )
            .select_from(span.join(CUSTOMER, C.id == span.c.customer_id))
            .where(*conditions)
            .order_by(*[k.desc() if descending else k.asc() for k in walked])
            .limit(first + 1)
        )

    async def count(self, session: AsyncSession) -> int:
        """Licensed customers (kept counts) plus those with calls in the week and no licence."""
        totals = await licensed_totals(session, self.scope, self.now)
        span, held = licensed_now(self.scope, self.now)
        unlicensed = (
            select(func.count())
            .select_from(WEEKLY)
            .where(
                scoped(W, self.scope),
                W.week_start == self.week,
                ~select(literal(1)).where(span.c.customer_id == W.customer_id, held).exists(),
            )
        )
        return totals.customers + int((await session.execute(unlicensed)).scalar_one())


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
    quiet = (
        table.quiet.select(first=first, after=after, descending=descending)
        if table.quiet is not None
        else None
    )
    if quiet is not None:
        # Both parts stop after the page; the database merges them in its own collation.
        parts = union_all(select(stmt.subquery()), select(quiet.subquery())).subquery("parts")
        merged = [parts.c.k0, parts.c.k1]
        stmt = (
            select(parts)
            .order_by(*[k.desc() if descending else k.asc() for k in merged])
            .limit(first + 1)
        )
    rows = (await session.execute(stmt)).all()
    return Page(
        rows=rows[:first],
        keys=[(row[-2], row[-1]) for row in rows[:first]],
        has_next=len(rows) > first,
    )


async def table_count(session: AsyncSession, table: CustomerTable) -> int:
    if table.quiet is not None:
        return await table.quiet.count(session)
    stmt = select(func.count()).select_from(table.from_).where(and_(*table.conditions))
    return int((await session.execute(stmt)).scalar_one())
