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

__all__ = [
    "LICENSE_LOW_REFERENCE",
    "LOW_KPIS",
    "RebaseResult",
    "half_tenths",
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


@cache
def _low_spans_insert(postgresql: bool) -> str:
    m = _migration()
    spans = m.spans_module()
    return (
        f"INSERT INTO license_kpi_span ({spans.SPAN_COLUMNS}) "
        f"{m.spans_select(spans, postgresql, '1 = 1', only_low=True)}"
    )


@dataclass(frozen=True, slots=True)
class RebaseResult:
    halves: dict[tuple[str, int], float]
    spans: int


async def rebase_low_reference(session: AsyncSession, *, now: datetime) -> RebaseResult:
    """Set every (product, band)'s reference to half its median at ``now`` (a band without a
    median gets none: it flags nothing) and rebuild every partner's low-allocation spans at
    it (``set_low_reference``). No figure changes; the next dashboards' corrections become
    empty."""
    from db.queries.analytics.medians import low_allocation_medians

    medians = await low_allocation_medians(session, now=now)
    return await set_low_reference(
        session, {key: value / 2 for key, value in sorted(medians.items())}
    )


async def set_low_reference(
    session: AsyncSession, halves: dict[tuple[str, int], float]
) -> RebaseResult:
    """Make ``halves`` the reference thresholds (any values: the figures stay exact) and
    rebuild every partner's low-allocation spans at them, in the caller's transaction. On
    PostgreSQL every partner's write lock is taken first, in partner order
    (``db.partner_write_lock``): writers queue while the spans are rebuilt, and none writes
    spans at the old reference after it."""
    from db.partner_write_lock import PARTNER_WRITE_LOCK

    if session.get_bind().dialect.name == "postgresql":
        partners = (await session.execute(text("SELECT id FROM partner ORDER BY id"))).scalars()
        for partner_id in list(partners):
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:lock, :partner)"),
                {"lock": PARTNER_WRITE_LOCK, "partner": partner_id},
            )
        postgresql = True
    else:
        postgresql = False
    await session.execute(delete(LICENSE_LOW_REFERENCE))
    if halves:
        rows: list[dict[str, Any]] = [
            {"product": p, "band": b, "half": h, "tenths": half_tenths(h)}
            for (p, b), h in sorted(halves.items())
        ]
        await session.execute(insert(LICENSE_LOW_REFERENCE), rows)
    kpis = ", ".join(f"'{k}'" for k in LOW_KPIS)
    # The spans' day, block and instant edges follow them (their triggers).
    await session.execute(text(f"DELETE FROM license_kpi_span WHERE kpi IN ({kpis})"))
    await session.execute(text(_low_spans_insert(postgresql)))
    count = await session.scalar(
        text(f"SELECT count(*) FROM license_kpi_span WHERE kpi IN ({kpis})")
    )
    return RebaseResult(dict(halves), int(count or 0))


async def reference_halves(session: AsyncSession) -> dict[tuple[str, int], float]:
    """The reference thresholds (tests, the CLI's report)."""
    r = LICENSE_LOW_REFERENCE.c
    rows = await session.execute(select(r.product, r.band, r.half))
    return {(p, int(b)): float(h) for p, b, h in rows}
