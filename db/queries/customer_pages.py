"""The customer directory's keyset pages (``customers_page``): the page statement, with its
customers' relationships when the document selects them, or a walk along one status's spans or
one tag's links in name order (``db.queries.customer_walks``).

The filters' conditions are ``db.queries.customer_filters``'s, the orders and the keyset
``db.queries.customer_keys``'s; this module decides how a page reads them: one statement whose
plan the database chooses, or a walk that probes the other filters per customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import written_limit
from db.queries.customer_detail import Detail, page_details
from db.queries.customer_filters import CustomerQuery, customer_conditions
from db.queries.customer_keys import (
    CustomerOrder,
    keyset_after,
    order_key_types,
    order_keys,
    sorted_rows,
)
from db.queries.customer_parts import DetailPlan, part_columns, part_params
from db.queries.customer_walks import bounded_walk, walk_of, walked_by, walked_rows
from db.queries.customers import CUSTOMER_COLUMNS, DrivenRecords, Record
from db.scope import Scope
from db.types import UTCDateTime


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Record]
    keys: list[tuple[Any, ...]]
    has_next: bool
    # The rows' parts (``parts``: read with the page, by customer id); None when not read.
    details: dict[int, Detail] | None = None


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
    status's spans or that tag's links in name order (``walk_of``) and probes the other filters
    per customer: its cost is then set by how selective the other filters are among the walked
    customers, not by how many customers the partner has. Workload 2 of issue 8 (status +
    product + tag) at 100,000 customers on PostgreSQL: 20 ms for the plan PostgreSQL picks,
    which joins the filters' sets and sorts every match; 1.7 ms walking the tag's links, 1.0 ms
    walking the status's spans. PostgreSQL walks with a bound (``bounded_walk``), SQLite the
    plain way (``walked_rows``). Every other page is one statement whose plan the database
    chooses.

    ``parts`` (``db.queries.customer_detail``): the relationships to read with the page's
    customers, in the page's own statement (one round trip instead of two) where it has one;
    ``Page.details`` is None when they were not read.
    """
    keys, descending = order_keys(order, now)
    descending = descending != backward
    width = len(CUSTOMER_COLUMNS)
    dialect = session.get_bind().dialect.name
    parts = parts if parts is not None and parts.parts else None
    with_parts = parts
    params: dict[str, Any] = part_params(scope, now) if parts else {}
    if walked_by(scope, query, order) is None:
        page = _page_query(
            dialect, scope, query, order, descending, after is not None, first + 1, parts
        )
        params["page_now"] = now
        if after is not None:
            params["page_k0"], params["page_k1"] = after
        rows = await page.read(session, params)
    elif dialect != "postgresql":
        walk = walk_of(scope, query, order, now)
        assert walk is not None, "walked_by() said it walks"
        rows = await walked_rows(
            session, scope, walk, now, descending, after, first + 1, parts, params
        )
    else:
        rows, boundary = await bounded_walk(
            session, scope, query, order, now, descending, after, first + 1, parts, params
        )
        if boundary is not None:
            with_parts = None
            # The walk stopped at its limit with the page not full: the other filters are
            # selective, so their match sets are small. The rest comes from them.
            rows += await sorted_rows(
                session,
                [
                    *customer_conditions(scope, query, now),
                    keyset_after(keys, boundary, descending, True),
                ],
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
    ``sorted_rows`` reads them, and their ``parts`` when given (``part_columns``, last).
    Built per request, the statement and the cache key of its compiled form cost about as much
    Python as the database's answer (issue 17's profile of the directory page); read on the
    driver (``DrivenRecords``)."""
    keys, _ = order_keys(order, _PAGE_NOW)
    conditions = customer_conditions(scope, query, _PAGE_NOW)
    if paged:
        conditions.append(keyset_after(keys, _PAGE_AFTER[order_key_types(order)[0]], descending))
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    related = part_columns(dialect, parts) if parts is not None else ()
    return DrivenRecords(
        select(*CUSTOMER_COLUMNS, *labelled, *related)
        .where(and_(*conditions))
        .order_by(*[k.desc() if descending else k.asc() for k in keys])
        .limit(written_limit(limit))
    )
