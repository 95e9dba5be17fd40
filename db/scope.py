"""The SQL side of authorization: which customers a caller may see.

``graph.auth`` decides *whether* a caller may act on a kind of object and hands ``db`` a ``Scope``;
every query that reads customers or anything hanging from them applies it here, in SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Customer, CustomerAssignment

CU = Customer.__table__.c  # type: ignore[attr-defined]
CA = CustomerAssignment.__table__.c  # type: ignore[attr-defined]


# Proof that a Scope came from the authorization door: handed out once, to ``graph.auth``.
_MINT = object()
_issued = False


class ForgedScope(TypeError):
    """A ``Scope`` built anywhere but by ``graph.auth`` (the Authorizer or the CLI's system
    identity)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """A partner, and when ``assigned_admin_id`` is set, only that admin's customers.

    Only the authorization door makes one (``scope_issuer``): a query function that takes a
    ``scope`` therefore cannot be called with access nobody decided."""

    partner_id: int
    assigned_admin_id: int | None = None
    # The admin's customers are few: queries should start from them (see ``plan_scope``).
    few: bool = False
    mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The seal names who it was issued for: ``replace(scope, partner_id=...)`` is refused.
        if self.mint != (_MINT, self.partner_id, self.assigned_admin_id):
            raise ForgedScope("A Scope is issued by graph.auth, never built or changed by hand.")

    @property
    def key(self) -> str:
        """Who sees what (cursors and caches); the query plan hint ``few`` is not part of it."""
        return f"{self.partner_id}:{self.assigned_admin_id or '*'}"

    def customers(self, customer_id: Any = None, *, probe: bool = False) -> ColumnElement[bool]:
        """Condition on a customer id column (``CU.id`` by default) for this scope.

        With ``probe`` (a page, which stops after its rows) the assignment of an admin with
        many customers is tested customer by customer: ``OFFSET 0`` keeps PostgreSQL from
        hashing all of the admin's assignments first (36 ms for one with 100,000 of them)."""
        column = CU.id if customer_id is None else customer_id
        if self.assigned_admin_id is None:
            if customer_id is None:
                return CU.partner_id == self.partner_id
            return column.in_(select(CU.id).where(CU.partner_id == self.partner_id))
        # "Assigned" covers the customers the admin was assigned and those it provisioned.
        if self.few:
            mine = (
                select(CA.customer_id)
                .where(CA.admin_id == self.assigned_admin_id)
                .union(select(CU.id).where(CU.provisioned_by_admin_id == self.assigned_admin_id))
            )
            if customer_id is None:
                return and_(CU.partner_id == self.partner_id, CU.id.in_(mine))
            return column.in_(mine)
        mine_only = select(literal(1)).where(
            CA.customer_id == column,
            CA.admin_id == self.assigned_admin_id,
        )
        assigned = (mine_only.offset(0) if probe else mine_only).exists()
        if customer_id is None:
            return and_(
                CU.partner_id == self.partner_id,
                or_(CU.provisioned_by_admin_id == self.assigned_admin_id, assigned),
            )
        provisioned = column.in_(
            select(CU.id).where(
                CU.partner_id == self.partner_id,
                CU.provisioned_by_admin_id == self.assigned_admin_id,
            )
        )
        return or_(provisioned, assigned)


def scope_issuer() -> Callable[..., Scope]:
    """The one factory of scopes, handed out once: ``graph.auth.permissions`` takes it when it
    is imported, so any later caller (a resolver, the export, a test) is refused."""
    global _issued
    if _issued:
        raise ForgedScope("The scope issuer belongs to graph.auth.")
    _issued = True

    def issue(partner_id: int, assigned_admin_id: int | None = None) -> Scope:
        seal = (_MINT, partner_id, assigned_admin_id)
        return Scope(partner_id=partner_id, assigned_admin_id=assigned_admin_id, mint=seal)

    return issue


FEW_CUSTOMERS = 1000


async def plan_scope(session: AsyncSession, scope: Scope) -> Scope:
    """Mark an ``assigned`` scope as ``few`` when the admin has at most ``FEW_CUSTOMERS``.

    Both databases test the assignment of each customer while they walk the partner's customers
    in sort order: right when the admin has many customers (the page fills early), but a scan of
    the whole partner when it has ten. Starting from the admin's own customers is right for the
    latter. One bounded, indexed statement decides. (PostgreSQL had been left to its planner:
    a page for an admin with 10 of 100,000 customers took 84 ms, 7 ms with this.)
    """
    if scope.assigned_admin_id is None:
        return scope
    bounded = (
        select(CA.customer_id)
        .where(CA.admin_id == scope.assigned_admin_id)
        .limit(FEW_CUSTOMERS + 1)
        .subquery()
    )
    count = (await session.execute(select(func.count()).select_from(bounded))).scalar_one()
    return replace(scope, few=count <= FEW_CUSTOMERS)
