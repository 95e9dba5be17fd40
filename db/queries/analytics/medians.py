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

Three statements, none reading a row per subscription or per distinct ratio: the stale rows
with the histogram per superbucket (1/16 of the ratio: ~200 rows, whatever the number of
partners) and the pending deltas per superbucket (few: every write that gets the lock folds
them), from whose cumulative counts each band's middle position(s) fall in one superbucket (or
two); then those superbuckets' buckets; then the ratios of the bucket(s) holding the middle
positions. A band's median is the middle ratio, or the mean of the two middle ones, as
``(lower + upper) * 0.5``. (Two levels returned every bucket, ~2,000 rows at 100,000
customers, to Python: 5.1 ms against 3.8-3.9 ms for the three levels on both backends.)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
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


# Buckets per superbucket: the first statement returns the histogram per superbucket (1/16 of
# the ratio), the second the buckets of the middle superbuckets, the third their middle
# buckets' ratios: ~200 + ~30 + ~150 rows instead of the ~2,000 buckets a dashboard read and
# walked in Python (the medians were the largest Python cost of the dashboard).
SUPER = 16


class int_div(FunctionElement[int]):
    """``left / right`` of two integers, integer division on both backends, the divisor
    written inline (so a GROUP BY repeats the very expression the select list has)."""

    type = BigInteger()
    inherit_cache = True
    name = "int_div"


@compiles(int_div)
def _int_div(element: int_div, compiler: Any, **kw: Any) -> str:
    left, right = list(element.clauses)
    return f"({compiler.process(left, **kw)} / {int(right.value)})"


def _super_of(bucket: Any) -> Any:
    return int_div(bucket, literal(SUPER))


@lru_cache(maxsize=8)
def counts_statement(products: tuple[str, ...]) -> Select[Any]:
    """(product, band, ratio, superbucket, n): with a ratio, the ACTIVE rows with purchased > 0
    not in force at the bound ``now``; with a superbucket, the base histogram's buckets and the
    pending deltas summed per superbucket (the caller adds them up).
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
    base_super = _super_of(B.bucket)
    supers = (
        select(B.product, B.band, cast(null(), Float), base_super, func.sum(B.n))
        .where(B.product.in_(list(products)), B.n != 0)
        .group_by(B.product, B.band, base_super)
    )
    pending_super = _super_of(ratio_bucket(D.ratio))
    pending = (
        select(D.product, D.band, cast(null(), Float), pending_super, func.sum(D.n))
        .where(D.product.in_(list(products)))
        .group_by(D.product, D.band, pending_super)
    )
    return union_all(ended, not_started, supers, pending)  # type: ignore[return-value]


def _ratio_ranges(t: Any, ranges: tuple[tuple[str, int, int, int], ...]) -> Any:
    """Rows of ``t`` whose (product, band) is a range's and whose ratio lies in [low / scale,
    (low + 1) / scale): exactly the ratios whose floor(ratio * scale) is ``low`` (the scales
    are powers of two, so the bounds and the products are exact)."""
    return or_(
        *(
            and_(
                t.product == product,
                t.band == band,
                t.ratio >= literal(low / scale, Float),
                t.ratio < literal((low + 1) / scale, Float),
            )
            for product, band, low, scale in ranges
        )
    )


@lru_cache(maxsize=32)
def _super_buckets(supers: tuple[tuple[str, int, int], ...]) -> Select[Any]:
    """(product, band, bucket, n) of the histogram's buckets within the given (product, band,
    superbucket)s: the base's and the pending deltas per bucket (the caller adds them up).
    Built once per set of middle superbuckets."""
    base = select(B.product, B.band, B.bucket, B.n).where(
        or_(
            *(
                and_(
                    B.product == product,
                    B.band == band,
                    B.bucket >= literal(s * SUPER, BigInteger),
                    B.bucket < literal((s + 1) * SUPER, BigInteger),
                )
                for product, band, s in supers
            )
        ),
        B.n != 0,
    )
    bucket = ratio_bucket(D.ratio)
    scale = RATIO_BUCKETS // SUPER
    pending = (
        select(D.product, D.band, bucket, func.sum(D.n))
        .where(_ratio_ranges(D, tuple((p, b, s, scale) for p, b, s in supers)))
        .group_by(D.product, D.band, bucket)
    )
    return union_all(base, pending)  # type: ignore[return-value]


@lru_cache(maxsize=32)
def _bucket_ratios(buckets: tuple[tuple[str, int, int], ...]) -> Select[Any]:
    """(product, band, ratio, n) of the fine histogram within the given (product, band,
    bucket)s, the base's rows and the pending deltas summed per ratio (the caller adds them up).
    Built once per set of middle buckets, which moves only when a median crosses a bucket
    boundary: building it per request showed in the dashboard's profile."""
    ranges = tuple((p, b, bucket, RATIO_BUCKETS) for p, b, bucket in buckets)
    base = select(H.product, H.band, H.ratio, H.n).where(_ratio_ranges(H, ranges), H.n != 0)
    pending = (
        select(D.product, D.band, D.ratio, func.sum(D.n))
        .where(_ratio_ranges(D, ranges))
        .group_by(D.product, D.band, D.ratio)
    )
    return union_all(base, pending)  # type: ignore[return-value]


