"""Migration 0014 (issue 19): order and invoice numbers become unique per partner, and the
strings of Order.action, Order.status and Invoice.status become enums (spelling variants folded,
anything unknown stops the upgrade)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select

from db.migrate import alembic_config, migrate
from db.models import Invoice, Order
from tests.conftest import NOW, _require_backend
from tests.databases import Database, drop_pg_database
from tests.helpers import Factory
from tests.test_partner_counters import _database_at, _run_alembic

REVISION = "0014_subscription_orders"


def before_0014() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    down = script.get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


async def _with_orders(db: Database, *orders: tuple[str, str, str]) -> tuple[int, int]:
    """A partner with a subscription, its orders (number, action, status) and two invoices."""
    f = Factory(db.engine)
    partner = await f.partner()
    sub = await f.subscription(await f.customer(partner, "Old Customer"))
    async with db.engine.begin() as conn:
        for number, action, status in orders:
            await conn.execute(
                insert(Order).values(
                    partner_id=partner,
                    subscription_id=sub,
                    order_number=number,
                    placed_at=NOW,
                    action=action,
                    description="old",
                    status=status,
                )
            )
        for status in ("paid", " Open "):
            await conn.execute(
                insert(Invoice).values(
                    partner_id=partner,
                    subscription_id=sub,
                    invoice_number="INV-1",
                    issued_at=NOW,
                    due_at=NOW,
                    amount_cents=100,
                    currency="USD",
                    status=status,
                )
            )
    return partner, sub


async def _rows(db: Database, table: Any, *columns: str) -> list[tuple[Any, ...]]:
    c = table.__table__.c
    async with db.engine.connect() as conn:
        found = await conn.execute(select(*(c[n] for n in columns)).order_by(c.id))
        return [tuple(r) for r in found]


async def _dispose(db: Database, backend: str) -> None:
    await db.engine.dispose()
    if backend == "postgresql":
        await drop_pg_database(db.url.rsplit("/", 1)[1])


async def test_numbers_become_unique_and_strings_enums(backend: str, tmp_path: Path) -> None:
    await _require_backend(backend)
    # given: a database before 0014 with a repeated order number and loosely spelled values
    db = await _database_at(backend, tmp_path, before_0014())
    try:
        await _with_orders(
            db,
            ("ORD-1", "NEW", "COMPLETED"),
            ("ORD-1", "renewal", " completed"),
            ("ORD-2", "Trial_Start", "IN_PROGRESS"),
        )

        # when
        await migrate(db.engine)

        # then
        orders = await _rows(db, Order, "id", "order_number", "action", "status")
        assert [(o[2], o[3]) for o in orders] == [
            ("NEW", "COMPLETED"),
            ("RENEWAL", "COMPLETED"),
            ("TRIAL_START", "IN_PROGRESS"),
        ]
        assert [o[1] for o in orders] == ["ORD-1", f"ORD-1-{orders[1][0]}", "ORD-2"]
        invoices = await _rows(db, Invoice, "id", "invoice_number", "status")
        assert [(i[1], i[2]) for i in invoices] == [
            ("INV-1", "PAID"),
            (f"INV-1-{invoices[1][0]}", "OPEN"),
        ]
        async with db.engine.connect() as conn:
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in sa.inspect(c).get_indexes("subscription_order")}
            )
        assert "ux_subscription_order_partner_number" in indexes

        # and back down, and up again
        await _run_alembic(db, "downgrade", before_0014())
        await _run_alembic(db, "upgrade", "head")
    finally:
        await _dispose(db, backend)


async def test_an_unknown_action_stops_the_upgrade(backend: str, tmp_path: Path) -> None:
    await _require_backend(backend)
    db = await _database_at(backend, tmp_path, before_0014())
    try:
        await _with_orders(db, ("ORD-1", "UPGRADE_PLAN", "COMPLETED"))
        with pytest.raises(RuntimeError, match="UPGRADE_PLAN"):
            await migrate(db.engine)
    finally:
        await _dispose(db, backend)
