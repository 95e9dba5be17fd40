"""The rows of the five license sections of one product, keyset-paged (one statement a page).

Every section starts from a CTE of its rows — in-force subscriptions with the product (one row
each, sums over the product's lines), or for the overage section the in-force product lines
with assigned > purchased — restricted to the caller's scope. The KPIs (``summaries``)
aggregate it; a page orders it by the requested column and cuts it by keyset. Snapshot-derived
columns (weekly changes, 3-month peak) are computed for the page's rows only, unless the page
is sorted by one of them.

A page sorted by a column of the section's own rows is cut before anything is joined, so that
the default orders walk an index in the page's order and stop after its rows: the date
sections (partner, product, date, subscription), overage lines ``ix_license_line_overage``
(partner, product, assigned - purchased, subscription, license type), and low allocation's
default order ``ix_license_product_total_low`` (partner, product, band, state, allocation
tenths, subscription) band by band, merged (``db.queries.analytics.low_page``). Low
allocation's other orders sort its flagged rows, read from that index alone; both fetch the
page's full rows by key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.license_totals import LICENSE_PRODUCT_TOTAL
from db.models import Customer, LicenseLine, Subscription
from db.queries.analytics.common import (
    TOTAL_COLUMNS,
    AnyScope,
    BoundMedians,
    BoundScope,
    C,
    L,
    Medians,
    S,
    Section,
    T,
    Times,
    in_force,
    low_subscriptions,
    product_subscriptions,
    scoped,
    section_conditions,
    snapshot_changes,
)
from db.queries.analytics.kpis import section_medians
from db.queries.analytics.low_page import full_rows, low_in_order
from db.queries.analytics.measures import tenths_sql
from db.queries.analytics.rows import RowPage, license_row
from db.scope import Scope


class RowColumn(StrEnum):
    """Every sortable row column; each section allows the ones of its rows (``COLUMNS``)."""

    CUSTOMER_NAME = "CUSTOMER_NAME"
    SUBSCRIPTION_ID = "SUBSCRIPTION_ID"
    LICENSE_TYPE = "LICENSE_TYPE"
    TOTAL_LICENSES = "TOTAL_LICENSES"
    ASSIGNED = "ASSIGNED"
    USED = "USED"
    AVAILABLE = "AVAILABLE"
    ALLOCATION_PERCENT = "ALLOCATION_PERCENT"
    USAGE_PERCENT = "USAGE_PERCENT"
    USAGE_WHEN_ASSIGNED_PERCENT = "USAGE_WHEN_ASSIGNED_PERCENT"
    OVERAGE = "OVERAGE"
    DAYS_SINCE_ADDED = "DAYS_SINCE_ADDED"
    MONTHS_SINCE_ADDED = "MONTHS_SINCE_ADDED"
    DAYS_UNTIL_EXPIRY = "DAYS_UNTIL_EXPIRY"
    DAYS_UNTIL_RENEWAL = "DAYS_UNTIL_RENEWAL"
    MONTHS_REMAINING = "MONTHS_REMAINING"
    AUTO_RENEW = "AUTO_RENEW"
    SIZE_BAND = "SIZE_BAND"
    WEEKLY_ALLOCATION_CHANGE = "WEEKLY_ALLOCATION_CHANGE"
    WEEKLY_USAGE_CHANGE = "WEEKLY_USAGE_CHANGE"
    USAGE_LAST_3_MONTHS = "USAGE_LAST_3_MONTHS"


R = RowColumn
_COMMON = (
    R.CUSTOMER_NAME,
    R.SUBSCRIPTION_ID,
    R.TOTAL_LICENSES,
    R.ASSIGNED,
    R.USED,
    R.AVAILABLE,
    R.ALLOCATION_PERCENT,
    R.USAGE_PERCENT,
)
_CHANGES = (R.WEEKLY_ALLOCATION_CHANGE, R.WEEKLY_USAGE_CHANGE)
COLUMNS: dict[Section, tuple[RowColumn, ...]] = {
    Section.RECENTLY_ADDED: (*_COMMON, R.DAYS_SINCE_ADDED, *_CHANGES),
    Section.ABOUT_TO_EXPIRE: (*_COMMON, R.DAYS_UNTIL_EXPIRY, R.USAGE_LAST_3_MONTHS, *_CHANGES),
    Section.ABOUT_TO_RENEW: (*_COMMON, R.DAYS_UNTIL_RENEWAL, R.USAGE_LAST_3_MONTHS, *_CHANGES),
    Section.LOW_ALLOCATION: (
        *_COMMON,
        R.MONTHS_SINCE_ADDED,
        R.USAGE_WHEN_ASSIGNED_PERCENT,
        R.SIZE_BAND,
        R.WEEKLY_ALLOCATION_CHANGE,
    ),
    Section.OVERAGE: (
        *_COMMON,
        R.LICENSE_TYPE,
        R.OVERAGE,
        R.MONTHS_REMAINING,
        R.AUTO_RENEW,
    ),
}
_SNAPSHOT_COLUMNS = {
    R.WEEKLY_ALLOCATION_CHANGE: "allocation_change",
    R.WEEKLY_USAGE_CHANGE: "usage_change",
    R.USAGE_LAST_3_MONTHS: "peak_used",
}
# Columns that count time from a date sort by that date; "days since" runs against it.
_DATE_COLUMNS = {
    R.DAYS_SINCE_ADDED: ("start_date", True),
    R.MONTHS_SINCE_ADDED: ("start_date", True),
    R.DAYS_UNTIL_EXPIRY: ("end_date", False),
    R.MONTHS_REMAINING: ("end_date", False),
    R.DAYS_UNTIL_RENEWAL: ("renewal_date", False),
}
_TEXT_COLUMNS = (R.CUSTOMER_NAME, R.SUBSCRIPTION_ID, R.LICENSE_TYPE)


class UnknownColumn(ValueError):
    """A sort column the section's rows do not have."""


