"""The per-token cost budgets that several API instances on one PostgreSQL database share.

``cost_budget`` holds one token bucket per API token: its ``level`` (cost points left) at
``stamp`` (seconds since the epoch, the database's clock, so instances with skewed clocks agree)
and whether the last spend was ``granted``. One statement refills, spends and answers; the row
lock it takes lasts that statement only (it runs outside any request's transaction). Unlogged on
PostgreSQL: a crash that loses the table loses at most a minute of spending.

This module does not import ``db.models``, so ``db.models`` may import it at its end to register
the table with the same metadata.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, Table
from sqlmodel import SQLModel

__all__ = ["COST_BUDGET", "SPEND"]

COST_BUDGET = Table(
    "cost_budget",
    SQLModel.metadata,
    Column("token_id", Integer, primary_key=True, autoincrement=False),
    Column("level", Float, nullable=False),
    Column("stamp", Float, nullable=False),
    Column("granted", Boolean, nullable=False),
)

# $1 token id, $2 cost (negative: points given back, up to the capacity), $3 capacity (points a
# minute), $4 refill rate (points a second).
_REFILLED = "LEAST($3::float8, b.level + GREATEST(0, EXCLUDED.stamp - b.stamp) * $4::float8)"
SPEND = f"""
INSERT INTO cost_budget AS b (token_id, level, stamp, granted)
VALUES (
    $1,
    CASE WHEN $2::float8 <= $3::float8 THEN LEAST($3::float8, $3::float8 - $2::float8)
        ELSE $3::float8 END,
    extract(epoch FROM clock_timestamp()),
    $2::float8 <= $3::float8
)
ON CONFLICT (token_id) DO UPDATE SET
    level = CASE WHEN {_REFILLED} >= $2::float8 THEN LEAST($3::float8, {_REFILLED} - $2::float8)
        ELSE {_REFILLED} END,
    stamp = GREATEST(b.stamp, EXCLUDED.stamp),
    granted = {_REFILLED} >= $2::float8
RETURNING level, granted
"""
