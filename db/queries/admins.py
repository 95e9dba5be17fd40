"""Admins, partners and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.driver_query import DriverQuery
from db.engine import execute_core, request_connection
from db.models import Admin, ApiToken, AppMeta, Partner
from db.partner_versions import PARTNER_DATA_VERSION
from db.types import affected
from db.versioning import DATA_VERSION_KEY

AD = Admin.__table__.c  # type: ignore[attr-defined]
TK = ApiToken.__table__.c  # type: ignore[attr-defined]
AM = AppMeta.__table__.c  # type: ignore[attr-defined]
PT = Partner.__table__.c  # type: ignore[attr-defined]
PV = PARTNER_DATA_VERSION.c


TOKEN_PREFIX = "ph_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A random bearer token: 32 bytes of entropy, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated admin behind a request."""

    admin_id: int
    partner_id: int
    email: str
    name: str
    role: str
    token_id: int
    policy_version: str = "0"
    # "<global epoch>.<partner's version>" (db.versioning.caller_data_version)
    data_version: str = "0.0"
    # the deployment's shared version (db.versioning: what deployment-wide figures depend on)
    shared_version: str = "0"


# Built once (a request's first statement; building it cost more than running it). Also the
# check riding along a provisional request's first statement (db.token_check).
LOOKUP = (
    select(
        AD.id,
        AD.partner_id,
        AD.email,
        AD.name,
        AD.role,
        TK.id,
        func.coalesce(select(AM.value).where(AM.key == "policy_version").scalar_subquery(), "0"),
        func.coalesce(select(AM.value).where(AM.key == DATA_VERSION_KEY).scalar_subquery(), "0"),
        func.coalesce(
            select(PV.version).where(PV.partner_id == AD.partner_id).scalar_subquery(), 0
        ),
        func.coalesce(select(func.sum(PV.shared_version)).scalar_subquery(), 0),
    )
    .join(ApiToken, TK.admin_id == AD.id)
    .where(TK.revoked_at.is_(None), AD.active.is_(True))
)
_BY_TOKEN_ID = LOOKUP.where(TK.id == bindparam("token_id"))
# Run on the driver's connection (db.driver_query): every request's first statement.
AUTHENTICATE = DriverQuery(LOOKUP.where(TK.token_hash == bindparam("token_hash")))


async def authenticate_token(
    session: AsyncSession, *, token: str, connection: AsyncConnection | None = None
) -> Principal | None:
    """The active admin owning an unrevoked ``token``, or None. One statement, on ``session``'s
    connection (``connection`` when the caller has it already: asking the session again cost a
    greenlet switch and its transaction's lookup)."""
    if connection is None:
        connection = await request_connection(session)
    row = await AUTHENTICATE.first(connection, {"token_hash": hash_token(token)})
    return None if row is None else principal_from(row)


def principal_from(row: Any) -> Principal:
    admin_id, partner_id, email, name, role, token_id, policy, epoch, partner_version, shared = row
    return Principal(
        admin_id,
        partner_id,
        email,
        name,
        role,
        token_id,
        policy,
        f"{epoch}.{partner_version}",
        str(int(shared)),
    )


async def principal_of_token(session: AsyncSession, *, token_id: int) -> Principal | None:
    """The caller as it is now (after a write of its own request): None once its token is
    revoked or its admin deactivated."""
    row = (await execute_core(session, _BY_TOKEN_ID, {"token_id": token_id})).first()
    return None if row is None else principal_from(row)


async def issue_token(
    session: AsyncSession, *, admin_id: int, now: datetime, label: str | None = None
) -> str:
    """Create a token for ``admin_id``; the secret is returned once and only its hash is kept."""
    token = new_token()
    session.add(
        ApiToken(admin_id=admin_id, token_hash=hash_token(token), label=label, created_at=now)
    )
    await session.flush()
    return token


async def revoke_token(session: AsyncSession, *, token: str, now: datetime) -> bool:
    result = await session.execute(
        update(ApiToken)
        .where(TK.token_hash == hash_token(token), TK.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(affected(result))


async def active_token_owner(session: AsyncSession, *, token: str) -> tuple[int, int] | None:
    """(admin id, partner id) of an unrevoked ``token``, or None."""
    row = (
        await session.execute(
            select(AD.id, AD.partner_id)
            .join(ApiToken, TK.admin_id == AD.id)
            .where(TK.token_hash == hash_token(token), TK.revoked_at.is_(None))
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def revoke_admin_tokens(session: AsyncSession, *, admin_id: int, now: datetime) -> int:
    result = await session.execute(
        update(ApiToken)
        .where(TK.admin_id == admin_id, TK.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return affected(result)


async def admin_by_email(session: AsyncSession, *, email: str) -> Admin | None:
    return (
        await session.execute(select(Admin).where(AD.email == email.strip().lower()))
    ).scalar_one_or_none()


async def partner_by_name(session: AsyncSession, *, name: str) -> Partner | None:
    return (await session.execute(select(Partner).where(PT.name == name))).scalar_one_or_none()


async def partners_by_ids(session: AsyncSession, *, ids: Sequence[int]) -> dict[int, Partner]:
    rows = (await session.execute(select(Partner).where(PT.id.in_(ids)))).scalars()
    return {p.id: p for p in rows if p.id is not None}


async def admins_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int]
) -> dict[int, Admin]:
    rows = (
        await session.execute(select(Admin).where(AD.partner_id == partner_id, AD.id.in_(ids)))
    ).scalars()
    return {a.id: a for a in rows if a.id is not None}


async def create_admin(
    session: AsyncSession, *, partner_id: int, email: str, name: str, role: str, now: datetime
) -> Admin:
    admin = Admin(
        partner_id=partner_id,
        email=email.strip().lower(),
        name=name,
        role=role,
        active=True,
        created_at=now,
    )
    session.add(admin)
    await session.flush()
    return admin


A = AD


async def count_admins(session: AsyncSession, *, partner_id: int) -> int:
    return int(
        (
            await session.execute(
                select(func.count()).select_from(Admin).where(A.partner_id == partner_id)
            )
        ).scalar_one()
    )


async def admin_rows_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int]
) -> dict[int, Any]:
    rows = await session.execute(select(*A).where(A.partner_id == partner_id, A.id.in_(ids)))
    return {row.id: row for row in rows}