def key_types(section: Section, column: RowColumn) -> tuple[str, ...]:
    """How each sort-key value travels in a cursor ('str', 'datetime' or 'int')."""
    first = "datetime" if column in _DATE_COLUMNS else "str" if column in _TEXT_COLUMNS else "int"
    return (first, "int", "str") if section is Section.OVERAGE else (first, "int")


# --- the rows of a section ----------------------------------------------------------------------


def section_rows(
    section: Section,
    product: str,
    now: datetime | Times,
    scope: AnyScope,
    medians: Medians,
    *,
    thin: bool = False,
    halves: Mapping[tuple[str, int], Any] | None = None,
    bounds: Mapping[tuple[str, int], Any] | None = None,
) -> CTE:
    """The CTE of a section's rows in the caller's scope (see the module docstring); low
    allocation's ``thin`` rows carry ``THIN_COLUMNS`` alone when it has medians (``halves``,
    ``bounds``: see ``low_subscriptions``)."""
    at = Times.of(now)
    if section is Section.LOW_ALLOCATION:
        flagged = low_subscriptions(
            "section", [product], at, scope, medians, thin=thin, halves=halves, bounds=bounds
        )
        if flagged is not None:
            return flagged
        return product_subscriptions(
            "section", [product], at, scope, [], medians=medians, only_low=True
        )
    if section is not Section.OVERAGE:
        conditions = section_conditions(section, at)
        return product_subscriptions("section", [product], at, scope, conditions)
    # Overage lines: only the subscriptions whose totals count an overage line have any.
    lines = LicenseLine.__table__  # type: ignore[attr-defined]
    join = and_(
        L.subscription_id == T.subscription_id, L.product == T.product, L.assigned > L.purchased
    )
    # The line's own subscription, partner and product: the page's keys (overage, subscription,
    # license type) and its range are then those of ix_license_line_overage, walked in order.
    return (
        select(
            L.subscription_id.label("sub_pk"),
            *[c for c in TOTAL_COLUMNS if c.name not in _SUMMED and c.name != "sub_pk"],
            L.license_type,
            L.purchased,
            L.assigned,
            L.used,
            literal(0).label("available"),
        )
        .select_from(LICENSE_PRODUCT_TOTAL.join(lines, join))
        .where(
            L.partner_id == scope.partner_id,
            L.product == product,
            T.product == product,
            T.lines_over > 0,
            in_force(at.now),
            *scoped(scope, T.partner_id, T.customer_id),
        )
        .cte("overage")
        .prefix_with("NOT MATERIALIZED")
    )


_SUMMED = {
    "purchased",
    "assigned",
    "used",
    "available",
    "lines_over",
    "over_purchased",
    "over_assigned",
    "over_used",
}


