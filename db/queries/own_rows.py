"""The caller's own partner and admin rows, read by id (``viewer``, ``partner``, ``node`` of
one's partner, the launch mutations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.admins import AD as A
from db.queries.admins import PT
from db.queries.customers import DrivenRecords

# ``viewer`` and ``partner`` are an app's first query. These run on the request's driver
# connection, carrying a provisional request's token lookup (``DrivenRecords``): through
# ``session.execute`` each built its statement anew, took SQLAlchemy's execution path (~1 ms of
# CPU a ``{ viewer { id } }`` here) and a round trip of its own after the lookup's.
_PARTNER_BY_ID = DrivenRecords(select(*PT).where(PT.id == bindparam("partner_id")))
_ADMIN_BY_ID = DrivenRecords(
    select(*A).where(A.partner_id == bindparam("partner_id"), A.id == bindparam("admin_id"))
)


async def partner_row(session: AsyncSession, *, partner_id: int) -> Any | None:
    """The partner's row, or None."""
    rows = await _PARTNER_BY_ID.read(session, {"partner_id": partner_id})
    return rows[0] if rows else None


async def admin_row(session: AsyncSession, *, partner_id: int, admin_id: int) -> Any | None:
    """The admin ``admin_id`` of the partner, or None."""
    rows = await _ADMIN_BY_ID.read(session, {"partner_id": partner_id, "admin_id": admin_id})
    return rows[0] if rows else None
