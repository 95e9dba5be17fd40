"""What every mutation shares: typed user errors, one transaction, one audit entry.

Expected failures are returned as ``userErrors`` (data); a refusal by the authorization door is a
``FORBIDDEN`` GraphQL error; either way the transaction rolls back and nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.audit import write_audit
from db.queries.writes import begin_write
from graph.context import Context
from graph.errors import ApiError, forbidden
from graph.ids import pk_of


@strawberry.type(description="An expected failure of a mutation; nothing was written.")
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path of the input field at fault, when one is."
    )
    message: str = strawberry.field(description="What is wrong, for people.")
    code: str = strawberry.field(description="What is wrong, for programs (stable).")


class UserErrors(Exception):
    """Raise inside ``transaction`` to roll back and answer with these user errors."""

    def __init__(self, *errors: UserError) -> None:
        super().__init__(", ".join(e.code for e in errors))
        self.errors = list(errors)


def user_error(code: str, message: str, *path: str) -> UserErrors:
    return UserErrors(UserError(field=list(path) or None, message=message, code=code))


EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def input_pk(raw: str, type_name: str, *path: str) -> int:
    """The primary key of a global ID given in a mutation's input; a malformed ID, or one of
    another type, is an ``INVALID_ID`` user error on ``path``."""
    try:
        return pk_of(raw, type_name, ".".join(path) or "id")
    except ApiError:
        raise user_error("INVALID_ID", f"Not a {type_name} ID.", *path) from None


@dataclass
class Audit:
    """The audit entries a mutation collects; written inside its transaction."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        operation: str,
        object_type: str,
        object_id: str | None,
        *,
        before: Any = None,
        after: Any = None,
    ) -> None:
        self.entries.append(
            {
                "operation": operation,
                "object_type": object_type,
                "object_id": object_id,
                "before": before,
                "after": after,
            }
        )


@asynccontextmanager
async def transaction(ctx: Context) -> AsyncIterator[tuple[AsyncSession, Audit]]:
    """All or nothing: commit the change and its audit entries together, or neither."""
    if ctx.principal_gone:
        raise forbidden("Your admin was deactivated, or its token revoked, by this request.")
    audit = Audit()
    async with ctx.db() as session:
        if session.in_transaction():
            await session.rollback()  # end the implicit read transaction of earlier fields
        try:
            await begin_write(session)
            yield session, audit
            for entry in audit.entries:
                await write_audit(
                    session,
                    partner_id=ctx.principal.partner_id,
                    admin_id=ctx.principal.admin_id,
                    now=ctx.now,
                    **entry,
                )
            await session.commit()
            await ctx.reload_principal(session)
        except BaseException:
            await session.rollback()
            raise
        finally:
            # Written or rolled back, what loaders and shared work read before (or inside the
            # transaction) is stale: the payload and later mutations read afresh.
            ctx.forget()
