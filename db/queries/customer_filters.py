"""The customer directory's filters: what a list asks for (``CustomerQuery``), the conditions
that makes on ``customer``, and how many customers match.

Status filters read ``customer_status_span`` (see ``db.status``) with the clock's ``now``; product
filters read ``customer_product``; both are kept in step with subscriptions by the writes that
change them. A page (``db.queries.customer_pages``) and a count share these conditions; the count
is answered from the maintained counts (``db.directory_counts``) when one fits the filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import directory_counts
from db.enums import CustomerStatus, SubscriptionKind
from db.models import Customer, CustomerProduct, CustomerTag
from db.queries.customers import SPAN, C
from db.scope import Scope


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    """What to list: every field optional; lists match any value, fields combine with AND."""

    managed_by: str | None = None
    products: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    subscription_kind: str | None = None
    tag_ids: tuple[int, ...] | None = None
    search: str | None = None


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _one_of(column: Any, values: Any) -> Any:
    """``column IN values``; one value as ``column = value``, which is what both databases make
    of it anyway, without SQLAlchemy's expanding parameter: a statement with one runs on
    SQLAlchemy's path only (``db.driver_query``), and a filter on one tag, status or product
    (the usual one) then cost the page ~0.2 ms and a round trip (its token lookup could not ride
    along: ``db.token_check``)."""
    values = list(values)
    return column == values[0] if len(values) == 1 else column.in_(values)


def _filter_sets(scope: Scope, query: CustomerQuery, now: Any) -> list[tuple[Any, Any, list[Any]]]:
    """Each filter on a derived table as (its customer id column, the condition naming the
    partner or None, its own conditions).

    In probe order: the filters that usually keep the fewest customers first (a tag, then a
    status), so that a customer failing them is not probed further.
    """
    cp = CustomerProduct.__table__.c  # type: ignore[attr-defined]
    ct = CustomerTag.__table__.c  # type: ignore[attr-defined]
    sets: list[tuple[Any, Any, list[Any]]] = []
    if query.tag_ids:
        # A tag belongs to one partner (and so do the customers it is on): its id alone selects
        # the links, from the index alone.
        sets.append((ct.customer_id, None, [_one_of(ct.tag_id, query.tag_ids)]))
    kind_status: list[str] = []
    if query.subscription_kind is not None:
        kind_status = [
            CustomerStatus.TRIAL.value
            if query.subscription_kind == SubscriptionKind.TRIAL
            else CustomerStatus.ACTIVE.value
        ]
    for wanted in (list(query.statuses or ()), kind_status):
        if wanted:
            sets.append(
                (
                    SPAN.customer_id,
                    SPAN.partner_id == scope.partner_id,
                    [
                        _one_of(SPAN.status, wanted),
                        SPAN.valid_from <= now,
                        SPAN.valid_to > now,
                    ],
                )
            )
    if query.products:
        sets.append(
            (
                cp.customer_id,
                cp.partner_id == scope.partner_id,
                [_one_of(cp.product, query.products)],
            )
        )
    return sets


def _row_conditions(scope: Scope, query: CustomerQuery, probe: bool = False) -> list[Any]:
    """Conditions answered by the customer row itself (and the scope)."""
    conditions: list[Any] = [scope.customers(probe=probe)]
    if query.managed_by is not None:
        conditions.append(C.managed_by == query.managed_by)
    if any(v is not None and not v for v in (query.products, query.statuses, query.tag_ids)):
        conditions.append(false())  # an empty list has no value to match
    if query.search:
        conditions.append(C.name_key.like(_like_pattern(query.search), escape="\\"))
    return conditions


def customer_conditions(
    scope: Scope, query: CustomerQuery, now: Any, *, as_sets: bool = False
) -> list[Any]:
    """Conditions on ``customer`` for ``query`` within ``scope``.

    Without ``as_sets`` each filter is a correlated EXISTS that names the partner, so that the
    planner may join whole sets through the partner-leading indexes. A count has to visit every
    match, so with ``as_sets`` the filters become ``id IN (SELECT customer_id ...)`` over the
    indexed derived tables: the database then starts from the (usually much smaller) set of
    matching ids instead of probing every customer of the partner.
    """
    conditions = _row_conditions(scope, query, probe=not as_sets)
    for customer_id, partner, where in _filter_sets(scope, query, now):
        if partner is not None:
            where = [partner, *where]
        if as_sets:
            conditions.append(C.id.in_(select(customer_id).where(*where)))
        else:
            conditions.append(exists().where(customer_id == C.id, *where))
    return conditions


def maintained_status(scope: Scope, query: CustomerQuery) -> str | None:
    """The one status whose maintained count (``db.directory_counts``) answers ``query``: ""
    for no filter at all, None when the count has to be made (a restricted scope, a search,
    several statuses, any other filter)."""
    if scope.assigned_admin_id is not None or query.search:
        return None
    if query.managed_by is not None or query.products is not None or query.tag_ids is not None:
        return None
    wanted = set(query.statuses) if query.statuses is not None else None
    if query.subscription_kind is not None:
        kind = (
            CustomerStatus.TRIAL.value
            if query.subscription_kind == SubscriptionKind.TRIAL
            else CustomerStatus.ACTIVE.value
        )
        wanted = {kind} if wanted is None or kind in wanted else set()
    if wanted is None:
        return ""
    return next(iter(wanted)) if len(wanted) == 1 else None


async def count_customers(
    session: AsyncSession, *, scope: Scope, query: CustomerQuery, now: datetime
) -> int:
    status = maintained_status(scope, query)
    if status == "":
        return await directory_counts.customer_count(session, scope.partner_id)
    if status is not None:
        return await directory_counts.status_count(session, scope.partner_id, status, now)
    stmt = (
        select(func.count())
        .select_from(Customer)
        .where(and_(*customer_conditions(scope, query, now, as_sets=True)))
    )
    return int((await session.execute(stmt)).scalar_one())
