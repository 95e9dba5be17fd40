"""A whole partner's low-allocation figures from the kept spans, corrected to the current
medians (migration 0033, ``db.low_reference``).

The triggers keep ``<P>/LOW`` (a product's flagged totals: customers, sums, rows) and
``ANY/LOW`` (customers over both products) at the reference thresholds ``r`` of
``license_low_reference``; the request flags against ``h``, half the current median of each
(product, band). A total's flag differs between the two exactly when its ratio lies in
[min(h, r), max(h, r)): those totals (in force and aged at ``now``: the flag's other
conditions) are the ``affected`` ones, read band by band from ``ix_license_product_total_ratio``
(partner, product, band, ratio, ...). The correction rows, added to the kept figures by
``figures_statement``'s sum per name:

- sums and rows of ``<P>/LOW``: + an affected total flagged now (ratio < h), - one flagged at
  the reference only;
- customers: per customer with an affected total, [flagged now] - [flagged at the reference]
  over all its eligible totals (of the product, or of both for ``ANY/LOW``).

A band with no current median, or no reference row, flags nothing on that side: its threshold
is ``db.low_reference.NO_HALF``, below every ratio (the trigger's comparison with a missing
reference row is NULL, not true). When the reference is the current medians every range is
empty: a few index seeks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Float, and_, case, func, literal, select, union_all

from db.enums import SubscriptionState
from db.license_totals import LICENSE_PRODUCT_TOTAL
from db.low_reference import LICENSE_LOW_REFERENCE, NO_HALF, NO_TENTHS
from db.queries.analytics.common import KPI_PRODUCTS, AnyScope, T, Times, scoped
from db.queries.analytics.measures import SIZE_BANDS

ANY_LOW = "ANY/LOW"


def low_kpi(product: str) -> str:
    """The kept low-allocation KPI of a product's section."""
    return f"{product}/LOW"


def _eligible(t: Any, at: Times) -> list[Any]:
    """The flag's conditions but the ratio (``common.low_parts``)."""
    return [
        t.state == SubscriptionState.ACTIVE.value,
        t.purchased > 0,
        t.start_date <= at.aged,
        t.start_date <= at.now,
        t.end_date > at.now,
    ]


@dataclass(frozen=True, slots=True)
class _Band:
    """One (product, band)'s current half h, reference half r and their ``half_tenths`` ht
    and rt, as SQL expressions: bind parameters and scalar subqueries of
    ``license_low_reference``; without a current median, or without a reference row, the band
    flags nothing: ``NO_HALF`` (below every ratio, a negative one an operator wrote too) and
    ``NO_TENTHS``."""

    product: str
    band: int
    h: Any
    r: Any
    ht: Any
    rt: Any


def _bands(
    products: Sequence[str],
    halves: Mapping[tuple[str, int], Any],
    bounds: Mapping[tuple[str, int], Any],
) -> list[_Band]:
    """Every (product, band) of ``products``, whether or not it has a median or a reference:
    the statement's shape does not depend on the reference's rows."""
    ref = LICENSE_LOW_REFERENCE.c
    out = []
    for product in products:
        for band in range(1, len(SIZE_BANDS) + 1):

            def reference(column: Any, zero: Any, product: str = product, band: int = band) -> Any:
                where = (ref.product == product, ref.band == band)
                return func.coalesce(select(column).where(*where).scalar_subquery(), zero)

            key = (product, band)
            out.append(
                _Band(
                    product,
                    band,
                    halves[key] if key in halves else literal(NO_HALF, Float),
                    reference(ref.half, literal(NO_HALF, Float)),
                    bounds[key] - 1 if key in bounds else literal(NO_TENTHS, BigInteger),
                    reference(ref.tenths, literal(NO_TENTHS, BigInteger)),
                )
            )
    return out


