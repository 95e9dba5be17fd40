"""Casbin policy lines stored in the database (``casbin_rule``), seeded from ``policies/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CasbinRule

PolicyLine = tuple[str, ...]  # (ptype, v0, v1, ...)


def read_policy_csv(path: Path) -> list[PolicyLine]:
    lines: list[PolicyLine] = []
    for raw in path.read_text().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        lines.append(tuple(part.strip() for part in raw.split(",")))
    return lines


async def seed_policies(session: AsyncSession, *, lines: Sequence[PolicyLine]) -> bool:
    """Insert ``lines`` when the database holds no policy yet; True when it seeded."""
    count = (await session.execute(select(func.count()).select_from(CasbinRule))).scalar_one()
    if count:
        return False
    rows = []
    for line in lines:
        values = list(line[1:]) + [None] * (6 - len(line[1:]))
        rows.append({"ptype": line[0], **{f"v{i}": v for i, v in enumerate(values)}})
    await session.execute(insert(CasbinRule), rows)
    return True


async def load_policies(session: AsyncSession) -> list[PolicyLine]:
    rows = (
        await session.execute(
            select(
                CasbinRule.ptype,
                CasbinRule.v0,
                CasbinRule.v1,
                CasbinRule.v2,
                CasbinRule.v3,
                CasbinRule.v4,
                CasbinRule.v5,
            ).order_by(CasbinRule.id)
        )
    ).all()
    return [tuple(v for v in row if v is not None) for row in rows]