def _sort_key(column: RowColumn, rows: CTE, snap: Any) -> tuple[Any, bool]:
    """The SQL sort expression of a column and whether it runs against the requested direction."""
    c = rows.c
    if column in _DATE_COLUMNS:
        name, inverted = _DATE_COLUMNS[column]
        return c[name], inverted
    if column in _SNAPSHOT_COLUMNS:
        return func.coalesce(snap.c[_SNAPSHOT_COLUMNS[column]], 0), False
    # Built on demand: thin low-allocation rows have only the columns of their own keys.
    expressions: dict[RowColumn, Callable[[], Any]] = {
        R.CUSTOMER_NAME: lambda: C.name_key,
        R.SUBSCRIPTION_ID: lambda: S.subscription_id,
        R.LICENSE_TYPE: lambda: c.license_type,
        R.TOTAL_LICENSES: lambda: c.purchased,
        R.ASSIGNED: lambda: c.assigned,
        R.USED: lambda: c.used,
        R.AVAILABLE: lambda: c.available,
        R.ALLOCATION_PERCENT: lambda: tenths_sql(c.assigned, c.purchased),
        R.USAGE_PERCENT: lambda: tenths_sql(c.used, c.purchased),
        R.USAGE_WHEN_ASSIGNED_PERCENT: lambda: tenths_sql(c.used, c.assigned),
        R.OVERAGE: lambda: c.assigned - c.purchased,
        R.AUTO_RENEW: lambda: case((c.auto_renew, 1), else_=0),
        R.SIZE_BAND: lambda: c.band,
    }
    return expressions[column](), False


async def section_page(
    session: AsyncSession,
    *,
    scope: Scope,
    section: Section,
    product: str,
    now: datetime,
    column: RowColumn,
    descending: bool,
    first: int,
    after: tuple[Any, ...] | None = None,
    medians: Medians | None = None,
) -> RowPage:
    """One keyset page of a section's rows, ordered by ``column`` then by the subscription's
    internal id (and, for overage lines, the license type), all in one direction."""
    if column not in COLUMNS[section]:
        raise UnknownColumn(f"{section.value} rows have no column {column.value}")
    medians = await section_medians(session, section, product, now, medians)
    bands = tuple(sorted(medians))
    page = _page_statement(
        section,
        product,
        column,
        descending,
        first,
        after is not None,
        BoundScope.shape(scope),
        bands,
    )
    params = {**Times.params(now), **BoundScope.params(scope)}
    params.update(BoundMedians.params(medians, bands))
    if after is not None:
        params.update({f"after_{i}": value for i, value in enumerate(after)})
    statement, keys = page
    found = await session.execute(statement, params)
    names = list(found.keys())
    # Plain dicts: ``license_row`` asks for columns only some sections have, and a missing key
    # of a RowMapping goes through SQLAlchemy's exception path (~0.5 ms a dashboard).
    result = [dict(zip(names, row, strict=True)) for row in found.all()]
    has_next = len(result) > first
    result = result[:first]
    return RowPage(
        rows=[license_row(m, now) for m in result],
        keys=[tuple(m[f"k{i}"] for i in range(keys)) for m in result],
        has_next=has_next,
    )