def _least(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> Any:
    return case((a < b, b), else_=a)


def _affected(scope: AnyScope, at: Times, band: _Band) -> Any:
    """The eligible totals of one (product, band) whose flag differs between h and r: one
    range of ``ix_license_product_total_low`` (partner, product, band, state, tenths, ...)
    from the lower half's tenths to the higher's (see ``db.low_reference.half_tenths``)."""
    return select(
        T.customer_id,
        T.product,
        case((T.ratio < band.h, 1), else_=-1).label("sign"),
        T.purchased,
        T.assigned,
        T.used,
    ).where(
        *scoped(scope, T.partner_id, T.customer_id),
        T.product == band.product,
        T.band == band.band,
        T.allocation_tenths >= _least(band.ht, band.rt) - 1,
        T.allocation_tenths <= _greatest(band.ht, band.rt) + 1,
        T.ratio >= _least(band.h, band.r),
        T.ratio < _greatest(band.h, band.r),
        *_eligible(T, at),
    )


def _union_all(parts: list[Any]) -> Any:
    return union_all(*parts)


def low_corrections(
    scope: AnyScope,
    at: Times,
    names: Collection[str],
    halves: Mapping[tuple[str, int], Any],
    bounds: Mapping[tuple[str, int], Any],
) -> list[Any]:
    """Rows (kpi, customers, purchased, assigned, used, line_rows) correcting the kept
    figures of ``names`` (``ANY_LOW``, ``low_kpi(product)``) to the current halved medians
    ``halves`` and their ``bounds`` (``common.BoundMedians``: bind parameters per (product,
    band)), for a scope over the whole partner."""
    asked = [p for p in KPI_PRODUCTS if low_kpi(p) in names]
    top = ANY_LOW in names
    products = list(KPI_PRODUCTS) if top else asked
    if not products:
        return []
    bands = _bands(products, halves, bounds)
    # A range per (product, band), not a join: SQLite would build a Bloom filter over the
    # whole table for the join (~90 ms at 100,000 customers).
    affected = _union_all([_affected(scope, at, band) for band in bands]).cte("affected")
    a = affected.c
    thresholds = _union_all(
        [
            select(
                literal(b.product).label("product"),
                literal(b.band).label("band"),
                b.h.label("h"),
                b.r.label("r"),
            )
            for b in bands
        ]
    ).cte("thresholds")
    th = thresholds.c
    x = LICENSE_PRODUCT_TOTAL.alias("x")

    def flagged(threshold: Any, product: str | None = None) -> Any:
        condition = x.c.ratio < threshold
        if product is not None:
            condition = and_(x.c.product == product, condition)
        return func.max(case((condition, 1), else_=0))

    per_customer = [flagged(th.h).label("now_any"), flagged(th.r).label("ref_any")]
    for p in asked:
        per_customer += [flagged(th.h, p).label(f"now_{p}"), flagged(th.r, p).label(f"ref_{p}")]
    status = (
        select(x.c.customer_id, *per_customer)
        .select_from(x)
        .join(thresholds, and_(x.c.product == th.product, x.c.band == th.band))
        .where(
            x.c.customer_id.in_(select(a.customer_id)),
            x.c.partner_id == scope.partner_id,
            *_eligible(x.c, at),
        )
        .group_by(x.c.customer_id)
        .subquery("low_status")
    )
    s = status.c
    zero = literal(0)

    def total(value: Any) -> Any:
        return func.coalesce(func.sum(value), zero)

    rows: list[Any] = []
    if top:
        rows.append(
            select(
                literal(ANY_LOW).label("kpi"),
                total(s.now_any - s.ref_any).label("customers"),
                *[zero.label(n) for n in ("purchased", "assigned", "used", "line_rows")],
            )
        )
    for p in asked:
        rows.append(
            select(
                literal(low_kpi(p)).label("kpi"),
                total(s[f"now_{p}"] - s[f"ref_{p}"]).label("customers"),
                *[zero.label(n) for n in ("purchased", "assigned", "used", "line_rows")],
            )
        )
        mine = a.product == p
        rows.append(
            select(
                literal(low_kpi(p)).label("kpi"),
                zero.label("customers"),
                *[
                    total(case((mine, a.sign * a[n]), else_=0)).label(n)
                    for n in ("purchased", "assigned", "used")
                ],
                total(case((mine, a.sign), else_=0)).label("line_rows"),
            )
        )
    return rows
