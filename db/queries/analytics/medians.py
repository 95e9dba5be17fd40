"""The deployment-wide low-allocation medians, read from the maintained ratio histogram.

``license_ratio_count`` counts, per product, size band and allocation ratio, the rows of
``license_product_total`` in state ACTIVE with purchased > 0 (triggers keep it, see
``db.license_totals``). The medians are over the *in-force* ones (DESIGN.md section 3), so the
rows that are ACTIVE but not in force at ``now`` (ended, or not started yet) are taken back out:
they are read through the (product, state, end/start) indexes and are few as long as
subscriptions leave ACTIVE when they end. Then the median of each band is picked from the
cumulative counts: the middle ratio, or the mean of the two middle ones.

One statement, its cost set by the number of distinct ratios (and stale rows), not by the number
of subscriptions of the deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, case, cast, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import SubscriptionState
from db.license_totals import LICENSE_PRODUCT_TOTAL, LICENSE_RATIO_COUNT
from db.queries.analytics.common import KPI_PRODUCTS, Medians
from db.versioning import note_shared_read

T = LICENSE_PRODUCT_TOTAL.c
H = LICENSE_RATIO_COUNT.c
ACTIVE = SubscriptionState.ACTIVE.value


def medians_statement(products: Sequence[str], now: datetime) -> Select[Any]:
    """(product, band, median) per band that has in-force subscriptions."""

    def stale(*dates: Any) -> Select[Any]:
        return (
            select(T.product, T.band, T.ratio, (-func.count()).label("n"))
            .where(T.product.in_(list(products)), T.state == ACTIVE, T.purchased > 0, *dates)
            .group_by(T.product, T.band, T.ratio)
        )

    ended = stale(T.end_date <= now)  # by (product, state, end_date)
    not_started = stale(T.start_date > now, T.end_date > now)  # by (product, state, start_date)
    counted = select(H.product, H.band, H.ratio, H.n).where(H.product.in_(list(products)), H.n != 0)
    both = union_all(counted, ended, not_started).subquery("both_counts")
    b = both.c
    counts = (
        select(b.product, b.band, b.ratio, cast(func.sum(b.n), Integer).label("n"))
        .group_by(b.product, b.band, b.ratio)
        .having(func.sum(b.n) > 0)
        .subquery("counts")
    )
    c = counts.c
    band = [c.product, c.band]
    cumulative = select(
        c.product,
        c.band,
        c.ratio,
        c.n,
        cast(func.sum(c.n).over(partition_by=band, order_by=c.ratio), Integer).label("upto"),
        cast(func.sum(c.n).over(partition_by=band), Integer).label("total"),
    ).subquery("cumulative")
    k = cumulative.c

    def at(position: Any) -> Any:
        """The ratio at 1-based ``position`` of the band sorted by ratio."""
        return func.min(case((and_(k.upto - k.n < position, k.upto >= position), k.ratio)))

    lower = at((k.total + 1) // 2)
    upper = at((k.total + 2) // 2)
    return select(k.product, k.band, ((lower + upper) * 0.5).label("median")).group_by(
        k.product, k.band
    )


async def low_allocation_medians(
    session: AsyncSession, *, now: datetime, products: Sequence[str] = KPI_PRODUCTS
) -> Medians:
    """The deployment's median allocation ratio per (product, size band), one statement; the
    low-allocation figures take them as parameters, so a request computes them once. They read
    every partner's subscriptions: the request's response depends on the shared version."""
    note_shared_read()
    rows = await session.execute(medians_statement(products, now))
    return {(product, int(band)): float(median) for product, band, median in rows}
