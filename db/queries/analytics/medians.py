"""The deployment-wide low-allocation medians, read from the maintained ratio histogram.

``license_ratio_count`` counts, per product, size band and allocation ratio, the rows of
``license_product_total`` in state ACTIVE with purchased > 0, and ``license_ratio_bucket`` the
same per bucket of 1/256 (triggers keep both, see ``db.license_totals``); on PostgreSQL the
changes of writers that did not get the fold lock wait in ``license_ratio_delta`` (migration
0027), so each level is read as its base plus the pending deltas that fall in it (bucketed as
the triggers bucket), under one snapshot per statement. The medians are over the *in-force*
ones (DESIGN.md section 3), so the rows that are ACTIVE but not in force at ``now`` (ended, or
not started yet) are taken back out: they are read through the (product, state, end/start)
indexes and are few as long as subscriptions leave ACTIVE when they end.

Two statements, neither reading a row per subscription or per distinct ratio: the stale rows
with the buckets (a few thousand at most, whatever the number of partners) and the pending
deltas per bucket (few: every write that gets the lock folds them), from whose cumulative
counts each band's middle position(s) fall in one bucket (or two); then the ratios of those
buckets alone. A band's median is the middle ratio, or the mean of the two middle ones, as
``(lower + upper) * 0.5``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Select,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from db.enums import SubscriptionState
from db.license_totals import (
    LICENSE_PRODUCT_TOTAL,
    LICENSE_RATIO_BUCKET,
    LICENSE_RATIO_COUNT,
    LICENSE_RATIO_DELTA,
    RATIO_BUCKETS,
)
from db.queries.analytics.common import KPI_PRODUCTS, Medians
from db.versioning import note_shared_read

T = LICENSE_PRODUCT_TOTAL.c
H = LICENSE_RATIO_COUNT.c
B = LICENSE_RATIO_BUCKET.c
D = LICENSE_RATIO_DELTA.c
ACTIVE = SubscriptionState.ACTIVE.value
Band = tuple[str, int]


def bucket_of(ratio: float) -> int:
    """As the triggers compute it: floor(ratio * 256), exact for a double."""
    return math.floor(ratio * RATIO_BUCKETS)


class ratio_bucket(FunctionElement[int]):
    """floor(ratio * 256) in SQL, as migrations 0021 and 0027 bucket (and ``bucket_of``)."""

    type = BigInteger()
    inherit_cache = True
    name = "ratio_bucket"


@compiles(ratio_bucket)
def _ratio_bucket(element: ratio_bucket, compiler: Any, **kw: Any) -> str:
    ratio = compiler.process(element.clauses, **kw)
    return f"CAST(floor({ratio} * {RATIO_BUCKETS}) AS BIGINT)"


@compiles(ratio_bucket, "sqlite")
def _ratio_bucket_sqlite(element: ratio_bucket, compiler: Any, **kw: Any) -> str:
    ratio = compiler.process(element.clauses, **kw)
    return f"CAST({ratio} * {RATIO_BUCKETS} AS INTEGER)"  # truncation: floor for ratios >= 0


@lru_cache(maxsize=8)
def counts_statement(products: tuple[str, ...]) -> Select[Any]:
    """(product, band, ratio, bucket, n): with a ratio, the ACTIVE rows with purchased > 0 not
    in force at the bound ``now``; with a bucket, the buckets of ``license_ratio_bucket`` and
    the pending deltas summed per bucket (the caller adds them up).
    Built once per products and executed with ``{"now": ...}``: building it (and its cache
    key) showed in every dashboard request's profile."""
    now = bindparam("now", type_=T.end_date.type)

    def stale(*dates: Any) -> Select[Any]:
        return (
            select(T.product, T.band, T.ratio, cast(null(), BigInteger), func.count().label("n"))
            .where(T.product.in_(list(products)), T.state == ACTIVE, T.purchased > 0, *dates)
            .group_by(T.product, T.band, T.ratio)
        )

    ended = stale(T.end_date <= now)  # by (product, state, end_date)
    not_started = stale(T.start_date > now, T.end_date > now)  # by (product, state, start_date)
    buckets = select(B.product, B.band, cast(null(), Float), B.bucket, B.n).where(
        B.product.in_(list(products)), B.n != 0
    )
    bucket = ratio_bucket(D.ratio)
    pending = (
        select(D.product, D.band, cast(null(), Float), bucket, func.sum(D.n))
        .where(D.product.in_(list(products)))
        .group_by(D.product, D.band, bucket)
    )
    return union_all(ended, not_started, buckets, pending)  # type: ignore[return-value]


