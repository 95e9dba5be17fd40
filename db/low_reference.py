"""The low-allocation reference thresholds (migration 0033): what the kept low-allocation spans
are flagged against, and how to move them to the current medians.

A total is flagged low when its ratio is below half the deployment-wide median of its
(product, size band), a value every licence write of the deployment may move. The span
triggers keep the low-allocation KPIs (``<P>/LOW``, ``ANY/LOW``: ``db.license_kpis``) at the
thresholds of ``license_low_reference`` instead, one ``half`` per (product, band); a whole
partner's figures are those kept spans read at ``now`` plus a correction over the rows whose
flag differs between the reference and the current medians
(``db.queries.analytics.low_kept``). The figures are exact at any reference; the correction's
cost follows how far the medians have moved since the reference was taken (the rows between
the two halves), so ``rebase_low_reference`` moves the reference to the current medians: at
the end of ``seed``, and from ``partner-hub rebase-low-allocation`` (a periodic job keeps the
dashboards fast; it never changes a figure).

This module does not import ``db.models``; ``db.models`` imports it at its end so the table
shares its metadata.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from db.versioning import writes_for

__all__ = [
    "LICENSE_LOW_REFERENCE",
    "LOW_KPIS",
    "PartnersBusy",
    "RebaseResult",
    "half_tenths",
    "lock_every_partner",
    "rebase_low_reference",
    "reference_halves",
    "set_low_reference",
]

LICENSE_LOW_REFERENCE = Table(
    "license_low_reference",
    SQLModel.metadata,
    Column("product", String(32), primary_key=True),
    Column("band", Integer, primary_key=True, autoincrement=False),
    Column("half", Float, nullable=False),
    # floor(1000 * half) (``half_tenths``): the corrections' index ranges start and end there.
    Column("tenths", BigInteger, nullable=False),
)


# A band without a threshold (no median now, no reference row) flags nothing: its threshold as a
# number below every ratio (ratios of negative assigned counts too, which SQLite lets an
# operator write) and the tenths below every total's.
NO_HALF = -1e300
NO_TENTHS = -(2**62)
# What a reference half may be (``set_low_reference``): finite, its tenths within 64 bits.
MAX_HALF = 1e15


def half_tenths(half: float) -> int:
    """floor(1000 * half). A ratio's ``allocation_tenths`` (1000 * ratio rounded half up, exact)
    is >= half_tenths(lo) - 1 when ratio >= lo and <= half_tenths(hi) + 1 when ratio < hi,
    the extra tenth absorbing the rounding of the double ``1000 * half``."""
    return math.floor(half * 1000)


# The kept low-allocation KPIs (migration 0033): a product's section, and customers over both.
LOW_KPIS = ("MEETINGS/LOW", "CALLING/LOW", "ANY/LOW")

_MIGRATION = Path(__file__).parent / "migrations" / "versions" / "0033_low_allocation_spans.py"


@cache
def _migration() -> ModuleType:
    """Migration 0033, frozen: its span select is the one its triggers run."""
    spec = importlib.util.spec_from_file_location("_migration_0033", _MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_IDS = "__customer_ids__"


@cache
def _low_spans_insert(postgresql: bool, every: bool) -> str:
    """The insert of the low-allocation spans of every total (``every``) or of the customers
    listed in place of ``_IDS``."""
    m = _migration()
    spans = m.spans_module()
    where = "1 = 1" if every else f"t.customer_id IN ({_IDS})"
    return (
        f"INSERT INTO license_kpi_span ({spans.SPAN_COLUMNS}) "
        f"{m.spans_select(spans, postgresql, where, only_low=True)}"
    )


_KPIS = ", ".join(f"'{k}'" for k in LOW_KPIS)
# Customers refreshed per pair of statements (their ids inlined: integers only).
CHUNK = 2_000


@dataclass(frozen=True, slots=True)
class RebaseResult:
    """The reference now in force, and how many customers' spans were rebuilt (all of them
    with ``full``; none when no total's flag changed, and then nothing was written)."""

    halves: dict[tuple[str, int], float]
    customers: int
    written: bool


async def rebase_low_reference(
    session: AsyncSession, *, now: datetime, full: bool = False, look_only: bool = False
) -> RebaseResult:
    """Set every (product, band)'s reference to half its median at ``now`` (a band without a
    median gets none: it flags nothing) and rebuild the low-allocation spans it changes
    (``set_low_reference``). No figure changes; the next dashboards' corrections become
    empty."""
    from db.queries.analytics.medians import low_allocation_medians

    medians = await low_allocation_medians(session, now=now)
    halves = {key: value / 2 for key, value in sorted(medians.items())}
    return await set_low_reference(session, halves, full=full, look_only=look_only)


