"""The customer directory's keyset pages: the orders and their keys, the page statement, and the
walks that answer a page filtered by one status or one tag in name order (``customers_page``).

The filters' conditions are ``db.queries.customer_filters``'s; this module decides how a page
reads them: one statement whose plan the database chooses, or a walk along the status's spans or
the tag's links that probes the other filters per customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.engine import execute_core, written_limit
from db.enums import CustomerStatus, SubscriptionState
from db.models import Customer, CustomerStatusSpan, CustomerTag
from db.queries.customer_detail import Detail, DetailPlan, page_details, part_columns
from db.queries.customer_filters import (
    CustomerQuery,
    _filter_sets,
    _row_conditions,
    customer_conditions,
)
from db.queries.customers import CUSTOMER_COLUMNS, C, DrivenRecords, Record, S, records
from db.scope import Scope
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


def _order_keys(order: CustomerOrder, now: Any) -> tuple[list[Any], bool]:
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


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Record]
    keys: list[tuple[Any, ...]]
    has_next: bool
    # The rows' parts (``parts``: read with the page, by customer id); None when not read.
    details: dict[int, Detail] | None = None


# How many of the walked set's customers a page walks before it asks the match sets instead
# (PostgreSQL; see ``_bounded_walk``).
WALK_LIMIT = 2_000


async def customers_page(
    session: AsyncSession,
    *,
    scope: Scope,
    query: CustomerQuery,
    order: CustomerOrder,
    now: datetime,
    first: int,
    after: tuple[Any, ...] | None = None,
    backward: bool = False,
    parts: DetailPlan | None = None,
) -> Page:
    """One keyset page of customers (``first`` rows after the ``after`` key; ``backward``: the
    ``first`` rows before it, read against the order, nearest first).

    A page in name order filtered by one status (other than ACTIVE) or by one tag walks that
    status's spans or that tag's links in name order (``_walk``) and probes the other filters
    per customer: its cost is then set by how selective the other filters are among the walked
    customers, not by how many customers the partner has. Workload 2 of issue 8 (status +
    product + tag) at 100,000 customers on PostgreSQL: 20 ms for the plan PostgreSQL picks,
    which joins the filters' sets and sorts every match; 1.7 ms walking the tag's links, 1.0 ms
    walking the status's spans. PostgreSQL walks with a bound (``_bounded_walk``), SQLite the
    plain way (``_walked_rows``). Every other page is one statement whose plan the database
    chooses.

    ``parts`` (``db.queries.customer_detail``): the relationships to read with the page's
    customers, in the page's own statement (one round trip instead of two) where it has one;
    ``Page.details`` is None when they were not read.
    """
    keys, descending = _order_keys(order, now)
    descending = descending != backward
    width = len(CUSTOMER_COLUMNS)
    walk = _walk(scope, query, order, now)
    dialect = session.get_bind().dialect.name
    parts = parts if parts is not None and parts.parts else None
    with_parts = parts
    params: dict[str, Any] = {"partner_id": scope.partner_id, "now": now} if parts else {}
    if walk is None:
        page = _page_query(
            dialect, scope, query, order, descending, after is not None, first + 1, parts
        )
        params["page_now"] = now
        if after is not None:
            params["page_k0"], params["page_k1"] = after
        rows = await page.read(session, params)
    elif dialect != "postgresql":
        rows = await _walked_rows(
            session, scope, walk, now, descending, after, first + 1, parts, params
        )
    else:
        rows, boundary = await _bounded_walk(
            session, scope, query, order, now, descending, after, first + 1, parts, params
        )
        if boundary is not None:
            with_parts = None
            # The walk stopped at its limit with the page not full: the other filters are
            # selective, so their match sets are small. The rest comes from them.
            rows += await _sorted_rows(
                session,
                [*customer_conditions(scope, query, now), _after(keys, boundary, descending, True)],
                keys,
                descending,
                first + 1 - len(rows),
            )
    return Page(
        rows=rows[:first],
        keys=[tuple(row[width : width + len(keys)]) for row in rows[:first]],
        has_next=len(rows) > first,
        details=None if with_parts is None else page_details(rows[:first], width, with_parts),
    )


# A page that does not walk takes the instant and the cursor as parameters, so that its
# statement is built once per caller's reach, filter, order and page size (``_page_query``).
_PAGE_NOW = bindparam("page_now", type_=UTCDateTime())
_PAGE_AFTER = {
    "str": (bindparam("page_k0", type_=String()), bindparam("page_k1", type_=Integer())),
    "datetime": (bindparam("page_k0", type_=UTCDateTime()), bindparam("page_k1", type_=Integer())),
}


@lru_cache(maxsize=256)
def _page_query(
    dialect: str,
    scope: Scope,
    query: CustomerQuery,
    order: CustomerOrder,
    descending: bool,
    paged: bool,
    limit: int,
    parts: DetailPlan | None = None,
) -> DrivenRecords:
    """The first ``limit`` customers of ``query`` within ``scope`` in ``order`` (after the
    cursor's key ``page_k0``, ``page_k1`` when ``paged``) at the instant ``page_now``, as
    ``_sorted_rows`` reads them, and their ``parts`` when given (``part_columns``, last).
    Built per request, the statement and the cache key of its compiled form cost about as much
    Python as the database's answer (issue 17's profile of the directory page); read on the
    driver (``DrivenRecords``)."""
    keys, _ = _order_keys(order, _PAGE_NOW)
    conditions = customer_conditions(scope, query, _PAGE_NOW)
    if paged:
        conditions.append(_after(keys, _PAGE_AFTER[order_key_types(order)[0]], descending))
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    related = part_columns(dialect, parts) if parts is not None else ()
    return DrivenRecords(
        select(*CUSTOMER_COLUMNS, *labelled, *related)
        .where(and_(*conditions))
        .order_by(*[k.desc() if descending else k.asc() for k in keys])
        .limit(written_limit(limit))
    )


@dataclass(frozen=True)
class _Walked:
    """The set a page walks in name order: its customer id and name key columns (of an alias,
    so that probes on the same table stay apart), the conditions that select it within the
    partner, and the query that is left for the probes."""

    customer_id: Any
    name_key: Any
    where: list[Any]
    rest: CustomerQuery


# The walked tables' aliases, made once: an alias made per page copied the table's columns,
# foreign keys and event dispatchers, reference cycles that only the garbage collector freed.
_WALKED_SPAN = CustomerStatusSpan.__table__.alias("walked")  # type: ignore[attr-defined]
_WALKED_TAG = CustomerTag.__table__.alias("walked")  # type: ignore[attr-defined]


def _walk(scope: Scope, query: CustomerQuery, order: CustomerOrder, now: Any) -> _Walked | None:
    """What the page walks, if it walks: name order, no condition that needs the customer's own
    row (assigned scope, managed by, search), and one status other than ACTIVE (the status of
    most customers: walking it is walking nearly all of them, which the plain plan does) or one
    tag. A status, when there is one, is walked rather than the tag: any other status marks an
    exception, and spans are read with their "holds now" test from the index alone."""
    if (
        order not in (CustomerOrder.NAME_ASC, CustomerOrder.NAME_DESC)
        or scope.assigned_admin_id is not None
        or query.managed_by is not None
        or query.search
        or any(v is not None and not v for v in (query.products, query.statuses, query.tag_ids))
    ):
        return None
    statuses = set(query.statuses or ())
    if len(statuses) == 1 and CustomerStatus.ACTIVE.value not in statuses:
        span = _WALKED_SPAN
        return _Walked(
            span.c.customer_id,
            span.c.name_key,
            [
                span.c.partner_id == scope.partner_id,
                span.c.status == statuses.pop(),
                span.c.valid_from <= now,
                span.c.valid_to > now,
            ],
            replace(query, statuses=None),
        )
    if query.tag_ids is not None and len(query.tag_ids) == 1:
        # A tag belongs to one partner (and so do the customers it is on): its id alone selects
        # the links.
        link = _WALKED_TAG
        return _Walked(
            link.c.customer_id,
            link.c.name_key,
            [link.c.tag_id == query.tag_ids[0]],
            replace(query, tag_ids=None),
        )
    return None


def _after(
    keys: Sequence[Any], after: Sequence[Any], descending: bool, inclusive: bool = False
) -> Any:
    """The keyset condition: rows after (or from, ``inclusive``) the key ``after``."""
    row_key, cursor_key = tuple_(*keys), tuple_(*after)
    if descending:
        return row_key <= cursor_key if inclusive else row_key < cursor_key
    return row_key >= cursor_key if inclusive else row_key > cursor_key


async def _sorted_rows(
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


async def _walked_rows(
    session: AsyncSession,
    scope: Scope,
    walk: _Walked,
    now: datetime,
    descending: bool,
    after: tuple[Any, ...] | None,
    limit: int,
    parts: DetailPlan | None = None,
    params: dict[str, Any] | None = None,
) -> list[Record]:
    """A walked page on SQLite (and its customers' ``parts``, ``part_columns``): the walked set
    in name order (``ix_customer_tag_name``, ``ix_status_span_name``), each customer tested
    with one EXISTS per other filter on the customer-leading indexes, stopping when the page is
    full.

    The walked set is a subset of the partner's customers, so this visits at most as many rows
    as walking the customers' name index (the plan SQLite picks for the correlated form) and
    usually far fewer: workload 2 at 100,000 customers, 7 ms along the customers' names, 1.1 ms
    along the tag's links, 0.5 ms along the status's spans. SQLite keeps a walk going without
    help, so unlike PostgreSQL's (``_bounded_walk``) it needs no bound.
    """
    link_keys = [walk.name_key, walk.customer_id]
    where: list[Any] = [*walk.where, *_row_conditions(scope, walk.rest, probe=True)]
    for customer_id, _partner, conditions in _filter_sets(scope, walk.rest, now):
        where.append(exists().where(customer_id == walk.customer_id, *conditions))
    if after is not None:
        where.append(_after(link_keys, after, descending))
    joined = walk.customer_id.table.join(Customer, C.id == walk.customer_id)
    related = part_columns("sqlite", parts) if parts is not None else ()
    return await _sorted_rows(session, where, link_keys, descending, limit, joined, related, params)


# The walked page's statement takes the instant and the cursor as parameters, so it is built
# once per caller's reach, filter, order and page size and reused (``_walked_query``).
_WALK_NOW = bindparam("walk_now", type_=UTCDateTime())
_WALK_AFTER = (bindparam("after_k0", type_=String()), bindparam("after_k1", type_=Integer()))


async def _bounded_walk(
    session: AsyncSession,
    scope: Scope,
    query: CustomerQuery,
    order: CustomerOrder,
    now: datetime,
    descending: bool,
    after: tuple[Any, ...] | None,
    limit: int,
    parts: DetailPlan | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[list[Record], tuple[Any, ...] | None]:
    """Up to ``limit`` matches among the walked set's next ``WALK_LIMIT`` customers in name
    order (PostgreSQL; ``_walk`` says what is walked).

    The walk reads ``ix_customer_tag_name`` (tag, name key, customer) or ``ix_status_span_name``
    (partner, status, name key, customer, validity) alone and numbers the customers it passes;
    each walked customer is then tested with one EXISTS per other filter on the
    customer-leading indexes, and the statement stops as soon as the page is full (only the
    page's customers are read). ``OFFSET 0`` keeps PostgreSQL from turning a probe into a hash
    of a whole set, which is what this walk avoids. When the walk reaches its limit first, the
    customer numbered ``WALK_LIMIT`` comes back too, whatever its filters say, as the boundary
    (inclusive) to go on from; it is not a match and is not returned.
    """
    paged = after is not None
    walked = _walked_query(scope, query, order, descending, paged, limit, WALK_LIMIT, parts)
    params = {**(params or {}), "walk_now": now}
    if after is not None:
        params["after_k0"], params["after_k1"] = after
    rows = await walked.read(session, params)
    if rows and rows[-1].walked == WALK_LIMIT:
        last = rows.pop()
        return rows, (last.k0, last.k1)
    return rows, None


@lru_cache(maxsize=256)
def _walked_query(
    scope: Scope,
    query: CustomerQuery,
    order: CustomerOrder,
    descending: bool,
    paged: bool,
    limit: int,
    walk_limit: int,
    parts: DetailPlan | None = None,
) -> DrivenRecords:
    """``_bounded_walk``'s statement, with the instant (``walk_now``) and, when ``paged``, the
    cursor's key (``after_k0``, ``after_k1``) as parameters. Built per request it cost more than
    the rest of the request's Python (3 ms: SQLAlchemy's column collections, coercions and the
    cache key of its compiled form; issue 17's profile of the filtered page)."""
    walk = _walk(scope, query, order, _WALK_NOW)
    assert walk is not None, "only a walked page is built here"
    link_keys = [walk.name_key, walk.customer_id]
    ordering = [k.desc() if descending else k.asc() for k in link_keys]
    where: list[Any] = list(walk.where)
    if paged:
        where.append(_after(link_keys, _WALK_AFTER, descending))
    walked = (
        select(
            walk.customer_id.label("walked_id"),
            walk.name_key.label("k0"),
            walk.customer_id.label("k1"),
            func.row_number().over(order_by=ordering).label("walked"),
        )
        .where(*where)
        .order_by(*ordering)
        .limit(written_limit(walk_limit))
        .subquery("walk")
    )
    probes = []
    for customer_id, _partner, conditions in _filter_sets(scope, walk.rest, _WALK_NOW):
        probe = select(literal(1)).where(customer_id == walked.c.walked_id, *conditions)
        probes.append(probe.offset(0).exists())
    matched = (
        select(walked)
        .where(or_(and_(true(), *probes), walked.c.walked == walk_limit))
        .order_by(*[k.desc() if descending else k.asc() for k in (walked.c.k0, walked.c.k1)])
        .limit(written_limit(limit))
        .subquery("matched")
    )
    matched_keys = [matched.c.k0, matched.c.k1]
    related = part_columns("postgresql", parts) if parts is not None else ()
    return DrivenRecords(
        select(*CUSTOMER_COLUMNS, *matched_keys, matched.c.walked, *related)
        .select_from(matched.join(Customer, C.id == matched.c.walked_id))
        # A tag belongs to one partner; naming the partner keeps a foreign tag id from reaching
        # anything.
        .where(C.partner_id == scope.partner_id)
        .order_by(*[k.desc() if descending else k.asc() for k in matched_keys])
    )
