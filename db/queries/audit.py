"""The audit log: every mutation writes one entry in the same transaction as its change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditLog

A = AuditLog.__table__.c  # type: ignore[attr-defined]


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


async def write_audit(
    session: AsyncSession,
    *,
    partner_id: int,
    admin_id: int | None,
    operation: str,
    object_type: str,
    object_id: str | None,
    before: Any,
    after: Any,
    now: datetime,
) -> None:
    await session.execute(
        insert(AuditLog).values(
            partner_id=partner_id,
            admin_id=admin_id,
            operation=operation,
            object_type=object_type,
            object_id=object_id,
            before=_json(before),
            after=_json(after),
            created_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    admin_id: int | None = None
    operation: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _conditions(partner_id: int, query: AuditQuery) -> list[Any]:
    conditions: list[Any] = [A.partner_id == partner_id]
    if query.admin_id is not None:
        conditions.append(A.admin_id == query.admin_id)
    if query.operation is not None:
        conditions.append(A.operation == query.operation)
    if query.object_id is not None:
        conditions.append(A.object_id == query.object_id)
    if query.since is not None:
        conditions.append(A.created_at >= query.since)
    if query.until is not None:
        conditions.append(A.created_at < query.until)
    return conditions


async def audit_page(
    session: AsyncSession,
    *,
    partner_id: int,
    query: AuditQuery,
    first: int,
    before_id: int | None,
    backward: bool = False,
) -> tuple[list[Any], bool]:
    """Newest first, keyset on id (the ``first`` older than ``before_id``); ``backward``: the
    ``first`` newer than it, nearest first."""
    conditions = _conditions(partner_id, query)
    if before_id is not None:
        conditions.append(A.id > before_id if backward else A.id < before_id)
    order = A.id.asc() if backward else A.id.desc()
    rows = (
        await session.execute(select(*A).where(and_(*conditions)).order_by(order).limit(first + 1))
    ).all()
    return list(rows[:first]), len(rows) > first


async def count_audit(session: AsyncSession, *, partner_id: int, query: AuditQuery) -> int:
    stmt = select(func.count()).select_from(AuditLog).where(and_(*_conditions(partner_id, query)))
    return int((await session.execute(stmt)).scalar_one())