async def set_low_reference(
    session: AsyncSession,
    halves: dict[tuple[str, int], float],
    *,
    full: bool = False,
    look_only: bool = False,
) -> RebaseResult:
    """Make ``halves`` the reference thresholds (any values: the figures stay exact), in the
    caller's transaction. Only the customers with an ACTIVE total whose ratio lies between a
    band's old and new thresholds (its flag is all that changes) get their low-allocation
    spans rebuilt, and their partners' data versions move (``writes_for``); when there are
    none, nothing is written (the reference keeps its old values, which flag the same
    totals). ``full``: every partner's spans rebuilt (a repair), and the global epoch moves.
    On PostgreSQL every partner's write lock is taken first (``lock_every_partner``): writers
    queue meanwhile, and none writes spans at the old reference after it. ``halves`` must be
    finite (``MAX_HALF``): ValueError otherwise, nothing written. ``look_only``: write
    nothing, take no lock; ``written`` then says whether the move would write."""
    for value in halves.values():
        if not (math.isfinite(value) and abs(value) <= MAX_HALF):
            raise ValueError(f"a reference half must be finite and within +-{MAX_HALF:g}")
    postgresql = session.get_bind().dialect.name == "postgresql"
    if look_only:
        moved = {} if full else await _moved(session, await reference_halves(session), halves)
        return RebaseResult(dict(halves), len(moved), written=full or bool(moved))
    if postgresql:
        await lock_every_partner(session)
    old = await reference_halves(session)
    customers: dict[int, int] = {} if full else await _moved(session, old, halves)
    if not full and not customers:
        return RebaseResult(old, 0, written=False)
    await session.execute(delete(LICENSE_LOW_REFERENCE))
    if halves:
        rows: list[dict[str, Any]] = [
            {"product": p, "band": b, "half": h, "tenths": half_tenths(h)}
            for (p, b), h in sorted(halves.items())
        ]
        await session.execute(insert(LICENSE_LOW_REFERENCE), rows)
    # The spans' day, block and instant edges follow them (their triggers).
    if full:
        await session.execute(text(f"DELETE FROM license_kpi_span WHERE kpi IN ({_KPIS})"))
        await session.execute(text(_low_spans_insert(postgresql, every=True)))
        count = await session.scalar(
            text("SELECT COUNT(DISTINCT customer_id) FROM license_kpi_span WHERE kpi = 'ANY/LOW'")
        )
        return RebaseResult(dict(halves), int(count or 0), written=True)
    await writes_for(session, set(customers.values()))
    ids = sorted(customers)
    for at in range(0, len(ids), CHUNK):
        listed = ", ".join(str(int(i)) for i in ids[at : at + CHUNK])
        spans = f"DELETE FROM license_kpi_span WHERE kpi IN ({_KPIS}) AND customer_id IN "
        await session.execute(text(f"{spans}({listed})"))
        insert_spans = _low_spans_insert(postgresql, every=False).replace(_IDS, listed)
        await session.execute(text(insert_spans))
    return RebaseResult(dict(halves), len(ids), written=True)


class PartnersBusy(Exception):
    """Every partner's write lock could not be had within ``LOCK_ATTEMPTS`` tries."""


LOCK_ATTEMPTS = 60
# Partners are not created meanwhile (a SHARE lock on the table: an INSERT waits), and every
# partner's write lock is tried in one statement; one busy lock gives them all back.
_LOCK_ALL = "SELECT COALESCE(bool_and(pg_try_advisory_xact_lock(:lock, id)), true) FROM partner"


async def lock_every_partner(session: AsyncSession) -> None:
    """Take every partner's write lock (PostgreSQL, ``db.partner_write_lock``) for the rest of
    the transaction, and keep partners from being created until it ends: a writer of a new
    partner would read the old reference meanwhile. Nothing is waited for while a lock is
    held (try-locks in a savepoint, given back together when one is busy, then a pause): a
    transaction writing two partners in any order never deadlocks with this one. Raises
    ``PartnersBusy`` after ``LOCK_ATTEMPTS`` tries (about half a minute)."""
    from sqlalchemy.exc import DBAPIError

    from db.partner_write_lock import PARTNER_WRITE_LOCK

    for attempt in range(LOCK_ATTEMPTS):
        savepoint = await session.begin_nested()
        try:
            await session.execute(text("LOCK TABLE partner IN SHARE MODE NOWAIT"))
            held = await session.scalar(text(_LOCK_ALL), {"lock": PARTNER_WRITE_LOCK})
        except DBAPIError:  # the table lock is busy (lock_not_available)
            held = False
        if held:
            await savepoint.commit()
            return
        await savepoint.rollback()  # gives back the locks taken in it
        await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
    raise PartnersBusy("every partner's write lock stayed busy; try again")


async def _moved(
    session: AsyncSession,
    old: dict[tuple[str, int], float],
    new: dict[tuple[str, int], float],
) -> dict[int, int]:
    """customer -> partner of every ACTIVE Meetings or Calling total with purchased > 0 whose
    ratio lies between a band's old and new thresholds (``NO_HALF`` without one): the totals whose
    flag differs. One range of ``ix_license_product_total_ratio`` (partner, product, band,
    ratio) per partner and band."""
    from db.enums import SubscriptionState
    from db.license_totals import LICENSE_PRODUCT_TOTAL
    from db.models import Partner
    from db.queries.analytics.common import KPI_PRODUCTS

    t = LICENSE_PRODUCT_TOTAL.c
    p = Partner.__table__.c  # type: ignore[attr-defined]
    found: dict[int, int] = {}
    for key in sorted(set(old) | set(new)):
        product, band = key
        low, high = sorted((old.get(key, NO_HALF), new.get(key, NO_HALF)))
        if low == high or product not in KPI_PRODUCTS:
            continue
        stmt = (
            select(t.customer_id, t.partner_id)
            .select_from(LICENSE_PRODUCT_TOTAL.join(Partner.__table__, p.id == t.partner_id))  # type: ignore[attr-defined]
            .where(
                t.product == product,
                t.band == band,
                t.ratio >= low,
                t.ratio < high,
                t.state == SubscriptionState.ACTIVE.value,
                t.purchased > 0,
            )
            .distinct()
        )
        for customer, partner in await session.execute(stmt):
            found[int(customer)] = int(partner)
    return found


async def reference_halves(session: AsyncSession) -> dict[tuple[str, int], float]:
    """The reference thresholds (tests, the CLI's report)."""
    r = LICENSE_LOW_REFERENCE.c
    rows = await session.execute(select(r.product, r.band, r.half))
    return {(p, int(b)): float(h) for p, b, h in rows}