@lru_cache(maxsize=256)
def _page_statement(
    section: Section,
    product: str,
    column: RowColumn,
    descending: bool,
    first: int,
    cursor: bool,
    shape: tuple[bool, bool],
    bands: tuple[tuple[str, int], ...],
) -> tuple[Any, int]:
    """A section page's statement and its number of sort keys, built once per shape and
    executed with the bound instants (``Times.params``), scope ids (``BoundScope.params``),
    halved medians and tenths bounds (``BoundMedians``) and cursor keys (``after_<i>``):
    building it (and its cache key) took 2-3 ms a section in every dashboard request. The scope
    is bound, never baked: the statement depends on its ``shape`` alone (``BoundScope``)."""
    at = Times.bound()
    bound_scope = BoundScope(shape)
    bound_medians = BoundMedians.of(bands)
    medians = bound_medians.placeholders
    halves, bounds = bound_medians.halves, bound_medians.bounds
    if section is Section.LOW_ALLOCATION and column is R.ALLOCATION_PERCENT and bands:
        cut = low_in_order(
            product, at, bound_scope, medians, halves, bounds, descending, first, cursor
        )
        return _complete(full_rows(cut, 2), 2, descending, section, product, at), 2
    by_snapshot = column in _SNAPSHOT_COLUMNS
    cut_first = not by_snapshot and column not in _JOINED_COLUMNS
    rows = section_rows(
        section, product, at, bound_scope, medians, thin=cut_first, halves=halves, bounds=bounds
    )
    customer = Customer.__table__  # type: ignore[attr-defined]
    snap = snapshot_changes(rows.c.sub_pk, product, at) if by_snapshot else None
    subscription = Subscription.__table__  # type: ignore[attr-defined]
    source = rows.join(customer, C.id == rows.c.customer_id).join(
        subscription, S.id == rows.c.sub_pk
    )
    if snap is not None:
        source = source.outerjoin(snap, snap.c.subscription_id == rows.c.sub_pk)
    expression, inverted = _sort_key(column, rows, snap)
    keys = [expression, rows.c.sub_pk]
    if section is Section.OVERAGE:
        keys.append(rows.c.license_type)
    down = descending != inverted
    conditions: list[Any] = []
    if cursor:
        bound = tuple_(*[bindparam(f"after_{i}", type_=k.type) for i, k in enumerate(keys)])
        conditions.append(tuple_(*keys) < bound if down else tuple_(*keys) > bound)
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    if cut_first:
        # Keys on the section's own columns: cut the page first — by an index walk in the
        # page's order where one exists (dates, overage), else by sorting the section alone —
        # and join the names and snapshot columns to its rows only.
        cut = (
            select(*rows.c, *labelled)
            .where(*conditions)
            .order_by(*[k.desc() if down else k.asc() for k in keys])
            .limit(first + 1)
            .cte("page")
        )
        if "kind" not in cut.c:  # thin low-allocation rows: the page's full rows by key
            cut = full_rows(cut, len(keys))
        page = _complete(cut, len(keys), down, section, product, at)
    else:
        page = _joined_page(rows, source, snap, keys, labelled, conditions, down, first)
        if snap is None and section is not Section.OVERAGE:
            page = _complete(page.cte("page"), len(keys), down, section, product, at, True)
    return page, len(keys)


# Sort keys read from the customer or subscription row rather than the section's own.
_JOINED_COLUMNS = (R.CUSTOMER_NAME, R.SUBSCRIPTION_ID)


def _complete(
    cut: CTE,
    keys: int,
    down: bool,
    section: Section,
    product: str,
    now: datetime | Times,
    joined: bool = False,
) -> Any:
    """A cut page's rows with the customer's name, the subscription's reference (unless
    ``joined`` already) and, but for overage lines, the snapshot columns, in the page's order."""
    columns: list[Any] = list(cut.c)
    source: Any = cut
    if not joined:
        customer = Customer.__table__  # type: ignore[attr-defined]
        subscription = Subscription.__table__  # type: ignore[attr-defined]
        source = source.join(customer, C.id == cut.c.customer_id).join(
            subscription, S.id == cut.c.sub_pk
        )
        columns += [C.name.label("customer_name"), S.subscription_id.label("ref")]
    if section is not Section.OVERAGE:
        page_snap = snapshot_changes(cut.c.sub_pk, product, now)
        source = source.outerjoin(page_snap, page_snap.c.subscription_id == cut.c.sub_pk)
        columns += [func.coalesce(page_snap.c[n], 0).label(n) for n in _SNAPSHOT_COLUMNS.values()]
    ordered = [cut.c[f"k{i}"] for i in range(keys)]
    return (
        select(*columns)
        .select_from(source)
        .order_by(*[k.desc() if down else k.asc() for k in ordered])
    )


def _joined_page(
    rows: CTE,
    source: Any,
    snap: Any,
    keys: list[Any],
    labelled: list[Any],
    conditions: list[Any],
    down: bool,
    first: int,
) -> Any:
    """A page whose keys need the joined rows (a name, a reference or a snapshot column)."""
    extra = [C.name.label("customer_name"), S.subscription_id.label("ref")]
    if snap is not None:
        extra += [func.coalesce(snap.c[n], 0).label(n) for n in _SNAPSHOT_COLUMNS.values()]
    return (
        select(*rows.c, *extra, *labelled)
        .select_from(source)
        .where(*conditions)
        .order_by(*[k.desc() if down else k.asc() for k in keys])
        .limit(first + 1)
    )
