"""Who may launch into an organization, and so who may issue or use a launch token.

One rule serves the launch mutations and ``verifyLaunchToken`` (issue 14, findings 3 and 4):

- a customer's console: ``customer write`` (Casbin) over that customer (its SQL scope), the
  right ``launchCustomerOrganization`` asks for;
- the partner's own organization: ``admin manage``, the right ``launchMyOrganization`` asks for.

Verifying a token is a write (it uses the token up and hands out a grant into a console), so
it asks the *caller* for the same right over the same organization as launching it does: an
admin who could not launch there cannot consume a link there either (read-only and sales admins
hold neither right and are refused with ``FORBIDDEN`` before any token is read). The same rule
is asked again for the *launching* admin, as it is now, so a link stops working when that admin
loses the customer (unassigned, re-roled, a policy change).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import customers as cq
from db.queries.admins import Principal
from db.scope import Scope
from graph.auth.permissions import Act, Authorizer, Obj
from graph.errors import forbidden

CUSTOMER = "CUSTOMER"
PARTNER = "PARTNER"
RIGHTS: dict[str, tuple[Obj, Act]] = {
    CUSTOMER: (Obj.CUSTOMER, Act.WRITE),
    PARTNER: (Obj.ADMIN, Act.MANAGE),
}


def launch_scope(authorizer: Authorizer, principal: Principal, kind: str) -> Scope | None:
    """The principal's scope for launching into an organization of ``kind``; None: none."""
    right = RIGHTS.get(kind)
    return None if right is None else authorizer.scope(principal, *right)


def require_some_launch_right(authorizer: Authorizer, principal: Principal) -> None:
    """``FORBIDDEN`` for a caller that may launch nowhere (read-only, sales, most custom roles)."""
    if all(launch_scope(authorizer, principal, kind) is None for kind in RIGHTS):
        raise forbidden("Your role may not launch into organizations, nor use launch links.")


async def may_launch(session: AsyncSession, scope: Scope, kind: str, pk: int) -> bool:
    """Whether ``scope`` (from ``launch_scope`` or ``require``) covers the organization."""
    if kind == CUSTOMER:
        return pk in await cq.customers_by_ids(session, scope=scope, ids=[pk])
    return kind == PARTNER and pk == scope.partner_id


async def principal_may_launch(
    session: AsyncSession, authorizer: Authorizer, principal: Principal, kind: str, pk: int
) -> bool:
    scope = launch_scope(authorizer, principal, kind)
    return scope is not None and await may_launch(session, scope, kind, pk)
