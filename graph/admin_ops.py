"""Creating an administrator: the one operation behind ``createAdmin`` and ``partner-hub admin
create``, so the API and the command line cannot drift (same checks, same audit entry).

Who writes is explicit: an admin of the partner, whose permissions are checked here (it must
manage admins and may only give a role within its own permissions), or the system (the
operator at the command line, who holds the database already), audited with no admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.engine import session_factory
from db.models import Admin
from db.queries import admin_management as adm
from db.queries import policies as pq
from db.queries.admins import create_admin as insert_admin
from db.queries.audit import write_audit
from db.queries.writes import begin_write
from graph.auth.escalation import Guard
from graph.auth.permissions import BUILT_IN_ROLES, Act, Obj
from graph.ids import to_global_id
from graph.mutations import EMAIL, Audit, user_error


@dataclass(frozen=True, slots=True)
class Actor:
    """Who writes, in which partner: an admin, or the system (``admin_id`` None)."""

    partner_id: int
    admin_id: int | None

    @classmethod
    def system(cls, partner_id: int) -> Actor:
        return cls(partner_id=partner_id, admin_id=None)


def public(row: Any) -> dict[str, Any]:
    """An admin as its audit entries show it."""
    return {"email": row.email, "name": row.name, "role": row.role, "active": row.active}


def checked_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise user_error("INVALID_NAME", "A name is 1-200 characters.", "name")
    return name


def checked_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise user_error("INVALID_EMAIL", "Not a valid email address.", "email")
    return email


async def known_role(session: AsyncSession, partner_id: int, role: str) -> None:
    """A built-in role or one of this partner's custom roles (``UNKNOWN_ROLE`` otherwise)."""
    if role in BUILT_IN_ROLES:
        return
    custom = await pq.custom_roles(session, partner_id=partner_id)
    if role not in {r.name for r in custom}:
        raise user_error("UNKNOWN_ROLE", f"No role named {role!r}.", "role")


async def create_admin(
    session: AsyncSession,
    audit: Audit,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: str,
    now: datetime,
) -> Admin:
    """Validate, authorize and insert a new admin of ``actor``'s partner, and audit it.

    Raises ``UserErrors`` (bad input) or a ``FORBIDDEN`` error; call inside a write
    transaction, which rolls everything back on either.
    """
    email, name = checked_email(email), checked_name(name)
    await adm.lock_partner(session, partner_id=actor.partner_id)
    await known_role(session, actor.partner_id, role)
    if actor.admin_id is not None:
        guard = await Guard.load(session, partner_id=actor.partner_id, admin_id=actor.admin_id)
        guard.require(Obj.ADMIN, Act.MANAGE)
        guard.may_give(role)
    if await adm.email_taken(session, email=email):
        raise user_error("EMAIL_TAKEN", "An admin with this email exists.", "email")
    try:
        admin = await insert_admin(
            session, partner_id=actor.partner_id, email=email, name=name, role=role, now=now
        )
    except IntegrityError:
        # the email was taken (by any partner) between the check and the insert
        raise user_error("EMAIL_TAKEN", "An admin with this email exists.", "email") from None
    assert admin.id is not None
    audit.record("createAdmin", "admin", to_global_id("Admin", admin.id), after=public(admin))
    return admin


@asynccontextmanager
async def system_transaction(
    engine: AsyncEngine, actor: Actor, now: datetime
) -> AsyncIterator[tuple[AsyncSession, Audit]]:
    """``graph.mutations.transaction`` for the command line: the change and its audit entries
    (written with ``actor``'s admin, none for the system) commit together, or neither."""
    audit = Audit()
    async with session_factory(engine)() as session:
        try:
            await begin_write(session)
            yield session, audit
            for entry in audit.entries:
                await write_audit(
                    session,
                    partner_id=actor.partner_id,
                    admin_id=actor.admin_id,
                    now=now,
                    **entry,
                )
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
