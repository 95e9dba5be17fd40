"""Tags of a partner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Tag

T = Tag.__table__.c  # type: ignore[attr-defined]


async def tags_of_partner(session: AsyncSession, *, partner_id: int) -> list[Row[Any]]:
    rows = await session.execute(
        select(*T).where(T.partner_id == partner_id).order_by(T.name_key, T.id)
    )
    return list(rows.all())


async def tags_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    rows = await session.execute(select(*T).where(T.partner_id == partner_id, T.id.in_(list(ids))))
    return {row.id: row for row in rows}
