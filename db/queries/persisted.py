"""Registered persisted queries (``persisted_query``): look one up, register a set at once.

Deployment-wide documents, not partner data: no scope applies (what a document returns is
decided per caller when it runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.persisted_models import PersistedQuery

P = PersistedQuery.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Registration:
    sha256: str
    document: str
    operation_name: str | None


async def registered_document(session: AsyncSession, sha256: str) -> str | None:
    """The registered document of ``sha256`` (lowercase hex), or None."""
    result = await session.execute(select(P.document).where(P.sha256 == sha256))
    return result.scalar_one_or_none()


async def register(
    session: AsyncSession, documents: Sequence[Registration], now: datetime
) -> list[str]:
    """Register ``documents`` (already checked); the hashes that were new. The caller commits:
    a set is registered whole or not at all."""
    hashes = sorted({d.sha256 for d in documents})
    existing: set[str] = set()
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        rows = await session.execute(select(P.sha256).where(P.sha256.in_(chunk)))
        existing.update(rows.scalars())
    new: list[str] = []
    for document in documents:
        if document.sha256 in existing:
            continue
        existing.add(document.sha256)
        new.append(document.sha256)
        session.add(
            PersistedQuery(
                sha256=document.sha256,
                document=document.document,
                operation_name=document.operation_name,
                registered_at=now,
            )
        )
    await session.flush()
    return new


async def registered(session: AsyncSession) -> list[tuple[str, str | None, datetime]]:
    """Every registered document's hash, operation name and registration time, oldest first."""
    rows = await session.execute(
        select(P.sha256, P.operation_name, P.registered_at).order_by(P.registered_at, P.sha256)
    )
    return [(r[0], r[1], r[2]) for r in rows]
