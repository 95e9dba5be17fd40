"""Launch tokens: issued for one admin, role and organization; used once, within minutes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Customer, LaunchToken, Partner
from db.types import affected

LT = LaunchToken.__table__.c  # type: ignore[attr-defined]


async def record_launch(
    session: AsyncSession,
    *,
    jti: str,
    partner_id: int,
    admin_id: int,
    role: str,
    organization_type: str,
    organization_id: int,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(LaunchToken).values(
            jti=jti,
            partner_id=partner_id,
            admin_id=admin_id,
            role=role,
            organization_type=organization_type,
            organization_id=organization_id,
            issued_at=issued_at,
            expires_at=expires_at,
        )
    )


async def use_launch(session: AsyncSession, *, jti: str, now: datetime) -> bool:
    """Mark the token used, only if it was unused and unexpired (a concurrent use loses)."""
    result = await session.execute(
        update(LaunchToken)
        .where(LT.jti == jti, LT.used_at.is_(None), LT.expires_at > now)
        .values(used_at=now)
    )
    return affected(result) > 0


async def launch_row(session: AsyncSession, *, jti: str) -> Any:
    return (await session.execute(select(*LT).where(LT.jti == jti))).first()


async def organization_name(session: AsyncSession, *, kind: str, pk: int) -> str:
    model: Any = Customer if kind == "CUSTOMER" else Partner
    c = model.__table__.c
    return str((await session.execute(select(c.name).where(c.id == pk))).scalar_one())


async def set_partner_setup(
    session: AsyncSession, *, partner_id: int, values: dict[str, Any]
) -> None:
    p = Partner.__table__.c  # type: ignore[attr-defined]
    await session.execute(update(Partner).where(p.id == partner_id).values(**values))
