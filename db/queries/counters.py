"""Per-partner sequences of human-visible numbers (helpdesk case numbers).

A number shown to people must not reveal how busy other partners are, so each partner counts
its own: ``partner_counter`` keeps, per partner and sequence, the last number handed out.
``next_number`` increments it with one upsert (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``)
inside the caller's transaction. On PostgreSQL the upsert locks the partner's counter row until
that transaction ends, so concurrent creations of the same partner queue on it (other partners
are not affected) and never get the same number; a rolled-back creation rolls its increment back
too, so numbers have no gaps. SQLite serialises writers anyway. A unique index on
(partner_id, number) of each numbered table guards the result.

Why a counter row rather than ``MAX(number) + 1`` with a retry on the unique index: the retry
would need a savepoint and a loop around a transaction that also writes the audit entry, and
under contention it fails repeatedly; the row lock makes the waiting explicit and bounded by one
short transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import PartnerCounter

HELPDESK_CASE = "helpdesk_case"  # migration 0011 seeds this counter from existing cases
# Order and invoice numbers (db.queries.orders): a partner's counter starts, at its first use,
# after the orders (invoices) the partner already has, whoever wrote them (a seed, an import).
SUBSCRIPTION_ORDER = "subscription_order"
INVOICE = "invoice"

_C = PartnerCounter.__table__.c  # type: ignore[attr-defined]


async def next_number(db: AsyncSession | AsyncConnection, *, partner_id: int, name: str) -> int:
    """The partner's next number of sequence ``name`` (1 for its first), taken in the caller's
    transaction."""
    dialect = db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(PartnerCounter)
        .values(partner_id=partner_id, name=name, value=1)
        .on_conflict_do_update(index_elements=["partner_id", "name"], set_={"value": _C.value + 1})
        .returning(_C.value)
    )
    return int((await db.execute(stmt)).scalar_one())


async def start_counter(
    db: AsyncSession | AsyncConnection, *, partner_id: int, name: str, after: Any
) -> None:
    """Create the partner's counter ``name`` at ``after`` (a scalar subquery: the numbers
    already used) unless it exists. The subquery runs once per partner and sequence, not per
    number; two first uses at once both insert-or-nothing, and one row results."""
    found = await db.execute(select(_C.value).where(_C.partner_id == partner_id, _C.name == name))
    if found.first() is not None:
        return
    dialect = db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await db.execute(
        insert(PartnerCounter)
        .values(partner_id=partner_id, name=name, value=after)
        .on_conflict_do_nothing(index_elements=["partner_id", "name"])
    )
