"""The calling customers and usage table: customers with an in-force CALLING line, or calls in
the week.

Two disjoint parts, so that a page reads no more rows for 100,000 customers than for 1,000:

- the customers with calls in the week or the one before (at most the partner's Calling
  customers with calls): every key computed and sorted, cut to the page;
- the licensed customers without calls in either week (``QuietRows``): every numeric key is 0
  for them (calls, minutes, active users and the change in calls), so in a numeric order they
  come by customer id, an index walk of ``calling_licence_span`` that stops after the page (by
  name, a walk of the customers' name index).

``db.queries.calls.tables.table_page`` merges the two pages; the count adds the kept count of
licensed customers (``db.calls_licensed``) to the unlicensed customers with calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.calls_licensed import LicensedTotals
from db.queries.calls.common import (
    CUSTOMER,
    WEEK,
    WEEKLY,
    C,
    W,
    licensed_now,
    licensed_of,
    scoped,
)
from db.queries.calls.tables import CustomerTable, CustomerUsageOrder, keyed_from
from db.scope import Scope


def usage_table(
    scope: Scope, *, week: datetime, now: datetime, order: CustomerUsageOrder
) -> CustomerTable:
    cur = WEEKLY.alias("cur")
    prev = WEEKLY.alias("prev")
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
    # From the aggregate rows (which carry their partner): never a pass over the customers.
    recent = (
        select(W.customer_id.label("customer_id"))
        .where(scoped(W, scope), W.week_start.in_([week, week - WEEK]))
        .distinct()
        .subquery("recent")
    )
    customer = recent.c.customer_id
    licensed = licensed_of(customer, scope, now)  # one probe a customer
    from_ = recent.outerjoin(
        cur, and_(cur.c.customer_id == customer, cur.c.week_start == week)
    ).outerjoin(prev, and_(prev.c.customer_id == customer, prev.c.week_start == week - WEEK))
    return CustomerTable(
        columns=(
            calls.label("calls"),
            seconds.label("duration_seconds"),
            active.label("active_users"),
            func.coalesce(licensed, 0).label("licensed_users"),
            prev_calls.label("previous_calls"),
            func.coalesce(prev.c.duration_seconds, 0).label("previous_duration_seconds"),
            func.coalesce(prev.c.active_users, 0).label("previous_active_users"),
        ),
        from_=keyed_from(from_, customer, keys[name]),
        id=customer,
        conditions=(or_(cur.c.customer_id.is_not(None), licensed.is_not(None)),),
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
        """Their first ``first`` rows after ``after`` in the table's order (None: none), with
        the columns of ``usage_table`` (customer_id, the figures, k0 and k1)."""
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
        from_: Any = span
        if self.by_name:
            from_ = span.join(CUSTOMER, C.id == span.c.customer_id)
            keys: list[Any] = [C.name_key, span.c.customer_id]
            walked = keys
            if after is not None:
                row_key, cursor_key = tuple_(*keys), tuple_(*after)
                conditions.append(row_key < cursor_key if descending else row_key > cursor_key)
        else:
            keys = [literal(0), span.c.customer_id]
            walked = keys[1:]  # a constant orders nothing: the customer id's order
            if after is not None:
                key, customer = after
                if key == 0:
                    customer_id = span.c.customer_id
                    conditions.append(
                        customer_id < customer if descending else customer_id > customer
                    )
                elif (key < 0) == descending:  # every row of this part is before the cursor
                    return None
        zero = literal(0)
        return (
            select(
                span.c.customer_id.label("customer_id"),
                zero.label("calls"),
                zero.label("duration_seconds"),
                zero.label("active_users"),
                span.c.licensed.label("licensed_users"),
                zero.label("previous_calls"),
                zero.label("previous_duration_seconds"),
                zero.label("previous_active_users"),
                *[k.label(f"k{i}") for i, k in enumerate(keys)],
            )
            .select_from(from_)
            .where(*conditions)
            .order_by(*[k.desc() if descending else k.asc() for k in walked])
            .limit(first + 1)
        )

    async def count(self, session: AsyncSession, licensed: LicensedTotals) -> int:
        """The whole table's rows: the licensed customers (``licensed``, the scope's at
        ``now``) plus the unlicensed ones with calls in the week."""
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
        return licensed.customers + int((await session.execute(unlicensed)).scalar_one())