def _middle(counts: dict[Any, int], positions: Sequence[int]) -> dict[int, tuple[Any, int]]:
    """For each 1-based position, the key of ``counts`` (walked in key order, keys with no
    count skipped) holding it and the position within that key."""
    found: dict[int, tuple[Any, int]] = {}
    upto = 0
    for key in sorted(counts):
        n = counts[key]
        if n <= 0:
            continue
        for position in positions:
            if upto < position <= upto + n:
                found[position] = (key, position - upto)
        upto += n
    return found


async def low_allocation_medians(
    session: AsyncSession, *, now: datetime, products: Sequence[str] = KPI_PRODUCTS
) -> Medians:
    """The deployment's median allocation ratio per (product, size band); the low-allocation
    figures take them as parameters, so a request computes them once. They read every
    partner's subscriptions: the request's response depends on the shared version.

    Three levels, each read as base + pending deltas - stale rows: the superbuckets of every
    band, the buckets of the superbucket(s) holding a band's middle positions, the ratios of
    the bucket(s) holding them."""
    note_shared_read()
    stale: dict[Band, dict[float, int]] = defaultdict(lambda: defaultdict(int))
    supers: dict[Band, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for product, band, ratio, superbucket, n in await session.execute(
        counts_statement(tuple(products)), {"now": now}
    ):
        if superbucket is None:
            stale[(product, int(band))][float(ratio)] += int(n)
        else:
            supers[(product, int(band))][int(superbucket)] += int(n)
    for key, ratios in stale.items():
        for ratio, n in ratios.items():
            supers[key][bucket_of(ratio) // SUPER] -= n
    # Per band: its two middle positions, the superbucket holding each and the position in it.
    wanted: dict[Band, tuple[tuple[int, int], dict[int, tuple[int, int]]]] = {}
    for key, counts in supers.items():
        total = sum(n for n in counts.values() if n > 0)
        if total <= 0:
            continue
        positions = ((total + 1) // 2, (total + 2) // 2)
        wanted[key] = (positions, _middle(counts, positions))
    if not wanted:
        return {}
    chosen = sorted({(p, b, s) for (p, b), (_, at) in wanted.items() for s, _ in at.values()})
    buckets: dict[tuple[str, int, int], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for product, band, bucket, n in await session.execute(_super_buckets(tuple(chosen))):
        bucket = int(bucket)
        buckets[(product, int(band), bucket // SUPER)][bucket] += int(n)
    for key, ratios in stale.items():
        for ratio, n in ratios.items():
            bucket = bucket_of(ratio)
            if (*key, bucket // SUPER) in buckets:
                buckets[(*key, bucket // SUPER)][bucket] -= n
    # Per band and position: the bucket holding it and the position in that bucket.
    inner: dict[Band, dict[int, tuple[int, int]]] = {}
    for key, (positions, at) in wanted.items():
        inner[key] = {}
        for position in positions:
            s, within = at[position]
            inner[key][position] = _middle(buckets[(*key, s)], (within,))[within]
    middle = sorted({(p, b, bucket) for (p, b), at in inner.items() for bucket, _ in at.values()})
    fine: dict[tuple[str, int, int], dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for product, band, ratio, n in await session.execute(_bucket_ratios(tuple(middle))):
        fine[(product, int(band), bucket_of(float(ratio)))][float(ratio)] += int(n)
    for key, ratios in stale.items():
        for ratio, n in ratios.items():
            place = (*key, bucket_of(ratio))
            if place in fine:
                fine[place][ratio] -= n
    medians: Medians = {}
    for key, at in inner.items():
        values = []
        for position in wanted[key][0]:
            bucket, within = at[position]
            values.append(_middle(fine[(*key, bucket)], (within,))[within][0])
        medians[key] = (values[0] + values[1]) * 0.5
    return medians


# --- kept between requests ----------------------------------------------------------------------
#
# The medians are one value for the whole deployment: every dashboard request of every partner
# read the same three statements (3.6 ms of SQL on SQLite at 100,000 customers, more on
# PostgreSQL) to recompute it. They are a function of the licence data (every write of it moves
# the deployment's shared version, ``db.versioning``) and of ``now`` only through the stale rows
# (ACTIVE rows ended or not started yet), a set that changes only when ``now`` crosses a
# subscription's start or end. So a process keeps the last medians it read with the shared
# version they were read at and the instants around ``now`` between which that set stays the
# same, and answers from them while both hold.


@lru_cache(maxsize=8)
def _window_statement(products: tuple[str, ...]) -> Select[Any]:
    """The latest start or end of an ACTIVE row at or before the bound ``now`` and the first
    after it, per product and date (one seek each down ``ix_license_product_total_stale_*``).
    Every ACTIVE row counts, with purchased > 0 or not: more instants only narrow the window.
    The values come back as the database compares them (``in_db_order``): SQLite's stored text
    unparsed (text written around ``UTCDateTime``, an ISO offset say, sorts as text there),
    PostgreSQL's timestamptz values."""
    now = bindparam("now", type_=T.end_date.type)
    seeks = []
    for product in products:
        for date in (T.start_date, T.end_date):
            at = (T.product == product, T.state == ACTIVE)
            for edge, cut in ((func.max(date), date <= now), (func.min(date), date > now)):
                found = select(type_coerce(edge, String())).where(*at, cut)
                seeks.append(found.scalar_subquery())
    return select(*seeks).where(true())


def in_db_order(session: AsyncSession, now: datetime) -> Any:
    """``now`` as the database compares it with stored instants: SQLite the text
    ``UTCDateTime`` stores (naive UTC with microseconds), PostgreSQL the instant itself."""
    if session.get_bind().dialect.name == "sqlite":
        return now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


@dataclass(frozen=True, slots=True)
class KeptMedians:
    """Medians read at ``version``, valid for any ``now`` in [since, until) (None: unbounded),
    compared in the database's order (``in_db_order``)."""

    version: str
    medians: Medians
    since: Any
    until: Any

    def holds(self, version: str, now: Any) -> bool:
        return (
            version == self.version
            and (self.since is None or self.since <= now)
            and (self.until is None or now < self.until)
        )


async def medians_window(
    session: AsyncSession, *, now: datetime, products: Sequence[str] = KPI_PRODUCTS
) -> tuple[Any, Any]:
    """[since, until): the instants around ``now`` between which no ACTIVE row of ``products``
    starts or ends, so the medians' stale rows are the same for any now in it; in the
    database's order (``in_db_order``), None where there is none."""
    row = (await session.execute(_window_statement(tuple(products)), {"now": now})).one()
    before = [v for v in row[0::2] if v is not None]
    after = [v for v in row[1::2] if v is not None]
    return (max(before) if before else None), (min(after) if after else None)


class MediansMemo:
    """The last medians a process read per set of products (see above); ``version`` is the
    deployment's version read with the request's token (``db.versioning.deployment_version``).
    Not for a transaction with uncommitted writes: the caller reads the medians directly then."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, ...], KeptMedians] = {}
        self.reads = 0  # statements-worth of recomputations, for tests and the bench

    async def medians(
        self,
        session: AsyncSession,
        *,
        now: datetime,
        version: str,
        products: Sequence[str] = KPI_PRODUCTS,
    ) -> Medians:
        key = tuple(products)
        kept = self._kept.get(key)
        if kept is not None and kept.holds(version, in_db_order(session, now)):
            note_shared_read()
            return kept.medians
        medians = await low_allocation_medians(session, now=now, products=key)
        since, until = await medians_window(session, now=now, products=key)
        self.reads += 1
        self._kept[key] = KeptMedians(version, medians, since, until)
        return medians
