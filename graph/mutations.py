"""What every mutation shares: ``run_mutation`` (authorize, validate, change, audit, respond in
one transaction), typed user errors, the audit entries.

Expected failures are returned as ``userErrors`` (data); a refusal by the authorization door is a
``FORBIDDEN`` GraphQL error; either way the transaction rolls back and the only thing written is
the audit entry of the refusal (``audit_refusal``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.audit import write_audit
from db.queries.writes import begin_write, writes_for
from db.scope import Scope
from graph.auth.permissions import Act, Obj
from graph.context import Context
from graph.errors import ApiError, ErrorCode, forbidden
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
            # End the read transaction of earlier statements (on SQLite the request's snapshot,
            # ``db.engine.read_from_one_snapshot``: a write inside it fails once another
            # writer committed since it began, without waiting).
            await session.rollback()
        try:
            await begin_write(session)
            # The caller's partner is the only one whose data its scope can write: its version
            # moves at commit, no other partner's cached responses are touched.
            await writes_for(session, ctx.principal.partner_id)
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
            ctx.committed = True
            await ctx.reload_principal(session)
        except BaseException:
            await session.rollback()
            raise
        finally:
            # Written or rolled back, what loaders and shared work read before (or inside the
            # transaction) is stale: the payload and later mutations read afresh.
            ctx.forget()


# --- the one shape of a mutation -------------------------------------------------------------

REFUSAL = "refusal"  # object_type of the audit entry of a refused mutation
P = TypeVar("P")


@dataclass
class Change:
    """What ``work`` gets: the caller's access for the mutation, its transaction, its audit."""

    ctx: Context
    scope: Scope
    session: AsyncSession
    audit: Audit
    operation: str

    unchanged: bool = False

    def record(
        self, object_type: str, object_id: str | None, *, before: Any = None, after: Any = None
    ) -> None:
        """An audit entry of this mutation's operation."""
        self.audit.record(self.operation, object_type, object_id, before=before, after=after)

    def nothing_changed(self) -> None:
        """Say so when the input asked for no change (an update to the same values): the one
        way to finish without an audit entry, explicit at the call site."""
        self.unchanged = True

    def record_update(
        self, object_type: str, object_id: str, row: Any, values: dict[str, Any]
    ) -> bool:
        """The audit entry of an update of ``values`` on ``row`` (each value before and after);
        with no values, ``nothing_changed``. True when there is something to write."""
        if not values:
            self.nothing_changed()
            return False
        before = {k: getattr(row, k) for k in values}
        self.record(object_type, object_id, before=before, after=values)
        return True


async def audit_refusal(ctx: Context, operation: str, codes: list[str]) -> None:
    """The audit entry of a refused mutation, in its own small transaction (the mutation's
    was rolled back): who tried what, and the codes it got. Nothing else is written."""
    async with ctx.db() as session:
        if session.in_transaction():
            await session.rollback()
        try:
            await begin_write(session)
            await writes_for(session, ctx.principal.partner_id)
            await write_audit(
                session,
                partner_id=ctx.principal.partner_id,
                admin_id=ctx.principal.admin_id,
                operation=operation,
                object_type=REFUSAL,
                object_id=None,
                before=None,
                after={"codes": codes},
                now=ctx.now,
            )
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def run_mutation(
    ctx: Context,
    *,
    operation: str,
    obj: Obj,
    act: Act,
    work: Callable[[Change], Awaitable[P]],
    refused: Callable[[list[UserError]], P],
    validate: Callable[[], Any] | None = None,
    audited: bool = True,
    whole_partner: bool = False,
    on_conflict: Callable[[], UserErrors] | None = None,
    decide: Callable[[], Scope | None] | None = None,
    refusal: str | None = None,
) -> P:
    """Authorize, validate, change, audit, respond — the shape of every mutation.

    The caller's scope for ``act`` on ``obj`` is decided first (a refusal is ``FORBIDDEN``);
    ``validate`` checks the input before any lock is taken; ``work`` changes the data inside
    one transaction, records its audit entries on the ``Change`` and returns the payload.
    A ``UserErrors`` raised by either rolls everything back and answers ``refused(errors)``.
    Every refusal is audited (``audit_refusal``); a ``work`` that changed something without an
    audit entry is a bug and fails loudly rather than commit unaudited (``audited=False`` only
    for an operation that writes nothing of the partner's). ``whole_partner`` refuses an
    ``assigned`` scope: the operation touches every customer of the partner. ``on_conflict``
    turns a unique-constraint violation (a concurrent twin won the race) into user errors.
    ``decide`` replaces the one (``obj``, ``act``) decision for an operation that any of several
    rights allows (``verifyLaunchToken``), with ``refusal`` the message when none does."""
    scope = decide() if decide else ctx.services.authorizer.scope(ctx.principal, obj, act)
    if scope is None or (whole_partner and scope.assigned_admin_id is not None):
        await audit_refusal(ctx, operation, [ErrorCode.FORBIDDEN.value])
        if scope is None:
            raise forbidden(refusal or f"Your role may not {act.value} {obj.value} objects.")
        raise forbidden(f"Only administrators of every customer may {act.value} {obj.value}.")
    try:
        if validate is not None:
            validate()
        async with transaction(ctx) as (session, audit):
            change = Change(ctx, scope, session, audit, operation)
            payload = await work(change)
            if audited and not audit.entries and not change.unchanged:
                raise RuntimeError(f"{operation} changed data without an audit entry")
    except IntegrityError:
        if on_conflict is None:
            raise
        errors = on_conflict().errors
        await audit_refusal(ctx, operation, [error.code for error in errors])
        return refused(errors)
    except UserErrors as e:
        await audit_refusal(ctx, operation, [error.code for error in e.errors])
        return refused(e.errors)
    except ApiError as e:
        await audit_refusal(ctx, operation, [e.code.value])
        raise
    return payload