@lru_cache(maxsize=32)
def _bucket_ratios(buckets: tuple[tuple[str, int, int], ...]) -> Select[Any]:
    """(product, band, ratio, n) of the fine histogram within the given (product, band,
    bucket)s, the base's rows and the pending deltas summed per ratio (the caller adds them up).
    Built once per set of middle buckets, which moves only when a median crosses a bucket
    boundary: building it per request showed in the dashboard's profile."""

    def ranges(t: Any) -> Any:
        return or_(
            *(
                and_(
                    t.product == product,
                    t.band == band,
                    t.ratio >= literal(bucket / RATIO_BUCKETS, Float),
                    t.ratio < literal((bucket + 1) / RATIO_BUCKETS, Float),
                )
                for product, band, bucket in buckets
            )
        )

    base = select(H.product, H.band, H.ratio, H.n).where(ranges(H), H.n != 0)
    pending = (
        select(D.product, D.band, D.ratio, func.sum(D.n))
        .where(ranges(D))
        .group_by(D.product, D.band, D.ratio)
    )
    return union_all(base, pending)  # type: ignore[return-value]


def _middle(counts: dict[Any, int], positions: tuple[int, ...]) -> dict[int, Any]:
    """For each 1-based position, the key of ``counts`` (walked in key order) holding it."""
    found: dict[int, Any] = {}
    upto = 0
    for key in sorted(counts):
        n = counts[key]
        if n <= 0:
            continue
        for position in positions:
            if upto < position <= upto + n:
                found[position] = key
        upto += n
    return found


async def low_allocation_medians(
    session: AsyncSession, *, now: datetime, products: Sequence[str] = KPI_PRODUCTS
) -> Medians:
    """The deployment's median allocation ratio per (product, size band); the low-allocation
    figures take them as parameters, so a request computes them once. They read every
    partner's subscriptions: the request's response depends on the shared version."""
    note_shared_read()
    stale: dict[Band, dict[float, int]] = defaultdict(lambda: defaultdict(int))
    buckets: dict[Band, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for product, band, ratio, bucket, n in await session.execute(
        counts_statement(tuple(products)), {"now": now}
    ):
        if bucket is None:
            stale[(product, int(band))][float(ratio)] += int(n)
        else:
            buckets[(product, int(band))][int(bucket)] += int(n)
    for key, ratios in stale.items():
        for ratio, n in ratios.items():
            buckets[key][bucket_of(ratio)] -= n
    # Per band: its two middle positions and the bucket(s) holding them.
    wanted: dict[Band, tuple[int, int, dict[int, int]]] = {}
    for key, counts in buckets.items():
        total = sum(n for n in counts.values() if n > 0)
        if total <= 0:
            continue
        positions = ((total + 1) // 2, (total + 2) // 2)
        holding = _middle(counts, positions)
        wanted[key] = (*positions, {p: holding[p] for p in positions})
    if not wanted:
        return {}
    fine: dict[Band, dict[float, int]] = defaultdict(lambda: defaultdict(int))
    in_buckets = _bucket_ratios(
        tuple(
            sorted(
                (product, band, bucket)
                for (product, band), (_, _, holding) in wanted.items()
                for bucket in set(holding.values())
            )
        )
    )
    for product, band, ratio, n in await session.execute(in_buckets):
        fine[(product, int(band))][float(ratio)] += int(n)
    medians: Medians = {}
    for key, (lower_at, upper_at, holding) in wanted.items():
        counts = buckets[key]
        values = []
        for position in (lower_at, upper_at):
            bucket = holding[position]
            before = sum(n for b, n in counts.items() if b < bucket and n > 0)
            inside = {
                r: n - stale[key].get(r, 0) for r, n in fine[key].items() if bucket_of(r) == bucket
            }
            values.append(_middle(inside, (position - before,))[position - before])
        medians[key] = (values[0] + values[1]) * 0.5
    return medians
