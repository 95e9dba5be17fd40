"""The SQL side of authorization: which customers a caller may see.

``graph.auth`` decides *whether* a caller may act on a kind of object and hands ``db`` a ``Scope``;
every query that reads customers or anything hanging from them applies it here, in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select

from db.models import Customer, CustomerAssignment

CU = Customer.__table__.c  # type: ignore[attr-defined]
CA = CustomerAssignment.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Scope:
    """A partner, and when ``assigned_admin_id`` is set, only that admin's customers."""

    partner_id: int
    assigned_admin_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.partner_id}:{self.assigned_admin_id or '*'}"

    def customers(self, customer_id: Any = None) -> ColumnElement[bool]:
        """Condition on a customer id column (``CU.id`` by default) for this scope."""
        column = CU.id if customer_id is None else customer_id
        if self.assigned_admin_id is None:
            if customer_id is None:
                return CU.partner_id == self.partner_id
            return column.in_(select(CU.id).where(CU.partner_id == self.partner_id))
        # "Assigned" covers the customers the admin was assigned and those it provisioned.
        assigned = exists().where(
            CA.customer_id == column,
            CA.admin_id == self.assigned_admin_id,
        )
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
