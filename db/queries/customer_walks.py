"""The walks that answer a directory page filtered by one status or one tag in name order: the
status's spans or the tag's links in name order, the other filters probed per customer
(``db.queries.customer_pages`` decides when a page walks)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
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
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import written_limit
from db.enums import CustomerStatus
from db.models import Customer, CustomerStatusSpan, CustomerTag
from db.queries.customer_filters import (
    CustomerQuery,
    _filter_sets,
    _row_conditions,
)
from db.queries.customer_keys import CustomerOrder, keyset_after, sorted_rows
from db.queries.customer_parts import DetailPlan, part_columns
from db.queries.customers import CUSTOMER_COLUMNS, C, DrivenRecords, Record
from db.scope import Scope
from db.types import UTCDateTime

# How many of the walked set's customers a page walks before it asks the match sets instead
# (PostgreSQL; see ``bounded_walk``).
WALK_LIMIT = 2_000


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


def walked_by(scope: Scope, query: CustomerQuery, order: CustomerOrder) -> str | None:
    """What the page walks, "status" or "tag", or None when it does not walk: name order, no
    condition that needs the customer's own row (assigned scope, managed by, search), and one
    status other than ACTIVE (the status of most customers: walking it is walking nearly all of
    them, which the plain plan does) or one tag. A status, when there is one, is walked rather
    than the tag: any other status marks an exception, and spans are read with their "holds
    now" test from the index alone. Decided without building the walk's conditions
    (SQLAlchemy expressions, ~2 % of a filtered page's CPU), which only SQLite's walk reads per
    request (``walk_of``)."""
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
        return "status"
    if query.tag_ids is not None and len(query.tag_ids) == 1:
        return "tag"
    return None


def walk_of(scope: Scope, query: CustomerQuery, order: CustomerOrder, now: Any) -> _Walked | None:
    """What the page walks (``walked_by``), with its conditions at the instant ``now``."""
    kind = walked_by(scope, query, order)
    if kind == "status":
        (status,) = set(query.statuses or ())
        span = _WALKED_SPAN
        return _Walked(
            span.c.customer_id,
            span.c.name_key,
            [
                span.c.partner_id == scope.partner_id,
                span.c.status == status,
                span.c.valid_from <= now,
                span.c.valid_to > now,
            ],
            replace(query, statuses=None),
        )
    if kind == "tag" and query.tag_ids is not None:
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


async def walked_rows(
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
    help, so unlike PostgreSQL's (``bounded_walk``) it needs no bound.
    """
    link_keys = [walk.name_key, walk.customer_id]
    where: list[Any] = [*walk.where, *_row_conditions(scope, walk.rest, probe=True)]
    for customer_id, _partner, conditions in _filter_sets(scope, walk.rest, now):
        where.append(exists().where(customer_id == walk.customer_id, *conditions))
    if after is not None:
        where.append(keyset_after(link_keys, after, descending))
    joined = walk.customer_id.table.join(Customer, C.id == walk.customer_id)
    related = part_columns("sqlite", parts) if parts is not None else ()
    return await sorted_rows(session, where, link_keys, descending, limit, joined, related, params)


# The walked page's statement takes the instant and the cursor as parameters, so it is built
# once per caller's reach, filter, order and page size and reused (``_walked_query``).
_WALK_NOW = bindparam("walk_now", type_=UTCDateTime())
_WALK_AFTER = (bindparam("after_k0", type_=String()), bindparam("after_k1", type_=Integer()))


async def bounded_walk(
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
    order (PostgreSQL; ``walk_of`` says what is walked).

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
    """``bounded_walk``'s statement, with the instant (``walk_now``) and, when ``paged``, the
    cursor's key (``after_k0``, ``after_k1``) as parameters. Built per request it cost more than
    the rest of the request's Python (3 ms: SQLAlchemy's column collections, coercions and the
    cache key of its compiled form; issue 17's profile of the filtered page)."""
    walk = walk_of(scope, query, order, _WALK_NOW)
    assert walk is not None, "only a walked page is built here"
    link_keys = [walk.name_key, walk.customer_id]
    ordering = [k.desc() if descending else k.asc() for k in link_keys]
    where: list[Any] = list(walk.where)
    if paged:
        where.append(keyset_after(link_keys, _WALK_AFTER, descending))
    # Which LIMITs make PostgreSQL keep the statement's generic plan depends on the walk
    # (``bench.plans``): along a tag's links, written into the text (passed, its generic plan,
    # costed for unknown limits at 5,498 against 3,201, never won); along a status's spans,
    # passed (written in, the spans' validity at the instant's parameter tipped it the other
    # way). Either way planned anew at every execution cost 0.5-0.9 ms of bind a page.
    along_tag = walk.customer_id.table is _WALKED_TAG
    limit_of: Any = written_limit if along_tag else int
    walked = (
        select(
            walk.customer_id.label("walked_id"),
            walk.name_key.label("k0"),
            walk.customer_id.label("k1"),
            func.row_number().over(order_by=ordering).label("walked"),
        )
        .where(*where)
        .order_by(*ordering)
        .limit(limit_of(walk_limit))
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
        .limit(limit_of(limit))
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
