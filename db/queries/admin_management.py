"""Writes on administrators: create, update, deactivate (tokens revoked in the same step)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Admin, ApiToken, Partner

A = Admin.__table__.c  # type: ignore[attr-defined]


async def lock_partner(session: AsyncSession, *, partner_id: int) -> None:
    """Serialise the admin and policy changes of one partner: call first in their transaction.

    Each such change checks that the partner keeps an active admin able to manage it; two
    concurrent changes (two full admins deactivating each other) would each pass that check
    alone and together lock the partner out. PostgreSQL: a row lock on the partner, so the
    second change reads what the first committed. SQLite: a mutation holds the database's
    write lock from its first statement already (``db.queries.writes.begin_write``).
    """
    if session.bind.dialect.name != "sqlite":  # type: ignore[union-attr]
        p = Partner.__table__.c  # type: ignore[attr-defined]
        await session.execute(select(p.id).where(p.id == partner_id).with_for_update())


async def active_admin_roles(session: AsyncSession, *, partner_id: int) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(A.id, A.role).where(A.partner_id == partner_id, A.active.is_(True)).order_by(A.id)
    )
    return [(row.id, row.role) for row in rows]


async def admin_row(session: AsyncSession, *, partner_id: int, admin_id: int) -> Any:
    return (
        await session.execute(select(*A).where(A.partner_id == partner_id, A.id == admin_id))
    ).first()


async def email_taken(session: AsyncSession, *, email: str) -> bool:
    count = await session.execute(select(func.count()).select_from(Admin).where(A.email == email))
    return bool(count.scalar_one())


async def update_admin(session: AsyncSession, *, admin_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(Admin).where(A.id == admin_id).values(**values))


async def deactivate_admin(session: AsyncSession, *, admin_id: int, now: datetime) -> None:
    await session.execute(
        update(Admin).where(A.id == admin_id).values(active=False, deactivated_at=now)
    )
    t = ApiToken.__table__.c  # type: ignore[attr-defined]
    await session.execute(
        update(ApiToken)
        .where(t.admin_id == admin_id, t.revoked_at.is_(None))
        .values(revoked_at=now)
    )
