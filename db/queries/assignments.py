"""Partner administrators assigned to customers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CustomerAssignment
from db.scope import Scope
from db.types import affected

CA = CustomerAssignment.__table__.c  # type: ignore[attr-defined]


async def is_assigned(
    session: AsyncSession, *, scope: Scope, customer_id: int, admin_id: int
) -> bool:
    row = await session.execute(
        select(CA.admin_id).where(
            CA.partner_id == scope.partner_id,
            CA.customer_id == customer_id,
            CA.admin_id == admin_id,
        )
    )
    return row.first() is not None


async def assign(
    session: AsyncSession,
    *,
    partner_id: int,
    customer_id: int,
    admin_id: int,
    by_admin_id: int,
    now: datetime,
) -> None:
    await session.execute(
        insert(CustomerAssignment).values(
            partner_id=partner_id,
            customer_id=customer_id,
            admin_id=admin_id,
            assigned_at=now,
            assigned_by_admin_id=by_admin_id,
        )
    )


async def unassign(session: AsyncSession, *, scope: Scope, customer_id: int, admin_id: int) -> int:
    result = await session.execute(
        delete(CustomerAssignment).where(
            CA.partner_id == scope.partner_id,
            CA.customer_id == customer_id,
            CA.admin_id == admin_id,
        )
    )
    return affected(result)
