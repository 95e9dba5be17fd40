"""Casbin policy lines stored in the database (``casbin_rule``), seeded from ``policies/``.

``policy_version`` in ``app_meta`` is bumped in the same transaction as every change; each API
instance compares it on every request (it rides along with token authentication, no extra
statement) and reloads its enforcer when it moved, so a change made through one instance is
enforced by all of them from their next request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AppMeta, CasbinRule, CustomRole
from db.queries.customers import DrivenRecords

PolicyLine = tuple[str, ...]  # (ptype, v0, v1, ...)
POLICY_VERSION_KEY = "policy_version"
R = CasbinRule.__table__.c  # type: ignore[attr-defined]


def read_policy_csv(path: Path) -> list[PolicyLine]:
    lines: list[PolicyLine] = []
    for raw in path.read_text().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        lines.append(tuple(part.strip() for part in raw.split(",")))
    return lines


def _row(line: PolicyLine) -> dict[str, Any]:
    values = list(line[1:]) + [None] * (6 - len(line[1:]))
    return {"ptype": line[0], **{f"v{i}": v for i, v in enumerate(values)}}


async def seed_policies(session: AsyncSession, *, lines: Sequence[PolicyLine]) -> bool:
    """Insert ``lines`` when the database holds no policy yet; True when it seeded."""
    count = (await session.execute(select(func.count()).select_from(CasbinRule))).scalar_one()
    if count:
        return False
    await session.execute(insert(CasbinRule), [_row(line) for line in lines])
    await bump_policy_version(session)
    return True


async def load_policies(session: AsyncSession) -> tuple[list[PolicyLine], str]:
    """Every policy line and the version they carry."""
    rows = (
        await session.execute(select(R.ptype, R.v0, R.v1, R.v2, R.v3, R.v4, R.v5).order_by(R.id))
    ).all()
    version = await session.get(AppMeta, POLICY_VERSION_KEY)
    lines = [tuple(v for v in row if v is not None) for row in rows]
    return lines, version.value if version else "0"


async def bump_policy_version(session: AsyncSession) -> None:
    result = await session.execute(
        update(AppMeta)
        .where(AppMeta.key == POLICY_VERSION_KEY)  # type: ignore[arg-type]
        .values(value=cast(cast(AppMeta.value, Integer) + 1, String))
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await session.execute(insert(AppMeta).values(key=POLICY_VERSION_KEY, value="1"))


def _match(line: PolicyLine) -> Any:
    row = _row(line)
    return and_(*[(R[k] == v) if v is not None else R[k].is_(None) for k, v in row.items()])


async def add_policy_line(session: AsyncSession, *, line: PolicyLine) -> None:
    await session.execute(insert(CasbinRule).values(**_row(line)))
    await bump_policy_version(session)


async def remove_policy_line(session: AsyncSession, *, line: PolicyLine) -> int:
    result = await session.execute(delete(CasbinRule).where(_match(line)))
    await bump_policy_version(session)
    return int(result.rowcount)  # type: ignore[attr-defined]


_CR = CustomRole.__table__.c  # type: ignore[attr-defined]
# The ``roles`` query's read, on the request's driver connection carrying a provisional
# request's token lookup (``DrivenRecords``): one statement where it took two, and no more rows
# than the answer holds.
_FIRST_CUSTOM_ROLES = DrivenRecords(
    select(*_CR)
    .where(_CR.partner_id == bindparam("partner_id"))
    .order_by(_CR.name)
    .limit(bindparam("limit"))
)


async def custom_roles(
    session: AsyncSession, *, partner_id: int, limit: int | None = None
) -> list[Any]:
    """The partner's custom roles by name: all of them (a mutation checking a role's name), or
    the first ``limit``."""
    if limit is not None:
        params = {"partner_id": partner_id, "limit": limit}
        found: list[Any] = await _FIRST_CUSTOM_ROLES.read(session, params)
        return found
    stmt = select(*_CR).where(_CR.partner_id == partner_id).order_by(_CR.name)
    return list((await session.execute(stmt)).all())


async def create_custom_role(
    session: AsyncSession, *, partner_id: int, name: str, description: str, now: datetime
) -> int:
    result = await session.execute(
        insert(CustomRole)
        .values(partner_id=partner_id, name=name, description=description, created_at=now)
        .returning(CustomRole.__table__.c.id)  # type: ignore[attr-defined]
    )
    return int(result.scalar_one())
