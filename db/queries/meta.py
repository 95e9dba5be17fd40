"""Facts about the database itself, kept in ``app_meta``."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AppMeta

SECRET_KEY = "secret_key"


async def get_or_create_secret(session: AsyncSession) -> str:
    """The per-database secret that signs cursors and launch links (created once)."""
    row = await session.get(AppMeta, SECRET_KEY)
    if row is None:
        row = AppMeta(key=SECRET_KEY, value=secrets.token_hex(32))
        session.add(row)
        await session.commit()
    return row.value
