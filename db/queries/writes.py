"""Serialising writes that read before they write (limits, "no second trial", ...).

PostgreSQL: the customer rows a mutation depends on are locked (``SELECT ... FOR UPDATE``) so
two concurrent mutations on one customer run one after the other. SQLite has one writer at a
time; a transaction that *reads* first and then writes fails with SQLITE_BUSY in WAL mode when
another writer got in between, so on SQLite a mutation takes the write lock with its first
statement (and waits for it up to ``busy_timeout``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Customer
from db.versioning import WRITE_LOCK, writes_for

CU = Customer.__table__.c  # type: ignore[attr-defined]


__all__ = ["begin_write", "lock_customers", "writes_for"]


async def begin_write(session: AsyncSession) -> None:
    """Call first in a mutation's transaction: on SQLite, take the write lock now."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text(WRITE_LOCK))


async def lock_customers(session: AsyncSession, customer_ids: Sequence[int]) -> None:
    """PostgreSQL row locks on customers (a no-op on SQLite, already serialised)."""
    if session.get_bind().dialect.name != "sqlite" and customer_ids:
        await session.execute(
            select(CU.id)
            .where(CU.id.in_(sorted(set(customer_ids))))
            .order_by(CU.id)
            .with_for_update()
        )
